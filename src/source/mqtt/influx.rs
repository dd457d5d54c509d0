//! Decoder for InfluxDB line protocol payloads
//! (`measurement[,tag=v...] field=value[,...] [timestamp]`, one point per line).
//!
//! Every numeric or boolean field becomes one [`Reading`] whose vars are
//! `measurement`, `field` and the line's tags; string fields are valid but
//! carry no number, so they are reported ([`DecodeError::NonNumeric`], counted
//! as `non_numeric`) and not stored. Decoding never panics and never
//! lets one bad line cost the others: a line with a syntax error is skipped as a
//! whole (its timestamp or tags cannot be trusted) and reported with its line and
//! column, while a well-formed line with a non-finite value loses only that field.
//! Timestamps are in the subscription's `precision`, nanoseconds by default as in the
//! protocol (MQTT carries no `precision` parameter), and floored to the store's
//! milliseconds; a timestamp that overflows in milliseconds fails its line. Lines
//! of one series less than a millisecond apart fall on one stored sample, which the
//! input counts as `collapsed` (it never moves a time to keep them apart).
//! Known limit: a string field containing a raw newline is not supported, because
//! splitting on newlines first is what keeps a broken quote from swallowing the
//! rest of the payload.

use super::{DecodeError, Reading};
use crate::config::Precision;

/// Decodes every line of `payload`, returning the readings of the good lines
/// and one error per bad line or rejected field.
pub fn decode(payload: &[u8], precision: Precision) -> (Vec<Reading>, Vec<DecodeError>) {
    let mut readings = Vec::new();
    let mut errors = Vec::new();
    for (idx, raw) in payload.split(|&b| b == b'\n').enumerate() {
        let line = idx + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                errors.push(line_error(line, e.valid_up_to(), "invalid UTF-8".into()));
                continue;
            }
        };
        let body = text.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = text.len() - body.len();
        match parse_line(body, precision) {
            Ok(point) => point.emit(line, indent, &mut readings, &mut errors),
            Err((pos, reason)) => errors.push(line_error(line, indent + pos, reason)),
        }
    }
    (readings, errors)
}

fn line_error(line: usize, pos: usize, reason: String) -> DecodeError {
    DecodeError::Line {
        line,
        column: pos + 1,
        reason,
    }
}

/// Quotes input text for an error message, cut short so that one huge token
/// cannot flood the logs.
fn show(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// A syntax error: byte offset within the parsed text, and what is wrong.
type Fail = (usize, String);

enum FieldValue {
    Number(f64),
    /// Parsed fine but infinite or NaN: reported, never turned into a reading.
    NonFinite,
    Text,
}

struct Field {
    key: String,
    value: FieldValue,
    /// Offset of the value, so a rejected value can be pointed at.
    pos: usize,
}

struct Point {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<Field>,
    ts_ms: Option<i64>,
}

impl Point {
    fn emit(self, line: usize, indent: usize, out: &mut Vec<Reading>, errs: &mut Vec<DecodeError>) {
        for field in self.fields {
            let value = match field.value {
                FieldValue::Number(v) => v,
                FieldValue::Text => {
                    errs.push(DecodeError::NonNumeric {
                        name: field.key,
                        kind: "string field",
                    });
                    continue;
                }
                FieldValue::NonFinite => {
                    let reason = format!("field {} is not a finite number", show(&field.key));
                    errs.push(line_error(line, indent + field.pos, reason));
                    continue;
                }
            };
            // measurement and field come first so they win over a tag of the
            // same name when a template looks names up.
            let mut vars = Vec::with_capacity(2 + self.tags.len());
            vars.push(("measurement".to_owned(), self.measurement.clone()));
            vars.push(("field".to_owned(), field.key));
            vars.extend(self.tags.iter().cloned());
            out.push(Reading {
                vars,
                ts_ms: self.ts_ms,
                value,
            });
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, Fail> {
        Err((self.pos, reason.into()))
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// Reads a name up to an unescaped byte of `stops`, resolving `\,`, `\=`,
    /// `\ ` and `\\`; any other backslash is literal, as the protocol allows.
    fn name(&mut self, stops: &[u8]) -> String {
        let bytes = self.text.as_bytes();
        let mut out = String::new();
        let mut start = self.pos;
        while let Some(&b) = bytes.get(self.pos) {
            if b == b'\\' && matches!(bytes.get(self.pos + 1), Some(b',' | b'=' | b' ' | b'\\')) {
                // Slicing is safe: both ends sit on ASCII bytes.
                out.push_str(&self.text[start..self.pos]);
                start = self.pos + 1;
                self.pos += 2;
            } else if stops.contains(&b) {
                break;
            } else {
                self.pos += 1;
            }
        }
        out.push_str(&self.text[start..self.pos]);
        out
    }

    /// Reads an unescaped token up to `,`, space or the end.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b',' | b' ')) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Skips a double-quoted string field value; only validity matters since
    /// string fields never become readings.
    fn quoted(&mut self) -> Result<(), Fail> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err((start, "unterminated string field value".into())),
                Some(b'\\') => self.pos += 2.min(self.text.len() - self.pos),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

fn parse_line(text: &str, precision: Precision) -> Result<Point, Fail> {
    let mut c = Cursor { text, pos: 0 };
    let measurement = c.name(b", ");
    if measurement.is_empty() {
        return c.fail("missing measurement name");
    }
    let mut tags = Vec::new();
    while c.peek() == Some(b',') {
        c.pos += 1;
        let key = c.name(b",= ");
        if key.is_empty() {
            return c.fail("empty tag key");
        }
        if c.peek() != Some(b'=') {
            return c.fail(format!("tag {} has no '=' and value", show(&key)));
        }
        c.pos += 1;
        let value = c.name(b", ");
        if value.is_empty() {
            return c.fail(format!("tag {} has an empty value", show(&key)));
        }
        tags.push((key, value));
    }
    c.skip_spaces();
    if c.peek().is_none() {
        return c.fail("missing field set");
    }
    let mut fields = Vec::new();
    loop {
        let key = c.name(b",= ");
        if key.is_empty() {
            return c.fail("empty field key");
        }
        if c.peek() != Some(b'=') {
            return c.fail(format!("field {} has no '=' and value", show(&key)));
        }
        c.pos += 1;
        let pos = c.pos;
        let value = if c.peek() == Some(b'"') {
            c.quoted()?;
            FieldValue::Text
        } else {
            parse_value(&key, c.token()).map_err(|reason| (pos, reason))?
        };
        fields.push(Field { key, value, pos });
        match c.peek() {
            Some(b',') => c.pos += 1,
            None | Some(b' ') => break,
            Some(_) => return c.fail("expected ',' or ' ' after a string field value"),
        }
    }
    c.skip_spaces();
    let mut ts_ms = None;
    if c.peek().is_some() {
        let pos = c.pos;
        let raw = c.token();
        let ms = raw.parse().ok().and_then(|t| precision.to_ms(t)).ok_or_else(|| {
            let reason = format!("timestamp {} is not an integer of {}", show(raw), precision.name());
            (pos, reason)
        })?;
        ts_ms = Some(ms);
        c.skip_spaces();
        if c.peek().is_some() {
            return c.fail("unexpected text after the timestamp");
        }
    }
    Ok(Point {
        measurement,
        tags,
        fields,
        ts_ms,
    })
}

fn parse_value(key: &str, raw: &str) -> Result<FieldValue, String> {
    let number = match raw {
        "" => return Err(format!("field {} has an empty value", show(key))),
        "t" | "T" | "true" | "True" | "TRUE" => 1.0,
        "f" | "F" | "false" | "False" | "FALSE" => 0.0,
        _ => {
            let parsed = if let Some(digits) = raw.strip_suffix('i') {
                digits.parse::<i64>().ok().map(|v| v as f64)
            } else if let Some(digits) = raw.strip_suffix('u') {
                digits.parse::<u64>().ok().map(|v| v as f64)
            } else if raw.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
                raw.parse::<f64>().ok()
            } else {
                // Words like `nan` or `inf` parse as floats in Rust but are not
                // numbers in the protocol; they are still reported as non-finite.
                match raw.to_ascii_lowercase().as_str() {
                    "nan" | "inf" | "infinity" => Some(f64::NAN),
                    _ => None,
                }
            };
            parsed.ok_or_else(|| format!("field {} has an invalid value {}", show(key), show(raw)))?
        }
    };
    Ok(if number.is_finite() {
        FieldValue::Number(number)
    } else {
        FieldValue::NonFinite
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var<'a>(r: &'a Reading, name: &str) -> Option<&'a str> {
        r.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn is_string_field(e: &DecodeError) -> bool {
        matches!(
            e,
            DecodeError::NonNumeric {
                kind: "string field",
                ..
            }
        )
    }

    fn one(line: &str) -> Reading {
        let (readings, mut errors) = decode(line.as_bytes(), Precision::Ns);
        errors.retain(|e| !is_string_field(e));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(readings.len(), 1, "{readings:?}");
        readings[0].clone()
    }

    fn error_of(line: &str) -> DecodeError {
        let (readings, errors) = decode(line.as_bytes(), Precision::Ns);
        assert!(readings.is_empty(), "{line}: {readings:?}");
        assert_eq!(errors.len(), 1, "{line}: {errors:?}");
        errors[0].clone()
    }

    #[test]
    fn basic_point_with_tags_and_timestamp() {
        let r = one("cpu,host=a,region=eu usage_idle=93.5 1700000000123456789");
        assert_eq!(r.value, 93.5);
        assert_eq!(r.ts_ms, Some(1_700_000_000_123));
        let names: Vec<&str> = r.vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["measurement", "field", "host", "region"]);
        assert_eq!(var(&r, "measurement"), Some("cpu"));
        assert_eq!(var(&r, "field"), Some("usage_idle"));
        assert_eq!(var(&r, "region"), Some("eu"));
    }

    #[test]
    fn escaping_in_names_and_strings() {
        let r = one(r#"my\ meas\,x=y,ta\ g\=k=v\,al\ ue\\ f\=ld\ k=1i,s="a \"b\" c\\ ,= d""#);
        assert_eq!(var(&r, "measurement"), Some("my meas,x=y"));
        assert_eq!(var(&r, "ta g=k"), Some(r"v,al ue\"));
        assert_eq!(var(&r, "field"), Some("f=ld k"));
        // A backslash before an ordinary character stays literal.
        let r = one(r"a\b,t=c\d f=2");
        assert_eq!(var(&r, "measurement"), Some(r"a\b"));
        assert_eq!(var(&r, "t"), Some(r"c\d"));
    }

    #[test]
    fn every_field_type() {
        let line = "m a=1.5,b=-3e2,c=12i,d=-7i,e=12u,f=.5,g=t,h=T,i=true,j=True,k=TRUE,\
                    l=f,m=F,n=false,o=False,p=FALSE,q=\"text\",r=1";
        let (readings, errors) = decode(line.as_bytes(), Precision::Ns);
        // The string field is reported by name, not stored.
        let string_field = DecodeError::NonNumeric {
            name: "q".into(),
            kind: "string field",
        };
        assert_eq!(errors, [string_field]);
        let got: Vec<(String, f64)> = readings
            .iter()
            .map(|r| (var(r, "field").unwrap_or("?").to_owned(), r.value))
            .collect();
        let want = [
            ("a", 1.5),
            ("b", -300.0),
            ("c", 12.0),
            ("d", -7.0),
            ("e", 12.0),
            ("f", 0.5),
            ("g", 1.0),
            ("h", 1.0),
            ("i", 1.0),
            ("j", 1.0),
            ("k", 1.0),
            ("l", 0.0),
            ("m", 0.0),
            ("n", 0.0),
            ("o", 0.0),
            ("p", 0.0),
            ("r", 1.0),
        ];
        let want: Vec<(String, f64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(got, want);
        assert!(readings.iter().all(|r| r.ts_ms.is_none()));
    }

    #[test]
    fn timestamps() {
        assert_eq!(one("m v=1").ts_ms, None);
        assert_eq!(one("m v=1  ").ts_ms, None);
        assert_eq!(one("m v=1 0").ts_ms, Some(0));
        assert_eq!(one("m v=1 999999").ts_ms, Some(0));
        assert_eq!(one("m v=1 -1").ts_ms, Some(-1));
        assert_eq!(one("m v=1 1000000 ").ts_ms, Some(1));
        assert_eq!(one("m   v=1   5000000").ts_ms, Some(5));
    }

    #[test]
    fn precisions() {
        let ts = |line: &str, p| decode(line.as_bytes(), p).0.first().and_then(|r| r.ts_ms);
        assert_eq!(ts("m v=1 1700000000123456", Precision::Us), Some(1_700_000_000_123));
        assert_eq!(ts("m v=1 1700000000123", Precision::Ms), Some(1_700_000_000_123));
        assert_eq!(ts("m v=1 1700000000", Precision::S), Some(1_700_000_000_000));
        assert_eq!(ts("m v=1 -1", Precision::Us), Some(-1));
        // Seconds past what milliseconds can hold fail the line, not wrap.
        let (readings, errors) = decode(format!("m v=1 {}", i64::MAX / 10).as_bytes(), Precision::S);
        assert!(readings.is_empty());
        assert!(errors[0].to_string().contains("integer of seconds"), "{errors:?}");
    }

    #[test]
    fn bad_line_in_the_middle_keeps_the_others() {
        let payload = b"# header comment\r\ncpu v=1 1000000\r\n\r\ncpu v=oops 2000000\r\n  mem,h=x free=3i\n";
        let (readings, errors) = decode(payload, Precision::Ns);
        let values: Vec<f64> = readings.iter().map(|r| r.value).collect();
        assert_eq!(values, [1.0, 3.0]);
        assert_eq!(readings[1].vars[2], ("h".to_owned(), "x".to_owned()));
        assert_eq!(
            errors,
            [DecodeError::Line {
                line: 4,
                column: 7,
                reason: "field \"v\" has an invalid value \"oops\"".into()
            }]
        );
        assert!(errors[0].to_string().starts_with("line 4, column 7: field \"v\""));
    }

    #[test]
    fn non_finite_values_are_errors_not_readings() {
        for bad in ["NaN", "nan", "inf", "-inf", "Infinity", "1e400", "-1e999"] {
            let line = format!("m a={bad},b=2 1000000");
            let (readings, errors) = decode(line.as_bytes(), Precision::Ns);
            assert_eq!(readings.len(), 1, "{bad}");
            assert_eq!((readings[0].value, readings[0].ts_ms), (2.0, Some(1)));
            assert_eq!(errors.len(), 1, "{bad}");
            assert!(errors[0].to_string().contains("not a finite"), "{bad}");
        }
    }

    #[test]
    fn malformed_lines_are_reported() {
        let cases = [
            (",t=a v=1", 1, "missing measurement"),
            ("m", 2, "missing field set"),
            ("m,t=a", 6, "missing field set"),
            ("m,=a v=1", 3, "empty tag key"),
            ("m,t v=1", 4, "has no '='"),
            ("m,t= v=1", 5, "empty value"),
            ("m v", 4, "has no '='"),
            ("m =1", 3, "empty field key"),
            ("m v=", 5, "empty value"),
            ("m v=1,", 7, "empty field key"),
            ("m v=1.5i", 5, "invalid value"),
            ("m v=-1u", 5, "invalid value"),
            ("m v=yes", 5, "invalid value"),
            ("m v=\"open", 5, "unterminated"),
            ("m v=\"a\"x", 8, "expected ','"),
            ("m v=1 12.5", 7, "timestamp"),
            ("m v=1 12 extra", 10, "after the timestamp"),
        ];
        for (line, column, what) in cases {
            match error_of(line) {
                DecodeError::Line {
                    line: 1,
                    column: c,
                    reason,
                } => {
                    assert!(reason.contains(what), "{line}: {reason}");
                    assert_eq!(c, column, "{line}: {reason}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        let r = one("m,t=\u{e9}t\\\u{e9} v=1");
        assert_eq!(var(&r, "t"), Some("\u{e9}t\\\u{e9}"));
        let long = format!("m v={}", "9".repeat(10_000) + "x");
        assert!(error_of(&long).to_string().len() < 120);
        let (_, errors) = decode(b"m v=1\nm\xff v=1", Precision::Ns);
        assert_eq!(errors, [line_error(2, 1, "invalid UTF-8".into())]);
    }

    #[test]
    fn fuzz_never_panics() {
        let seeds: &[&[u8]] = &[
            b"cpu,host=a\\ b,r=eu usage=1.5,n=3i,ok=t,s=\"x\\\"y\" 1700000000000000000\n",
            b"m\\,x,t\\=k=v\\ w a=1u,b=-2e3 -5\r\n# c\nm b=F\n",
        ];
        let alphabet = b" ,=\\\"\n\r#tfiu0123456789.-eE";
        let mut rng = super::super::FuzzRng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let mut buf: Vec<u8> = seeds[round % seeds.len()].to_vec();
            match round % 4 {
                0 => buf.truncate(rng.below(buf.len() + 1)),
                1 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(buf.len());
                        buf[i] ^= 1 << rng.below(8);
                    }
                }
                2 => {
                    for _ in 0..=rng.below(6) {
                        let i = rng.below(buf.len());
                        buf[i] = alphabet[rng.below(alphabet.len())];
                    }
                }
                _ => buf = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            }
            let lines = buf.split(|&b| b == b'\n').count();
            let (readings, errors) = decode(&buf, Precision::Ns);
            assert!(readings.iter().all(|r| r.value.is_finite()));
            for e in errors {
                let located = matches!(e, DecodeError::Line { line, .. } if line <= lines);
                assert!(located || is_string_field(&e), "{e:?}");
            }
        }
    }

    #[test]
    fn corpus_files_decode_to_expected_counts() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
        let expected = std::fs::read_to_string(format!("{dir}/expected.txt")).expect("corpus/expected.txt is readable");
        let mut checked = Vec::new();
        for entry in expected.lines().filter(|l| l.starts_with("influx/")) {
            let (name, count) = entry.split_once(' ').expect("`filename count` line");
            let bytes = std::fs::read(format!("{dir}/{name}")).expect("corpus file exists");
            let (readings, mut errors) = decode(&bytes, Precision::Ns);
            errors.retain(|e| !is_string_field(e));
            assert!(errors.is_empty(), "{name}: {errors:?}");
            assert_eq!(readings.len().to_string(), count.trim(), "{name}");
            checked.push(name.trim_start_matches("influx/").to_owned());
        }
        let mut files: Vec<String> = std::fs::read_dir(format!("{dir}/influx"))
            .expect("corpus/influx exists")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        files.sort();
        checked.sort();
        assert_eq!(files, checked, "every corpus file has an expected count");
    }
}
