//! Mahalanobis distance to the healthy mean: one statistic, D² = dᵀ Σ⁻¹ d, that weighs
//! every direction by how much it varies when healthy. The inverse is taken through the
//! eigendecomposition with a variance floor, so collinear sensors do not make it explode.

use serde::{Deserialize, Serialize};

use super::linalg::{covariance, symmetric_eigen};
use super::DetectError;
use super::Detector;

/// Variance floor relative to the largest eigenvalue.
const RIDGE: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MahalanobisParams {
    pub center: Vec<f64>,
    /// Σ⁻¹, row-major.
    pub precision: Vec<Vec<f64>>,
}

impl MahalanobisParams {
    pub fn fit(rows: &[Vec<f64>], m: usize) -> Result<Self, DetectError> {
        let (center, cov) = covariance(rows, m);
        let (vals, vecs) = symmetric_eigen(&cov)?;
        let floor = vals.first().copied().unwrap_or(1.0).max(1e-12) * RIDGE;
        let mut precision = vec![vec![0.0; m]; m];
        for (l, v) in vals.iter().zip(&vecs) {
            let inv = 1.0 / l.max(floor);
            for i in 0..m {
                for j in 0..m {
                    precision[i][j] += inv * v[i] * v[j];
                }
            }
        }
        Ok(MahalanobisParams { center, precision })
    }
}

pub struct Mahalanobis {
    p: MahalanobisParams,
    d: Vec<f64>,
}

impl Mahalanobis {
    pub fn new(p: MahalanobisParams) -> Self {
        let m = p.center.len();
        Mahalanobis { p, d: vec![0.0; m] }
    }
}

impl Detector for Mahalanobis {
    fn statistics(&self) -> &'static [&'static str] {
        &["d2"]
    }

    fn observe(&mut self, z: &[f64], stats: &mut [f64], contrib: &mut [f64]) {
        for ((d, x), c) in self.d.iter_mut().zip(z).zip(&self.p.center) {
            *d = x - c;
        }
        let mut total = 0.0;
        for (j, row) in self.p.precision.iter().enumerate() {
            let g: f64 = row.iter().zip(&self.d).map(|(a, b)| a * b).sum();
            let part = self.d[j] * g;
            total += part;
            contrib[j] = part.max(0.0);
        }
        stats[0] = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_scaled_by_healthy_spread() {
        let rows: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![((i * 13) % 7) as f64, ((i * 17) % 5) as f64 * 0.01])
            .collect();
        let p = MahalanobisParams::fit(&rows, 2).unwrap();
        let mut d = Mahalanobis::new(p.clone());
        let (mut s, mut c) = ([0.0], [0.0; 2]);
        d.observe(&[p.center[0] + 1.0, p.center[1]], &mut s, &mut c);
        let wide = s[0];
        d.observe(&[p.center[0], p.center[1] + 1.0], &mut s, &mut c);
        assert!(s[0] > 100.0 * wide);
        assert!(c[1] > c[0]);
    }
}
