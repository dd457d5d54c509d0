//! forewarn: an edge agent that reads plant sensors (Modbus), keeps their history in a
//! local store (sled), watches them with rules, and forwards alerts to an MQTT broker
//! through a durable outbox. See `ARCHITECTURE.md` for the map of this crate.

pub mod agent;
pub mod alert;
pub mod base;
pub mod config;
pub mod demo;
pub mod detect;
pub mod forward;
pub mod http;
pub mod mqtt;
pub mod source;
pub mod stats;
pub mod store;
