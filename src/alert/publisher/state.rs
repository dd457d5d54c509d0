//! The publisher's protocol state, apart from I/O: its methods take what happened on the
//! connection and say what to do next, and never touch the network or the outbox (the
//! model is rumqttc's own `state.rs`). The event loop feeds it and carries out its
//! answers, so every order of events can be tested without a broker.
//!
//! Guarantees kept here: an alert counts as delivered only on the PUBACK of the packet id
//! rumqttc gave it on this connection; at most `window` alerts are queued or in flight;
//! alerts are taken from the outbox in sequence order; after a disconnect nothing queued
//! or in flight is remembered and sending restarts at the head of the outbox, so an
//! unacknowledged alert is sent again and a packet id reused by the next connection can
//! never acknowledge an alert of the last one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What a request handed to rumqttc stands for. rumqttc takes requests in order and
/// reports each as `Outgoing::Publish(pkid)`, QoS 0 ones (heartbeats) with id 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Alert(u64),
    Birth,
    Goodbye,
    Heartbeat,
}

/// What a PUBACK acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acked {
    /// The alert with this sequence number may leave the outbox.
    Alert(u64),
    Birth,
    Goodbye,
}

/// What the loop should hand rumqttc next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The first outbox entry after this sequence number (the oldest for `None`).
    AlertAfter(Option<u64>),
    /// Disconnected, or the window is full.
    Nothing,
}

/// Where a shutdown drain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrainStep {
    /// Not draining, or still waiting for PUBACKs.
    Continue,
    /// The outbox is empty: publish the retained `offline` now.
    SendGoodbye,
    /// Stop; send DISCONNECT first when connected, so the broker drops the last will.
    Finish { disconnect: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goodbye {
    Unsent,
    Sent,
    Acked,
}

#[derive(Debug)]
pub(crate) struct PublisherState {
    window: usize,
    grace: Duration,
    connected: bool,
    /// Handed to rumqttc, packet id not yet known.
    queued: VecDeque<Slot>,
    inflight: HashMap<u16, Slot>,
    /// Alerts in `queued` and `inflight`, kept so the window costs nothing to check.
    alerts_out: usize,
    /// The last alert handed to rumqttc on this connection.
    cursor: Option<u64>,
    draining_since: Option<Instant>,
    goodbye: Goodbye,
}

impl PublisherState {
    /// `window`: alerts queued or in flight at most (at least 1); `grace`: how long a
    /// shutdown keeps draining the outbox.
    pub(crate) fn new(window: u16, grace: Duration) -> PublisherState {
        PublisherState {
            window: usize::from(window.max(1)),
            grace,
            connected: false,
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            alerts_out: 0,
            cursor: None,
            draining_since: None,
            goodbye: Goodbye::Unsent,
        }
    }

    /// A CONNACK: a new connection, whose packet ids owe nothing to any earlier one.
    pub(crate) fn connected(&mut self) {
        self.forget();
        self.connected = true;
    }

    /// The connection is gone, and with it rumqttc's queue: what was queued or in flight
    /// is still in the outbox and is sent again from its head.
    pub(crate) fn disconnected(&mut self) {
        self.forget();
        self.connected = false;
    }

    fn forget(&mut self) {
        self.queued.clear();
        self.inflight.clear();
        self.alerts_out = 0;
        self.cursor = None;
        if self.goodbye == Goodbye::Sent {
            self.goodbye = Goodbye::Unsent;
        }
    }

    /// Whether another alert may be handed over, and from where in the outbox.
    pub(crate) fn want(&self) -> Want {
        if self.connected && self.alerts_out < self.window {
            Want::AlertAfter(self.cursor)
        } else {
            Want::Nothing
        }
    }

    /// rumqttc accepted a request. Ignored while disconnected: such a request dies with
    /// the client it was given to.
    pub(crate) fn queued(&mut self, slot: Slot) {
        if !self.connected {
            return;
        }
        match slot {
            Slot::Alert(seq) => {
                self.alerts_out += 1;
                self.cursor = Some(seq);
            }
            Slot::Goodbye => self.goodbye = Goodbye::Sent,
            Slot::Birth | Slot::Heartbeat => {}
        }
        self.queued.push_back(slot);
    }

    /// `Outgoing::Publish(pkid)`: the oldest queued request got its packet id.
    pub(crate) fn outgoing_publish(&mut self, pkid: u16) {
        let Some(slot) = self.queued.pop_front() else {
            return;
        };
        // Id 0 is QoS 0: no acknowledgement will come, so nothing waits for one.
        let replaced = if pkid == 0 {
            Some(slot)
        } else {
            self.inflight.insert(pkid, slot)
        };
        if let Some(Slot::Alert(_)) = replaced {
            // Never acknowledged on this connection; it is resent after the next connect.
            self.alerts_out -= 1;
        }
    }

    /// `Incoming::PubAck(pkid)`. `None` for an id this connection does not know and for a
    /// request that needs nothing done.
    pub(crate) fn puback(&mut self, pkid: u16) -> Option<Acked> {
        match self.inflight.remove(&pkid)? {
            Slot::Alert(seq) => {
                self.alerts_out -= 1;
                Some(Acked::Alert(seq))
            }
            Slot::Goodbye => {
                self.goodbye = Goodbye::Acked;
                Some(Acked::Goodbye)
            }
            Slot::Birth => Some(Acked::Birth),
            Slot::Heartbeat => None,
        }
    }

    /// Shutdown was asked for; the first call starts the grace period.
    pub(crate) fn start_drain(&mut self, now: Instant) {
        self.draining_since.get_or_insert(now);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining_since.is_some()
    }

    /// Heartbeats describe a running agent: none while disconnected or shutting down.
    pub(crate) fn heartbeat_allowed(&self) -> bool {
        self.connected && !self.is_draining()
    }

    /// The next step of a shutdown drain. The goodbye waits for an empty outbox (every
    /// alert acknowledged); its PUBACK, a lost connection or the end of the grace period
    /// ends the drain.
    pub(crate) fn drain_step(&self, now: Instant, outbox_empty: bool) -> DrainStep {
        let Some(since) = self.draining_since else {
            return DrainStep::Continue;
        };
        if !self.connected || self.goodbye == Goodbye::Acked || now.saturating_duration_since(since) >= self.grace {
            return DrainStep::Finish {
                disconnect: self.connected,
            };
        }
        if self.goodbye == Goodbye::Unsent && outbox_empty {
            return DrainStep::SendGoodbye;
        }
        DrainStep::Continue
    }

    #[cfg(test)]
    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Packet ids waiting for a PUBACK, in order.
    #[cfg(test)]
    pub(crate) fn inflight_ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self.inflight.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Alerts queued or in flight.
    #[cfg(test)]
    pub(crate) fn alerts_out(&self) -> usize {
        self.alerts_out
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
