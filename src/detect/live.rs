//! Live scoring in the agent: one [`Resampler`] and one [`Scorer`] per machine that has a
//! trained model, fed by the same samples the rules see. Raising and clearing a model's
//! alarm produce [`AlertEvent`]s that go through the same outbox as rule alerts.
//!
//! A machine whose model file is missing, unreadable or trained on other sensors runs
//! without a model (with the reason logged), so a gateway can be deployed before its
//! models are trained; `SIGHUP` loads them again. Reloading clears the open model alerts:
//! a new model starts from a fresh state and raises again if the fault persists.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::alarm::Transition;
use super::model::{Model, ModelError};
use super::resample::{Resampler, Tick};
use super::scorer::Scorer;
use super::{AlertEvent, AlertState};
use crate::config::{Config, Severity};
use crate::sample::{Sample, SensorId};

/// `rule` of every model alert.
pub const MODEL_RULE: &str = "model";

struct LiveModel {
    asset: String,
    severity: Severity,
    top: usize,
    resampler: Resampler,
    scorer: Scorer,
    /// `Some(first_seen_ms)` while the alert is raised.
    firing: Option<i64>,
}

/// What loading found, per configured model.
#[derive(Debug)]
pub enum LoadOutcome {
    Loaded { asset: String, path: PathBuf },
    Failed { asset: String, error: ModelError },
}

#[derive(Default)]
pub struct ModelEngine {
    models: Vec<LiveModel>,
    /// sensor → (model, position in its vector).
    by_sensor: HashMap<SensorId, Vec<(usize, usize)>>,
    ticks: Vec<Tick>,
}

impl ModelEngine {
    /// Loads the model of every asset with `[asset.model]`.
    pub fn load(config: &Config, ids: &dyn Fn(&str) -> Option<SensorId>) -> (ModelEngine, Vec<LoadOutcome>) {
        let mut engine = ModelEngine::default();
        let mut outcomes = Vec::new();
        for asset in &config.asset {
            let Some(mc) = &asset.model else { continue };
            let path = mc.path(&config.agent.data_dir, &asset.id);
            let shown = path.display().to_string();
            let loaded = Model::load(&path).and_then(|m| m.check_asset(&shown, &asset.id, &asset.sensors).map(|()| m));
            let model = match loaded {
                Ok(m) => m,
                Err(error) => {
                    outcomes.push(LoadOutcome::Failed {
                        asset: asset.id.clone(),
                        error,
                    });
                    continue;
                }
            };
            let i = engine.models.len();
            for (j, name) in asset.sensors.iter().enumerate() {
                if let Some(id) = ids(name) {
                    engine.by_sensor.entry(id).or_default().push((i, j));
                }
            }
            engine.models.push(LiveModel {
                asset: asset.id.clone(),
                severity: mc.severity,
                top: mc.contributors,
                resampler: Resampler::new(model.sensors.len(), model.period_ms, model.max_hold),
                scorer: Scorer::new(Arc::new(model)),
                firing: None,
            });
            outcomes.push(LoadOutcome::Loaded {
                asset: asset.id.clone(),
                path,
            });
        }
        (engine, outcomes)
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Feeds one sample; pushes any alert state change to `out`.
    pub fn observe(&mut self, s: &Sample, out: &mut Vec<AlertEvent>) {
        let Some(targets) = self.by_sensor.get(&s.sensor) else {
            return;
        };
        let value = (s.quality.is_good() && s.value.is_finite()).then_some(s.value);
        for &(i, j) in targets {
            let m = &mut self.models[i];
            self.ticks.clear();
            m.resampler.push(j, s.ts_ms, value, &mut self.ticks);
            for tick in self.ticks.drain(..) {
                let step = m.scorer.step(tick.values.as_deref());
                let (Some(transition), Some(score)) = (step.transition, step.score) else {
                    continue;
                };
                out.push(m.event(transition, score, tick.ts_ms));
            }
        }
    }

    /// Replaces the models (SIGHUP); open model alerts are cleared first.
    pub fn replace(&mut self, next: ModelEngine, now_ms: i64, out: &mut Vec<AlertEvent>) {
        for m in &mut self.models {
            if m.firing.is_some() {
                out.push(m.event(Transition::Cleared, 0.0, now_ms));
            }
        }
        *self = next;
    }
}

impl LiveModel {
    fn event(&mut self, transition: Transition, score: f64, ts_ms: i64) -> AlertEvent {
        let (state, first_seen_ms) = match transition {
            Transition::Raised => {
                self.firing = Some(ts_ms);
                (AlertState::Raised, ts_ms)
            }
            Transition::Cleared => (AlertState::Cleared, self.firing.take().unwrap_or(ts_ms)),
        };
        let contributions = self.scorer.contributions(self.top);
        AlertEvent {
            asset: self.asset.clone(),
            rule: MODEL_RULE.into(),
            state,
            severity: self.severity,
            sensor: contributions.first().map(|c| c.0.clone()).unwrap_or_default(),
            value: score,
            threshold: 1.0,
            ts_ms,
            first_seen_ms,
            score: Some(score),
            contributions,
        }
    }
}
