//! Labels through the real agent, Mosquitto and a Modbus server: a maintenance window set
//! with `forewarn label` (through the agent's HTTP API) silences one pump's overheat
//! while the other pump raises; when the window ends by the clock, the pump still hot
//! raises. The label is announced as a `labelled` event on the alert topic, a removal as
//! `unlabelled`, and every message matches `schema/alert.schema.json`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::schema::validate;
use common::*;
use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/alert.schema.json");

/// `forewarn ARGS`: (success, stdout, stderr).
fn forewarn(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .output()
        .expect("run forewarn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn healthz(port: u16) -> Value {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("http://127.0.0.1:{port}/healthz")])
        .output()
        .expect("curl must be installed");
    serde_json::from_slice(&out.stdout).expect("healthz is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_silences_its_pump_until_it_ends() {
    let broker = Mosquitto::start();
    let mut rx = subscribe(broker.port, "forewarn/+/alerts/#").await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
    let (bank, config) = two_pump_setup(dir.path(), &upstream).await;
    let http = free_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[http]\nenabled = false\n",
        &format!("[http]\nlisten = \"127.0.0.1:{http}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    agent.wait_for_log("agent started", Duration::from_secs(10)).await;
    wait_for_port(http, Duration::from_secs(10));
    let step = Duration::from_secs(10);
    let cfg = config.to_str().unwrap();

    // A window from a moment ago to 5 s ahead, set through the running agent.
    let (from, to) = (now_ms() - 1_000, now_ms() + 5_000);
    let (ok, out, err) = forewarn(&[
        "label",
        "--config",
        cfg,
        "--asset",
        "line1/pump1",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--as",
        "maintenance",
        "--note",
        "seal change",
        "--author",
        "anna",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("label ") && out.contains("maintenance of line1/pump1"),
        "{out}"
    );
    agent.wait_for_log("maintenance began", step).await;

    set_pump_temp(&bank, 1, 90.0);
    set_pump_temp(&bank, 2, 90.0);
    agent.wait_for_count("alert raised", 1, step).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(now_ms() < to, "the test was too slow to see the window");
    assert_eq!(
        agent.log_text().matches("alert raised").count(),
        1,
        "only pump 2 raised"
    );
    let suppressed = healthz(http)["alarms_suppressed"].as_u64().unwrap_or(0);
    assert!(suppressed > 0, "suppressed observations are counted");

    // The window ends by the clock; pump 1 is still hot and raises now.
    agent.wait_for_log("maintenance ended", step).await;
    agent.wait_for_count("alert raised", 2, step).await;

    // A label made by mistake, taken back over the API: announced as `unlabelled`.
    let (ok, out, err) = forewarn(&[
        "label",
        "--config",
        cfg,
        "--asset",
        "line1/pump2",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-02T00:00:00Z",
        "--as",
        "false-alarm",
    ]);
    assert!(ok, "{err}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let (ok, out, err) = forewarn(&["label", "--config", cfg, "--remove", &id]);
    assert!(ok && out.contains(&format!("label {id} removed")), "{out}{err}");
    let (ok, _, err) = forewarn(&["label", "--config", cfg, "--remove", &id]);
    assert!(!ok && err.contains("no such label"), "{err}");

    let msgs = collect_alerts(
        &mut rx,
        step,
        |got| {
            got.iter().any(|m| m["event"] == "unlabelled")
                && got
                    .iter()
                    .any(|m| m["asset"] == "line1/pump1" && m["state"] == "raised")
        },
        || agent.log_text(),
    )
    .await;
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    for m in &msgs {
        let mut errors = Vec::new();
        validate(&schema, m, "message", &mut errors);
        assert!(errors.is_empty(), "{errors:#?}\n{m:#}");
    }
    let labelled: Vec<&Value> = msgs.iter().filter(|m| m["event"] == "labelled").collect();
    let window = labelled
        .iter()
        .find(|m| m["label"] == "maintenance")
        .expect("the window is announced");
    assert_eq!(window["asset"], "line1/pump1");
    assert_eq!(
        (window["author"].as_str(), window["note"].as_str()),
        (Some("anna"), Some("seal change"))
    );
    assert_eq!(window["model_version"], Value::Null, "pump 1 has no model");
    let raised: Vec<&Value> = msgs.iter().filter(|m| m["state"] == "raised").collect();
    assert_eq!(raised.len(), 2, "{raised:#?}");
    assert_eq!(raised[0]["asset"], "line1/pump2");
    assert_eq!(raised[1]["asset"], "line1/pump1");
    assert!(raised[1].get("model_version").is_none(), "a rule names no model");
    let unlabelled = msgs.iter().find(|m| m["event"] == "unlabelled").unwrap();
    assert_eq!(
        (unlabelled["label_id"].to_string(), unlabelled["label"].as_str()),
        (id, Some("false-alarm"))
    );
}
