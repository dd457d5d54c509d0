//! The in-flight window of a broker destination, apart from I/O: which sent batch is
//! which packet id, and which batches are confirmed in send order. rumqttc numbers
//! publishes as they leave (`Outgoing::Publish`), in the order they were handed over, and
//! PUBACKs may come in any order; a batch's cursor advance is released only once every
//! earlier batch is confirmed too, so the durable cursor never passes a hole.

use std::collections::VecDeque;

#[derive(Debug)]
struct Flight<T> {
    pkid: Option<u16>,
    acked: bool,
    payload: T,
}

/// Batches handed to the client and not yet confirmed, oldest first.
#[derive(Debug)]
pub struct Window<T> {
    max: usize,
    flights: VecDeque<Flight<T>>,
}

impl<T> Window<T> {
    pub fn new(max: u16) -> Window<T> {
        Window {
            max: usize::from(max.max(1)),
            flights: VecDeque::new(),
        }
    }

    pub fn has_room(&self) -> bool {
        self.flights.len() < self.max
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flights.len()
    }

    /// A batch was handed to the client.
    pub fn queued(&mut self, payload: T) {
        self.flights.push_back(Flight {
            pkid: None,
            acked: false,
            payload,
        });
    }

    /// The client sent the next publish with this packet id.
    pub fn outgoing(&mut self, pkid: u16) {
        if let Some(f) = self.flights.iter_mut().find(|f| f.pkid.is_none()) {
            f.pkid = Some(pkid);
        }
    }

    /// A PUBACK: the batches now confirmed in order, oldest first.
    pub fn acked(&mut self, pkid: u16) -> Vec<T> {
        if let Some(f) = self.flights.iter_mut().find(|f| f.pkid == Some(pkid) && !f.acked) {
            f.acked = true;
        }
        let mut done = Vec::new();
        while self.flights.front().is_some_and(|f| f.acked) {
            if let Some(f) = self.flights.pop_front() {
                done.push(f.payload);
            }
        }
        done
    }

    /// The connection is gone: nothing in flight counts any more.
    pub fn clear(&mut self) {
        self.flights.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn confirmations_are_released_in_send_order() {
        let mut w = Window::new(3);
        for b in ["a", "b", "c"] {
            w.queued(b);
        }
        assert!(!w.has_room());
        w.outgoing(7);
        w.outgoing(8);
        w.outgoing(9);
        assert!(w.acked(8).is_empty(), "b waits for a");
        assert_eq!(w.acked(7), vec!["a", "b"]);
        // A PUBACK for an unknown id changes nothing.
        assert!(w.acked(42).is_empty());
        assert_eq!(w.acked(9), vec!["c"]);
        assert!(w.has_room());
    }

    #[test]
    fn a_reused_packet_id_confirms_the_newer_flight_only_once_sent() {
        let mut w = Window::new(4);
        w.queued(1);
        w.outgoing(1);
        assert_eq!(w.acked(1), vec![1]);
        w.queued(2);
        // Not sent yet: a stray PUBACK 1 must not confirm it.
        assert!(w.acked(1).is_empty());
        w.outgoing(1);
        assert_eq!(w.acked(1), vec![2]);
        w.queued(3);
        w.clear();
        assert_eq!(w.len(), 0);
    }
}
