//! Reading SKAB files: the labelled `;`-separated sensor files and the published
//! `file,datetime,pred_anomaly,pred_cp` predictions. Every error names the file and the
//! 1-based line; nothing here panics on malformed input.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SkabError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// `line` is 1-based, counting the header.
    #[error("{}:{line}: {msg}", path.display())]
    Parse { path: PathBuf, line: usize, msg: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SkabError + '_ {
    move |source| SkabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_err(path: &Path, line: usize, msg: impl Into<String>) -> SkabError {
    SkabError::Parse {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

/// Rows at the start of each labelled file that a detector may fit on.
pub const TRAIN_ROWS: usize = 400;

/// One labelled SKAB file, all rows (training and test).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledFile {
    /// Relative name with `/` separators, e.g. `valve1/3.csv`.
    pub name: String,
    /// Datetime strings exactly as in the file.
    pub times: Vec<String>,
    /// The same instants as whole seconds since the epoch, read as UTC.
    pub ts_s: Vec<i64>,
    /// Sensor column names in file order, without datetime and labels.
    pub columns: Vec<String>,
    /// Row-major sensor values, `values[row][column]`.
    pub values: Vec<Vec<f64>>,
    pub anomaly: Vec<u8>,
    pub changepoint: Vec<u8>,
}

impl LabelledFile {
    /// Rows usable for scoring; the shortest per-row vector wins so that a
    /// hand-built, inconsistent file cannot make scoring index out of bounds.
    pub fn rows(&self) -> usize {
        let lens = [self.ts_s.len(), self.anomaly.len(), self.changepoint.len()];
        lens.into_iter().fold(self.times.len(), usize::min)
    }

    /// Number of rows a detector must predict (`rows[TRAIN_ROWS..]`).
    pub fn test_rows(&self) -> usize {
        self.rows().saturating_sub(TRAIN_ROWS)
    }
}

/// `YYYY-MM-DD HH:MM:SS` (or a `T` separator; fractional seconds dropped) as
/// seconds since the epoch, read as UTC: only differences matter here.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if b.len() < 19 || seps.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil: exact for the proleptic Gregorian calendar.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + mi * 60 + se)
}

fn parse_label(path: &Path, line: usize, field: &str) -> Result<u8, SkabError> {
    match field.trim().parse::<f64>() {
        Ok(0.0) => Ok(0),
        Ok(1.0) => Ok(1),
        _ => Err(parse_err(path, line, format!("label {field:?} is not 0 or 1"))),
    }
}

/// A `sep`-delimited text file: its header cells and numbered non-blank lines.
struct Table {
    sep: char,
    header: Vec<String>,
    rows: Vec<(usize, String)>,
}

impl Table {
    fn read(path: &Path, sep: char) -> Result<Table, SkabError> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        // `lines()` also strips the `\r` of `\r\n` line ends.
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let Some((_, header)) = lines.next() else {
            return Err(parse_err(path, 1, "empty file"));
        };
        Ok(Table {
            sep,
            header: header.split(sep).map(|c| c.trim().to_string()).collect(),
            rows: lines
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| (n, l.to_string()))
                .collect(),
        })
    }

    fn col(&self, path: &Path, name: &str) -> Result<usize, SkabError> {
        let found = self.header.iter().position(|c| c == name);
        found.ok_or_else(|| parse_err(path, 1, format!("no `{name}` column")))
    }

    /// The cells of every row, each checked to match the header's width.
    fn cells<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = Result<(usize, Vec<&'a str>), SkabError>> + 'a {
        self.rows.iter().map(move |(n, l)| {
            let cells: Vec<&str> = l.split(self.sep).map(str::trim).collect();
            if cells.len() == self.header.len() {
                Ok((*n, cells))
            } else {
                let msg = format!("{} fields, header has {}", cells.len(), self.header.len());
                Err(parse_err(path, *n, msg))
            }
        })
    }
}

/// Reads one `;`-separated labelled file (header, `datetime`, sensors,
/// `anomaly`, `changepoint`); `\r\n` line ends and blank lines are tolerated.
pub fn read_labelled_csv(path: &Path, name: &str) -> Result<LabelledFile, SkabError> {
    let t = Table::read(path, ';')?;
    let (ti, ai, ci) = (
        t.col(path, "datetime")?,
        t.col(path, "anomaly")?,
        t.col(path, "changepoint")?,
    );
    let sensors: Vec<usize> = (0..t.header.len()).filter(|i| ![ti, ai, ci].contains(i)).collect();
    let mut f = LabelledFile {
        name: name.to_string(),
        times: Vec::new(),
        ts_s: Vec::new(),
        columns: sensors.iter().map(|&i| t.header[i].clone()).collect(),
        values: Vec::new(),
        anomaly: Vec::new(),
        changepoint: Vec::new(),
    };
    for row in t.cells(path) {
        let (ln, cells) = row?;
        let time = cells[ti];
        let bad_time = || parse_err(path, ln, format!("bad datetime {time:?}"));
        f.ts_s.push(parse_datetime(time).ok_or_else(bad_time)?);
        let value = |&i: &usize| {
            let v = cells[i];
            let msg = || format!("`{}` value {v:?} is not a number", t.header[i]);
            v.parse::<f64>().map_err(|_| parse_err(path, ln, msg()))
        };
        f.values.push(sensors.iter().map(value).collect::<Result<_, _>>()?);
        f.anomaly.push(parse_label(path, ln, cells[ai])?);
        f.changepoint.push(parse_label(path, ln, cells[ci])?);
        f.times.push(time.to_string());
    }
    Ok(f)
}

fn has_labels(path: &Path) -> Result<bool, SkabError> {
    let mut header = String::new();
    let file = fs::File::open(path).map_err(io_err(path))?;
    BufReader::new(file).read_line(&mut header).map_err(io_err(path))?;
    let cols: Vec<&str> = header.split(';').map(str::trim).collect();
    Ok(cols.contains(&"anomaly") && cols.contains(&"changepoint"))
}

/// Every labelled `*.csv` under `dir` (recursively, skipping `reference/`
/// and files without label columns) as (path, relative name), sorted by name.
pub fn list_labelled_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, SkabError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(io_err(&d))? {
            let path = entry.map_err(io_err(&d))?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "reference") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "csv") && has_labels(&path)? {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let parts: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
                let name = parts.join("/");
                out.push((path, name));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// One row of a published prediction file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceRow {
    pub datetime: String,
    pub pred_anomaly: u8,
    pub pred_cp: u8,
}

/// Reads a `,`-separated `file,datetime,pred_anomaly,pred_cp` file of
/// published predictions into file name -> rows, in file order.
pub fn read_reference_predictions(path: &Path) -> Result<HashMap<String, Vec<ReferenceRow>>, SkabError> {
    let t = Table::read(path, ',')?;
    let (fi, ti) = (t.col(path, "file")?, t.col(path, "datetime")?);
    let (ai, ci) = (t.col(path, "pred_anomaly")?, t.col(path, "pred_cp")?);
    let mut out: HashMap<String, Vec<ReferenceRow>> = HashMap::new();
    for row in t.cells(path) {
        let (ln, cells) = row?;
        out.entry(cells[fi].to_string()).or_default().push(ReferenceRow {
            datetime: cells[ti].to_string(),
            pred_anomaly: parse_label(path, ln, cells[ai])?,
            pred_cp: parse_label(path, ln, cells[ci])?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_parsing() {
        assert_eq!(parse_datetime("1970-01-02 00:00:01"), Some(86_401));
        let a = parse_datetime("2020-02-28 23:59:59").unwrap();
        assert_eq!(parse_datetime("2020-03-01 00:00:00"), Some(a + 86_401));
        assert_eq!(parse_datetime("2020-03-01T00:00:00.5"), Some(a + 86_401));
        assert_eq!(parse_datetime("2020-3-1 00:00:00"), None);
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("skab-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.csv");
        let head = "datetime;A B;anomaly;changepoint\r\n2020-01-01 00:00:00;1.5;1.0;0.0\r\n";
        for (row, want) in [
            ("2020-01-01 00:00:01;x;0;0", ":3: `A B`"),
            ("2020-01-01;1;0;0", ":3: bad"),
        ] {
            fs::write(&p, format!("{head}{row}\r\n")).unwrap();
            let e = read_labelled_csv(&p, "bad.csv").unwrap_err().to_string();
            assert!(e.contains(&format!("bad.csv{want}")), "{e}");
        }
        fs::write(&p, format!("{head}\r\n")).unwrap();
        let f = read_labelled_csv(&p, "bad.csv").unwrap();
        assert_eq!(
            (f.columns, f.anomaly, f.values),
            (vec!["A B".to_string()], vec![1], vec![vec![1.5]])
        );
        fs::write(dir.join("free.csv"), "datetime;A\n").unwrap();
        let listed = list_labelled_files(&dir).unwrap();
        assert_eq!(listed.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(), ["bad.csv"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
