//! The Sparkplug B edge node's protocol state, apart from I/O: the session number
//! (`bdSeq`, one per MQTT connection, the same in the will's NDEATH and the NBIRTH), the
//! message number (`seq`, 0..=255 wrapping over NBIRTH, DBIRTH and DDATA, 0 at NBIRTH),
//! which births are due, which sensors each device was born with, and whether the
//! primary host is online. The event loop in `link.rs` feeds it what happened and asks
//! it what may go.
//!
//! Guarantees: no DDATA is allowed before the births of its connection, nor for a sensor
//! its device's DBIRTH did not announce; with a primary host, nothing but the session is
//! allowed until the host said it is online, and a STATE older than the last one seen is
//! ignored (Sparkplug 3.0: hosts stamp their STATE, and a stale retained one may arrive
//! late).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::base::sample::SensorId;

/// The next session number after `previous` (none stored: 0). Sparkplug keeps `bdSeq`
/// within 0..=255, like `seq`.
pub fn next_bd_seq(previous: Option<u64>) -> u64 {
    previous.map_or(0, |p| (p + 1) % 256)
}

/// What a STATE message changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostChange {
    /// The host came online: births are due, then data may go.
    Online,
    /// The host went offline: data is held in the store.
    Offline,
    /// Nothing (the same state again, or a stale message).
    None,
}

#[derive(Debug)]
pub struct Session {
    bd_seq: u64,
    seq: u8,
    /// A primary host is configured: data waits for its STATE.
    host_required: bool,
    host_online: bool,
    host_stamp: Option<i64>,
    births_due: bool,
    /// Per device, the sensors its last DBIRTH announced.
    born: HashMap<Arc<str>, HashSet<SensorId>>,
}

impl Session {
    pub fn new(host_required: bool) -> Session {
        Session {
            bd_seq: 0,
            seq: 0,
            host_required,
            host_online: !host_required,
            host_stamp: None,
            births_due: true,
            born: HashMap::new(),
        }
    }

    pub fn bd_seq(&self) -> u64 {
        self.bd_seq
    }

    /// A new connection begins with this session number (already in its will): births
    /// are due, no device is born, and the host's state must be heard again.
    pub fn connecting(&mut self, bd_seq: u64) {
        self.bd_seq = bd_seq;
        self.births_due = true;
        self.born.clear();
        self.host_online = !self.host_required;
        self.host_stamp = None;
    }

    /// Whether anything but the session may go now.
    pub fn may_publish(&self) -> bool {
        self.host_online
    }

    /// NBIRTH and every DBIRTH must go before any data.
    pub fn births_due(&self) -> bool {
        self.births_due && self.host_online
    }

    /// The `seq` of an NBIRTH: it starts the numbering again at 0.
    pub fn nbirth_seq(&self) -> u8 {
        0
    }

    /// An NBIRTH went out: numbering goes on from 1, devices must be born again.
    pub fn nbirth_sent(&mut self) {
        self.seq = 1;
        self.births_due = false;
        self.born.clear();
    }

    /// The `seq` the next DBIRTH or DDATA takes.
    pub fn seq(&self) -> u8 {
        self.seq
    }

    /// A DBIRTH or DDATA went out with [`Session::seq`].
    pub fn seq_used(&mut self) {
        self.seq = self.seq.wrapping_add(1);
    }

    /// Whether `device` must be born (again) before data of these sensors.
    pub fn needs_dbirth(&self, device: &str, sensors: impl IntoIterator<Item = SensorId>) -> bool {
        match self.born.get(device) {
            None => true,
            Some(set) => sensors.into_iter().any(|s| !set.contains(&s)),
        }
    }

    /// A DBIRTH of `device` went out announcing these sensors.
    pub fn dbirth_sent(&mut self, device: Arc<str>, sensors: impl IntoIterator<Item = SensorId>) {
        self.seq_used();
        self.born.insert(device, sensors.into_iter().collect());
    }

    /// A host asked for a rebirth (NCMD `Node Control/Rebirth`).
    pub fn rebirth(&mut self) {
        self.births_due = true;
    }

    /// The primary host's STATE arrived.
    pub fn host_state(&mut self, online: bool, stamp: Option<i64>) -> HostChange {
        if !self.host_required {
            return HostChange::None;
        }
        if let (Some(last), Some(now)) = (self.host_stamp, stamp) {
            if now < last {
                return HostChange::None;
            }
        }
        if stamp.is_some() {
            self.host_stamp = stamp;
        }
        let was = std::mem::replace(&mut self.host_online, online);
        match (was, online) {
            (false, true) => {
                // The host may have lost what it knew of this node: everything is born again.
                self.births_due = true;
                HostChange::Online
            }
            (true, false) => HostChange::Offline,
            _ => HostChange::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_numbers_wrap_and_start_at_zero() {
        assert_eq!(next_bd_seq(None), 0);
        assert_eq!(next_bd_seq(Some(4)), 5);
        assert_eq!(next_bd_seq(Some(255)), 0);
    }

    #[test]
    fn births_come_first_and_seq_wraps_over_births_and_data() {
        let mut s = Session::new(false);
        s.connecting(3);
        assert_eq!(s.bd_seq(), 3);
        assert!(s.births_due() && s.may_publish());
        assert_eq!(s.nbirth_seq(), 0);
        s.nbirth_sent();
        assert!(!s.births_due());
        let dev: Arc<str> = Arc::from("pump");
        assert!(s.needs_dbirth("pump", [1]));
        assert_eq!(s.seq(), 1);
        s.dbirth_sent(dev.clone(), [1, 2]);
        assert!(!s.needs_dbirth("pump", [2, 1]));
        // A sensor that appeared since: the device is born again.
        assert!(s.needs_dbirth("pump", [3]));
        for _ in 0..254 {
            s.seq_used();
        }
        assert_eq!(s.seq(), 0, "256 messages after NBIRTH: back to 0");
        s.rebirth();
        assert!(s.births_due());
        s.nbirth_sent();
        assert_eq!(s.seq(), 1);
        assert!(s.needs_dbirth("pump", [1]), "an NBIRTH requires the DBIRTHs again");
        // A new connection forgets the births.
        s.dbirth_sent(dev, [1]);
        s.connecting(4);
        assert!(s.births_due() && s.needs_dbirth("pump", [1]));
    }

    #[test]
    fn a_primary_host_gates_births_and_data_and_stale_states_are_ignored() {
        let mut s = Session::new(true);
        s.connecting(0);
        assert!(!s.may_publish() && !s.births_due());
        assert_eq!(s.host_state(true, Some(100)), HostChange::Online);
        assert!(s.may_publish() && s.births_due());
        s.nbirth_sent();
        // A late, older OFFLINE is ignored.
        assert_eq!(s.host_state(false, Some(50)), HostChange::None);
        assert!(s.may_publish());
        assert_eq!(s.host_state(false, Some(200)), HostChange::Offline);
        assert!(!s.may_publish());
        assert_eq!(s.host_state(true, Some(300)), HostChange::Online);
        assert!(s.births_due(), "births again once the host is back");
        // Reconnecting: the host's state must be heard again.
        s.connecting(1);
        assert!(!s.may_publish());
        // Without a primary host STATE changes nothing.
        let mut free = Session::new(false);
        assert_eq!(free.host_state(false, None), HostChange::None);
        assert!(free.may_publish());
    }
}
