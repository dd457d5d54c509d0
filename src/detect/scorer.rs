//! The streaming scorer: one resampled vector in, a score, an alarm state and the sensors
//! that contribute most out. `forewarn run` and `forewarn eval` both score through this
//! type, so what is evaluated is what runs.
//!
//! The score is the largest statistic divided by its calibrated threshold: above 1.0 the
//! vector is "over". A model with a classifier ([`super::forest`]) adds one statistic, the
//! share of its trees voting failure, over the classifier's own threshold. Over-bits go through the k-of-n / minimum-duration filter
//! ([`super::alarm`]). An incomplete vector (a sensor missing) is not scored and leaves the
//! alarm as it is. Memory is bounded by the model (window, detector state).

use std::sync::Arc;

use super::alarm::{AlarmFilter, Transition};
use super::detector::Detector;
use super::features::FeatureState;
use super::model::Model;

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
}

impl Scorer {
    pub fn new(model: Arc<Model>) -> Self {
        let m = model.sensors.len();
        let detector = model.detector.build(m);
        let mut thresholds = model.thresholds.clone();
        thresholds.extend(model.classifier.as_ref().map(|c| c.threshold));
        let ns = thresholds.len();
        Scorer {
            features: FeatureState::new(model.scaler.clone(), model.features),
            alarm: AlarmFilter::new(model.alarm),
            detector,
            stats: vec![0.0; ns],
            thresholds,
            contrib: vec![0.0; ns * m],
            worst: 0,
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
