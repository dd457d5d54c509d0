//! Maintenance windows: the `maintenance` labels of every asset, as a calendar the agent
//! asks "which assets are under maintenance now?". A window may be set ahead of time (a
//! planned stop); it takes effect when the clock reaches its start and ends at its
//! (exclusive) end.
//!
//! The calendar only says which assets have a window covering now; the lifecycle
//! ([`super::lifecycle::Lifecycle::set_maintenance`]) extends that to their descendants
//! in the asset tree and suppresses their alarms. [`Maintenance::update`] reports the
//! assets whose window began or ended since the last call, so each start and end is
//! logged once however often the clock ticks.

use std::collections::BTreeSet;

use crate::base::label::{Label, LabelKind};

/// The assets whose window began and ended at an update.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub began: Vec<String>,
    pub ended: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.began.is_empty() && self.ended.is_empty()
    }
}

/// The maintenance windows and the assets under maintenance at the last update.
#[derive(Debug, Default)]
pub struct Maintenance {
    /// (asset, from, to) of every maintenance label.
    windows: Vec<(String, i64, i64)>,
    active: BTreeSet<String>,
}

impl Maintenance {
    /// Takes the windows of `labels` (of any kind; only maintenance counts), replacing
    /// the earlier ones. Which assets are active changes only at the next update.
    pub fn set_labels(&mut self, labels: &[Label]) {
        self.windows = labels
            .iter()
            .filter(|l| l.span.kind == LabelKind::Maintenance)
            .map(|l| (l.span.asset.clone(), l.span.from_ms, l.span.to_ms))
            .collect();
    }

    /// Recomputes the assets under maintenance at `now_ms`; returns what changed.
    pub fn update(&mut self, now_ms: i64) -> Changes {
        let now: BTreeSet<String> = self
            .windows
            .iter()
            .filter(|(_, from, to)| (*from..*to).contains(&now_ms))
            .map(|(asset, _, _)| asset.clone())
            .collect();
        let changes = Changes {
            began: now.difference(&self.active).cloned().collect(),
            ended: self.active.difference(&now).cloned().collect(),
        };
        self.active = now;
        changes
    }

    /// Assets whose own window covered the time of the last update.
    pub fn active(&self) -> &BTreeSet<String> {
        &self.active
    }

    /// The number of maintenance windows known (past, present and future).
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(asset: &str, from: i64, to: i64, kind: LabelKind) -> Label {
        Label::for_test(1, asset, from, to, kind)
    }

    #[test]
    fn a_window_set_ahead_begins_and_ends_once_and_other_kinds_do_not_count() {
        let mut m = Maintenance::default();
        m.set_labels(&[
            label("pump1", 100, 200, LabelKind::Maintenance),
            label("pump2", 0, 1000, LabelKind::FalseAlarm),
        ]);
        assert!(m.update(50).is_empty(), "not yet");
        assert_eq!(m.update(100).began, vec!["pump1".to_string()]);
        assert!(m.update(150).is_empty(), "logged once per start");
        assert!(m.active().contains("pump1"));
        let c = m.update(200);
        assert_eq!((c.began.len(), c.ended), (0, vec!["pump1".to_string()]));
        assert!(m.active().is_empty());
    }

    #[test]
    fn a_removed_window_ends_at_the_next_update() {
        let mut m = Maintenance::default();
        m.set_labels(&[label("pump1", 0, 1000, LabelKind::Maintenance)]);
        m.update(10);
        m.set_labels(&[]);
        assert_eq!(m.update(11).ended, vec!["pump1".to_string()]);
        assert!(m.is_empty());
    }
}
