//! Operator labels: what a person on the plant says about a span of an asset's history.
//! A `false-alarm` span was healthy whatever the model said; a `failure` span was a real
//! fault; a `maintenance` span (possibly set ahead of time, for a planned stop) is neither:
//! its alerts are suppressed and it is never learned from.
//!
//! Labels are plain data here; the store keeps them durably, the agent applies them, and
//! training and evaluation read them. Where spans of different kinds overlap, the
//! strongest wins: maintenance, then failure, then false alarm.

use serde::{Deserialize, Serialize};

/// Longest note kept with a label, in bytes.
pub const MAX_NOTE: usize = 1000;
/// Longest author name, in bytes.
pub const MAX_AUTHOR: usize = 100;

/// What a span was (also `forewarn label --as`, spelt the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LabelKind {
    /// The machine was healthy: alarms here were false; training treats it as healthy.
    FalseAlarm,
    /// The machine was failing: training feeds it to the classifier as failure.
    Failure,
    /// A planned or unplanned stop: alerts suppressed, never learned from.
    Maintenance,
}

impl LabelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelKind::FalseAlarm => "false-alarm",
            LabelKind::Failure => "failure",
            LabelKind::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<LabelKind> {
        match text {
            "false-alarm" => Some(LabelKind::FalseAlarm),
            "failure" => Some(LabelKind::Failure),
            "maintenance" => Some(LabelKind::Maintenance),
            _ => None,
        }
    }

    /// Precedence where spans overlap (higher wins).
    fn rank(self) -> u8 {
        match self {
            LabelKind::FalseAlarm => 0,
            LabelKind::Failure => 1,
            LabelKind::Maintenance => 2,
        }
    }
}

impl std::fmt::Display for LabelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label as asked for, before the store gives it an id and a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLabel {
    pub asset: String,
    /// The span, ms since the epoch, `from_ms < to_ms`; `to_ms` is exclusive.
    pub from_ms: i64,
    pub to_ms: i64,
    pub kind: LabelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who said so: the web user, or the shell user of `forewarn label`.
    pub author: String,
}

/// Why a label is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("the asset is empty")]
    NoAsset,
    #[error("the span is empty: `from` must be before `to`")]
    EmptySpan,
    #[error("the note is {0} bytes; at most {MAX_NOTE}")]
    NoteTooLong(usize),
    #[error("the author is empty or over {MAX_AUTHOR} bytes")]
    BadAuthor,
}

impl NewLabel {
    /// Checks the parts a store would otherwise keep forever.
    pub fn validate(&self) -> Result<(), LabelError> {
        if self.asset.trim().is_empty() {
            return Err(LabelError::NoAsset);
        }
        if self.from_ms >= self.to_ms {
            return Err(LabelError::EmptySpan);
        }
        if let Some(n) = self.note.as_ref().filter(|n| n.len() > MAX_NOTE) {
            return Err(LabelError::NoteTooLong(n.len()));
        }
        if self.author.trim().is_empty() || self.author.len() > MAX_AUTHOR {
            return Err(LabelError::BadAuthor);
        }
        Ok(())
    }
}

/// A stored label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Unique in its store, increasing in the order labels were made.
    pub id: u64,
    #[serde(flatten)]
    pub span: NewLabel,
    /// When it was made, ms since the epoch.
    pub created_ms: i64,
}

impl Label {
    /// A label of `asset` by "op", made at 0, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: u64, asset: &str, from_ms: i64, to_ms: i64, kind: LabelKind) -> Label {
        Label {
            id,
            span: NewLabel {
                asset: asset.into(),
                from_ms,
                to_ms,
                kind,
                note: None,
                author: "op".into(),
            },
            created_ms: 0,
        }
    }

    pub fn covers(&self, ts_ms: i64) -> bool {
        (self.span.from_ms..self.span.to_ms).contains(&ts_ms)
    }

    pub fn overlaps(&self, from_ms: i64, to_ms: i64) -> bool {
        self.span.from_ms < to_ms && from_ms < self.span.to_ms
    }
}

/// The strongest kind among `labels` (of one asset) that covers `ts_ms`.
pub fn kind_at<'a>(labels: impl IntoIterator<Item = &'a Label>, ts_ms: i64) -> Option<LabelKind> {
    labels
        .into_iter()
        .filter(|l| l.covers(ts_ms))
        .map(|l| l.span.kind)
        .max_by_key(|k| k.rank())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(id: u64, from: i64, to: i64, kind: LabelKind) -> Label {
        Label::for_test(id, "pump", from, to, kind)
    }

    #[test]
    fn the_strongest_covering_kind_wins_and_the_end_is_exclusive() {
        let ls = [
            label(1, 0, 100, LabelKind::FalseAlarm),
            label(2, 50, 80, LabelKind::Maintenance),
            label(3, 60, 120, LabelKind::Failure),
        ];
        assert_eq!(kind_at(&ls, 10), Some(LabelKind::FalseAlarm));
        assert_eq!(kind_at(&ls, 70), Some(LabelKind::Maintenance));
        assert_eq!(kind_at(&ls, 90), Some(LabelKind::Failure));
        assert_eq!(kind_at(&ls, 120), None);
    }

    #[test]
    fn kinds_read_and_print_as_on_the_command_line_and_in_json() {
        for k in [LabelKind::FalseAlarm, LabelKind::Failure, LabelKind::Maintenance] {
            assert_eq!(LabelKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(LabelKind::parse("false_alarm"), None);
    }

    #[test]
    fn empty_spans_long_notes_and_missing_authors_are_refused() {
        let ok = label(1, 0, 10, LabelKind::Failure).span;
        assert_eq!(ok.validate(), Ok(()));
        let mut bad = ok.clone();
        bad.to_ms = 0;
        assert_eq!(bad.validate(), Err(LabelError::EmptySpan));
        let mut bad = ok.clone();
        bad.note = Some("x".repeat(MAX_NOTE + 1));
        assert_eq!(bad.validate(), Err(LabelError::NoteTooLong(MAX_NOTE + 1)));
        let mut bad = ok.clone();
        bad.author = " ".into();
        assert_eq!(bad.validate(), Err(LabelError::BadAuthor));
        let mut bad = ok;
        bad.asset = String::new();
        assert_eq!(bad.validate(), Err(LabelError::NoAsset));
    }
}
