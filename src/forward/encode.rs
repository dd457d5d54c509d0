//! The two wire shapes of forwarded telemetry: a JSON batch per asset (described by
//! `schema/telemetry.schema.json`) and InfluxDB line protocol (measurement `forewarn`,
//! tags `agent`, `asset`, `sensor`, millisecond timestamps). Values keep their shortest
//! round-trip decimal form in both.

use std::fmt::Write;

use serde::Serialize;

use super::plan::{Batch, Item};
use crate::base::time::format_rfc3339_ms;

/// The version of the JSON batch shape.
pub const SCHEMA: u32 = 1;

#[derive(Serialize)]
struct JsonBatch<'a> {
    schema: u32,
    agent: &'a str,
    asset: &'a str,
    samples: Vec<JsonSample<'a>>,
}

#[derive(Serialize)]
struct JsonSample<'a> {
    sensor: &'a str,
    ts: String,
    /// `null` for a bad sample (its value was never read).
    value: Option<f64>,
    quality: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

/// One JSON object for the batch.
pub fn json(agent: &str, batch: &Batch) -> Vec<u8> {
    let samples = batch
        .items
        .iter()
        .map(|(name, item)| match item {
            Item::Raw(s) => JsonSample {
                sensor: name,
                ts: format_rfc3339_ms(s.ts_ms),
                value: (s.quality.is_good() && s.value.is_finite()).then_some(s.value),
                quality: s.quality.to_string(),
                min: None,
                max: None,
                count: None,
            },
            Item::Rollup { bucket, .. } => JsonSample {
                sensor: name,
                ts: format_rfc3339_ms(bucket.start_ms),
                value: Some(bucket.mean),
                quality: "good".into(),
                min: Some(bucket.min),
                max: Some(bucket.max),
                count: Some(bucket.count),
            },
        })
        .collect();
    let body = JsonBatch {
        schema: SCHEMA,
        agent,
        asset: &batch.asset,
        samples,
    };
    // Serialising plain structs of strings and finite numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Line protocol for the batch, one line per item.
pub fn line_protocol(agent: &str, batch: &Batch) -> String {
    let mut out = String::with_capacity(batch.items.len() * 96);
    let tags = format!("forewarn,agent={},asset={}", tag(agent), tag(&batch.asset));
    for (name, item) in &batch.items {
        let _ = write!(out, "{tags},sensor={} ", tag(name));
        let ts = match item {
            Item::Raw(s) if s.quality.is_good() && s.value.is_finite() => {
                let _ = write!(out, "value={}", s.value);
                s.ts_ms
            }
            Item::Raw(s) => {
                let _ = write!(out, "quality=\"{}\"", string_field(&s.quality.to_string()));
                s.ts_ms
            }
            Item::Rollup { bucket: b, .. } => {
                let _ = write!(out, "value={},min={},max={},count={}i", b.mean, b.min, b.max, b.count);
                b.start_ms
            }
        };
        let _ = writeln!(out, " {ts}");
    }
    out
}

/// A tag key or value: commas, equals signs and spaces escaped.
fn tag(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, ',' | '=' | ' ' | '\\') {
            out.push('\\');
        }
        if c == '\n' {
            out.push_str("\\n");
            continue;
        }
        out.push(c);
    }
    out
}

/// A string field's content: quotes and backslashes escaped.
fn string_field(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::base::sample::{Quality, Sample};

    fn batch() -> Batch {
        Batch {
            asset: Arc::from("line 1/pump"),
            items: vec![
                (
                    Arc::from("pump1.temp"),
                    Item::Raw(Sample::good(1, 1_700_000_000_123, 123.456)),
                ),
                (
                    Arc::from("pump1.temp"),
                    Item::Raw(Sample::bad(1, 1_700_000_001_000, Quality::Timeout)),
                ),
            ],
            advances: vec![],
            suppressed: 0,
            late: None,
        }
    }

    #[test]
    fn json_batches_carry_rfc3339_times_and_null_for_bad_samples() {
        let v: serde_json::Value = serde_json::from_slice(&json("gw-1", &batch())).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["asset"], "line 1/pump");
        assert_eq!(v["samples"][0]["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["samples"][0]["value"], 123.456);
        assert_eq!(v["samples"][0]["quality"], "good");
        assert!(v["samples"][1]["value"].is_null());
        assert_eq!(v["samples"][1]["quality"], "timeout");
    }

    #[test]
    fn line_protocol_escapes_tags_and_marks_bad_samples() {
        let lp = line_protocol("gw-1", &batch());
        let lines: Vec<&str> = lp.lines().collect();
        assert_eq!(
            lines[0],
            "forewarn,agent=gw-1,asset=line\\ 1/pump,sensor=pump1.temp value=123.456 1700000000123"
        );
        assert_eq!(
            lines[1],
            "forewarn,agent=gw-1,asset=line\\ 1/pump,sensor=pump1.temp quality=\"timeout\" 1700000001000"
        );
    }
}
