//! The SKAB anomaly benchmark (Skoltech water-pump rig): reading its labelled files and
//! the published predictions ([`data`]), and its scoring protocol ([`score`]).
//!
//! Each labelled file is split into its first [`TRAIN_ROWS`] rows (assumed healthy, for
//! fitting) and the test rows after them; a detector emits one 0/1 alarm per test row.
//! Pooled over files: F1 = TP/(TP+(FP+FN)/2), FAR = 100·FP/(FP+TN), MAR = 100·FN/(FN+TP),
//! and SKAB's variant of the NAB changepoint score (see [`score`]); per group of files and
//! the worst group ([`groups`]).
//!
//! Guarantees: on the SKAB authors' published predictions this reproduces
//! `reference/expected.json` to its printed precision (the test
//! `reference_predictions_match_expected`, which runs when the data is present); readers
//! never panic on bad input but return a [`SkabError`] naming file and line; a ratio whose
//! denominator is zero is reported as 0.0, never NaN.

pub mod data;
pub mod groups;
pub mod score;

pub use data::*;
pub use groups::*;
pub use score::*;

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;

    /// `$FOREWARN_SKAB_DIR`, else `../shared/data/skab` beside the crate.
    fn data_dir() -> PathBuf {
        match std::env::var_os("FOREWARN_SKAB_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/skab")),
        }
    }

    /// Reproduces reference/expected.json from the published predictions.
    #[test]
    fn reference_predictions_match_expected() {
        let dir = data_dir();
        let Ok(json) = fs::read_to_string(dir.join("reference/expected.json")) else {
            println!("skipped: no SKAB reference data at {}", dir.display());
            return;
        };
        let expected: serde_json::Value = serde_json::from_str(&json).unwrap();
        let listed = list_labelled_files(&dir).unwrap();
        let files: Vec<LabelledFile> = listed.iter().map(|(p, n)| read_labelled_csv(p, n).unwrap()).collect();
        let algos = expected.as_object().unwrap();
        assert_eq!(algos.len(), 4);
        let mut mismatches = Vec::new();
        for (algo, exp) in algos {
            let refs = read_reference_predictions(&dir.join(format!("reference/{algo}.csv"))).unwrap();
            let aligned = |f: &LabelledFile| align_predictions(f, refs.get(&f.name).map_or(&[], |v| v));
            let input: Vec<_> = files.iter().map(|f| (f.clone(), aligned(f))).collect();
            let s = score_predictions(&input);
            println!("{algo:<17} {s:?}");
            let checks = [
                ("f1", s.f1, 4),
                ("far", s.far, 2),
                ("mar", s.mar, 2),
                ("Standard", s.nab_standard, 2),
                ("LowFP", s.nab_low_fp, 2),
                ("LowFN", s.nab_low_fn, 2),
                ("files", s.files as f64, 0),
                ("test_rows", s.test_rows as f64, 0),
                ("changepoints", s.changepoints as f64, 0),
                ("missed_changepoints", s.missed_changepoints as f64, 0),
                ("false_cp_detections", s.false_cp_detections as f64, 0),
                ("missing_predictions", s.missing_predictions as f64, 0),
            ];
            for (key, got, digits) in checks {
                let want = exp.get(key).or_else(|| exp["nab"].get(key));
                let want = format!("{:.digits$}", want.and_then(|v| v.as_f64()).unwrap());
                if format!("{got:.digits$}") != want {
                    mismatches.push(format!("{algo} {key}: got {got:.digits$}, expected {want}"));
                }
            }
        }
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}
