//! The model file: everything the scorer needs to score one machine, versioned, as JSON.
//!
//! A model names its asset and its sensors in order; loading it for an asset whose sensors
//! differ is an error that says which, never a silent misalignment. Files of another
//! [`FORMAT`] are refused. The file is written to a temporary name and renamed, so a
//! running agent that reloads on SIGHUP never reads half a model.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::alarm::AlarmParams;
use super::detector::DetectorParams;
use super::features::{FeatureParams, Scaler};
use super::forest::ForestParams;

/// Version of the file layout; bump on any incompatible change.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a forewarn model: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: model format {found}, this forewarn reads format {FORMAT}; train the model again")]
    Format { path: String, found: u32 },
    #[error("{path}: the model is for asset {found:?}, not {expected:?}")]
    Asset {
        path: String,
        expected: String,
        found: String,
    },
    #[error(
        "{path}: the model was trained on sensors {found:?}, but asset {asset:?} has {expected:?}; train it again"
    )]
    Sensors {
        path: String,
        asset: String,
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("{path}: inconsistent model: {message}")]
    Invalid { path: String, message: String },
}

/// The span of history a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRange {
    /// First and last vector time, ms since the epoch.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Complete vectors used.
    pub vectors: usize,
    /// Where they came from (`store`, or the CSV file).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: u32,
    /// The model's version for its asset: 1 for the first trained, one more for each
    /// model written after it (0 in files written before versions existed). Alerts carry
    /// it, so an alarm can be traced to the model that raised it.
    #[serde(default)]
    pub version: u64,
    pub asset: String,
    /// Sensor names, in the order of every vector.
    pub sensors: Vec<String>,
    /// Period of the common clock, ms.
    pub period_ms: i64,
    /// Ticks a value is carried forward before the vector is incomplete.
    pub max_hold: u32,
    pub scaler: Scaler,
    pub features: FeatureParams,
    pub detector: DetectorParams,
    /// One per statistic of the detector; a vector is over when any statistic is.
    pub thresholds: Vec<f64>,
    pub alarm: AlarmParams,
    pub training: TrainingRange,
    /// A classifier of labelled failures, scored next to the detector's statistics; absent
    /// in models trained on healthy history alone (and in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<ForestParams>,
}

impl Model {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let shown = path.display().to_string();
        let io = |source| ModelError::Io {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a model and checks it is internally consistent.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, shown: &str) -> Result<Model, ModelError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ModelError::Parse {
            path: shown.to_string(),
            message: e.to_string(),
        })?;
        let found = value.get("format").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found != FORMAT {
            return Err(ModelError::Format {
                path: shown.to_string(),
                found,
            });
        }
        let model: Model = serde_json::from_value(value).map_err(|e| ModelError::Parse {
            path: shown.to_string(),
            message: e.to_string(),
        })?;
        model.validate().map_err(|message| ModelError::Invalid {
            path: shown.to_string(),
            message,
        })?;
        Ok(model)
    }

    fn validate(&self) -> Result<(), String> {
        let m = self.sensors.len();
        if m == 0 {
            return Err("no sensors".into());
        }
        if self.scaler.mean.len() != m || self.scaler.scale.len() != m {
            return Err(format!("scaler is not of {m} sensors"));
        }
        if self.scaler.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err("scaler has a non-positive scale".into());
        }
        if self.period_ms <= 0 {
            return Err("period must be positive".into());
        }
        // Trend thresholds are absent (not calibrated) or one positive value per sensor;
        // anything else is a damaged file, which must not quietly lose its trend.
        for (name, t) in [("trend", &self.scaler.trend), ("trend_daily", &self.scaler.trend_daily)] {
            if !t.is_empty() && (t.len() != m || t.iter().any(|v| !(v.is_finite() && *v > 0.0))) {
                return Err(format!("scaler {name} is not {m} positive thresholds"));
            }
        }
        self.detector.check(m).map_err(|e| e.to_string())?;
        let stats = self.detector.build(m).statistics().len();
        if self.thresholds.len() != stats || self.thresholds.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(format!("expected {stats} positive thresholds"));
        }
        if let Some(c) = &self.classifier {
            c.check(m)?;
        }
        Ok(())
    }

    /// Checks that this model fits `asset` with `sensors` (as configured).
    pub fn check_asset(&self, path: &str, asset: &str, sensors: &[String]) -> Result<(), ModelError> {
        if self.asset != asset {
            return Err(ModelError::Asset {
                path: path.into(),
                expected: asset.into(),
                found: self.asset.clone(),
            });
        }
        if self.sensors != sensors {
            return Err(ModelError::Sensors {
                path: path.into(),
                asset: asset.into(),
                expected: sensors.to_vec(),
                found: self.sensors.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::train::{train, TrainOptions};

    fn model() -> Model {
        let mut rng = fastrand::Rng::with_seed(3);
        let rows: Vec<(i64, Vec<f64>)> = (0..200)
            .map(|i| (i * 1000, vec![10.0 + rng.f64(), 5.0 + rng.f64()]))
            .collect();
        let sensors = ["a", "b"].map(String::from).to_vec();
        train("m", &sensors, &rows, &TrainOptions::default(), "test").unwrap()
    }

    #[test]
    fn a_model_reads_back_as_written() {
        let m = model();
        assert_eq!(Model::parse(&m.to_json(), "m.json").unwrap(), m);
    }

    #[test]
    fn damaged_parts_are_refused_with_the_part_named() {
        type Damage = fn(&mut Model);
        let cases: [(&str, Damage); 4] = [
            ("positive thresholds", |m| m.thresholds[0] = 0.0),
            ("non-positive scale", |m| m.scaler.scale[1] = -1.0),
            ("trend is not 2", |m| m.scaler.trend = vec![1.0]),
            ("trend_daily is not 2", |m| m.scaler.trend_daily = vec![1.0, 0.0]),
        ];
        for (want, damage) in cases {
            let mut m = model();
            damage(&mut m);
            let err = Model::parse(&m.to_json(), "m.json").unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
