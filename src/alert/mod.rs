//! Alerts leave the gateway through a durable outbox. Detectors report observations; the
//! lifecycle ([`lifecycle`]) turns them into one notification per incident change
//! (pending, minimum duration, re-notify, folding into a parent asset's incident, state
//! that survives restarts); the sink ([`sink`]) writes the messages ([`message`]) and the
//! lifecycle records to the outbox ([`outbox`]) in one fsynced transaction before they
//! count as raised; a single publisher ([`publisher`]) sends the outbox oldest first with
//! MQTT QoS 1 over TCP or TLS (`crate::mqtt`), deleting an entry only when the broker's PUBACK
//! for it arrives, and keeps the gateway's status topic current ([`status`]). Broker down,
//! agent killed, power lost: every alert arrives, in order, possibly twice (consumers
//! de-duplicate by `id`), never lost. Operator labels travel the same way as `labelled`
//! events ([`labelled`]), and maintenance windows ([`maintenance`]) suppress the alarms of
//! the assets they cover.

pub(crate) mod event;
pub mod labelled;
pub mod lifecycle;
pub mod maintenance;
pub(crate) mod message;
pub(crate) mod outbox;
pub mod publisher;
pub mod sink;
pub mod status;
pub mod upstream;

pub use event::{AlertEvent, AlertState, ChildState, FoldedChild};
pub use message::AlertMessage;
pub use outbox::Outbox;

pub use crate::config::{render_topic, render_topic_at};
