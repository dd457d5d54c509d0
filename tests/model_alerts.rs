//! Failure prediction end to end, with real parts: a model trained by `forewarn train` on
//! healthy history of the demo pump catches the developing bearing fault (the demo plant's
//! heating ramp, time-compressed) and raises a model alert through the alert lifecycle, the
//! outbox and Mosquitto *before* the 80 °C threshold rule fires; SIGHUP reloads the model
//! and the open incident carries over the reload.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use forewarn::config::{DataType, RegisterKind, WordOrder};
use forewarn::demo::modbus_server::RegisterBank;
use forewarn::source::modbus::decode::encode;
use serde_json::Value;

/// Healthy bearing temperature and vibration with the demo plant's noise.
fn healthy() -> (f64, f64) {
    (
        60.0 + 0.3 * (fastrand::f64() - 0.5),
        1.2 + 0.1 * (fastrand::f64() - 0.5),
    )
}

fn set(bank: &RegisterBank, temp: f64, vib: f64) {
    bank.set(RegisterKind::Holding, 0, &encode(temp, DataType::F32, WordOrder::ABCD));
    bank.set(
        RegisterKind::Input,
        10,
        &encode((vib * 100.0).round(), DataType::U16, WordOrder::ABCD),
    );
}

const MODEL: &str = r#"
  [asset.model]
  period = "200ms"
  window = 3
  alarm_k = 3
  alarm_n = 5
  min_duration = "2s"
  severity = "warning"
  renotify = "1s"
"#;

fn config(dir: &Path, modbus_port: u16, broker_port: u16) -> std::path::PathBuf {
    let path = dir.join("forewarn.toml");
    let text = pump_config(&dir.join("data"), modbus_port, broker_port, 100, 200) + MODEL;
    std::fs::write(&path, text).unwrap();
    path
}

/// Ten minutes of healthy history at 5 Hz, as the poller would have stored it.
fn healthy_csv(path: &Path) {
    let mut text = String::from("time,pump1.bearing_temp,pump1.vibration\n");
    let start = 1_700_000_000_000i64;
    for i in 0..3000 {
        let (t, v) = healthy();
        text += &format!("{},{},{}\n", start + i * 200, t as f32, (v * 100.0).round() / 100.0);
    }
    std::fs::write(path, text).unwrap();
}

fn forewarn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .output()
        .expect("run forewarn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_model_alerts_before_the_threshold_rule() {
    let broker = Mosquitto::start();
    let mut alerts = subscribe(broker.port, "forewarn/#").await;
    let bank = RegisterBank::default();
    let (t, v) = healthy();
    set(&bank, t, v);
    let modbus_port = modbus_server(bank.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), modbus_port, broker.port);
    let csv = dir.path().join("healthy.csv");
    healthy_csv(&csv);

    let cfg_s = cfg.to_str().unwrap();
    let out = forewarn(&[
        "train",
        "--config",
        cfg_s,
        "--asset",
        "line1/pump1",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = dir.path().join("data/models/line1__pump1.json");
    let size = std::fs::metadata(&model).expect("model file written").len();
    assert!(size < 1 << 20, "model file of {size} bytes");

    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent.wait_for_log("model loaded", Duration::from_secs(10)).await;

    // The plant: healthy for 4 s, then the bearing heats at the demo's rate, compressed
    // 2x (32 °C in 10 s), crossing 80 °C after ~6 s of heating.
    let sim_bank = bank.clone();
    let sim = tokio::spawn(async move {
        let start = Instant::now();
        loop {
            let t = start.elapsed().as_secs_f64();
            let heat = ((t - 4.0) / 10.0).clamp(0.0, 1.0);
            let (temp, vib) = healthy();
            set(&sim_bank, temp + 32.0 * heat, vib + 3.3 * heat);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|m| m["rule"] == "bearing-overheat") {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((_, payload))) = tokio::time::timeout(left, alerts.recv()).await else {
            panic!("no rule alert in time; got {seen:?}\n{}", agent.log_text());
        };
        let msg: Value = serde_json::from_slice(&payload).expect("message is JSON");
        // Alerts only: the agent's status (birth, heartbeat) shares the topic tree.
        if msg.get("rule").is_some() {
            seen.push(msg);
        }
    }
    let first = &seen[0];
    assert_eq!(
        first["rule"],
        "model",
        "the model must alert first: {seen:#?}\n{}",
        agent.log_text()
    );
    assert_eq!(first["state"], "raised");
    assert_eq!(first["asset"], "line1/pump1");
    assert_eq!(first["severity"], "warning");
    assert_eq!(first["threshold"].as_f64(), Some(1.0));
    let score = first["score"].as_f64().expect("a score");
    assert!(score > 1.0, "{first}");
    // The sensors that contribute most, largest first; the main sensor is the first.
    let sensors = first["sensors"].as_array().expect("sensors");
    assert!(!sensors.is_empty() && sensors.len() <= 3, "{first}");
    assert_eq!(sensors[0]["name"], first["sensor"]);
    assert_eq!(sensors[0]["value"], first["value"]);
    let shares: Vec<f64> = sensors.iter().map(|s| s["contribution"].as_f64().unwrap()).collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]) && shares.iter().all(|c| (0.0..=1.0).contains(c)));
    assert_eq!(first["asset_path"], serde_json::json!(["line1/pump1"]));
    assert!(
        ["pump1.bearing_temp", "pump1.vibration"].contains(&first["sensor"].as_str().unwrap_or("")),
        "{first}"
    );
    let model_raised = seen
        .iter()
        .filter(|m| m["rule"] == "model" && m["state"] == "raised")
        .count();
    assert_eq!(model_raised, 1, "one fault, one model alert: {seen:#?}");
    assert!(seen
        .iter()
        .filter(|m| m["rule"] == "model")
        .all(|m| m["first_seen"] == first["first_seen"]
            && ["raised", "renotify"].contains(&m["state"].as_str().unwrap())));
    let rule_raised = &seen[seen.len() - 1];
    assert!(first["ts"].as_str() < rule_raised["ts"].as_str());

    // SIGHUP reloads the model. The open model alert carries over the reload: the fault
    // persists, so it is neither cleared nor raised again, only re-notified.
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    agent.wait_for_log("models reloaded", Duration::from_secs(10)).await;
    let reloaded_ms = forewarn::base::time::now_ms();
    let mut after = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    while let Ok(Some((_, payload))) =
        tokio::time::timeout(until.saturating_duration_since(Instant::now()), alerts.recv()).await
    {
        let msg: Value = serde_json::from_slice(&payload).unwrap();
        if msg["rule"] == "model" {
            after.push(msg);
        }
    }
    assert!(
        after
            .iter()
            .all(|m| m["state"] == "renotify" && m["first_seen"] == first["first_seen"]),
        "after SIGHUP: {after:#?}\n{}",
        agent.log_text()
    );
    let last = after.last().expect("renotified after the reload");
    assert!(forewarn::base::time::parse_time(last["ts"].as_str().unwrap()).unwrap() > reloaded_ms);
    sim.abort();
}

#[test]
fn train_rejects_a_csv_without_the_assets_sensors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1502, 1883);
    let csv = dir.path().join("h.csv");
    std::fs::write(&csv, "time,pump1.bearing_temp\n1700000000000,60\n").unwrap();
    let out = forewarn(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--asset",
        "line1/pump1",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no column for sensor \"pump1.vibration\""), "{err}");
    let out = forewarn(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--asset",
        "nope",
        "--csv",
        "x",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no asset \"nope\""));
}
