//! `[asset.model]`: the failure-prediction model of one machine — where its file is, and
//! how `forewarn train` builds it. The trained file carries the parameters it was built
//! with; these options matter again only at the next training.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::params::{AlarmParams, DetectorKind, FeatureParams, TrainOptions};
use super::{Dur, Severity};

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
    /// Period of the common clock the machine's sensors are resampled onto.
    #[serde(default = "defaults::period")]
    pub period: Dur,
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
}

mod defaults {
    use super::super::params::TrainOptions;
    use super::Dur;

    pub fn period() -> Dur {
        Dur::from_millis(TrainOptions::default().period_ms as u64)
    }
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: defaults::name(),
            file: None,
            detector: DetectorKind::default(),
            period: defaults::period(),
            max_hold: defaults::max_hold(),
            window: defaults::window(),
            adapt: defaults::adapt(),
            adapt_alarm: defaults::adapt_alarm(),
            drift_noise: defaults::drift_noise(),
            drift_adapt: defaults::drift_adapt(),
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
        }
    }
}

impl ModelConfig {
    /// Where the model of `asset` lives.
    pub fn path(&self, data_dir: &Path, asset: &str) -> PathBuf {
        match &self.file {
            Some(f) => f.clone(),
            None => data_dir
                .join("models")
                .join(format!("{}.json", asset.replace('/', "__"))),
        }
    }

    pub fn train_options(&self) -> TrainOptions {
        let period_ms = (self.period.as_duration().as_millis() as i64).max(1);
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
