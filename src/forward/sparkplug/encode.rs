//! The Sparkplug B wire shapes of the edge node: topics, and the protobuf payloads
//! (`org.eclipse.tahu.protobuf.Payload`) of NBIRTH, NDEATH, DBIRTH and DDATA, plus the
//! two messages it reads, NCMD (`Node Control/Rebirth`) and the primary host's STATE.
//!
//! The message structs are the edge node's own, written from Tahu's `sparkplug_b.proto`
//! like the input side's (`source::mqtt::sparkplug`): that side reads names as bytes and
//! leaves nested values unparsed so one odd metric cannot cost the others, while this side
//! must write `is_historical` and the `Quality` property, which the input never reads.
//! Guarantees: every function here is pure; a payload that does not decode is `None` or
//! `false`, never a panic.

use prost::Message;

use crate::base::sample::{Sample, SensorId};
use crate::forward::plan::Item;
use crate::source::mqtt::sparkplug::{NAMESPACE, REBIRTH_METRIC};

/// The node metric that carries the session number, in NBIRTH and NDEATH.
pub const BD_SEQ: &str = "bdSeq";

/// Datatype codes of Tahu's `DataType` enum the edge node writes.
mod datatype {
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const DOUBLE: u32 = 10;
    pub const BOOLEAN: u32 = 11;
}

/// The `Quality` property of a metric whose sample is not good (the convention of
/// Sparkplug hosts such as Ignition: 0 bad, 192 good).
const QUALITY_BAD: u32 = 0;

#[derive(Clone, PartialEq, Message)]
pub struct Payload {
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(message, optional, tag = "9")]
    pub properties: Option<PropertySet>,
    #[prost(oneof = "Value", tags = "10, 11, 13, 14")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(uint32, tag = "10")]
    Int(u32),
    #[prost(uint64, tag = "11")]
    Long(u64),
    #[prost(double, tag = "13")]
    Double(f64),
    #[prost(bool, tag = "14")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
pub struct PropertySet {
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<PropertyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PropertyValue {
    #[prost(uint32, optional, tag = "1")]
    pub r#type: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub int_value: Option<u32>,
}

/// A Sparkplug topic of this edge node: `spBv1.0/{group}/{kind}/{node}[/{device}]`.
pub fn topic(group: &str, kind: &str, node: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("{NAMESPACE}/{group}/{kind}/{node}/{d}"),
        None => format!("{NAMESPACE}/{group}/{kind}/{node}"),
    }
}

/// The primary host's STATE topic (Sparkplug 3.0).
pub fn state_topic(host: &str) -> String {
    format!("{NAMESPACE}/STATE/{host}")
}

/// An asset id as a Sparkplug device id: the topic separator and the wildcards a device
/// id may not hold become `:` (`line1/pump` → `line1:pump`).
pub fn device_id(asset: &str) -> String {
    asset.replace(['/', '+', '#'], ":")
}

fn ms(ts: i64) -> u64 {
    // Sparkplug times are unsigned; a time before 1970 is clamped rather than wrapped.
    u64::try_from(ts).unwrap_or(0)
}

fn bd_seq_metric(ts_ms: i64, bd_seq: u64) -> Metric {
    Metric {
        name: Some(BD_SEQ.into()),
        timestamp: Some(ms(ts_ms)),
        datatype: Some(datatype::INT64),
        value: Some(Value::Long(bd_seq)),
        ..Metric::default()
    }
}

/// NBIRTH: the session number and the rebirth control (no aliases: hosts write NCMD by
/// name, and device metrics own the alias space as sensor ids).
pub fn nbirth(now_ms: i64, seq: u8, bd_seq: u64) -> Vec<u8> {
    let rebirth = Metric {
        name: Some(REBIRTH_METRIC.into()),
        timestamp: Some(ms(now_ms)),
        datatype: Some(datatype::BOOLEAN),
        value: Some(Value::Boolean(false)),
        ..Metric::default()
    };
    Payload {
        timestamp: Some(ms(now_ms)),
        metrics: vec![bd_seq_metric(now_ms, bd_seq), rebirth],
        seq: Some(u64::from(seq)),
    }
    .encode_to_vec()
}

/// NDEATH, the MQTT will: only the session number, no `seq` (the spec leaves it out).
pub fn ndeath(now_ms: i64, bd_seq: u64) -> Vec<u8> {
    Payload {
        timestamp: Some(ms(now_ms)),
        metrics: vec![bd_seq_metric(now_ms, bd_seq)],
        seq: None,
    }
    .encode_to_vec()
}

/// One metric of a DBIRTH: a sensor with its alias and its last known sample.
#[derive(Debug, Clone, PartialEq)]
pub struct BirthMetric {
    pub name: String,
    pub alias: SensorId,
    /// Time and value (`None`: not good) of the newest sample known, if any.
    pub last: Option<(i64, Option<f64>)>,
}

/// DBIRTH: every sensor of the device by name, alias and datatype Double.
pub fn dbirth(now_ms: i64, seq: u8, metrics: &[BirthMetric]) -> Vec<u8> {
    let metrics = metrics
        .iter()
        .map(|m| {
            let (ts, value) = m.last.unwrap_or((now_ms, None));
            let mut metric = value_metric(ts, value, false);
            metric.name = Some(m.name.clone());
            metric.alias = Some(u64::from(m.alias));
            metric.datatype = Some(datatype::DOUBLE);
            metric
        })
        .collect();
    Payload {
        timestamp: Some(ms(now_ms)),
        metrics,
        seq: Some(u64::from(seq)),
    }
    .encode_to_vec()
}

/// A metric by alias only (the caller names it where needed): a value, or `is_null` with
/// the `Quality` property bad for a sample that is not good.
fn value_metric(ts_ms: i64, value: Option<f64>, historical: bool) -> Metric {
    let mut m = Metric {
        timestamp: Some(ms(ts_ms)),
        is_historical: historical.then_some(true),
        ..Metric::default()
    };
    match value {
        Some(v) => m.value = Some(Value::Double(v)),
        None => {
            m.is_null = Some(true);
            m.properties = Some(PropertySet {
                keys: vec!["Quality".into()],
                values: vec![PropertyValue {
                    r#type: Some(datatype::INT32),
                    int_value: Some(QUALITY_BAD),
                }],
            });
        }
    }
    m
}

/// A sample's value, `None` when it is not good (a failed read carries NaN).
pub fn sample_value(s: &Sample) -> Option<f64> {
    (s.quality.is_good() && s.value.is_finite()).then_some(s.value)
}

/// The sensor, time and value (`None` when not good) of an item. A rollup goes as its
/// mean at the bucket's start.
pub fn item_value(item: &Item) -> (SensorId, i64, Option<f64>) {
    match item {
        Item::Raw(s) => (s.sensor, s.ts_ms, sample_value(s)),
        Item::Rollup { sensor, bucket } => (*sensor, bucket.start_ms, Some(bucket.mean)),
    }
}

/// DDATA of a batch's items by alias; items older than `historical_before` (the backlog)
/// carry `is_historical`.
pub fn ddata<'a>(now_ms: i64, seq: u8, items: impl Iterator<Item = &'a Item>, historical_before: i64) -> Vec<u8> {
    let metrics = items
        .map(|item| {
            let (sensor, ts, value) = item_value(item);
            let mut m = value_metric(ts, value, ts < historical_before);
            m.alias = Some(u64::from(sensor));
            m
        })
        .collect();
    Payload {
        timestamp: Some(ms(now_ms)),
        metrics,
        seq: Some(u64::from(seq)),
    }
    .encode_to_vec()
}

/// Whether an NCMD asks for a rebirth (`Node Control/Rebirth` = true).
pub fn asks_rebirth(payload: &[u8]) -> bool {
    let Ok(p) = Payload::decode(payload) else {
        return false;
    };
    p.metrics
        .iter()
        .any(|m| m.name.as_deref() == Some(REBIRTH_METRIC) && m.value == Some(Value::Boolean(true)))
}

/// A primary host's STATE: online or not, and its timestamp. Sparkplug 3.0 sends JSON
/// `{"online": true, "timestamp": …}`; 2.2 hosts sent the bare words `ONLINE`/`OFFLINE`.
pub fn host_state(payload: &[u8]) -> Option<(bool, Option<i64>)> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    match text {
        "ONLINE" => return Some((true, None)),
        "OFFLINE" => return Some((false, None)),
        _ => {}
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let online = v.get("online")?.as_bool()?;
    Some((online, v.get("timestamp").and_then(serde_json::Value::as_i64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::sample::Quality;

    #[test]
    fn births_carry_names_aliases_datatypes_and_the_session() {
        let p = Payload::decode(&nbirth(1_000, 0, 7)[..]).unwrap();
        assert_eq!(p.seq, Some(0));
        assert_eq!(p.metrics[0].name.as_deref(), Some("bdSeq"));
        assert_eq!(p.metrics[0].value, Some(Value::Long(7)));
        assert_eq!(p.metrics[1].name.as_deref(), Some(REBIRTH_METRIC));
        let metrics = [
            BirthMetric {
                name: "pump.temp".into(),
                alias: 3,
                last: Some((900, Some(21.5))),
            },
            BirthMetric {
                name: "pump.flow".into(),
                alias: 4,
                last: None,
            },
        ];
        let p = Payload::decode(&dbirth(1_000, 1, &metrics)[..]).unwrap();
        assert_eq!(p.seq, Some(1));
        let m = &p.metrics[0];
        assert_eq!(
            (m.name.as_deref(), m.alias, m.datatype, m.timestamp),
            (Some("pump.temp"), Some(3), Some(10), Some(900))
        );
        assert_eq!(m.value, Some(Value::Double(21.5)));
        assert_eq!(p.metrics[1].is_null, Some(true));
        let d = Payload::decode(&ndeath(1_000, 7)[..]).unwrap();
        assert_eq!((d.seq, d.metrics[0].value.clone()), (None, Some(Value::Long(7))));
    }

    #[test]
    fn data_goes_by_alias_with_historical_and_bad_quality_marked() {
        let items = [
            Item::Raw(Sample::good(3, 500, 1.25)),
            Item::Raw(Sample::good(3, 2_000, 2.5)),
            Item::Raw(Sample::bad(4, 2_000, Quality::Timeout)),
        ];
        let p = Payload::decode(&ddata(3_000, 255, items.iter(), 1_000)[..]).unwrap();
        assert_eq!(p.seq, Some(255));
        let m = &p.metrics;
        assert_eq!((m[0].name.as_ref(), m[0].alias, m[0].datatype), (None, Some(3), None));
        assert_eq!((m[0].is_historical, m[1].is_historical), (Some(true), None));
        assert_eq!(m[1].value, Some(Value::Double(2.5)));
        assert_eq!((m[2].is_null, m[2].value.clone()), (Some(true), None));
        let q = m[2].properties.as_ref().unwrap();
        assert_eq!((q.keys[0].as_str(), q.values[0].int_value), ("Quality", Some(0)));
    }

    #[test]
    fn commands_and_host_states_are_read_without_trusting_them() {
        let ask = |v| {
            Payload {
                metrics: vec![Metric {
                    name: Some(REBIRTH_METRIC.into()),
                    value: Some(Value::Boolean(v)),
                    ..Metric::default()
                }],
                ..Payload::default()
            }
            .encode_to_vec()
        };
        assert!(asks_rebirth(&ask(true)));
        assert!(!asks_rebirth(&ask(false)));
        assert!(!asks_rebirth(b"\xff\xff\xff"));
        assert_eq!(host_state(br#"{"online":true,"timestamp":5}"#), Some((true, Some(5))));
        assert_eq!(host_state(b"OFFLINE"), Some((false, None)));
        assert_eq!(host_state(b"{\"online\":1}"), None);
        assert_eq!(host_state(b"\xff"), None);
        assert_eq!(device_id("line1/pump#2"), "line1:pump:2");
        assert_eq!(topic("g", "DDATA", "n", Some("d")), "spBv1.0/g/DDATA/n/d");
    }
}
