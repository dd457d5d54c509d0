//! Bounded reads for readers that walk a sensor's history in steps (the telemetry
//! forwarder): the first `limit` samples after a time, without decoding more chunks than
//! those that can hold them.

use super::codec::Point;
use super::segment::Stored;
use super::{chunk, dedup_last_wins, sample, Store, StoreError};
use crate::base::sample::{Sample, SensorId};

impl Store {
    /// The earliest samples of `sensor` with `after_ms < ts <= until_ms`, at most about
    /// `limit` (all samples of the last timestamp returned are merged, so it can be one
    /// short), sorted by time, one per timestamp, the last written winning. Includes
    /// samples not yet durable.
    pub fn read_after(
        &self,
        sensor: SensorId,
        after_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Sample>, StoreError> {
        if after_ms >= until_ms || limit == 0 {
            return Ok(Vec::new());
        }
        let in_range = |p: &Point| p.ts_ms > after_ms && p.ts_ms <= until_ms;
        let mut points: Vec<Point> = Vec::new();
        for item in self.inner.chunks.range(chunk::range_until(sensor, until_ms)) {
            let (k, v) = item?;
            let header = match Stored::of(&v).and_then(|s| s.header()) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(key = ?k, error = %e, "skipping unreadable chunk");
                    continue;
                }
            };
            if header.last_ms <= after_ms {
                continue;
            }
            // Chunks come in order of their first sample: once `limit` points are held,
            // a chunk starting after the last of them has nothing earlier to add.
            if points.len() >= limit && header.first_ms > cutoff(&mut points, limit) {
                break;
            }
            match self.stored_bytes(&v).and_then(|b| chunk::decode(&b)) {
                Ok(pts) => points.extend(pts.into_iter().filter(in_range)),
                Err(e) => tracing::error!(sensor, first_ms = header.first_ms, error = %e, "skipping corrupt chunk"),
            }
        }
        self.unsealed_points(sensor, &in_range, &mut points);
        points.sort_by_key(|p| p.ts_ms);
        if points.len() > limit {
            let last = points[limit - 1].ts_ms;
            points.retain(|p| p.ts_ms <= last);
        }
        dedup_last_wins(&mut points);
        Ok(points.iter().map(|p| sample(sensor, p)).collect())
    }

    /// Samples of `sensor` in `(after_ms, until_ms]`, counted from the chunk headers and
    /// the unsealed samples: an estimate (a chunk that straddles `after_ms` counts in
    /// proportion to its span), cheap enough for a gauge.
    pub fn estimate_count(&self, sensor: SensorId, after_ms: i64, until_ms: i64) -> Result<u64, StoreError> {
        let mut n = 0f64;
        for item in self.inner.chunks.range(chunk::range_until(sensor, until_ms)) {
            let (_, v) = item?;
            let Ok(h) = Stored::of(&v).and_then(|s| s.header()) else {
                continue;
            };
            if h.last_ms <= after_ms || h.first_ms > until_ms {
                continue;
            }
            let span = (h.last_ms - h.first_ms).max(1) as f64;
            let inside = (h.last_ms.min(until_ms) - h.first_ms.max(after_ms)).max(0) as f64;
            n += if h.first_ms > after_ms && h.last_ms <= until_ms {
                f64::from(h.count)
            } else {
                f64::from(h.count) * (inside / span).min(1.0)
            };
        }
        let st = self.state();
        let live = |ts: i64| ts > after_ms && ts <= until_ms;
        if let Some(u) = st.unsealed.get(&sensor) {
            n += u.points.iter().filter(|p| live(p.ts_ms)).count() as f64;
        }
        n += st
            .pending
            .iter()
            .filter(|s| s.sensor == sensor && live(s.ts_ms))
            .count() as f64;
        Ok(n.round() as u64)
    }
}

/// The time of the `limit`-th earliest point held (sorting them).
fn cutoff(points: &mut [Point], limit: usize) -> i64 {
    points.sort_by_key(|p| p.ts_ms);
    points[limit - 1].ts_ms
}

#[cfg(test)]
mod tests {
    use crate::base::sample::Sample;
    use crate::store::{SealPolicy, Store, StoreOptions};

    fn store(dir: &std::path::Path) -> Store {
        let seal = SealPolicy {
            max_unsealed: 50,
            min_chunk: 1,
            ..SealPolicy::default()
        };
        Store::open(
            dir,
            StoreOptions {
                seal,
                ..StoreOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn reads_the_first_samples_after_a_time_across_chunks_and_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for batch in 0..5 {
            let samples: Vec<Sample> = (0..60)
                .map(|i| Sample::good(7, (batch * 60 + i) * 1000, i as f64))
                .collect();
            s.append(&samples);
            s.flush().unwrap();
        }
        s.append(&[Sample::good(7, 400_000, 1.0)]);
        let got = s.read_after(7, 30_000, i64::MAX, 100).unwrap();
        assert_eq!(got.len(), 100);
        assert_eq!(got[0].ts_ms, 31_000);
        assert_eq!(got[99].ts_ms, 130_000);
        let tail = s.read_after(7, 290_000, i64::MAX, 100).unwrap();
        assert_eq!(
            tail.iter().map(|x| x.ts_ms).collect::<Vec<_>>(),
            vec![291_000, 292_000, 293_000, 294_000, 295_000, 296_000, 297_000, 298_000, 299_000, 400_000]
        );
        assert!(s.read_after(7, 400_000, i64::MAX, 10).unwrap().is_empty());
        assert_eq!(s.estimate_count(7, 30_000, i64::MAX).unwrap(), 270);
    }

    #[test]
    fn a_rewritten_timestamp_keeps_its_last_value_at_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.append(&[
            Sample::good(1, 1, 1.0),
            Sample::good(1, 2, 2.0),
            Sample::good(1, 2, 3.0),
        ]);
        let got = s.read_after(1, 0, 10, 2).unwrap();
        assert_eq!(
            got.iter().map(|x| (x.ts_ms, x.value)).collect::<Vec<_>>(),
            vec![(1, 1.0), (2, 3.0)]
        );
    }
}
