//! Scores per group of files and the worst group. A pooled score hides a group that fails:
//! SKAB's `other/` faults are false-alarmed while its `valve1/` faults are missed, and the
//! pool averages the two away. Groups are the top folder of a file's name (`valve1`,
//! `valve2`, `other`) or each file on its own.
//!
//! Guarantees: every file belongs to exactly one group; groups are listed in name order;
//! the worst group takes, per metric, the worst value over groups (lowest F1 and changepoint
//! scores, highest FAR and MAR) and names the group it came from; no groups give no worst.

use std::collections::BTreeMap;

use super::data::LabelledFile;
use super::score::{score_predictions, FilePredictions, Score};

/// How files are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GroupBy {
    /// The top folder of the file's name; a file at the top level is its own group.
    #[default]
    Folder,
    /// Each file alone.
    File,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Folder => "folder",
            GroupBy::File => "file",
        }
    }

    /// The group of the file named `name` (`/`-separated, relative to the data directory).
    pub fn group_of(self, name: &str) -> String {
        match (self, name.split_once('/')) {
            (GroupBy::Folder, Some((top, _))) => top.to_string(),
            _ => name.to_string(),
        }
    }
}

/// The pooled score of each group, in group-name order.
pub fn group_scores(files: &[(LabelledFile, FilePredictions)], by: GroupBy) -> Vec<(String, Score)> {
    let mut groups: BTreeMap<String, Vec<(LabelledFile, FilePredictions)>> = BTreeMap::new();
    for (f, p) in files {
        groups
            .entry(by.group_of(&f.name))
            .or_default()
            .push((f.clone(), p.clone()));
    }
    groups
        .into_iter()
        .map(|(g, members)| (g, score_predictions(&members)))
        .collect()
}

/// One metric's worst value over groups and the group it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstOf {
    pub value: f64,
    pub group: String,
}

/// The worst value of each metric over groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Worst {
    pub f1: WorstOf,
    pub far: WorstOf,
    pub mar: WorstOf,
    pub nab_standard: WorstOf,
    pub nab_low_fp: WorstOf,
    pub nab_low_fn: WorstOf,
}

/// Per metric, the worst value over `groups`; `None` for no groups.
pub fn worst(groups: &[(String, Score)]) -> Option<Worst> {
    // `higher_is_better`: the worst is the minimum; otherwise the maximum. The first group
    // wins a tie, so the result does not depend on float noise between equal groups.
    let pick = |get: fn(&Score) -> f64, higher_is_better: bool| -> Option<WorstOf> {
        let mut best: Option<WorstOf> = None;
        for (g, s) in groups {
            let v = get(s);
            let worse = best
                .as_ref()
                .is_none_or(|b| if higher_is_better { v < b.value } else { v > b.value });
            if worse {
                best = Some(WorstOf {
                    value: v,
                    group: g.clone(),
                });
            }
        }
        best
    };
    Some(Worst {
        f1: pick(|s| s.f1, true)?,
        far: pick(|s| s.far, false)?,
        mar: pick(|s| s.mar, false)?,
        nab_standard: pick(|s| s.nab_standard, true)?,
        nab_low_fp: pick(|s| s.nab_low_fp, true)?,
        nab_low_fn: pick(|s| s.nab_low_fn, true)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::skab::TRAIN_ROWS;

    /// A file of `anomaly` test rows after the training rows, no changepoints.
    fn file(name: &str, anomaly: &[u8]) -> LabelledFile {
        let n = TRAIN_ROWS + anomaly.len();
        let mut an = vec![0; TRAIN_ROWS];
        an.extend_from_slice(anomaly);
        LabelledFile {
            name: name.into(),
            times: (0..n).map(|i| format!("t{i}")).collect(),
            ts_s: (0..n as i64).collect(),
            columns: vec!["x".into()],
            values: vec![vec![0.0]; n],
            anomaly: an,
            changepoint: vec![0; n],
        }
    }

    fn pair(name: &str, anomaly: &[u8], pred: &[u8]) -> (LabelledFile, FilePredictions) {
        (file(name, anomaly), FilePredictions::from_alarms(name, pred.to_vec()))
    }

    #[test]
    fn folder_is_the_top_directory_and_a_top_level_file_is_its_own_group() {
        assert_eq!(GroupBy::Folder.group_of("valve1/3.csv"), "valve1");
        assert_eq!(GroupBy::Folder.group_of("a/b/c.csv"), "a");
        assert_eq!(GroupBy::Folder.group_of("x.csv"), "x.csv");
        assert_eq!(GroupBy::File.group_of("valve1/3.csv"), "valve1/3.csv");
    }

    #[test]
    fn groups_pool_their_own_files_only() {
        let files = [
            pair("a/1.csv", &[1, 1, 0, 0], &[1, 1, 0, 0]),
            pair("a/2.csv", &[0, 0, 0, 0], &[0, 0, 0, 1]),
            pair("b/1.csv", &[1, 1, 0, 0], &[0, 0, 0, 0]),
        ];
        let g = group_scores(&files, GroupBy::Folder);
        let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!((g[0].1.files, g[0].1.test_rows), (2, 8));
        // a: TP 2, FP 1 of 6 negatives; b: all missed.
        assert!((g[0].1.far - 100.0 / 6.0).abs() < 1e-9);
        assert!((g[1].1.mar - 100.0).abs() < 1e-9 && g[1].1.f1 == 0.0);
        assert_eq!(group_scores(&files, GroupBy::File).len(), 3);
    }

    #[test]
    fn worst_takes_each_metric_from_the_group_that_is_worst_at_it() {
        let files = [
            // a: no misses but a false alarm; b: no false alarm but misses.
            pair("a/1.csv", &[1, 1, 0, 0], &[1, 1, 1, 0]),
            pair("b/1.csv", &[1, 1, 0, 0], &[1, 0, 0, 0]),
        ];
        let w = worst(&group_scores(&files, GroupBy::Folder)).expect("two groups");
        assert_eq!((w.far.group.as_str(), w.far.value), ("a", 50.0));
        assert_eq!((w.mar.group.as_str(), w.mar.value), ("b", 50.0));
        // F1 is 2/(2+0.5) = 0.8 for a and 1/(1+0.5) = 0.667 for b.
        assert_eq!(w.f1.group, "b");
        assert!((w.f1.value - 1.0 / 1.5).abs() < 1e-9);
    }

    #[test]
    fn ties_go_to_the_first_group_and_no_groups_give_no_worst() {
        let files = [pair("a/1.csv", &[0, 0], &[0, 0]), pair("b/1.csv", &[0, 0], &[0, 0])];
        let w = worst(&group_scores(&files, GroupBy::Folder)).expect("two groups");
        assert_eq!((w.far.group.as_str(), w.f1.group.as_str()), ("a", "a"));
        assert!(worst(&[]).is_none());
    }
}
