//! Decoder for Sparkplug B messages (`spBv1.0/{group}/{type}/{node}[/{device}]`,
//! protobuf `org.eclipse.tahu.protobuf.Payload`).
//!
//! Sparkplug is stateful: DATA messages usually name their metrics by a numeric
//! alias that only the preceding NBIRTH/DBIRTH binds to a name and datatype, and
//! every edge node numbers its messages with a wrapping 8-bit `seq`. [`Sparkplug`]
//! keeps that state per (group, edge node, device) and turns each numeric or
//! boolean metric into a [`Reading`] with vars `group`, `node`, `device` (empty
//! for node metrics) and `metric`. Guarantees: no input panics; a broken topic
//! or protobuf is a [`DecodeError`]; within a good payload, a metric that cannot
//! become a value (unknown alias, string, bytes, dataset, template, DateTime,
//! null, non-finite) is counted and skipped without costing the others; a jump
//! in `seq` is reported alongside the readings rather than dropping them.
//! NDEATH, DDEATH, NCMD, DCMD and STATE give no readings; their kind is
//! returned so the caller can log them.
//! The message structs are written by hand from Tahu's `sparkplug_b.proto`, so
//! no protoc is needed.

use std::collections::HashMap;

use prost::Message;

use super::{DecodeError, Reading};

const NAMESPACE: &str = "spBv1.0";

/// Sparkplug B datatype codes this decoder interprets.
mod datatype {
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const DATETIME: u32 = 13;
}

// Fields we never read are left out: prost checks their wire format and skips
// them. So are the value kinds bytes_value (16), dataset_value (17),
// template_value (18) and extension_value (19): such a metric arrives without a
// value and is counted as skipped, and a quirky nested message cannot reject
// the numeric metrics next to it.
#[derive(Clone, PartialEq, Message)]
struct Payload {
    #[prost(uint64, optional, tag = "1")]
    timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    metrics: Vec<Metric>,
    #[prost(uint64, optional, tag = "3")]
    seq: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct Metric {
    /// `string` on the wire; bytes so invalid UTF-8 only loses this metric.
    #[prost(bytes = "vec", optional, tag = "1")]
    name: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "2")]
    alias: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "4")]
    datatype: Option<u32>,
    #[prost(bool, optional, tag = "7")]
    is_null: Option<bool>,
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15")]
    value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Value {
    #[prost(uint32, tag = "10")]
    Int(u32),
    #[prost(uint64, tag = "11")]
    Long(u64),
    #[prost(float, tag = "12")]
    Float(f32),
    #[prost(double, tag = "13")]
    Double(f64),
    #[prost(bool, tag = "14")]
    Boolean(bool),
    /// `string` on the wire; bytes so invalid UTF-8 only loses this metric.
    #[prost(bytes = "vec", tag = "15")]
    String(Vec<u8>),
}

/// The message type named by the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
    State,
}

impl MessageKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NBIRTH" => Self::NBirth,
            "NDEATH" => Self::NDeath,
            "DBIRTH" => Self::DBirth,
            "DDEATH" => Self::DDeath,
            "NDATA" => Self::NData,
            "DDATA" => Self::DData,
            "NCMD" => Self::NCmd,
            "DCMD" => Self::DCmd,
            "STATE" => Self::State,
            _ => return None,
        })
    }

    fn is_device(self) -> bool {
        matches!(self, Self::DBirth | Self::DDeath | Self::DData | Self::DCmd)
    }
}

/// What one message yielded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub kind: MessageKind,
    pub readings: Vec<Reading>,
    /// `(expected, got)` when the edge node's `seq` did not follow on.
    pub seq_gap: Option<(u8, u8)>,
    /// Metrics whose alias no birth has bound to a name.
    pub unknown_aliases: usize,
    /// Metrics that carry no usable number: strings, bytes, datasets,
    /// templates, DateTime, nulls, non-finite values, no value, or no usable
    /// name (neither name nor alias, or a name that is not UTF-8).
    pub skipped: usize,
}

/// Per-edge-node decoding state; feed it every message of the subscription in
/// arrival order.
#[derive(Debug, Default)]
pub struct Sparkplug {
    nodes: HashMap<(String, String), NodeState>,
}

#[derive(Debug, Default)]
struct NodeState {
    last_seq: Option<u8>,
    /// From the NBIRTH, so a late NDEATH of an older session can be ignored.
    bd_seq: Option<u64>,
    /// Keyed by device id; "" holds the node's own metrics.
    devices: HashMap<String, Names>,
}

#[derive(Debug, Default)]
struct Names {
    by_alias: HashMap<u64, String>,
    /// DATA metrics may omit the datatype; signed ints need the birth's.
    datatypes: HashMap<String, u32>,
}

/// The message kind and the topic's `[group, node, device]` ids; empty ids for
/// STATE, and an empty device for node messages.
fn parse_topic(topic: &str) -> Result<(MessageKind, [&str; 3]), DecodeError> {
    let fail = |reason: &str| DecodeError::Topic {
        topic: topic.to_owned(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = topic.split('/').collect();
    // Host STATE topics: `spBv1.0/STATE/{host}` (3.0) and `STATE/{host}` (2.x).
    if matches!(parts.as_slice(), [NAMESPACE, "STATE", _] | ["STATE", _]) {
        return Ok((MessageKind::State, ["", "", ""]));
    }
    let (group, kind, node, device) = match parts.as_slice() {
        [NAMESPACE, g, k, n] => (*g, *k, *n, ""),
        [NAMESPACE, g, k, n, d] => (*g, *k, *n, *d),
        [NAMESPACE, ..] => return Err(fail("expected 4 or 5 levels")),
        _ => return Err(fail("namespace is not spBv1.0")),
    };
    let kind = MessageKind::parse(kind).ok_or_else(|| fail("unknown message type"))?;
    if kind == MessageKind::State {
        return Err(fail("STATE belongs directly under spBv1.0"));
    }
    if kind.is_device() == device.is_empty() {
        return Err(fail("device messages need a device id and node messages none"));
    }
    if group.is_empty() || node.is_empty() || (parts.len() == 5 && device.is_empty()) {
        return Err(fail("empty topic level"));
    }
    Ok((kind, [group, node, device]))
}

impl Sparkplug {
    /// Decodes one message. State is only changed by messages that decode.
    pub fn decode(&mut self, topic: &str, payload: &[u8]) -> Result<Decoded, DecodeError> {
        let (kind, ids) = parse_topic(topic)?;
        let mut out = Decoded {
            kind,
            readings: Vec::new(),
            seq_gap: None,
            unknown_aliases: 0,
            skipped: 0,
        };
        // Sparkplug 3.0 STATE payloads are JSON from host applications, not
        // protobuf, and say nothing about metrics.
        if kind == MessageKind::State {
            return Ok(out);
        }
        let msg = Payload::decode(payload).map_err(|e| DecodeError::Payload {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })?;
        let Some(names) = self.track(kind, ids, &msg, &mut out) else {
            return Ok(out);
        };
        let birth = matches!(kind, MessageKind::NBirth | MessageKind::DBirth);
        let msg_ts = msg.timestamp;
        for metric in msg.metrics {
            let name = match names.name_of(&metric, birth) {
                Named::Name(name) => name,
                Named::UnknownAlias => {
                    out.unknown_aliases += 1;
                    continue;
                }
                Named::Unusable => {
                    out.skipped += 1;
                    continue;
                }
            };
            let datatype = metric.datatype.or_else(|| names.datatypes.get(&name).copied());
            match reading(ids, name, datatype, &metric, msg_ts) {
                Some(r) => out.readings.push(r),
                None => out.skipped += 1,
            }
        }
        Ok(out)
    }

    /// The node's and device's lifecycle: births reset what is known, deaths forget it
    /// (a stale NDEATH, whose bdSeq is not the live birth's, does not), and `seq` is
    /// checked. Returns the names of the device the metrics belong to, or `None` when the
    /// message carries no readings (commands, deaths).
    fn track(
        &mut self,
        kind: MessageKind,
        [group, node, device]: [&str; 3],
        msg: &Payload,
        out: &mut Decoded,
    ) -> Option<&mut Names> {
        let key = (group.to_owned(), node.to_owned());
        match kind {
            // Commands travel towards the node and carry no seq.
            MessageKind::NCmd | MessageKind::DCmd => return None,
            MessageKind::NDeath => {
                let stale = match (self.nodes.get(&key).and_then(|n| n.bd_seq), bd_seq(msg)) {
                    (Some(born), Some(died)) => born != died,
                    _ => false,
                };
                if !stale {
                    self.nodes.remove(&key);
                }
                return None;
            }
            MessageKind::NBirth => {
                let fresh = NodeState {
                    bd_seq: bd_seq(msg),
                    ..NodeState::default()
                };
                self.nodes.insert(key.clone(), fresh);
            }
            _ => {}
        }
        let state = self.nodes.entry(key).or_default();
        out.seq_gap = state.track_seq(kind == MessageKind::NBirth, msg.seq);
        match kind {
            MessageKind::DBirth => {
                state.devices.insert(device.to_owned(), Names::default());
            }
            MessageKind::DDeath => {
                state.devices.remove(device);
                return None;
            }
            _ => {}
        }
        Some(state.devices.entry(device.to_owned()).or_default())
    }
}

/// What a metric is called.
enum Named {
    Name(String),
    /// An alias no birth has bound.
    UnknownAlias,
    /// Neither name nor alias, or a name that is not UTF-8.
    Unusable,
}

impl Names {
    /// The metric's name; a birth also binds its alias and datatype to it.
    fn name_of(&mut self, metric: &Metric, birth: bool) -> Named {
        match metric
            .name
            .as_ref()
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8(n.to_vec()))
        {
            Some(Err(_)) => Named::Unusable,
            Some(Ok(name)) => {
                if birth {
                    if let Some(alias) = metric.alias {
                        self.by_alias.insert(alias, name.clone());
                    }
                    if let Some(dt) = metric.datatype {
                        self.datatypes.insert(name.clone(), dt);
                    }
                }
                Named::Name(name)
            }
            None => match metric.alias.map(|a| self.by_alias.get(&a)) {
                Some(Some(name)) => Named::Name(name.clone()),
                Some(None) => Named::UnknownAlias,
                None => Named::Unusable,
            },
        }
    }
}

/// The reading of a named metric: a finite number, stamped with the metric's time or the
/// message's; `None` for anything else (strings, nulls, datasets, non-finite values).
fn reading(
    ids: [&str; 3],
    name: String,
    datatype: Option<u32>,
    metric: &Metric,
    msg_ts: Option<u64>,
) -> Option<Reading> {
    let value = match metric.value.as_ref() {
        _ if metric.is_null == Some(true) => None,
        Some(value) => number(datatype, value).filter(|v| v.is_finite()),
        None => None,
    }?;
    let ts_ms = metric.timestamp.or(msg_ts).and_then(|t| i64::try_from(t).ok());
    let vars = ["group", "node", "device"].iter().zip(ids);
    let vars = vars.map(|(k, v)| ((*k).to_owned(), v.to_owned()));
    let vars = vars.chain([("metric".to_owned(), name)]).collect();
    Some(Reading { vars, ts_ms, value })
}

impl NodeState {
    /// Records `seq` and returns `(expected, got)` if it skipped; an NBIRTH
    /// starts a new sequence. A missing or out-of-range seq cannot be checked
    /// and forgets the previous one, so the next message is not misjudged.
    fn track_seq(&mut self, birth: bool, seq: Option<u64>) -> Option<(u8, u8)> {
        let seq = seq.and_then(|s| u8::try_from(s).ok());
        let gap = match (self.last_seq, seq) {
            (Some(last), Some(got)) if !birth && last.wrapping_add(1) != got => Some((last.wrapping_add(1), got)),
            _ => None,
        };
        self.last_seq = seq;
        gap
    }
}

fn bd_seq(msg: &Payload) -> Option<u64> {
    let metric = msg.metrics.iter().find(|m| m.name.as_deref() == Some(b"bdSeq"))?;
    match metric.value {
        Some(Value::Long(v)) => Some(v),
        Some(Value::Int(v)) => Some(u64::from(v)),
        _ => None,
    }
}

/// The value of a numeric or boolean metric. Signed types travel as the two's
/// complement in an unsigned field, and encoders disagree on whether Int8/16
/// are sign-extended to 32 bits first, so only the type's low bits are used.
fn number(datatype: Option<u32>, value: &Value) -> Option<f64> {
    let (raw, carrier_bits) = match *value {
        Value::Int(v) => (u64::from(v), 32),
        Value::Long(v) => (v, 64),
        Value::Float(v) => return Some(f64::from(v)),
        Value::Double(v) => return Some(v),
        Value::Boolean(b) => return Some(if b { 1.0 } else { 0.0 }),
        _ => return None,
    };
    let signed_bits = match datatype {
        Some(datatype::INT8) => 8,
        Some(datatype::INT16) => 16,
        Some(datatype::INT32) => 32,
        Some(datatype::INT64) => 64,
        // Epoch milliseconds: a time, not a measurement.
        Some(datatype::DATETIME) => return None,
        _ => return Some(raw as f64),
    };
    let shift = 64 - signed_bits.min(carrier_bits);
    Some((((raw << shift) as i64) >> shift) as f64)
}

#[cfg(test)]
mod tests;
