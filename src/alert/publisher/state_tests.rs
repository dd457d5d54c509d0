use std::collections::BTreeSet;

use super::*;

const GRACE: Duration = Duration::from_secs(2);

/// rumqttc and the broker as the publisher meets them: the client's request queue has a
/// capacity; requests leave in order; packet ids run from 1 to rumqttc's `max_inflight`
/// (the window plus two, as the publisher configures it), start at 1 again with each new
/// client, and an id still waiting for its PUBACK holds the next request back (rumqttc's
/// collision); QoS 0 requests leave with id 0.
struct Sim {
    state: PublisherState,
    window: usize,
    outbox: BTreeSet<u64>,
    raised: u64,
    capacity: usize,
    max_inflight: u16,
    last_pkid: u16,
    /// Accepted by the client, not yet on the wire.
    channel: VecDeque<Slot>,
    /// On the wire and waiting for a PUBACK, in the order sent: what each id carries.
    wire: Vec<(u16, Slot)>,
    collision: Option<(u16, Slot)>,
    /// Alerts handed to the client on the current connection, in order.
    handed: Vec<u64>,
    removed: Vec<u64>,
}

impl Sim {
    fn new(window: u16) -> Sim {
        Sim {
            state: PublisherState::new(window, GRACE),
            window: usize::from(window),
            outbox: BTreeSet::new(),
            raised: 0,
            capacity: usize::from(window) + 8,
            max_inflight: window + 2,
            last_pkid: 0,
            channel: VecDeque::new(),
            wire: Vec::new(),
            collision: None,
            handed: Vec::new(),
            removed: Vec::new(),
        }
    }

    fn raise(&mut self, n: u64) {
        for _ in 0..n {
            self.raised += 1;
            self.outbox.insert(self.raised);
        }
    }

    /// A fresh client and event loop that got their CONNACK; the birth goes first.
    fn connect(&mut self) {
        self.forget_client();
        self.state.connected();
        assert!(self.publish(Slot::Birth));
    }

    fn disconnect(&mut self) {
        self.forget_client();
        self.state.disconnected();
    }

    fn forget_client(&mut self) {
        self.last_pkid = 0;
        self.channel.clear();
        self.wire.clear();
        self.collision = None;
        self.handed.clear();
    }

    /// `try_publish`: false when the request queue is full.
    fn publish(&mut self, slot: Slot) -> bool {
        if self.channel.len() >= self.capacity {
            return false;
        }
        self.channel.push_back(slot);
        self.state.queued(slot);
        true
    }

    /// What the event loop does before each poll.
    fn fill(&mut self) {
        while let Want::AlertAfter(after) = self.state.want() {
            let next = match after {
                Some(seq) => self.outbox.range(seq + 1..).next(),
                None => self.outbox.iter().next(),
            };
            let Some(&seq) = next else { break };
            if !self.publish(Slot::Alert(seq)) {
                break;
            }
            self.handed.push(seq);
        }
    }

    fn next_pkid(&mut self) -> u16 {
        let next = self.last_pkid + 1;
        self.last_pkid = if next == self.max_inflight { 0 } else { next };
        next
    }

    /// rumqttc writes one request; false when it cannot.
    fn transmit(&mut self) -> bool {
        if self.collision.is_some() || self.wire.len() >= usize::from(self.max_inflight) {
            return false;
        }
        let Some(slot) = self.channel.pop_front() else {
            return false;
        };
        if slot == Slot::Heartbeat {
            self.state.outgoing_publish(0);
            return true;
        }
        let pkid = self.next_pkid();
        if self.wire.iter().any(|(id, _)| *id == pkid) {
            self.collision = Some((pkid, slot));
        } else {
            self.wire.push((pkid, slot));
            self.state.outgoing_publish(pkid);
        }
        true
    }

    fn transmit_all(&mut self) {
        while self.transmit() {}
    }

    /// The broker acknowledges the packet at `index` on the wire; checks that the state
    /// names what the packet truly carried, and removes an acknowledged alert.
    fn ack_at(&mut self, index: usize) -> Option<Acked> {
        let (pkid, truth) = self.wire.remove(index);
        let acked = self.state.puback(pkid);
        let expected = match truth {
            Slot::Alert(seq) => Some(Acked::Alert(seq)),
            Slot::Birth => Some(Acked::Birth),
            Slot::Goodbye => Some(Acked::Goodbye),
            Slot::Heartbeat => None,
        };
        assert_eq!(acked, expected, "PUBACK {pkid}");
        if let Some(Acked::Alert(seq)) = acked {
            assert!(self.outbox.remove(&seq), "alert {seq} acknowledged twice");
            self.removed.push(seq);
        }
        if let Some((id, slot)) = self.collision {
            if id == pkid {
                self.collision = None;
                self.wire.push((id, slot));
                self.state.outgoing_publish(id);
            }
        }
        acked
    }

    fn ack_all(&mut self) {
        while !self.wire.is_empty() {
            self.ack_at(0);
        }
    }

    /// Alerts the client and the wire hold, the truth the window is about.
    fn alerts_out(&self) -> usize {
        let alert = |s: &Slot| matches!(s, Slot::Alert(_));
        self.channel.iter().filter(|s| alert(s)).count()
            + self.wire.iter().filter(|(_, s)| alert(s)).count()
            + self.collision.iter().filter(|(_, s)| alert(s)).count()
    }

    fn check(&self) {
        assert!(self.state.alerts_out() <= self.window, "window exceeded");
        assert_eq!(self.state.alerts_out(), self.alerts_out());
        assert!(self.handed.windows(2).all(|w| w[0] < w[1]), "{:?}", self.handed);
        let mut wire: Vec<u16> = self.wire.iter().map(|(id, _)| *id).collect();
        wire.sort_unstable();
        assert_eq!(self.state.inflight_ids(), wire);
    }
}

#[test]
fn a_reconnect_resends_what_was_in_flight_from_the_outbox_head_in_order() {
    let mut sim = Sim::new(3);
    sim.raise(5);
    sim.connect();
    sim.fill();
    sim.transmit_all();
    assert_eq!(sim.handed, [1, 2, 3]);
    sim.ack_at(0); // birth
    assert_eq!(sim.ack_at(0), Some(Acked::Alert(1)));
    // Alerts 2 and 3 are in flight when the connection drops.
    sim.disconnect();
    assert_eq!(sim.state.want(), Want::Nothing);
    sim.connect();
    sim.fill();
    assert_eq!(sim.handed, [2, 3, 4]);
    sim.transmit_all();
    sim.ack_all();
    sim.fill();
    sim.transmit_all();
    sim.ack_all();
    assert_eq!(sim.removed, [1, 2, 3, 4, 5]);
    sim.check();
}

#[test]
fn a_puback_for_an_unknown_packet_id_is_ignored() {
    let mut s = PublisherState::new(4, GRACE);
    assert_eq!(s.puback(1), None, "nothing is known before a connect");
    s.connected();
    s.queued(Slot::Alert(1));
    s.outgoing_publish(1);
    assert_eq!(s.puback(7), None);
    assert_eq!(s.alerts_out(), 1);
    assert_eq!(s.puback(1), Some(Acked::Alert(1)));
    assert_eq!(s.puback(1), None, "a second PUBACK for the same id");
    assert_eq!(s.alerts_out(), 0);
}

#[test]
fn heartbeats_take_their_place_in_the_queue_without_an_inflight_entry() {
    let mut s = PublisherState::new(4, GRACE);
    s.connected();
    for slot in [
        Slot::Birth,
        Slot::Alert(1),
        Slot::Heartbeat,
        Slot::Alert(2),
        Slot::Heartbeat,
        Slot::Alert(3),
    ] {
        s.queued(slot);
    }
    for pkid in [1, 2, 0, 3, 0, 4] {
        s.outgoing_publish(pkid);
    }
    assert_eq!(s.inflight_ids(), [1, 2, 3, 4]);
    assert_eq!(s.puback(0), None);
    assert_eq!(s.puback(3), Some(Acked::Alert(2)));
    assert_eq!(s.puback(2), Some(Acked::Alert(1)));
    assert_eq!(s.puback(4), Some(Acked::Alert(3)));
    assert_eq!(s.puback(1), Some(Acked::Birth));
    assert_eq!(s.alerts_out(), 0);

    // The same through the simulated client, heartbeats between fills.
    let mut sim = Sim::new(4);
    sim.connect();
    for _ in 0..3 {
        sim.raise(1);
        sim.fill();
        assert!(sim.publish(Slot::Heartbeat));
    }
    sim.transmit_all();
    sim.check();
    sim.ack_all();
    assert_eq!(sim.removed, [1, 2, 3]);
}

#[test]
fn alerts_raised_while_disconnected_wait_then_go_oldest_first_up_to_the_window() {
    let mut sim = Sim::new(2);
    sim.state.queued(Slot::Alert(1));
    assert_eq!(
        sim.state.alerts_out(),
        0,
        "a request without a connection is not tracked"
    );
    sim.raise(3);
    sim.fill();
    assert!(sim.handed.is_empty() && sim.channel.is_empty());
    sim.raise(2);
    sim.fill();
    assert!(sim.channel.is_empty());
    sim.connect();
    sim.fill();
    assert_eq!(sim.handed, [1, 2]);
    assert_eq!(sim.state.want(), Want::Nothing, "the window is full");
    sim.transmit_all();
    sim.ack_all();
    sim.fill();
    assert_eq!(sim.handed, [1, 2, 3, 4]);
    sim.check();
}

#[test]
fn a_full_request_queue_leaves_the_alert_for_the_next_fill() {
    let mut sim = Sim::new(4);
    sim.capacity = 2;
    sim.raise(3);
    sim.connect();
    sim.fill();
    assert_eq!(sim.handed, [1], "the birth took the other place");
    assert_eq!(sim.state.want(), Want::AlertAfter(Some(1)));
    sim.transmit_all();
    sim.fill();
    assert_eq!(sim.handed, [1, 2, 3]);
    sim.check();
}

#[test]
fn packet_ids_reused_after_a_reconnect_never_acknowledge_an_old_alert() {
    let mut s = PublisherState::new(4, GRACE);
    s.connected();
    s.queued(Slot::Alert(1));
    s.outgoing_publish(1);
    s.disconnected();
    s.connected();
    assert_eq!(s.puback(1), None, "id 1 belonged to the last connection");
    s.queued(Slot::Birth);
    s.outgoing_publish(1);
    assert_eq!(s.puback(1), Some(Acked::Birth));
    assert_eq!(s.want(), Want::AlertAfter(None), "alert 1 is sent again");
    s.queued(Slot::Alert(1));
    s.outgoing_publish(2);
    assert_eq!(s.puback(2), Some(Acked::Alert(1)));
}

#[test]
fn an_acknowledged_goodbye_ends_the_drain() {
    let t0 = Instant::now();
    let mut s = PublisherState::new(4, GRACE);
    assert_eq!(s.drain_step(t0, true), DrainStep::Continue, "not draining");
    s.connected();
    s.queued(Slot::Alert(1));
    s.outgoing_publish(1);
    s.start_drain(t0);
    assert!(!s.heartbeat_allowed());
    assert_eq!(
        s.drain_step(t0, false),
        DrainStep::Continue,
        "alert 1 is not acknowledged"
    );
    assert_eq!(s.puback(1), Some(Acked::Alert(1)));
    assert_eq!(s.drain_step(t0, true), DrainStep::SendGoodbye);
    s.queued(Slot::Goodbye);
    assert_eq!(s.drain_step(t0, true), DrainStep::Continue, "one goodbye only");
    s.outgoing_publish(2);
    assert_eq!(s.puback(2), Some(Acked::Goodbye));
    assert_eq!(s.drain_step(t0, true), DrainStep::Finish { disconnect: true });
}

#[test]
fn the_drain_ends_when_its_grace_expires_or_the_connection_is_lost() {
    let t0 = Instant::now();
    let mut s = PublisherState::new(4, GRACE);
    s.connected();
    s.start_drain(t0);
    // A later request does not restart the grace period.
    s.start_drain(t0 + GRACE);
    let just_before = t0 + GRACE - Duration::from_millis(1);
    assert_eq!(s.drain_step(just_before, false), DrainStep::Continue);
    assert_eq!(s.drain_step(t0 + GRACE, false), DrainStep::Finish { disconnect: true });

    let mut s = PublisherState::new(4, GRACE);
    s.connected();
    s.start_drain(t0);
    s.queued(Slot::Goodbye);
    s.disconnected();
    assert_eq!(s.drain_step(t0, true), DrainStep::Finish { disconnect: false });
    // A goodbye lost with its connection counts as not sent.
    s.connected();
    assert_eq!(s.drain_step(t0, true), DrainStep::SendGoodbye);
}

#[test]
fn heartbeats_only_while_connected_and_not_draining() {
    let mut s = PublisherState::new(1, GRACE);
    assert!(!s.heartbeat_allowed());
    s.queued(Slot::Heartbeat);
    s.outgoing_publish(0);
    s.connected();
    assert!(s.heartbeat_allowed());
    s.start_drain(Instant::now());
    assert!(!s.heartbeat_allowed());
}

/// xorshift64*, so a failing order of events reproduces on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1) as u64) as usize
    }
}

/// Random interleavings of raises, fills, sends, PUBACKs in any order (the broker may
/// acknowledge out of order), heartbeats, full request queues and reconnects: the window
/// holds, every PUBACK names what its packet carried on this connection, and in the end
/// every alert leaves the outbox.
#[test]
fn every_order_of_events_keeps_the_window_and_matches_every_puback() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let window = 1 + rng.below(5) as u16;
        let mut sim = Sim::new(window);
        sim.capacity = 1 + rng.below(usize::from(window) + 4);
        for _ in 0..300 {
            match rng.below(12) {
                0 => sim.raise(1 + rng.below(3) as u64),
                1 | 2 => sim.fill(),
                3..=5 => {
                    sim.transmit();
                }
                6..=8 if !sim.wire.is_empty() => {
                    let i = rng.below(sim.wire.len());
                    sim.ack_at(i);
                }
                9 if sim.state.heartbeat_allowed() => {
                    sim.publish(Slot::Heartbeat);
                }
                10 if rng.below(8) == 0 => sim.disconnect(),
                11 if !sim.state.is_connected() => sim.connect(),
                _ => {}
            }
            sim.check();
        }
        sim.connect();
        for _ in 0..10_000 {
            if sim.outbox.is_empty() {
                break;
            }
            sim.fill();
            sim.transmit_all();
            sim.check();
            sim.ack_all();
        }
        assert!(
            sim.outbox.is_empty(),
            "seed {seed}: {:?} never acknowledged",
            sim.outbox
        );
        let removed: BTreeSet<u64> = sim.removed.iter().copied().collect();
        assert_eq!(removed.len(), sim.removed.len(), "seed {seed}: removed twice");
        assert_eq!(removed, (1..=sim.raised).collect(), "seed {seed}");
    }
}
