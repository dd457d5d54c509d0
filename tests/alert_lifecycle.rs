//! The alert lifecycle through the real agent and Mosquitto: a pump's alarm is folded
//! into its line's open incident (`updated`, with the pump in `children`), the line's
//! incident is re-notified while it lasts, and when the line clears with the pump still
//! hot the pump becomes an incident of its own. A short excursion under `min_duration`
//! raises nothing. Every message is checked against `schema/alert.schema.json`.

mod common;

use std::time::Duration;

use common::schema::validate;
use common::*;
use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/alert.schema.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_alarm_folds_into_the_parent_incident_and_is_released_after_it() {
    let broker = Mosquitto::start();
    let mut rx = subscribe(broker.port, "forewarn/+/alerts/#").await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
    let (bank, config) = two_pump_setup(dir.path(), &upstream).await;
    // line1 is pump 1's parent and watches pump 2's temperature itself; pump 1 must be hot
    // for 400 ms before it counts.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen(
            "id = \"line1/pump1\"\n",
            "id = \"line1/pump1\"\nparent = \"line1\"\n",
            1,
        )
        .replacen(
            "  severity = \"critical\"\n",
            "  severity = \"critical\"\n  min_duration = \"400ms\"\n",
            1,
        )
        + "\n[[asset]]\nid = \"line1\"\n  [[asset.rule]]\n  name = \"line-hot\"\n  sensor = \"pump2.bearing_temp\"\n  above = 80.0\n  renotify = \"1s\"\n";
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    agent.wait_for_log("agent started", Duration::from_secs(10)).await;
    let step = Duration::from_secs(10);

    // An excursion shorter than min_duration: nothing.
    set_pump_temp(&bank, 1, 85.0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    set_pump_temp(&bank, 1, 60.0);

    set_pump_temp(&bank, 2, 90.0);
    agent.wait_for_count("alert raised", 2, step).await; // line1 and line1/pump2
    set_pump_temp(&bank, 1, 86.0);
    agent.wait_for_count("alert updated", 1, step).await;
    agent.wait_for_count("alert renotified", 1, step).await;
    set_pump_temp(&bank, 2, 60.0);
    // line1 and pump 2 clear; pump 1, still hot, is raised on its own.
    agent.wait_for_count("alert raised", 3, step).await;
    set_pump_temp(&bank, 1, 60.0);
    agent.wait_for_count("alert cleared", 3, step).await;

    let alerts = collect_alerts(
        &mut rx,
        step,
        |got| got.iter().filter(|a| a["state"] == "cleared").count() >= 3,
        || agent.log_text(),
    )
    .await;
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    for a in &alerts {
        let mut errors = Vec::new();
        validate(&schema, a, "alert", &mut errors);
        assert!(errors.is_empty(), "{errors:#?}\n{a:#}");
    }
    let stream = |asset: &str| -> Vec<Value> { alerts.iter().filter(|a| a["asset"] == asset).cloned().collect() };
    let states = |msgs: &[Value]| -> Vec<String> {
        let mut s: Vec<String> = msgs.iter().map(|a| a["state"].as_str().unwrap().to_string()).collect();
        s.dedup();
        s
    };

    let line = stream("line1");
    assert_eq!(states(&line), ["raised", "updated", "renotify", "cleared"], "{line:#?}");
    let updated = line.iter().find(|a| a["state"] == "updated").unwrap();
    assert_eq!(updated["children"][0]["asset"], "line1/pump1");
    assert_eq!(updated["children"][0]["state"], "firing");
    let cleared = line.last().unwrap();
    assert_eq!(cleared["children"][0]["state"], "firing");

    let pump1 = stream("line1/pump1");
    assert_eq!(states(&pump1), ["raised", "cleared"], "{pump1:#?}");
    assert_eq!(pump1[0]["asset_path"], serde_json::json!(["line1", "line1/pump1"]));
    // The incident dates from when the pump got hot, while it was folded.
    assert_eq!(pump1[0]["first_seen"], updated["children"][0]["first_seen"]);
    assert_eq!(states(&stream("line1/pump2")), ["raised", "cleared"]);
}
