//! Telemetry forwarding to a real Mosquitto: every stored sample reaches the destination
//! through a destination outage and a `kill -9` of the agent, as JSON batches per asset;
//! a broker that refuses the login gets one error line, backoff, and no cursor move.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, json_input, subscribe, AgentProcess, Gate, Mosquitto};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::sync::mpsc::UnboundedReceiver;

fn config(data: &Path, input: u16, dest: u16, http: u16, extra: &str) -> String {
    format!(
        r#"
[agent]
id = "gw-test"
data_dir = "{data}"

[storage]
flush_interval = "50ms"

[upstream]
broker = "mqtt://127.0.0.1:{input}"

[http]
listen = "127.0.0.1:{http}"

[[asset]]
id = "pump1"
sensors = ["pump1.temp"]

{inp}
[[forward]]
name = "plant"
to = "mqtt://127.0.0.1:{dest}"
format = "json"
live_window = "3s"
interval = "200ms"
batch = 50
backfill_rate = 400
{extra}
"#,
        data = data.display(),
        inp = json_input("fwd-test-in", input),
    )
}

/// Publishes `n` readings of `pump1.temp` and `pump2.temp` stamped `t0 + i` ms × 10.
async fn publish(port: u16, t0: i64, n: i64) {
    let mut options = MqttOptions::new(format!("fwd-pub-{}", free_port()), "127.0.0.1", port);
    options.set_inflight(50);
    let (client, mut events) = AsyncClient::new(options, 100);
    let poll = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for i in 0..n {
        for machine in ["pump1", "pump2"] {
            let body = format!(r#"{{"ts": {}, "temp": {}}}"#, t0 + i * 10, i as f64 * 0.5);
            client
                .publish(format!("plant/{machine}/telemetry"), QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poll).await;
}

/// Every (asset, sensor, ts) received, and how many were received in all.
struct Received {
    seen: BTreeMap<(String, String, i64), u32>,
    total: usize,
    schema: serde_json::Value,
}

impl Default for Received {
    fn default() -> Self {
        Received {
            seen: BTreeMap::new(),
            total: 0,
            schema: serde_json::from_str(include_str!("../schema/telemetry.schema.json")).unwrap(),
        }
    }
}

impl Received {
    fn drain(&mut self, rx: &mut UnboundedReceiver<(String, Vec<u8>)>) {
        while let Ok((topic, payload)) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_slice(&payload).expect("a JSON batch");
            let mut errors = Vec::new();
            common::schema::validate(&self.schema, &v, "batch", &mut errors);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(v["schema"], 1);
            assert_eq!(v["agent"], "gw-test");
            let asset = v["asset"].as_str().unwrap().to_string();
            assert_eq!(topic, format!("forewarn/gw-test/telemetry/{asset}"));
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            for s in v["samples"].as_array().unwrap() {
                let sensor = s["sensor"].as_str().unwrap().to_string();
                let ts = forewarn::base::time::parse_time(s["ts"].as_str().unwrap()).unwrap();
                assert_eq!(s["quality"], "good");
                assert!(s["value"].is_number());
                // In time order per sensor within a batch.
                assert!(last.get(&sensor).is_none_or(|t| *t < ts), "{sensor} out of order");
                last.insert(sensor.clone(), ts);
                *self.seen.entry((asset.clone(), sensor, ts)).or_default() += 1;
                self.total += 1;
            }
        }
    }

    async fn wait_for(&mut self, rx: &mut UnboundedReceiver<(String, Vec<u8>)>, distinct: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            self.drain(rx);
            if self.seen.len() >= distinct {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {distinct} samples arrived",
                self.seen.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn healthz(port: u16) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("http");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

fn now_ms() -> i64 {
    forewarn::base::time::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_through_an_outage_and_a_kill_9() {
    let input = Mosquitto::start_persistent();
    let dest = Mosquitto::start();
    // The agent reaches the destination through a gate the test closes; the collector
    // stays subscribed directly, so nothing confirmed can be missed by it.
    let gate = Gate::start(dest.port).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&dir.path().join("data"), input.port, gate.port, http, "")).unwrap();
    let log = dir.path().join("agent.log");
    let mut agent = AgentProcess::start(&cfg, &log);
    agent.wait_for_log("forwarding", Duration::from_secs(10)).await;
    let mut rx = subscribe(dest.port, "forewarn/#").await;
    let mut got = Received::default();

    // Live: 2 × 200 samples.
    let t0 = now_ms();
    publish(input.port, t0, 200).await;
    got.wait_for(&mut rx, 400, Duration::from_secs(20)).await;
    let assets: BTreeSet<&str> = got.seen.keys().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(assets, BTreeSet::from(["_unassigned", "pump1"]), "pump2 is in no asset");

    // The destination goes down; 2 × 300 more are stored meanwhile and become backlog.
    gate.close();
    publish(input.port, t0 + 2_000, 300).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let h = healthz(http);
    assert_eq!(h["forward"]["plant"]["up"], 0, "{h}");
    assert!(h["forward"]["plant"]["backlog_samples"].as_u64().unwrap() >= 500, "{h}");
    assert!(
        agent.log_text().contains("destination unreachable"),
        "{}",
        agent.log_text()
    );
    gate.open();
    got.wait_for(&mut rx, 1_000, Duration::from_secs(30)).await;

    // kill -9 while more is on its way; the restarted agent resumes at its cursor.
    publish(input.port, t0 + 6_000, 300).await;
    agent.kill9();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent2.log"));
    got.wait_for(&mut rx, 1_600, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    got.drain(&mut rx);

    for machine in ["pump1", "pump2"] {
        let asset = if machine == "pump1" { "pump1" } else { "_unassigned" };
        for i in (0..200).chain(200..500).chain(600..900) {
            let ts = t0 + i * 10;
            assert!(
                got.seen
                    .contains_key(&(asset.to_string(), format!("{machine}.temp"), ts)),
                "{machine} sample at +{} ms never arrived",
                i * 10
            );
        }
    }
    let duplicates = got.total - got.seen.len();
    // Only what was in flight at the kill may come twice: a window of batches.
    assert!(duplicates <= 16 * 50, "{duplicates} duplicates");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = healthz(http);
        if h["forward"]["plant"]["lag_seconds"] == 0 && h["forward"]["plant"]["backlog_samples"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backlog never drained: {h}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    agent.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_one_error_and_no_cursor_move() {
    let input = Mosquitto::start_persistent();
    let port = free_port();
    let dest = Mosquitto::start_with_conf(port, |d| {
        let passwd = d.join("passwd");
        let ok = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args(["fwd", "right"])
            .status()
            .expect("mosquitto_passwd");
        assert!(ok.success());
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nlog_dest stderr\n",
            passwd.display()
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    let creds = "username = \"fwd\"\npassword = \"wrong\"\n";
    std::fs::write(
        &cfg,
        config(&dir.path().join("data"), input.port, dest.port, http, creds),
    )
    .unwrap();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent.wait_for_log("forwarding", Duration::from_secs(10)).await;
    publish(input.port, now_ms(), 50).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let log = agent.log_text();
    assert_eq!(log.matches("destination refuses the data").count(), 1, "{log}");
    assert!(log.contains("refused the login"), "{log}");
    let h = healthz(http);
    let f = &h["forward"]["plant"];
    assert_eq!(f["confirmed"], 0, "{h}");
    let failed = f["failed"].as_u64().unwrap();
    // Backoff: a handful of attempts in 6 s, not a busy loop.
    assert!((2..=12).contains(&failed), "{failed} attempts");
    assert!(agent.is_running());
    agent.terminate();
}
