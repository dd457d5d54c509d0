//! `[[forward]]`: telemetry destinations fed from the local history. Each names a durable
//! cursor, so its name must be unique and stable; the destination URL decides the kind
//! (`mqtt://`/`mqtts://` a broker, `http://` an InfluxDB) and `format` must fit it. The
//! checks here run at `forewarn check`; [`Config::forward_settings`] resolves a valid
//! section into what the forwarder works with, and the connection fields of a broker
//! destination go through the same rules as `[upstream]`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::broker::{BrokerEndpoint, ConnectionFields};
use super::keys::{at, check_topic_template, is_plain_name, k, readable, KeyPath, Seg};
use super::{defaults, Config, Dur};
use crate::base::secret::Secret;

/// `[[forward]]`: one upstream destination of telemetry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSection {
    /// Unique name: it names the durable cursor (rename it and the destination starts
    /// over from the oldest stored sample), the metrics label and log lines.
    pub name: String,
    /// `mqtt://host[:port]`, `mqtts://host[:port]` (a broker) or `http://host:port` (an
    /// InfluxDB 1.x or 2.x).
    pub to: String,
    /// `json` or `sparkplug` to a broker, `influx` to an InfluxDB.
    pub format: ForwardFormat,
    /// json: the topic of each asset's batches; `{agent}`, `{site}` and `{asset}` are
    /// filled (`_unassigned` for sensors outside every asset).
    #[serde(default = "defaults::forward_topic")]
    pub topic: String,
    /// Sensor-name globs to forward (`*`, `?`); default: every sensor.
    #[serde(default = "defaults::all_sensors")]
    pub sensors: Vec<String>,
    /// Send rollups of this interval (min, max, mean, count per sensor) instead of raw
    /// samples. A bucket is sent once it is over.
    #[serde(default)]
    pub every: Option<Dur>,
    /// Send a raw sample only when its value moved more than this since the last one
    /// sent, when its quality changed, or when `max_silence` passed since.
    #[serde(default)]
    pub deadband: Option<f64>,
    /// With `deadband`: the longest time between two samples sent of a sensor.
    #[serde(default = "defaults::max_silence")]
    pub max_silence: Dur,
    /// Samples per message (MQTT) or request (InfluxDB), at most.
    #[serde(default = "defaults::forward_batch")]
    pub batch: usize,
    /// Samples per second sent of the backlog (data older than `live_window`) while live
    /// data goes on beside it.
    #[serde(default = "defaults::backfill_rate")]
    pub backfill_rate: u32,
    /// Which end of a backlog goes first: `oldest` or `newest`.
    #[serde(default)]
    pub backfill_order: BackfillOrder,
    /// Samples younger than this are live: sent at once, ahead of any backlog.
    #[serde(default = "defaults::live_window")]
    pub live_window: Dur,
    /// How often the store is read for new samples.
    #[serde(default = "defaults::forward_interval")]
    pub interval: Dur,
    /// MQTT: messages sent but not yet acknowledged, at most.
    #[serde(default = "defaults::inflight")]
    pub max_inflight: u16,
    /// MQTT: client id (default `forewarn-{agent}-fwd-{name}`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// MQTT, with `mqtts://`: PEM file of the CA that signed the broker's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// MQTT, with `mqtts://`: this gateway's PEM certificate (mutual TLS).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// MQTT, with `mqtts://`: the PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// MQTT: user name; InfluxDB 1.x: user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (MQTT or InfluxDB 1.x); prefer `password_file` or `password_env`.
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
    /// InfluxDB 1.x: the database (`/write?db=`).
    #[serde(default)]
    pub database: Option<String>,
    /// InfluxDB 1.x: the retention policy (`rp=`); the database's default when unset.
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// InfluxDB 2.x: the organisation (`/api/v2/write?org=`).
    #[serde(default)]
    pub org: Option<String>,
    /// InfluxDB 2.x: the bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// InfluxDB 2.x: file holding the API token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// InfluxDB: how long one write may take before it counts as failed.
    #[serde(default = "defaults::forward_timeout")]
    pub timeout: Dur,
    /// sparkplug: the group id of the edge node (default `forewarn`).
    #[serde(default)]
    pub group: Option<String>,
    /// sparkplug: the edge node id; `{agent}` is filled (default `{agent}`).
    #[serde(default)]
    pub node: Option<String>,
    /// sparkplug: the host application id whose `STATE` decides when data may go;
    /// unset, data goes whenever the broker is reachable.
    #[serde(default)]
    pub primary_host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardFormat {
    Json,
    Sparkplug,
    Influx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillOrder {
    #[default]
    Oldest,
    Newest,
}

impl ForwardSection {
    fn connection(&self) -> ConnectionFields<'_> {
        ConnectionFields {
            broker: &self.to,
            ca_file: self.ca_file.as_deref(),
            client_cert: self.client_cert.as_deref(),
            client_key: self.client_key.as_deref(),
            username: self.username.as_deref(),
            password: self.password.as_ref(),
            password_file: self.password_file.as_deref(),
            password_env: self.password_env.as_deref(),
            keep_alive: self.keep_alive,
        }
    }

    fn is_http(&self) -> bool {
        self.to.starts_with("http://")
    }
}

/// Where a destination's data goes, resolved.
#[derive(Debug, Clone)]
pub enum Destination {
    Mqtt {
        endpoint: BrokerEndpoint,
        /// The topic template, `{agent}` and `{site}` filled; `{asset}` per batch.
        topic: String,
        max_inflight: u16,
        /// With `format = "sparkplug"`: the edge node's identity.
        sparkplug: Option<SparkplugNode>,
    },
    Influx(InfluxTarget),
}

/// A Sparkplug B edge node's identity, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkplugNode {
    pub group: String,
    pub node: String,
    pub primary_host: Option<String>,
}

/// The default Sparkplug group id.
pub const SPARKPLUG_GROUP: &str = "forewarn";

/// A Sparkplug id (group, edge node, device, host) may not hold these: they are MQTT
/// topic separators and wildcards.
pub fn is_sparkplug_id(id: &str) -> bool {
    !id.is_empty() && !id.contains(['/', '+', '#'])
}

/// An InfluxDB `/write` (1.x) or `/api/v2/write` (2.x) endpoint.
#[derive(Debug, Clone)]
pub struct InfluxTarget {
    pub host: String,
    pub port: u16,
    /// Path and query of the write request, e.g. `/write?db=plant&precision=ms`.
    pub path: String,
    pub auth: InfluxAuth,
    pub timeout: Duration,
}

/// How an InfluxDB write proves who sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxAuth {
    None,
    /// 1.x: HTTP Basic with a user and a password from its source.
    Basic {
        username: String,
        password: super::PasswordSource,
    },
    /// 2.x: `Authorization: Token …`, read from this file at start-up.
    TokenFile(PathBuf),
}

/// What a destination sends of each sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shaping {
    Raw,
    Deadband { delta: f64, max_silence_ms: i64 },
    Rollup { every_ms: i64 },
}

/// One `[[forward]]`, resolved.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub name: String,
    pub format: ForwardFormat,
    pub destination: Destination,
    pub agent: String,
    pub sensors: Vec<String>,
    pub shaping: Shaping,
    pub batch: usize,
    pub backfill_rate: u32,
    pub backfill_order: BackfillOrder,
    pub live_window_ms: i64,
    pub interval: Duration,
}

impl Config {
    /// Every `[[forward]]`, in order.
    pub fn forward_settings(&self) -> Result<Vec<ForwardSettings>, String> {
        self.forward.iter().map(|f| self.resolve_forward(f)).collect()
    }

    fn resolve_forward(&self, f: &ForwardSection) -> Result<ForwardSettings, String> {
        let agent = self.agent.id.clone();
        let destination = if f.is_http() {
            Destination::Influx(influx_target(f)?)
        } else {
            let client_id = f
                .client_id
                .clone()
                .unwrap_or_else(|| format!("forewarn-{agent}-fwd-{}", f.name));
            let site = self.upstream.site.as_deref();
            Destination::Mqtt {
                endpoint: f.connection().resolve(client_id)?,
                topic: f.topic.replace("{site}", site.unwrap_or("")).replace("{agent}", &agent),
                max_inflight: f.max_inflight,
                sparkplug: (f.format == ForwardFormat::Sparkplug).then(|| SparkplugNode {
                    group: f.group.clone().unwrap_or_else(|| SPARKPLUG_GROUP.to_string()),
                    node: f.node.as_deref().unwrap_or("{agent}").replace("{agent}", &agent),
                    primary_host: f.primary_host.clone(),
                }),
            }
        };
        let ms = |d: Dur| i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX);
        let shaping = match (f.every, f.deadband) {
            (Some(every), _) => Shaping::Rollup { every_ms: ms(every) },
            (None, Some(delta)) => Shaping::Deadband {
                delta,
                max_silence_ms: ms(f.max_silence),
            },
            (None, None) => Shaping::Raw,
        };
        Ok(ForwardSettings {
            name: f.name.clone(),
            format: f.format,
            destination,
            agent,
            sensors: f.sensors.clone(),
            shaping,
            batch: f.batch,
            backfill_rate: f.backfill_rate,
            backfill_order: f.backfill_order,
            live_window_ms: ms(f.live_window),
            interval: f.interval.as_duration(),
        })
    }
}

fn influx_target(f: &ForwardSection) -> Result<InfluxTarget, String> {
    let (host, port) = parse_http(&f.to)?;
    let (path, auth) = match (&f.database, &f.bucket) {
        (Some(db), _) => {
            let mut path = format!("/write?db={}&precision=ms", query_escape(db));
            if let Some(rp) = &f.retention_policy {
                path.push_str(&format!("&rp={}", query_escape(rp)));
            }
            let auth = match f.connection().credentials() {
                Some(c) => InfluxAuth::Basic {
                    username: c.username,
                    password: c.password,
                },
                None => InfluxAuth::None,
            };
            (path, auth)
        }
        (None, Some(bucket)) => {
            let org = f.org.as_deref().unwrap_or_default();
            let path = format!(
                "/api/v2/write?org={}&bucket={}&precision=ms",
                query_escape(org),
                query_escape(bucket)
            );
            let auth = f.token_file.clone().map_or(InfluxAuth::None, InfluxAuth::TokenFile);
            (path, auth)
        }
        (None, None) => return Err("an InfluxDB destination needs database (1.x) or bucket (2.x)".into()),
    };
    Ok(InfluxTarget {
        host,
        port,
        path,
        auth,
        timeout: f.timeout.as_duration(),
    })
}

/// `http://host:port[/]` into host and port (8086 by default).
fn parse_http(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} must start with http://"))?
        .trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "{url:?}: give the server only (http://host:port); the write path follows from database or bucket"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: port {p:?} is not a number 1-65535"))?,
        ),
        None => (rest, 8086),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: expected http://host:port"));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

/// Percent-encodes a query value (database and bucket names may hold spaces).
fn query_escape(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a destination is projected to send, for `forewarn check`.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Sensors of Modbus registers it covers (rates known from their poll intervals).
    pub polled_sensors: usize,
    /// Samples (or rollup buckets) per second, at most (a deadband sends fewer).
    pub per_second: f64,
    /// Bytes per second of payload, roughly.
    pub bytes_per_second: f64,
}

impl ForwardSection {
    /// The rate of the polled sensors this destination covers, in its format. MQTT
    /// sensors come on top at whatever rate they arrive.
    pub fn projection(&self, c: &Config, agent: &str) -> Projection {
        let asset_of = |sensor: &str| {
            c.asset
                .iter()
                .find(|a| a.sensors.iter().any(|s| s == sensor))
                .map_or(crate::base::names::UNASSIGNED_ASSET.len(), |a| a.id.len())
        };
        let (mut n, mut rate, mut bytes) = (0usize, 0f64, 0f64);
        for d in &c.modbus {
            let per_s = 1.0 / d.interval.0.as_secs_f64().max(1e-3);
            for r in d
                .register
                .iter()
                .filter(|r| self.sensors.iter().any(|g| crate::base::glob::glob_match(g, &r.sensor)))
            {
                let per_s = match self.every {
                    Some(every) => per_s.min(1.0 / every.0.as_secs_f64().max(1e-3)),
                    None => per_s,
                };
                // One sample as the wire carries it, from its parts' typical lengths.
                let size = match self.format {
                    ForwardFormat::Influx => 62 + agent.len() + asset_of(&r.sensor) + r.sensor.len(),
                    _ => 70 + r.sensor.len(),
                } + if self.every.is_some() { 40 } else { 0 };
                n += 1;
                rate += per_s;
                bytes += per_s * size as f64;
            }
        }
        Projection {
            polled_sensors: n,
            per_second: rate,
            bytes_per_second: bytes,
        }
    }
}

/// Every problem of the `[[forward]]` sections.
pub(super) fn check_forwards(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    let mut names = std::collections::HashSet::new();
    for (i, f) in c.forward.iter().enumerate() {
        let base = vec![k("forward"), Seg::Index(i)];
        let key = |name: &str| at(&base, &[k(name)]);
        if !is_plain_name(&f.name, &[]) {
            out.push((
                key("name"),
                "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
            ));
        } else if !names.insert(f.name.as_str()) {
            out.push((key("name"), format!("{:?} names another destination too", f.name)));
        }
        check_kind(f, &c.agent.id, &base, out);
        check_shaping(f, &base, out);
        if f.batch == 0 || f.batch > 100_000 {
            out.push((key("batch"), "must be 1..=100000".into()));
        }
        if f.backfill_rate == 0 {
            out.push((key("backfill_rate"), "must be at least 1 sample/s".into()));
        }
        if f.interval.0 < Duration::from_millis(100) {
            out.push((key("interval"), "must be at least 100ms".into()));
        }
        if f.sensors.is_empty() {
            out.push((key("sensors"), "lists no sensor; leave it out to forward all".into()));
        }
    }
}

/// The URL, the format and the options that belong to each kind.
fn check_kind(f: &ForwardSection, agent: &str, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let key = |name: &str| at(base, &[k(name)]);
    if f.is_http() {
        if f.format != ForwardFormat::Influx {
            out.push((key("format"), "an http:// destination takes format = \"influx\"".into()));
        }
        if let Err(e) = parse_http(&f.to) {
            out.push((key("to"), e));
        }
        match (&f.database, &f.bucket) {
            (None, None) => out.push((key("database"), "set database (InfluxDB 1.x) or bucket (2.x)".into())),
            (Some(_), Some(_)) => out.push((key("bucket"), "set database (1.x) or bucket (2.x), not both".into())),
            (None, Some(_)) if f.org.is_none() => out.push((key("org"), "an InfluxDB 2.x bucket needs org".into())),
            _ => {}
        }
        if let Some(path) = &f.token_file {
            readable(path, key("token_file"), out);
        }
        if f.bucket.is_some() && (f.username.is_some() || f.password.is_some() || f.password_file.is_some()) {
            out.push((key("username"), "InfluxDB 2.x authenticates with token_file".into()));
        }
        let mut conn = Vec::new();
        f.connection().check_password_only(base, &mut conn);
        out.extend(conn);
        return;
    }
    if f.format == ForwardFormat::Influx {
        out.push((key("format"), "format = \"influx\" needs an http:// destination".into()));
    }
    for (name, set) in [
        ("database", f.database.is_some()),
        ("org", f.org.is_some()),
        ("bucket", f.bucket.is_some()),
        ("token_file", f.token_file.is_some()),
    ] {
        if set {
            out.push((key(name), "is an InfluxDB option; this destination is a broker".into()));
        }
    }
    let mut conn = Vec::new();
    f.connection().check(base, &mut conn);
    // The shared check names the URL `broker`; here it is `to`.
    for (mut path, msg) in conn {
        if path.last() == Some(&k("broker")) {
            path.pop();
            path.push(k("to"));
        }
        out.push((path, msg));
    }
    check_sparkplug(f, agent, base, out);
    if f.format == ForwardFormat::Json {
        check_topic_template(&f.topic, &["agent", "asset", "site"], key("topic"), out);
    }
    if f.max_inflight == 0 {
        out.push((key("max_inflight"), "must be at least 1".into()));
    }
}

/// The Sparkplug options: only with `format = "sparkplug"`, and ids that fit a topic.
fn check_sparkplug(f: &ForwardSection, agent: &str, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let key = |name: &str| at(base, &[k(name)]);
    let options = [
        ("group", f.group.clone()),
        ("node", f.node.as_ref().map(|n| n.replace("{agent}", agent))),
        ("primary_host", f.primary_host.clone()),
    ];
    for (name, value) in options {
        let Some(value) = value else { continue };
        if f.format != ForwardFormat::Sparkplug {
            out.push((
                key(name),
                "is a Sparkplug option; set format = \"sparkplug\" or leave it out".into(),
            ));
        } else if !is_sparkplug_id(&value) {
            out.push((
                key(name),
                format!("{value:?} must be non-empty, without '/', '+' or '#'"),
            ));
        }
    }
    if f.format == ForwardFormat::Sparkplug && f.node.is_none() && !is_sparkplug_id(agent) {
        out.push((
            key("node"),
            format!("the agent id {agent:?} cannot be a Sparkplug edge node id ('/', '+', '#'); set node"),
        ));
    }
}

fn check_shaping(f: &ForwardSection, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let key = |name: &str| at(base, &[k(name)]);
    if let Some(every) = f.every {
        if every.0 < Duration::from_secs(1) {
            out.push((key("every"), "must be at least 1s".into()));
        }
        if f.deadband.is_some() {
            out.push((
                key("deadband"),
                "applies to raw samples; it cannot be combined with every".into(),
            ));
        }
    }
    if let Some(d) = f.deadband {
        if !d.is_finite() || d < 0.0 {
            out.push((key("deadband"), "must be a finite number >= 0".into()));
        }
    }
    if f.max_silence.0 < Duration::from_secs(1) {
        out.push((key("max_silence"), "must be at least 1s".into()));
    }
}
