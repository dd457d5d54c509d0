//! Sparkplug B against an independent implementation: a pysparkplug edge node
//! (`tests/peers/sparkplug_peer.py`) publishes births and alias-only data through a real
//! Mosquitto to the agent, which is killed and restarted while the node stays online.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::peer::SparkplugPeer;
use common::*;
use forewarn::http::{get, Remote};
use serde_json::Value;

const SUBSCRIPTION: &str = "fw-in:spBv1.0/#";

fn config(data: &Path, broker: u16, http: u16) -> String {
    format!(
        r#"
[agent]
id = "gw-sp"
data_dir = "{data}"
[storage]
flush_interval = "100ms"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[http]
listen = "127.0.0.1:{http}"

[[mqtt]]
broker = "mqtt://127.0.0.1:{broker}"
client_id = "fw-in"
qos = 1
clean_session = false

  [[mqtt.subscribe]]
  topic = "spBv1.0/#"
  format = "sparkplug"
  sensor = "{{node}}.{{device}}.{{metric}}"
"#,
        data = data.display()
    )
}

fn api(http: u16, target: &str) -> String {
    match get(&format!("127.0.0.1:{http}"), target) {
        Ok(Remote::Reply { status: 200, body }) => String::from_utf8(body).unwrap(),
        _ => String::new(),
    }
}

/// The stored values of one sensor, oldest first.
fn values(http: u16, sensor: &str) -> Vec<f64> {
    api(http, &format!("/query?sensor={sensor}"))
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["value"].as_f64())
        .collect()
}

/// A figure of the subscription from `/metrics`.
fn figure(http: u16, name: &str) -> Option<u64> {
    let prefix = format!("forewarn_{name}{{subscription=\"{SUBSCRIPTION}\"}} ");
    api(http, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", context());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_agent(cfg: &Path, log: &Path) -> AgentProcess {
    let agent = AgentProcess::start(cfg, log);
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(15))
        .await;
    // The subscription follows the CONNACK.
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_survive_a_restart_and_unknown_aliases_ask_for_a_rebirth() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = (dir.path().join("data"), free_port());
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&data, broker.port, http)).unwrap();
    let mut ncmds = subscribe(broker.port, "spBv1.0/+/NCMD/+").await;

    let mut agent = start_agent(&cfg, &dir.path().join("agent1.log")).await;
    let mut node = SparkplugPeer::start(broker.port);
    node.command("birth");
    node.command("data 1");
    let log1 = dir.path().join("agent1.log");
    let context = || std::fs::read_to_string(&log1).unwrap_or_default();
    wait_until(
        "the first data",
        Duration::from_secs(10),
        || values(http, "edge1.pump.Speed").contains(&1001.0),
        context,
    )
    .await;
    // Float 123.456 is stored as 123.456, not as its float32 widened bit for bit.
    assert!(
        api(http, "/query?sensor=edge1..Temperature").contains("\"value\":123.456}"),
        "{}",
        api(http, "/query?sensor=edge1..Temperature")
    );
    assert!(values(http, "edge1..Count").contains(&-1.0));
    // DateTime is stored as epoch milliseconds; the String metric is counted, not stored.
    assert!(values(http, "edge1..Started").contains(&1_700_000_001_000.0));
    assert!(values(http, "edge1..Serial").is_empty());
    assert_eq!(
        figure(http, "mqtt_non_numeric_total"),
        Some(2),
        "{}",
        api(http, "/metrics")
    );
    assert_eq!(figure(http, "mqtt_unknown_alias_total"), Some(0));
    // Let the flush after the data pass (100 ms), then kill -9 while the node stays online.
    tokio::time::sleep(Duration::from_millis(600)).await;
    agent.kill9();

    let log2 = dir.path().join("agent2.log");
    let mut agent = start_agent(&cfg, &log2).await;
    assert!(
        agent.log_text().contains("sparkplug births restored"),
        "{}",
        agent.log_text()
    );
    node.command("data 2");
    let context = || std::fs::read_to_string(&log2).unwrap_or_default();
    wait_until(
        "alias-only data after the restart",
        Duration::from_secs(10),
        || values(http, "edge1..Count").contains(&-2.0) && values(http, "edge1.pump.Speed").contains(&1002.0),
        context,
    )
    .await;
    assert_eq!(
        figure(http, "mqtt_unknown_alias_total"),
        Some(0),
        "{}",
        agent.log_text()
    );
    assert!(
        !node.lines().iter().any(|l| l.starts_with("ncmd")),
        "{:?}",
        node.lines()
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    agent.kill9();

    // Births lost with the whole data directory: the agent asks the node to rebirth, and
    // the node's data flows again.
    std::fs::remove_dir_all(&data).unwrap();
    let log3 = dir.path().join("agent3.log");
    let _agent = start_agent(&cfg, &log3).await;
    node.command("data 3");
    node.wait_for("ncmd Node Control/Rebirth=True", 1, Duration::from_secs(10));
    node.wait_for("reborn", 1, Duration::from_secs(10));
    let (topic, _) = tokio::time::timeout(Duration::from_secs(5), ncmds.recv())
        .await
        .expect("an NCMD on the broker")
        .expect("subscriber alive");
    assert_eq!(topic, "spBv1.0/plant1/NCMD/edge1");
    node.command("data 4");
    let context = || std::fs::read_to_string(&log3).unwrap_or_default();
    wait_until(
        "data after the rebirth",
        Duration::from_secs(10),
        || values(http, "edge1..Count").contains(&-4.0),
        context,
    )
    .await;
    // Data 3 could not be named: counted (4 node and 1 device metrics), not stored.
    assert!(!values(http, "edge1..Count").contains(&-3.0));
    assert_eq!(
        figure(http, "mqtt_unknown_alias_total"),
        Some(5),
        "{}",
        api(http, "/metrics")
    );
    // The NDATA and DDATA of data 3 both lacked births; one request within 5 s.
    assert_eq!(figure(http, "mqtt_rebirth_requests_total"), Some(1));
    assert_eq!(node.count("reborn"), 1, "{:?}", node.lines());
    let log = std::fs::read_to_string(&log3).unwrap();
    assert!(log.contains("asked a sparkplug node to rebirth"), "{log}");
    assert!(
        log.contains("Serial") && log.contains("is a String, not a number"),
        "{log}"
    );
}
