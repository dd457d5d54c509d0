//! The input's acknowledgement bookkeeping, apart from I/O: which connection is current,
//! and the acks that are ready to go to the broker, in the order they became ready.
//!
//! A message is acknowledged only once its samples are durable, which may be after its
//! connection is gone. Packet ids are reused across connections, so an ack is tagged with
//! the epoch of the connection that received its message and dropped unless that
//! connection is still the current one; the broker redelivers such messages anyway.
//! While disconnected nothing is handed to rumqttc: its request queue outlives the
//! connection, and an old packet id sent on the next one could acknowledge another
//! message. Handing over never waits: rumqttc's queue is drained by the same task that
//! polls its event loop, so a full queue leaves the acks here for the next round.

//!
//! A message the pipeline refused (disk full) is not acknowledged, and a broker resends an
//! unacknowledged message only on a new connection of the session. Once samples are
//! accepted again, the first refused message of the current connection asks for that new
//! connection ([`AckState::redeliver`]); the broker then resends all of them, so the
//! others of the same connection ask for nothing.

use std::collections::VecDeque;

use rumqttc::Publish;

/// What became of a message handed to the pipeline.
#[derive(Debug)]
pub(crate) enum Settled {
    /// Its samples are durable: acknowledge it (the packet id and QoS are all an ack needs).
    Durable(Publish),
    /// It was refused, and samples are accepted again: it must be sent again.
    Refused,
}

#[derive(Debug, Default)]
pub(crate) struct AckState {
    /// Counts connections; the current one's, or the last one's while disconnected.
    epoch: u64,
    connected: bool,
    ready: VecDeque<Publish>,
}

impl AckState {
    /// A CONNACK: returns the new connection's epoch.
    pub(crate) fn connected(&mut self) -> u64 {
        self.epoch += 1;
        self.connected = true;
        self.ready.clear();
        self.epoch
    }

    /// The connection is gone; so are the packet ids its acks would name.
    pub(crate) fn disconnected(&mut self) {
        self.connected = false;
        self.ready.clear();
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// The epoch to tag a message received now with.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The samples of `publish`, received on connection `epoch`, are durable. Returns
    /// false when the ack is dropped because that connection is gone.
    pub(crate) fn ack_ready(&mut self, epoch: u64, publish: Publish) -> bool {
        if !self.connected || epoch != self.epoch {
            return false;
        }
        self.ready.push_back(publish);
        true
    }

    /// A message of connection `epoch` was refused and samples are accepted again.
    /// Returns true when the current connection must be dropped so that the broker
    /// resends; false when that connection is already gone (the broker resends on the
    /// next one anyway) or the drop was already asked for.
    pub(crate) fn redeliver(&mut self, epoch: u64) -> bool {
        self.connected && epoch == self.epoch
    }

    /// The oldest ack waiting to be handed to rumqttc.
    pub(crate) fn next_ack(&self) -> Option<&Publish> {
        self.ready.front()
    }

    /// rumqttc took the ack [`AckState::next_ack`] returned.
    pub(crate) fn sent(&mut self) {
        self.ready.pop_front();
    }

    /// Hands over acks in order while `try_send` accepts them; returns how many it took.
    pub(crate) fn send_ready(&mut self, mut try_send: impl FnMut(&Publish) -> bool) -> usize {
        let mut sent = 0;
        while let Some(publish) = self.next_ack() {
            if !try_send(publish) {
                break;
            }
            self.sent();
            sent += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::QoS;

    use super::*;

    fn message(pkid: u16) -> Publish {
        let mut p = Publish::new("plant/l1/m1/telemetry", QoS::AtLeastOnce, format!("{pkid}"));
        p.pkid = pkid;
        p
    }

    fn pkids(acks: &mut AckState) -> Vec<u16> {
        let mut out = Vec::new();
        acks.send_ready(|p| {
            out.push(p.pkid);
            true
        });
        out
    }

    #[test]
    fn an_ack_from_an_older_connection_is_dropped() {
        let mut acks = AckState::default();
        let first = acks.connected();
        assert!(acks.ack_ready(first, message(1)));
        acks.disconnected();
        // Durable only after the connection was lost: its packet id means nothing now.
        assert!(!acks.ack_ready(first, message(2)));
        let second = acks.connected();
        assert_ne!(first, second);
        assert!(!acks.ack_ready(first, message(3)));
        assert!(acks.ack_ready(second, message(3)));
        assert_eq!(pkids(&mut acks), [3]);
    }

    #[test]
    fn acks_keep_their_order() {
        let mut acks = AckState::default();
        let epoch = acks.connected();
        for pkid in [5, 2, 9, 1] {
            acks.ack_ready(epoch, message(pkid));
        }
        assert_eq!(acks.next_ack().map(|p| p.pkid), Some(5));
        assert_eq!(pkids(&mut acks), [5, 2, 9, 1]);
        assert!(acks.next_ack().is_none());
    }

    #[test]
    fn a_full_request_queue_leaves_acks_queued_for_the_next_round() {
        let mut acks = AckState::default();
        let epoch = acks.connected();
        for pkid in 1..=5 {
            acks.ack_ready(epoch, message(pkid));
        }
        let mut room = 2;
        let mut taken = Vec::new();
        let mut client = |p: &Publish| {
            if room == 0 {
                return false;
            }
            room -= 1;
            taken.push(p.pkid);
            true
        };
        assert_eq!(acks.send_ready(&mut client), 2);
        assert_eq!(acks.send_ready(&mut client), 0, "still full");
        assert_eq!(acks.next_ack().map(|p| p.pkid), Some(3));
        acks.ack_ready(epoch, message(6));
        assert_eq!(pkids(&mut acks), [3, 4, 5, 6]);
        assert_eq!(taken, [1, 2]);
    }

    #[test]
    fn refused_messages_ask_for_one_reconnect_per_connection() {
        let mut acks = AckState::default();
        let first = acks.connected();
        assert!(acks.redeliver(first));
        // The input drops the connection: the other refused messages of it come back too.
        acks.disconnected();
        assert!(!acks.redeliver(first));
        let second = acks.connected();
        assert!(!acks.redeliver(first), "an older connection's refusal asks for nothing");
        assert!(acks.redeliver(second));
    }

    #[test]
    fn a_reconnect_clears_pending_acks() {
        let mut acks = AckState::default();
        let first = acks.connected();
        acks.ack_ready(first, message(1));
        acks.ack_ready(first, message(2));
        acks.disconnected();
        assert!(!acks.is_connected());
        assert!(acks.next_ack().is_none(), "nothing is handed over while disconnected");
        let second = acks.connected();
        assert!(acks.next_ack().is_none());
        acks.ack_ready(second, message(1));
        // A CONNACK without a disconnect seen first still starts afresh.
        acks.connected();
        assert!(acks.next_ack().is_none());
    }
}
