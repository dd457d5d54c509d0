//! `format = "sparkplug"`: the agent as a Sparkplug B edge node. Group id from `group`
//! (default `forewarn`), edge node id from `node` (default the agent id), one device per
//! asset (its id with `/`, `+` and `#` turned into `:`; `_unassigned` for sensors outside
//! every asset), one metric per sensor: its name, alias = its persistent sensor id,
//! datatype Double.
//!
//! The protocol's state (bdSeq, seq, which births are due, the primary host) is in
//! [`state`], without I/O; the payloads in [`encode`]; the connection in [`link`].
//! Guarantees are the forwarder's: the cursor moves only on the PUBACK of a DDATA, so
//! what was not confirmed goes again after an outage, a restart or while the primary host
//! is offline (held in the store, then sent with `is_historical` when older than
//! `live_window`).

mod encode;
mod link;
mod state;

pub use link::SparkplugSink;
