//! `[asset.model]`: the failure-prediction model of one machine — where its file is, and
//! how `forewarn train` builds it. The trained file carries the parameters it was built
//! with; these options matter again only at the next training.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::params::{AlarmParams, DetectorKind, FeatureParams, TrainOptions};
use super::{Dur, Severity};

/// Fewest periods a retraining history may hold: the detect layer's fewest training
/// vectors (`detect::MIN_VECTORS`), which this layer may not import.
const MIN_HISTORY_PERIODS: u32 = 30;

/// `[asset.model]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name of the model's alarm: the `rule` of its alerts. Must differ from the names of
    /// the asset's rules.
    #[serde(default = "defaults::name")]
    pub name: String,
    /// The model file; default `<data_dir>/models/<asset id, '/' as '__'>.json`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `pca` (T² and Q), `mahalanobis`, `mset` (similarity residuals) or `ewma` (EWMA and
    /// CUSUM per sensor).
    #[serde(default)]
    pub detector: DetectorKind,
    /// Period of the common clock the machine's sensors are resampled onto: a duration,
    /// or `auto` (the default): chosen by `forewarn train` from the training data, the
    /// slowest sensor's typical sampling interval, so a temperature read every 5 minutes
    /// gets a 5-minute clock and 1 Hz data a 1 s one.
    #[serde(default)]
    pub period: Period,
    /// Periods a sensor's last value is carried forward; after that the vector is
    /// incomplete and not scored.
    #[serde(default = "defaults::max_hold")]
    pub max_hold: u32,
    /// Moving-mean length of the features, in periods.
    #[serde(default = "defaults::window")]
    pub window: u32,
    /// Share of the distance to the current features the baseline moves per period while
    /// healthy (follows slow drift; 0 = fixed).
    #[serde(default = "defaults::adapt")]
    pub adapt: f64,
    /// The same while a model alarm is active (0 = frozen, so a fault is not learned; a
    /// little lets an alarm that a start unlike the later healthy state raised clear).
    #[serde(default = "defaults::adapt_alarm")]
    pub adapt_alarm: f64,
    /// A sensor whose healthy variation is less than this share of sample-to-sample noise
    /// drifts (a temperature): its baseline follows it at `drift_adapt`, also during an
    /// alarm, so it alarms on fast changes only (0: no sensor drifts).
    #[serde(default = "defaults::drift_noise")]
    pub drift_noise: f64,
    /// Share of the distance a drifting sensor's baseline moves per period.
    #[serde(default = "defaults::drift_adapt")]
    pub drift_adapt: f64,
    /// Window of the trend statistic: a sensor whose smoothed level changes more over
    /// this long than in healthy training (daily cycles included), or than over the same
    /// hours a day earlier, is over, even while its level is in its healthy range.
    /// Calibrated only when the training spans three windows (the daily comparison: one
    /// day more); `0s` turns it off.
    #[serde(default = "defaults::trend_window")]
    pub trend_window: Dur,
    /// Margin on the healthy quantile of each sensor's change over the trend window.
    #[serde(default = "defaults::trend_factor")]
    pub trend_factor: f64,
    /// PCA: share of healthy variance the kept components explain.
    #[serde(default = "defaults::variance")]
    pub variance: f64,
    /// Quantile of each healthy statistic that calibrates its threshold.
    #[serde(default = "defaults::quantile")]
    pub quantile: f64,
    /// Margin on that quantile.
    #[serde(default = "defaults::factor")]
    pub factor: f64,
    /// Share of the healthy history (its latest part) held back from fitting: thresholds
    /// are calibrated on it as the model would score it live (0: on the fitting history).
    #[serde(default = "defaults::calibration")]
    pub calibration: f64,
    /// Raise when at least `alarm_k` of the last `alarm_n` periods are over the threshold.
    #[serde(default = "defaults::alarm_k")]
    pub alarm_k: u32,
    #[serde(default = "defaults::alarm_n")]
    pub alarm_n: u32,
    /// Shortest alarm: one fault is one alarm, not a flicker.
    #[serde(default = "defaults::min_duration")]
    pub min_duration: Dur,
    /// With labelled training history (`forewarn train --label-column`): the share of the
    /// classifier's trees that must vote "failure" for a period to count as over.
    #[serde(default = "defaults::classifier_threshold")]
    pub classifier_threshold: f64,
    /// Severity of model alerts.
    #[serde(default)]
    pub severity: Severity,
    /// While a model alert is open, send `renotify` this often (default: never).
    #[serde(default)]
    pub renotify: Option<Dur>,
    /// Sensors named in each model alert, largest contribution first.
    #[serde(default = "defaults::contributors")]
    pub contributors: usize,
    /// Retrain the model in the agent this often (default: never): a candidate trained on
    /// the last `retrain_history` replaces the current model only if it is not worse on
    /// the labelled history; otherwise it is kept as a shadow file.
    #[serde(default)]
    pub retrain: Option<Dur>,
    /// How much recent history a scheduled retraining trains and scores on.
    #[serde(default = "defaults::retrain_history")]
    pub retrain_history: Dur,
}

/// `period`: `"auto"`, or a duration such as `"1s"` or `"5m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Period {
    /// Chosen at training time from the data's sampling interval.
    #[default]
    Auto,
    Every(Dur),
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Period::Auto);
        }
        s.parse().map(Period::Every).map_err(|e| format!("{e}, or \"auto\""))
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Period::Auto => s.serialize_str("auto"),
            Period::Every(d) => d.serialize(s),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Auto => f.write_str("auto"),
            Period::Every(d) => d.fmt(f),
        }
    }
}

mod defaults {
    use super::super::params::TrainOptions;
    use super::Dur;

    pub fn max_hold() -> u32 {
        TrainOptions::default().max_hold
    }
    pub fn window() -> u32 {
        TrainOptions::default().features.window
    }
    pub fn adapt() -> f64 {
        TrainOptions::default().features.adapt
    }
    pub fn drift_noise() -> f64 {
        TrainOptions::default().features.drift_noise
    }
    pub fn drift_adapt() -> f64 {
        TrainOptions::default().features.drift_adapt
    }
    pub fn trend_window() -> Dur {
        Dur::from_millis(TrainOptions::default().features.trend_ms as u64)
    }
    pub fn trend_factor() -> f64 {
        TrainOptions::default().features.trend_factor
    }
    pub fn variance() -> f64 {
        TrainOptions::default().variance
    }
    pub fn quantile() -> f64 {
        TrainOptions::default().quantile
    }
    pub fn factor() -> f64 {
        TrainOptions::default().factor
    }
    pub fn adapt_alarm() -> f64 {
        TrainOptions::default().features.adapt_alarm
    }
    pub fn calibration() -> f64 {
        TrainOptions::default().calibration
    }
    pub fn alarm_k() -> u32 {
        TrainOptions::default().alarm.k
    }
    pub fn alarm_n() -> u32 {
        TrainOptions::default().alarm.n
    }
    pub fn min_duration() -> Dur {
        let o = TrainOptions::default();
        Dur::from_millis(o.alarm.min_duration as u64 * o.period_ms as u64)
    }
    pub fn classifier_threshold() -> f64 {
        TrainOptions::default().classifier_threshold
    }
    pub fn name() -> String {
        crate::base::names::MODEL_RULE.into()
    }
    pub fn contributors() -> usize {
        3
    }
    pub fn retrain_history() -> Dur {
        Dur::from_secs(7 * 86_400)
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: defaults::name(),
            file: None,
            detector: DetectorKind::default(),
            period: Period::Auto,
            max_hold: defaults::max_hold(),
            window: defaults::window(),
            adapt: defaults::adapt(),
            adapt_alarm: defaults::adapt_alarm(),
            drift_noise: defaults::drift_noise(),
            drift_adapt: defaults::drift_adapt(),
            trend_window: defaults::trend_window(),
            trend_factor: defaults::trend_factor(),
            variance: defaults::variance(),
            quantile: defaults::quantile(),
            factor: defaults::factor(),
            calibration: defaults::calibration(),
            alarm_k: defaults::alarm_k(),
            alarm_n: defaults::alarm_n(),
            min_duration: defaults::min_duration(),
            classifier_threshold: defaults::classifier_threshold(),
            severity: Severity::default(),
            renotify: None,
            contributors: defaults::contributors(),
            retrain: None,
            retrain_history: defaults::retrain_history(),
        }
    }
}

impl ModelConfig {
    /// Problems of the retraining options, as (key, message): a schedule shorter than 1s
    /// would retrain without pause, and a history shorter than the fewest vectors a model
    /// is trained on could never give a candidate.
    pub fn retrain_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(every) = self.retrain.filter(|d| d.0 < std::time::Duration::from_secs(1)) {
            out.push(("retrain", format!("{every} is shorter than 1s")));
        }
        // With `auto` the period is known only from the data; the check uses the default.
        let period = Dur::from_millis(self.train_options().period_ms as u64);
        let least = period.0 * MIN_HISTORY_PERIODS;
        if self.retrain_history.0 < least {
            out.push((
                "retrain_history",
                format!(
                    "{} holds fewer than {} periods of {}; a model needs at least that many",
                    self.retrain_history, MIN_HISTORY_PERIODS, period
                ),
            ));
        }
        out
    }

    /// Where the model of `asset` lives.
    pub fn path(&self, data_dir: &Path, asset: &str) -> PathBuf {
        match &self.file {
            Some(f) => f.clone(),
            None => data_dir
                .join("models")
                .join(format!("{}.json", asset.replace('/', "__"))),
        }
    }

    /// The training options with the configured period (`auto`: the default 1 s; `forewarn
    /// train` resolves `auto` from the data with [`ModelConfig::train_options_every`]).
    pub fn train_options(&self) -> TrainOptions {
        let period_ms = match self.period {
            Period::Every(d) => d.as_duration().as_millis() as i64,
            Period::Auto => TrainOptions::default().period_ms,
        };
        self.train_options_every(period_ms)
    }

    /// The training options on a clock of `period_ms`.
    pub fn train_options_every(&self, period_ms: i64) -> TrainOptions {
        let period_ms = period_ms.max(1);
        TrainOptions {
            detector: self.detector,
            period_ms,
            max_hold: self.max_hold,
            features: FeatureParams {
                window: self.window,
                adapt: self.adapt,
                adapt_alarm: self.adapt_alarm,
                drift_noise: self.drift_noise,
                drift_adapt: self.drift_adapt,
                trend_ms: self.trend_window.as_duration().as_millis() as i64,
                trend_factor: self.trend_factor,
            },
            variance: self.variance,
            quantile: self.quantile,
            factor: self.factor,
            calibration: self.calibration,
            alarm: AlarmParams {
                k: self.alarm_k,
                n: self.alarm_n,
                min_duration: (self.min_duration.as_duration().as_millis() as i64 / period_ms) as u32,
            },
            classifier_threshold: self.classifier_threshold,
        }
    }
}
