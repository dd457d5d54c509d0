//! The little linear algebra the detectors need: covariance of training vectors and its
//! symmetric eigendecomposition (smartcore's EVD), sorted by decreasing eigenvalue.

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linalg::traits::evd::EVDDecomposable;

use super::DetectError;

/// Sample covariance (n − 1) of `rows`, each of length `m`, around their mean.
pub fn covariance(rows: &[Vec<f64>], m: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; m];
    for r in rows {
        for (a, v) in mean.iter_mut().zip(r) {
            *a += v / n;
        }
    }
    let mut cov = vec![vec![0.0; m]; m];
    for r in rows {
        for i in 0..m {
            let di = r[i] - mean[i];
            for j in i..m {
                cov[i][j] += di * (r[j] - mean[j]);
            }
        }
    }
    let den = (n - 1.0).max(1.0);
    // Only the upper triangle was summed; mirror it while scaling.
    #[allow(clippy::needless_range_loop)]
    for i in 0..m {
        for j in i..m {
            cov[i][j] /= den;
            cov[j][i] = cov[i][j];
        }
    }
    (mean, cov)
}

/// Eigenvalues (decreasing, negatives clamped to 0) and eigenvectors (`vectors[a]` is the
/// a-th unit vector) of a symmetric matrix.
pub fn symmetric_eigen(matrix: &[Vec<f64>]) -> Result<(Vec<f64>, Vec<Vec<f64>>), DetectError> {
    let m = matrix.len();
    let dm = DenseMatrix::from_2d_vec(&matrix.to_vec()).map_err(|e| DetectError::Numeric(e.to_string()))?;
    let evd = dm.evd(true).map_err(|e| DetectError::Numeric(e.to_string()))?;
    let mut pairs: Vec<(f64, Vec<f64>)> = (0..m)
        .map(|a| (evd.d[a].max(0.0), (0..m).map(|i| *evd.V.get((i, a))).collect()))
        .collect();
    if pairs
        .iter()
        .any(|(v, vec)| !v.is_finite() || vec.iter().any(|x| !x.is_finite()))
    {
        return Err(DetectError::Numeric("eigendecomposition did not converge".into()));
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(pairs.into_iter().unzip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        let (vals, vecs) = symmetric_eigen(&[vec![2.0, 1.0], vec![1.0, 2.0]]).unwrap();
        assert!((vals[0] - 3.0).abs() < 1e-9 && (vals[1] - 1.0).abs() < 1e-9);
        assert!((vecs[0][0].abs() - 0.5f64.sqrt()).abs() < 1e-9);
        let (mean, cov) = covariance(&[vec![1.0, 2.0], vec![3.0, 6.0]], 2);
        assert_eq!(mean, vec![2.0, 4.0]);
        assert_eq!(cov, vec![vec![2.0, 4.0], vec![4.0, 8.0]]);
    }
}
