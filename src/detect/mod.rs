//! Detection: turns the live sample stream into alert events. Today: threshold rules with
//! hysteresis ([`rule`]). Detectors see every sample after it entered the store's buffer;
//! they keep only bounded state.

pub mod rule;
pub mod skab;

/// Whether an alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Raised,
    Cleared,
}

/// A change of an alert's state, produced by a detector and turned into a message by
/// `alert`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub asset: String,
    pub rule: String,
    pub state: AlertState,
    pub severity: crate::config::Severity,
    pub sensor: String,
    pub value: f64,
    /// The limit that was crossed (`above`/`below` when raised, the clear level when
    /// cleared).
    pub threshold: f64,
    /// Time of the sample that changed the state.
    pub ts_ms: i64,
    /// Time of the sample that raised the alert (equal to `ts_ms` when raised).
    pub first_seen_ms: i64,
}
