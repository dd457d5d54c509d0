//! Evaluation on labelled history: for each file, train a model on its first rows, then
//! replay the rest through a [`Resampler`] and a [`Scorer`] — the same streaming path the
//! agent runs — and score the alarms with the SKAB protocol ([`super::skab`]).
//!
//! With a classifier ([`evaluate_leave_one_out`]), each file's model also holds a forest
//! fitted on the labelled rows of all the other files.
//!
//! Each row's prediction is the alarm state after the tick that holds the row was scored.
//! Rows are replayed one sensor value at a time, in file order. [`cv`] cross-validates the
//! choice of settings over groups of files.

pub mod cv;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::forest::ForestParams;
use super::model::Model;
use super::resample::{Resampler, Tick};
use super::scorer::Scorer;
use super::skab::{self, LabelledFile, SkabError};
use super::train::{self, train, TrainOptions};
use super::DetectError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] SkabError),
    #[error("{file}: {source}")]
    Model { file: String, source: DetectError },
    #[error("{0}: no labelled CSV files found")]
    Empty(String),
}

/// One file's alarms on its test rows.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub file: LabelledFile,
    /// One 0/1 per test row.
    pub pred: Vec<u8>,
}

/// Complete vectors of `rows` of `file`, resampled as the agent would.
fn vectors(file: &LabelledFile, rows: std::ops::Range<usize>, opts: &TrainOptions) -> Vec<Tick> {
    let mut r = Resampler::new(file.columns.len(), opts.period_ms, opts.max_hold);
    let mut out = Vec::new();
    for i in rows {
        let ts = file.ts_s[i] * 1000;
        for (j, v) in file.values[i].iter().enumerate() {
            r.push(j, ts, Some(*v), &mut out);
        }
    }
    r.finish(&mut out);
    out
}

/// Trains on the first `train_rows` rows of `file` and predicts every later row.
pub fn predict_file(file: &LabelledFile, opts: &TrainOptions, train_rows: usize) -> Result<Vec<u8>, EvalError> {
    let model = healthy_model(file, opts, train_rows)?;
    Ok(replay(file, model, opts, train_rows))
}

/// The model of `file` trained on its first `train_rows` rows, as [`predict_file`] does.
fn healthy_model(file: &LabelledFile, opts: &TrainOptions, train_rows: usize) -> Result<Model, EvalError> {
    let healthy: Vec<(i64, Vec<f64>)> = vectors(file, 0..train_rows.min(file.rows()), opts)
        .into_iter()
        .filter_map(|t| t.values.map(|v| (t.ts_ms, v)))
        .collect();
    train(&file.name, &file.columns, &healthy, opts, &file.name).map_err(|source| EvalError::Model {
        file: file.name.clone(),
        source,
    })
}

/// Scores the rows of `file` after `train_rows` with `model`; one 0/1 per row.
fn replay(file: &LabelledFile, model: Model, opts: &TrainOptions, train_rows: usize) -> Vec<u8> {
    let n = file.rows();
    let split = train_rows.min(n);
    let mut scorer = Scorer::new(Arc::new(model));
    // (tick index, alarm after it), increasing.
    let alarms: Vec<(i64, bool)> = vectors(file, split..n, opts)
        .into_iter()
        .map(|t| (t.index, scorer.step(t.values.as_deref()).alarm))
        .collect();
    let period = opts.period_ms.max(1);
    (split..n)
        .map(|i| {
            let tick = (file.ts_s[i] * 1000).div_euclid(period);
            let at = alarms.partition_point(|(k, _)| *k <= tick);
            u8::from(at > 0 && alarms[at - 1].1)
        })
        .collect()
}

/// Leave-one-file-out with a classifier: each file gets its healthy model as in
/// [`evaluate`], plus a forest fitted on the labelled rows of every other file. Each file's
/// features come from its own healthy model's scaler (fitted on its own first rows), so
/// features are comparable across files, as for a plant's sister machines.
pub fn evaluate_leave_one_out(
    files: Vec<LabelledFile>,
    opts: &TrainOptions,
    train_rows: usize,
) -> Result<Vec<FileResult>, EvalError> {
    let models = files
        .iter()
        .map(|f| healthy_model(f, opts, train_rows))
        .collect::<Result<Vec<_>, _>>()?;
    // Each file's (features, labels) over all its complete vectors, in time order.
    let labelled: Vec<(Vec<Vec<f64>>, Vec<u8>)> = files
        .iter()
        .zip(&models)
        .map(|(f, model)| {
            let ticks: Vec<Tick> = vectors(f, 0..f.rows(), opts)
                .into_iter()
                .filter(|t| t.values.is_some())
                .collect();
            let times: Vec<(i64, u8)> = (0..f.rows()).map(|i| (f.ts_s[i] * 1000, f.anomaly[i])).collect();
            let labels = train::tick_labels(&ticks, &times, opts.period_ms);
            let values: Vec<Vec<f64>> = ticks.into_iter().filter_map(|t| t.values).collect();
            (
                train::labelled_features(&model.scaler, model.features, &values, &labels),
                labels,
            )
        })
        .collect();
    files
        .into_iter()
        .zip(models)
        .enumerate()
        .map(|(i, (file, mut model))| {
            let others = labelled.iter().enumerate().filter(|(k, _)| *k != i).map(|(_, l)| l);
            let rows: Vec<Vec<f64>> = others.clone().flat_map(|l| l.0.iter().cloned()).collect();
            let labels: Vec<u8> = others.flat_map(|l| l.1.iter().copied()).collect();
            let fitted = ForestParams::fit(&rows, &labels, file.columns.len(), opts.classifier_threshold);
            model.classifier = Some(fitted.map_err(|source| EvalError::Model {
                file: file.name.clone(),
                source,
            })?);
            let pred = replay(&file, model, opts, train_rows);
            Ok(FileResult { file, pred })
        })
        .collect()
}

/// Every labelled SKAB file under `dir`.
pub fn read_skab_dir(dir: &Path) -> Result<Vec<LabelledFile>, EvalError> {
    let listed = skab::list_labelled_files(dir)?;
    if listed.is_empty() {
        return Err(EvalError::Empty(dir.display().to_string()));
    }
    listed
        .iter()
        .map(|(p, n)| skab::read_labelled_csv(p, n).map_err(EvalError::from))
        .collect()
}

/// How to read a user's own labelled CSV history.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    pub separator: char,
    /// The time column; the first column when `None`.
    pub time_column: Option<String>,
    pub label_column: String,
}

/// A labelled CSV file of the user's (time, sensors, 0/1 label). True changepoints are the
/// label's edges.
pub fn read_labelled_history(path: &Path, name: &str, layout: &CsvLayout) -> Result<LabelledFile, EvalError> {
    let parse = |line: usize, msg: String| SkabError::Parse {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|source| SkabError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(parse(1, "empty file: expected a header".into()).into());
    };
    let cols: Vec<&str> = header
        .split(layout.separator)
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    let ti = match &layout.time_column {
        None => 0,
        Some(t) => cols
            .iter()
            .position(|c| c == t)
            .ok_or_else(|| parse(1, format!("no time column {t:?}")))?,
    };
    let li = cols
        .iter()
        .position(|c| *c == layout.label_column)
        .ok_or_else(|| parse(1, format!("no label column {:?} (--label-column)", layout.label_column)))?;
    let sensors: Vec<usize> = (0..cols.len()).filter(|i| *i != ti && *i != li).collect();
    if sensors.is_empty() {
        return Err(parse(
            1,
            format!("no sensor columns; is the separator {:?} right?", layout.separator),
        )
        .into());
    }
    let mut f = LabelledFile {
        name: name.to_string(),
        times: Vec::new(),
        ts_s: Vec::new(),
        columns: sensors.iter().map(|&i| cols[i].to_string()).collect(),
        values: Vec::new(),
        anomaly: Vec::new(),
        changepoint: Vec::new(),
    };
    for (n, line) in lines {
        let ln = n + 1;
        let cells: Vec<&str> = line.split(layout.separator).map(str::trim).collect();
        if cells.len() != cols.len() {
            return Err(parse(ln, format!("{} fields, header has {}", cells.len(), cols.len())).into());
        }
        let ts = crate::base::time::parse_time(cells[ti].trim_matches('"'))
            .ok_or_else(|| parse(ln, format!("bad time {:?}", cells[ti])))?;
        let label = match cells[li].parse::<f64>() {
            Ok(v) if v == 0.0 || v == 1.0 => v as u8,
            _ => return Err(parse(ln, format!("label {:?} is not 0 or 1", cells[li])).into()),
        };
        let values = sensors
            .iter()
            .map(|&i| {
                cells[i]
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| parse(ln, format!("`{}` value {:?} is not a number", cols[i], cells[i])))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        let edge = f.anomaly.last().is_some_and(|&prev| prev != label);
        f.changepoint.push(u8::from(edge));
        f.anomaly.push(label);
        f.ts_s.push(ts.div_euclid(1000));
        f.times.push(cells[ti].to_string());
        f.values.push(values);
    }
    Ok(f)
}

/// `path` itself, or every `*.csv` below it, as (path, name relative to `path`).
pub fn list_csv(path: &Path) -> Result<Vec<(PathBuf, String)>, EvalError> {
    if path.is_file() {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        return Ok(vec![(path.to_path_buf(), name)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| SkabError::Io {
            path: d.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "csv") {
                let rel = p.strip_prefix(path).unwrap_or(&p);
                let name = rel.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
                out.push((p, name));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    if out.is_empty() {
        return Err(EvalError::Empty(path.display().to_string()));
    }
    Ok(out)
}

/// Predicts every file; each result pairs the file with its test-row alarms.
pub fn evaluate(
    files: Vec<LabelledFile>,
    opts: &TrainOptions,
    train_rows: usize,
) -> Result<Vec<FileResult>, EvalError> {
    files
        .into_iter()
        .map(|file| {
            let pred = predict_file(&file, opts, train_rows)?;
            Ok(FileResult { file, pred })
        })
        .collect()
}
