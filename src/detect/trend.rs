//! The trend statistic: a rise (or fall) over hours is a fault even while the level is
//! still inside its healthy range. Per sensor it is the change of the sensor's smoothed,
//! standardised level over a window of sample time (`FeatureParams::trend_ms`, default
//! 4 h), in two forms, each against a threshold calibrated on healthy training:
//!
//! - the change itself: over when a sensor moves further in one window than healthy
//!   operation, daily cycles included, ever moved it in one;
//! - the change relative to the same hours one day earlier: a daily cycle repeats, so what
//!   is left is the day-to-day variation, and a creep far slower than the daily swing
//!   stands out. While an alarm is active the day's pattern keeps the previous day's
//!   changes, so a fault is not compared against itself the next day.
//!
//! It reads the standardised values themselves, never the features' adaptive baseline, so
//! a drifting sensor whose baseline follows it (a temperature) still shows a developing
//! fault: that baseline would follow a fault as it follows the weather.
//!
//! Guarantees: the change is inactive (0) until a whole window of vectors was seen since
//! the start or the last gap, and the daily comparison until one day more, so short
//! records (minutes at 1 Hz) are scored exactly as without a trend. A form is calibrated
//! only when the training holds enough of it ([`MIN_WINDOWS`]); a model without trend
//! thresholds has no trend statistic. Time is counted in vectors of the model's period.
//! Memory: one snapshot per slot of the window and of a day, three numbers per sensor;
//! O(sensors) per vector.

use super::features::{FeatureParams, Scaler};
use crate::config::params::TrainOptions;

/// Most slots (snapshots of the smoothed level) per window; the reference of the change
/// is between one window and one window plus a slot old.
pub const SLOTS: u64 = 8;

/// Training must span this many trend windows for the change to be calibrated, and one
/// day more for the daily comparison.
pub const MIN_WINDOWS: i64 = 3;

/// The smallest trend threshold, in healthy standard deviations: a change over a whole
/// window smaller than a sensor's healthy spread is never a fault on its own.
pub const MIN_THRESHOLD: f64 = 0.5;

const DAY_MS: i64 = 86_400_000;

/// Streaming state of the trend statistic of one model.
#[derive(Debug, Clone)]
pub struct TrendState {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// Per sensor: threshold of the change, and of the change against the day before
    /// (empty: no daily comparison).
    change: Vec<f64>,
    daily: Vec<f64>,
    /// EWMA weight per vector (time constant: one slot).
    alpha: f64,
    /// Vectors per slot; slots per window; slots per day.
    every: u64,
    slots: u64,
    day: u64,
    /// Smoothed standardised level per sensor.
    level: Vec<f64>,
    /// Level snapshots of the last window, `slots + 1` of them.
    ring: Vec<Vec<f64>>,
    /// The change at each slot start of the last day (the day's pattern).
    pattern: Vec<Vec<f64>>,
    /// The pattern's value at the start of the current slot, before it was replaced.
    before: Vec<f64>,
    /// Vectors since the start or the last reset.
    seen: u64,
}

/// What one vector of healthy training showed, per sensor (for calibration).
struct Seen {
    change: Option<f64>,
    daily: Option<f64>,
}

impl TrendState {
    /// The trend of a trained model: `None` when its scaler has no trend thresholds (trend
    /// off, training too short, or a file written before trends existed).
    pub fn new(scaler: &Scaler, p: &FeatureParams, period_ms: i64) -> Option<Self> {
        Self::with_thresholds(scaler, p, period_ms, scaler.trend.clone(), scaler.trend_daily.clone())
    }

    fn with_thresholds(
        scaler: &Scaler,
        p: &FeatureParams,
        period_ms: i64,
        change: Vec<f64>,
        daily: Vec<f64>,
    ) -> Option<Self> {
        let m = scaler.mean.len();
        let usable = |t: &[f64]| t.iter().all(|t| t.is_finite() && *t > 0.0);
        if p.trend_ms <= 0 || period_ms <= 0 || m == 0 || change.len() != m || !usable(&change) || !usable(&daily) {
            return None;
        }
        let daily = if daily.len() == m { daily } else { Vec::new() };
        let ticks = (p.trend_ms / period_ms).max(1) as u64;
        let slots = ticks.clamp(1, SLOTS);
        let every = ticks / slots;
        let day = ((DAY_MS / period_ms) as u64 / every).max(1);
        Some(TrendState {
            mean: scaler.mean.clone(),
            scale: scaler.scale.clone(),
            change,
            daily,
            alpha: 1.0 - (-1.0 / every as f64).exp(),
            every,
            slots,
            day,
            level: vec![0.0; m],
            ring: vec![vec![0.0; m]; slots as usize + 1],
            pattern: vec![vec![0.0; m]; day as usize],
            before: vec![0.0; m],
            seen: 0,
        })
    }

    /// Vectors in one window: how long the change stays inactive.
    pub fn window(&self) -> u64 {
        self.every * self.slots
    }

    /// Forgets the history (a gap in the data): inactive again for a window.
    pub fn reset(&mut self) {
        self.seen = 0;
    }

    /// Takes vector `x` (`alarm`: whether the model's alarm is active, so the day's
    /// pattern is kept); returns the largest change relative to its threshold (0 while
    /// inactive) and writes that ratio per sensor to `contrib`.
    pub fn push(&mut self, x: &[f64], alarm: bool, contrib: &mut [f64]) -> f64 {
        let mut worst = 0.0f64;
        for (j, c) in contrib.iter_mut().take(self.level.len()).enumerate() {
            let seen = self.advance(j, x.get(j).copied(), alarm);
            let over_change = seen.change.map_or(0.0, |d| d.abs() / self.change[j]);
            let over_daily = seen.daily.map_or(0.0, |d| d.abs() / self.daily[j]);
            *c = over_change.max(over_daily);
            worst = worst.max(*c);
        }
        self.seen += 1;
        worst
    }

    /// Updates sensor `j` with value `x` and returns its change and its change against
    /// the day before (in standard deviations), where active.
    fn advance(&mut self, j: usize, x: Option<f64>, alarm: bool) -> Seen {
        let z = (x.unwrap_or(self.mean[j]) - self.mean[j]) / self.scale[j];
        let l = &mut self.level[j];
        *l = if self.seen == 0 { z } else { *l + self.alpha * (z - *l) };
        let (slot, phase) = (self.seen / self.every, self.seen % self.every);
        let window_slots = self.ring.len() as u64;
        if phase == 0 {
            self.ring[(slot % window_slots) as usize][j] = *l;
        }
        if slot < self.slots {
            return Seen {
                change: None,
                daily: None,
            };
        }
        let delta = *l - self.ring[((slot + 1) % window_slots) as usize][j];
        let at = (slot % self.day) as usize;
        if phase == 0 {
            self.before[j] = self.pattern[at][j];
            if !alarm {
                self.pattern[at][j] = delta;
            }
        }
        let daily = (slot >= self.slots + self.day && !self.daily.is_empty()).then(|| {
            // Yesterday's change at this point of the slot, between its two slot starts.
            let next = self.pattern[(at + 1) % self.day as usize][j];
            let f = phase as f64 / self.every as f64;
            delta - (self.before[j] + f * (next - self.before[j]))
        });
        Seen {
            change: Some(delta),
            daily,
        }
    }
}

/// The scaler of a model trained on `vectors` with trend thresholds calibrated on them:
/// per sensor and form, `quantile` of its healthy values (computed as [`TrendState`]
/// does, restarted at every gap; training's quantile at `opts.quantile`) times
/// `trend_factor`, at least [`MIN_THRESHOLD`]. Without a trend window or with too short
/// a training, the scaler has none.
pub fn calibrate(
    mut scaler: Scaler,
    vectors: &[(i64, Vec<f64>)],
    opts: &TrainOptions,
    quantile: impl Fn(&mut [f64]) -> f64,
) -> Scaler {
    scaler.trend = Vec::new();
    scaler.trend_daily = Vec::new();
    let m = scaler.mean.len();
    let p = &opts.features;
    let span = vectors.last().map_or(0, |v| v.0) - vectors.first().map_or(0, |v| v.0);
    if p.trend_ms <= 0 || span < MIN_WINDOWS * p.trend_ms {
        return scaler;
    }
    let ones = vec![1.0; m];
    let Some(mut state) = TrendState::with_thresholds(&scaler, p, opts.period_ms, ones.clone(), ones) else {
        return scaler;
    };
    let (mut change, mut daily) = (vec![Vec::new(); m], vec![Vec::new(); m]);
    let mut last_ts = None;
    for (ts, x) in vectors {
        if last_ts.is_some_and(|t| ts - t != opts.period_ms) {
            state.reset();
        }
        last_ts = Some(*ts);
        for j in 0..m {
            let seen = state.advance(j, x.get(j).copied(), false);
            change[j].extend(seen.change.map(f64::abs));
            daily[j].extend(seen.daily.map(f64::abs));
        }
        state.seen += 1;
    }
    let enough = |c: &[Vec<f64>]| c.first().is_some_and(|c| c.len() as u64 >= 2 * state.window());
    let thresholds = |c: &mut [Vec<f64>]| -> Vec<f64> {
        c.iter_mut()
            .map(|c| (quantile(c) * p.trend_factor).max(MIN_THRESHOLD))
            .collect()
    };
    if enough(&change) {
        scaler.trend = thresholds(&mut change);
        if enough(&daily) {
            scaler.trend_daily = thresholds(&mut daily);
        }
    }
    scaler
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::train::quantile;

    const HOUR: i64 = 3_600_000;

    fn options() -> TrainOptions {
        let mut o = TrainOptions {
            period_ms: 60_000,
            ..TrainOptions::default()
        };
        o.features.trend_ms = 4 * HOUR;
        o
    }

    /// One value a minute: a daily sine of amplitude 1 and a little seeded noise.
    fn day_cycle(from: usize, n: usize, rng: &mut fastrand::Rng) -> Vec<(i64, Vec<f64>)> {
        (from..from + n)
            .map(|i| {
                let daily = (i as f64 * std::f64::consts::TAU / 1440.0).sin();
                (i as i64 * 60_000, vec![daily + 0.05 * (rng.f64() - 0.5)])
            })
            .collect()
    }

    fn q99(c: &mut [f64]) -> f64 {
        quantile(c, 0.99)
    }

    fn scaler(v: &[(i64, Vec<f64>)]) -> Scaler {
        Scaler::fit(&v.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), 1)
    }

    #[test]
    fn calibrates_each_form_only_on_long_enough_training() {
        let mut rng = fastrand::Rng::with_seed(1);
        let v = day_cycle(0, 3 * 1440, &mut rng);
        let s = scaler(&v);
        let short = calibrate(s.clone(), &v[..600], &options(), q99);
        assert!(short.trend.is_empty() && short.trend_daily.is_empty());
        let mut off = options();
        off.features.trend_ms = 0;
        assert!(calibrate(s.clone(), &v, &off, q99).trend.is_empty());
        let one_day = calibrate(s.clone(), &v[..1440], &options(), q99);
        assert_eq!((one_day.trend.len(), one_day.trend_daily.len()), (1, 0));
        let full = calibrate(s, &v, &options(), q99);
        assert_eq!((full.trend.len(), full.trend_daily.len()), (1, 1));
        // The daily cycle sets the change's threshold; the day before explains it, so the
        // daily comparison's threshold is the floor.
        assert!(full.trend[0] > 1.0 && full.trend_daily[0] == MIN_THRESHOLD, "{full:?}");
    }

    #[test]
    fn a_creep_slower_than_the_daily_swing_is_over_after_a_day_and_a_gap_restarts_it() {
        let mut rng = fastrand::Rng::with_seed(2);
        let v = day_cycle(0, 3 * 1440, &mut rng);
        let opts = options();
        let s = calibrate(scaler(&v), &v, &opts, q99);
        let mut t = TrendState::new(&s, &opts.features, opts.period_ms).expect("calibrated");
        let mut c = [0.0];
        let mut healthy_max = 0.0f64;
        for (i, (_, x)) in day_cycle(3 * 1440, 2 * 1440, &mut rng).iter().enumerate() {
            let r = t.push(x, false, &mut c);
            if (i as u64) < t.window() {
                assert_eq!(r, 0.0, "inactive for a window");
            }
            healthy_max = healthy_max.max(r);
        }
        assert!(healthy_max < 1.0, "{healthy_max}");
        // Rising by 1.5 healthy swings over 4 h: slower than the daily cycle's own rise.
        let over = day_cycle(5 * 1440, 240, &mut rng)
            .iter()
            .enumerate()
            .map(|(i, (_, x))| t.push(&[x[0] + 1.5 * i as f64 / 240.0], true, &mut c))
            .position(|r| r > 1.0);
        assert!(over.is_some_and(|i| i < 200), "{over:?}");
        t.reset();
        assert_eq!(t.push(&[10.0], false, &mut c), 0.0);
    }
}
