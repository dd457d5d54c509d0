//! Rollups: min, max, mean and count per interval (e.g. per minute), kept far longer than
//! raw samples (e.g. a year), so monthly reports still work after raw data is evicted.
//!
//! Rollups are made from raw chunks at the moment retention evicts them: while raw data
//! exists, aggregates are computed from it on the fly, so a rollup never duplicates what
//! the raw history already answers. Buckets are kept per tier, sensor and UTC day in the
//! `rollups` tree (key: tier ‖ sensor ‖ day, value: four codec series — min, max, mean,
//! count — so a day of 1-minute buckets costs a few kilobytes). Buckets that meet again
//! (a bucket split across two evicted chunks) merge exactly: min of mins, max of maxes,
//! count-weighted mean.

use std::collections::BTreeMap;

use super::bucket::{aggregate, Bucket};
use super::codec::{self, Point};
use super::{Store, StoreError};
use crate::base::sample::{Quality, Sample, SensorId};

const DAY_MS: i64 = 86_400_000;

pub use crate::config::Tier;

fn key(tier: usize, sensor: SensorId, day_start: i64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = tier as u8;
    k[1..5].copy_from_slice(&sensor.to_be_bytes());
    k[5..].copy_from_slice(&super::chunk::ts_key(day_start));
    k
}

fn encode(buckets: &[Bucket]) -> Vec<u8> {
    let mut out = Vec::new();
    let series: [fn(&Bucket) -> f64; 4] = [|b| b.min, |b| b.max, |b| b.mean, |b| b.count as f64];
    for field in series {
        let pts: Vec<Point> = buckets
            .iter()
            .map(|b| Point {
                ts_ms: b.start_ms,
                value: field(b),
                quality: 0,
            })
            .collect();
        let mut enc = Vec::new();
        codec::encode(&pts, &mut enc);
        out.extend_from_slice(&(enc.len() as u32).to_le_bytes());
        out.extend_from_slice(&enc);
    }
    out
}

fn decode(mut v: &[u8]) -> Result<Vec<Bucket>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("rollup {what}"));
    let mut series = Vec::with_capacity(4);
    for _ in 0..4 {
        let len = u32::from_le_bytes(
            v.get(..4)
                .ok_or_else(|| corrupt("length"))?
                .try_into()
                .map_err(|_| corrupt("length"))?,
        ) as usize;
        let body = v.get(4..4 + len).ok_or_else(|| corrupt("series"))?;
        series.push(codec::decode(body).map_err(|e| corrupt(&e.to_string()))?);
        v = &v[4 + len..];
    }
    let n = series[0].len();
    if series.iter().any(|s| s.len() != n) {
        return Err(corrupt("series lengths"));
    }
    Ok((0..n)
        .map(|i| Bucket {
            start_ms: series[0][i].ts_ms,
            min: series[0][i].value,
            max: series[1][i].value,
            mean: series[2][i].value,
            count: series[3][i].value as u64,
        })
        .collect())
}

/// Merges `add` into `into` (both sorted by start).
fn merge(into: &mut Vec<Bucket>, add: &[Bucket]) {
    let mut map: BTreeMap<i64, Bucket> = into.drain(..).map(|b| (b.start_ms, b)).collect();
    for b in add {
        map.entry(b.start_ms)
            .and_modify(|m| {
                let n = m.count + b.count;
                m.mean = (m.mean * m.count as f64 + b.mean * b.count as f64) / n.max(1) as f64;
                m.min = m.min.min(b.min);
                m.max = m.max.max(b.max);
                m.count = n;
            })
            .or_insert(*b);
    }
    *into = map.into_values().collect();
}

/// Folds raw points (about to be evicted) into every tier.
pub fn absorb(store: &Store, tiers: &[Tier], sensor: SensorId, points: &[Point]) -> Result<(), StoreError> {
    store.inner.reserve.check()?;
    let samples: Vec<Sample> = points
        .iter()
        .map(|p| Sample {
            sensor,
            ts_ms: p.ts_ms,
            value: p.value,
            quality: Quality::from_byte(p.quality),
        })
        .collect();
    let tree = &store.inner.rollups;
    for (t, tier) in tiers.iter().enumerate() {
        let buckets = aggregate(&samples, tier.every_ms);
        let mut by_day: BTreeMap<i64, Vec<Bucket>> = BTreeMap::new();
        for b in buckets {
            by_day
                .entry(b.start_ms.div_euclid(DAY_MS) * DAY_MS)
                .or_default()
                .push(b);
        }
        for (day, add) in by_day {
            let k = key(t, sensor, day);
            let mut existing = match tree.get(k)? {
                Some(v) => decode(&v)?,
                None => Vec::new(),
            };
            merge(&mut existing, &add);
            tree.insert(k, encode(&existing))?;
        }
    }
    Ok(())
}

/// Buckets of tier `t` for a sensor in `[from_ms, to_ms]`.
pub fn read(store: &Store, t: usize, sensor: SensorId, from_ms: i64, to_ms: i64) -> Result<Vec<Bucket>, StoreError> {
    let first_day = from_ms.saturating_sub(DAY_MS).div_euclid(DAY_MS) * DAY_MS;
    let mut out = Vec::new();
    for item in store
        .inner
        .rollups
        .range(key(t, sensor, first_day)..=key(t, sensor, to_ms))
    {
        let (_, v) = item?;
        out.extend(
            decode(&v)?
                .into_iter()
                .filter(|b| b.start_ms >= from_ms && b.start_ms <= to_ms),
        );
    }
    Ok(out)
}

/// Drops days older than each tier keeps; returns how many day records went.
pub fn expire(store: &Store, tiers: &[Tier], now_ms: i64) -> Result<usize, StoreError> {
    store.inner.reserve.check()?;
    let mut removed = 0;
    for (t, tier) in tiers.iter().enumerate() {
        let cutoff = now_ms - tier.keep_ms;
        let mut batch = sled::Batch::default();
        for item in store.inner.rollups.scan_prefix([t as u8]) {
            let (k, _) = item?;
            let day_bytes: [u8; 8] = k[5..13]
                .try_into()
                .map_err(|_| StoreError::Corrupt("rollup key".into()))?;
            let day = (u64::from_be_bytes(day_bytes) ^ (1 << 63)) as i64;
            if day + DAY_MS <= cutoff {
                batch.remove(k);
                removed += 1;
            }
        }
        store.inner.rollups.apply_batch(batch)?;
    }
    Ok(removed)
}

/// Re-buckets finer buckets into intervals of `every_ms`.
pub fn rebucket(buckets: &[Bucket], every_ms: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for b in buckets {
        let start = b.start_ms.div_euclid(every_ms) * every_ms;
        let b = Bucket { start_ms: start, ..*b };
        match out.last_mut() {
            Some(last) if last.start_ms == start => merge_one(last, &b),
            _ => out.push(b),
        }
    }
    out
}

fn merge_one(m: &mut Bucket, b: &Bucket) {
    let n = m.count + b.count;
    m.mean = (m.mean * m.count as f64 + b.mean * b.count as f64) / n.max(1) as f64;
    m.min = m.min.min(b.min);
    m.max = m.max.max(b.max);
    m.count = n;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbed_chunks_merge_into_exact_buckets_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        let tiers = [Tier {
            every_ms: 60_000,
            keep_ms: 10 * DAY_MS,
        }];
        let pts: Vec<Point> = (0..300)
            .map(|i| Point {
                ts_ms: i * 1000,
                value: i as f64,
                quality: 0,
            })
            .collect();
        // A bucket split across two evictions (samples 90..120 of minute 1).
        absorb(&store, &tiers, 3, &pts[..100]).unwrap();
        absorb(&store, &tiers, 3, &pts[100..]).unwrap();
        let b = read(&store, 0, 3, 0, i64::MAX).unwrap();
        assert_eq!(b.len(), 5);
        assert_eq!(
            (b[1].start_ms, b[1].min, b[1].max, b[1].count),
            (60_000, 60.0, 119.0, 60)
        );
        assert!((b[1].mean - 89.5).abs() < 1e-9);
        let hourly = rebucket(&b, 3_600_000);
        assert_eq!((hourly.len(), hourly[0].count, hourly[0].max), (1, 300, 299.0));
        assert_eq!(expire(&store, &tiers, 5 * DAY_MS).unwrap(), 0);
        assert_eq!(expire(&store, &tiers, 12 * DAY_MS).unwrap(), 1);
        assert!(read(&store, 0, 3, 0, i64::MAX).unwrap().is_empty());
    }
}
