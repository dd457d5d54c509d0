//! PCA with Hotelling's T² and the Q statistic (SPE): the healthy vectors span a few
//! principal directions; T² measures how far a vector moves *along* them (scaled by their
//! variance), Q how far it leaves them (broken correlations between sensors).
//!
//! Components are kept until they explain `variance` of the healthy variance (at least one,
//! at most m − 1, so Q always has a residual space).

use serde::{Deserialize, Serialize};

use super::linalg::{covariance, symmetric_eigen};
use super::DetectError;
use super::Detector;

/// Floor of a component's variance, so a flat direction cannot divide by zero.
const MIN_EIGENVALUE: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaParams {
    /// Mean of the healthy feature vectors.
    pub center: Vec<f64>,
    /// Retained principal directions, unit vectors.
    pub components: Vec<Vec<f64>>,
    /// Variance along each retained direction.
    pub eigenvalues: Vec<f64>,
}

impl PcaParams {
    pub fn fit(rows: &[Vec<f64>], m: usize, variance: f64) -> Result<Self, DetectError> {
        let (center, cov) = covariance(rows, m);
        let (vals, vecs) = symmetric_eigen(&cov)?;
        let total: f64 = vals.iter().sum();
        let mut k = 0;
        let mut explained = 0.0;
        while k < m && (k == 0 || explained < variance * total) {
            explained += vals[k];
            k += 1;
        }
        let k = k.min(m.saturating_sub(1)).max(1);
        Ok(PcaParams {
            center,
            components: vecs[..k].to_vec(),
            eigenvalues: vals[..k].iter().map(|v| v.max(MIN_EIGENVALUE)).collect(),
        })
    }
}

pub struct Pca {
    p: PcaParams,
    scores: Vec<f64>,
}

impl Pca {
    pub fn new(p: PcaParams) -> Self {
        let k = p.components.len();
        Pca {
            p,
            scores: vec![0.0; k],
        }
    }
}

impl Detector for Pca {
    fn statistics(&self) -> &'static [&'static str] {
        &["t2", "q"]
    }

    fn observe(&mut self, z: &[f64], stats: &mut [f64], contrib: &mut [f64]) {
        let m = z.len();
        let c = &self.p.center;
        for (s, comp) in self.scores.iter_mut().zip(&self.p.components) {
            *s = comp.iter().zip(z).zip(c).map(|((p, x), c)| p * (x - c)).sum();
        }
        stats[0] = self
            .scores
            .iter()
            .zip(&self.p.eigenvalues)
            .map(|(t, l)| t * t / l)
            .sum();
        let mut q = 0.0;
        for j in 0..m {
            let d = z[j] - c[j];
            let back: f64 = self.scores.iter().zip(&self.p.components).map(|(t, p)| t * p[j]).sum();
            let r = d - back;
            q += r * r;
            contrib[m + j] = r * r;
            // T² split over sensors: d_j · Σ_a p_aj t_a / λ_a (sums to T²; negative parts
            // mean "pulls back" and are not blamed).
            let g: f64 = (0..self.scores.len())
                .map(|a| self.p.components[a][j] * self.scores[a] / self.p.eigenvalues[a])
                .sum();
            contrib[j] = (d * g).max(0.0);
        }
        stats[1] = q;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two correlated sensors and a third independent one.
    fn healthy() -> Vec<Vec<f64>> {
        (0..500)
            .map(|i| {
                let a = ((i * 37) % 101) as f64 / 50.0 - 1.0;
                let n = ((i * 53) % 97) as f64 / 970.0;
                let b = ((i * 71) % 89) as f64 / 44.0 - 1.0;
                vec![a, a + n, b]
            })
            .collect()
    }

    #[test]
    fn q_sees_broken_correlation_and_blames_the_sensor() {
        let p = PcaParams::fit(&healthy(), 3, 0.95).unwrap();
        assert_eq!(p.components.len(), 2);
        let mut d = Pca::new(p);
        let (mut stats, mut contrib) = ([0.0; 2], [0.0; 6]);
        d.observe(&[0.5, 0.55, 0.0], &mut stats, &mut contrib);
        let healthy_q = stats[1];
        d.observe(&[0.5, -0.5, 0.0], &mut stats, &mut contrib);
        assert!(stats[1] > 100.0 * healthy_q.max(1e-3), "{stats:?}");
        assert!(contrib[3] + contrib[4] > 10.0 * contrib[5]);
    }
}
