//! The base every other layer stands on: timestamps, the [`sample::Sample`] currency,
//! widening of `f32` readings, operator labels, human-friendly units, sensor-name globs, backoff, secrets and the names that several
//! layers must spell the same way. Nothing here imports another module of the crate, so
//! it can be read and tested on its own.

pub(crate) mod backoff;
pub(crate) mod float;
pub(crate) mod glob;
pub mod label;
pub(crate) mod names;
pub mod sample;
pub mod secret;
pub mod time;
pub(crate) mod units;
