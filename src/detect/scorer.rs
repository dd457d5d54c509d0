//! The streaming scorer: one resampled vector in, a score, an alarm state and the sensors
//! that contribute most out. `forewarn run` and `forewarn eval` both score through this
//! type, so what is evaluated is what runs.
//!
//! The score is the largest statistic divided by its calibrated threshold: above 1.0 the
//! vector is "over". A model with a classifier ([`super::forest`]) adds one statistic, the
//! share of its trees voting failure, over the classifier's own threshold; a model with
//! trend thresholds adds the largest change over hours ([`super::trend`], already divided
//! by its thresholds, so its own threshold is 1.0). Over-bits go through the k-of-n /
//! minimum-duration filter ([`super::alarm`]). An incomplete vector (a sensor missing) is
//! not scored, leaves the alarm as it is and restarts the trend's window. Memory is
//! bounded by the model (window, detector state).

use std::sync::Arc;

use super::alarm::{AlarmFilter, Transition};
use super::features::FeatureState;
use super::model::Model;
use super::trend::TrendState;
use super::Detector;

/// What one vector did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Normalised score (1.0 = at the threshold); `None` for an incomplete vector.
    pub score: Option<f64>,
    /// The smoothed alarm after this vector.
    pub alarm: bool,
    pub transition: Option<Transition>,
}

pub struct Scorer {
    model: Arc<Model>,
    features: FeatureState,
    detector: Box<dyn Detector>,
    alarm: AlarmFilter,
    /// The detector's statistics, then the classifier's vote share if the model has one.
    stats: Vec<f64>,
    /// One threshold per entry of `stats`.
    thresholds: Vec<f64>,
    contrib: Vec<f64>,
    /// The statistic that set the last score.
    worst: usize,
    /// The trend over hours, last in `stats` (already relative to its thresholds).
    trend: Option<TrendState>,
}

impl Scorer {
    pub fn new(model: Arc<Model>) -> Self {
        let m = model.sensors.len();
        let detector = model.detector.build(m);
        let mut thresholds = model.thresholds.clone();
        thresholds.extend(model.classifier.as_ref().map(|c| c.threshold));
        let trend = TrendState::new(&model.scaler, &model.features, model.period_ms);
        thresholds.extend(trend.as_ref().map(|_| 1.0));
        let ns = thresholds.len();
        Scorer {
            features: FeatureState::new(model.scaler.clone(), model.features),
            alarm: AlarmFilter::new(model.alarm),
            detector,
            stats: vec![0.0; ns],
            thresholds,
            contrib: vec![0.0; ns * m],
            worst: 0,
            trend,
            model,
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn alarm(&self) -> bool {
        self.alarm.active()
    }

    /// Scores one vector (`None`: incomplete).
    pub fn step(&mut self, values: Option<&[f64]>) -> Step {
        let Some(x) = values.filter(|x| x.len() == self.model.sensors.len()) else {
            // A gap: the change over the trend window is not known until it refilled.
            if let Some(t) = self.trend.as_mut() {
                t.reset();
            }
            return Step {
                score: None,
                alarm: self.alarm.active(),
                transition: None,
            };
        };
        let z = self.features.push(x);
        let (nd, m) = (self.model.thresholds.len(), x.len());
        let (stats, votes) = self.stats.split_at_mut(nd);
        let (contrib, voters) = self.contrib.split_at_mut(nd * m);
        self.detector.observe(z, stats, contrib);
        if let (Some(c), Some(share)) = (&self.model.classifier, votes.first_mut()) {
            *share = c.vote(z, voters);
        }
        if let Some(t) = self.trend.as_mut() {
            let last = self.stats.len() - 1;
            self.stats[last] = t.push(x, self.alarm.active(), &mut self.contrib[last * m..]);
        }
        let (mut score, mut worst) = (f64::NEG_INFINITY, 0);
        for (i, (s, t)) in self.stats.iter().zip(&self.thresholds).enumerate() {
            let r = s / t;
            if r > score {
                (score, worst) = (r, i);
            }
        }
        self.worst = worst;
        let transition = self.alarm.step(score > 1.0);
        self.features.adapt(self.alarm.active());
        Step {
            score: Some(score),
            alarm: self.alarm.active(),
            transition,
        }
    }

    /// The `top` sensors that contributed most to the last score, as shares (0..1) of it,
    /// largest first.
    pub fn contributions(&self, top: usize) -> Vec<(String, f64)> {
        self.top_contributors(top)
            .into_iter()
            .map(|(k, share)| (self.model.sensors[k].clone(), share))
            .collect()
    }

    /// The same as [`Scorer::contributions`], with sensors as positions in the model's
    /// vector.
    pub fn top_contributors(&self, top: usize) -> Vec<(usize, f64)> {
        let m = self.model.sensors.len();
        let part = &self.contrib[self.worst * m..(self.worst + 1) * m];
        let total: f64 = part.iter().sum();
        let mut out: Vec<(usize, f64)> = part
            .iter()
            .enumerate()
            .map(|(k, c)| (k, if total > 0.0 { c / total } else { 0.0 }))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(top);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alarm::Transition;
    use crate::detect::train::{train, TrainOptions};

    /// Two noisy sensors and a drifting one (a temperature on a slow sine).
    /// Noise is uniform in -0.5..0.5, from a seeded generator.
    fn vector(i: usize, rng: &mut fastrand::Rng, fault: f64, temp_shift: f64) -> Vec<f64> {
        let mut noise = || rng.f64() - 0.5;
        let temp = 40.0 + (i as f64 / 300.0).sin() + temp_shift + 0.01 * noise();
        vec![10.0 + noise() + fault, 5.0 + noise(), temp]
    }

    fn model() -> Arc<Model> {
        let mut rng = fastrand::Rng::with_seed(7);
        let healthy: Vec<(i64, Vec<f64>)> = (0..400)
            .map(|i| (i as i64 * 1000, vector(i, &mut rng, 0.0, 0.0)))
            .collect();
        let sensors = ["flow", "current", "temp"].map(String::from).to_vec();
        Arc::new(train("pump", &sensors, &healthy, &TrainOptions::default(), "test").unwrap())
    }

    /// Runs `fault(i)` and `temp_shift(i)` from the end of training; returns the indices of
    /// the raised and cleared transitions.
    fn replay(fault: impl Fn(usize) -> f64, temp_shift: impl Fn(usize) -> f64) -> (Vec<usize>, Vec<usize>) {
        let mut s = Scorer::new(model());
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut raised, mut cleared) = (Vec::new(), Vec::new());
        for i in 400..3000 {
            let x = vector(i, &mut rng, fault(i), temp_shift(i));
            match s.step(Some(&x)).transition {
                Some(Transition::Raised) => raised.push(i),
                Some(Transition::Cleared) => cleared.push(i),
                None => {}
            }
        }
        (raised, cleared)
    }

    /// The alarm at `i` from raised and cleared indices.
    fn active(raised: &[usize], cleared: &[usize], i: usize) -> bool {
        raised.iter().filter(|r| **r <= i).count() > cleared.iter().filter(|c| **c <= i).count()
    }

    #[test]
    fn the_temperature_drifts_and_the_others_do_not() {
        let m = model();
        let drifting = m.scaler.drifting(m.features.drift_noise);
        assert_eq!(drifting, [false, false, true], "noise shares {:?}", m.scaler.noise);
    }

    #[test]
    fn a_slowly_developing_fault_is_raised_once_and_clears_after_the_repair() {
        // The flow creeps up so slowly (below the alarm) that the healthy baseline follows
        // most of it, then jumps, holds, and is repaired at 2000.
        let fault = |i: usize| match i {
            0..=599 => 0.0,
            600..=1499 => (i - 600) as f64 * 0.002,
            1500..=1999 => 4.5,
            _ => 0.0,
        };
        let (raised, cleared) = replay(fault, |_| 0.0);
        assert!((600..1520).contains(&raised[0]), "{raised:?}");
        assert!(
            (1550..2000).all(|i| active(&raised, &cleared, i)),
            "{raised:?} {cleared:?}"
        );
        assert!(raised.iter().all(|r| *r < 2000), "{raised:?}");
        let last = cleared.last().copied().unwrap_or(usize::MAX);
        assert!((2000..2500).contains(&last), "cleared at {cleared:?}");
    }

    #[test]
    fn a_temperature_that_drifts_during_the_fault_does_not_hold_the_alarm() {
        // A step fault on the flow from 1000 to 1600 while the temperature falls by three
        // times its healthy spread and stays there.
        let fault = |i: usize| if (1000..1600).contains(&i) { 3.0 } else { 0.0 };
        let temp = |i: usize| -((i.clamp(1000, 1600) - 1000) as f64) / 600.0;
        let (raised, cleared) = replay(fault, temp);
        assert_eq!(raised.len(), 1, "{raised:?} {cleared:?}");
        assert!((1000..1030).contains(&raised[0]), "{raised:?}");
        assert_eq!(cleared.len(), 1, "{cleared:?}");
        assert!((1600..1700).contains(&cleared[0]), "cleared at {cleared:?}");
    }
}
