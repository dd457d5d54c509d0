//! A sensor's history over a window, as lines to draw: raw samples for short windows,
//! buckets (the store's raw data aggregated, and rollup tiers where raw data is gone) for
//! long ones, so a plot zooms from minutes to months with at most [`MAX_POINTS`] points.
//!
//! Guarantee: a bad-quality sample, or an interval without a good one, ends a segment,
//! so a gap is drawn as a gap and never bridged by a made-up line.

use crate::base::sample::{Sample, SensorId};
use crate::config::Tier;
use crate::store::bucket::{aggregate, Bucket};
use crate::store::{rollup, Store, StoreError};

/// Points a plot draws at most: enough for a wide screen, little enough for a gateway.
pub const MAX_POINTS: usize = 800;

/// The ranges the sensor page offers.
pub const RANGES: &[&str] = &["15m", "1h", "6h", "1d", "7d", "30d", "90d", "365d"];

/// The longest range a page reads, so a request cannot make it scan years of raw data.
const MAX_RANGE_MS: i64 = 400 * 86_400_000;

/// `15m`, `1h`, `7d` … as milliseconds (1 minute to 400 days).
pub fn parse_range(text: &str) -> Result<i64, String> {
    let d = crate::base::units::parse_duration(text).map_err(|e| format!("range={text:?}: {e}"))?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if !(60_000..=MAX_RANGE_MS).contains(&ms) {
        return Err(format!("range={text:?}: must be between 1m and 400d"));
    }
    Ok(ms)
}

/// A sensor's history in one window, cut into drawable segments.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct History {
    /// Continuous runs of (time ms, value); each gap starts a new one.
    pub segments: Vec<Vec<(i64, f64)>>,
    /// Bucket length when the history is aggregated; `None` for raw samples.
    pub every_ms: Option<i64>,
    /// Bad-quality samples in the window (raw reads only).
    pub bad: usize,
    /// The newest sample in the window, good or bad.
    pub last: Option<Sample>,
}

impl History {
    pub fn points(&self) -> usize {
        self.segments.iter().map(Vec::len).sum()
    }

    /// The smallest and largest value drawn.
    pub fn value_span(&self) -> Option<(f64, f64)> {
        let mut it = self.segments.iter().flatten().map(|p| p.1);
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

/// Reads `sensor` over `[from_ms, to_ms]`: raw when it fits in [`MAX_POINTS`], else
/// buckets of `(to - from) / MAX_POINTS`, older ones from the rollup `tiers`.
pub fn read(store: &Store, tiers: &[Tier], sensor: SensorId, from_ms: i64, to_ms: i64) -> Result<History, StoreError> {
    let samples = store.read(sensor, from_ms, to_ms)?;
    let last = samples.last().copied();
    // Raw when it fits, unless rollups may hold the part of the window raw data lost.
    let covered = tiers.is_empty()
        || samples
            .first()
            .is_some_and(|s| s.ts_ms <= from_ms + (to_ms - from_ms) / 10);
    if samples.len() <= MAX_POINTS && covered {
        return Ok(History {
            bad: samples.iter().filter(|s| !s.quality.is_good()).count(),
            segments: raw_segments(&samples, (to_ms - from_ms) / 100),
            every_ms: None,
            last,
        });
    }
    let every = ((to_ms - from_ms) / MAX_POINTS as i64).max(1000);
    let raw = aggregate(&samples, every);
    let mut buckets = older_buckets(store, tiers, sensor, from_ms, every, &raw)?;
    buckets.extend(raw);
    Ok(History {
        bad: samples.iter().filter(|s| !s.quality.is_good()).count(),
        segments: bucket_segments(&buckets, every),
        every_ms: Some(every),
        last,
    })
}

/// Rollup buckets before the first raw bucket: rollups answer only where raw data is gone,
/// as `/query` does.
fn older_buckets(
    store: &Store,
    tiers: &[Tier],
    sensor: SensorId,
    from_ms: i64,
    every: i64,
    raw: &[Bucket],
) -> Result<Vec<Bucket>, StoreError> {
    let raw_start = raw.first().map_or(i64::MAX, |b| b.start_ms);
    let Some(t) = tiers
        .iter()
        .rposition(|t| t.every_ms <= every)
        .or((!tiers.is_empty()).then_some(0))
    else {
        return Ok(Vec::new());
    };
    if raw_start <= from_ms {
        return Ok(Vec::new());
    }
    let older = rollup::read(store, t, sensor, from_ms, raw_start.saturating_sub(1))?;
    Ok(rollup::rebucket(&older, every)
        .into_iter()
        .filter(|b| b.start_ms < raw_start)
        .collect())
}

/// A step this many times its neighbours is a gap: the agent was down or the input silent.
const GAP_FACTOR: i64 = 5;

/// Whether a gap comes before each time: its step is over `min_gap_ms` and, where the
/// steps beside it are longer than that (sparse data), over [`GAP_FACTOR`] times the
/// shorter of them. Judged against the local rate, so a sensor read every 10 minutes is a
/// line, while one missing bucket among adjacent ones is a gap.
fn gaps(ts: &[i64], min_gap_ms: i64) -> Vec<bool> {
    let step = |i: usize| (i >= 1 && i < ts.len()).then(|| ts[i] - ts[i - 1]);
    (0..ts.len())
        .map(|i| {
            let Some(dt) = step(i) else { return false };
            let local = match (step(i - 1), step(i + 1)) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return dt > min_gap_ms,
            };
            let limit = if local <= min_gap_ms {
                min_gap_ms
            } else {
                local.saturating_mul(GAP_FACTOR)
            };
            dt > limit
        })
        .collect()
}

/// Raw samples as segments: a bad or non-finite sample ends the current one, and so does
/// a silence (see [`gaps`]; below `min_gap_ms`, a missed poll is not worth a break).
pub fn raw_segments(samples: &[Sample], min_gap_ms: i64) -> Vec<Vec<(i64, f64)>> {
    let ts: Vec<i64> = samples.iter().map(|s| s.ts_ms).collect();
    let gap = gaps(&ts, min_gap_ms);
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut open = false;
    for (s, gap) in samples.iter().zip(gap) {
        if gap {
            open = false;
        }
        if s.quality.is_good() && s.value.is_finite() {
            if !open {
                out.push(Vec::new());
                open = true;
            }
            if let Some(seg) = out.last_mut() {
                seg.push((s.ts_ms, s.value));
            }
        } else {
            open = false;
        }
    }
    out
}

/// Bucket means as segments: buckets without a good sample are missing, and a missing
/// stretch is a gap (see [`gaps`]; adjacent buckets never are).
pub fn bucket_segments(buckets: &[Bucket], every_ms: i64) -> Vec<Vec<(i64, f64)>> {
    let kept: Vec<&Bucket> = buckets.iter().filter(|b| b.mean.is_finite()).collect();
    let ts: Vec<i64> = kept.iter().map(|b| b.start_ms).collect();
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    for (b, gap) in kept.iter().zip(gaps(&ts, every_ms)) {
        let point = (b.start_ms + every_ms / 2, b.mean);
        match out.last_mut() {
            Some(seg) if !gap => seg.push(point),
            _ => out.push(vec![point]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::sample::Quality;

    #[test]
    fn bad_samples_and_missing_buckets_are_gaps() {
        let s = [
            Sample::good(1, 0, 1.0),
            Sample::good(1, 1, 2.0),
            Sample::bad(1, 2, Quality::Timeout),
            Sample::good(1, 3, 3.0),
        ];
        assert_eq!(raw_segments(&s, 0), vec![vec![(0, 1.0), (1, 2.0)], vec![(3, 3.0)]]);
        // A silence of many steps is a gap too, unless it is shorter than the minimum.
        let steady: Vec<Sample> = [0, 10, 20, 30, 200, 210, 220]
            .iter()
            .map(|t| Sample::good(1, *t, 1.0))
            .collect();
        assert_eq!(raw_segments(&steady, 0).len(), 2);
        assert_eq!(raw_segments(&steady, 1000).len(), 1);
        let b = |start_ms| Bucket {
            start_ms,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            count: 1,
        };
        let segs = bucket_segments(&[b(0), b(10), b(20), b(80), b(90)], 10);
        assert_eq!(bucket_segments(&[b(0), b(10), b(30), b(40)], 10).len(), 2);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].len(), 3);
        // Sparse but regular: one line.
        assert_eq!(bucket_segments(&[b(0), b(50), b(100), b(150)], 10).len(), 1);
    }

    #[test]
    fn ranges_are_bounded() {
        assert_eq!(parse_range("15m"), Ok(900_000));
        assert_eq!(parse_range("30d"), Ok(30 * 86_400_000));
        assert!(parse_range("1s").is_err());
        assert!(parse_range("1000d").is_err());
        assert!(parse_range("soon").is_err());
    }
}
