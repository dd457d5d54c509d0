//! What the gateway says about itself upstream: a retained birth message (`online`, with
//! the version and a hash of the config) on the status topic after every connect, a last
//! will (`offline`) that the broker publishes, retained, when the connection is lost
//! without a goodbye, a retained `offline` on a clean shutdown, and a periodic heartbeat
//! with health figures. None of these go through the outbox: they describe the present,
//! so an old one is worth nothing after a reconnect.

use serde_json::{json, Value};

use crate::base::sample::rfc3339_ms;
use crate::config::{Config, UpstreamSettings};
use crate::stats::Stats;

/// The identity carried by every status message.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    pub agent: String,
    pub site: Option<String>,
    pub version: String,
    pub config_hash: String,
    pub started_ms: i64,
}

/// FNV-1a (64 bit) of the effective config in its JSON form: equal hashes across a fleet
/// mean equal configs. Every secret is a `Secret`, which serialises as `<redacted>`, so no
/// password enters the hash: a published value that changed with the password would let
/// anyone who knows the rest of a fleet's config try passwords against it offline.
pub fn config_hash(config: &Config) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl StatusInfo {
    /// The identity of the agent `upstream` describes, whose whole config hashes to
    /// `config_hash`.
    pub fn new(upstream: &UpstreamSettings, config_hash: String) -> Self {
        StatusInfo {
            agent: upstream.agent.clone(),
            site: upstream.site.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash,
            started_ms: crate::base::time::now_ms(),
        }
    }

    fn base(&self, state: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("state".into(), json!(state));
        m.insert("agent".into(), json!(self.agent));
        if let Some(site) = &self.site {
            m.insert("site".into(), json!(site));
        }
        m.insert("version".into(), json!(self.version));
        m.insert("config_hash".into(), json!(self.config_hash));
        m
    }

    /// Retained on the status topic after each connect.
    pub fn birth(&self, now_ms: i64) -> Vec<u8> {
        let mut m = self.base("online");
        m.insert("since".into(), json!(rfc3339_ms(self.started_ms)));
        m.insert("ts".into(), json!(rfc3339_ms(now_ms)));
        Value::Object(m).to_string().into_bytes()
    }

    /// The last will: published by the broker if the connection drops.
    pub fn will(&self) -> Vec<u8> {
        let mut m = self.base("offline");
        m.insert("reason".into(), json!("connection lost"));
        Value::Object(m).to_string().into_bytes()
    }

    /// Published on a clean shutdown, before disconnecting.
    pub fn goodbye(&self, now_ms: i64) -> Vec<u8> {
        let mut m = self.base("offline");
        m.insert("reason".into(), json!("shutdown"));
        m.insert("ts".into(), json!(rfc3339_ms(now_ms)));
        Value::Object(m).to_string().into_bytes()
    }

    /// Health figures for the heartbeat topic.
    pub fn heartbeat(&self, stats: &Stats, now_ms: i64) -> Vec<u8> {
        let devices = stats.devices_json();
        let device_errors: u64 = devices
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .map(|d| {
                ["timeouts", "transport_errors", "exceptions", "connect_failures"]
                    .iter()
                    .filter_map(|k| d[*k].as_u64())
                    .sum::<u64>()
            })
            .sum();
        let mut m = stats.agent_json();
        m.insert("agent".into(), json!(self.agent));
        m.insert("ts".into(), json!(rfc3339_ms(now_ms)));
        m.insert("uptime_s".into(), json!((now_ms - self.started_ms).max(0) / 1000));
        m.insert("device_errors".into(), json!(device_errors));
        m.insert("devices".into(), devices);
        Value::Object(m).to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> StatusInfo {
        StatusInfo {
            agent: "gw".into(),
            site: Some("plant-a".into()),
            version: "1.2.3".into(),
            config_hash: "00ff".into(),
            started_ms: 0,
        }
    }

    #[test]
    fn birth_will_and_heartbeat() {
        let birth: Value = serde_json::from_slice(&info().birth(5_000)).unwrap();
        assert_eq!(
            (&birth["state"], &birth["site"], &birth["config_hash"]),
            (&json!("online"), &json!("plant-a"), &json!("00ff"))
        );
        let will: Value = serde_json::from_slice(&info().will()).unwrap();
        assert_eq!(will["state"], "offline");
        let stats = Stats::default();
        stats.samples_in.add(10);
        stats.outbox_depth.set(3);
        stats.device("plc").timeouts.add(2);
        stats.device("plc").exceptions.add(1);
        let hb: Value = serde_json::from_slice(&info().heartbeat(&stats, 61_000)).unwrap();
        assert_eq!(
            (
                &hb["samples_in"],
                &hb["outbox_depth"],
                &hb["device_errors"],
                &hb["uptime_s"]
            ),
            (&json!(10), &json!(3), &json!(3), &json!(61))
        );
    }

    #[test]
    fn config_hash_leaves_every_secret_out() {
        let text =
            "[agent]\nid = \"gw\"\n[upstream]\nbroker = \"mqtt://h\"\nusername = \"u\"\npassword = \"pw-alpha\"\n\
                    [[mqtt]]\nbroker = \"mqtt://in\"\nusername = \"i\"\npassword = \"in-alpha\"\n\
                    [[mqtt.subscribe]]\ntopic = \"a/+\"\n";
        let parse = |t: &str| Config::parse(t, std::path::Path::new("c")).unwrap();
        let a = parse(text);
        let b = parse(&text.replace("pw-alpha", "pw-beta"));
        let c = parse(&text.replace("in-alpha", "in-beta"));
        let d = parse(&text.replace("id = \"gw\"", "id = \"gw2\""));
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_eq!(config_hash(&a), config_hash(&c));
        assert_ne!(config_hash(&a), config_hash(&d));
        for secret in ["pw-alpha", "in-alpha"] {
            assert!(!format!("{a:?}").contains(secret));
            assert!(!serde_json::to_string(&a).unwrap().contains(secret));
        }
    }
}
