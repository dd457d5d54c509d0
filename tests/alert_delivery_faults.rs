//! Alert delivery under faults, against a real Mosquitto:
//!
//! (a) The broker is down while alerts of two assets are raised and cleared, the agent is
//!     killed with `kill -9` and restarted in between, then the broker comes back: every
//!     alert arrives, in order per asset, none lost, and the restart neither raises an
//!     open alert again nor forgets it. A real outage lasts minutes; here it is
//!     compressed to seconds: long enough for eight alerts, a kill and a restart, and for
//!     the restarted agent's reconnect backoff to grow over five failed attempts. The
//!     paths are the same as in a long outage (the backoff is capped at 30 s).
//! (b) A broker restart that loses its sessions: alerts published while the broker had
//!     stopped acknowledging are resent by the agent once a fresh broker is up.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// (asset, state) of alerts in sequence order.
fn by_seq(alerts: &[Value]) -> Vec<(u64, String, String)> {
    let mut v: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a["seq"].as_u64().unwrap_or(0),
                a["asset"].as_str().unwrap_or("").to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Each asset's states in arrival order (first arrival of each id).
fn states_of(alerts: &[Value], asset: &str) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| a["asset"] == asset)
        .map(|a| a["state"].as_str().unwrap_or("").to_string())
        .collect()
}

fn seqs_in_arrival_order(alerts: &[Value], asset: &str) -> Vec<u64> {
    alerts
        .iter()
        .filter(|a| a["asset"] == asset)
        .map(|a| a["seq"].as_u64().unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_kill9_delivers_every_alert_in_order() {
    let mut broker = Mosquitto::start_persistent();
    // A persistent subscriber session, so the broker queues what arrives while the
    // subscriber is away.
    drop(subscribe_as(broker.port, "forewarn/+/alerts/#", "fault-sub", false).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.stop_gracefully();

    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("broker = \"mqtt://127.0.0.1:{}\"", broker.port);
    let (bank, config) = two_pump_setup(dir.path(), &upstream).await;

    let mut agent = AgentProcess::start(&config, &dir.path().join("agent1.log"));
    agent.wait_for_log("agent started", Duration::from_secs(10)).await;
    let step = Duration::from_secs(10);
    set_pump_temp(&bank, 1, 85.0);
    agent.wait_for_count("alert raised", 1, step).await;
    set_pump_temp(&bank, 2, 86.0);
    agent.wait_for_count("alert raised", 2, step).await;
    set_pump_temp(&bank, 1, 70.0);
    agent.wait_for_count("alert cleared", 1, step).await;
    set_pump_temp(&bank, 1, 87.0);
    agent.wait_for_count("alert raised", 3, step).await;
    // Killed with both pumps in alarm; pump 2 cools while the agent is down.
    agent.kill9();
    set_pump_temp(&bank, 2, 65.0);

    let agent = AgentProcess::start(&config, &dir.path().join("agent2.log"));
    agent.wait_for_log("open alerts carried over", step).await;
    agent.wait_for_count("alert cleared", 1, step).await;
    set_pump_temp(&bank, 1, 71.0);
    agent.wait_for_count("alert cleared", 2, step).await;
    set_pump_temp(&bank, 2, 90.0);
    agent.wait_for_count("alert raised", 1, step).await;
    set_pump_temp(&bank, 2, 60.0);
    agent.wait_for_count("alert cleared", 3, step).await;
    agent
        .wait_for_count("upstream connection attempt failed", 5, Duration::from_secs(30))
        .await;
    assert!(
        agent.log_text().contains("upstream broker unreachable"),
        "the broker was down all along:\n{}",
        agent.log_text()
    );

    broker.restart();
    agent
        .wait_for_log("upstream broker connected", Duration::from_secs(60))
        .await;
    let mut rx = subscribe_as(broker.port, "forewarn/+/alerts/#", "fault-sub", false).await;
    let alerts = collect_alerts(
        &mut rx,
        Duration::from_secs(20),
        |got| got.len() >= 8,
        || format!("{}\n{}", agent.log_text(), broker.log_text()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut extra = Vec::new();
    while let Ok((_, p)) = rx.try_recv() {
        let v: Value = serde_json::from_slice(&p).unwrap();
        if !alerts.iter().any(|a| a["id"] == v["id"]) {
            extra.push(v);
        }
    }
    assert!(extra.is_empty(), "unexpected alerts: {extra:#?}");

    let s = |x: &str| x.to_string();
    let p1 = s("line1/pump1");
    let p2 = s("line1/pump2");
    assert_eq!(
        by_seq(&alerts),
        vec![
            (1, p1.clone(), s("raised")),
            (2, p2.clone(), s("raised")),
            (3, p1.clone(), s("cleared")),
            (4, p1.clone(), s("raised")),
            // After the restart: pump 2 cooled while the agent was down.
            (5, p2.clone(), s("cleared")),
            (6, p1.clone(), s("cleared")),
            (7, p2.clone(), s("raised")),
            (8, p2.clone(), s("cleared")),
        ]
    );
    for asset in ["line1/pump1", "line1/pump2"] {
        assert_eq!(states_of(&alerts, asset), ["raised", "cleared", "raised", "cleared"]);
        let seqs = seqs_in_arrival_order(&alerts, asset);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{asset} out of order: {seqs:?}");
    }
    // Each `cleared` closes the incident its `raised` opened, across the restart too.
    for (raised, cleared) in [(1, 3), (2, 5), (4, 6), (7, 8)] {
        let at = |seq: u64| alerts.iter().find(|a| a["seq"] == seq).unwrap();
        assert_eq!(at(cleared)["first_seen"], at(raised)["ts"], "seq {cleared}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_that_loses_sessions_gets_everything_unacknowledged_again() {
    let mut broker = Mosquitto::start();
    // The agent reaches the broker through a gate, so that it comes back only once the
    // test's subscriber has subscribed again.
    let gate = Gate::start(broker.port).await;
    let (mut rx, mut subacks) = subscribe_resilient(broker.port, "forewarn/#").await;

    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("broker = \"mqtt://127.0.0.1:{}\"", gate.port);
    let (bank, config) = two_pump_setup(dir.path(), &upstream).await;
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    let step = Duration::from_secs(10);

    set_pump_temp(&bank, 1, 85.0);
    agent.wait_for_log("alert acknowledged by the broker seq=1", step).await;

    // The broker stops reading: what the agent sends now is never acknowledged.
    broker.freeze();
    set_pump_temp(&bank, 1, 70.0);
    set_pump_temp(&bank, 2, 88.0);
    agent.wait_for_count("alert cleared", 1, step).await;
    agent.wait_for_count("alert raised", 2, step).await;
    set_pump_temp(&bank, 1, 90.0);
    agent.wait_for_count("alert raised", 3, step).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!agent.log_text().contains("acknowledged by the broker seq=2"));

    // A crash of the broker: its sessions and in-flight messages are gone.
    gate.close();
    broker.stop();
    broker.restart();
    let before = *subacks.borrow();
    tokio::time::timeout(step, subacks.wait_for(|n| *n > before))
        .await
        .expect("the subscriber is back")
        .unwrap();
    gate.open();

    agent
        .wait_for_log("upstream broker connected", Duration::from_secs(40))
        .await;
    let is_alert = |v: &Value| v.get("seq").is_some();
    let mut alerts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(2..=4).all(|seq| alerts.iter().any(|a: &Value| a["seq"] == seq)) {
        let (topic, payload) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("resend incomplete: {alerts:#?}\n{}", agent.log_text()))
            .unwrap();
        let v: Value = serde_json::from_slice(&payload).unwrap();
        if is_alert(&v) && topic.contains("/alerts/") {
            alerts.push(v);
        }
    }
    let resent: Vec<_> = by_seq(&alerts).into_iter().filter(|(seq, _, _)| *seq >= 2).collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        resent,
        vec![
            (2, s("line1/pump1"), s("cleared")),
            (3, s("line1/pump2"), s("raised")),
            (4, s("line1/pump1"), s("raised")),
        ]
    );
    agent.wait_for_log("alert acknowledged by the broker seq=4", step).await;
}
