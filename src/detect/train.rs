//! Training a model on healthy history: scale, build features, fit the detector, and
//! calibrate one threshold per statistic as a quantile of its healthy values times a
//! margin. Training sees the same [`FeatureState`] the scorer uses, so features match.
//!
//! With `calibration > 0` the last share of the healthy vectors is held back: scaler and
//! detector are fitted on the vectors before it, and the thresholds come from the held-back
//! vectors, replayed as the scorer would (baseline adapting), where they exceed the fitted
//! ones. Statistics on vectors the model never fitted are what it will see live, so a
//! history that still drifts gets wider thresholds instead of in-sample ones that the next
//! hour already exceeds; a held-back stretch never narrows them.

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
    let (fit, held) = rows.split_at(rows.len() - held_back(rows.len(), opts.calibration));
    // The trend is calibrated on the whole history: its window spans hours.
    let scaler = super::trend::calibrate(Scaler::fit(fit, m), vectors, opts, |c| quantile(c, opts.quantile));
    let mut fs = FeatureState::new(scaler.clone(), opts.features);
    let feats: Vec<Vec<f64>> = fit.iter().map(|r| fs.push(r).to_vec()).collect();
    let detector = DetectorParams::fit(opts.detector, &feats, m, opts.variance)?;
    let mut d = detector.build(m);
    let ns = d.statistics().len();
    let (mut stats, mut contrib) = (vec![0.0; ns], vec![0.0; ns * m]);
    let mut columns = vec![Vec::with_capacity(feats.len()); ns];
    let mut record = |f: &[f64], columns: &mut Vec<Vec<f64>>| {
        d.observe(f, &mut stats, &mut contrib);
        for (c, s) in columns.iter_mut().zip(&stats) {
            c.push(*s);
        }
    };
    for f in &feats {
        record(f, &mut columns);
    }
    let mut thresholds: Vec<f64> = columns.iter_mut().map(|c| quantile(c, opts.quantile)).collect();
    if !held.is_empty() {
        // The feature state goes on from the fitted vectors and adapts as the scorer's does
        // while healthy. Held-back statistics only ever widen a threshold: a short held-back
        // stretch may cover only the quiet part of a load cycle the fitted part spans.
        columns.iter_mut().for_each(Vec::clear);
        for r in held {
            let z = fs.push(r).to_vec();
            fs.adapt(false);
            record(&z, &mut columns);
        }
        for (t, c) in thresholds.iter_mut().zip(columns.iter_mut()) {
            *t = t.max(quantile(c, opts.quantile));
        }
    }
    let thresholds = thresholds.into_iter().map(|t| (t * opts.factor).max(1e-6)).collect();
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

/// Fewest held-back vectors that calibrate thresholds; with fewer, the fitting vectors do.
pub const MIN_CALIBRATION: usize = 20;

/// How many of `n` healthy vectors to hold back for calibration: the share `calibration`,
/// unless that leaves fewer than [`MIN_CALIBRATION`] held back or fewer than
/// [`MIN_VECTORS`] to fit on (then none).
pub fn held_back(n: usize, calibration: f64) -> usize {
    let k = (n as f64 * calibration.clamp(0.0, 0.9)).round() as usize;
    if k < MIN_CALIBRATION || n - k < MIN_VECTORS {
        0
    } else {
        k
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sensors() -> Vec<String> {
        ["a", "b"].map(String::from).to_vec()
    }

    /// 400 noisy vectors; from `shift_from` on, sensor `a` sits `shift` higher.
    fn history(shift_from: usize, shift: f64) -> Vec<(i64, Vec<f64>)> {
        let mut rng = fastrand::Rng::with_seed(3);
        (0..400)
            .map(|i| {
                let s = if i >= shift_from { shift } else { 0.0 };
                (i as i64 * 1000, vec![rng.f64() + s, rng.f64()])
            })
            .collect()
    }

    fn opts(calibration: f64) -> TrainOptions {
        TrainOptions {
            calibration,
            ..TrainOptions::default()
        }
    }

    #[test]
    fn held_back_needs_enough_vectors_on_both_sides() {
        assert_eq!(held_back(400, 0.15), 60);
        assert_eq!(held_back(400, 0.0), 0);
        // 15 % of 100 is below the fewest that calibrate: calibrate in-sample instead.
        assert_eq!(held_back(100, 0.15), 0);
        // Holding back half of 50 would leave too few to fit on.
        assert_eq!(held_back(50, 0.5), 0);
        assert_eq!(held_back(400, 5.0), 360);
    }

    #[test]
    fn a_history_that_moves_late_gets_wider_thresholds_from_the_held_back_part() {
        let moving = history(350, 1.5);
        let in_sample = train("p", &sensors(), &moving, &opts(0.0), "t").unwrap();
        let held = train("p", &sensors(), &moving, &opts(0.15), "t").unwrap();
        // The held-back vectors include the move, which the fitted part never saw.
        assert!(
            held.thresholds
                .iter()
                .zip(&in_sample.thresholds)
                .any(|(h, i)| *h > 2.0 * i),
            "held-back {:?} in-sample {:?}",
            held.thresholds,
            in_sample.thresholds
        );
        // The training range still counts every vector, held back or fitted.
        assert_eq!(held.training.vectors, 400);
        let steady = train("p", &sensors(), &history(400, 0.0), &opts(0.15), "t").unwrap();
        assert!(steady.thresholds.iter().zip(&held.thresholds).all(|(s, h)| s < h));
    }

    #[test]
    fn too_few_vectors_is_an_error_with_or_without_calibration() {
        let short: Vec<(i64, Vec<f64>)> = history(400, 0.0).into_iter().take(MIN_VECTORS - 1).collect();
        for c in [0.0, 0.15] {
            assert!(matches!(
                train("p", &sensors(), &short, &opts(c), "t"),
                Err(DetectError::TooFewVectors(_))
            ));
        }
    }
}
