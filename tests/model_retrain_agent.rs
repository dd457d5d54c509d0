//! Scheduled retraining in the running agent, with real parts (the binary, its store,
//! Mosquitto upstream): a model trained on the first regime of the history alarms on a
//! later regime that an operator labelled false-alarm; the agent's retraining (`retrain =
//! "2s"`) trains a candidate on the recent history through its own store handle, finds it
//! better on the labelled history, writes it as the next version (keeping the first) and
//! reloads the models; afterwards `eval --store` shows no alarm in the labelled window.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use forewarn::base::label::{LabelKind, NewLabel};
use forewarn::base::sample::{Quality, Sample};
use forewarn::detect::model::Model;
use forewarn::detect::versions;
use forewarn::store::{Store, StoreOptions};

const FIRST: i64 = 1200;
const OTHER: i64 = 600;
const BACK: i64 = 600;

fn config(dir: &Path, broker: u16) -> std::path::PathBuf {
    let text = format!(
        r#"
[agent]
id = "t"
data_dir = "{data}"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[[modbus]]
device = "d"
address = "127.0.0.1:1"
  [[modbus.register]]
  sensor = "a"
  kind = "holding"
  address = 0
  type = "u16"
  [[modbus.register]]
  sensor = "b"
  kind = "holding"
  address = 1
  type = "u16"
[[asset]]
id = "m1"
sensors = ["a", "b"]
  [asset.model]
  drift_noise = 0.0
  retrain = "2s"
  retrain_history = "2h"
"#,
        data = dir.join("data").display()
    );
    let path = dir.join("forewarn.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The history up to a minute ago, one vector a second: `b` follows `a`'s load, 1.5 higher
/// in the middle regime; that regime is labelled false-alarm.
fn write_history(dir: &Path, t0: i64) {
    let store = Store::open(&dir.join("data"), StoreOptions::default()).unwrap();
    let (a, b) = (store.sensor_id("a").unwrap(), store.sensor_id("b").unwrap());
    let mut rng = fastrand::Rng::with_seed(11);
    for chunk in (0..FIRST + OTHER + BACK).collect::<Vec<_>>().chunks(200) {
        let mut batch = Vec::new();
        for &t in chunk {
            let load = (t as f64 / 40.0).sin();
            let shift = if (FIRST..FIRST + OTHER).contains(&t) { 1.5 } else { 0.0 };
            let ts_ms = t0 + t * 1000;
            for (sensor, value) in [(a, load + 0.05 * rng.f64()), (b, 2.0 * load + shift + 0.05 * rng.f64())] {
                batch.push(Sample {
                    sensor,
                    ts_ms,
                    value,
                    quality: Quality::Good,
                });
            }
        }
        store.append(&batch);
    }
    store.flush().unwrap();
    let label = NewLabel {
        asset: "m1".into(),
        from_ms: t0 + FIRST * 1000,
        to_ms: t0 + (FIRST + OTHER) * 1000,
        kind: LabelKind::FalseAlarm,
        note: Some("new operating point".into()),
        author: "op".into(),
    };
    store.add_label(label, t0).unwrap();
}

fn forewarn(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Alarmed rows inside the label's span, from `forewarn eval --store`.
fn alarmed_in_label(cfg: &str) -> usize {
    let eval = forewarn(&["eval", "--store", "-c", cfg, "--asset", "m1"]);
    let line = eval
        .lines()
        .find(|l| l.starts_with("label "))
        .unwrap_or_else(|| panic!("{eval}"));
    let alarmed = line.trim_end_matches(" alarmed").rsplit(' ').next().unwrap();
    alarmed.parse().unwrap_or_else(|_| panic!("{eval}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_retrains_promotes_a_better_model_and_reloads_it() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), broker.port);
    let cfg_s = cfg.to_str().unwrap();
    let t0 = forewarn::base::time::now_ms() - (FIRST + OTHER + BACK + 60) * 1000;
    write_history(dir.path(), t0);
    let out = forewarn(&[
        "train",
        "-c",
        cfg_s,
        "--asset",
        "m1",
        "--to",
        &(t0 + FIRST * 1000 - 1).to_string(),
    ]);
    assert!(out.contains("version 1"), "{out}");
    assert!(
        alarmed_in_label(cfg_s) > 500,
        "the first model alarms on the labelled regime"
    );

    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("scheduled retraining", Duration::from_secs(20))
        .await;
    agent
        .wait_for_log("retrained model promoted", Duration::from_secs(60))
        .await;
    agent.wait_for_log("models reloaded", Duration::from_secs(20)).await;
    agent.terminate();
    let log = agent.log_text();
    assert!(!log.contains("kept as shadow"), "{log}");
    if let Some(line) = log.lines().find(|l| l.contains("retrained model promoted")) {
        println!("{line}");
    }

    let current = dir.path().join("data/models/m1.json");
    assert!(Model::load(&current).unwrap().version >= 2);
    let first = Model::load(&versions::version_path(&current, 1)).unwrap();
    assert_eq!(first.version, 1, "the first model is kept for a rollback");
    assert_eq!(
        alarmed_in_label(cfg_s),
        0,
        "the retrained model learned the labelled regime"
    );
}
