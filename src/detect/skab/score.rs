//! SKAB's scoring: F1, false- and missed-alarm rates, and its variant of the NAB
//! changepoint score. Every true changepoint `c` opens a window `[c, c + 60 s]` in time
//! (one starting before its predecessor ends starts at that end instead); the first
//! predicted changepoint in a window earns `y[min(int(rel·1000), 999)]` of a tanh-shaped
//! table falling from A_tp at the window start to A_fp at its end, an empty window earns
//! A_fn, a predicted changepoint outside every window earns A_fp, and the sum S over N
//! windows becomes 100·(S − N·A_fn)/(N·A_tp − N·A_fn) per profile. Predicted changepoints
//! are the edges of the alarm signal unless the detector supplies its own
//! ([`FilePredictions::cp`], as the published `pred_cp` column does).

use std::collections::HashMap;

use super::data::{LabelledFile, ReferenceRow};

/// Length of the changepoint window after each true changepoint, seconds.
pub const WINDOW_S: i64 = 60;
/// Prediction for a test row the detector gave no answer for: scored as
/// "no alarm" / "no changepoint" and counted in [`Score::missing_predictions`].
pub const MISSING: u8 = u8::MAX;

/// Reward/penalty weights of one NAB profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub a_tp: f64,
    pub a_fp: f64,
    pub a_fn: f64,
}

const fn profile(name: &'static str, a_fp: f64, a_fn: f64) -> Profile {
    Profile {
        name,
        a_tp: 1.0,
        a_fp,
        a_fn,
    }
}

/// Standard, LowFP and LowFN, in the order of the `nab_*` fields of [`Score`].
pub const PROFILES: [Profile; 3] = [
    profile("Standard", -0.11, -1.0),
    profile("LowFP", -0.22, -1.0),
    profile("LowFN", -0.11, -2.0),
];

/// Detector output for one file, one value per test row (0, 1 or [`MISSING`]);
/// rows past the end of a vector count as [`MISSING`].
#[derive(Debug, Clone, PartialEq)]
pub struct FilePredictions {
    pub name: String,
    /// Alarm signal, scored by F1/FAR/MAR.
    pub pred: Vec<u8>,
    /// Predicted changepoints, scored by NAB.
    pub cp: Vec<u8>,
}

impl FilePredictions {
    /// Changepoints taken as the alarm edges: the protocol's rule for a
    /// detector that only raises alarms.
    pub fn from_alarms(name: &str, pred: Vec<u8>) -> Self {
        let cp = alarm_edges(&pred);
        FilePredictions {
            name: name.to_string(),
            pred,
            cp,
        }
    }
}

/// `|pred[t] - pred[t-1]|` with `pred[-1] = 0`, so an alarm already raised on
/// the first test row is an edge; [`MISSING`] counts as no alarm.
pub fn alarm_edges(pred: &[u8]) -> Vec<u8> {
    let on: Vec<bool> = pred.iter().map(|&p| p == 1).collect();
    (0..on.len()).map(|i| u8::from(on[i] != (i > 0 && on[i - 1]))).collect()
}

/// Benchmark result, for one file or pooled over many.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub files: usize,
    pub test_rows: usize,
    pub f1: f64,
    /// Percent.
    pub far: f64,
    /// Percent.
    pub mar: f64,
    pub nab_standard: f64,
    pub nab_low_fp: f64,
    pub nab_low_fn: f64,
    /// True changepoints (= windows) among the test rows.
    pub changepoints: usize,
    /// Windows without any predicted changepoint.
    pub missed_changepoints: usize,
    /// Predicted changepoints outside every window.
    pub false_cp_detections: usize,
    /// Test rows whose alarm is [`MISSING`].
    pub missing_predictions: usize,
}

/// Raw sums, kept apart from [`Score`] because pooling must add counts and
/// NAB sums over files before any ratio is taken.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    files: usize,
    test_rows: usize,
    /// TP, FP, TN, FN over rows.
    confusion: [usize; 4],
    windows: usize,
    missed: usize,
    false_cp: usize,
    missing: usize,
    nab: [f64; 3],
}

impl Tally {
    fn add(mut self, o: Tally) -> Tally {
        self.files += o.files;
        self.test_rows += o.test_rows;
        (0..4).for_each(|i| self.confusion[i] += o.confusion[i]);
        self.windows += o.windows;
        self.missed += o.missed;
        self.false_cp += o.false_cp;
        self.missing += o.missing;
        (0..3).for_each(|i| self.nab[i] += o.nab[i]);
        self
    }

    fn score(&self) -> Score {
        let ratio = |num: f64, den: f64| if den == 0.0 { 0.0 } else { num / den };
        let [tp, fp, tn, fn_] = self.confusion.map(|c| c as f64);
        let n = self.windows as f64;
        let nab = |k: usize| {
            let p = &PROFILES[k];
            100.0 * ratio(self.nab[k] - n * p.a_fn, n * p.a_tp - n * p.a_fn)
        };
        Score {
            files: self.files,
            test_rows: self.test_rows,
            f1: ratio(tp, tp + (fp + fn_) / 2.0),
            far: 100.0 * ratio(fp, fp + tn),
            mar: 100.0 * ratio(fn_, fn_ + tp),
            nab_standard: nab(0),
            nab_low_fp: nab(1),
            nab_low_fn: nab(2),
            changepoints: self.windows,
            missed_changepoints: self.missed,
            false_cp_detections: self.false_cp,
            missing_predictions: self.missing,
        }
    }
}

/// Reward of a detection at relative position `rel` in [0, 1] of its window:
/// SKAB's 1000-entry table, A_tp at the window start falling to A_fp at its end.
pub fn window_reward(rel: f64, p: &Profile) -> f64 {
    let i = ((rel * 1000.0) as usize).min(999);
    let half = std::f64::consts::FRAC_PI_2;
    let x = -half + i as f64 * (std::f64::consts::PI / 999.0);
    let amp = (p.a_tp - p.a_fp) / 2.0;
    amp * (-x.tanh() / half.tanh()) + amp + p.a_fp
}

/// Windows for sorted true changepoint times; a window that would start
/// inside its predecessor starts at the predecessor's end instead.
fn windows(cps: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(cps.len());
    for &c in cps {
        let start = out.last().map_or(c, |&(_, prev_end)| c.max(prev_end));
        out.push((start, c + WINDOW_S));
    }
    out
}

fn tally_file(file: &LabelledFile, pred: &[u8], cp: &[u8]) -> Tally {
    let (start, n) = (file.rows() - file.test_rows(), file.test_rows());
    let mut t = Tally {
        files: 1,
        test_rows: n,
        ..Tally::default()
    };
    for i in 0..n {
        let p = pred.get(i).copied().unwrap_or(MISSING);
        t.missing += usize::from(p > 1);
        let truth = file.anomaly[start + i] == 1;
        t.confusion[match (truth, p == 1) {
            (true, true) => 0,
            (false, true) => 1,
            (false, false) => 2,
            (true, false) => 3,
        }] += 1;
    }
    let ts = &file.ts_s[start..];
    let times_where =
        |flags: &dyn Fn(usize) -> bool| -> Vec<i64> { (0..n).filter(|&i| flags(i)).map(|i| ts[i]).collect() };
    let wins = windows(&times_where(&|i| file.changepoint[start + i] == 1));
    let pred_cps = times_where(&|i| cp.get(i) == Some(&1));
    // Windows are closed and judged independently, as in SKAB's reference
    // code (tsad): a detection on the instant shared by two touching windows
    // counts for both. Matching expected.json depends on this.
    let in_win = |c: i64, &(s, e): &(i64, i64)| s <= c && c <= e;
    t.false_cp = pred_cps.iter().filter(|&&c| !wins.iter().any(|w| in_win(c, w))).count();
    let first_rel: Vec<Option<f64>> = wins
        .iter()
        .map(|w| {
            let c = *pred_cps.iter().find(|&&c| in_win(c, w))?;
            Some(if w.1 > w.0 {
                (c - w.0) as f64 / (w.1 - w.0) as f64
            } else {
                0.0
            })
        })
        .collect();
    t.windows = wins.len();
    t.missed = first_rel.iter().filter(|r| r.is_none()).count();
    for (sum, p) in t.nab.iter_mut().zip(&PROFILES) {
        let windows: f64 = first_rel
            .iter()
            .map(|r| r.map_or(p.a_fn, |rel| window_reward(rel, p)))
            .sum();
        *sum = windows + t.false_cp as f64 * p.a_fp;
    }
    t
}

/// Score of one file, for per-file reports.
pub fn score_file(file: &LabelledFile, p: &FilePredictions) -> Score {
    tally_file(file, &p.pred, &p.cp).score()
}

/// Pooled score over files, each with its alarms and changepoints.
pub fn score_predictions(files: &[(LabelledFile, FilePredictions)]) -> Score {
    let tallies = files.iter().map(|(f, p)| tally_file(f, &p.pred, &p.cp));
    tallies.fold(Tally::default(), Tally::add).score()
}

/// Pooled score over files, each with its alarms for its test rows; the
/// predicted changepoints are the alarm edges ([`alarm_edges`]).
pub fn score(files: &[(LabelledFile, Vec<u8>)]) -> Score {
    let tallies = files.iter().map(|(f, p)| tally_file(f, p, &alarm_edges(p)));
    tallies.fold(Tally::default(), Tally::add).score()
}

/// Matches published rows to the file's test rows by datetime; test rows
/// without one get [`MISSING`] in both signals.
pub fn align_predictions(file: &LabelledFile, rows: &[ReferenceRow]) -> FilePredictions {
    let by_time: HashMap<&str, &ReferenceRow> = rows.iter().map(|r| (r.datetime.as_str(), r)).collect();
    let start = file.rows() - file.test_rows();
    let found: Vec<_> = file.times[start..file.rows()]
        .iter()
        .map(|t| by_time.get(t.as_str()))
        .collect();
    let signal = |get: fn(&ReferenceRow) -> u8| found.iter().map(|r| r.map_or(MISSING, |r| get(r))).collect();
    FilePredictions {
        name: file.name.clone(),
        pred: signal(|r| r.pred_anomaly),
        cp: signal(|r| r.pred_cp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::skab::TRAIN_ROWS;

    fn file(anomaly: &[u8], cps_at: &[usize]) -> LabelledFile {
        let n = TRAIN_ROWS + anomaly.len();
        let mut cp = vec![0; n];
        for &i in cps_at {
            cp[TRAIN_ROWS + i] = 1;
        }
        let mut an = vec![0; TRAIN_ROWS];
        an.extend_from_slice(anomaly);
        LabelledFile {
            name: "t.csv".into(),
            times: (0..n).map(|i| format!("t{i}")).collect(),
            ts_s: (0..n as i64).collect(),
            columns: vec!["x".into()],
            values: vec![vec![0.0]; n],
            anomaly: an,
            changepoint: cp,
        }
    }

    /// Predictions with alarms exactly on the given test rows.
    fn alarms(n: usize, on: &[usize]) -> FilePredictions {
        FilePredictions::from_alarms("t.csv", (0..n).map(|i| u8::from(on.contains(&i))).collect())
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn f1_far_mar() {
        let f = file(&[0, 0, 0, 0, 1, 1, 1, 1, 0, 0], &[]);
        // TP 3 (rows 4-6), FN 1 (row 7), FP 2 (rows 0, 9), TN 4.
        let s = score_file(&f, &alarms(10, &[0, 4, 5, 6, 9]));
        assert!(close(s.f1, 3.0 / (3.0 + 1.5)));
        assert!(close(s.far, 100.0 * 2.0 / 6.0));
        assert!(close(s.mar, 25.0));
        assert_eq!((s.test_rows, s.missing_predictions), (10, 0));
    }

    #[test]
    fn reward_table_ends() {
        for p in &PROFILES {
            assert!(close(window_reward(0.0, p), p.a_tp));
            assert!(close(window_reward(1.0, p), p.a_fp));
            assert!(window_reward(0.3, p) > window_reward(0.7, p));
        }
    }

    #[test]
    fn early_detection_beats_late() {
        let f = file(&[0; 200], &[10]);
        let early = score_file(&f, &alarms(200, &[10, 11]));
        assert!(close(early.nab_standard, 100.0));
        let late = score_file(&f, &alarms(200, &[55, 56]));
        let r = window_reward(45.0 / 60.0, &PROFILES[0]);
        // One detection in the window (rise at 55; the fall at 57 is ignored).
        assert!(close(late.nab_standard, 100.0 * (r + 1.0) / 2.0));
        assert!(late.nab_standard < early.nab_standard && late.nab_standard > 0.0);
        assert_eq!((late.missed_changepoints, late.false_cp_detections), (0, 0));
    }

    #[test]
    fn detection_outside_windows_is_false() {
        let f = file(&[0; 200], &[10]);
        // Rise at 100 and fall at 101: two false changepoints, window missed.
        let s = score_file(&f, &alarms(200, &[100]));
        assert_eq!((s.missed_changepoints, s.false_cp_detections), (1, 2));
        assert!(close(s.nab_standard, 100.0 * (2.0 * -0.11) / 2.0));
        assert!(close(s.nab_low_fp, 100.0 * (2.0 * -0.22) / 2.0));
        assert!(close(s.nab_low_fn, 100.0 * (2.0 * -0.11) / 3.0));
    }

    #[test]
    fn alarm_on_first_test_row_is_an_edge() {
        let f = file(&[0; 100], &[]);
        assert_eq!(score_file(&f, &alarms(100, &[0])).false_cp_detections, 2);
    }

    #[test]
    fn overlapping_window_starts_at_previous_end() {
        assert_eq!(windows(&[0, 10, 200]), vec![(0, 60), (60, 70), (200, 260)]);
        let f = file(&[0; 300], &[0, 10]);
        // Alarm from row 65 to the end: one rise, half-way into window 2 only.
        let s = score_file(&f, &alarms(300, &(65..300).collect::<Vec<_>>()));
        assert_eq!((s.missed_changepoints, s.false_cp_detections), (1, 0));
        let want = (-1.0 + window_reward(0.5, &PROFILES[0]) + 2.0) / 4.0 * 100.0;
        assert!(close(s.nab_standard, want));
        // A rise on the shared instant 60 ends window 1 (A_fp) and opens window 2 (A_tp).
        let s = score_file(&f, &alarms(300, &(60..300).collect::<Vec<_>>()));
        assert_eq!((s.missed_changepoints, s.false_cp_detections), (0, 0));
        assert!(close(s.nab_standard, (-0.11 + 1.0 + 2.0) / 4.0 * 100.0));
    }

    #[test]
    fn explicit_changepoints_override_edges() {
        let f = file(&[0; 100], &[10]);
        let mut p = alarms(100, &[50]);
        p.cp = alarms(100, &[]).pred;
        p.cp[10] = 1;
        let s = score_file(&f, &p);
        assert!(close(s.nab_standard, 100.0) && close(s.far, 1.0));
    }

    #[test]
    fn empty_prediction() {
        let f = file(&[0, 1, 1, 0], &[1]);
        let s = score_file(&f, &alarms(4, &[]));
        assert!(close(s.f1, 0.0) && close(s.far, 0.0) && close(s.mar, 100.0));
        assert!(close(s.nab_standard, 0.0) && close(s.nab_low_fn, 0.0));
        assert_eq!(s.missed_changepoints, 1);
        // No predictions at all: every row is missing and scored as no alarm.
        let m = score_file(&f, &FilePredictions::from_alarms("t.csv", vec![]));
        assert_eq!(m.missing_predictions, 4);
        assert!(close(m.mar, 100.0));
    }

    #[test]
    fn pooling_adds_counts_before_ratios() {
        let a = file(&[1, 1], &[]);
        let b = file(&[0, 0], &[]);
        let s = score(&[(a, vec![1, 1]), (b, vec![1, 0])]);
        assert_eq!((s.files, s.test_rows), (2, 4));
        assert!(close(s.f1, 2.0 / 2.5) && close(s.far, 50.0));
    }
}
