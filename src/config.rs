//! The one TOML file that configures an agent, as typed structs.
//!
//! Every option is a field here with a doc comment and a default; `config/forewarn.toml`
//! shows each of them. Loading is strict: an unknown key, a wrong type, an unparsable
//! duration or size, or a config that contradicts itself (a rule on an unknown sensor, a
//! register past address 65535, ...) is a [`ConfigProblem`] that names the file, the line
//! where known, the key and what is wrong. [`Config::load`] reports *every* problem it can
//! find in one pass, so `forewarn check` is a single round trip for the person fixing it.

#[macro_use]
mod broker;
pub(crate) mod footprint;
mod forward;
mod keys;
mod load;
mod modbus;
mod modbus_checks;
pub(crate) mod model;
mod mqtt;
mod mqtt_checks;
pub(crate) mod params;
mod resolved;
mod topic;
pub mod users;
mod validate;

pub use forward::{
    is_sparkplug_id, BackfillOrder, Destination, ForwardFormat, ForwardSection, ForwardSettings, InfluxAuth,
    InfluxTarget, Shaping, SparkplugNode, SPARKPLUG_GROUP,
};
pub use modbus::*;
pub use mqtt::{sensor_glob, sensor_template, MqttInput, PayloadFormat, Precision, Subscription};
pub use resolved::{InputQos, InputSettings, SubscriptionSettings, UpstreamSettings};
pub use topic::{render_topic, render_topic_at, TopicTemplate};

pub use broker::{
    parse_broker, parse_broker_url, BrokerAddr, BrokerEndpoint, ConnectionFields, Credentials, PasswordSource, TlsFiles,
};

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::base::secret::Secret;
pub use crate::base::units::{ByteSize, Dur};
pub use model::{ModelConfig, Period};

/// Where the daemon looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/forewarn/forewarn.toml";

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and local state of this gateway.
    pub agent: AgentConfig,
    /// Local history: durability and retention.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The MQTT broker that receives alerts.
    pub upstream: UpstreamConfig,
    /// Modbus devices to poll.
    #[serde(default)]
    pub modbus: Vec<ModbusDevice>,
    /// MQTT brokers to subscribe to.
    #[serde(default)]
    pub mqtt: Vec<MqttInput>,
    /// Machines and the rules that watch them.
    #[serde(default)]
    pub asset: Vec<Asset>,
    /// The local HTTP API (health, metrics, queries).
    #[serde(default)]
    pub http: HttpConfig,
    /// Telemetry destinations, each fed from the local history behind its own cursor.
    #[serde(default)]
    pub forward: Vec<ForwardSection>,
}

/// `[http]`: a small HTTP API for the local machine: `/healthz`, `/metrics`, `/query`,
/// `/stats`. `forewarn query` and `forewarn store-stats` use it while the agent runs.
/// Off loopback it needs `users_file` (HTTP Basic, roles, CSRF tokens for actions), and
/// with `tls_cert` and `tls_key` it speaks HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the API at all.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// `host:port` to listen on; keep it on loopback unless a firewall guards it.
    #[serde(default = "defaults::http_listen")]
    pub listen: String,
    /// Users of the API, one `name:role:$argon2id$…` line each, written by `forewarn
    /// passwd FILE USER [--role viewer|operator]`. With it every request needs HTTP Basic
    /// credentials; required when `listen` is not a loopback address. Default: none.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// PEM certificate chain the API presents; with `tls_key`, the API speaks HTTPS only.
    /// Default: none (plain HTTP).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Default: none.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: defaults::http_listen(),
            users_file: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[agent]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Name of this gateway; appears in every alert and in topic templates as `{agent}`.
    /// Letters, digits, `-`, `_` and `.` only, so it is safe in MQTT topics.
    pub id: String,
    /// Directory of the local store (sled database, alert outbox). Created if missing.
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: String::new(),
            data_dir: defaults::data_dir(),
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Minimum time raw samples are kept. Data younger than this is never evicted.
    #[serde(default = "defaults::raw_retention")]
    pub raw_retention: Dur,
    /// Disk budget of the data directory.
    #[serde(default = "defaults::max_disk")]
    pub max_disk: ByteSize,
    /// How often buffered samples are written and fsynced. A sample is durable (survives
    /// `kill -9` and power loss) once the flush after its arrival has completed.
    #[serde(default = "defaults::flush_interval")]
    pub flush_interval: Dur,
    /// Memory sled may use as a page cache.
    #[serde(default = "defaults::cache")]
    pub cache: ByteSize,
    /// With MQTT QoS 1 inputs: the store is flushed at most this long after a message
    /// arrives, so its acknowledgement reaches the broker quickly (group commit).
    #[serde(default = "defaults::ack_delay")]
    pub ack_delay: Dur,
    /// Samples stay in the write-ahead log at most this long before they are compressed
    /// into per-sensor chunks (sooner when many accumulate).
    #[serde(default = "defaults::seal_interval")]
    pub seal_interval: Dur,
    /// How often retention checks the disk budget.
    #[serde(default = "defaults::retention_interval")]
    pub retention_interval: Dur,
    /// Chunks are appended to files here before retention evicts them; restore them with
    /// `forewarn import --archive DIR`. No archive when unset.
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
    /// Last resort: when the filesystem of `data_dir` has less free space than this (checked
    /// at every flush), new samples are refused (and a storage alert raised) instead of
    /// failing writes. At least the 4 MiB the store always keeps free.
    #[serde(default = "defaults::min_free_disk")]
    pub min_free_disk: ByteSize,
    /// Aggregates (min, max, mean, count per interval) kept after raw samples are evicted.
    #[serde(default)]
    pub rollup: Vec<RollupTier>,
}

/// `[[storage.rollup]]`: one tier of aggregates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupTier {
    /// Interval of one aggregate, e.g. `1m`.
    pub every: Dur,
    /// How long the aggregates are kept, e.g. `365d`; at least `raw_retention`.
    pub keep: Dur,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            raw_retention: defaults::raw_retention(),
            max_disk: defaults::max_disk(),
            flush_interval: defaults::flush_interval(),
            cache: defaults::cache(),
            ack_delay: defaults::ack_delay(),
            seal_interval: defaults::seal_interval(),
            retention_interval: defaults::retention_interval(),
            archive_dir: None,
            min_free_disk: defaults::min_free_disk(),
            rollup: Vec::new(),
        }
    }
}

/// `[upstream]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Broker URL, `mqtt://host:port` (port defaults to 1883).
    pub broker: String,
    /// Topic of alert messages; `{agent}` and `{asset}` are substituted. An asset id such
    /// as `line1/pump1` becomes topic levels.
    #[serde(default = "defaults::alert_topic")]
    pub alert_topic: String,
    /// MQTT client id; defaults to `forewarn-{agent}`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// MQTT keep-alive interval.
    #[serde(default = "defaults::keep_alive")]
    pub keep_alive: Dur,
    /// Alerts published but not yet acknowledged by the broker, at most.
    #[serde(default = "defaults::inflight")]
    pub max_inflight: u16,
    /// Name of the site (plant) this gateway belongs to; `{site}` in topic templates.
    #[serde(default)]
    pub site: Option<String>,
    /// Topic of the retained birth message (`online`) and of the last will (`offline`);
    /// `{agent}` and `{site}` are substituted.
    #[serde(default = "defaults::status_topic")]
    pub status_topic: String,
    /// Topic of the periodic heartbeat with health figures.
    #[serde(default = "defaults::heartbeat_topic")]
    pub heartbeat_topic: String,
    /// Time between two heartbeats.
    #[serde(default = "defaults::heartbeat_interval")]
    pub heartbeat_interval: Dur,
    /// PEM file of the certificate authorities that sign the broker's certificate;
    /// required with `mqtts://`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate of this gateway, for brokers that require client certificates
    /// (mutual TLS); goes with `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// MQTT user name.
    #[serde(default)]
    pub username: Option<String>,
    /// MQTT password written in the config (prefer `password_file` or `password_env`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// File whose content (without a trailing newline) is the MQTT password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable that holds the MQTT password.
    #[serde(default)]
    pub password_env: Option<String>,
}

impl UpstreamConfig {
    /// The connection options, for the checks and the resolved endpoint.
    pub fn connection(&self) -> ConnectionFields<'_> {
        connection_fields!(self)
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            broker: String::new(),
            alert_topic: defaults::alert_topic(),
            client_id: None,
            keep_alive: defaults::keep_alive(),
            max_inflight: defaults::inflight(),
            site: None,
            status_topic: defaults::status_topic(),
            heartbeat_topic: defaults::heartbeat_topic(),
            heartbeat_interval: defaults::heartbeat_interval(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
        }
    }
}

/// `[[asset]]`: a machine and what watches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Path-like id, unique (e.g. `line1/pump1`); appears in alerts and alert topics.
    pub id: String,
    /// Sensors that belong to this machine.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Threshold rules on this machine's sensors.
    #[serde(default)]
    pub rule: Vec<Rule>,
    /// `id` of the parent asset (e.g. `line1` for `line1/pump1`). While the parent has an
    /// open incident, new alarms of this asset and its descendants are folded into it.
    /// Parents are only what this field says; an id's slashes imply nothing.
    #[serde(default)]
    pub parent: Option<String>,
    /// The failure-prediction model of this machine (trained by `forewarn train`).
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Raise a `no-data` alert (severity warning) when one of `sensors` has delivered no
    /// good sample for this long: a dead sensor or a device that stopped answering would
    /// otherwise silence this machine's rules and model. Default: not watched.
    #[serde(default)]
    pub no_data: Option<Dur>,
}

/// `[[asset.rule]]`: a threshold with hysteresis. Set `above` (high alarm) or `below`
/// (low alarm). The alert is raised once when the value crosses the limit and cleared once
/// when it comes back past the clear level, so a value hovering at the limit never floods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rule name, unique within its asset; appears in alerts.
    pub name: String,
    /// The watched sensor.
    pub sensor: String,
    /// Raise when the value goes above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// With `above`: clear when the value falls below this (default: `above`).
    #[serde(default)]
    pub clear_below: Option<f64>,
    /// Raise when the value goes below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// With `below`: clear when the value rises above this (default: `below`).
    #[serde(default)]
    pub clear_above: Option<f64>,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
    pub severity: Severity,
    /// The value must stay past the limit this long before the alert is raised; a
    /// shorter excursion raises nothing.
    #[serde(default)]
    pub min_duration: Dur,
    /// The value must stay past the clear level this long before the alert clears.
    #[serde(default)]
    pub clear_after: Dur,
    /// While the alert stays raised, a `renotify` message is sent this often. Never when
    /// unset.
    #[serde(default)]
    pub renotify: Option<Dur>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

mod defaults {
    use super::{ByteSize, Dur};
    use std::path::PathBuf;

    pub fn data_dir() -> PathBuf {
        PathBuf::from("/var/lib/forewarn")
    }
    pub fn raw_retention() -> Dur {
        Dur::from_secs(30 * 86_400)
    }
    pub fn max_disk() -> ByteSize {
        ByteSize(4 << 30)
    }
    pub fn flush_interval() -> Dur {
        Dur::from_secs(1)
    }
    pub fn cache() -> ByteSize {
        ByteSize(32 << 20)
    }
    pub fn ack_delay() -> Dur {
        Dur::from_millis(10)
    }
    pub fn seal_interval() -> Dur {
        Dur::from_secs(600)
    }
    pub fn retention_interval() -> Dur {
        Dur::from_secs(60)
    }
    pub fn min_free_disk() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn qos() -> u8 {
        1
    }
    pub fn max_sensors() -> usize {
        10_000
    }
    pub fn max_future() -> Dur {
        Dur::from_secs(300)
    }
    pub fn max_payload() -> ByteSize {
        ByteSize(1 << 20)
    }
    pub fn http_listen() -> String {
        "127.0.0.1:9321".into()
    }
    pub fn alert_topic() -> String {
        "forewarn/{agent}/alerts/{asset}".into()
    }
    pub fn status_topic() -> String {
        "forewarn/{agent}/status".into()
    }
    pub fn heartbeat_topic() -> String {
        "forewarn/{agent}/heartbeat".into()
    }
    pub fn heartbeat_interval() -> Dur {
        Dur::from_secs(60)
    }
    pub fn keep_alive() -> Dur {
        Dur::from_secs(30)
    }
    pub fn forward_topic() -> String {
        "forewarn/{agent}/telemetry/{asset}".into()
    }
    pub fn all_sensors() -> Vec<String> {
        vec!["*".into()]
    }
    pub fn max_silence() -> Dur {
        Dur::from_secs(600)
    }
    pub fn forward_batch() -> usize {
        500
    }
    pub fn backfill_rate() -> u32 {
        5_000
    }
    pub fn live_window() -> Dur {
        Dur::from_secs(60)
    }
    pub fn forward_interval() -> Dur {
        Dur::from_secs(1)
    }
    pub fn forward_timeout() -> Dur {
        Dur::from_secs(10)
    }
    pub fn inflight() -> u16 {
        100
    }
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    /// 1-based line of the offending key, where it can be located.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `modbus[0].register[1].address`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{} in config:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// One rollup tier, resolved to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub every_ms: i64,
    pub keep_ms: i64,
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = load::read_bounded(path, load::MAX_CONFIG_BYTES).map_err(|e| {
            ConfigErrors(vec![ConfigProblem {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: e.to_string(),
            }])
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        load::parse(text, path)
    }

    /// The sensors Modbus registers define, in declaration order. MQTT sensors are named
    /// by their messages, so only the ones an asset or a rule names are known beforehand.
    pub fn modbus_sensors(&self) -> impl Iterator<Item = &str> {
        self.modbus
            .iter()
            .flat_map(|d| d.register.iter().map(|r| r.sensor.as_str()))
    }

    /// Every sensor the config names: Modbus registers, then the sensors of assets and
    /// rules (MQTT ones among them); a name may repeat.
    pub fn named_sensors(&self) -> impl Iterator<Item = &str> {
        let assets = self
            .asset
            .iter()
            .flat_map(|a| a.sensors.iter().chain(a.rule.iter().map(|r| &r.sensor)));
        self.modbus_sensors().chain(assets.map(String::as_str))
    }

    /// Rollup tiers in milliseconds, finest first.
    pub fn rollup_tiers(&self) -> Vec<Tier> {
        let mut tiers: Vec<_> = self
            .storage
            .rollup
            .iter()
            .map(|t| Tier {
                every_ms: t.every.0.as_millis() as i64,
                keep_ms: t.keep.0.as_millis() as i64,
            })
            .collect();
        tiers.sort_by_key(|t| t.every_ms);
        tiers
    }

    /// Client id of the `i`th MQTT input.
    pub fn mqtt_client_id(&self, i: usize) -> String {
        self.mqtt
            .get(i)
            .and_then(|m| m.client_id.clone())
            .unwrap_or_else(|| format!("forewarn-{}-in{i}", self.agent.id))
    }

    /// MQTT client id for the upstream connection.
    pub fn upstream_client_id(&self) -> String {
        self.upstream
            .client_id
            .clone()
            .unwrap_or_else(|| format!("forewarn-{}", self.agent.id))
    }
}
