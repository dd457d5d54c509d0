//! The alert vocabulary: what the lifecycle says about an incident ([`AlertEvent`], its
//! [`AlertState`] and the child alarms folded into it). Messages, the outbox and the
//! publisher carry these; detectors never see them.

use serde::{Deserialize, Serialize};

use crate::config::Severity;
use crate::detect::SensorValue;

/// What a message says about its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The incident began (after its minimum duration).
    #[default]
    Raised,
    /// An alarm of a child asset was folded into this incident; `children` lists it.
    Updated,
    /// The incident is still open after the re-notify interval.
    Renotify,
    /// The incident ended.
    Cleared,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Raised => "raised",
            AlertState::Updated => "updated",
            AlertState::Renotify => "renotify",
            AlertState::Cleared => "cleared",
        }
    }
}

/// Whether a folded child alarm is still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildState {
    #[default]
    Firing,
    Cleared,
}

/// An alarm of a descendant asset folded into an incident.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FoldedChild {
    pub asset: String,
    pub rule: String,
    pub severity: Severity,
    pub sensor: String,
    pub value: f64,
    pub state: ChildState,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// A notification about an incident, produced by the lifecycle and turned into a
/// message by `alert`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertEvent {
    pub asset: String,
    pub rule: String,
    pub state: AlertState,
    pub severity: Severity,
    pub sensor: String,
    pub value: f64,
    /// The limit that was crossed (the raise limit, or the clear level when cleared).
    pub threshold: f64,
    /// Time of the observation this message is about.
    pub ts_ms: i64,
    /// When the incident began (when its condition was first seen, before any minimum
    /// duration).
    pub first_seen_ms: i64,
    /// The last time the condition was seen in alarm.
    pub last_seen_ms: i64,
    /// Ids from the root of the asset tree down to `asset`.
    pub asset_path: Vec<String>,
    /// A model's score; `None` for rules.
    pub score: Option<f64>,
    /// Every sensor involved, with values and contributions.
    pub sensors: Vec<SensorValue>,
    /// Alarms of descendant assets folded into this incident.
    pub children: Vec<FoldedChild>,
    /// The version of the model that raised it; `None` for rules and watches.
    pub model_version: Option<u64>,
}
