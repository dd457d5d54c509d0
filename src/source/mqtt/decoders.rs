//! One input's decoders, with the state some formats keep between messages (Sparkplug's
//! births, kept in the store across restarts, and the pacing of rebirth requests), and how
//! each kind of problem a payload has is counted and logged.
//!
//! Every reading that does not become a sample is counted under one figure of its
//! subscription and logged rate-limited ([`crate::stats::Counter::event`]) with its topic:
//! malformed payloads and lines (with the line's text, cut to [`LINE_EXCERPT`] characters),
//! non-finite numbers, values that are not numbers (naming the metric or field), and
//! Sparkplug metrics whose alias no birth explains. Such a message is still acknowledged:
//! it cannot become decodable by being sent again. For unknown aliases the rebirth the
//! input asks for is what lets the data flow again.

use std::time::Instant;

use super::sparkplug::births::{BirthLog, Rebirths};
use super::sparkplug::{self, Sparkplug};
use super::{influx, json, DecodeError, Reading};
use crate::config::{PayloadFormat, Subscription};
use crate::stats::{Counter, InputStats};
use crate::store::Store;

/// How much of a bad line a log line quotes.
pub(super) const LINE_EXCERPT: usize = 200;

/// What one message gave.
pub(super) struct Decoded {
    pub readings: Vec<Reading>,
    /// The NCMD topic on which to ask a Sparkplug node for a rebirth, when one is due.
    pub rebirth: Option<String>,
}

pub(super) struct Decoders {
    sparkplug: Sparkplug,
    /// `None` without a Sparkplug subscription, or when the store's tree cannot be opened
    /// (then births are kept in memory only; logged at start).
    births: Option<BirthLog>,
    rebirths: Rebirths,
    /// Births that could not be written (full disk, sled error), for rate-limited logs.
    unsaved: Counter,
}

impl Decoders {
    /// The decoders of the input `client_id`; with Sparkplug subscriptions, the births it
    /// kept are restored.
    pub(super) fn open(store: &Store, client_id: &str, sparkplug: bool) -> Decoders {
        let mut decoders = Decoders {
            sparkplug: Sparkplug::default(),
            births: None,
            rebirths: Rebirths::default(),
            unsaved: Counter::default(),
        };
        if !sparkplug {
            return decoders;
        }
        let restored = BirthLog::open(store, client_id).and_then(|log| Ok((log.load()?, log)));
        match restored {
            Ok(((births, bad), log)) => {
                if bad > 0 {
                    tracing::warn!(client = %client_id, records = bad, "stored sparkplug births that do not decode were skipped");
                }
                tracing::info!(client = %client_id, births = births.len(), "sparkplug births restored");
                decoders.sparkplug.restore(births);
                decoders.births = Some(log);
            }
            Err(e) => {
                tracing::error!(client = %client_id, error = %e, "sparkplug births cannot be kept in the store; kept in memory only")
            }
        }
        decoders
    }

    pub(super) fn decode(&mut self, sub: &Subscription, topic: &str, payload: &[u8], st: &InputStats) -> Decoded {
        let (readings, errors, rebirth) = match sub.format {
            PayloadFormat::Number => match json::decode_number(payload) {
                Ok(r) => (vec![r], vec![], None),
                Err(e) => (vec![], vec![e], None),
            },
            PayloadFormat::Json => {
                let (r, e) = json::decode_json(payload, sub.timestamp.as_deref(), sub.value.as_deref());
                (r, e, None)
            }
            PayloadFormat::Influx => {
                let (r, e) = influx::decode(payload, sub.precision.unwrap_or_default());
                (r, e, None)
            }
            PayloadFormat::Sparkplug => self.sparkplug(topic, payload, st),
        };
        for e in &errors {
            report(e, topic, payload, st);
        }
        let rebirth = rebirth.filter(|ncmd| self.rebirths.due(ncmd, Instant::now()));
        if rebirth.is_some() {
            st.rebirths.inc();
        }
        Decoded { readings, rebirth }
    }

    /// Decodes a Sparkplug message, keeps what it changed about the births, and reports
    /// what it could not turn into readings.
    fn sparkplug(
        &mut self,
        topic: &str,
        payload: &[u8],
        st: &InputStats,
    ) -> (Vec<Reading>, Vec<DecodeError>, Option<String>) {
        let d = match self.sparkplug.decode(topic, payload) {
            Ok(d) => d,
            Err(e) => return (vec![], vec![e], None),
        };
        if let Some((expected, got)) = d.seq_gap {
            st.seq_gaps.event(|n| {
                tracing::warn!(
                    topic,
                    expected,
                    got,
                    count = n,
                    "sparkplug sequence gap: messages were lost before they reached the broker or us"
                )
            });
        }
        if let (Some(change), Some(log)) = (&d.change, &self.births) {
            if let Err(e) = log.apply(change) {
                self.unsaved.event(|n| tracing::warn!(topic, error = %e, count = n, "sparkplug birth not kept in the store (kept in memory)"));
            }
        }
        let mut errors = Vec::new();
        if d.unknown_aliases > 0 {
            errors.push(DecodeError::UnknownAlias {
                count: d.unknown_aliases,
            });
        }
        for (name, kind) in d.non_numeric {
            errors.push(DecodeError::NonNumeric { name, kind });
        }
        for name in d.non_finite {
            errors.push(DecodeError::NonFinite(format!("metric {name:?}")));
        }
        if d.unusable > 0 {
            errors.push(DecodeError::Malformed(format!(
                "{} metrics without a usable name (or alias) or value",
                d.unusable
            )));
        }
        (d.readings, errors, d.rebirth)
    }
}

/// Counts a problem under its figure and logs it, rate-limited.
fn report(e: &DecodeError, topic: &str, payload: &[u8], st: &InputStats) {
    match e {
        DecodeError::UnknownAlias { count } => st.unknown_alias.events(*count as u64, |n| {
            tracing::warn!(topic, error = %e, count = n, "sparkplug metrics not stored: no birth certificate binds their aliases (asking the node to rebirth)")
        }),
        DecodeError::NonNumeric { .. } => st.non_numeric.event(|n| {
            tracing::warn!(topic, error = %e, count = n, "value that is not a number; not stored")
        }),
        DecodeError::NonFinite(_) => st
            .non_finite
            .event(|n| tracing::warn!(topic, error = %e, count = n, "bad payload")),
        DecodeError::Line { line, reason, .. } if reason.contains("not a finite number") => {
            let text = excerpt(payload, *line);
            st.non_finite
                .event(|n| tracing::warn!(topic, error = %e, line = %text, count = n, "bad payload"));
        }
        DecodeError::Line { line, .. } => {
            let text = excerpt(payload, *line);
            st.malformed
                .event(|n| tracing::warn!(topic, error = %e, line = %text, count = n, "bad payload; line skipped"));
        }
        _ => st
            .malformed
            .event(|n| tracing::warn!(topic, error = %e, count = n, "bad payload")),
    }
}

/// Line `line` (1-based) of a text payload, lossily decoded and cut to [`LINE_EXCERPT`]
/// characters, so a log line shows what was refused without flooding.
fn excerpt(payload: &[u8], line: usize) -> String {
    let raw = payload
        .split(|&b| b == b'\n')
        .nth(line.saturating_sub(1))
        .unwrap_or_default();
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = String::from_utf8_lossy(raw);
    match text.char_indices().nth(LINE_EXCERPT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// The payload of a rebirth request, stamped now.
pub(super) fn rebirth_request(now_ms: i64) -> Vec<u8> {
    sparkplug::rebirth_request(u64::try_from(now_ms).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_quote_one_line_cut_short() {
        let payload = b"m v=1\r\nm v=oops\nm\xff v=1\n";
        assert_eq!(excerpt(payload, 1), "m v=1");
        assert_eq!(excerpt(payload, 2), "m v=oops");
        assert_eq!(excerpt(payload, 3), "m\u{fffd} v=1");
        assert_eq!(excerpt(payload, 9), "");
        let long = format!("m v={}", "\u{e9}".repeat(500));
        let cut = excerpt(long.as_bytes(), 1);
        assert_eq!(cut.chars().count(), LINE_EXCERPT + 3);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn problems_count_under_their_figure() {
        let st = InputStats::default();
        let errors = [
            DecodeError::UnknownAlias { count: 3 },
            DecodeError::NonNumeric {
                name: "Serial".into(),
                kind: "String",
            },
            DecodeError::NonFinite("metric \"x\"".into()),
            DecodeError::Line {
                line: 1,
                column: 5,
                reason: "field \"v\" is not a finite number".into(),
            },
            DecodeError::Line {
                line: 1,
                column: 5,
                reason: "field \"v\" has an invalid value".into(),
            },
            DecodeError::Malformed("x".into()),
        ];
        for e in &errors {
            report(e, "t", b"m v=x", &st);
        }
        let got = [&st.unknown_alias, &st.non_numeric, &st.non_finite, &st.malformed].map(|c| c.get());
        assert_eq!(got, [3, 1, 2, 2]);
    }
}
