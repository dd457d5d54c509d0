//! The `labelled` and `unlabelled` events: what an operator said about a span of an
//! asset's history ([`crate::base::label`]), published on the alert topic of that asset,
//! through the same durable outbox as the alerts, so a consumer upstream learns of a
//! false alarm, a confirmed failure or a planned stop in the same stream, in order.
//!
//! Like an alert message, an event has a unique `id` (a UUID, for de-duplicating
//! redeliveries) and the next `seq`; the label's own id is `label_id`, as an alert's
//! `id` already means the message. A consumer tells the kinds apart by `event` (alert
//! messages have `state` and no `event`).
//!
//! **Every label is announced once.** The outbox keeps the highest label id announced
//! (the *mark*) in the same transaction as the events, so a label stored while the agent
//! was stopped (`forewarn label` on the store) or just before a crash is announced at the
//! next start, and none twice. A removal is announced when it is made; one made on a
//! stopped store is not (it is the undoing of a mistake, and the label is gone).

use serde::{Deserialize, Serialize};

use super::message::SCHEMA_VERSION;
use crate::base::label::{Label, LabelKind};
use crate::base::sample::rfc3339_ms;

/// What the HTTP API tells the pipeline after it changed the labels.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelChange {
    /// A label was stored (announced by the mark, with any others not yet announced).
    Added(Label),
    /// A label was removed; announced as `unlabelled`.
    Removed(Label),
}

/// Whether an event adds or takes back a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelEvent {
    Labelled,
    Unlabelled,
}

/// A label to announce, with what the agent knows around it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelNotice {
    pub label: Label,
    pub event: LabelEvent,
    /// Ids from the root of the asset tree down to the label's asset.
    pub asset_path: Vec<String>,
    /// The version of the asset's model loaded when the label was announced (the model
    /// whose alarms a `false-alarm` label judges); `None` without a model.
    pub model_version: Option<u64>,
    /// When it is announced, ms since the epoch.
    pub ts_ms: i64,
}

/// The JSON object published for a label. Field names are part of the upstream contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMessage {
    pub schema: u32,
    pub event: LabelEvent,
    /// Unique id of this message; consumers de-duplicate redeliveries by it.
    pub id: String,
    pub seq: u64,
    pub agent: String,
    pub asset: String,
    pub asset_path: Vec<String>,
    /// The kind: `false-alarm`, `failure` or `maintenance`.
    pub label: LabelKind,
    /// The label's id in the agent's store (what `DELETE /api/labels/{id}` takes).
    pub label_id: u64,
    /// The span, RFC 3339 UTC; `to` is exclusive and may lie in the future.
    pub from: String,
    pub to: String,
    pub note: Option<String>,
    pub author: String,
    /// When the label was made.
    pub created: String,
    pub model_version: Option<u64>,
    /// When this message was written.
    pub ts: String,
}

impl LabelMessage {
    pub fn new(agent: &str, seq: u64, n: &LabelNotice) -> Self {
        let span = &n.label.span;
        let asset_path = if n.asset_path.is_empty() {
            vec![span.asset.clone()]
        } else {
            n.asset_path.clone()
        };
        LabelMessage {
            schema: SCHEMA_VERSION,
            event: n.event,
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            agent: agent.to_string(),
            asset: span.asset.clone(),
            asset_path,
            label: span.kind,
            label_id: n.label.id,
            from: rfc3339_ms(span.from_ms),
            to: rfc3339_ms(span.to_ms),
            note: span.note.clone(),
            author: span.author.clone(),
            created: rfc3339_ms(n.label.created_ms),
            model_version: n.model_version,
            ts: rfc3339_ms(n.ts_ms),
        }
    }
}

/// The labels of `all` not announced yet: ids above `mark`, in id order.
pub fn unannounced(all: &[Label], mark: u64) -> Vec<&Label> {
    let mut out: Vec<&Label> = all.iter().filter(|l| l.id > mark).collect();
    out.sort_by_key(|l| l.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::label::NewLabel;

    pub(crate) fn label(id: u64, kind: LabelKind) -> Label {
        Label {
            id,
            span: NewLabel {
                asset: "line1/pump1".into(),
                from_ms: 1_700_000_000_000,
                to_ms: 1_700_000_060_000,
                kind,
                note: Some("seal replaced".into()),
                author: "anna".into(),
            },
            created_ms: 1_700_000_100_000,
        }
    }

    #[test]
    fn a_label_becomes_an_event_with_its_span_author_and_model() {
        let n = LabelNotice {
            label: label(7, LabelKind::FalseAlarm),
            event: LabelEvent::Labelled,
            asset_path: vec!["line1".into(), "line1/pump1".into()],
            model_version: Some(3),
            ts_ms: 1_700_000_200_000,
        };
        let v = serde_json::to_value(LabelMessage::new("gw", 9, &n)).unwrap();
        assert_eq!(v["event"], "labelled");
        assert_eq!(v["label"], "false-alarm");
        assert_eq!((v["label_id"].as_u64(), v["seq"].as_u64()), (Some(7), Some(9)));
        assert_eq!(v["from"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["to"], "2023-11-14T22:14:20.000Z");
        assert_eq!(
            (v["author"].as_str(), v["note"].as_str()),
            (Some("anna"), Some("seal replaced"))
        );
        assert_eq!(v["model_version"], 3);
        assert_eq!(v["asset_path"], serde_json::json!(["line1", "line1/pump1"]));
        assert_ne!(v["id"], v["label_id"], "the message id is its own");
    }

    #[test]
    fn only_labels_above_the_mark_are_announced_in_id_order() {
        let all = [
            label(5, LabelKind::Failure),
            label(2, LabelKind::Maintenance),
            label(9, LabelKind::FalseAlarm),
        ];
        let ids: Vec<u64> = unannounced(&all, 2).iter().map(|l| l.id).collect();
        assert_eq!(ids, vec![5, 9]);
        assert!(unannounced(&all, 9).is_empty());
    }
}
