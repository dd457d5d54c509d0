//! The labelled store history of an asset: its sensors read from the [`Store`] over a
//! range, resampled onto a model's clock as the agent resamples them, and the operators'
//! labels of the asset applied to every tick ([`kind_at`]: maintenance over failure over
//! false alarm). Training (`forewarn train`), `eval --store` and scheduled retraining all
//! read history through here, so they see the same vectors and the same labels.
//!
//! Labels mean: false-alarm and unlabelled ticks are healthy, failure ticks feed the
//! classifier, maintenance ticks are never learned from and never scored. Scoring replays
//! every tick through the live [`Scorer`] (so features evolve as they would have in the
//! agent) and scores the complete, non-maintenance ticks with SKAB's metrics, where the
//! anomaly is a failure label and true changepoints are the failure labels' edges.

use std::sync::Arc;

use super::forest::MIN_FAILURES;
use super::model::Model;
use super::resample::{self, Resampler};
use super::scorer::Scorer;
use super::skab::{self, FilePredictions, LabelledFile, Score, TRAIN_ROWS};
use super::train::{self, TrainOptions};
use super::DetectError;
use crate::base::label::{kind_at, Label, LabelKind};
use crate::base::sample::rfc3339_ms;
use crate::config::{ModelConfig, Period};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("the store has no samples of sensor {0:?}")]
    NoSensor(String),
    #[error("training the model of {asset}: {source}")]
    Train { asset: String, source: DetectError },
}

/// One stored value: `(ts_ms, sensor index, value)`; `None` for a bad or missing one.
type Row = (i64, usize, Option<f64>);

/// The raw history of an asset's sensors and its labels.
#[derive(Debug, Clone)]
pub struct History {
    pub asset: String,
    pub sensors: Vec<String>,
    rows: Vec<Row>,
    /// The asset's labels (all of them; a tick takes those covering it).
    pub labels: Vec<Label>,
}

/// A history on a model's clock: every tick, complete or not, with its label.
#[derive(Debug, Clone)]
pub struct Clocked {
    pub period_ms: i64,
    /// `(tick start ms, vector)`; `None` when a sensor was missing.
    pub ticks: Vec<(i64, Option<Vec<f64>>)>,
    pub kinds: Vec<Option<LabelKind>>,
}

impl History {
    /// Reads `sensors` of `asset` from `store` over `from_ms..=to_ms`, and its labels.
    pub fn read(
        store: &Store,
        asset: &str,
        sensors: &[String],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<History, HistoryError> {
        let mut rows = Vec::new();
        for (j, name) in sensors.iter().enumerate() {
            let Some(id) = store.lookup_sensor(name)? else {
                return Err(HistoryError::NoSensor(name.clone()));
            };
            for s in store.read(id, from_ms, to_ms)? {
                let good = s.quality.is_good() && s.value.is_finite();
                rows.push((s.ts_ms, j, good.then_some(s.value)));
            }
        }
        rows.sort_by_key(|r| (r.0, r.1));
        Ok(History {
            asset: asset.to_string(),
            sensors: sensors.to_vec(),
            rows,
            labels: store.labels(Some(asset))?,
        })
    }

    /// The training options of `mc` for this history: an `auto` period resolved from the
    /// sensors' sampling intervals, as `forewarn train` does.
    pub fn train_options(&self, mc: &ModelConfig) -> TrainOptions {
        train_options(mc, self.rows.iter().map(|r| (r.1, r.0)), self.sensors.len())
    }

    /// The history resampled onto a clock of `period_ms`, holding values `max_hold` ticks.
    pub fn clock(&self, period_ms: i64, max_hold: u32) -> Clocked {
        let mut r = Resampler::new(self.sensors.len(), period_ms, max_hold);
        let mut ticks = Vec::new();
        for (ts, j, v) in &self.rows {
            r.push(*j, *ts, *v, &mut ticks);
        }
        r.finish(&mut ticks);
        let period = period_ms.max(1);
        let ticks: Vec<(i64, Option<Vec<f64>>)> = ticks.into_iter().map(|t| (t.index * period, t.values)).collect();
        let kinds = ticks.iter().map(|(ts, _)| kind_at(&self.labels, *ts)).collect();
        Clocked {
            period_ms: period,
            ticks,
            kinds,
        }
    }
}

/// What training learned from, so the user can see what the labels did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainingSet {
    /// Ticks in the history, complete or not.
    pub ticks: usize,
    /// Complete vectors learned as healthy (unlabelled or false-alarm).
    pub healthy: usize,
    /// Of those, inside false-alarm spans.
    pub false_alarm: usize,
    /// Complete vectors inside failure spans.
    pub failure: usize,
    /// Complete vectors skipped inside maintenance spans.
    pub maintenance: usize,
    /// Complete vectors skipped because the caller excluded them.
    pub excluded: usize,
    /// Whether a classifier was fitted on the failure vectors.
    pub classifier: bool,
}

impl TrainingSet {
    /// One line for the user: what was learned from, and why no classifier if none.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "labels: {} healthy vectors ({} in false-alarm spans), {} in failure spans, {} skipped in maintenance spans",
            self.healthy, self.false_alarm, self.failure, self.maintenance
        );
        if self.excluded > 0 {
            s.push_str(&format!(", {} skipped where the current model alarmed", self.excluded));
        }
        if !self.classifier && self.failure > 0 {
            s.push_str(&format!(
                "; fewer than {MIN_FAILURES} failure vectors: healthy detector only, the failure vectors are not learned from"
            ));
        }
        s
    }
}

impl Clocked {
    /// Trains a model on this history with its labels applied; `exclude(i)` skips tick `i`
    /// as well (retraining skips where the current model alarmed without a false-alarm
    /// label). With at least [`MIN_FAILURES`] failure vectors the model also holds a
    /// classifier; with fewer, failure vectors are left out and only the healthy detector
    /// is trained.
    pub fn train(
        &self,
        asset: &str,
        sensors: &[String],
        opts: &TrainOptions,
        source: &str,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<(Model, TrainingSet), HistoryError> {
        let mut set = TrainingSet {
            ticks: self.ticks.len(),
            ..TrainingSet::default()
        };
        let (mut vectors, mut labels) = (Vec::new(), Vec::new());
        for (i, ((ts, v), kind)) in self.ticks.iter().zip(&self.kinds).enumerate() {
            let Some(v) = v else { continue };
            let label = match kind {
                Some(LabelKind::Maintenance) => {
                    set.maintenance += 1;
                    continue;
                }
                _ if exclude(i) => {
                    set.excluded += 1;
                    continue;
                }
                Some(LabelKind::Failure) => 1,
                Some(LabelKind::FalseAlarm) => {
                    set.false_alarm += 1;
                    0
                }
                None => 0,
            };
            vectors.push((*ts, v.clone()));
            labels.push(label);
        }
        set.failure = labels.iter().filter(|l| **l == 1).count();
        set.healthy = labels.len() - set.failure;
        set.classifier = set.failure >= MIN_FAILURES;
        let fitted = if set.classifier {
            train::train_labelled(asset, sensors, &vectors, &labels, opts, source)
        } else {
            let healthy: Vec<(i64, Vec<f64>)> = vectors
                .into_iter()
                .zip(&labels)
                .filter(|(_, l)| **l == 0)
                .map(|(v, _)| v)
                .collect();
            train::train(asset, sensors, &healthy, opts, source)
        };
        let model = fitted.map_err(|source| HistoryError::Train {
            asset: asset.to_string(),
            source,
        })?;
        Ok((model, set))
    }

    /// Replays every tick through a scorer of `model`: the alarm after each tick.
    pub fn replay(&self, model: &Model) -> Vec<bool> {
        let mut scorer = Scorer::new(Arc::new(model.clone()));
        self.ticks
            .iter()
            .map(|(_, v)| scorer.step(v.as_deref()).alarm)
            .collect()
    }

    /// Scores `model` on this history: the alarms of [`Clocked::replay`] on the complete,
    /// non-maintenance ticks against the failure labels, with SKAB's metrics.
    pub fn evaluate(&self, name: &str, sensors: &[String], model: &Model) -> Evaluation {
        let alarms = self.replay(model);
        let (file, rows) = self.labelled_file(name, sensors);
        let pred: Vec<u8> = rows.iter().map(|&i| u8::from(alarms[i])).collect();
        let score = skab::score_file(&file, &FilePredictions::from_alarms(name, pred.clone()));
        Evaluation {
            score,
            rows,
            pred,
            alarms,
        }
    }

    /// The scored ticks as a SKAB file, and the tick index of each scored row. SKAB
    /// scores a file after its first [`TRAIN_ROWS`] rows; here the model is given, so
    /// those leading rows are placeholders before the history, never scored.
    fn labelled_file(&self, name: &str, sensors: &[String]) -> (LabelledFile, Vec<usize>) {
        let rows: Vec<usize> = (0..self.ticks.len())
            .filter(|&i| self.ticks[i].1.is_some() && self.kinds[i] != Some(LabelKind::Maintenance))
            .collect();
        let lead_ts = self.ticks.first().map_or(0, |t| t.0.div_euclid(1000));
        let mut f = LabelledFile {
            name: name.to_string(),
            times: vec![String::new(); TRAIN_ROWS],
            ts_s: vec![lead_ts; TRAIN_ROWS],
            columns: sensors.to_vec(),
            values: vec![vec![0.0; sensors.len()]; TRAIN_ROWS],
            anomaly: vec![0; TRAIN_ROWS],
            changepoint: vec![0; TRAIN_ROWS],
        };
        for &i in &rows {
            let (ts, v) = &self.ticks[i];
            let anomaly = u8::from(self.kinds[i] == Some(LabelKind::Failure));
            // The placeholders are healthy: a history that starts in a failure starts with an edge.
            let edge = f.anomaly.last() != Some(&anomaly);
            f.changepoint.push(u8::from(edge));
            f.anomaly.push(anomaly);
            f.ts_s.push(ts.div_euclid(1000));
            f.times.push(rfc3339_ms(*ts));
            f.values.push(v.clone().unwrap_or_default());
        }
        (f, rows)
    }
}

/// A model's figures on a labelled history.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub score: Score,
    /// The tick index of each scored row.
    pub rows: Vec<usize>,
    /// The alarm on each scored row (0/1).
    pub pred: Vec<u8>,
    /// The alarm after every tick.
    pub alarms: Vec<bool>,
}

impl Evaluation {
    /// `(scored rows, alarmed rows)` of `clocked` inside `label`'s span.
    pub fn in_span(&self, clocked: &Clocked, label: &Label) -> (usize, usize) {
        self.rows
            .iter()
            .zip(&self.pred)
            .filter(|(i, _)| label.covers(clocked.ticks[**i].0))
            .fold((0, 0), |(n, a), (_, p)| (n + 1, a + usize::from(*p == 1)))
    }
}

/// The training options of `mc` for samples `(sensor index, ts_ms)` of `sensors` sensors:
/// an `auto` period becomes the slowest sensor's typical sampling interval (see
/// [`resample::auto_period_ms`]); without enough samples to tell, the default period.
pub fn train_options(
    mc: &ModelConfig,
    samples: impl IntoIterator<Item = (usize, i64)>,
    sensors: usize,
) -> TrainOptions {
    match mc.period {
        Period::Every(_) => mc.train_options(),
        Period::Auto => {
            let chosen = resample::auto_period_ms(samples, sensors);
            mc.train_options_every(chosen.unwrap_or(mc.train_options().period_ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scored_rows_skip_maintenance_and_gaps_and_failure_edges_are_changepoints() {
        use LabelKind::*;
        let kinds = [
            None,
            Some(Failure),
            Some(Failure),
            Some(Maintenance),
            None,
            Some(FalseAlarm),
            None,
        ];
        let clocked = Clocked {
            period_ms: 1000,
            ticks: (0..kinds.len() as i64)
                .map(|i| (i * 1000, (i != 4).then(|| vec![i as f64])))
                .collect(),
            kinds: kinds.to_vec(),
        };
        let (f, rows) = clocked.labelled_file("m", &["x".into()]);
        assert_eq!(
            rows,
            vec![0, 1, 2, 5, 6],
            "maintenance (3) and the incomplete tick (4) are not scored"
        );
        assert_eq!(f.test_rows(), rows.len());
        assert_eq!(&f.anomaly[TRAIN_ROWS..], &[0, 1, 1, 0, 0]);
        assert_eq!(&f.changepoint[TRAIN_ROWS..], &[0, 1, 0, 1, 0]);
        assert_eq!(f.values[TRAIN_ROWS + 3], vec![5.0]);
    }
}
