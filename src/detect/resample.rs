//! Resampling one machine's sensors onto a common clock, so a model sees them together.
//!
//! The clock has a fixed `period`; tick `k` covers `[k·period, (k+1)·period)`. A tick is
//! closed when a sample of a later tick arrives (for any of the machine's sensors), and
//! its vector holds, per sensor, the last good value seen before the tick ended. A value
//! is carried forward for at most `max_hold` ticks after the tick it arrived in; past that
//! the sensor is missing and the whole vector is **incomplete** (`values: None`): scorers
//! skip it rather than score invented values. Bad-quality samples carry no value, so a
//! sensor that keeps timing out becomes missing after `max_hold` ticks.
//!
//! Guarantees: memory is one slot per sensor; a jump over a long gap emits at most
//! `max_hold + 2` ticks (the rest would all be incomplete and are summarised by one);
//! ticks come out in increasing order. A sample of an already-closed tick (a late
//! device) is applied to the open tick.
//!
//! [`auto_period_ms`] chooses the period from history when the config says `auto`: the
//! slowest sensor's typical (median) sampling interval, rounded to a round value, so
//! every sensor has a value in (nearly) every tick and nothing is scored from invented
//! values.

/// One closed tick of the common clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// End of the tick (exclusive), ms since the epoch: the time of the vector.
    pub ts_ms: i64,
    /// Index of the tick (`start / period`).
    pub index: i64,
    /// One value per sensor, in the model's order; `None` when a sensor is missing.
    pub values: Option<Vec<f64>>,
}

#[derive(Debug, Clone)]
pub struct Resampler {
    period_ms: i64,
    max_hold: i64,
    /// Per sensor: (tick index of the value, value).
    last: Vec<Option<(i64, f64)>>,
    /// The open tick, once a first sample arrived.
    open: Option<i64>,
}

impl Resampler {
    /// `period_ms` must be positive (validated in the config); it is clamped to 1 ms.
    pub fn new(sensors: usize, period_ms: i64, max_hold: u32) -> Self {
        Resampler {
            period_ms: period_ms.max(1),
            max_hold: i64::from(max_hold),
            last: vec![None; sensors],
            open: None,
        }
    }

    pub fn sensors(&self) -> usize {
        self.last.len()
    }

    /// Records a sample of sensor `idx` (`None`: bad quality, or not a number) and pushes
    /// every tick it closes to `out`.
    pub fn push(&mut self, idx: usize, ts_ms: i64, value: Option<f64>, out: &mut Vec<Tick>) {
        let tick = ts_ms.div_euclid(self.period_ms);
        match self.open {
            None => self.open = Some(tick),
            Some(open) if tick > open => {
                self.close_until(tick, out);
            }
            _ => {}
        }
        let open = self.open.unwrap_or(tick);
        if let (Some(slot), Some(v)) = (self.last.get_mut(idx), value.filter(|v| v.is_finite())) {
            *slot = Some((open, v));
        }
    }

    /// Closes the open tick (end of a replay).
    pub fn finish(&mut self, out: &mut Vec<Tick>) {
        if let Some(open) = self.open {
            self.close_until(open + 1, out);
        }
    }

    /// Closes ticks `open..next` and opens `next`.
    fn close_until(&mut self, next: i64, out: &mut Vec<Tick>) {
        let Some(open) = self.open else { return };
        // Beyond `max_hold + 1` ticks every vector is incomplete: one stands for all.
        let last_useful = (open + self.max_hold + 1).min(next - 1);
        for k in open..=last_useful {
            out.push(self.vector(k));
        }
        if last_useful < next - 1 {
            out.push(Tick {
                ts_ms: next * self.period_ms,
                index: next - 1,
                values: None,
            });
        }
        self.open = Some(next);
    }

    fn vector(&self, k: i64) -> Tick {
        let values = self
            .last
            .iter()
            .map(|slot| match slot {
                Some((at, v)) if k - at <= self.max_hold => Some(*v),
                _ => None,
            })
            .collect::<Option<Vec<f64>>>();
        Tick {
            ts_ms: (k + 1) * self.period_ms,
            index: k,
            values,
        }
    }
}

/// Round periods `auto` chooses from, ms: 10 ms to 1 h.
const ROUND_PERIODS_MS: [i64; 19] = [
    10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000,
];

/// The period for samples `(sensor, ts_ms)` of `sensors` sensors (in time order per
/// sensor): per sensor the median step between its successive samples, the largest of
/// those, rounded to the nearest (on a log scale) of 10 ms, 20 ms, 50 ms … 1 s, 2 s,
/// 5 s, 10 s, 15 s, 30 s, 1 min … 30 min, 1 h. `None` when no sensor has two samples at
/// different times.
pub fn auto_period_ms(samples: impl IntoIterator<Item = (usize, i64)>, sensors: usize) -> Option<i64> {
    let mut last: Vec<Option<i64>> = vec![None; sensors];
    let mut steps: Vec<Vec<i64>> = vec![Vec::new(); sensors];
    for (j, ts) in samples {
        let Some(slot) = last.get_mut(j) else { continue };
        if let Some(prev) = slot.replace(ts) {
            if ts > prev {
                steps[j].push(ts - prev);
            }
        }
    }
    let typical = steps
        .iter_mut()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mid = s.len() / 2;
            *s.select_nth_unstable(mid).1
        })
        .max()?;
    let log = (typical as f64).ln();
    ROUND_PERIODS_MS.iter().copied().min_by(|a, b| {
        ((*a as f64).ln() - log)
            .abs()
            .total_cmp(&((*b as f64).ln() - log).abs())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_period_follows_the_slowest_sensor_rounded() {
        // 1 Hz with jitter: 1 s.
        let jittered = (0..100).map(|i| (0, i * 1000 + (i % 3) * 7));
        assert_eq!(auto_period_ms(jittered, 1), Some(1000));
        // A 1 Hz flow and a temperature every ~290 s (a missed reading too): 5 min.
        let mut mixed: Vec<(usize, i64)> = (0..3000).map(|i| (0, i * 1000)).collect();
        mixed.extend((0..10).filter(|i| *i != 4).map(|i| (1, i * 290_000)));
        assert_eq!(auto_period_ms(mixed, 2), Some(300_000));
        // Slower than an hour is clamped to 1 h; one sample, or none, decides nothing.
        assert_eq!(auto_period_ms([(0, 0), (0, 86_400_000)], 1), Some(3_600_000));
        assert_eq!(auto_period_ms([(0, 5), (1, 9), (7, 1)], 2), None);
        assert_eq!(auto_period_ms([], 3), None);
    }

    fn values(ticks: &[Tick]) -> Vec<(i64, Option<Vec<f64>>)> {
        ticks.iter().map(|t| (t.index, t.values.clone())).collect()
    }

    #[test]
    fn aligns_sensors_and_carries_values_forward() {
        let mut r = Resampler::new(2, 1000, 1);
        let mut out = Vec::new();
        r.push(0, 100, Some(1.0), &mut out);
        r.push(1, 600, Some(10.0), &mut out);
        r.push(0, 1100, Some(2.0), &mut out); // closes tick 0
        r.push(0, 2100, Some(3.0), &mut out); // closes tick 1: sensor 1 carried (1 tick old)
        r.push(0, 3100, Some(4.0), &mut out); // closes tick 2: sensor 1 is 2 ticks old
        assert_eq!(
            values(&out),
            vec![(0, Some(vec![1.0, 10.0])), (1, Some(vec![2.0, 10.0])), (2, None)]
        );
        assert_eq!(out[0].ts_ms, 1000);
    }

    #[test]
    fn bad_quality_is_a_gap_not_a_value() {
        let mut r = Resampler::new(1, 1000, 0);
        let mut out = Vec::new();
        r.push(0, 0, Some(5.0), &mut out);
        r.push(0, 1000, None, &mut out);
        r.push(0, 2000, Some(f64::NAN), &mut out);
        r.finish(&mut out);
        assert_eq!(values(&out), vec![(0, Some(vec![5.0])), (1, None), (2, None)]);
    }

    #[test]
    fn a_long_gap_emits_a_bounded_number_of_ticks() {
        let mut r = Resampler::new(1, 1000, 2);
        let mut out = Vec::new();
        r.push(0, 0, Some(1.0), &mut out);
        r.push(0, 1_000_000_000, Some(2.0), &mut out);
        assert_eq!(out.len(), 5);
        assert!(out[..3].iter().all(|t| t.values.is_some()));
        assert!(out[3..].iter().all(|t| t.values.is_none()));
        assert!(out.windows(2).all(|w| w[0].index < w[1].index));
    }

    #[test]
    fn late_samples_update_the_open_tick() {
        let mut r = Resampler::new(1, 1000, 0);
        let mut out = Vec::new();
        r.push(0, 1500, Some(1.0), &mut out);
        r.push(0, 200, Some(7.0), &mut out);
        r.finish(&mut out);
        assert_eq!(values(&out), vec![(1, Some(vec![7.0]))]);
    }
}
