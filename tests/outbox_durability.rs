//! An alert raised while the broker is down survives `kill -9` of the agent in the
//! outbox and is delivered once the broker is back; the restarted agent still knows the
//! alert is open and clears it.

mod common;

use std::time::Duration;

use common::*;
use forewarn::config::{DataType, RegisterKind, WordOrder};
use forewarn::demo::modbus_server::RegisterBank;
use forewarn::source::modbus::decode::encode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_raised_during_outage_survives_kill9_and_arrives() {
    let mut broker = Mosquitto::start_persistent();
    // A persistent subscriber session, so the broker queues what arrives while the
    // subscriber is away.
    drop(subscribe_as(broker.port, "forewarn/+/alerts/#", "outage-sub", false).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.stop_gracefully();

    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &encode(60.0, DataType::F32, WordOrder::ABCD));
    bank.set(RegisterKind::Input, 10, &[100]);
    let modbus_port = modbus_server(bank.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forewarn.toml");
    std::fs::write(
        &config,
        pump_config(&dir.path().join("data"), modbus_port, broker.port, 100, 200),
    )
    .unwrap();

    let mut agent = AgentProcess::start(&config, &dir.path().join("agent1.log"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    bank.set(RegisterKind::Holding, 0, &encode(88.0, DataType::F32, WordOrder::ABCD));
    agent.wait_for_log("alert raised", Duration::from_secs(10)).await;
    bank.set(RegisterKind::Holding, 0, &encode(60.0, DataType::F32, WordOrder::ABCD));
    agent.kill9();

    let agent = AgentProcess::start(&config, &dir.path().join("agent2.log"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    broker.restart();
    agent
        .wait_for_log("upstream broker connected", Duration::from_secs(40))
        .await;

    let mut rx = subscribe_as(broker.port, "forewarn/+/alerts/#", "outage-sub", false).await;
    let (topic, payload) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the outbox was not delivered:\n{}\n{}",
                agent.log_text(),
                broker.log_text()
            )
        })
        .unwrap();
    let msg: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(topic, "forewarn/gw-test/alerts/line1/pump1");
    assert_eq!(
        (msg["state"].as_str(), msg["seq"].as_u64(), msg["value"].as_f64()),
        (Some("raised"), Some(1), Some(88.0))
    );
    // The restarted agent remembers the open alert: the bearing cooled while it was
    // down, so the same incident is cleared (not forgotten, not raised again).
    let (_, payload) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the cleared alert")
        .unwrap();
    let cleared: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        (cleared["state"].as_str(), cleared["seq"].as_u64()),
        (Some("cleared"), Some(2))
    );
    assert_eq!(cleared["first_seen"], msg["ts"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(rx.try_recv().is_err(), "one incident, two messages");
}
