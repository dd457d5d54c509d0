//! At-least-once from broker to disk: 100,000 QoS 1 messages are published to a real
//! Mosquitto while the agent is killed with `kill -9` several times and restarted. The
//! agent acknowledges a message only once its samples are durable and keeps a persistent
//! session, so afterwards every message's sample is in the store.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use forewarn::store::{Store, StoreOptions};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

const MESSAGES: u64 = 100_000;
const MACHINES: u64 = 10;
const T0: i64 = 1_700_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_lost_across_kill9() {
    // The broker queues for the absent agent, and lets enough messages be in flight for
    // acknowledgements that wait for a flush.
    let broker = Mosquitto::start_persistent_with("max_queued_messages 0\nmax_inflight_messages 1000\n");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[agent]
id = "gw-alo"
data_dir = "{}"
[storage]
# A long regular flush: only the group commit (ack_delay) makes acks possible quickly, so
# an acknowledgement sent before its flush would show up as lost messages below.
flush_interval = "2s"
ack_delay = "5ms"
[upstream]
broker = "mqtt://127.0.0.1:{port}"
[http]
enabled = false
[[mqtt]]
broker = "mqtt://127.0.0.1:{port}"
client_id = "alo-agent"
qos = 1
clean_session = false
  [[mqtt.subscribe]]
  topic = "plant/{{line}}/{{machine}}/telemetry"
  format = "json"
  sensor = "{{machine}}.{{field}}"
  timestamp = "ts"
"#,
            data.display(),
            port = broker.port
        ),
    )
    .unwrap();

    // First start creates the persistent session and its subscription.
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent0.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let port = broker.port;
    let publisher = tokio::spawn(async move {
        let mut options = MqttOptions::new("alo-publisher", "127.0.0.1", port);
        options.set_inflight(500);
        let (client, mut events) = AsyncClient::new(options, 1000);
        let sender = tokio::spawn(async move {
            for i in 0..MESSAGES {
                let payload = format!(r#"{{"ts": {}, "v": {i}}}"#, T0 + i as i64);
                client
                    .publish(
                        format!("plant/l1/m{}/telemetry", i % MACHINES),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .unwrap();
            }
            client
        });
        let mut acked = 0;
        while acked < MESSAGES {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(Event::Outgoing(Outgoing::Publish(_))) | Ok(_) => {}
                Err(e) => panic!("publisher lost the broker: {e}"),
            }
        }
        drop(sender.await);
    });

    // Kill the agent at random points while the stream flows, and start it again.
    for round in 1..=4 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(700..1800))).await;
        agent.kill9();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..400))).await;
        agent = AgentProcess::start(&cfg, &dir.path().join(format!("agent{round}.log")));
    }
    tokio::time::timeout(Duration::from_secs(240), publisher)
        .await
        .expect("publisher finished")
        .unwrap();

    // Let the last agent drain what the broker queued, then check the store.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut missing;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        agent.kill9();
        missing = missing_messages(&data);
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        agent = AgentProcess::start(&cfg, &dir.path().join("agent-drain.log"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(
        missing.is_empty(),
        "{} of {MESSAGES} messages lost, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}

fn missing_messages(data: &std::path::Path) -> Vec<u64> {
    let store = Store::open(data, StoreOptions::default()).expect("store opens after kill -9");
    let mut seen: HashSet<u64> = HashSet::new();
    for m in 0..MACHINES {
        let Some(id) = store.lookup_sensor(&format!("m{m}.v")).unwrap() else {
            continue;
        };
        for s in store.read(id, T0, T0 + MESSAGES as i64).unwrap() {
            let i = (s.ts_ms - T0) as u64;
            // The value is the message number: a sample at the wrong time would show here.
            assert_eq!(s.value, i as f64);
            assert_eq!(i % MACHINES, m);
            seen.insert(i);
        }
    }
    (0..MESSAGES).filter(|i| !seen.contains(i)).collect()
}
