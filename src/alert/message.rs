//! The JSON object published for every alert notification, described for consumers by
//! `schema/alert.schema.json`. Fields are only ever added (with `schema` raised when a
//! consumer must tell versions apart); none is renamed or removed.

use serde::{Deserialize, Serialize};

use super::event::{AlertEvent, AlertState, ChildState};
use crate::base::sample::rfc3339_ms;
use crate::detect::SensorValue;

/// Version of the message layout, the `schema` field.
pub const SCHEMA_VERSION: u32 = 1;

/// One alert message. Field names are part of the upstream contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// Layout version ([`SCHEMA_VERSION`]).
    #[serde(default)]
    pub schema: u32,
    /// Unique id of this message; consumers de-duplicate redeliveries by it.
    pub id: String,
    /// Per-agent sequence number, increasing by one per message, across restarts.
    pub seq: u64,
    pub agent: String,
    pub asset: String,
    /// Asset ids from the root of the asset tree down to `asset`.
    #[serde(default)]
    pub asset_path: Vec<String>,
    pub rule: String,
    pub state: AlertState,
    pub severity: String,
    /// The main sensor and its value.
    pub sensor: String,
    pub value: f64,
    /// Every sensor involved, with its value and its share of the score.
    #[serde(default)]
    pub sensors: Vec<SensorValue>,
    /// A model's anomaly score; `null` for rules.
    #[serde(default)]
    pub score: Option<f64>,
    pub threshold: f64,
    /// When the incident began, RFC 3339 UTC.
    pub first_seen: String,
    /// When its condition was last seen in alarm, RFC 3339 UTC.
    #[serde(default)]
    pub last_seen: String,
    /// Time of the observation this message is about, RFC 3339 UTC.
    pub ts: String,
    /// Alarms of descendant assets folded into this incident.
    #[serde(default)]
    pub children: Vec<ChildMessage>,
    /// The version of the model that raised it (`Model::version`); absent for rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u64>,
}

/// A folded child alarm, as listed in its parent's messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildMessage {
    pub asset: String,
    pub rule: String,
    pub severity: String,
    pub sensor: String,
    pub value: f64,
    pub state: ChildState,
    pub first_seen: String,
    pub last_seen: String,
}

impl AlertMessage {
    pub fn new(agent: &str, seq: u64, e: &AlertEvent) -> Self {
        let sensors = if e.sensors.is_empty() {
            vec![SensorValue {
                name: e.sensor.clone(),
                value: e.value,
                contribution: 1.0,
            }]
        } else {
            e.sensors.clone()
        };
        let asset_path = if e.asset_path.is_empty() {
            vec![e.asset.clone()]
        } else {
            e.asset_path.clone()
        };
        AlertMessage {
            schema: SCHEMA_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            agent: agent.to_string(),
            asset: e.asset.clone(),
            asset_path,
            rule: e.rule.clone(),
            state: e.state,
            severity: e.severity.as_str().to_string(),
            sensor: e.sensor.clone(),
            value: e.value,
            sensors,
            score: e.score,
            threshold: e.threshold,
            first_seen: rfc3339_ms(e.first_seen_ms),
            last_seen: rfc3339_ms(e.last_seen_ms.max(e.first_seen_ms)),
            ts: rfc3339_ms(e.ts_ms),
            children: e
                .children
                .iter()
                .map(|c| ChildMessage {
                    asset: c.asset.clone(),
                    rule: c.rule.clone(),
                    severity: c.severity.as_str().to_string(),
                    sensor: c.sensor.clone(),
                    value: c.value,
                    state: c.state,
                    first_seen: rfc3339_ms(c.first_seen_ms),
                    last_seen: rfc3339_ms(c.last_seen_ms.max(c.first_seen_ms)),
                })
                .collect(),
            model_version: e.model_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::FoldedChild;
    use crate::config::Severity;

    #[test]
    fn a_rule_event_lists_its_sensor_and_path() {
        let e = AlertEvent {
            asset: "line1/pump1".into(),
            rule: "hot".into(),
            severity: Severity::Critical,
            sensor: "t".into(),
            value: 81.5,
            threshold: 80.0,
            ts_ms: 2_000,
            first_seen_ms: 1_000,
            last_seen_ms: 2_000,
            asset_path: vec!["line1".into(), "line1/pump1".into()],
            children: vec![FoldedChild {
                asset: "line1/pump1/motor".into(),
                rule: "amps".into(),
                sensor: "a".into(),
                value: 12.0,
                first_seen_ms: 1_500,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(AlertMessage::new("gw", 7, &e)).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["state"], "raised");
        assert_eq!(
            v["sensors"],
            serde_json::json!([{"name": "t", "value": 81.5, "contribution": 1.0}])
        );
        assert_eq!(v["score"], serde_json::Value::Null);
        assert_eq!(v["asset_path"], serde_json::json!(["line1", "line1/pump1"]));
        assert_eq!(v["first_seen"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["children"][0]["state"], "firing");
        assert_eq!(v["children"][0]["last_seen"], "1970-01-01T00:00:01.500Z");
        assert!(v.get("model_version").is_none(), "a rule's alert names no model");
    }

    #[test]
    fn a_model_event_carries_its_model_version() {
        let e = AlertEvent {
            asset: "pump".into(),
            rule: "model".into(),
            score: Some(3.5),
            model_version: Some(4),
            ..Default::default()
        };
        let v = serde_json::to_value(AlertMessage::new("gw", 1, &e)).unwrap();
        assert_eq!(v["model_version"], 4);
        let back: AlertMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back.model_version, Some(4));
    }

    #[test]
    fn a_message_without_the_new_fields_still_parses() {
        let old = r#"{"id":"x","seq":1,"agent":"gw","asset":"a","rule":"r","state":"raised","severity":"critical","sensor":"s","value":1.0,"threshold":0.5,"ts":"2026-01-01T00:00:00.000Z","first_seen":"2026-01-01T00:00:00.000Z"}"#;
        let m: AlertMessage = serde_json::from_str(old).unwrap();
        assert_eq!((m.schema, m.children.len()), (0, 0));
    }
}
