//! Retention that keeps its promise: `raw_retention` is a minimum, `max_disk` a budget.
//!
//! When the data directory grows past 90 % of the budget, segment files whose every chunk
//! is older than `raw_retention` are evicted, oldest first, until the estimate is back
//! under 80 % — and only those: data younger than the promise is never deleted to make
//! room. A segment file holds an hour of every sensor, so evicting it removes its index
//! entries, syncs, and deletes the file: the space is back as `du` measures it at once
//! (sled would keep the pages of removed values). A file that also holds a chunk younger
//! than the promise waits whole, since removing only its old chunks would free nothing.
//! With an `archive_dir`, each chunk is appended to its archive file and fsynced before
//! it is removed; if archiving fails nothing more is evicted.
//!
//! When the budget is exceeded and nothing old enough is left, the store reports
//! [`Pressure::OverBudget`] (the agent raises a storage alert upstream and keeps writing);
//! the directory is measured again after every eviction, so sled's own files growing past
//! the budget are reported too. Only when the filesystem itself is nearly full
//! ([`Pressure::DiskFull`]) does the agent stop accepting new samples, as a last resort.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rollup::{self, Tier};
use super::segment::SegmentId;
use super::{archive, chunk, ChunkRef, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Policy {
    pub raw_retention: Duration,
    pub max_disk: u64,
    /// Free space on the filesystem below which new samples are refused.
    pub min_free: u64,
    pub archive_dir: Option<PathBuf>,
    /// Aggregates kept after raw data is evicted.
    pub rollups: Vec<Tier>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    Ok,
    /// Over budget with nothing old enough to evict: alert, keep writing.
    OverBudget,
    /// The filesystem is (nearly) full: refuse new samples.
    DiskFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Bytes the data directory occupies (allocated blocks, as `du` counts them).
    pub used: u64,
    /// Free bytes on its filesystem.
    pub free: u64,
    pub evicted_chunks: usize,
    pub evicted_samples: u64,
    /// Newest sample among the evicted chunks.
    pub evicted_until_ms: Option<i64>,
    pub pressure: Pressure,
    /// Old enough to evict but not yet confirmed by a telemetry destination: the one
    /// furthest behind and the time through which it has confirmed.
    pub held_by: Option<(String, i64)>,
}

/// Bytes allocated on disk below `path`, as `du` reports them.
pub fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        total += meta.blocks() * 512;
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    total
}

/// One retention pass over `store`, whose files are in `data_dir`.
pub fn enforce(store: &Store, data_dir: &Path, policy: &Policy, now_ms: i64) -> Result<Report, StoreError> {
    let used = dir_size(data_dir);
    let free = fs2::available_space(data_dir).unwrap_or(u64::MAX);
    let mut report = Report {
        used,
        free,
        evicted_chunks: 0,
        evicted_samples: 0,
        evicted_until_ms: None,
        pressure: Pressure::Ok,
        held_by: None,
    };
    let (high, target) = (policy.max_disk / 10 * 9, policy.max_disk / 10 * 8);
    let mut estimate = used;
    if used > high {
        estimate = evict_old(store, policy, now_ms, target, estimate, &mut report)?;
    }
    let taken = store.cursors()?.late_taken_by_all()?;
    let trimmed = store.late_trim(taken)?;
    if trimmed > 0 {
        tracing::debug!(
            records = trimmed,
            "late journal: records every destination has taken removed"
        );
    }
    if !policy.rollups.is_empty() {
        let expired = rollup::expire(store, &policy.rollups, now_ms)?;
        if expired > 0 {
            tracing::info!(days = expired, "retention: expired rollups past their keep");
        }
    }
    // The budget is a promise about what `du` sees: after an eviction the directory is
    // measured again (sled's own files do not shrink), and while it stays over the
    // budget the storage alert says so.
    if report.evicted_chunks > 0 {
        report.used = dir_size(data_dir);
        estimate = estimate.max(report.used);
    }
    report.pressure = if free < policy.min_free {
        Pressure::DiskFull
    } else if estimate > policy.max_disk {
        Pressure::OverBudget
    } else {
        Pressure::Ok
    };
    Ok(report)
}

/// Chunks evicted together: a whole segment file, or one chunk not yet migrated.
struct Group {
    refs: Vec<(ChunkRef, chunk::Header)>,
    /// What evicting them gives back, as `du` counts it (`None`: a chunk in sled, whose
    /// bytes sled reuses later; counted by its length, as before segment files).
    bytes: Option<u64>,
    newest_ms: i64,
}

/// The groups whose every chunk is older than the promise and confirmed by every
/// telemetry destination that covers its sensor, oldest first. A segment file with one
/// younger or unconfirmed chunk waits: removing only some of its chunks would free
/// nothing on disk. The destination furthest behind among those that hold a group back
/// goes into `held_by`.
fn evictable(
    store: &Store,
    promise_ms: i64,
    protected: &HashMap<crate::base::sample::SensorId, (i64, String)>,
    held_by: &mut Option<(String, i64)>,
) -> Vec<Group> {
    let mut by_segment: HashMap<SegmentId, Vec<(ChunkRef, chunk::Header)>> = HashMap::new();
    let mut groups = Vec::new();
    for (r, h) in store.chunk_headers().filter_map(Result::ok) {
        match r.segment {
            Some(id) => by_segment.entry(id).or_default().push((r, h)),
            None if h.last_ms < promise_ms => groups.push(Group {
                refs: vec![(r, h)],
                bytes: None,
                newest_ms: h.last_ms,
            }),
            None => {}
        }
    }
    for (id, refs) in by_segment {
        let newest_ms = refs.iter().map(|(_, h)| h.last_ms).max().unwrap_or(i64::MAX);
        if newest_ms < promise_ms {
            groups.push(Group {
                refs,
                bytes: Some(store.segment_disk_bytes(id)),
                newest_ms,
            });
        }
    }
    groups.retain(|g| {
        let holder = g
            .refs
            .iter()
            .find_map(|(r, h)| protected.get(&r.sensor).filter(|(through, _)| h.last_ms > *through));
        if let Some((through, dest)) = holder {
            if held_by.as_ref().is_none_or(|(_, t)| through < t) {
                *held_by = Some((dest.clone(), *through));
            }
        }
        holder.is_none()
    });
    groups.sort_by_key(|g| g.newest_ms);
    groups
}

/// Evicts the oldest segment files older than the promise (archived and rolled up first)
/// until the estimate of the directory's size reaches `target`; returns the estimate.
fn evict_old(
    store: &Store,
    policy: &Policy,
    now_ms: i64,
    target: u64,
    mut estimate: u64,
    report: &mut Report,
) -> Result<u64, StoreError> {
    let promise_ms = now_ms - policy.raw_retention.as_millis() as i64;
    let names: HashMap<_, _> = store.sensors()?.into_iter().collect();
    // Data a destination has not confirmed is kept like young data.
    let protected = store.cursors()?.protected()?;
    let mut evict = Vec::new();
    'groups: for group in evictable(store, promise_ms, &protected, &mut report.held_by) {
        if estimate <= target {
            break;
        }
        for (r, h) in &group.refs {
            let Some(bytes) = store.chunk_bytes(r).unwrap_or_else(|e| {
                // Gone or damaged on disk: nothing to archive, and still to be evicted.
                tracing::error!(error = %e, "evicting an unreadable chunk");
                None
            }) else {
                evict.push(*r);
                continue;
            };
            if let Some(dir) = &policy.archive_dir {
                let name = names
                    .get(&r.sensor)
                    .cloned()
                    .unwrap_or_else(|| format!("sensor-{}", r.sensor));
                if let Err(e) = archive::append(dir, &name, &bytes) {
                    tracing::error!(error = %e, "archiving failed; nothing more is evicted until it works");
                    break 'groups;
                }
            }
            if !policy.rollups.is_empty() {
                match chunk::decode(&bytes) {
                    Ok(points) => rollup::absorb(store, &policy.rollups, r.sensor, &points)?,
                    Err(e) => tracing::error!(error = %e, "evicting a corrupt chunk without rollups"),
                }
            }
            if group.bytes.is_none() {
                estimate = estimate.saturating_sub(bytes.len() as u64);
            }
            report.evicted_samples += u64::from(h.count);
            report.evicted_until_ms = Some(report.evicted_until_ms.map_or(h.last_ms, |m: i64| m.max(h.last_ms)));
            evict.push(*r);
        }
        estimate = estimate.saturating_sub(group.bytes.unwrap_or(0));
    }
    if !evict.is_empty() {
        store.remove_chunks(&evict)?;
        // Durable removals first; then the emptied segment files are deleted.
        store.sync()?;
        report.evicted_chunks = evict.len();
        tracing::info!(
            chunks = evict.len(),
            samples = report.evicted_samples,
            until = %report.evicted_until_ms.map(crate::base::time::format_rfc3339_ms).unwrap_or_default(),
            archived = policy.archive_dir.is_some(),
            "retention: evicted data older than the promised {}",
            crate::config::Dur(policy.raw_retention)
        );
    }
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::Point;
    use crate::store::StoreOptions;

    const DAY: i64 = 86_400_000;

    fn fill(store: &Store, sensor: &str, days: std::ops::Range<i64>) {
        let id = store.sensor_id(sensor).unwrap();
        for day in days {
            // Noisy values: a realistic, poorly compressible day.
            let mut pts: Vec<Point> = (0..3600)
                .map(|i| Point {
                    ts_ms: day * DAY + i * 24_000,
                    value: fastrand::f64() * 1000.0,
                    quality: 0,
                })
                .collect();
            store.write_sealed(id, &mut pts).unwrap();
        }
        store.sync().unwrap();
    }

    #[test]
    fn evicts_only_data_older_than_the_promise_and_archives_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let archive_dir = dir.path().join("archive");
        let data = dir.path().join("data");
        let store = Store::open(&data, StoreOptions::default()).unwrap();
        fill(&store, "a", 0..20);
        let now = 20 * DAY;
        let used = dir_size(&data);
        let policy = Policy {
            raw_retention: Duration::from_millis(10 * DAY as u64),
            max_disk: used / 2,
            min_free: 0,
            archive_dir: Some(archive_dir.clone()),
            rollups: vec![Tier {
                every_ms: 3_600_000,
                keep_ms: 365 * DAY,
            }],
        };
        let report = enforce(&store, &data, &policy, now).unwrap();
        assert!(report.evicted_chunks > 0);
        let promise = now - 10 * DAY;
        assert!(report.evicted_until_ms.unwrap() < promise);
        let id = store.lookup_sensor("a").unwrap().unwrap();
        let kept = store.read(id, 0, i64::MAX).unwrap();
        assert!(
            kept.iter().filter(|s| s.ts_ms >= promise).count() == 10 * 3600,
            "young data must stay"
        );
        // The budget cannot be met without breaking the promise: say so.
        assert_eq!(report.pressure, Pressure::OverBudget);

        // Hourly rollups answer for the evicted days.
        let hours = rollup::read(&store, 0, id, 0, promise).unwrap();
        assert_eq!(hours.iter().map(|b| b.count).sum::<u64>(), report.evicted_samples);

        // The archive holds exactly what was evicted; restoring brings it back.
        let restored = archive::restore(&archive_dir, &store).unwrap();
        assert_eq!(
            (restored.chunks, restored.samples),
            (report.evicted_chunks, report.evicted_samples)
        );
        assert_eq!(store.read(id, 0, i64::MAX).unwrap().len(), 20 * 3600);
    }

    /// The budget is what `du` measures: evicting deletes whole segment files, so the
    /// directory is under the budget right after the pass.
    #[test]
    fn eviction_gives_the_space_back_as_du_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        fill(&store, "a", 0..20);
        let used = dir_size(dir.path());
        let policy = Policy {
            raw_retention: Duration::from_millis(DAY as u64),
            max_disk: used / 2,
            min_free: 0,
            archive_dir: None,
            rollups: vec![],
        };
        let report = enforce(&store, dir.path(), &policy, 20 * DAY).unwrap();
        assert!(report.evicted_chunks > 0);
        let on_disk = dir_size(dir.path());
        assert!(
            on_disk <= policy.max_disk,
            "{on_disk} B on disk, budget {} B",
            policy.max_disk
        );
        assert_eq!(report.used, on_disk);
        assert_eq!(report.pressure, Pressure::Ok);
        let files = std::fs::read_dir(dir.path().join("segments")).unwrap().count();
        assert_eq!(files, 20 - report.evicted_chunks);
    }

    /// Data a telemetry destination has not confirmed is kept like young data, and the
    /// report names the destination furthest behind; once it confirms, eviction goes on.
    #[test]
    fn unforwarded_data_is_kept_and_its_destination_named() {
        use crate::store::cursor::SensorCursor;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        fill(&store, "a", 0..20);
        let id = store.sensor_id("a").unwrap();
        let at = |t: i64| SensorCursor {
            low: t,
            gap_to: t,
            high: t,
        };
        let cursors = store.cursors().unwrap();
        cursors.save("fast", &[(id, at(19 * DAY))]).unwrap();
        cursors.save("historian", &[(id, at(2 * DAY))]).unwrap();
        let policy = Policy {
            raw_retention: Duration::from_millis(DAY as u64),
            max_disk: dir_size(dir.path()) / 2,
            min_free: 0,
            archive_dir: None,
            rollups: vec![],
        };
        let report = enforce(&store, dir.path(), &policy, 20 * DAY).unwrap();
        // Only the two days the historian confirmed may go.
        assert_eq!(report.evicted_until_ms.map(|t| t / DAY), Some(1));
        assert_eq!(report.held_by, Some(("historian".to_string(), 2 * DAY)));
        assert_eq!(report.pressure, Pressure::OverBudget);
        assert_eq!(
            store.read(id, 2 * DAY, 3 * DAY - 1).unwrap().len(),
            3600,
            "unconfirmed day kept"
        );
        cursors.save("historian", &[(id, at(19 * DAY))]).unwrap();
        let report = enforce(&store, dir.path(), &policy, 20 * DAY).unwrap();
        assert_eq!(report.held_by, None);
        assert_eq!(report.pressure, Pressure::Ok);
    }

    /// A segment file that also holds a chunk younger than the promise is kept whole.
    #[test]
    fn a_segment_with_one_young_chunk_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let (a, b) = (store.sensor_id("a").unwrap(), store.sensor_id("b").unwrap());
        let points = |from: i64, step: i64| -> Vec<Point> {
            (0..3600)
                .map(|i| Point {
                    ts_ms: from + i * step,
                    value: fastrand::f64(),
                    quality: 0,
                })
                .collect()
        };
        // Both start in hour 0; `b` runs on for days, past the promise.
        store.write_sealed(a, &mut points(0, 1000)).unwrap();
        store.write_sealed(b, &mut points(0, 100_000)).unwrap();
        store.sync().unwrap();
        let policy = Policy {
            raw_retention: Duration::from_millis(DAY as u64),
            max_disk: 1,
            min_free: 0,
            archive_dir: None,
            rollups: vec![],
        };
        let report = enforce(&store, dir.path(), &policy, 4 * DAY).unwrap();
        assert_eq!((report.evicted_chunks, report.pressure), (0, Pressure::OverBudget));
        assert_eq!(store.read(a, 0, i64::MAX).unwrap().len(), 3600);
    }

    #[test]
    fn nothing_is_evicted_under_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        fill(&store, "a", 0..3);
        let policy = Policy {
            raw_retention: Duration::from_secs(60),
            max_disk: 1 << 40,
            min_free: 0,
            archive_dir: None,
            rollups: vec![],
        };
        let report = enforce(&store, dir.path(), &policy, 100 * DAY).unwrap();
        assert_eq!((report.evicted_chunks, report.pressure), (0, Pressure::Ok));
    }
}
