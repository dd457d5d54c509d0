//! A similarity-based estimate in the style of MSET (auto-associative kernel regression):
//! the model remembers a bounded set of healthy states; each new vector is estimated as
//! the similarity-weighted mean of the remembered states, and the residual between the
//! vector and its estimate is the statistic. Residuals per sensor say which sensor left
//! the healthy behaviour.
//!
//! Memory is at most [`MAX_MEMORY`] vectors, chosen evenly over the training range plus
//! each sensor's minimum and maximum state, so the model file stays small and scoring is
//! O(memory · sensors).

use serde::{Deserialize, Serialize};

use super::Detector;

pub const MAX_MEMORY: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityParams {
    /// Remembered healthy states.
    pub memory: Vec<Vec<f64>>,
    /// Kernel width (same units as the scaled vectors).
    pub bandwidth: f64,
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl SimilarityParams {
    pub fn fit(rows: &[Vec<f64>], m: usize) -> Self {
        let mut pick: Vec<usize> = Vec::new();
        for j in 0..m {
            let by = |f: fn(f64, f64) -> bool| {
                (0..rows.len()).fold(0, |best, i| if f(rows[i][j], rows[best][j]) { i } else { best })
            };
            pick.push(by(|a, b| a < b));
            pick.push(by(|a, b| a > b));
        }
        let room = MAX_MEMORY.saturating_sub(pick.len()).max(1);
        let step = rows.len().div_ceil(room).max(1);
        pick.extend((0..rows.len()).step_by(step));
        pick.sort_unstable();
        pick.dedup();
        let memory: Vec<Vec<f64>> = pick.into_iter().map(|i| rows[i].clone()).collect();
        // Median distance to the nearest other remembered state: a kernel that sees a few
        // neighbours, whatever the scale of the data.
        let mut nearest: Vec<f64> = memory
            .iter()
            .enumerate()
            .map(|(i, a)| {
                memory
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != i)
                    .map(|(_, b)| dist2(a, b))
                    .fold(f64::INFINITY, f64::min)
                    .sqrt()
            })
            .filter(|d| d.is_finite())
            .collect();
        nearest.sort_by(f64::total_cmp);
        let bandwidth = nearest.get(nearest.len() / 2).copied().unwrap_or(1.0).max(1e-3);
        SimilarityParams { memory, bandwidth }
    }
}

pub struct Similarity {
    p: SimilarityParams,
    weights: Vec<f64>,
}

impl Similarity {
    pub fn new(p: SimilarityParams) -> Self {
        let n = p.memory.len();
        Similarity {
            p,
            weights: vec![0.0; n],
        }
    }
}

impl Detector for Similarity {
    fn statistics(&self) -> &'static [&'static str] {
        &["residual"]
    }

    fn observe(&mut self, z: &[f64], stats: &mut [f64], contrib: &mut [f64]) {
        let h2 = self.p.bandwidth * self.p.bandwidth;
        let d2: Vec<f64> = self.p.memory.iter().map(|x| dist2(x, z)).collect();
        // Shift by the nearest state so far-away vectors do not underflow to all-zero weights.
        let nearest = d2.iter().copied().fold(f64::INFINITY, f64::min);
        let mut total = 0.0;
        for (w, d) in self.weights.iter_mut().zip(&d2) {
            *w = (-(d - nearest) / (2.0 * h2)).exp();
            total += *w;
        }
        let mut q = 0.0;
        for j in 0..z.len() {
            let est: f64 = self
                .weights
                .iter()
                .zip(&self.p.memory)
                .map(|(w, x)| w * x[j])
                .sum::<f64>()
                / total;
            let r = z[j] - est;
            contrib[j] = r * r;
            q += r * r;
        }
        stats[0] = q;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_is_small_on_healthy_states_and_names_the_sensor() {
        let rows: Vec<Vec<f64>> = (0..1000)
            .map(|i| {
                let x = (i as f64 / 50.0).sin();
                vec![x, 2.0 * x]
            })
            .collect();
        let p = SimilarityParams::fit(&rows, 2);
        assert!(p.memory.len() <= MAX_MEMORY);
        let mut d = Similarity::new(p);
        let (mut s, mut c) = ([0.0], [0.0; 2]);
        d.observe(&[0.3, 0.6], &mut s, &mut c);
        let healthy = s[0];
        d.observe(&[0.3, -0.6], &mut s, &mut c);
        assert!(s[0] > 20.0 * healthy.max(1e-4), "{healthy} {}", s[0]);
        assert!(c.iter().all(|v| *v > 0.0));
    }
}
