//! Historical data from another system: a wide CSV file (one time column, one column per
//! sensor) loaded into the store, e.g. to train models on history the gateway never saw.
//!
//! Times may be `YYYY-MM-DD HH:MM:SS` (UTC), RFC 3339 or epoch milliseconds. Sensor names
//! are the column headers (with an optional prefix; characters not allowed in sensor names
//! become `_`). An empty cell is a missing value; a cell that is not a number, and a row
//! whose time does not parse or is before 2000-01-01 (the floor of every input), are
//! counted, logged and skipped — never the whole file.
//!
//! Samples go straight into sealed chunks. Every [`ROWS_PER_BATCH`] rows all buffers are
//! written and fsynced, and the progress callback learns how many rows are durable; an
//! import that is killed can simply be run again (same timestamps merge).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::base::sample::SensorId;
use crate::store::codec::Point;
use crate::store::{Store, StoreError};

/// Rows buffered before they are written as one chunk per column and fsynced: half an hour
/// of 1 Hz data compresses nearly as well as an hour, and halves the memory an import of
/// hundreds of columns needs.
pub const ROWS_PER_BATCH: usize = 1800;
use crate::base::time::{parse_time, EARLIEST_MS};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Name of the time column; the first column when `None`.
    pub time_column: Option<String>,
    pub separator: char,
    /// Prepended to every sensor name.
    pub prefix: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            time_column: None,
            separator: ',',
            prefix: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: u64,
    pub samples: u64,
    pub sensors: usize,
    /// Rows skipped because their time did not parse or is before 2000-01-01.
    pub bad_rows: u64,
    /// Cells skipped because they were not numbers.
    pub bad_cells: u64,
}

/// A header turned into a valid sensor name.
pub fn sensor_name(prefix: &str, header: &str) -> String {
    let clean: String = header
        .trim()
        .trim_matches('"')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{clean}")
}

pub fn import(
    store: &Store,
    path: &Path,
    opts: &CsvOptions,
    progress: &mut dyn FnMut(&ImportReport),
) -> Result<ImportReport, ImportError> {
    let shown = path.display().to_string();
    let io = |source| ImportError::Io {
        path: shown.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut lines = BufReader::with_capacity(1 << 20, file).lines();
    let header = match lines.next() {
        Some(line) => line.map_err(io)?,
        None => {
            return Err(ImportError::Format {
                path: shown,
                message: "empty file: expected a header line".into(),
            })
        }
    };
    let columns: Vec<&str> = header.trim_end_matches('\r').split(opts.separator).collect();
    let time_idx = time_column(&columns, opts, &shown)?;
    let mut ids = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        ids.push(if i == time_idx {
            None
        } else {
            Some(store.sensor_id(&sensor_name(&opts.prefix, c))?)
        });
    }
    let mut report = ImportReport {
        sensors: columns.len() - 1,
        ..ImportReport::default()
    };
    let mut buffers: Vec<Vec<Point>> = vec![Vec::with_capacity(ROWS_PER_BATCH); columns.len()];
    let mut since_sync = 0;
    let table = Table {
        columns: &columns,
        time_idx,
        ids: &ids,
        separator: opts.separator,
        shown: &shown,
    };
    for (n, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if !table.row(line, n + 2, &mut buffers, &mut report) {
            continue;
        }
        report.rows += 1;
        since_sync += 1;
        if since_sync >= ROWS_PER_BATCH {
            flush(store, &ids, &mut buffers, &mut report)?;
            since_sync = 0;
            progress(&report);
        }
    }
    flush(store, &ids, &mut buffers, &mut report)?;
    progress(&report);
    Ok(report)
}

/// The index of the time column: the named one, or the first; a header of one column
/// is a wrong separator.
fn time_column(columns: &[&str], opts: &CsvOptions, shown: &str) -> Result<usize, ImportError> {
    let idx = match &opts.time_column {
        None => 0,
        Some(name) => columns
            .iter()
            .position(|c| c.trim().trim_matches('"') == name)
            .ok_or_else(|| ImportError::Format {
                path: shown.to_string(),
                message: format!(
                    "no time column {name:?}; the header has {}",
                    columns.join(&opts.separator.to_string())
                ),
            })?,
    };
    if columns.len() < 2 {
        return Err(ImportError::Format {
            path: shown.to_string(),
            message: format!(
                "the header has one column; is the separator {:?} right (--sep)?",
                opts.separator
            ),
        });
    }
    Ok(idx)
}

/// What a data row is read against.
struct Table<'a> {
    columns: &'a [&'a str],
    time_idx: usize,
    /// The sensor of each column; `None` for the time column.
    ids: &'a [Option<SensorId>],
    separator: char,
    shown: &'a str,
}

impl Table<'_> {
    /// Adds one row's values to `buffers`; false when the row is skipped (its time does not
    /// parse or lies before the floor), counted in `report` either way.
    fn row(&self, line: &str, line_no: usize, buffers: &mut [Vec<Point>], report: &mut ImportReport) -> bool {
        let shown = self.shown;
        let mut cells = line.split(self.separator);
        let Some(ts_ms) = cells
            .clone()
            .nth(self.time_idx)
            .and_then(|t| parse_time(t.trim_matches('"')))
        else {
            report.bad_rows += 1;
            if report.bad_rows <= 10 {
                tracing::warn!(file = %shown, line = line_no, "time does not parse; row skipped");
            }
            return false;
        };
        // The floor the live inputs keep: an export from a PLC whose clock was never set
        // would otherwise land in 1970, before everything retention and queries expect.
        if ts_ms < EARLIEST_MS {
            report.bad_rows += 1;
            if report.bad_rows <= 10 {
                tracing::warn!(file = %shown, line = line_no, "time before 2000-01-01; row skipped");
            }
            return false;
        }
        for (i, cell) in cells.by_ref().enumerate() {
            let Some(Some(_)) = self.ids.get(i) else { continue };
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => buffers[i].push(Point {
                    ts_ms,
                    value: v,
                    quality: 0,
                }),
                _ => {
                    report.bad_cells += 1;
                    if report.bad_cells <= 10 {
                        tracing::warn!(file = %shown, line = line_no, column = self.columns[i], value = cell, "not a number; cell skipped");
                    }
                }
            }
        }
        true
    }
}

fn flush(
    store: &Store,
    ids: &[Option<u32>],
    buffers: &mut [Vec<Point>],
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    let parts: Vec<(u32, &mut Vec<Point>)> = ids
        .iter()
        .zip(buffers.iter_mut())
        .filter_map(|(id, buf)| id.map(|id| (id, buf)))
        .collect();
    report.samples += parts.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    // All sensors in one write: one fsync per segment file, not one per sensor.
    store.write_sealed_all(parts)?;
    for buf in buffers.iter_mut() {
        buf.clear();
    }
    store.sync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_skab_like_files_and_counts_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("in.csv");
        std::fs::write(
            &csv,
            "datetime;Temp;Volume Flow RateRMS\n2020-03-09 10:14:33;79.3;32.0\n2020-03-09 10:14:34;x;32.5\r\nnot-a-time;1;2\n1999-12-31 23:59:59;5;6\n2020-03-09 10:14:35;;33\n",
        )
        .unwrap();
        let store = Store::open(&dir.path().join("db"), Default::default()).unwrap();
        let opts = CsvOptions {
            separator: ';',
            prefix: "rig.".into(),
            ..CsvOptions::default()
        };
        let mut calls = 0;
        let r = import(&store, &csv, &opts, &mut |_| calls += 1).unwrap();
        assert_eq!((r.rows, r.samples, r.sensors, r.bad_rows, r.bad_cells), (3, 4, 2, 2, 1));
        assert!(calls >= 1);
        let flow = store.lookup_sensor("rig.Volume_Flow_RateRMS").unwrap().unwrap();
        let got = store.read(flow, 0, i64::MAX).unwrap();
        assert_eq!(got.iter().map(|s| s.value).collect::<Vec<_>>(), vec![32.0, 32.5, 33.0]);
        assert_eq!(
            got[0].ts_ms,
            crate::base::time::parse_time("2020-03-09T10:14:33Z").unwrap()
        );
    }

    #[test]
    fn a_wrong_separator_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("in.csv");
        std::fs::write(&csv, "a;b\n1;2\n").unwrap();
        let store = Store::open(&dir.path().join("db"), Default::default()).unwrap();
        let err = import(&store, &csv, &CsvOptions::default(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("separator"), "{err}");
    }
}
