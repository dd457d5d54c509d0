//! Detection: turns the live sample stream into alert events. Threshold rules with
//! hysteresis ([`rule`]), and failure prediction by per-machine models: samples are
//! resampled onto a common clock per machine ([`resample`]), turned into features
//! ([`features`]), scored by a [`detector::Detector`] against calibrated thresholds and
//! smoothed into alarms ([`alarm`]) by the streaming [`scorer::Scorer`], which `run`
//! ([`live`]) and `eval` ([`eval`]) share. Models are trained ([`train`]) into a versioned
//! file ([`model`]). Detectors see every sample after it entered the store's buffer; they
//! keep only bounded state.

pub mod alarm;
pub mod detector;
pub mod eval;
pub mod ewma;
pub mod features;
mod linalg;
pub mod live;
pub mod mahalanobis;
pub mod model;
pub mod mset;
pub mod pca;
pub mod resample;
pub mod rule;
pub mod scorer;
pub mod skab;
pub mod train;

/// Why a model could not be fitted or used.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("only {0} complete healthy vectors; a model needs at least 30")]
    TooFewVectors(usize),
    #[error("a vector or model part does not have {0} sensors")]
    Shape(usize),
    #[error("numerical problem: {0}")]
    Numeric(String),
}

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
    /// Model alerts: the normalised score (1.0 = threshold); `None` for rules.
    pub score: Option<f64>,
    /// Model alerts: the sensors that contribute most, with their share of the score.
    pub contributions: Vec<(String, f64)>,
}
