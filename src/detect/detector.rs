//! The serialisable parameters of every detector, and the dispatch from them to the
//! [`Detector`] they build (the trait itself is the parent's, so each detector depends on
//! it and not on this dispatch).
//!
//! A detector turns one scaled feature vector into a few statistics (PCA: T² and Q) and,
//! for each statistic, how much each sensor contributed. It does not know its thresholds:
//! those are calibrated on healthy data by the trainer and applied by the scorer, so every
//! detector is calibrated the same way. Streaming detectors (EWMA/CUSUM) keep bounded
//! state (a few numbers per sensor).

use serde::{Deserialize, Serialize};

use super::ewma::{EwmaCusum, EwmaCusumParams};
use super::mahalanobis::{Mahalanobis, MahalanobisParams};
use super::mset::{Similarity, SimilarityParams};
use super::pca::{Pca, PcaParams};
use super::DetectError;

pub use super::Detector;
pub use crate::config::params::DetectorKind;

/// A fitted detector, as stored in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DetectorParams {
    Pca(PcaParams),
    Mahalanobis(MahalanobisParams),
    Mset(SimilarityParams),
    Ewma(EwmaCusumParams),
}

impl DetectorParams {
    /// Fits a detector of `kind` on healthy feature vectors (each of length `m`).
    pub fn fit(kind: DetectorKind, rows: &[Vec<f64>], m: usize, variance: f64) -> Result<Self, DetectError> {
        if rows.len() < 2 {
            return Err(DetectError::TooFewVectors(rows.len()));
        }
        Ok(match kind {
            DetectorKind::Pca => DetectorParams::Pca(PcaParams::fit(rows, m, variance)?),
            DetectorKind::Mahalanobis => DetectorParams::Mahalanobis(MahalanobisParams::fit(rows, m)?),
            DetectorKind::Mset => DetectorParams::Mset(SimilarityParams::fit(rows, m)),
            DetectorKind::Ewma => DetectorParams::Ewma(EwmaCusumParams::default()),
        })
    }

    pub fn kind(&self) -> DetectorKind {
        match self {
            DetectorParams::Pca(_) => DetectorKind::Pca,
            DetectorParams::Mahalanobis(_) => DetectorKind::Mahalanobis,
            DetectorParams::Mset(_) => DetectorKind::Mset,
            DetectorParams::Ewma(_) => DetectorKind::Ewma,
        }
    }

    /// A fresh streaming instance for vectors of length `m`.
    pub fn build(&self, m: usize) -> Box<dyn Detector> {
        match self {
            DetectorParams::Pca(p) => Box::new(Pca::new(p.clone())),
            DetectorParams::Mahalanobis(p) => Box::new(Mahalanobis::new(p.clone())),
            DetectorParams::Mset(p) => Box::new(Similarity::new(p.clone())),
            DetectorParams::Ewma(p) => Box::new(EwmaCusum::new(*p, m)),
        }
    }

    /// Checks the shapes against the vector length (a hand-edited or corrupt file).
    pub fn check(&self, m: usize) -> Result<(), DetectError> {
        let ok = match self {
            DetectorParams::Pca(p) => {
                p.components.iter().all(|c| c.len() == m) && p.eigenvalues.len() == p.components.len()
            }
            DetectorParams::Mahalanobis(p) => p.precision.len() == m && p.precision.iter().all(|r| r.len() == m),
            DetectorParams::Mset(p) => !p.memory.is_empty() && p.memory.iter().all(|r| r.len() == m),
            DetectorParams::Ewma(_) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(DetectError::Shape(m))
        }
    }
}
