//! A full disk, for real: the agent's data directory lives on a small tmpfs that the test
//! fills up. (a) Below `min_free_disk` the agent refuses new samples as a last resort,
//! raises a storage alert upstream, and recovers when space is freed. (b) A disk that fills
//! at once: what was accepted waits in memory behind the store's reserve and is stored
//! once space is back; nothing is lost uncounted. (c) A disk that reaches zero while the
//! disk-full alert is open leaves the store working. (d) QoS 1 MQTT messages refused while
//! the disk is full come back from the broker once space is freed, and are all stored.
//!
//! Mounting needs root (CI runs as root); elsewhere the tests say so and do nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use forewarn::config::{DataType, RegisterKind, WordOrder};
use forewarn::demo::modbus_server::RegisterBank;
use forewarn::http::{get, Remote};
use forewarn::source::modbus::decode::encode;
use serde_json::Value;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn free(&self) -> u64 {
        fs2::available_space(&self.0).unwrap()
    }

    /// Writes a file that leaves about `leave` bytes free.
    fn fill(&self, name: &str, leave: u64) {
        let size = self.free().saturating_sub(leave);
        let data = vec![0xA5u8; 1 << 20];
        let mut f = std::fs::File::create(self.0.join(name)).unwrap();
        let mut written = 0u64;
        while written < size {
            let n = (size - written).min(data.len() as u64) as usize;
            if std::io::Write::write_all(&mut f, &data[..n]).is_err() {
                break;
            }
            written += n as u64;
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn health(port: u16) -> Value {
    match get(&format!("127.0.0.1:{port}"), "/healthz") {
        Ok(Remote::Reply { status: 200, body }) => serde_json::from_slice(&body).unwrap(),
        _ => Value::Null,
    }
}

async fn wait_health(port: u16, what: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let h = health(port);
        if ok(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what}: last /healthz {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(data: &Path, modbus: u16, broker: u16, http: u16, min_free: &str) -> String {
    format!(
        r#"
[agent]
id = "gw-disk"
data_dir = "{data}"
[storage]
raw_retention = "1m"
max_disk = "16MiB"
flush_interval = "100ms"
retention_interval = "200ms"
min_free_disk = "{min_free}"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[http]
listen = "127.0.0.1:{http}"
[[modbus]]
device = "plc"
address = "127.0.0.1:{modbus}"
interval = "50ms"
timeout = "300ms"
  [[modbus.register]]
  sensor = "t"
  kind = "holding"
  address = 0
  type = "f32"
"#,
        data = data.display()
    )
}

async fn plc() -> u16 {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &encode(42.0, DataType::F32, WordOrder::ABCD));
    modbus_server(bank).await
}

/// The agent, storing on a fresh 48 MiB tmpfs with `min_free_disk = "8MiB"`, polling the
/// test PLC, alerts to a broker of its own; `None` (the test says it is skipped) without
/// root.
struct DiskSetup {
    _dir: tempfile::TempDir,
    fs: Tmpfs,
    _broker: Mosquitto,
    alerts: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    http: u16,
    agent: AgentProcess,
}

async fn agent_on_tmpfs() -> Option<DiskSetup> {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("mnt"), 48).expect("mount tmpfs");
    let broker = Mosquitto::start();
    let alerts = subscribe(broker.port, "forewarn/gw-disk/alerts/#").await;
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&fs.0.join("data"), plc().await, broker.port, http, "8MiB")).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    wait_health(http, "samples stored", Duration::from_secs(10), |h| {
        h["samples_stored"].as_u64() > Some(10)
    })
    .await;
    Some(DiskSetup {
        _dir: dir,
        fs,
        _broker: broker,
        alerts,
        http,
        agent,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_min_free_samples_are_refused_with_an_alert_and_recovery() {
    let Some(mut t) = agent_on_tmpfs().await else {
        return;
    };

    t.fs.fill("filler", 4 << 20);
    let h = wait_health(t.http, "disk full detected", Duration::from_secs(10), |h| {
        h["storage_pressure"] == "disk_full"
    })
    .await;
    let rejected_at = h["samples_rejected"].as_u64().unwrap_or(0);
    let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), t.alerts.recv())
        .await
        .expect("storage alert")
        .unwrap();
    let alert: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(topic, "forewarn/gw-disk/alerts/_agent");
    assert_eq!(
        (alert["rule"].as_str(), alert["state"].as_str()),
        (Some("disk-full"), Some("raised"))
    );
    wait_health(t.http, "samples refused", Duration::from_secs(5), |h| {
        h["samples_rejected"].as_u64() > Some(rejected_at + 5)
    })
    .await;

    std::fs::remove_file(t.fs.0.join("filler")).unwrap();
    let stored = health(t.http)["samples_stored"].as_u64().unwrap();
    wait_health(t.http, "storing again", Duration::from_secs(10), |h| {
        h["storage_pressure"] == "ok" && h["samples_stored"].as_u64() > Some(stored + 5)
    })
    .await;
    let (_, payload) = tokio::time::timeout(Duration::from_secs(10), t.alerts.recv())
        .await
        .expect("cleared alert")
        .unwrap();
    let cleared: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        (cleared["rule"].as_str(), cleared["state"].as_str()),
        (Some("disk-full"), Some("cleared"))
    );
    assert!(t.agent.log_text().contains("refusing new samples"));
}

/// The disk fills faster than anything checks it: samples the agent had already accepted
/// meet a full disk at the store, wait in memory behind its reserve, and are all stored
/// once space is back; what came after is refused and counted, never silently lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_samples_lose_nothing_when_the_disk_fills_at_once() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("mnt"), 48).expect("mount tmpfs");
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&fs.0.join("data"), plc().await, free_port(), http, "4MiB")).unwrap();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    wait_health(http, "samples stored", Duration::from_secs(10), |h| {
        h["samples_stored"].as_u64() > Some(10)
    })
    .await;

    fs.fill("filler", 0);
    fs.fill("filler2", 0);
    wait_health(http, "refusing", Duration::from_secs(20), |h| {
        h["storage_pressure"] == "disk_full" && h["samples_rejected"].as_u64() > Some(0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    std::fs::remove_file(fs.0.join("filler2")).unwrap();
    let stored = health(http)["samples_stored"].as_u64().unwrap();
    wait_health(http, "storing again", Duration::from_secs(20), |h| {
        h["samples_stored"].as_u64() > Some(stored + 20)
    })
    .await;

    // Every sample in is stored or counted as refused, once the buffer has been written.
    agent.terminate();
    let log = agent.log_text();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("agent stopped"))
        .unwrap_or_else(|| panic!("{log}"));
    let figure = |name: &str| -> u64 {
        line.split([' ', ','])
            .map(|t| t.trim_start_matches("stats="))
            .find_map(|t| t.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let (inn, stored, rejected) = (
        figure("samples_in"),
        figure("samples_stored"),
        figure("samples_rejected"),
    );
    assert!(rejected > 0, "{line}");
    assert_eq!(inn, stored + rejected, "{line}");
}

/// The disk runs out completely while the `disk-full` alert is open, so the alert's own
/// records (last seen, outbox) meet a full disk too. Every writer waits behind the same
/// reserve, so the store is never left failed: once space is back the agent stores
/// samples again, clears the alert and delivers it, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_reaches_zero_during_the_alert_leaves_the_store_working() {
    let Some(mut t) = agent_on_tmpfs().await else {
        return;
    };

    t.fs.fill("filler", 6 << 20);
    wait_health(t.http, "disk full detected", Duration::from_secs(10), |h| {
        h["storage_pressure"] == "disk_full"
    })
    .await;
    let (_, payload) = tokio::time::timeout(Duration::from_secs(10), t.alerts.recv())
        .await
        .expect("storage alert")
        .unwrap();
    let raised: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(raised["state"], "raised");
    // Now nothing at all is left; the open alert keeps updating its records meanwhile.
    t.fs.fill("filler2", 0);
    t.fs.fill("filler3", 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        t.agent.is_running(),
        "the agent died on a full disk:\n{}",
        t.agent.log_text()
    );

    for f in ["filler", "filler2", "filler3"] {
        std::fs::remove_file(t.fs.0.join(f)).unwrap();
    }
    let stored = health(t.http)["samples_stored"].as_u64().unwrap_or(0);
    let h = wait_health(t.http, "storing again", Duration::from_secs(15), |h| {
        h["storage_pressure"] == "ok" && h["samples_stored"].as_u64() > Some(stored + 20)
    })
    .await;
    let errors = h["flush_errors"].as_u64().unwrap_or(0);
    let (_, payload) = tokio::time::timeout(Duration::from_secs(15), t.alerts.recv())
        .await
        .expect("cleared alert")
        .unwrap();
    let cleared: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        (cleared["rule"].as_str(), cleared["state"].as_str()),
        (Some("disk-full"), Some("cleared"))
    );
    // Writes keep succeeding: no flush fails once space is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = health(t.http);
    assert_eq!(later["flush_errors"].as_u64(), Some(errors), "{}", t.agent.log_text());
    assert!(t.agent.is_running(), "{}", t.agent.log_text());
    t.agent.terminate();
}

fn mqtt_config(data: &Path, broker: u16, http: u16) -> String {
    format!(
        r#"
[agent]
id = "gw-disk-mqtt"
data_dir = "{data}"
[storage]
raw_retention = "1m"
max_disk = "16MiB"
flush_interval = "100ms"
ack_delay = "5ms"
retention_interval = "200ms"
min_free_disk = "8MiB"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[http]
listen = "127.0.0.1:{http}"
{input}"#,
        data = data.display(),
        input = json_input("disk-agent", broker)
    )
}

/// QoS 1 messages published while the disk is full are refused, not acknowledged; once
/// space is freed the agent gets them back from the broker by itself, and every one of
/// them is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_messages_refused_while_full_are_stored_once_space_is_back() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    const MESSAGES: i64 = 200;
    const T0: i64 = 1_700_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("mnt"), 48).expect("mount tmpfs");
    // Mosquitto's defaults: 20 messages in flight, the rest queued for the session.
    let broker = Mosquitto::start();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, mqtt_config(&fs.0.join("data"), broker.port, http)).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    wait_health(http, "agent up", Duration::from_secs(10), |h| {
        h["storage_pressure"] == "ok"
    })
    .await;

    fs.fill("filler", 4 << 20);
    wait_health(http, "disk full detected", Duration::from_secs(10), |h| {
        h["storage_pressure"] == "disk_full"
    })
    .await;
    let (client, mut events) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new("disk-publisher", "127.0.0.1", broker.port),
        1000,
    );
    let acked = tokio::spawn(async move {
        let mut acked = 0;
        while acked < MESSAGES {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher lost the broker: {e}"),
            }
        }
    });
    for i in 0..MESSAGES {
        let payload = format!(r#"{{"ts": {}, "v": {i}}}"#, T0 + i);
        client
            .publish("plant/m1/telemetry", rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), acked)
        .await
        .expect("the broker took every message")
        .unwrap();
    wait_health(http, "messages refused", Duration::from_secs(10), |h| {
        h["samples_rejected"].as_u64() > Some(0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(health(http)["samples_stored"], 0, "stored while the disk was full");

    std::fs::remove_file(fs.0.join("filler")).unwrap();
    wait_health(http, "every message stored", Duration::from_secs(20), |h| {
        h["storage_pressure"] == "ok" && h["samples_stored"].as_u64() >= Some(MESSAGES as u64)
    })
    .await;
    let body = match get(
        &format!("127.0.0.1:{http}"),
        &format!("/query?sensor=m1.v&from={T0}&to={}", T0 + MESSAGES),
    )
    .unwrap()
    {
        Remote::Reply { status: 200, body } => String::from_utf8(body).unwrap(),
        _ => panic!("query failed"),
    };
    let values: std::collections::BTreeSet<i64> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["value"].as_f64().unwrap() as i64)
        .collect();
    // The broker resent them because the input reconnected once, not because of a restart.
    assert!(agent.log_text().contains("reconnecting so that the broker resends"));
    let missing: Vec<i64> = (0..MESSAGES).filter(|i| !values.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{} of {MESSAGES} messages missing, e.g. {:?}:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        agent.log_text()
    );
}
