//! Reading history out: a sensor glob and a time range, raw samples or aggregates per
//! interval, as JSON lines or CSV. The same code serves `forewarn query` on a stopped
//! agent (opening the store) and the running agent's HTTP API.

use std::io::Write;

pub use super::bucket::{aggregate, Bucket};
use super::rollup::{self, Tier};
use super::{Store, StoreError};
use crate::base::glob::glob_match;
use crate::base::sample::Sample;
use crate::base::time::format_rfc3339_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format {other:?}: expected jsonl or csv")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Query {
    /// Sensor names to read; `*` matches any run of characters, `?` one character.
    pub sensor_glob: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Aggregate into buckets of this many milliseconds (min, max, mean, count of the good
    /// samples); raw samples when `None`.
    pub every_ms: Option<i64>,
    pub format: Format,
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Writes the result; returns the number of rows. Aggregated queries also read the
/// rollup `tiers` for the time before the oldest raw sample in range.
pub fn run(store: &Store, q: &Query, tiers: &[Tier], out: &mut dyn Write) -> Result<usize, StoreError> {
    let io = |e: std::io::Error| StoreError::Db(format!("writing the result: {e}"));
    let mut sensors: Vec<(u32, String)> = store
        .sensors()?
        .into_iter()
        .filter(|(_, name)| glob_match(&q.sensor_glob, name))
        .collect();
    sensors.sort_by(|a, b| a.1.cmp(&b.1));
    if q.format == Format::Csv {
        let header = if q.every_ms.is_some() {
            "sensor,ts,value,min,max,mean,count\n"
        } else {
            "sensor,ts,value,quality\n"
        };
        out.write_all(header.as_bytes()).map_err(io)?;
    }
    let mut rows = 0;
    for (id, name) in sensors {
        let samples = store.read(id, q.from_ms, q.to_ms)?;
        let name_json = json_str(&name);
        match q.every_ms {
            None => {
                for s in &samples {
                    write_raw(out, q.format, &name, &name_json, s).map_err(io)?;
                    rows += 1;
                }
            }
            Some(every) => {
                let raw = aggregate(&samples, every);
                let mut buckets = Vec::new();
                // Rollups answer only where raw data is gone: before the first raw bucket.
                let raw_start = raw.first().map_or(i64::MAX, |b| b.start_ms);
                if let Some(t) = tiers
                    .iter()
                    .rposition(|t| t.every_ms <= every)
                    .or((!tiers.is_empty()).then_some(0))
                {
                    let older = rollup::read(store, t, id, q.from_ms, raw_start.saturating_sub(1).min(q.to_ms))?;
                    buckets.extend(
                        rollup::rebucket(&older, every)
                            .into_iter()
                            .filter(|b| b.start_ms < raw_start),
                    );
                }
                buckets.extend(raw);
                for b in buckets {
                    write_bucket(out, q.format, &name, &b).map_err(io)?;
                    rows += 1;
                }
            }
        }
    }
    Ok(rows)
}

/// One raw sample. Exports of a sensor-day are 86,400 of these, so nothing here allocates:
/// the sensor's JSON name is made once per sensor, the time goes through a stack buffer.
fn write_raw(out: &mut dyn Write, f: Format, name: &str, name_json: &str, s: &Sample) -> std::io::Result<()> {
    let mut buf = [0u8; 24];
    let owned;
    let ts: &[u8] = match crate::base::time::rfc3339_ms_into(s.ts_ms, &mut buf) {
        Some(b) => b,
        None => {
            owned = format_rfc3339_ms(s.ts_ms);
            owned.as_bytes()
        }
    };
    match f {
        Format::Jsonl => {
            out.write_all(b"{\"sensor\":")?;
            out.write_all(name_json.as_bytes())?;
            out.write_all(b",\"ts\":\"")?;
            out.write_all(ts)?;
            if s.quality.is_good() && s.value.is_finite() {
                writeln!(out, "\",\"value\":{}}}", s.value)
            } else {
                writeln!(out, "\",\"value\":null,\"quality\":\"{}\"}}", s.quality)
            }
        }
        Format::Csv => {
            out.write_all(name.as_bytes())?;
            out.write_all(b",")?;
            out.write_all(ts)?;
            if s.value.is_finite() {
                writeln!(out, ",{},{}", s.value, s.quality)
            } else {
                writeln!(out, ",,{}", s.quality)
            }
        }
    }
}

fn write_bucket(out: &mut dyn Write, f: Format, name: &str, b: &Bucket) -> std::io::Result<()> {
    let ts = format_rfc3339_ms(b.start_ms);
    match f {
        Format::Jsonl => writeln!(
            out,
            "{{\"sensor\":{},\"ts\":\"{ts}\",\"value\":{},\"min\":{},\"max\":{},\"mean\":{},\"count\":{}}}",
            json_str(name),
            num(b.mean),
            num(b.min),
            num(b.max),
            num(b.mean),
            b.count
        ),
        Format::Csv => writeln!(out, "{name},{ts},{},{},{},{},{}", b.mean, b.min, b.max, b.mean, b.count),
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::sample::Quality;

    #[test]
    fn aggregates_skip_bad_samples_and_align_to_the_interval() {
        let s = |t, v| Sample::good(0, t, v);
        let samples = vec![
            s(59_000, 1.0),
            s(60_000, 2.0),
            s(90_000, 4.0),
            Sample::bad(0, 100_000, Quality::Timeout),
            s(125_000, 5.0),
        ];
        let b = aggregate(&samples, 60_000);
        assert_eq!(b.len(), 3);
        assert_eq!(
            (b[1].start_ms, b[1].min, b[1].max, b[1].mean, b[1].count),
            (60_000, 2.0, 4.0, 3.0, 2)
        );
    }

    #[test]
    fn formats() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Default::default()).unwrap();
        let id = store.sensor_id("p.t").unwrap();
        store.append(&[
            Sample::good(id, 1_700_000_000_123, 21.5),
            Sample::bad(id, 1_700_000_001_123, Quality::Exception(2)),
        ]);
        let mut out = Vec::new();
        let q = Query {
            sensor_glob: "p.*".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            every_ms: None,
            format: Format::Jsonl,
        };
        assert_eq!(run(&store, &q, &[], &mut out).unwrap(), 2);
        let text = String::from_utf8(out).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"sensor": "p.t", "ts": "2023-11-14T22:13:20.123Z", "value": 21.5})
        );
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .contains("\"quality\":\"exception 02 (illegal data address)\""));
        let mut out = Vec::new();
        run(
            &store,
            &Query {
                format: Format::Csv,
                every_ms: Some(60_000),
                ..q
            },
            &[],
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sensor,ts,value,min,max,mean,count\np.t,2023-11-14T22:13:00.000Z,21.5,21.5,21.5,21.5,1\n"
        );
    }
}
