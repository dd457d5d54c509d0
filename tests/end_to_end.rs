//! The whole data flow with real parts: a tokio-modbus server, the agent as a child
//! process, a Mosquitto broker and a subscriber. Driving the register over the limit and
//! back must produce exactly one `raised` and one `cleared` alert.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use forewarn::config::{DataType, RegisterKind, WordOrder};
use forewarn::demo::modbus_server::RegisterBank;
use forewarn::source::modbus::decode::encode;
use serde_json::Value;

fn set_temp(bank: &RegisterBank, t: f64) {
    bank.set(RegisterKind::Holding, 0, &encode(t, DataType::F32, WordOrder::ABCD));
}

async fn next_alert(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    within: Duration,
) -> (String, Value) {
    let (topic, payload) = tokio::time::timeout(within, rx.recv())
        .await
        .expect("an alert in time")
        .expect("subscriber alive");
    (topic, serde_json::from_slice(&payload).expect("alert is JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_raise_and_one_clear_reach_the_broker() {
    let broker = Mosquitto::start();
    let mut alerts = subscribe(broker.port, "forewarn/+/alerts/#").await;

    let bank = RegisterBank::default();
    set_temp(&bank, 60.0);
    bank.set(RegisterKind::Input, 10, &[120]);
    let modbus_port = modbus_server(bank.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forewarn.toml");
    std::fs::write(
        &config,
        pump_config(&dir.path().join("data"), modbus_port, broker.port, 100, 200),
    )
    .unwrap();
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));

    tokio::time::sleep(Duration::from_millis(800)).await;
    set_temp(&bank, 85.0);
    let (topic, raised) = next_alert(&mut alerts, Duration::from_secs(10)).await;
    // Hovering between the clear level and the limit must not clear or re-raise.
    for t in [81.0, 79.0, 90.0, 76.0, 84.0] {
        set_temp(&bank, t);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    set_temp(&bank, 70.0);
    let (topic2, cleared) = next_alert(&mut alerts, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let extra = alerts.try_recv().ok();
    assert!(
        extra.is_none(),
        "unexpected extra alert: {extra:?}\n{}",
        agent.log_text()
    );

    assert_eq!(topic, "forewarn/gw-test/alerts/line1/pump1");
    assert_eq!(topic2, topic);
    for (msg, state) in [(&raised, "raised"), (&cleared, "cleared")] {
        assert_eq!(msg["state"], state);
        assert_eq!(msg["agent"], "gw-test");
        assert_eq!(msg["asset"], "line1/pump1");
        assert_eq!(msg["rule"], "bearing-overheat");
        assert_eq!(msg["severity"], "critical");
        assert_eq!(msg["sensor"], "pump1.bearing_temp");
        let ts = msg["ts"].as_str().expect("ts is a string");
        assert!(
            humantime::parse_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "ts {ts} is RFC 3339 UTC"
        );
        assert!(msg["id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    assert_eq!(raised["value"].as_f64(), Some(85.0));
    assert_eq!(cleared["value"].as_f64(), Some(70.0));
    assert_eq!(raised["threshold"].as_f64(), Some(80.0));
    assert_eq!(cleared["first_seen"], raised["ts"]);
    let ids: HashSet<_> = [&raised["id"], &cleared["id"]].into_iter().collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(cleared["seq"].as_u64(), raised["seq"].as_u64().map(|s| s + 1));
}
