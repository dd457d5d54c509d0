//! Training a model on healthy history: scale, build features, fit the detector, and
//! calibrate one threshold per statistic as a quantile of its healthy values times a
//! margin. Training sees the same [`FeatureState`] the scorer uses, so features match.

use super::alarm::AlarmParams;
use super::detector::{DetectorKind, DetectorParams};
use super::features::{FeatureParams, FeatureState, Scaler};
use super::model::{Model, TrainingRange, FORMAT};
use super::DetectError;

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
    pub alarm: AlarmParams,
    /// Share of the classifier's trees that must vote "failure" (labelled training only).
    pub classifier_threshold: f64,
}

impl Default for TrainOptions {
    /// The values tuned on the SKAB development files (README, "Failure prediction").
    fn default() -> Self {
        TrainOptions {
            detector: DetectorKind::Pca,
            period_ms: 1000,
            max_hold: 5,
            features: FeatureParams {
                window: 10,
                adapt: 1.0 / 120.0,
                adapt_alarm: 0.0,
                drift_noise: 0.35,
                drift_adapt: 0.05,
            },
            variance: 0.95,
            quantile: 0.99,
            factor: 3.0,
            alarm: AlarmParams {
                k: 3,
                n: 10,
                min_duration: 10,
            },
            classifier_threshold: super::forest::DEFAULT_THRESHOLD,
        }
    }
}

/// Fewest healthy vectors a model is trained on.
pub const MIN_VECTORS: usize = 30;

/// Trains a model of `asset` on complete healthy vectors `(ts_ms, values)`.
pub fn train(
    asset: &str,
    sensors: &[String],
    vectors: &[(i64, Vec<f64>)],
    opts: &TrainOptions,
    source: &str,
) -> Result<Model, DetectError> {
    let m = sensors.len();
    if vectors.len() < MIN_VECTORS {
        return Err(DetectError::TooFewVectors(vectors.len()));
    }
    if let Some((_, bad)) = vectors
        .iter()
        .find(|(_, v)| v.len() != m || v.iter().any(|x| !x.is_finite()))
    {
        return Err(DetectError::Shape(bad.len()));
    }
    let rows: Vec<Vec<f64>> = vectors.iter().map(|(_, v)| v.clone()).collect();
    let scaler = Scaler::fit(&rows, m);
    let mut fs = FeatureState::new(scaler.clone(), opts.features);
    let feats: Vec<Vec<f64>> = rows.iter().map(|r| fs.push(r).to_vec()).collect();
    let detector = DetectorParams::fit(opts.detector, &feats, m, opts.variance)?;
    let mut d = detector.build(m);
    let ns = d.statistics().len();
    let (mut stats, mut contrib) = (vec![0.0; ns], vec![0.0; ns * m]);
    let mut columns = vec![Vec::with_capacity(feats.len()); ns];
    for f in &feats {
        d.observe(f, &mut stats, &mut contrib);
        for (c, s) in columns.iter_mut().zip(&stats) {
            c.push(*s);
        }
    }
    let thresholds = columns
        .iter_mut()
        .map(|c| (quantile(c, opts.quantile) * opts.factor).max(1e-6))
        .collect();
    Ok(Model {
        format: FORMAT,
        asset: asset.to_string(),
        sensors: sensors.to_vec(),
        period_ms: opts.period_ms,
        max_hold: opts.max_hold,
        scaler,
        features: opts.features,
        detector,
        thresholds,
        alarm: opts.alarm,
        training: TrainingRange {
            from_ms: vectors.first().map_or(0, |v| v.0),
            to_ms: vectors.last().map_or(0, |v| v.0),
            vectors: vectors.len(),
            source: source.to_string(),
        },
        classifier: None,
    })
}

/// The `q` quantile (nearest rank) of `values`; 0 for none.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
