//! Unit tests of the lifecycle state machine: timing, hysteresis, re-notification,
//! folding into a parent's incident, and records that survive a restart.

use super::*;
use crate::config::Severity;
use crate::detect::Policy;

fn def(asset: &str, rule: &str, policy: Policy) -> AlarmDef {
    AlarmDef {
        asset: asset.into(),
        rule: rule.into(),
        severity: Severity::Warning,
        policy,
    }
}

fn obs(ts_ms: i64, value: f64) -> Observation {
    // A high limit at 80 clearing below 75.
    let level = if value > 80.0 {
        Level::Alarm
    } else if value < 75.0 {
        Level::Normal
    } else {
        Level::Hold
    };
    Observation {
        ts_ms,
        level,
        sensor: "temp".into(),
        value,
        threshold: 80.0,
        clear_threshold: 75.0,
        score: None,
        sensors: Vec::new(),
        model_version: None,
    }
}

/// Feeds (ts, value) pairs to one alarm; returns (state, ts) of every notification.
fn feed(l: &mut Lifecycle, id: AlarmId, samples: &[(i64, f64)]) -> Vec<(AlertState, i64)> {
    let mut out = Vec::new();
    for &(ts, v) in samples {
        l.observe(id, obs(ts, v), &mut out);
    }
    out.iter().map(|e| (e.state, e.ts_ms)).collect()
}

fn tree(pairs: &[(&str, &str)]) -> Lifecycle {
    Lifecycle::new(pairs.iter().map(|(c, p)| (c.to_string(), p.to_string())).collect())
}

#[test]
fn one_raise_one_clear_despite_hovering() {
    let mut l = Lifecycle::default();
    let id = l.register(def("a", "r", Policy::default()));
    let got = feed(
        &mut l,
        id,
        &[
            (0, 70.0),
            (1, 81.0),
            (2, 79.0),
            (3, 82.0),
            (4, 90.0),
            (5, 76.0),
            (6, 81.0),
            (7, 74.0),
            (8, 80.5),
            (9, 70.0),
        ],
    );
    use AlertState::*;
    assert_eq!(got, vec![(Raised, 1), (Cleared, 7), (Raised, 8), (Cleared, 9)]);
}

#[test]
fn min_duration_ignores_short_excursions_and_dates_the_incident_from_its_start() {
    let mut l = Lifecycle::default();
    let policy = Policy {
        min_duration_ms: 3_000,
        ..Policy::default()
    };
    let id = l.register(def("a", "r", policy));
    // 2 s above the limit, then back into the band: nothing.
    assert!(feed(&mut l, id, &[(0, 85.0), (1_000, 85.0), (2_000, 85.0), (2_500, 78.0)]).is_empty());
    // A dip into the band restarts the clock.
    assert!(feed(
        &mut l,
        id,
        &[
            (10_000, 85.0),
            (12_000, 85.0),
            (12_500, 79.0),
            (13_000, 85.0),
            (15_000, 85.0)
        ]
    )
    .is_empty());
    let mut out = Vec::new();
    l.observe(id, obs(16_000, 86.0), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].state, out[0].first_seen_ms, out[0].ts_ms),
        (AlertState::Raised, 13_000, 16_000)
    );
}

#[test]
fn clear_after_needs_the_value_back_for_that_long() {
    let mut l = Lifecycle::default();
    let policy = Policy {
        clear_after_ms: 5_000,
        ..Policy::default()
    };
    let id = l.register(def("a", "r", policy));
    use AlertState::*;
    let got = feed(
        &mut l,
        id,
        &[
            (0, 90.0),
            (1_000, 70.0),
            (4_000, 70.0),
            (4_500, 85.0),
            (5_000, 70.0),
            (9_000, 70.0),
            (10_000, 70.0),
        ],
    );
    assert_eq!(got, vec![(Raised, 0), (Cleared, 10_000)]);
}

#[test]
fn renotify_while_the_incident_lasts() {
    let mut l = Lifecycle::default();
    let policy = Policy {
        renotify_ms: Some(10_000),
        ..Policy::default()
    };
    let id = l.register(def("a", "r", policy));
    let samples: Vec<(i64, f64)> = (0..=25).map(|s| (s * 1_000, 85.0)).chain([(26_000, 70.0)]).collect();
    use AlertState::*;
    assert_eq!(
        feed(&mut l, id, &samples),
        vec![(Raised, 0), (Renotify, 10_000), (Renotify, 20_000), (Cleared, 26_000)]
    );
}

#[test]
fn renotify_is_due_by_the_clock_when_the_sensor_is_quiet() {
    let mut l = Lifecycle::default();
    let policy = Policy {
        renotify_ms: Some(10_000),
        ..Policy::default()
    };
    let id = l.register(def("a", "r", policy));
    let quiet = l.register(def("a", "quiet", Policy::default()));
    assert_eq!(feed(&mut l, id, &[(0, 85.0)]), vec![(AlertState::Raised, 0)]);
    let mut out = Vec::new();
    l.tick(9_000, &mut out);
    assert!(out.is_empty());
    // No sample since the raise; the clock alone makes the re-notification due, once.
    l.tick(10_500, &mut out);
    l.tick(11_000, &mut out);
    let got: Vec<(AlertState, i64, AlarmId)> = out
        .iter()
        .map(|e| (e.state, e.ts_ms, if e.rule == "r" { id } else { quiet }))
        .collect();
    assert_eq!(got, vec![(AlertState::Renotify, 10_500, id)]);
}

#[test]
fn child_alarms_fold_into_the_parent_incident() {
    let mut l = tree(&[("line1/pump1", "line1"), ("line1/pump1/motor", "line1/pump1")]);
    let line = l.register(def("line1", "pressure", Policy::default()));
    let pump = l.register(def("line1/pump1", "temp", Policy::default()));
    let motor = l.register(def("line1/pump1/motor", "amps", Policy::default()));
    let mut out = Vec::new();
    l.observe(line, obs(0, 90.0), &mut out);
    l.observe(pump, obs(1, 90.0), &mut out);
    l.observe(motor, obs(2, 91.0), &mut out);
    // The pump clears quietly; its parent's next message shows it as cleared.
    l.observe(pump, obs(3, 70.0), &mut out);
    l.observe(line, obs(4, 70.0), &mut out);
    let summary: Vec<_> = out
        .iter()
        .map(|e| (e.asset.as_str(), e.state, e.children.len()))
        .collect();
    use AlertState::*;
    assert_eq!(
        summary,
        vec![
            ("line1", Raised, 0),
            ("line1", Updated, 1),
            ("line1", Updated, 2),
            ("line1", Cleared, 2),
            // Still hot when the line cleared: now an incident of its own.
            ("line1/pump1/motor", Raised, 0),
        ]
    );
    let cleared = &out[3];
    let states: Vec<_> = cleared.children.iter().map(|c| (c.asset.as_str(), c.state)).collect();
    assert_eq!(
        states,
        vec![
            ("line1/pump1", ChildState::Cleared),
            ("line1/pump1/motor", ChildState::Firing)
        ]
    );
    assert_eq!(out[4].first_seen_ms, 2);
    assert_eq!(out[4].asset_path, vec!["line1", "line1/pump1", "line1/pump1/motor"]);
    out.clear();
    l.observe(motor, obs(5, 70.0), &mut out);
    assert_eq!((out[0].asset.as_str(), out[0].state), ("line1/pump1/motor", Cleared));
}

#[test]
fn a_child_that_fired_first_stays_its_own_incident() {
    let mut l = tree(&[("line1/pump1", "line1")]);
    let line = l.register(def("line1", "pressure", Policy::default()));
    let pump = l.register(def("line1/pump1", "temp", Policy::default()));
    let mut out = Vec::new();
    l.observe(pump, obs(0, 90.0), &mut out);
    l.observe(line, obs(1, 90.0), &mut out);
    l.observe(pump, obs(2, 70.0), &mut out);
    let summary: Vec<_> = out.iter().map(|e| (e.asset.as_str(), e.state)).collect();
    use AlertState::*;
    assert_eq!(
        summary,
        vec![("line1/pump1", Raised), ("line1", Raised), ("line1/pump1", Cleared)]
    );
}

#[test]
fn restored_state_neither_re_raises_nor_forgets() {
    let policy = Policy {
        renotify_ms: Some(60_000),
        ..Policy::default()
    };
    let mut l = tree(&[("p", "root")]);
    let root = l.register(def("root", "r", policy));
    let child = l.register(def("p", "c", policy));
    let mut out = Vec::new();
    l.observe(root, obs(1_000, 90.0), &mut out);
    l.observe(child, obs(2_000, 90.0), &mut out);
    assert_eq!(out.len(), 2);
    let stored: Vec<(Vec<u8>, Vec<u8>)> = l
        .take_dirty()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .chain([(state_key("gone", "x").into_bytes(), b"{}".to_vec())])
        .collect();

    // A new process with the same alarms (registered in another order).
    let mut l = tree(&[("p", "root")]);
    let child = l.register(def("p", "c", policy));
    let root = l.register(def("root", "r", policy));
    let report = l.restore(stored);
    assert_eq!(report.open, 2);
    assert_eq!(report.dropped, vec![state_key("gone", "x")]);
    assert!(l
        .take_dirty()
        .iter()
        .any(|(k, v)| k == state_key("gone", "x").as_bytes() && v.is_none()));
    let mut out = Vec::new();
    l.observe(root, obs(3_000, 91.0), &mut out);
    l.observe(child, obs(3_000, 91.0), &mut out);
    assert!(out.is_empty(), "re-raised after restart: {out:?}");
    // The last notification (the child's `updated`) was at 2 s.
    l.observe(root, obs(61_000, 91.0), &mut out);
    assert!(out.is_empty());
    l.observe(root, obs(62_000, 91.0), &mut out);
    assert_eq!((out[0].state, out[0].first_seen_ms), (AlertState::Renotify, 1_000));
    l.observe(root, obs(63_000, 70.0), &mut out);
    assert_eq!(out[1].state, AlertState::Cleared);
    assert_eq!(out[1].children.len(), 1);
    assert_eq!(out[2].asset, "p");
    assert_eq!(out[2].state, AlertState::Raised);
}

#[test]
fn unreadable_records_start_from_normal() {
    let mut l = Lifecycle::default();
    let id = l.register(def("a", "r", Policy::default()));
    let report = l.restore(vec![(state_key("a", "r").into_bytes(), b"not json".to_vec())]);
    assert_eq!(report.open, 0);
    assert_eq!(feed(&mut l, id, &[(0, 90.0)]), vec![(AlertState::Raised, 0)]);
}

fn under(assets: &[&str]) -> BTreeSet<String> {
    assets.iter().map(|a| a.to_string()).collect()
}

#[test]
fn maintenance_suppresses_an_asset_and_its_children_and_lifts_cleanly() {
    let mut l = tree(&[("line1/pump1", "line1")]);
    let pump = l.register(def("line1/pump1", "r", Policy::default()));
    let other = l.register(def("line2", "r", Policy::default()));
    l.set_maintenance(&under(&["line1"]));
    use AlertState::*;
    assert_eq!(
        feed(&mut l, pump, &[(1, 90.0), (2, 91.0)]),
        vec![],
        "child of an asset under maintenance"
    );
    assert_eq!(l.take_suppressed(), 2);
    assert_eq!(
        feed(&mut l, other, &[(1, 90.0)]),
        vec![(Raised, 1)],
        "another asset raises"
    );
    l.set_maintenance(&under(&[]));
    assert_eq!(
        feed(&mut l, pump, &[(3, 92.0)]),
        vec![(Raised, 3)],
        "an alarm still present raises after"
    );
    assert_eq!(l.take_suppressed(), 0);
}

#[test]
fn an_incident_open_when_maintenance_begins_is_neither_renotified_nor_raised_again() {
    let mut l = Lifecycle::default();
    let policy = Policy {
        renotify_ms: Some(10),
        ..Policy::default()
    };
    let id = l.register(def("a", "r", policy));
    use AlertState::*;
    assert_eq!(feed(&mut l, id, &[(0, 90.0)]), vec![(Raised, 0)]);
    l.set_maintenance(&under(&["a"]));
    let mut out = Vec::new();
    l.tick(100, &mut out);
    assert!(out.is_empty(), "no renotify under maintenance: {out:?}");
    assert_eq!(feed(&mut l, id, &[(50, 95.0), (60, 70.0)]), vec![]);
    l.set_maintenance(&under(&[]));
    assert_eq!(
        feed(&mut l, id, &[(200, 95.0)]),
        vec![(Renotify, 200)],
        "the same incident, not a new raise"
    );
    assert_eq!(feed(&mut l, id, &[(201, 70.0)]), vec![(Cleared, 201)]);
}

#[test]
fn a_pending_alarm_starts_over_after_maintenance() {
    let mut l = Lifecycle::default();
    let policy = Policy {
        min_duration_ms: 100,
        ..Policy::default()
    };
    let id = l.register(def("a", "r", policy));
    assert_eq!(feed(&mut l, id, &[(0, 90.0)]), vec![]);
    l.set_maintenance(&under(&["a"]));
    l.set_maintenance(&under(&[]));
    use AlertState::*;
    assert_eq!(feed(&mut l, id, &[(150, 90.0)]), vec![], "its timer restarted");
    assert_eq!(feed(&mut l, id, &[(250, 90.0)]), vec![(Raised, 250)]);
}
