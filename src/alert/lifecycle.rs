//! The alert lifecycle: one state machine per alarm (an asset's rule or model) that turns
//! observations into notifications, so that one incident is one `raised` and one
//! `cleared` message, never a flood.
//!
//! ```text
//!  normal ──alarm──> pending ──alarm for min_duration──> firing ──normal──> resolving
//!    ^                  │ anything else                   │  ^ alarm/hold      │ normal for clear_after
//!    └──────────────────┘                                 └──┘ (renotify)      └──> cleared, back to normal
//! ```
//!
//! Hysteresis is the detector's `Hold` level, which changes nothing. Times are sample
//! times, so a replay behaves like the live run. While an incident is open a `renotify`
//! goes out every `renotify` interval, checked at each observation and on the agent's
//! clock ([`Lifecycle::tick`]), so a sensor that went quiet does not hold it back.
//!
//! **Folding.** When an alarm starts firing while an ancestor asset (following `parent`)
//! has an open incident, it is folded into that incident instead of raising its own: the
//! incident's root sends `updated` with the alarm in `children`, and the child's own
//! clear sends nothing. When the root clears while children are still firing, each of
//! them becomes an incident of its own (`raised`, with its own `first_seen`), or is folded
//! into the next open ancestor.
//!
//! **Durability.** Every record this machine changes is marked dirty; the caller writes the
//! dirty records in the same transaction as the messages they caused (`Outbox::commit`),
//! so after a crash the state and the outbox agree: a restart neither re-raises an open
//! alert nor forgets it. Changes that send nothing (pending, last seen) are written at the
//! next store flush; losing one only restarts a pending timer.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::event::{AlertEvent, AlertState, ChildState, FoldedChild};
use crate::config::Asset;
use crate::detect::{AlarmDef, AlarmId, Level, Observation};

/// Where an alarm is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Normal,
    /// In alarm, for less than `min_duration` so far.
    Pending,
    /// Raised (or folded into an ancestor's incident).
    Firing,
    /// Back to normal, for less than `clear_after` so far.
    Resolving,
}

impl Phase {
    fn is_open(self) -> bool {
        matches!(self, Phase::Firing | Phase::Resolving)
    }
}

/// A child alarm folded into an incident, with what its parent's messages show of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChildRef {
    key: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    sensor: String,
    value: f64,
    cleared: bool,
}

/// The persisted state of one alarm.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Record {
    phase: Phase,
    /// Pending: when the condition began. Resolving: when the value came back.
    since_ms: i64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_notify_ms: i64,
    /// Key of the incident root this alarm is folded into.
    folded_into: Option<String>,
    /// Alarms folded into this incident (only on roots).
    children: Vec<ChildRef>,
    /// The latest observation, for messages that another alarm causes.
    last: Option<Observation>,
}

/// The storage key of an alarm's record.
pub fn state_key(asset: &str, rule: &str) -> String {
    format!("{asset}\u{1f}{rule}")
}

/// One stored alarm record as a reader sees it (the web pages): read-only, decoded from
/// what [`Lifecycle::take_dirty`] wrote, so the pages need no access to the lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlarm {
    pub asset: String,
    pub rule: String,
    pub phase: Phase,
    /// Pending: when the condition began. Resolving: when the value came back.
    pub since_ms: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub last_notify_ms: i64,
    /// `asset/rule` of the incident this alarm is folded into.
    pub folded_into: Option<String>,
    /// `asset/rule` of the alarms folded into this incident, and whether each cleared.
    pub children: Vec<(String, bool)>,
    pub last: Option<Observation>,
}

impl StoredAlarm {
    /// Raised (or folded into another incident) and not cleared yet.
    pub fn is_open(&self) -> bool {
        self.phase.is_open()
    }
}

/// Decodes stored records (`Outbox::load_states`); a record that does not decode is left
/// out, as [`Lifecycle::restore`] would start that alarm from normal.
pub fn stored_alarms(stored: Vec<crate::alert::outbox::StateRecord>) -> Vec<StoredAlarm> {
    let shown = |k: &str| k.replace('\u{1f}', "/");
    stored
        .into_iter()
        .filter_map(|(k, v)| {
            let key = String::from_utf8_lossy(&k).into_owned();
            let (asset, rule) = key.split_once('\u{1f}')?;
            let r = serde_json::from_slice::<Record>(&v).ok()?;
            Some(StoredAlarm {
                asset: asset.to_string(),
                rule: rule.to_string(),
                phase: r.phase,
                since_ms: r.since_ms,
                first_seen_ms: r.first_seen_ms,
                last_seen_ms: r.last_seen_ms,
                last_notify_ms: r.last_notify_ms,
                folded_into: r.folded_into.as_deref().map(shown),
                children: r.children.iter().map(|c| (shown(&c.key), c.cleared)).collect(),
                last: r.last,
            })
        })
        .collect()
}

/// Records read back at start-up, and what was made of them.
#[derive(Debug, Default, PartialEq)]
pub struct Restored {
    /// Alarms with an open incident (raised or folded).
    pub open: usize,
    /// Keys of records whose alarm is no longer configured (they are deleted).
    pub dropped: Vec<String>,
}

/// All alarms of the agent and their states.
#[derive(Debug, Default)]
pub struct Lifecycle {
    defs: Vec<AlarmDef>,
    keys: Vec<String>,
    index: HashMap<String, AlarmId>,
    records: Vec<Record>,
    by_asset: HashMap<String, Vec<AlarmId>>,
    parents: HashMap<String, String>,
    dirty: BTreeSet<AlarmId>,
    deleted: Vec<String>,
    /// Per alarm: its asset or an ancestor is under maintenance.
    suppressed: Vec<bool>,
    /// Observations in alarm ignored under maintenance, since the last take.
    suppressed_alarms: u64,
}

/// Bound on walks up the asset tree (validation rejects cycles; this guards the rest).
const MAX_DEPTH: usize = 64;

impl Lifecycle {
    /// A lifecycle over the asset tree given as child id → parent id.
    pub fn new(parents: HashMap<String, String>) -> Self {
        Lifecycle {
            parents,
            ..Lifecycle::default()
        }
    }

    /// A lifecycle over the assets' tree (`[[asset]] parent`).
    pub fn for_assets(assets: &[Asset]) -> Self {
        Lifecycle::new(
            assets
                .iter()
                .filter_map(|a| a.parent.clone().map(|p| (a.id.clone(), p)))
                .collect(),
        )
    }

    /// Enrols an alarm; call for every alarm before [`Lifecycle::restore`].
    pub fn register(&mut self, def: AlarmDef) -> AlarmId {
        let key = state_key(&def.asset, &def.rule);
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = self.defs.len();
        self.by_asset.entry(def.asset.clone()).or_default().push(id);
        self.index.insert(key.clone(), id);
        self.keys.push(key);
        self.defs.push(def);
        self.records.push(Record::default());
        self.suppressed.push(false);
        id
    }

    /// Suppresses the alarms of the assets in `under` and of their descendants (and
    /// lifts it from the others). A suppressed alarm ignores its observations and sends
    /// no re-notification: an incident open when maintenance began stays open, silently,
    /// and goes on (or clears) by what is observed after it; a pending one starts over.
    pub fn set_maintenance(&mut self, under: &BTreeSet<String>) {
        for id in 0..self.defs.len() {
            let now = self.asset_path(&self.defs[id].asset).iter().any(|a| under.contains(a));
            if now && !self.suppressed[id] && self.records[id].phase == Phase::Pending {
                self.records[id].phase = Phase::Normal;
                self.records[id].last = None;
                self.dirty.insert(id);
            }
            self.suppressed[id] = now;
        }
    }

    /// Observations in alarm ignored under maintenance since the last call.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed_alarms)
    }

    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Alarms whose incident is open (raised or folded into another).
    pub fn open_count(&self) -> usize {
        self.records.iter().filter(|r| r.phase.is_open()).count()
    }

    /// Takes back the records stored by an earlier run.
    pub fn restore(&mut self, stored: Vec<crate::alert::outbox::StateRecord>) -> Restored {
        let mut report = Restored::default();
        for (k, v) in stored {
            let key = String::from_utf8_lossy(&k).into_owned();
            let record = serde_json::from_slice::<Record>(&v);
            match (self.index.get(&key), record) {
                (Some(&id), Ok(record)) => {
                    report.open += usize::from(record.phase.is_open());
                    self.records[id] = record;
                }
                (Some(_), Err(e)) => {
                    tracing::warn!(alarm = %key.replace('\u{1f}', "/"), error = %e, "unreadable alert state; the alarm starts from normal");
                    self.deleted.push(key);
                }
                (None, _) => {
                    report.dropped.push(key.clone());
                    self.deleted.push(key);
                }
            }
        }
        // A child whose incident root is gone stands on its own.
        for id in 0..self.records.len() {
            let root_gone = self.records[id]
                .folded_into
                .as_ref()
                .is_some_and(|k| self.index.get(k).is_none_or(|&r| !self.records[r].phase.is_open()));
            if root_gone {
                self.records[id].folded_into = None;
                self.dirty.insert(id);
            }
        }
        report
    }

    /// Feeds one observation of alarm `id`; pushes the notifications it causes to `out`.
    pub fn observe(&mut self, id: AlarmId, obs: Observation, out: &mut Vec<AlertEvent>) {
        let Some(def) = self.defs.get(id) else { return };
        if self.suppressed[id] {
            self.suppressed_alarms += u64::from(obs.level == Level::Alarm);
            return;
        }
        let policy = def.policy;
        let rec = &mut self.records[id];
        let ts = obs.ts_ms;
        match (rec.phase, obs.level) {
            (Phase::Normal, Level::Alarm) if policy.min_duration_ms <= 0 => self.fire(id, ts, obs, out),
            (Phase::Normal, Level::Alarm) => {
                rec.phase = Phase::Pending;
                rec.since_ms = ts;
                rec.last = Some(obs);
                self.dirty.insert(id);
            }
            (Phase::Normal, _) => {}
            (Phase::Pending, Level::Alarm) => {
                if ts - rec.since_ms >= policy.min_duration_ms {
                    let first = rec.since_ms;
                    self.fire(id, first, obs, out);
                } else {
                    rec.last = Some(obs);
                }
            }
            (Phase::Pending, _) => {
                rec.phase = Phase::Normal;
                rec.last = None;
                self.dirty.insert(id);
            }
            (Phase::Firing | Phase::Resolving, Level::Alarm | Level::Hold) => {
                if obs.level == Level::Alarm {
                    rec.last_seen_ms = ts;
                }
                rec.phase = Phase::Firing;
                rec.last = Some(obs);
                self.dirty.insert(id);
                self.maybe_renotify(id, ts, out);
            }
            (Phase::Firing, Level::Normal) if policy.clear_after_ms > 0 => {
                rec.phase = Phase::Resolving;
                rec.since_ms = ts;
                rec.last = Some(obs);
                self.dirty.insert(id);
            }
            (Phase::Resolving, Level::Normal) if ts - rec.since_ms < policy.clear_after_ms => {
                rec.last = Some(obs);
            }
            (Phase::Firing | Phase::Resolving, Level::Normal) => self.clear(id, obs, out),
        }
    }

    /// Records changed since the last call, as (key, value) writes; `None` deletes.
    pub fn take_dirty(&mut self) -> Vec<crate::alert::outbox::StateWrite> {
        let mut writes: Vec<crate::alert::outbox::StateWrite> =
            self.deleted.drain(..).map(|k| (k.into_bytes(), None)).collect();
        for id in std::mem::take(&mut self.dirty) {
            let rec = &self.records[id];
            let value = if rec.phase == Phase::Normal && rec.children.is_empty() {
                None
            } else {
                serde_json::to_vec(rec).ok()
            };
            writes.push((self.keys[id].clone().into_bytes(), value));
        }
        writes
    }

    /// Ids from the root of the asset tree down to `asset`.
    pub fn asset_path(&self, asset: &str) -> Vec<String> {
        let mut path = vec![asset.to_string()];
        let mut at = asset;
        while let Some(p) = self.parents.get(at) {
            if path.len() > MAX_DEPTH || path.iter().any(|x| x == p) {
                break;
            }
            path.push(p.clone());
            at = p;
        }
        path.reverse();
        path
    }

    fn fire(&mut self, id: AlarmId, first_seen_ms: i64, obs: Observation, out: &mut Vec<AlertEvent>) {
        let ts = obs.ts_ms;
        let rec = &mut self.records[id];
        rec.phase = Phase::Firing;
        rec.first_seen_ms = first_seen_ms;
        rec.last_seen_ms = ts;
        rec.last_notify_ms = ts;
        rec.children.clear();
        rec.last = Some(obs);
        self.dirty.insert(id);
        self.attach(id, ts, out);
    }

    /// Announces a newly open alarm: folded into the nearest ancestor's open incident, or
    /// raised as an incident of its own.
    fn attach(&mut self, id: AlarmId, ts: i64, out: &mut Vec<AlertEvent>) {
        let Some(root) = self.incident_above(&self.defs[id].asset) else {
            self.records[id].folded_into = None;
            self.records[id].last_notify_ms = ts;
            out.push(self.event(id, AlertState::Raised, ts));
            return;
        };
        let key = self.keys[id].clone();
        let (first_seen_ms, last_seen_ms, sensor, value) = {
            let rec = &self.records[id];
            let (sensor, value) = rec
                .last
                .as_ref()
                .map_or((String::new(), f64::NAN), |o| (o.sensor.clone(), o.value));
            (rec.first_seen_ms, rec.last_seen_ms, sensor, value)
        };
        self.records[id].folded_into = Some(self.keys[root].clone());
        let r = &mut self.records[root];
        let child = ChildRef {
            key: key.clone(),
            first_seen_ms,
            last_seen_ms,
            sensor,
            value,
            cleared: false,
        };
        match r.children.iter_mut().find(|c| c.key == key) {
            Some(c) => *c = child,
            None => r.children.push(child),
        }
        r.last_notify_ms = ts;
        self.dirty.insert(root);
        out.push(self.event(root, AlertState::Updated, ts));
    }

    fn clear(&mut self, id: AlarmId, obs: Observation, out: &mut Vec<AlertEvent>) {
        let ts = obs.ts_ms;
        let rec = &mut self.records[id];
        rec.phase = Phase::Normal;
        rec.last = Some(obs);
        self.dirty.insert(id);
        if let Some(root_key) = rec.folded_into.take() {
            // A folded child ends quietly; its parent's messages show it as cleared.
            let (key, last_seen_ms) = (self.keys[id].clone(), rec.last_seen_ms);
            let (sensor, value) = rec
                .last
                .as_ref()
                .map_or((String::new(), f64::NAN), |o| (o.sensor.clone(), o.value));
            if let Some(&root) = self.index.get(&root_key) {
                if let Some(c) = self.records[root].children.iter_mut().find(|c| c.key == key) {
                    c.cleared = true;
                    c.last_seen_ms = last_seen_ms;
                    c.sensor = sensor;
                    c.value = value;
                }
                self.dirty.insert(root);
            }
            return;
        }
        out.push(self.event(id, AlertState::Cleared, ts));
        let children = std::mem::take(&mut self.records[id].children);
        let own_key = self.keys[id].clone();
        for c in children.into_iter().filter(|c| !c.cleared) {
            let Some(&child) = self.index.get(&c.key) else { continue };
            let still_ours =
                self.records[child].phase.is_open() && self.records[child].folded_into.as_ref() == Some(&own_key);
            if still_ours {
                self.records[child].folded_into = None;
                self.dirty.insert(child);
                self.attach(child, ts, out);
            }
        }
    }

    /// Sends the re-notifications that are due at `now_ms` (the agent's clock), so an
    /// open incident is re-notified even while its sensor sends nothing.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<AlertEvent>) {
        for id in 0..self.records.len() {
            self.maybe_renotify(id, now_ms, out);
        }
    }

    fn maybe_renotify(&mut self, id: AlarmId, ts: i64, out: &mut Vec<AlertEvent>) {
        let rec = &self.records[id];
        let Some(every) = self.defs[id].policy.renotify_ms.filter(|_| !self.suppressed[id]) else {
            return;
        };
        if rec.phase == Phase::Firing && rec.folded_into.is_none() && ts - rec.last_notify_ms >= every {
            self.records[id].last_notify_ms = ts;
            out.push(self.event(id, AlertState::Renotify, ts));
        }
    }

    /// The open incident (its root alarm) of the nearest ancestor of `asset` that has one.
    fn incident_above(&self, asset: &str) -> Option<AlarmId> {
        let mut at = self.parents.get(asset);
        for _ in 0..MAX_DEPTH {
            let parent = at?;
            let open = self
                .by_asset
                .get(parent)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| self.records[i].phase.is_open())
                .min_by_key(|&i| (self.records[i].first_seen_ms, i));
            if let Some(alarm) = open {
                return Some(self.root_of(alarm));
            }
            at = self.parents.get(parent);
        }
        None
    }

    fn root_of(&self, mut id: AlarmId) -> AlarmId {
        for _ in 0..MAX_DEPTH {
            match self.records[id].folded_into.as_ref().and_then(|k| self.index.get(k)) {
                Some(&up) => id = up,
                None => break,
            }
        }
        id
    }

    fn event(&self, id: AlarmId, state: AlertState, ts_ms: i64) -> AlertEvent {
        let def = &self.defs[id];
        let rec = &self.records[id];
        let last = rec.last.clone().unwrap_or(Observation {
            ts_ms,
            level: Level::Hold,
            sensor: String::new(),
            value: f64::NAN,
            threshold: f64::NAN,
            clear_threshold: f64::NAN,
            score: None,
            sensors: Vec::new(),
            model_version: None,
        });
        let children = rec
            .children
            .iter()
            .filter_map(|c| {
                let &child = self.index.get(&c.key)?;
                let d = &self.defs[child];
                let live = (!c.cleared).then(|| &self.records[child]);
                let (sensor, value, last_seen_ms) = match live.and_then(|r| r.last.as_ref().map(|o| (o, r))) {
                    Some((o, r)) => (o.sensor.clone(), o.value, r.last_seen_ms),
                    None => (c.sensor.clone(), c.value, c.last_seen_ms),
                };
                Some(FoldedChild {
                    asset: d.asset.clone(),
                    rule: d.rule.clone(),
                    severity: d.severity,
                    sensor,
                    value,
                    state: if c.cleared {
                        ChildState::Cleared
                    } else {
                        ChildState::Firing
                    },
                    first_seen_ms: c.first_seen_ms,
                    last_seen_ms,
                })
            })
            .collect();
        AlertEvent {
            asset: def.asset.clone(),
            rule: def.rule.clone(),
            state,
            severity: def.severity,
            sensor: last.sensor,
            value: last.value,
            threshold: if state == AlertState::Cleared {
                last.clear_threshold
            } else {
                last.threshold
            },
            ts_ms,
            first_seen_ms: rec.first_seen_ms,
            last_seen_ms: rec.last_seen_ms,
            asset_path: self.asset_path(&def.asset),
            score: last.score,
            sensors: last.sensors,
            children,
            model_version: last.model_version,
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
