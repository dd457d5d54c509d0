//! Features of one resampled vector: each sensor scaled by its healthy mean and standard
//! deviation, averaged over the last `window` vectors (a moving mean that quiets sensor
//! noise), minus a slowly adapting baseline that follows healthy drift (warm-up of a
//! machine, seasons) but holds still while an alarm is active, so a fault is not learned
//! as the new normal.
//!
//! Two kinds of sensor are told apart on the healthy data by their *noise share*: how much
//! of their variation is sample-to-sample noise rather than slow movement. A noisy sensor
//! (flow, current, vibration RMS) holds a steady level, so a shift of its level is a
//! symptom. A drifting sensor (a temperature) wanders further than a short healthy record
//! can show, so its level says little: its baseline follows it always, also during an
//! alarm, and it only counts when it moves faster than that. Without this split a
//! temperature that kept drifting during a fault holds the alarm long after the repair.
//!
//! During an alarm the baseline of a noisy sensor never moves towards the faulty readings;
//! it only walks back towards the trained state when the readings do, so a model whose
//! baseline had crept towards a slowly developing fault still clears after the repair.
//!
//! Memory: `window` vectors plus four numbers per sensor.

use serde::{Deserialize, Serialize};

/// Per-sensor standardisation, fitted on healthy data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    /// Noise share of each sensor (0..1): the standard deviation of its healthy
    /// sample-to-sample steps over √2, relative to `scale`. White noise gives 1, a slow
    /// drift close to 0. Empty in files written before it existed: no sensor drifts.
    #[serde(default)]
    pub noise: Vec<f64>,
    /// Per sensor, the largest change of its standardised level over the trend window
    /// that still counts as healthy (see `detect::trend`); empty: no trend statistic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trend: Vec<f64>,
    /// The same for the change against the same hours a day earlier; empty: no daily
    /// comparison.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trend_daily: Vec<f64>,
}

impl Scaler {
    /// Mean and standard deviation of each column; a flat sensor gets a small scale
    /// relative to its level rather than zero.
    pub fn fit(rows: &[Vec<f64>], m: usize) -> Scaler {
        let n = rows.len().max(1) as f64;
        let mean: Vec<f64> = (0..m).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let scale: Vec<f64> = (0..m)
            .map(|j| {
                let var = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                var.sqrt().max(1e-3 * mean[j].abs()).max(1e-9)
            })
            .collect();
        let noise = (0..m)
            .map(|j| {
                let steps: Vec<f64> = rows.windows(2).map(|w| w[1][j] - w[0][j]).collect();
                let k = steps.len().max(1) as f64;
                let avg = steps.iter().sum::<f64>() / k;
                let var = steps.iter().map(|d| (d - avg).powi(2)).sum::<f64>() / k;
                ((var / 2.0).sqrt() / scale[j]).min(1.0)
            })
            .collect();
        Scaler {
            mean,
            scale,
            noise,
            trend: Vec::new(),
            trend_daily: Vec::new(),
        }
    }

    /// Which sensors drift: a noise share below `drift_noise`.
    pub fn drifting(&self, drift_noise: f64) -> Vec<bool> {
        (0..self.mean.len())
            .map(|j| self.noise.get(j).is_some_and(|r| *r < drift_noise))
            .collect()
    }
}

pub use crate::config::params::FeatureParams;

#[derive(Debug, Clone)]
pub struct FeatureState {
    scaler: Scaler,
    p: FeatureParams,
    ring: Vec<Vec<f64>>,
    next: usize,
    filled: usize,
    sum: Vec<f64>,
    mean: Vec<f64>,
    baseline: Vec<f64>,
    drifting: Vec<bool>,
    out: Vec<f64>,
}

impl FeatureState {
    pub fn new(scaler: Scaler, p: FeatureParams) -> Self {
        let m = scaler.mean.len();
        let w = p.window.max(1) as usize;
        let drifting = scaler.drifting(p.drift_noise);
        FeatureState {
            drifting,
            scaler,
            p,
            ring: vec![vec![0.0; m]; w],
            next: 0,
            filled: 0,
            sum: vec![0.0; m],
            mean: vec![0.0; m],
            baseline: vec![0.0; m],
            out: vec![0.0; m],
        }
    }

    /// The feature vector of `x` (length = sensors).
    pub fn push(&mut self, x: &[f64]) -> &[f64] {
        let slot = &mut self.ring[self.next];
        for j in 0..x.len().min(slot.len()) {
            let z = (x[j] - self.scaler.mean[j]) / self.scaler.scale[j];
            self.sum[j] += z - slot[j];
            slot[j] = z;
        }
        self.next = (self.next + 1) % self.ring.len();
        self.filled = (self.filled + 1).min(self.ring.len());
        // Recompute the sum now and then so rounding errors cannot accumulate.
        if self.next == 0 {
            for j in 0..self.sum.len() {
                self.sum[j] = self.ring.iter().map(|r| r[j]).sum();
            }
        }
        let n = self.filled as f64;
        for j in 0..self.out.len() {
            self.mean[j] = self.sum[j] / n;
            self.out[j] = self.mean[j] - self.baseline[j];
        }
        &self.out
    }

    /// Moves the baseline towards the current moving mean: drifting sensors always, the
    /// others slower (or not at all) while an alarm is active.
    pub fn adapt(&mut self, alarm: bool) {
        for ((b, m), drifting) in self.baseline.iter_mut().zip(&self.mean).zip(&self.drifting) {
            if *drifting {
                *b += self.p.drift_adapt * (m - *b);
            } else if !alarm {
                *b += self.p.adapt * (m - *b);
            } else if (m - *b) * *b < 0.0 {
                // Back towards the trained state (0) as far as the readings have gone, never
                // past it: the readings are nearer to healthy than the baseline is.
                *b = if m * *b <= 0.0 { 0.0 } else { *m };
            } else {
                *b += self.p.adapt_alarm * (m - *b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_averages_and_follows_drift_only_when_healthy() {
        let s = Scaler::fit(&[vec![0.0], vec![2.0]], 1);
        assert_eq!(s.mean, vec![1.0]);
        let p = FeatureParams {
            window: 2,
            adapt: 0.5,
            adapt_alarm: 0.0,
            drift_noise: 0.0,
            drift_adapt: 0.0,
            trend_ms: 0,
            trend_factor: 0.0,
        };
        let mut f = FeatureState::new(s.clone(), p);
        let z = f.push(&[1.0 + s.scale[0]])[0];
        assert!((z - 1.0).abs() < 1e-12);
        let z = f.push(&[1.0 + 3.0 * s.scale[0]])[0];
        assert!((z - 2.0).abs() < 1e-12, "moving mean of 1 and 3");
        f.adapt(true);
        assert!((f.push(&[1.0 + 3.0 * s.scale[0]])[0] - 3.0).abs() < 1e-12);
        f.adapt(false);
        assert!((f.push(&[1.0 + 3.0 * s.scale[0]])[0] - 1.5).abs() < 1e-12);
    }
}
