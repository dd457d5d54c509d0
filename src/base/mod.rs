//! The base every other layer stands on: timestamps, the [`sample::Sample`] currency,
//! human-friendly units, sensor-name globs, backoff, secrets and the names that several
//! layers must spell the same way. Nothing here imports another module of the crate, so
//! it can be read and tested on its own.

pub mod backoff;
pub mod glob;
pub mod names;
pub mod sample;
pub mod secret;
pub mod time;
pub mod units;
