//! Grouped cross-validation of the choice of settings. Tuning on the same files a figure is
//! reported on flatters it; here each group of files (a folder, or a file) is held out in
//! turn, the settings are chosen among a small fixed grid of [`candidates`] on the other
//! groups only, and the held-out group is scored with the chosen ones. Pooled and worst
//! over the held-out folds is then what the choice of settings is worth on files it never saw.
//!
//! The choice maximises [`objective`]: over the training groups, the worst of
//! `50·F1 + 0.5·Standard` less a point per percent of false-alarm rate above
//! [`FAR_BUDGET`]: alarms that cover the faults (F1) and raise early (the changepoint
//! score) weigh alike, and a setting wins by holding on every group rather than by
//! excelling on the largest. Training groups
//! are always folders, whatever the held-out grouping, so leaving one file out still asks
//! the choice to hold on every kind of fault.
//!
//! Each candidate predicts each file once (a file's prediction depends only on that file
//! and the settings); the folds reuse those predictions.

use crate::config::params::{FeatureParams, TrainOptions};
use crate::detect::skab::{self, FilePredictions, GroupBy, LabelledFile, Score, Worst};

use super::{predict_file, EvalError};

/// False-alarm rate (percent) a training group may reach before [`objective`] pays for it.
pub const FAR_BUDGET: f64 = 10.0;

/// One setting of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: &'static str,
    pub options: TrainOptions,
}

/// The grid the cross-validation chooses from: the earlier defaults (thresholds from the
/// fitting vectors, margin 3) and variations of the parts that decide whether a model holds
/// on unseen files: thresholds calibrated on the last 15 % or 25 % of the healthy vectors
/// held back from fitting, the margin on them, which sensors count as drifting (the noise
/// share is estimated on fewer vectors when some are held back), and a baseline that
/// slowly follows a long alarm (a start that does not represent the later healthy state).
/// Every varied field is set explicitly, so the grid does not move with the defaults; the
/// rest come from `base` (the defaults, or a run's tuning flags).
pub fn candidates(base: &TrainOptions) -> Vec<Candidate> {
    // (name, calibration, factor, drift_noise, adapt_alarm); "held15" holds back 15 %,
    // "aa" is adapt_alarm, "dn" drift_noise.
    let grid: [(&'static str, f64, f64, f64, f64); 9] = [
        ("in-sample x3", 0.0, 3.0, 0.35, 0.0),
        ("in-sample x3 dn.4", 0.0, 3.0, 0.4, 0.0),
        ("held15 x2.5", 0.15, 2.5, 0.4, 0.0),
        ("held15 x2.75", 0.15, 2.75, 0.4, 0.0),
        ("held15 x3", 0.15, 3.0, 0.4, 0.0),
        ("held25 x2.5", 0.25, 2.5, 0.4, 0.0),
        ("held15 x2.5 aa.0005", 0.15, 2.5, 0.4, 0.0005),
        ("held15 x2.75 aa.0005", 0.15, 2.75, 0.4, 0.0005),
        ("held15 x2.5 aa.001", 0.15, 2.5, 0.4, 0.001),
    ];
    grid.into_iter()
        .map(|(name, calibration, factor, drift_noise, adapt_alarm)| {
            let options = TrainOptions {
                calibration,
                factor,
                quantile: 0.99,
                features: FeatureParams {
                    drift_noise,
                    adapt_alarm,
                    ..base.features
                },
                ..base.clone()
            };
            Candidate { name, options }
        })
        .collect()
}

/// What a setting scores on `files`, higher is better: see the module text.
pub fn objective(files: &[(LabelledFile, FilePredictions)]) -> f64 {
    let groups = skab::group_scores(files, GroupBy::Folder);
    groups
        .iter()
        .map(|(_, s)| 50.0 * s.f1 + 0.5 * s.nab_standard - (s.far - FAR_BUDGET).max(0.0))
        .fold(f64::INFINITY, f64::min)
}

/// One held-out group.
#[derive(Debug, Clone)]
pub struct Fold {
    pub held_out: String,
    /// Index into the candidates.
    pub chosen: usize,
    /// The chosen candidate's objective on the other groups.
    pub objective: f64,
    /// The held-out group scored with the chosen candidate.
    pub score: Score,
}

/// The held-out results.
#[derive(Debug, Clone)]
pub struct CvResult {
    pub folds: Vec<Fold>,
    /// Pooled over every held-out file, each predicted with its fold's choice.
    pub pooled: Score,
    /// Worst over the held-out folds.
    pub worst: Option<Worst>,
    /// Each candidate's objective on all files (what choosing on everything would see).
    pub objective_all: Vec<f64>,
}

/// Cross-validates the choice among `grid` over `files`, holding out one group of `by` at
/// a time; each file is fitted on its first `train_rows` rows.
pub fn cross_validate(
    files: &[LabelledFile],
    grid: &[Candidate],
    by: GroupBy,
    train_rows: usize,
) -> Result<CvResult, EvalError> {
    // preds[c][f]: candidate c's alarms on file f.
    let preds: Vec<Vec<FilePredictions>> = grid
        .iter()
        .map(|c| {
            files
                .iter()
                .map(|f| {
                    Ok(FilePredictions::from_alarms(
                        &f.name,
                        predict_file(f, &c.options, train_rows)?,
                    ))
                })
                .collect::<Result<Vec<_>, EvalError>>()
        })
        .collect::<Result<_, _>>()?;
    let pairs = |c: usize, keep: &dyn Fn(&LabelledFile) -> bool| -> Vec<(LabelledFile, FilePredictions)> {
        files
            .iter()
            .zip(&preds[c])
            .filter(|(f, _)| keep(f))
            .map(|(f, p)| (f.clone(), p.clone()))
            .collect()
    };
    let mut groups: Vec<String> = files.iter().map(|f| by.group_of(&f.name)).collect();
    groups.sort();
    groups.dedup();
    let mut folds = Vec::new();
    let mut held_out_pairs = Vec::new();
    for g in groups {
        let (chosen, objective) = (0..grid.len())
            .map(|c| (c, objective(&pairs(c, &|f| by.group_of(&f.name) != g))))
            // The first of equal candidates wins: the grid lists the simpler ones first.
            .fold((0, f64::NEG_INFINITY), |best, c| if c.1 > best.1 { c } else { best });
        let held = pairs(chosen, &|f| by.group_of(&f.name) == g);
        folds.push(Fold {
            held_out: g,
            chosen,
            objective,
            score: skab::score_predictions(&held),
        });
        held_out_pairs.extend(held);
    }
    let fold_scores: Vec<(String, Score)> = folds.iter().map(|f| (f.held_out.clone(), f.score.clone())).collect();
    Ok(CvResult {
        pooled: skab::score_predictions(&held_out_pairs),
        worst: skab::worst(&fold_scores),
        objective_all: (0..grid.len()).map(|c| objective(&pairs(c, &|_| true))).collect(),
        folds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file `name` of 400 flat training rows and `test` rows: sensor level 0, or
    /// `fault` during the labelled anomaly `at`.
    fn file(name: &str, test: usize, at: std::ops::Range<usize>, fault: f64) -> LabelledFile {
        let n = skab::TRAIN_ROWS + test;
        let mut rng = fastrand::Rng::with_seed(name.len() as u64);
        let anomaly: Vec<u8> = (0..n)
            .map(|i| u8::from(at.contains(&(i.saturating_sub(skab::TRAIN_ROWS)))) * u8::from(i >= skab::TRAIN_ROWS))
            .collect();
        let changepoint = (0..n)
            .map(|i| u8::from(i > 0 && anomaly[i] != anomaly[i - 1]))
            .collect();
        LabelledFile {
            name: name.into(),
            times: (0..n).map(|i| format!("t{i}")).collect(),
            ts_s: (0..n as i64).collect(),
            columns: vec!["a".into(), "b".into()],
            values: (0..n)
                .map(|i| {
                    let f = if anomaly[i] == 1 { fault } else { 0.0 };
                    vec![rng.f64() + f, rng.f64() - f]
                })
                .collect(),
            anomaly,
            changepoint,
        }
    }

    fn grid() -> Vec<Candidate> {
        let base = TrainOptions::default();
        // "blind" cannot raise an alarm: its threshold is far above any fault here.
        let mut blind = base.clone();
        blind.factor = 1e6;
        vec![
            Candidate {
                name: "blind",
                options: blind,
            },
            Candidate {
                name: "defaults",
                options: base,
            },
        ]
    }

    #[test]
    fn each_fold_chooses_on_the_other_groups_and_scores_the_held_out_one() {
        let files = vec![
            file("a/1.csv", 300, 100..200, 5.0),
            file("b/1.csv", 300, 100..200, 5.0),
            file("b/2.csv", 300, 150..250, 5.0),
        ];
        let r = cross_validate(&files, &grid(), GroupBy::Folder, skab::TRAIN_ROWS).unwrap();
        let held: Vec<&str> = r.folds.iter().map(|f| f.held_out.as_str()).collect();
        assert_eq!(held, ["a", "b"]);
        // The faults are plain: the candidate that alarms wins every fold.
        assert!(r.folds.iter().all(|f| f.chosen == 1), "{:?}", r.folds);
        assert_eq!(r.pooled.files, 3);
        assert!(r.pooled.f1 > 0.8, "{:?}", r.pooled);
        assert!(r.objective_all[1] > r.objective_all[0]);
        let by_file = cross_validate(&files, &grid(), GroupBy::File, skab::TRAIN_ROWS).unwrap();
        assert_eq!(by_file.folds.len(), 3);
        let w = by_file.worst.expect("three folds");
        assert!(w.f1.value <= by_file.folds.iter().map(|f| f.score.f1).fold(1.0, f64::min));
    }

    #[test]
    fn the_grid_varies_its_own_fields_and_takes_the_rest_from_the_base() {
        let mut base = TrainOptions::default();
        base.features.window = 4;
        base.factor = 9.0;
        let grid = candidates(&base);
        assert!(grid.iter().all(|c| c.options.features.window == 4));
        assert!(grid.iter().all(|c| c.options.factor < 9.0));
        // The earlier defaults come first, so they win a tie.
        assert_eq!((grid[0].options.calibration, grid[0].options.factor), (0.0, 3.0));
        let mut names: Vec<&str> = grid.iter().map(|c| c.name).collect();
        names.dedup();
        assert_eq!(names.len(), grid.len());
    }

    #[test]
    fn a_file_too_short_to_fit_is_an_error_naming_it() {
        let mut short = file("a/short.csv", 10, 0..0, 0.0);
        short.times.truncate(20);
        short.ts_s.truncate(20);
        short.values.truncate(20);
        short.anomaly.truncate(20);
        short.changepoint.truncate(20);
        let err = cross_validate(&[short], &grid(), GroupBy::Folder, skab::TRAIN_ROWS).unwrap_err();
        assert!(err.to_string().contains("a/short.csv"), "{err}");
    }
}
