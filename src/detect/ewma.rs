//! Per-sensor EWMA and two-sided CUSUM: the classic control charts, for slow drifts that a
//! multivariate model may miss. Each sensor keeps three numbers (the EWMA and the upper
//! and lower CUSUM sums). The statistics are the largest |EWMA| and the largest CUSUM sum
//! over sensors, in units of the healthy standard deviation (vectors arrive scaled).

use serde::{Deserialize, Serialize};

use super::Detector;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EwmaCusumParams {
    /// EWMA weight of the newest value.
    pub lambda: f64,
    /// CUSUM allowance (slack), in healthy standard deviations.
    pub slack: f64,
}

impl Default for EwmaCusumParams {
    fn default() -> Self {
        EwmaCusumParams {
            lambda: 0.2,
            slack: 0.5,
        }
    }
}

pub struct EwmaCusum {
    p: EwmaCusumParams,
    /// (ewma, upper sum, lower sum) per sensor.
    state: Vec<(f64, f64, f64)>,
}

impl EwmaCusum {
    pub fn new(p: EwmaCusumParams, m: usize) -> Self {
        EwmaCusum {
            p,
            state: vec![(0.0, 0.0, 0.0); m],
        }
    }
}

impl Detector for EwmaCusum {
    fn statistics(&self) -> &'static [&'static str] {
        &["ewma", "cusum"]
    }

    fn observe(&mut self, z: &[f64], stats: &mut [f64], contrib: &mut [f64]) {
        let m = z.len();
        let (mut e_max, mut c_max) = (0.0f64, 0.0f64);
        for (j, (x, st)) in z.iter().zip(self.state.iter_mut()).enumerate() {
            st.0 += self.p.lambda * (x - st.0);
            st.1 = (st.1 + x - self.p.slack).max(0.0);
            st.2 = (st.2 - x - self.p.slack).max(0.0);
            let c = st.1.max(st.2);
            contrib[j] = st.0.abs();
            contrib[m + j] = c;
            e_max = e_max.max(st.0.abs());
            c_max = c_max.max(c);
        }
        stats[0] = e_max;
        stats[1] = c_max;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cusum_accumulates_a_small_shift_on_one_sensor() {
        let mut d = EwmaCusum::new(EwmaCusumParams::default(), 2);
        let (mut s, mut c) = ([0.0; 2], [0.0; 4]);
        for _ in 0..50 {
            d.observe(&[0.3, 0.0], &mut s, &mut c);
        }
        assert_eq!(s[1], 0.0, "a shift below the slack never accumulates");
        for _ in 0..50 {
            d.observe(&[0.0, 1.5], &mut s, &mut c);
        }
        assert!(s[1] > 40.0 && c[3] > 40.0 && c[2] == 0.0, "{s:?} {c:?}");
        assert!((s[0] - 1.5).abs() < 1e-3);
    }
}
