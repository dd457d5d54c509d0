//! The `[[mqtt]]` and `[[mqtt.subscribe]]` sections as typed structs: a broker with its
//! session, TLS and credentials, and subscriptions with their payload format and the
//! template that names their sensors. Cross-checks live in `mqtt_checks.rs`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::broker::ConnectionFields;
use super::{defaults, ByteSize, Dur};
use crate::base::secret::Secret;

/// `[[mqtt]]`: an MQTT broker whose topics carry sensor values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttInput {
    /// Broker URL, `mqtt://host[:port]` (1883 by default) or `mqtts://host[:port]` (TLS,
    /// 8883 by default).
    pub broker: String,
    /// With `mqtts://`: PEM file of the CA that signed the broker's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// With `mqtts://`: PEM certificate that proves this gateway (mutual TLS).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// With `mqtts://`: PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Client id; with `clean_session = false` it names the session the broker keeps, so
    /// it must be stable and unique per gateway. Default `forewarn-{agent}-in{N}`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Username for the broker.
    #[serde(default)]
    pub username: Option<String>,
    /// Password; prefer `password_file` or `password_env` (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// File whose content (without a trailing newline) is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// MQTT keep-alive.
    #[serde(default = "defaults::keep_alive")]
    pub keep_alive: Dur,
    /// 0 (at most once) or 1 (at least once: acknowledged only once stored durably).
    #[serde(default = "defaults::qos")]
    pub qos: u8,
    /// `false` keeps the session (subscriptions, queued QoS 1 messages) at the broker while
    /// the agent is away: nothing published meanwhile is lost.
    #[serde(default)]
    pub clean_session: bool,
    /// Messages from the future by more than this are refused (a clock gone wrong).
    #[serde(default = "defaults::max_future")]
    pub max_future: Dur,
    /// Distinct sensors this input may create while it runs; readings of further new
    /// names are refused and counted (`sensor_limit`), readings of known ones still
    /// arrive. Bounds what a topic stream with ever-new names can do to the store.
    #[serde(default = "defaults::max_sensors")]
    pub max_sensors: usize,
    /// The largest payload decoded; a larger message is acknowledged, counted as
    /// `oversized` and skipped, so one message cannot stall the input. It is received
    /// whole first (MQTT 3.1.1 lets a client announce no limit), so it is also a bound on
    /// what a payload may cost in decoding, not on the bytes read from the socket.
    #[serde(default = "defaults::max_payload")]
    pub max_payload: ByteSize,
    /// Subscriptions, each with its decoder.
    #[serde(default)]
    pub subscribe: Vec<Subscription>,
}

impl MqttInput {
    /// The connection options, for the checks and the resolved endpoint.
    pub fn connection(&self) -> ConnectionFields<'_> {
        connection_fields!(self)
    }
}

/// `[[mqtt.subscribe]]`: a topic (or topic template) and how its payloads become samples.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// A topic filter (`+`, `#` wildcards) or template whose `{name}` levels capture
    /// names: `plant/{line}/{machine}/telemetry` subscribes to `plant/+/+/telemetry`.
    pub topic: String,
    /// Payload format: `number`, `json`, `sparkplug` or `influx`.
    #[serde(default)]
    pub format: PayloadFormat,
    /// Sensor-name template: the topic's `{names}`, and per format `{field}` (json: each
    /// numeric field; influx: each field), `{measurement}` and tags (influx), `{group}`,
    /// `{node}`, `{device}`, `{metric}` (sparkplug). Default per format: number: the topic
    /// with `/` as `.`; json: `{field}`; influx: `{measurement}.{field}`; sparkplug:
    /// `{node}.{device}.{metric}`.
    #[serde(default)]
    pub sensor: Option<String>,
    /// json: the field holding the time (epoch seconds or milliseconds, or RFC 3339);
    /// arrival time when absent.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// json: a dotted path to the one value to read (e.g. `data.value`), instead of every
    /// numeric field. With an array payload of objects, the path inside each element.
    #[serde(default)]
    pub value: Option<String>,
    /// influx: the unit of the line timestamps, `ns` (the protocol's default), `us`, `ms`
    /// or `s`. InfluxDB's HTTP API takes it as a `precision` parameter; MQTT has none, so a
    /// publisher that writes another precision is named here. Default `ns`.
    #[serde(default)]
    pub precision: Option<Precision>,
}

/// The unit of line-protocol timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    /// A timestamp of this unit in milliseconds, floored (so times before the epoch
    /// round towards the past); `None` when it does not fit.
    pub fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Precision::Ns => Some(t.div_euclid(1_000_000)),
            Precision::Us => Some(t.div_euclid(1_000)),
            Precision::Ms => Some(t),
            Precision::S => t.checked_mul(1_000),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Ns => "nanoseconds",
            Precision::Us => "microseconds",
            Precision::Ms => "milliseconds",
            Precision::S => "seconds",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    #[default]
    Number,
    Json,
    Sparkplug,
    Influx,
}

/// The sensor-name template of a subscription, its default filled in.
pub fn sensor_template(sub: &Subscription) -> String {
    if let Some(t) = &sub.sensor {
        return t.clone();
    }
    match sub.format {
        PayloadFormat::Number => "{topic}".into(),
        PayloadFormat::Json => "{field}".into(),
        PayloadFormat::Influx => "{measurement}.{field}".into(),
        PayloadFormat::Sparkplug => "{node}.{device}.{metric}".into(),
    }
}

/// A glob of every name a subscription's sensor template can produce (placeholders
/// become `*`; `{topic}` becomes the topic filter with `/` as `.`).
pub fn sensor_glob(template: &str, topic: &str) -> String {
    let topic_glob: String = topic
        .split('/')
        .map(|level| {
            if level.starts_with('{') || level == "+" || level == "#" {
                "*"
            } else {
                level
            }
        })
        .collect::<Vec<_>>()
        .join(".");
    let template = template.replace("{topic}", &topic_glob);
    let mut out = String::new();
    let mut in_var = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_var = true;
                out.push('*');
            }
            '}' => in_var = false,
            c if !in_var => out.push(c),
            _ => {}
        }
    }
    out
}
