//! The JSON object published for every alert state change.

use serde::{Deserialize, Serialize};

use crate::detect::{AlertEvent, AlertState};
use crate::sample::rfc3339_ms;

/// One alert message. Field names are part of the upstream contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// Unique id of this message; consumers de-duplicate redeliveries by it.
    pub id: String,
    /// Per-agent sequence number, increasing by one per message, across restarts.
    pub seq: u64,
    pub agent: String,
    pub asset: String,
    pub rule: String,
    pub state: AlertState,
    pub severity: String,
    pub sensor: String,
    pub value: f64,
    pub threshold: f64,
    /// When the state changed (the time of the sample), RFC 3339 UTC.
    pub ts: String,
    /// When the incident began, RFC 3339 UTC.
    pub first_seen: String,
    /// Model alerts only: the normalised score (`threshold` is then 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Model alerts only: the sensors that contribute most, largest first, with their
    /// share of the score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributions: Vec<Contribution>,
}

/// One sensor's share of a model alert's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub sensor: String,
    pub share: f64,
}

impl AlertMessage {
    pub fn new(agent: &str, seq: u64, e: &AlertEvent) -> Self {
        AlertMessage {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            agent: agent.to_string(),
            asset: e.asset.clone(),
            rule: e.rule.clone(),
            state: e.state,
            severity: e.severity.as_str().to_string(),
            sensor: e.sensor.clone(),
            value: e.value,
            threshold: e.threshold,
            ts: rfc3339_ms(e.ts_ms),
            first_seen: rfc3339_ms(e.first_seen_ms),
            score: e.score,
            contributions: e
                .contributions
                .iter()
                .map(|(sensor, share)| Contribution {
                    sensor: sensor.clone(),
                    share: *share,
                })
                .collect(),
        }
    }
}
