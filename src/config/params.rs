//! The parameters of training and scoring a model: what `[asset.model]` resolves to, what
//! `forewarn train` and `eval` take, and what a model file stores. They live in the config
//! layer so the config's defaults and checks and the detectors read one definition.

use serde::{Deserialize, Serialize};

/// Default share of a classifier's trees that must vote "failure": a bare majority
/// false-alarmed far more on the development data.
pub const DEFAULT_CLASSIFIER_THRESHOLD: f64 = 0.75;

/// Which detector a model uses, as named in the config (`[asset.model] detector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// PCA with Hotelling's T² and the Q statistic (squared prediction error).
    #[default]
    Pca,
    /// Mahalanobis distance to the healthy mean.
    Mahalanobis,
    /// Similarity-based estimate from remembered healthy states (MSET-style), residuals.
    Mset,
    /// EWMA and two-sided CUSUM per sensor.
    Ewma,
}

impl DetectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Pca => "pca",
            DetectorKind::Mahalanobis => "mahalanobis",
            DetectorKind::Mset => "mset",
            DetectorKind::Ewma => "ewma",
        }
    }
}

/// Smoothing parameters, stored in the model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmParams {
    /// Over-threshold vectors needed among the last `n` to raise.
    pub k: u32,
    /// Length of the voting window, in vectors.
    pub n: u32,
    /// Minimum length of an alarm, in vectors.
    pub min_duration: u32,
}

/// How the features are built, stored in the model file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureParams {
    /// Moving-mean length, in vectors (1 = the values themselves).
    pub window: u32,
    /// Baseline adaptation per vector while healthy (0 = fixed baseline).
    pub adapt: f64,
    /// Baseline adaptation per vector while an alarm is active.
    pub adapt_alarm: f64,
    /// A sensor whose noise share (`Scaler::noise`) is below this drifts: its baseline
    /// follows it at `drift_adapt`, also during an alarm (0: no sensor drifts).
    #[serde(default)]
    pub drift_noise: f64,
    /// Baseline adaptation per vector of a drifting sensor.
    #[serde(default)]
    pub drift_adapt: f64,
    /// Window of the trend statistic, ms of sample time: each sensor's change of its
    /// smoothed level over this long, against what healthy training showed (0: no trend
    /// statistic, as in files written before it existed).
    #[serde(default)]
    pub trend_ms: i64,
    /// Margin on the healthy quantile of each sensor's change that calibrates its trend
    /// threshold.
    #[serde(default)]
    pub trend_factor: f64,
}

/// Everything a training run can choose (from `[asset.model]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub detector: DetectorKind,
    pub period_ms: i64,
    pub max_hold: u32,
    pub features: FeatureParams,
    /// PCA: share of healthy variance the kept components explain.
    pub variance: f64,
    /// Quantile of the healthy statistic that calibrates its threshold.
    pub quantile: f64,
    /// Margin on that quantile.
    pub factor: f64,
    /// Share of the healthy vectors (the latest) held back from fitting to calibrate the
    /// thresholds on (0: calibrate on the fitting vectors themselves).
    pub calibration: f64,
    pub alarm: AlarmParams,
    /// Share of the classifier's trees that must vote "failure" (labelled training only).
    pub classifier_threshold: f64,
}

impl Default for TrainOptions {
    /// The values chosen by grouped cross-validation on the SKAB development files
    /// (`forewarn eval --cv folder|file`; README, "Evaluation on SKAB").
    fn default() -> Self {
        TrainOptions {
            detector: DetectorKind::Pca,
            period_ms: 1000,
            max_hold: 5,
            features: FeatureParams {
                window: 10,
                adapt: 1.0 / 120.0,
                adapt_alarm: 0.0005,
                drift_noise: 0.4,
                drift_adapt: 0.05,
                trend_ms: 4 * 3_600_000,
                trend_factor: 2.0,
            },
            variance: 0.95,
            quantile: 0.99,
            factor: 2.5,
            calibration: 0.15,
            alarm: AlarmParams {
                k: 3,
                n: 10,
                min_duration: 10,
            },
            classifier_threshold: DEFAULT_CLASSIFIER_THRESHOLD,
        }
    }
}
