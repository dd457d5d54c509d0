//! Sources read sensors and send [`Batch`]es to the pipeline over a bounded channel. A
//! full channel makes a source wait (a poll is delayed, a broker's messages stay
//! unacknowledged), it never makes it drop samples.
//!
//! A batch may carry an [`Ack`]: the pipeline runs it once every sample of the batch is
//! durable (after the store's flush), so an MQTT message is acknowledged to the broker
//! only when it can no longer be lost. A batch the pipeline refuses (disk full) is not
//! acknowledged; an ack made [`Ack::with_redelivery`] lets its source get the batch back
//! once samples are accepted again (the MQTT input asks its broker to send it again).

pub mod csv;
pub mod modbus;
pub mod mqtt;

use crate::base::sample::Sample;

type Callback = Box<dyn FnOnce() + Send>;

/// Runs when the samples of its batch are durable.
pub struct Ack {
    done: Callback,
    redeliver: Option<Callback>,
}

impl Ack {
    pub fn new(f: impl FnOnce() + Send + 'static) -> Ack {
        Ack {
            done: Box::new(f),
            redeliver: None,
        }
    }

    /// An ack whose batch can be had again: `redeliver` runs when the pipeline, having
    /// refused the batch, accepts samples again.
    pub fn with_redelivery(done: impl FnOnce() + Send + 'static, redeliver: impl FnOnce() + Send + 'static) -> Ack {
        Ack {
            done: Box::new(done),
            redeliver: Some(Box::new(redeliver)),
        }
    }

    /// The samples are durable.
    pub fn done(self) {
        (self.done)()
    }

    /// Whether [`Ack::redeliver`] can bring the batch back.
    pub fn can_redeliver(&self) -> bool {
        self.redeliver.is_some()
    }

    /// The batch was refused and samples are accepted again: asks the source for it.
    pub fn redeliver(self) {
        if let Some(f) = self.redeliver {
            f()
        }
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
