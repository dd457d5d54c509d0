//! MQTT ingestion against a real Mosquitto: the README's example, topic templates, bad
//! input counted without losing good readings, and a broker restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use forewarn::http::{get, Remote};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;

/// The README's `[[mqtt]]` example, pointed at the test broker.
fn config(data: &Path, broker: u16, http: u16, extra_subscriptions: &str) -> String {
    format!(
        r#"
[agent]
id = "gw-01"
data_dir = "{data}"
[storage]
flush_interval = "100ms"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[http]
listen = "127.0.0.1:{http}"

[[mqtt]]
broker = "mqtt://127.0.0.1:{broker}"
client_id = "forewarn-gw-01-in"
qos = 1
clean_session = false

  [[mqtt.subscribe]]
  topic = "plant/{{line}}/{{machine}}/telemetry"   # template; subscribes to plant/+/+/telemetry
  format = "json"
  sensor = "{{machine}}.{{field}}"                   # one sensor per numeric field
  timestamp = "ts"                               # epoch ms; arrival time when absent
{extra_subscriptions}
"#,
        data = data.display()
    )
}

/// A publisher that waits for the broker's PUBACKs.
struct Publisher {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn connect(port: u16) -> Publisher {
        let (client, mut events) = AsyncClient::new(
            MqttOptions::new(format!("pub-{}", free_port()), "127.0.0.1", port),
            1000,
        );
        let task = tokio::spawn(async move {
            loop {
                if events.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Publisher { client, task }
    }

    async fn send(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn api(http: u16, target: &str) -> String {
    match get(&format!("127.0.0.1:{http}"), target).unwrap() {
        Remote::Reply { status: 200, body } => String::from_utf8(body).unwrap(),
        other => panic!("{target}: {}", matches!(other, Remote::NotRunning)),
    }
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_example_bad_input_and_broker_restart() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    let extra = r#"
  [[mqtt.subscribe]]
  topic = "sensors/{room}/temperature"
  format = "number"
"#;
    std::fs::write(&cfg, config(&dir.path().join("data"), broker.port, http, extra)).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let publisher = Publisher::connect(broker.port).await;
    publisher
        .send(
            "plant/line1/pump7/telemetry",
            r#"{"ts": 1700000000123, "temp": 21.5, "vib": 0.031}"#,
        )
        .await;
    let future = forewarn::base::time::now_ms() + 86_400_000;
    // Bad input, each next to good readings that must survive.
    publisher.send("plant/line1/pump8/telemetry", "{not json").await;
    publisher
        .send(
            "plant/line1/pump8/telemetry",
            format!(r#"{{"ts": {future}, "temp": 99}}"#),
        )
        .await;
    publisher
        .send(
            "plant/line1/pump8/telemetry",
            r#"{"ts": 1700000001000, "temp": 22.5, "status": "ok"}"#,
        )
        .await;
    publisher.send("sensors/office/temperature", "NaN").await;
    publisher.send("sensors/office/temperature", "19.25").await;

    wait_until("readings stored", Duration::from_secs(10), || {
        api(http, "/query?sensor=*&format=csv").lines().count() >= 5
    })
    .await;
    let rows = api(http, "/query?sensor=pump7.*");
    let got: Vec<Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        got,
        vec![
            serde_json::json!({"sensor": "pump7.temp", "ts": "2023-11-14T22:13:20.123Z", "value": 21.5}),
            serde_json::json!({"sensor": "pump7.vib", "ts": "2023-11-14T22:13:20.123Z", "value": 0.031}),
        ]
    );
    let pump8 = api(http, "/query?sensor=pump8.*");
    assert_eq!(pump8.lines().count(), 1, "only the good reading of pump8: {pump8}");
    assert!(pump8.contains("22.5"));
    assert!(api(http, "/query?sensor=sensors.office.*").contains("\"value\":19.25"));

    let health: Value = serde_json::from_str(&api(http, "/healthz")).unwrap();
    let plant = &health["mqtt"]["forewarn-gw-01-in:plant/{line}/{machine}/telemetry"];
    assert_eq!(
        (
            plant["messages"].as_u64(),
            plant["malformed"].as_u64(),
            plant["future"].as_u64()
        ),
        (Some(4), Some(1), Some(1)),
        "{health}"
    );
    let sensors = &health["mqtt"]["forewarn-gw-01-in:sensors/{room}/temperature"];
    assert_eq!(
        (sensors["messages"].as_u64(), sensors["non_finite"].as_u64()),
        (Some(2), Some(1)),
        "{health}"
    );

    // A broker restart that loses every session: the agent reconnects and subscribes again.
    broker.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.restart();
    let publisher = Publisher::connect(broker.port).await;
    wait_until("resubscribed", Duration::from_secs(40), || {
        agent.log_text().matches("mqtt input connected").count() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher
        .send("plant/line2/fan1/telemetry", r#"{"ts": 1700000002000, "rpm": 1450}"#)
        .await;
    wait_until("message after restart", Duration::from_secs(10), || {
        api(http, "/query?sensor=fan1.rpm").contains("1450")
    })
    .await;
    let connects = agent.log_text().matches("mqtt input connected").count();
    assert!(connects <= 4, "reconnect storm: {connects} connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_from_an_old_session_are_counted_as_unknown() {
    let broker = Mosquitto::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    // First the config subscribes to `legacy/#` as well; the broker keeps that session.
    let legacy = "\n  [[mqtt.subscribe]]\n  topic = \"legacy/{name}\"\n  format = \"number\"\n";
    std::fs::write(&cfg, config(&dir.path().join("data"), broker.port, http, legacy)).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent1.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(agent);
    // The new config no longer has it, but the broker still delivers it.
    std::fs::write(&cfg, config(&dir.path().join("data"), broker.port, http, "")).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent2.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    let publisher = Publisher::connect(broker.port).await;
    publisher.send("legacy/x", "1").await;
    publisher.send("plant/l/m/telemetry", r#"{"a": 1}"#).await;
    wait_until("unknown topic counted", Duration::from_secs(10), || {
        let h: Value = serde_json::from_str(&api(http, "/healthz")).unwrap();
        h["mqtt"]["forewarn-gw-01-in:<no subscription>"]["unknown_topic"].as_u64() == Some(1)
    })
    .await;
    wait_until("good message stored", Duration::from_secs(10), || {
        api(http, "/query?sensor=m.a").contains("\"value\":1")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_b_and_influx_payloads_through_the_broker() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    let extra = r#"
  [[mqtt.subscribe]]
  topic = "spBv1.0/#"
  format = "sparkplug"                 # sensors named {node}.{device}.{metric}
  [[mqtt.subscribe]]
  topic = "telegraf/{host}"
  format = "influx"
  sensor = "{host}.{measurement}.{field}"
"#;
    std::fs::write(&cfg, config(&dir.path().join("data"), broker.port, http, extra)).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    let publisher = Publisher::connect(broker.port).await;
    // Birth certificates first: the DDATA names its metric only by alias.
    for file in [
        "spBv1.0__plant1__NBIRTH__edge1.bin",
        "spBv1.0__plant1__DBIRTH__edge1__pump1.bin",
        "spBv1.0__plant1__DDATA__edge1__pump1.bin",
    ] {
        let topic = file.trim_end_matches(".bin").replace("__", "/");
        publisher
            .send(&topic, std::fs::read(format!("{corpus}/sparkplug/{file}")).unwrap())
            .await;
    }
    publisher
        .send(
            "telegraf/gw7",
            std::fs::read(format!("{corpus}/influx/plant_sensors_crlf.txt")).unwrap(),
        )
        .await;

    wait_until("sparkplug metrics stored", Duration::from_secs(10), || {
        api(http, "/query?sensor=edge1.pump1.Pump_Speed").lines().count() == 2
    })
    .await;
    let speed = api(http, "/query?sensor=edge1.pump1.Pump_Speed");
    assert!(
        speed.contains("\"value\":1450") && speed.contains("\"value\":1462.5"),
        "{speed}"
    );
    assert!(api(http, "/query?sensor=edge1.pump1.Pump_Fault_Code").contains("\"value\":-1"));
    wait_until("influx fields stored", Duration::from_secs(10), || {
        api(http, "/query?sensor=gw7.temperature.value").contains("\"value\":21.5")
    })
    .await;
    assert!(api(http, "/query?sensor=gw7.pump_status.rpm").contains("\"value\":1450"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_names_and_counts_and_early_times_are_bounded() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    let extra = "\n  [[mqtt.subscribe]]\n  topic = \"sensors/{room}/temperature\"\n  format = \"number\"\n";
    let text = config(&dir.path().join("data"), broker.port, http, extra).replacen(
        "clean_session = false\n",
        "clean_session = false\nmax_sensors = 3\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let publisher = Publisher::connect(broker.port).await;
    // One millisecond before 2000-01-01, in both spellings: refused.
    publisher
        .send("plant/l1/pump1/telemetry", r#"{"ts": 946684799999, "temp": 1}"#)
        .await;
    publisher
        .send(
            "plant/l1/pump1/telemetry",
            r#"{"ts": "1999-12-31T23:59:59.999Z", "temp": 2}"#,
        )
        .await;
    // A 300-byte name is refused; so is a fourth sensor.
    let long = format!("sensors/{}/temperature", "r".repeat(300));
    publisher.send(&long, "20").await;
    for room in ["a", "b", "c", "d"] {
        publisher.send(&format!("sensors/{room}/temperature"), "21").await;
    }
    // A sensor the input already created still arrives.
    publisher.send("sensors/a/temperature", "22.5").await;

    wait_until("the known sensor's second reading", Duration::from_secs(10), || {
        api(http, "/query?sensor=sensors.a.temperature").contains("22.5")
    })
    .await;
    let all = api(http, "/query?sensor=*&format=csv");
    for room in ["a", "b", "c"] {
        assert!(all.contains(&format!("sensors.{room}.temperature")), "{all}");
    }
    assert!(
        !all.contains("sensors.d.") && !all.contains("rrrr") && !all.contains("pump1"),
        "{all}"
    );

    let health: Value = serde_json::from_str(&api(http, "/healthz")).unwrap();
    let plant = &health["mqtt"]["forewarn-gw-01-in:plant/{line}/{machine}/telemetry"];
    assert_eq!(plant["past"].as_u64(), Some(2), "{health}");
    let rooms = &health["mqtt"]["forewarn-gw-01-in:sensors/{room}/temperature"];
    assert_eq!(
        (rooms["sensor_limit"].as_u64(), rooms["samples"].as_u64()),
        (Some(2), Some(4)),
        "{health}"
    );
    let log = agent.log_text();
    assert!(
        log.contains("sensors/d/temperature") && log.contains("max_sensors = 3"),
        "{log}"
    );
    assert!(log.contains("time before 2000-01-01"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_millisecond_lines_collapse_visibly_and_bad_lines_are_logged() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let cfg = dir.path().join("forewarn.toml");
    let extra = r#"
  [[mqtt.subscribe]]
  topic = "telegraf/{host}"
  format = "influx"
  sensor = "{host}.{measurement}.{field}"
"#;
    std::fs::write(&cfg, config(&dir.path().join("data"), broker.port, http, extra)).unwrap();
    let agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let publisher = Publisher::connect(broker.port).await;
    // Three lines 100 ns apart fall on one millisecond: one stored sample, the last line's,
    // and two counted as collapsed. A malformed line and a string field are logged.
    let payload = "m v=1 1700000000000000000\n\
                   m v=2 1700000000000000100\n\
                   m v=3 1700000000000000200\n\
                   m v=oops 1700000000001000000\n\
                   m v=4,state=\"ok\" 1700000000002000000\n";
    publisher.send("telegraf/gw1", payload).await;
    wait_until("the line after the bad one", Duration::from_secs(10), || {
        api(http, "/query?sensor=gw1.m.v").lines().count() == 2
    })
    .await;
    let rows: Vec<(String, f64)> = api(http, "/query?sensor=gw1.m.v")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["ts"].as_str().unwrap_or_default().to_owned(),
                v["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    let want = [("2023-11-14T22:13:20", 3.0), ("2023-11-14T22:13:20.002Z", 4.0)];
    assert_eq!(rows.len(), 2, "{rows:?}");
    for ((ts, value), (want_ts, want_value)) in rows.iter().zip(want) {
        assert!(ts.starts_with(want_ts) && *value == want_value, "{rows:?}");
    }
    let health: Value = serde_json::from_str(&api(http, "/healthz")).unwrap();
    let sub = &health["mqtt"]["forewarn-gw-01-in:telegraf/{host}"];
    let got = ["samples", "collapsed", "malformed", "non_numeric"].map(|k| sub[k].as_u64());
    assert_eq!(got, [Some(2), Some(2), Some(1), Some(1)], "{health}");
    let log = agent.log_text();
    assert!(
        log.contains("m v=oops 1700000000001000000") && log.contains("telegraf/gw1"),
        "{log}"
    );
    assert!(
        log.contains("sensor=gw1.m.v") && log.contains("same millisecond"),
        "{log}"
    );
}
