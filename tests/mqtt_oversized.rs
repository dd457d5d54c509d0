//! One message larger than `max_payload` among good ones, against a real Mosquitto with a
//! persistent QoS 1 session: the large message is acknowledged and counted once as
//! `oversized`, the connection stays up (no reconnect loop on a message the broker would
//! redeliver forever), and every good message after it is stored.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use forewarn::http::{get, Remote};
use forewarn::store::{Store, StoreOptions};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

const GOOD: u64 = 5_000;
const T0: i64 = 1_700_000_000_000;
const SUBSCRIPTION: &str = "big-agent:plant/{machine}/telemetry";

fn config(data: &Path, broker: u16, http: u16) -> String {
    format!(
        r#"
[agent]
id = "gw-big"
data_dir = "{data}"
[storage]
flush_interval = "100ms"
ack_delay = "5ms"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[http]
listen = "127.0.0.1:{http}"
{input}"#,
        data = data.display(),
        input = json_input("big-agent", broker)
    )
}

fn health(http: u16) -> Value {
    match get(&format!("127.0.0.1:{http}"), "/healthz") {
        Ok(Remote::Reply { status: 200, body }) => serde_json::from_slice(&body).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Publishes the 2 MiB message first, then the good ones, each acknowledged by the broker.
async fn publish_all(port: u16) {
    let mut options = MqttOptions::new("big-publisher", "127.0.0.1", port);
    options.set_max_packet_size(4 << 20, 4 << 20);
    options.set_inflight(200);
    let (client, mut events) = AsyncClient::new(options, 1000);
    let sender = tokio::spawn(async move {
        // Valid JSON, so only its size can be the reason it is not stored.
        let big = format!(r#"{{"ts": {T0}, "v": -1, "pad": "{}"}}"#, "x".repeat(2 << 20));
        client
            .publish("plant/m1/telemetry", QoS::AtLeastOnce, false, big)
            .await
            .unwrap();
        for i in 0..GOOD {
            let payload = format!(r#"{{"ts": {}, "v": {i}}}"#, T0 + 1 + i as i64);
            client
                .publish("plant/m1/telemetry", QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < GOOD + 1 {
        match events.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("publisher lost the broker: {e}"),
        }
    }
    drop(sender.await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_acknowledged_counted_and_skipped() {
    // The broker queues without limit, so nothing is dropped on its side.
    let broker = Mosquitto::start_persistent_with("max_queued_messages 0\nmax_inflight_messages 100\n");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&data, broker.port, http)).unwrap();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    tokio::time::timeout(Duration::from_secs(60), publish_all(broker.port))
        .await
        .expect("the broker took every message");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(http);
        if h["samples_stored"].as_u64() >= Some(GOOD) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good samples not stored: /healthz {h}\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let h = health(http);
    assert_eq!(h["mqtt"][SUBSCRIPTION]["oversized"], 1, "{h}");
    let log = agent.log_text();
    assert_eq!(
        log.matches("mqtt input connected").count(),
        1,
        "the input reconnected:\n{log}"
    );
    assert!(log.contains("plant/m1/telemetry"), "the topic is logged:\n{log}");
    agent.kill9();

    let store = Store::open(&data, StoreOptions::default()).unwrap();
    let id = store.lookup_sensor("m1.v").unwrap().expect("sensor m1.v");
    let samples = store.read(id, T0, T0 + GOOD as i64 + 1).unwrap();
    let seen: HashSet<i64> = samples.iter().map(|s| s.ts_ms).collect();
    assert!(!seen.contains(&T0), "the oversized message was stored");
    let missing: Vec<u64> = (0..GOOD).filter(|i| !seen.contains(&(T0 + 1 + *i as i64))).collect();
    assert!(
        missing.is_empty(),
        "{} of {GOOD} good messages missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
