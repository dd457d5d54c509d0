//! Sources read sensors and send [`Batch`]es to the pipeline over a bounded channel. A
//! full channel makes a source wait (a poll is delayed, a broker's messages stay
//! unacknowledged), it never makes it drop samples.
//!
//! A batch may carry an [`Ack`]: the pipeline runs it once every sample of the batch is
//! durable (after the store's flush), so an MQTT message is acknowledged to the broker
//! only when it can no longer be lost.

pub mod csv;
pub mod modbus;
pub mod mqtt;

use crate::base::sample::Sample;

/// Runs when the samples of its batch are durable.
pub struct Ack(Box<dyn FnOnce() + Send>);

impl Ack {
    pub fn new(f: impl FnOnce() + Send + 'static) -> Ack {
        Ack(Box::new(f))
    }

    pub fn done(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// Samples from one source, and what to do once they are durable.
#[derive(Debug, Default)]
pub struct Batch {
    pub samples: Vec<Sample>,
    pub ack: Option<Ack>,
}

impl From<Vec<Sample>> for Batch {
    fn from(samples: Vec<Sample>) -> Batch {
        Batch { samples, ack: None }
    }
}
