//! The late journal: samples that reach the store with a time at or before the newest
//! one already written for their sensor (a device replaying its buffer between live
//! readings, a redelivered message). Readers that walk a sensor's history by time (the
//! telemetry forwarder's cursors) have passed that point already and would never see
//! them; the journal keeps them in arrival order (`late` tree, key: sequence BE) until
//! every such reader has taken them.
//!
//! Kept only while [`Store::keep_late`] is on (the agent turns it on when telemetry
//! destinations are configured). A record is written in the same flush as the WAL record
//! of its samples and before it, so a late sample is never durable without its journal
//! entry (a retried flush may journal it twice: a duplicate, never a loss).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::segment::Stored;
use super::{chunk, wal, State, Store, StoreError};
use crate::base::sample::{Sample, SensorId};

impl Store {
    /// Turns the late journal on or off.
    pub fn keep_late(&self, on: bool) {
        self.inner.keep_late.store(on, Ordering::Relaxed);
    }

    /// The newest time written of `sensor` (flushed), if any: a time-ordered reader may
    /// pass it, and a sample at or before it that arrives later is journaled.
    pub fn newest(&self, sensor: SensorId) -> Result<Option<i64>, StoreError> {
        let mut st = self.state();
        self.newest_in(&mut st, sensor)
    }

    pub(super) fn newest_in(&self, st: &mut State, sensor: SensorId) -> Result<Option<i64>, StoreError> {
        if let Some(ts) = st.newest.get(&sensor) {
            return Ok(Some(*ts));
        }
        let mut newest: Option<i64> = None;
        for item in self.inner.chunks.range(chunk::range_until(sensor, i64::MAX)) {
            let (_, v) = item?;
            if let Ok(h) = Stored::of(&v).and_then(|s| s.header()) {
                newest = Some(newest.map_or(h.last_ms, |n| n.max(h.last_ms)));
            }
        }
        if let Some(u) = st.unsealed.get(&sensor) {
            for p in &u.points {
                newest = Some(newest.map_or(p.ts_ms, |n| n.max(p.ts_ms)));
            }
        }
        if let Some(ts) = newest {
            st.newest.insert(sensor, ts);
        }
        Ok(newest)
    }

    /// Called by the flush with the samples it is about to write: the late ones, and the
    /// newest time of each sensor moved on.
    pub(super) fn take_late(&self, st: &mut State, pending: &[Sample]) -> Result<Vec<Sample>, StoreError> {
        let mut late = Vec::new();
        let mut seen: HashMap<SensorId, i64> = HashMap::new();
        for s in pending {
            let newest = match seen.get(&s.sensor) {
                Some(ts) => Some(*ts),
                None => self.newest_in(st, s.sensor)?,
            };
            if newest.is_some_and(|n| s.ts_ms <= n) {
                late.push(*s);
            }
            let n = newest.map_or(s.ts_ms, |n| n.max(s.ts_ms));
            seen.insert(s.sensor, n);
        }
        st.newest.extend(seen);
        Ok(late)
    }

    /// Journals `late` (when the journal is on) under the next sequence number.
    pub(super) fn journal(&self, late: &[Sample]) -> Result<(), StoreError> {
        if late.is_empty() || !self.inner.keep_late.load(Ordering::Relaxed) {
            return Ok(());
        }
        let seq = match self.inner.late.last()? {
            Some((k, _)) => wal::seq_of(&k).map_or(0, |s| s + 1),
            None => 1,
        };
        self.inner.late.insert(wal::key(seq), wal::encode(late))?;
        Ok(())
    }

    /// Journal records after `seq`, at most `max`, oldest first.
    pub fn late_after(&self, seq: u64, max: usize) -> Result<Vec<(u64, Vec<Sample>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.late.range(wal::key(seq.saturating_add(1))..).take(max) {
            let (k, v) = item?;
            let s = wal::seq_of(&k).ok_or_else(|| StoreError::Corrupt("late journal key".into()))?;
            match wal::decode(&v) {
                Ok(samples) => out.push((s, samples)),
                Err(e) => {
                    tracing::error!(seq = s, error = %e, "skipping a corrupt late-journal record");
                    out.push((s, Vec::new()));
                }
            }
        }
        Ok(out)
    }

    /// Removes journal records up to `seq` (every reader has taken them).
    pub fn late_trim(&self, seq: u64) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in self.inner.late.range(..=wal::key(seq)).keys() {
            batch.remove(k?);
            n += 1;
        }
        self.inner.late.apply_batch(batch)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::base::sample::Sample;
    use crate::store::{Store, StoreOptions};

    #[test]
    fn samples_at_or_before_the_newest_are_journaled_in_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        s.keep_late(true);
        s.append(&[
            Sample::good(1, 100, 1.0),
            Sample::good(1, 200, 2.0),
            Sample::good(2, 50, 1.0),
        ]);
        s.flush().unwrap();
        assert!(s.late_after(0, 10).unwrap().is_empty());
        // 150 and 200 are late for sensor 1; 300 is not; 60 is not late for sensor 2.
        s.append(&[
            Sample::good(1, 150, 1.5),
            Sample::good(1, 300, 3.0),
            Sample::good(1, 200, 2.5),
            Sample::good(2, 60, 1.0),
        ]);
        s.flush().unwrap();
        let late = s.late_after(0, 10).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].1.iter().map(|x| x.ts_ms).collect::<Vec<_>>(), vec![150, 200]);
        assert_eq!(s.newest(1).unwrap(), Some(300));
        drop(s);
        // After a reopen the newest time comes from the store itself.
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        s.keep_late(true);
        assert_eq!(s.newest(1).unwrap(), Some(300));
        s.append(&[Sample::good(1, 250, 0.0)]);
        s.flush().unwrap();
        let late = s.late_after(late[0].0, 10).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(s.late_trim(late[0].0).unwrap(), 2);
        assert!(s.late_after(0, 10).unwrap().is_empty());
    }

    #[test]
    fn nothing_is_journaled_while_the_journal_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        s.append(&[Sample::good(1, 100, 1.0)]);
        s.flush().unwrap();
        s.append(&[Sample::good(1, 50, 1.0)]);
        s.flush().unwrap();
        assert!(s.late_after(0, 10).unwrap().is_empty());
    }
}
