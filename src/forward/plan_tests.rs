//! The planner against a real store: every sample goes exactly once when all is
//! confirmed, live data goes ahead of a backlog, a failure resends only what was in
//! flight, and shaping (deadband, rollups) moves the cursor over what it holds back.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::store::StoreOptions;

const NOW: i64 = 1_800_000_000_000;

fn store_with(dir: &std::path::Path, sensor: SensorId, times: impl Iterator<Item = i64>) -> Store {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let samples: Vec<Sample> = times
        .map(|t| Sample::good(sensor, t, (t / 1000 % 1000) as f64))
        .collect();
    store.append(&samples);
    store.flush().unwrap();
    store
}

fn planner(opts: PlanOptions, sensors: &[SensorId]) -> Planner {
    let targets = sensors
        .iter()
        .map(|s| Target {
            sensor: *s,
            name: Arc::from(format!("s{s}").as_str()),
        })
        .collect();
    Planner::new(opts, vec![(Arc::from("a"), targets)], HashMap::new())
}

fn opts(batch: usize, rate: u32, order: BackfillOrder) -> PlanOptions {
    PlanOptions {
        batch,
        backfill_rate: rate,
        backfill_order: order,
        live_window_ms: 60_000,
        shaping: Shaping::Raw,
    }
}

/// Sends and confirms until nothing is left; the times sent, in order.
fn drain(p: &mut Planner, store: &Store) -> Vec<i64> {
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        p.refill(1.0);
        let Some(b) = p.next_batch(store, NOW).unwrap() else {
            break;
        };
        sent.extend(b.items.iter().map(|(_, i)| match i {
            Item::Raw(s) => s.ts_ms,
            Item::Rollup { bucket, .. } => bucket.start_ms,
        }));
        p.confirm(&b.advances);
    }
    sent
}

#[test]
fn every_sample_goes_once_and_live_data_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    // An hour of backlog at 1 Hz, then the last 30 s live.
    let store = store_with(dir.path(), 1, (0..3630).map(|i| NOW - 3_629_000 + i * 1000));
    let mut p = planner(opts(100, 200, BackfillOrder::Oldest), &[1]);
    p.refill(1.0);
    let first = p.next_batch(&store, NOW).unwrap().unwrap();
    let times: Vec<i64> = first
        .items
        .iter()
        .map(|(_, i)| if let Item::Raw(s) = i { s.ts_ms } else { 0 })
        .collect();
    assert!(times[0] > NOW - 60_000, "live data first: {}", NOW - times[0]);
    p.confirm(&first.advances);
    let mut all = times;
    all.extend(drain(&mut p, &store));
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 3630, "each sample once");
    assert_eq!(all.len(), 3630, "no duplicates");
    let c = p.confirmed[&1];
    assert!(!c.has_gap());
    assert_eq!(c.through(), NOW);
}

#[test]
fn backfill_keeps_its_rate_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 1, (0..1000).map(|i| NOW - 2_000_000 + i * 1000));
    let mut p = planner(opts(500, 100, BackfillOrder::Newest), &[1]);
    p.refill(1.0);
    let b = p.next_batch(&store, NOW).unwrap().unwrap();
    assert_eq!(b.items.len(), 100, "one second's worth of backlog");
    let times: Vec<i64> = b
        .items
        .iter()
        .map(|(_, i)| if let Item::Raw(s) = i { s.ts_ms } else { 0 })
        .collect();
    assert_eq!(*times.last().unwrap(), NOW - 2_000_000 + 999_000, "newest first");
    p.confirm(&b.advances);
    // No tokens left: nothing more this second.
    assert!(p.next_batch(&store, NOW).unwrap().is_none());
    let rest = drain(&mut p, &store);
    assert_eq!(rest.len(), 900);
    let batches: Vec<&[i64]> = rest.chunks(100).collect();
    assert!(
        batches.iter().all(|b| b.windows(2).all(|w| w[0] < w[1])),
        "each batch is in time order"
    );
    assert!(
        batches.windows(2).all(|w| w[1][99] < w[0][0]),
        "and the batches go back in time"
    );
    assert!(!p.confirmed[&1].has_gap());
}

#[test]
fn a_failure_resends_what_was_in_flight_and_nothing_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 1, (0..50).map(|i| NOW - 50_000 + i * 1000));
    let mut p = planner(opts(20, 100, BackfillOrder::Oldest), &[1]);
    p.refill(1.0);
    let a = p.next_batch(&store, NOW).unwrap().unwrap();
    p.confirm(&a.advances);
    let b = p.next_batch(&store, NOW).unwrap().unwrap();
    let b_first = match b.items[0].1 {
        Item::Raw(s) => s.ts_ms,
        _ => 0,
    };
    // b is lost with the connection.
    p.rewind();
    let again = p.next_batch(&store, NOW).unwrap().unwrap();
    assert_eq!(
        again.items[0].1, b.items[0].1,
        "b goes again from its start ({b_first})"
    );
    p.confirm(&again.advances);
    assert_eq!(drain(&mut p, &store).len(), 10);
}

#[test]
fn the_deadband_holds_back_small_moves_but_moves_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let values = [10.0, 10.2, 10.4, 11.0, 11.1, 9.0];
    let samples: Vec<Sample> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Sample::good(1, NOW - 10_000 + i as i64 * 1000, *v))
        .collect();
    store.append(&samples);
    let mut o = opts(100, 100, BackfillOrder::Oldest);
    o.shaping = Shaping::Deadband {
        delta: 0.5,
        max_silence_ms: 600_000,
    };
    let mut p = planner(o, &[1]);
    p.refill(1.0);
    let b = p.next_batch(&store, NOW).unwrap().unwrap();
    let sent: Vec<f64> = b
        .items
        .iter()
        .map(|(_, i)| if let Item::Raw(s) = i { s.value } else { 0.0 })
        .collect();
    assert_eq!(sent, vec![10.0, 11.0, 9.0]);
    assert_eq!(b.suppressed, 3);
    p.confirm(&b.advances);
    assert_eq!(p.confirmed[&1].through(), NOW - 5_000);
}

#[test]
fn rollups_send_whole_buckets_only() {
    let dir = tempfile::tempdir().unwrap();
    // 1 Hz over the last 45 s; 10 s buckets.
    let store = store_with(dir.path(), 1, (0..45).map(|i| NOW - 45_000 + i * 1000));
    let mut o = opts(100, 100, BackfillOrder::Oldest);
    o.shaping = Shaping::Rollup { every_ms: 10_000 };
    let mut p = planner(o, &[1]);
    let sent = drain(&mut p, &store);
    assert!(sent.iter().all(|t| t % 10_000 == 0), "bucket starts: {sent:?}");
    let last_whole = NOW.div_euclid(10_000) * 10_000 - 10_000;
    assert_eq!(*sent.last().unwrap(), last_whole, "the running bucket waits");
    assert_eq!(p.confirmed[&1].through(), last_whole + 9_999);
}
