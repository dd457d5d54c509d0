//! Training a model on healthy history: scale, build features, fit the detector, and
//! calibrate one threshold per statistic as a quantile of its healthy values times a
//! margin. Training sees the same [`FeatureState`] the scorer uses, so features match.

use super::detector::DetectorParams;
use super::features::{FeatureParams, FeatureState, Scaler};
use super::forest::ForestParams;
use super::model::{Model, TrainingRange, FORMAT};
use super::resample::Tick;
use super::DetectError;

pub use crate::config::params::TrainOptions;

pub use super::MIN_VECTORS;

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
    let scaler = super::trend::calibrate(Scaler::fit(&rows, m), vectors, opts, |c| quantile(c, opts.quantile));
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
        version: 0,
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

/// Feature vectors of `vectors` (complete, in time order) through one [`FeatureState`]
/// pass, as the scorer computes them: the baseline adapts while the label says healthy
/// and holds during a failure, as it would if the scorer's alarm followed the labels.
pub fn labelled_features(scaler: &Scaler, params: FeatureParams, vectors: &[Vec<f64>], labels: &[u8]) -> Vec<Vec<f64>> {
    let mut fs = FeatureState::new(scaler.clone(), params);
    vectors
        .iter()
        .zip(labels)
        .map(|(v, &l)| {
            let z = fs.push(v).to_vec();
            fs.adapt(l == 1);
            z
        })
        .collect()
}

/// The label of each tick: that of the last labelled time `(ts_ms, label)` (sorted by time)
/// falling in the tick or before it; 0 before the first.
pub fn tick_labels(ticks: &[Tick], labels: &[(i64, u8)], period_ms: i64) -> Vec<u8> {
    let period = period_ms.max(1);
    ticks
        .iter()
        .map(|t| {
            let at = labels.partition_point(|(ts, _)| ts.div_euclid(period) <= t.index);
            if at > 0 {
                labels[at - 1].1
            } else {
                0
            }
        })
        .collect()
}

/// Trains a model on labelled complete vectors `(ts_ms, values)`: the healthy detector on
/// the vectors labelled 0, as [`train`] does, and a forest on all of them, with features
/// from that detector's scaler.
pub fn train_labelled(
    asset: &str,
    sensors: &[String],
    vectors: &[(i64, Vec<f64>)],
    labels: &[u8],
    opts: &TrainOptions,
    source: &str,
) -> Result<Model, DetectError> {
    if vectors.len() != labels.len() {
        return Err(DetectError::Shape(sensors.len()));
    }
    let healthy: Vec<(i64, Vec<f64>)> = vectors
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l == 0)
        .map(|(v, _)| v.clone())
        .collect();
    let mut model = train(asset, sensors, &healthy, opts, source)?;
    let values: Vec<Vec<f64>> = vectors.iter().map(|(_, v)| v.clone()).collect();
    let feats = labelled_features(&model.scaler, model.features, &values, labels);
    model.classifier = Some(ForestParams::fit(
        &feats,
        labels,
        sensors.len(),
        opts.classifier_threshold,
    )?);
    Ok(model)
}
