//! The disk budget holds as `du` measures it. Hours of many sensors are imported through
//! the bulk path; retention with a small `max_disk` and a one-hour `raw_retention` evicts
//! what lies beyond the promise, and the data directory is under the budget right after
//! the pass (evicted hours are whole segment files, deleted), with the promised hour read
//! back intact. A budget that cannot be met without breaking the promise is reported as
//! over budget, and nothing young is evicted.

use std::path::Path;
use std::time::Duration;

use forewarn::store::retention::{dir_size, enforce, Policy, Pressure};
use forewarn::store::{Point, Store, StoreOptions};

const SENSORS: u32 = 120;
const HOURS: i64 = 8;
const HOUR_MS: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

/// A drifting, noisy reading quantised to 0.01: compresses like a real sensor.
fn hour_of(rng: &mut fastrand::Rng, level: &mut f64, hour: i64) -> Vec<Point> {
    (0..3600)
        .map(|i| {
            *level += rng.f64() - 0.5;
            Point {
                ts_ms: T0 + hour * HOUR_MS + i * 1000,
                value: (*level * 100.0).round() / 100.0,
                quality: 0,
            }
        })
        .collect()
}

fn import(store: &Store) {
    let mut rng = fastrand::Rng::with_seed(20260101);
    let mut levels = vec![20.0; SENSORS as usize];
    for hour in 0..HOURS {
        let mut parts: Vec<(u32, Vec<Point>)> = (0..SENSORS)
            .map(|s| (s, hour_of(&mut rng, &mut levels[s as usize], hour)))
            .collect();
        store.write_sealed_all(parts.iter_mut().map(|(s, p)| (*s, p))).unwrap();
        store.sync().unwrap();
    }
}

fn policy(max_disk: u64) -> Policy {
    Policy {
        raw_retention: Duration::from_secs(3600),
        max_disk,
        min_free: 0,
        archive_dir: None,
        rollups: vec![],
    }
}

fn assert_promised_hour_intact(store: &Store, now: i64) {
    for s in 0..SENSORS {
        let got = store.read(s, now - HOUR_MS, now).unwrap();
        assert_eq!(got.len(), 3600, "sensor {s}: the promised hour must stay whole");
    }
}

fn segment_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("segments")).unwrap().count()
}

#[test]
fn eviction_brings_the_directory_under_the_budget_as_du_measures_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    for s in 0..SENSORS {
        assert_eq!(store.sensor_id(&format!("s{s}")).unwrap(), s);
    }
    import(&store);
    let now = T0 + HOURS * HOUR_MS;
    let before = dir_size(&data);
    assert_eq!(segment_files(&data), HOURS as usize);

    // Room for about three of the eight hours: eviction has to go deep, never into the
    // promised hour.
    let budget = before * 3 / 8;
    let report = enforce(&store, &data, &policy(budget), now).unwrap();
    let after = dir_size(&data);
    eprintln!(
        "before {before} B, budget {budget} B, after {after} B, evicted {} chunks ({} samples)",
        report.evicted_chunks, report.evicted_samples
    );
    assert!(report.evicted_chunks > 0);
    assert!(report.evicted_until_ms.unwrap() < now - HOUR_MS);
    assert!(after <= budget, "{after} B on disk over the {budget} B budget");
    assert!(after < before);
    assert_eq!(report.used, after);
    assert_eq!(report.pressure, Pressure::Ok);
    assert_promised_hour_intact(&store, now);

    // A budget the promised hour alone exceeds: what is older goes, then the report says
    // so instead of touching the promise.
    let report = enforce(&store, &data, &policy(after / 4), now).unwrap();
    assert_eq!(report.pressure, Pressure::OverBudget);
    assert_eq!(segment_files(&data), 1, "only the promised hour's file is left");
    assert_promised_hour_intact(&store, now);
    let report = enforce(&store, &data, &policy(after / 4), now).unwrap();
    assert_eq!((report.evicted_chunks, report.pressure), (0, Pressure::OverBudget));

    // Reopened, the store finds the same history and nothing stray.
    drop(store);
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    assert_promised_hour_intact(&store, now);
    assert_eq!(store.read(0, 0, now - HOUR_MS - 1).unwrap().len(), 0);
    assert_eq!(segment_files(&data), 1);
}
