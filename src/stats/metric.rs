//! The kinds of figure a stage records: a [`Counter`] only grows, a [`Gauge`] is a level
//! that is set, a [`Level`] is a gauge whose values have names, a [`Histogram`] keeps a
//! distribution. Plain atomics: cheap on the hot path, read by the exports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a figure is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// A gauge whose values `0..` are named, in order.
    Level(&'static [&'static str]),
}

/// A figure the declaration table can read.
pub trait Figure {
    const KIND: Kind;
    fn value(&self) -> u64;
}

/// Events since start: only grows.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one event and logs it through `log` for the first ten and then every
    /// thousandth (`log` is told the count), so a flood of one kind of bad input stays
    /// visible without flooding the journal. The count and the log line come from this one
    /// call, so they cannot disagree about what happened.
    pub fn event(&self, log: impl FnOnce(u64)) {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        if logs_at(n) {
            log(n);
        }
    }
}

impl Counter {
    /// [`Counter::event`] for `n` things at once (samples of a refused batch): logs while
    /// fewer than ten were counted before, then each time the count passes a thousand.
    pub fn events(&self, n: u64, log: impl FnOnce(u64)) {
        let before = self.0.fetch_add(n, Ordering::Relaxed);
        let after = before + n;
        if n > 0 && (before < 10 || before / 1000 != after / 1000) {
            log(after);
        }
    }
}

/// The counts at which [`Counter::event`] logs.
fn logs_at(n: u64) -> bool {
    n <= 10 || n % 1000 == 0
}

impl Figure for Counter {
    const KIND: Kind = Kind::Counter;
    fn value(&self) -> u64 {
        self.get()
    }
}

/// A level that goes up and down (a queue depth).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Figure for Gauge {
    const KIND: Kind = Kind::Gauge;
    fn value(&self) -> u64 {
        self.get()
    }
}

/// The storage pressure: `ok`, `over_budget` (nothing left that may be evicted) or
/// `disk_full` (new samples are refused).
#[derive(Debug, Default)]
pub struct Level(AtomicU64);

/// The names of [`Level`]'s values.
pub const PRESSURE_LEVELS: &[&str] = &["ok", "over_budget", "disk_full"];

impl Level {
    pub fn set(&self, n: u64) {
        self.0.store(n.min(PRESSURE_LEVELS.len() as u64 - 1), Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn name(&self) -> &'static str {
        PRESSURE_LEVELS[self.get() as usize]
    }
}

impl Figure for Level {
    const KIND: Kind = Kind::Level(PRESSURE_LEVELS);
    fn value(&self) -> u64 {
        self.get()
    }
}

/// A histogram of durations: 100 µs steps to 10 ms, then 10 ms steps to 1 s, so
/// percentiles of poll lateness are exact enough to compare with a few milliseconds, in
/// 1.6 KB per device.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    /// Sum of the recorded durations, in microseconds.
    sum_us: AtomicU64,
}

const FINE: usize = 100;
const COARSE: usize = 100;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..FINE + COARSE + 1).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn bucket(d: Duration) -> usize {
        let us = d.as_micros();
        if us < 10_000 {
            (us / 100) as usize
        } else {
            (FINE + (us / 10_000) as usize).min(FINE + COARSE)
        }
    }

    /// Upper edge of a bucket.
    fn edge(i: usize) -> Duration {
        if i < FINE {
            Duration::from_micros(100 * (i as u64 + 1))
        } else {
            Duration::from_millis(10 * (i - FINE) as u64 + 10)
        }
    }

    pub fn record(&self, d: Duration) {
        self.buckets[Self::bucket(d)].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Sum of every recorded duration.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Ordering::Relaxed))
    }

    /// Recorded durations whose bucket lies entirely at or below `d`.
    pub fn count_at_most(&self, d: Duration) -> u64 {
        self.buckets
            .iter()
            .enumerate()
            .take_while(|(i, _)| Self::edge(*i) <= d)
            .map(|(_, b)| b.load(Ordering::Relaxed))
            .sum()
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.sum_us
            .fetch_add(other.sum_us.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The duration below which `q` (0..=1) of the recorded values lie (bucket's upper
    /// edge); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Self::edge(i));
            }
        }
        Some(Self::edge(FINE + COARSE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_log_the_first_ten_then_every_thousandth() {
        let c = Counter::default();
        let mut logged = Vec::new();
        for _ in 0..3000 {
            c.event(|n| logged.push(n));
        }
        assert_eq!(c.get(), 3000);
        assert_eq!(logged, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1000, 2000, 3000]);
        let c = Counter::default();
        let mut logged = Vec::new();
        for _ in 0..10 {
            c.events(300, |n| logged.push(n));
        }
        assert_eq!(logged, [300, 1200, 2100, 3000]);
    }

    #[test]
    fn histogram_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 0..99 {
            h.record(Duration::from_micros(us * 10));
        }
        h.record(Duration::from_millis(42));
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(500)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_micros(1000)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_millis(50)));
        h.record(Duration::from_secs(5));
        assert_eq!(h.count(), 101);
    }
}
