//! Aggregates of an interval: min, max, mean and count of the good samples in it. Queries
//! compute them on the fly and rollup tiers store them, so both mean the same thing.

use crate::base::sample::Sample;

/// One interval's summary of good samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

/// Buckets of `every_ms` (aligned to the epoch) over time-sorted samples; intervals
/// without a good sample are left out.
pub fn aggregate(samples: &[Sample], every_ms: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    let mut sum = 0.0;
    for s in samples.iter().filter(|s| s.quality.is_good() && s.value.is_finite()) {
        let start = s.ts_ms.div_euclid(every_ms) * every_ms;
        match out.last_mut() {
            Some(b) if b.start_ms == start => {
                b.min = b.min.min(s.value);
                b.max = b.max.max(s.value);
                b.count += 1;
                sum += s.value;
                b.mean = sum / b.count as f64;
            }
            _ => {
                sum = s.value;
                out.push(Bucket {
                    start_ms: start,
                    min: s.value,
                    max: s.value,
                    mean: s.value,
                    count: 1,
                });
            }
        }
    }
    out
}
