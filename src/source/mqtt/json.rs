//! The `number` and `json` payload formats.
//!
//! `number`: the payload is a number in text (`21.5`, ` 3e2 `); `true`/`false` read as 1/0.
//! `json`: an object whose numeric (and boolean) fields are each a reading named by the
//! `{field}` variable (nested objects flatten to `outer.inner`); or, with a `value` path,
//! one reading from that path; or an array of objects, each with its own time and value.
//! The time comes from the `timestamp` field (epoch seconds below 10^11, epoch
//! milliseconds above, or RFC 3339) or is the arrival time. One bad element never takes
//! the good ones of the same payload with it.

use serde_json::Value;

use super::{DecodeError, Reading};

pub fn decode_number(payload: &[u8]) -> Result<Reading, DecodeError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| DecodeError::Malformed("payload is not UTF-8 text".into()))?
        .trim();
    let value = match text {
        "true" => 1.0,
        "false" => 0.0,
        t => t
            .parse::<f64>()
            .map_err(|_| DecodeError::Malformed(format!("{:?} is not a number", clip(t))))?,
    };
    if !value.is_finite() {
        return Err(DecodeError::NonFinite(text.to_string()));
    }
    Ok(Reading {
        vars: Vec::new(),
        ts_ms: None,
        value,
    })
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Reads a time: epoch seconds (below 10^11), epoch milliseconds, or RFC 3339 text.
fn time_of(v: &Value) -> Result<i64, DecodeError> {
    match v {
        Value::Number(n) => {
            let f = n
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| DecodeError::BadTime(n.to_string()))?;
            Ok(if f.abs() < 1e11 {
                (f * 1000.0).round() as i64
            } else {
                f.round() as i64
            })
        }
        Value::String(s) => crate::base::time::parse_time(s).ok_or_else(|| DecodeError::BadTime(clip(s))),
        other => Err(DecodeError::BadTime(clip(&other.to_string()))),
    }
}

fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |node, key| match node {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => node.get(key),
    })
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn flatten(prefix: &str, v: &Value, skip: Option<&str>, ts_ms: Option<i64>, out: &mut Vec<Reading>) {
    let Value::Object(map) = v else { return };
    for (key, child) in map {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if Some(name.as_str()) == skip {
            continue;
        }
        match child {
            Value::Object(_) => flatten(&name, child, skip, ts_ms, out),
            other => {
                if let Some(value) = number_of(other) {
                    out.push(Reading {
                        vars: vec![("field".into(), name)],
                        ts_ms,
                        value,
                    });
                }
            }
        }
    }
}

/// Decodes a JSON payload; returns the readings and the problems of the parts that failed.
pub fn decode_json(payload: &[u8], timestamp: Option<&str>, value: Option<&str>) -> (Vec<Reading>, Vec<DecodeError>) {
    let doc: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return (Vec::new(), vec![DecodeError::Malformed(format!("not JSON: {e}"))]),
    };
    let mut readings = Vec::new();
    let mut errors = Vec::new();
    let time = |obj: &Value| -> Result<Option<i64>, DecodeError> {
        match timestamp.map(|path| at_path(obj, path)) {
            None | Some(None) => Ok(None),
            Some(Some(v)) => time_of(v).map(Some),
        }
    };
    match &doc {
        Value::Array(items) => {
            let path = value.unwrap_or("value");
            for (i, item) in items.iter().enumerate() {
                let ts = match time(item) {
                    Ok(ts) => ts,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                match at_path(item, path).and_then(number_of) {
                    Some(v) => readings.push(Reading {
                        vars: vec![("field".into(), path.to_string())],
                        ts_ms: ts,
                        value: v,
                    }),
                    None => errors.push(DecodeError::Malformed(format!("element {i} has no number at {path:?}"))),
                }
            }
        }
        Value::Number(_) | Value::Bool(_) if value.is_none() => {
            readings.push(Reading {
                vars: vec![("field".into(), "value".into())],
                ts_ms: None,
                value: number_of(&doc).unwrap_or(f64::NAN),
            });
        }
        _ => {
            let ts = match time(&doc) {
                Ok(ts) => ts,
                Err(e) => return (Vec::new(), vec![e]),
            };
            match value {
                Some(path) => match at_path(&doc, path).and_then(number_of) {
                    Some(v) => readings.push(Reading {
                        vars: vec![("field".into(), path.to_string())],
                        ts_ms: ts,
                        value: v,
                    }),
                    None => errors.push(DecodeError::Malformed(format!("no number at {path:?}"))),
                },
                None => {
                    flatten("", &doc, timestamp, ts, &mut readings);
                    if readings.is_empty() {
                        errors.push(DecodeError::Malformed("no numeric field".into()));
                    }
                }
            }
        }
    }
    readings.retain(|r| {
        let ok = r.value.is_finite();
        if !ok {
            errors.push(DecodeError::NonFinite(r.value.to_string()));
        }
        ok
    });
    (readings, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: &Reading) -> &str {
        &r.vars[0].1
    }

    #[test]
    fn numbers() {
        assert_eq!(decode_number(b" 21.5\n").unwrap().value, 21.5);
        assert_eq!(decode_number(b"true").unwrap().value, 1.0);
        assert!(matches!(decode_number(b"NaN"), Err(DecodeError::NonFinite(_))));
        assert!(matches!(decode_number(b"inf"), Err(DecodeError::NonFinite(_))));
        assert!(matches!(decode_number(b"21,5"), Err(DecodeError::Malformed(_))));
        assert!(decode_number(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn the_readme_example() {
        let (r, e) = decode_json(
            br#"{"ts": 1700000000123, "temp": 21.5, "vib": 0.031}"#,
            Some("ts"),
            None,
        );
        assert!(e.is_empty());
        let mut got: Vec<(&str, f64, Option<i64>)> = r.iter().map(|x| (field(x), x.value, x.ts_ms)).collect();
        got.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(
            got,
            vec![
                ("temp", 21.5, Some(1_700_000_000_123)),
                ("vib", 0.031, Some(1_700_000_000_123))
            ]
        );
    }

    #[test]
    fn nested_paths_arrays_and_time_forms() {
        let (r, _) = decode_json(
            br#"{"time": "2023-11-14T22:13:20Z", "m": {"a": 1, "b": true, "c": "x"}}"#,
            Some("time"),
            None,
        );
        let names: Vec<&str> = r.iter().map(field).collect();
        assert_eq!(names, vec!["m.a", "m.b"]);
        assert_eq!(r[0].ts_ms, Some(1_700_000_000_000));
        let (r, _) = decode_json(
            br#"{"t": 1700000000.5, "data": {"value": 3}}"#,
            Some("t"),
            Some("data.value"),
        );
        assert_eq!((r.len(), r[0].value, r[0].ts_ms), (1, 3.0, Some(1_700_000_000_500)));
        let (r, e) = decode_json(br#"[{"ts": 1700000000000, "value": 1}, {"ts": "bad", "value": 2}, {"ts": 1700000001000, "value": 3}, {"ts": 1700000002000}]"#, Some("ts"), None);
        assert_eq!(r.iter().map(|x| x.value).collect::<Vec<_>>(), vec![1.0, 3.0]);
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        for bad in [&b"{"[..], b"", b"\"text\"", b"{\"a\": \"x\"}", b"[1, 2]", b"null"] {
            let (r, e) = decode_json(bad, Some("ts"), None);
            assert!(r.is_empty() && !e.is_empty(), "{:?}", String::from_utf8_lossy(bad));
        }
        let (_, e) = decode_json(br#"{"ts": [1], "a": 1}"#, Some("ts"), None);
        assert!(matches!(e[0], DecodeError::BadTime(_)));
    }

    /// Random bytes and mutations of real payloads: errors, never panics; and the corpus
    /// of real-world payloads keeps decoding to the same number of readings.
    #[test]
    fn fuzz_never_panics_and_corpus_holds() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/json");
        let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("fuzz/corpus/json exists")
            .map(|e| {
                let path = e.expect("entry").path();
                (
                    path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("readable"),
                )
            })
            .collect();
        seeds.sort();
        let expected = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/expected.txt"))
            .expect("expected.txt");
        for (name, bytes) in &seeds {
            let want: usize = expected
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("json/{name} "))
                        .and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or_else(|| panic!("json/{name} has no expected count"));
            let (r, _) = decode_json(bytes, Some("ts"), None);
            assert_eq!(r.len(), want, "{name}");
        }
        let mut rng = super::super::FuzzRng(0x9E37_79B9_7F4A_7C15);
        for round in 0..20_000 {
            let mut buf = seeds[round % seeds.len()].1.clone();
            match rng.below(4) {
                0 => buf.truncate(rng.below(buf.len() + 1)),
                1 if !buf.is_empty() => {
                    let i = rng.below(buf.len());
                    buf[i] ^= 1 << rng.below(8);
                }
                2 if !buf.is_empty() => {
                    let i = rng.below(buf.len());
                    let chars = b"{}[]\",:0.e-9tn\\";
                    buf[i] = chars[rng.below(chars.len())];
                }
                _ => buf = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            }
            let _ = decode_json(&buf, Some("ts"), Some("a.0"));
            let _ = decode_json(&buf, Some("ts"), None);
            let _ = decode_number(&buf);
        }
    }
}
