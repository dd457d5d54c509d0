//! Sources read sensors and send [`Sample`](crate::sample::Sample) batches to the
//! pipeline over a bounded channel. A full channel makes a source wait (a poll is
//! delayed), it never makes it drop samples.

pub mod csv;
pub mod modbus;
