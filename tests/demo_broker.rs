//! `forewarn demo` on its embedded broker (rumqttd), as a newcomer runs it: the binary
//! prints the broker's and the web page's addresses; a client that subscribes after the
//! agent's birth still gets the retained `online` status; a persistent session keeps what
//! was published while its client was away; and the web page's address answers.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::subscribe_as;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `needle` in the file and returns the word that follows it.
fn word_after(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split(needle).nth(1) {
            let word = rest.split(|c: char| c.is_whitespace() || c == ',').next().unwrap_or("");
            return word.trim_end_matches('.').to_string();
        }
        assert!(Instant::now() < deadline, "the demo never printed {needle:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first message on `topic` for a fresh client, with its retain flag.
async fn first_message(port: u16, topic: &str) -> (bool, String) {
    let (client, mut events) = AsyncClient::new(MqttOptions::new("test-late-subscriber", "127.0.0.1", port), 16);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                return (p.retain, String::from_utf8_lossy(&p.payload).into_owned());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber: {e}"),
            Err(_) => panic!("nothing on {topic} within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_broker_keeps_the_retained_status_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["demo", "--duration", "60"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _demo = Demo { child };
    let broker: u16 = word_after(&log, "broker on 127.0.0.1:").parse().unwrap();
    let page = word_after(&log, "web page: ");
    assert!(page.starts_with("http://127.0.0.1:") && page.ends_with('/'), "{page}");

    // The agent's birth is published once, at its connection; this client comes later.
    word_after(&log, "http api");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (retained, status) = first_message(broker, "forewarn/demo-gw/status").await;
    assert!(retained, "the status is not retained: {status}");
    assert!(status.contains("\"state\":\"online\""), "{status}");

    // A persistent session: subscribed, away, and given what came in meanwhile.
    drop(subscribe_as(broker, "demo/test", "test-session", false).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (publisher, mut events) = AsyncClient::new(MqttOptions::new("test-publisher", "127.0.0.1", broker), 16);
    publisher
        .publish("demo/test", QoS::AtLeastOnce, false, "while away")
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("publish: {other:?}"),
        }
    }
    let mut back = subscribe_as(broker, "demo/test", "test-session", false).await;
    let got = tokio::time::timeout(Duration::from_secs(10), back.recv()).await;
    assert_eq!(got.ok().flatten().map(|m| m.1), Some(b"while away".to_vec()));

    let health = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("{page}healthz")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&health.stdout).contains("\"agent\":\"demo-gw\""));
}
