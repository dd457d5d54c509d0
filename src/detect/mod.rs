//! Detection: turns the live sample stream into alarm observations. Threshold rules
//! with hysteresis ([`rule`]), and failure prediction by per-machine models: samples are
//! resampled onto a common clock per machine ([`resample`]), turned into features
//! ([`features`]) and a per-sensor trend over hours ([`trend`]), scored by a [`Detector`]
//! (and, where labelled failures exist,
//! a [`forest`] classifier) against calibrated thresholds and smoothed into alarms ([`alarm`]) by the streaming [`scorer::Scorer`], which `run`
//! ([`live`]) and `eval` ([`eval`]) share. Models are trained ([`train`]) into a versioned
//! file ([`model`]). Detectors see every sample after it entered the store's buffer; they
//! keep only bounded state and decide nothing about notifications.
//!
//! The observation vocabulary lives here. A detector (a rule, or a model) is
//! registered as an [`AlarmDef`] and reports, per evaluation, an [`Observation`]: is the
//! condition in alarm, back to normal, or in between (the hysteresis band)? The alert
//! lifecycle (`alert::lifecycle`) turns observations into alert events: it owns
//! pending times, re-notification, folding into a parent's incident and the state that
//! survives restarts, so every detector gets the same behaviour.

pub(crate) mod alarm;
pub mod detector;
pub mod eval;
pub(crate) mod ewma;
pub(crate) mod features;
pub mod forest;
pub mod history;
mod linalg;
pub(crate) mod live;
pub(crate) mod mahalanobis;
pub mod model;
pub(crate) mod mset;
pub(crate) mod pca;
pub mod resample;
pub mod retrain;
pub mod rule;
pub mod scorer;
pub(crate) mod silence;
pub mod skab;
pub mod train;
pub mod trend;
pub mod versions;

use serde::{Deserialize, Serialize};

use crate::config::Severity;

/// One multivariate or per-sensor detector./// One multivariate or per-sensor detector.
pub trait Detector: Send {
    /// Names of the statistics, in the order [`Detector::observe`] writes them.
    fn statistics(&self) -> &'static [&'static str];
    /// Scores one vector: writes `stats[s]` and, for statistic `s` and sensor `j`,
    /// `contrib[s * m + j]` (non-negative; `m` = vector length).
    fn observe(&mut self, z: &[f64], stats: &mut [f64], contrib: &mut [f64]);
}

/// Fewest healthy vectors a model is trained on (and a classifier's fewest healthy rows).
pub const MIN_VECTORS: usize = 30;

/// Why a model could not be fitted or used.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("only {0} complete healthy vectors; a model needs at least 30")]
    TooFewVectors(usize),
    #[error("a vector or model part does not have {0} sensors")]
    Shape(usize),
    #[error("only {0} vectors labelled as failure; the classifier needs at least {min}", min = forest::MIN_FAILURES)]
    TooFewFailures(usize),
    #[error("numerical problem: {0}")]
    Numeric(String),
}

/// Index of an alarm registered with the lifecycle.
pub type AlarmId = usize;

/// Timing of one alarm's lifecycle, in milliseconds of sample time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// The condition must hold this long (every observation in alarm) before it raises.
    pub min_duration_ms: i64,
    /// The value must stay back to normal this long before the incident clears.
    pub clear_after_ms: i64,
    /// While the incident is open, send `renotify` this often; `None` for never.
    pub renotify_ms: Option<i64>,
}

/// One alarm (a rule or a model of an asset), as the lifecycle knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDef {
    pub asset: String,
    /// Rule or model name, unique within its asset.
    pub rule: String,
    pub severity: Severity,
    pub policy: Policy,
}

/// Where an evaluation puts the alarm's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Past the limit: raises (after the minimum duration) or keeps the incident open.
    Alarm,
    /// Between the clear level and the limit: changes nothing.
    Hold,
    /// Past the clear level: clears (after `clear_after`).
    Normal,
}

/// A sensor's part in an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorValue {
    pub name: String,
    pub value: f64,
    /// Share of this sensor in the score, 0..1 (1 for a rule's only sensor).
    pub contribution: f64,
}

/// One evaluation of an alarm's condition, on the sample (or window) at `ts_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub ts_ms: i64,
    pub level: Level,
    /// The main sensor and its value (a rule's sensor; a model's largest contributor).
    pub sensor: String,
    pub value: f64,
    /// The limit that raises.
    pub threshold: f64,
    /// The level that clears (the same as `threshold` without hysteresis).
    pub clear_threshold: f64,
    /// A model's anomaly score; `None` for rules.
    #[serde(default)]
    pub score: Option<f64>,
    /// Every sensor involved; empty means just `sensor`, contribution 1.
    #[serde(default)]
    pub sensors: Vec<SensorValue>,
    /// The version of the model that scored it (`Model::version`); `None` for rules and
    /// watches. Alerts carry it, so an alarm can be traced to the model that raised it.
    #[serde(default)]
    pub model_version: Option<u64>,
}
