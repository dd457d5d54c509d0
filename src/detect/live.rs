//! Live scoring in the agent: one [`Resampler`] and one [`Scorer`] per machine that has a
//! trained model, fed by the same samples the rules see. Each scored vector becomes an
//! [`Observation`] of the asset's model alarm (an [`AlarmDef`] registered with the alert
//! lifecycle like a rule's), so model alerts get the same lifecycle as rule alerts:
//! persisted state, re-notification, folding into a parent asset's incident.
//!
//! The scorer's smoothed alarm (k of n over the threshold, minimum duration) decides the
//! level, so the lifecycle raises and clears on the edges `forewarn eval` scores; the model
//! alarm's policy therefore has no pending time and no `clear_after` of its own. Until a
//! fresh scorer has seen enough vectors to know the alarm is off (after start-up or
//! `SIGHUP`), a quiet vector is reported as `Hold`, so an incident carried over a restart
//! or a reload is neither cleared nor raised again if the fault persists.
//!
//! A machine whose model file is missing, unreadable or trained on other sensors runs
//! without a model (with the reason logged), so a gateway can be deployed before its
//! models are trained; `SIGHUP` loads them again. Its alarm stays registered, and an
//! incident open from an earlier run stays open until a model reports on it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::model::{Model, ModelError};
use super::resample::{Resampler, Tick};
use super::scorer::Scorer;
use super::{AlarmDef, AlarmId, Level, Observation, Policy, SensorValue};
use crate::base::sample::{Sample, SensorId};
use crate::config::{Asset, ModelConfig};

/// The alarm a model reports to.
pub fn alarm_def(asset: &Asset, mc: &ModelConfig) -> AlarmDef {
    AlarmDef {
        asset: asset.id.clone(),
        rule: mc.name.clone(),
        severity: mc.severity,
        policy: Policy {
            min_duration_ms: 0,
            clear_after_ms: 0,
            renotify_ms: mc.renotify.map(|d| d.as_duration().as_millis() as i64),
        },
    }
}

/// The lifecycle alarm of every asset with `[asset.model]`, registered once at start-up
/// whether or not its model loads, so that a model loaded later reports to the same alarm.
#[derive(Debug, Clone, Default)]
pub struct ModelAlarms {
    by_asset: HashMap<String, AlarmId>,
}

impl ModelAlarms {
    pub fn register(assets: &[Asset], register: &mut dyn FnMut(AlarmDef) -> AlarmId) -> Self {
        let by_asset = assets
            .iter()
            .filter_map(|a| a.model.as_ref().map(|mc| (a.id.clone(), register(alarm_def(a, mc)))))
            .collect();
        ModelAlarms { by_asset }
    }

    pub fn get(&self, asset: &str) -> Option<AlarmId> {
        self.by_asset.get(asset).copied()
    }
}

struct LiveModel {
    alarm: AlarmId,
    top: usize,
    resampler: Resampler,
    scorer: Scorer,
    /// Vectors scored so far, up to `settled`.
    scored: u32,
    /// Scored vectors after which an inactive alarm means normal (the voting window and
    /// the feature window filled).
    settled: u32,
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
    /// Loads the model of every asset with `[asset.model]` (default files under
    /// `data_dir`); each reports to its alarm in `alarms`.
    pub fn load(
        assets: &[Asset],
        data_dir: &Path,
        ids: &dyn Fn(&str) -> Option<SensorId>,
        alarms: &ModelAlarms,
    ) -> (ModelEngine, Vec<LoadOutcome>) {
        let mut engine = ModelEngine::default();
        let mut outcomes = Vec::new();
        for asset in assets {
            let (Some(mc), Some(alarm)) = (&asset.model, alarms.get(&asset.id)) else {
                continue;
            };
            let path = mc.path(data_dir, &asset.id);
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
            let settled = model.alarm.n.saturating_add(model.features.window);
            engine.models.push(LiveModel {
                alarm,
                top: mc.contributors,
                resampler: Resampler::new(model.sensors.len(), model.period_ms, model.max_hold),
                scorer: Scorer::new(Arc::new(model)),
                scored: 0,
                settled,
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

    /// The version of the model loaded for `asset`, if one is.
    pub fn version_of(&self, asset: &str) -> Option<u64> {
        self.models
            .iter()
            .map(|m| m.scorer.model())
            .find(|m| m.asset == asset)
            .map(|m| m.version)
    }

    /// Feeds one sample; pushes an observation per vector it completes and scores.
    pub fn observe(&mut self, s: &Sample, out: &mut Vec<(AlarmId, Observation)>) {
        let Some(targets) = self.by_sensor.get(&s.sensor) else {
            return;
        };
        let value = (s.quality.is_good() && s.value.is_finite()).then_some(s.value);
        for &(i, j) in targets {
            let m = &mut self.models[i];
            self.ticks.clear();
            m.resampler.push(j, s.ts_ms, value, &mut self.ticks);
            for tick in self.ticks.drain(..) {
                if let Some(obs) = m.score(&tick) {
                    out.push((m.alarm, obs));
                }
            }
        }
    }
}

impl LiveModel {
    fn score(&mut self, tick: &Tick) -> Option<Observation> {
        let Some(values) = tick.values.as_deref() else {
            // Through the scorer as `eval` does, so that a gap restarts the trend's window
            // here too; an incomplete vector reports nothing.
            self.scorer.step(None);
            return None;
        };
        let step = self.scorer.step(Some(values));
        let score = step.score?;
        self.scored = self.scored.saturating_add(1).min(self.settled);
        let level = if step.alarm {
            Level::Alarm
        } else if self.scored < self.settled {
            Level::Hold
        } else {
            Level::Normal
        };
        let names = &self.scorer.model().sensors;
        let sensors: Vec<SensorValue> = self
            .scorer
            .top_contributors(self.top)
            .into_iter()
            .map(|(k, share)| SensorValue {
                name: names[k].clone(),
                value: values[k],
                contribution: share,
            })
            .collect();
        let (sensor, value) = sensors
            .first()
            .map_or((String::new(), f64::NAN), |c| (c.name.clone(), c.value));
        Some(Observation {
            ts_ms: tick.ts_ms,
            level,
            sensor,
            value,
            threshold: 1.0,
            clear_threshold: 1.0,
            score: Some(score),
            sensors,
            model_version: Some(self.scorer.model().version),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::train::{train, TrainOptions};

    /// A live model of `pump` over sensors 0, 1, 2 with the given version.
    fn engine(version: u64) -> ModelEngine {
        let mut rng = fastrand::Rng::with_seed(7);
        let healthy: Vec<(i64, Vec<f64>)> = (0..400)
            .map(|i| (i * 1000, vec![10.0 + rng.f64(), 5.0 + rng.f64(), 40.0 + rng.f64()]))
            .collect();
        let sensors = ["flow", "current", "temp"].map(String::from).to_vec();
        let mut model = train("pump", &sensors, &healthy, &TrainOptions::default(), "test").unwrap();
        model.version = version;
        engine_of(Arc::new(model))
    }

    /// The live engine of one model over sensors 0, 1, 2.
    fn engine_of(model: Arc<Model>) -> ModelEngine {
        let mut engine = ModelEngine::default();
        for j in 0..3 {
            engine.by_sensor.insert(j as SensorId, vec![(0, j)]);
        }
        engine.models.push(LiveModel {
            alarm: 0,
            top: 3,
            resampler: Resampler::new(3, model.period_ms, model.max_hold),
            scorer: Scorer::new(model),
            scored: 0,
            settled: 0,
        });
        engine
    }

    #[test]
    fn model_observations_carry_the_version_of_their_model() {
        let mut e = engine(5);
        assert_eq!((e.version_of("pump"), e.version_of("fan")), (Some(5), None));
        let mut out = Vec::new();
        for i in 0..200i64 {
            for j in 0..3 {
                e.observe(&Sample::good(j, i * 1000, [10.5, 5.5, 40.5][j as usize]), &mut out);
            }
        }
        assert!(!out.is_empty(), "the model scored");
        assert!(out.iter().all(|(_, o)| o.model_version == Some(5) && o.score.is_some()));
    }

    /// Samples of a pump whose temperature follows a slow sine and, from `ramp_at`, climbs;
    /// sensor 1 is missing (bad quality) in `gap`.
    fn stream(gap: std::ops::Range<i64>, ramp_at: i64) -> Vec<Sample> {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut out = Vec::new();
        for i in 400..900i64 {
            let ramp = if i >= ramp_at { 0.02 * (i - ramp_at) as f64 } else { 0.0 };
            let temp = 40.0 + (i as f64 / 300.0).sin() + ramp + 0.01 * (rng.f64() - 0.5);
            out.push(Sample::good(0, i * 1000, 10.0 + rng.f64() - 0.5));
            if gap.contains(&i) {
                out.push(Sample::bad(1, i * 1000, crate::base::sample::Quality::Timeout));
            } else {
                out.push(Sample::good(1, i * 1000, 5.0 + rng.f64() - 0.5));
            }
            out.push(Sample::good(2, i * 1000, temp));
        }
        out
    }

    #[test]
    fn the_agent_scores_every_vector_as_eval_does_also_across_a_gap() {
        // A trend over one minute, so that a short training calibrates it.
        let mut opts = TrainOptions::default();
        opts.features.trend_ms = 60_000;
        let mut rng = fastrand::Rng::with_seed(7);
        let healthy: Vec<(i64, Vec<f64>)> = (0..400)
            .map(|i| {
                let temp = 40.0 + (i as f64 / 300.0).sin() + 0.01 * (rng.f64() - 0.5);
                (i * 1000, vec![10.0 + rng.f64() - 0.5, 5.0 + rng.f64() - 0.5, temp])
            })
            .collect();
        let sensors = ["flow", "current", "temp"].map(String::from).to_vec();
        let model = Arc::new(train("pump", &sensors, &healthy, &opts, "test").unwrap());
        assert!(!model.scaler.trend.is_empty(), "the trend is calibrated");
        let samples = stream(600..620, 620);
        // What eval does: every tick through the scorer, incomplete ones included.
        let mut resampler = Resampler::new(3, model.period_ms, model.max_hold);
        let mut ticks = Vec::new();
        for s in &samples {
            resampler.push(
                s.sensor as usize,
                s.ts_ms,
                s.quality.is_good().then_some(s.value),
                &mut ticks,
            );
        }
        let mut scorer = Scorer::new(model.clone());
        let expected: Vec<(i64, f64)> = ticks
            .iter()
            .filter_map(|t| scorer.step(t.values.as_deref()).score.map(|s| (t.ts_ms, s)))
            .collect();
        let mut engine = engine_of(model);
        let mut out = Vec::new();
        for s in &samples {
            engine.observe(s, &mut out);
        }
        let live: Vec<(i64, f64)> = out.iter().map(|(_, o)| (o.ts_ms, o.score.unwrap())).collect();
        assert_eq!(live.len(), expected.len());
        let differ = live.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{differ} vectors scored otherwise than in eval");
    }
}
