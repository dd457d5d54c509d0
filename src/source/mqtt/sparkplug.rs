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
//! become a value is reported by what it is (an unknown alias, a non-numeric
//! type with its name, a non-finite value, no usable name or value) and skipped
//! without costing the others; a null (`is_null`) is the node saying it has no
//! value, and is skipped uncounted. A jump in `seq` is reported alongside the
//! readings rather than dropping them. NDEATH, DDEATH, NCMD, DCMD and STATE give
//! no readings; their kind is returned so the caller can log them.
//!
//! Values: integers with their birth's signedness, `Float` widened through its
//! shortest decimal (as the Modbus path does: `123.456` stays 123.456),
//! Boolean as 1 or 0, and DateTime as its epoch milliseconds (exact: below
//! 2^53). What the births bound is kept across restarts ([`births`]); data with
//! an alias no birth explains, or from a node or device never born, names the
//! NCMD topic on which to ask the node for a rebirth ([`rebirth_request`]).
//! The message structs are written by hand from Tahu's `sparkplug_b.proto`, so
//! no protoc is needed.

pub(crate) mod births;

use std::collections::HashMap;

use prost::Message;

use super::{DecodeError, Reading};
use crate::base::float::widen_f32;
use births::{BirthChange, Names, Place, Restored};

/// The topic namespace of Sparkplug B.
pub const NAMESPACE: &str = "spBv1.0";

/// The metric that asks an edge node to publish its births again.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// Sparkplug B datatype codes this decoder interprets.
mod datatype {
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const BOOLEAN: u32 = 11;

    /// The name of a datatype that carries no number, `None` for numeric ones (and
    /// unknown codes, which the value's own kind then decides).
    pub fn non_numeric(code: u32) -> Option<&'static str> {
        Some(match code {
            12 => "String",
            14 => "Text",
            15 => "UUID",
            16 => "DataSet",
            17 => "Bytes",
            18 => "File",
            19 => "Template",
            20 | 21 => "PropertySet",
            22..=34 => "array",
            _ => return None,
        })
    }
}

// Fields we never read are left out: prost checks their wire format and skips
// them. The value kinds bytes_value (16), dataset_value (17), template_value
// (18) and extension_value (19) are read as plain bytes, never parsed: such a
// metric is reported as non-numeric, and a quirky nested message cannot reject
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
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19")]
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
    #[prost(bytes = "vec", tag = "16")]
    Bytes(Vec<u8>),
    /// A DataSet message, not parsed.
    #[prost(bytes = "vec", tag = "17")]
    DataSet(Vec<u8>),
    /// A Template message, not parsed.
    #[prost(bytes = "vec", tag = "18")]
    Template(Vec<u8>),
    /// An extension message, not parsed.
    #[prost(bytes = "vec", tag = "19")]
    Extension(Vec<u8>),
}

impl Value {
    /// What a value that is no number is, `None` for numbers and booleans.
    fn non_numeric(&self) -> Option<&'static str> {
        match self {
            Value::String(_) => Some("String"),
            Value::Bytes(_) => Some("Bytes"),
            Value::DataSet(_) => Some("DataSet"),
            Value::Template(_) => Some("Template"),
            Value::Extension(_) => Some("extension"),
            _ => None,
        }
    }
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
    /// Metrics of a type that carries no number, by name, with the type: String,
    /// Text, UUID, Bytes, File, DataSet, Template, property sets, arrays.
    pub non_numeric: Vec<(String, &'static str)>,
    /// Metrics whose number is NaN or infinite, by name.
    pub non_finite: Vec<String>,
    /// Metrics with no usable name (neither name nor alias, or a name that is not
    /// UTF-8) or with no value and no null flag.
    pub unusable: usize,
    /// Metrics flagged `is_null`: the node has no value to give.
    pub nulls: usize,
    /// The NCMD topic of the node to ask for a rebirth: some alias was unknown, or
    /// the data came from a node or device no birth announced.
    pub rebirth: Option<String>,
    /// What the message changed about the births, for [`births::BirthLog`].
    pub change: Option<BirthChange>,
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
    /// Takes back births kept from an earlier run (see [`births`]).
    pub fn restore(&mut self, births: Vec<Restored>) {
        for b in births {
            let node = self.nodes.entry((b.at.group, b.at.node)).or_default();
            if b.at.device.is_empty() {
                node.bd_seq = b.bd_seq;
            }
            node.devices.insert(b.at.device, b.names);
        }
    }

    /// Decodes one message. State is only changed by messages that decode.
    pub fn decode(&mut self, topic: &str, payload: &[u8]) -> Result<Decoded, DecodeError> {
        let (kind, ids) = parse_topic(topic)?;
        let mut out = Decoded {
            kind,
            readings: Vec::new(),
            seq_gap: None,
            unknown_aliases: 0,
            non_numeric: Vec::new(),
            non_finite: Vec::new(),
            unusable: 0,
            nulls: 0,
            rebirth: None,
            change: None,
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
        names.born |= birth;
        let unborn = !names.born;
        let msg_ts = msg.timestamp;
        let born_bd_seq = bd_seq(&msg);
        for metric in msg.metrics {
            let name = match name_of(names, &metric, birth) {
                Named::Name(name) => name,
                Named::UnknownAlias => {
                    out.unknown_aliases += 1;
                    continue;
                }
                Named::Unusable => {
                    out.unusable += 1;
                    continue;
                }
            };
            let datatype = metric.datatype.or_else(|| names.datatypes.get(&name).copied());
            match reading(ids, name, datatype, &metric, msg_ts) {
                Outcome::Reading(r) => out.readings.push(r),
                Outcome::NonNumeric(name, what) => out.non_numeric.push((name, what)),
                Outcome::NonFinite(name) => out.non_finite.push(name),
                Outcome::Null => out.nulls += 1,
                Outcome::NoValue => out.unusable += 1,
            }
        }
        if birth {
            let at = place(ids);
            out.change = Some(match kind {
                MessageKind::NBirth => BirthChange::Node {
                    at,
                    bd_seq: born_bd_seq,
                    names: names.clone(),
                },
                _ => BirthChange::Device {
                    at,
                    names: names.clone(),
                },
            });
        }
        if unborn || out.unknown_aliases > 0 {
            out.rebirth = Some(format!("{NAMESPACE}/{}/NCMD/{}", ids[0], ids[1]));
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
                if !stale && self.nodes.remove(&key).is_some() {
                    out.change = Some(BirthChange::NodeGone {
                        at: place([group, node, device]),
                    });
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
                if state.devices.remove(device).is_some() {
                    out.change = Some(BirthChange::DeviceGone {
                        at: place([group, node, device]),
                    });
                }
                return None;
            }
            _ => {}
        }
        Some(state.devices.entry(device.to_owned()).or_default())
    }
}

fn place([group, node, device]: [&str; 3]) -> Place {
    Place {
        group: group.to_owned(),
        node: node.to_owned(),
        device: device.to_owned(),
    }
}

/// The payload of an NCMD that asks an edge node to publish its NBIRTH and DBIRTHs again
/// (`Node Control/Rebirth` = true, as Sparkplug host applications send it).
pub fn rebirth_request(now_ms: u64) -> Vec<u8> {
    let metric = Metric {
        name: Some(REBIRTH_METRIC.as_bytes().to_vec()),
        timestamp: Some(now_ms),
        datatype: Some(datatype::BOOLEAN),
        value: Some(Value::Boolean(true)),
        ..Metric::default()
    };
    Payload {
        timestamp: Some(now_ms),
        metrics: vec![metric],
        seq: None,
    }
    .encode_to_vec()
}

/// What a metric is called.
enum Named {
    Name(String),
    /// An alias no birth has bound.
    UnknownAlias,
    /// Neither name nor alias, or a name that is not UTF-8.
    Unusable,
}

/// The metric's name; a birth also binds its alias and datatype to it.
fn name_of(names: &mut Names, metric: &Metric, birth: bool) -> Named {
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
                    names.by_alias.insert(alias, name.clone());
                }
                if let Some(dt) = metric.datatype {
                    names.datatypes.insert(name.clone(), dt);
                }
            }
            Named::Name(name)
        }
        None => match metric.alias.map(|a| names.by_alias.get(&a)) {
            Some(Some(name)) => Named::Name(name.clone()),
            Some(None) => Named::UnknownAlias,
            None => Named::Unusable,
        },
    }
}

/// What became of one named metric.
enum Outcome {
    Reading(Reading),
    /// Its type carries no number: the name and the type.
    NonNumeric(String, &'static str),
    NonFinite(String),
    Null,
    NoValue,
}

/// The reading of a named metric: a finite number, stamped with the metric's time or the
/// message's; otherwise why not.
fn reading(ids: [&str; 3], name: String, datatype: Option<u32>, metric: &Metric, msg_ts: Option<u64>) -> Outcome {
    if metric.is_null == Some(true) {
        return Outcome::Null;
    }
    let Some(value) = metric.value.as_ref() else {
        return Outcome::NoValue;
    };
    // The datatype decides first: a String metric whose value came as a number is
    // still no measurement.
    if let Some(what) = datatype.and_then(datatype::non_numeric).or_else(|| value.non_numeric()) {
        return Outcome::NonNumeric(name, what);
    }
    let value = match number(datatype, value) {
        Some(v) if v.is_finite() => v,
        _ => return Outcome::NonFinite(name),
    };
    let ts_ms = metric.timestamp.or(msg_ts).and_then(|t| i64::try_from(t).ok());
    let vars = ["group", "node", "device"].iter().zip(ids);
    let vars = vars.map(|(k, v)| ((*k).to_owned(), v.to_owned()));
    let vars = vars.chain([("metric".to_owned(), name)]).collect();
    Outcome::Reading(Reading { vars, ts_ms, value })
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
        Value::Float(v) => return Some(widen_f32(v)),
        Value::Double(v) => return Some(v),
        Value::Boolean(b) => return Some(if b { 1.0 } else { 0.0 }),
        _ => return None,
    };
    let signed_bits = match datatype {
        Some(datatype::INT8) => 8,
        Some(datatype::INT16) => 16,
        Some(datatype::INT32) => 32,
        Some(datatype::INT64) => 64,
        // Unsigned types, and DateTime: unsigned epoch milliseconds, stored as the
        // number they are (exact below 2^53).
        _ => return Some(raw as f64),
    };
    let shift = 64 - signed_bits.min(carrier_bits);
    Some((((raw << shift) as i64) >> shift) as f64)
}

#[cfg(test)]
mod tests;
