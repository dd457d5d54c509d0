//! Alerts leave the gateway through a durable outbox: an alert is written to the `outbox`
//! tree and fsynced before it counts as raised ([`outbox`]), and a single publisher sends
//! the outbox oldest first with MQTT QoS 1, deleting an entry only when the broker's
//! PUBACK for it arrives ([`publisher`]). Broker down, agent killed, power lost: every
//! alert arrives, in order, possibly twice (consumers de-duplicate by `id`), never lost.

pub mod message;
pub mod outbox;
pub mod publisher;

pub use message::AlertMessage;
pub use outbox::Outbox;

/// Substitutes `{agent}` and `{asset}` in a topic template.
pub fn render_topic(template: &str, agent: &str, asset: &str) -> String {
    template.replace("{agent}", agent).replace("{asset}", asset)
}
