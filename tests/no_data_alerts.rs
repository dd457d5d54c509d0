//! Silent sensors, with real parts (the agent as a child process, Mosquitto, a tokio-modbus
//! server): a device that stops answering, or an MQTT sensor whose publisher goes quiet,
//! raises the asset's `no-data` alert naming the silent sensors, and clears it when the
//! readings come back. Rules on MQTT sensors raise and clear like rules on registers.

mod common;

use std::time::Duration;

use common::*;
use forewarn::config::RegisterKind;
use forewarn::demo::modbus_server::{Behaviour, RegisterBank};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;

/// The next alert of `rule` in `state` on the subscription (others are skipped), within
/// 10 s.
async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    agent: &AgentProcess,
    rule: &str,
    state: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((_, payload))) => {
                let v: Value = serde_json::from_slice(&payload).expect("alert is JSON");
                if v["rule"] == rule && v["state"] == state {
                    return v;
                }
            }
            _ => panic!("no {rule} {state} alert; agent log:\n{}", agent.log_text()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_answering_raises_no_data_until_it_answers_again() {
    let broker = Mosquitto::start();
    let mut alerts = subscribe(broker.port, "forewarn/+/alerts/#").await;
    let bank = RegisterBank::default();
    set_pump_temp(&bank, 1, 60.0);
    bank.set(RegisterKind::Input, 10, &[120]);
    let modbus_port = modbus_server(bank.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forewarn.toml");
    let text = pump_config(&dir.path().join("data"), modbus_port, broker.port, 100, 200).replace(
        "sensors = [\"pump1.bearing_temp\", \"pump1.vibration\"]\n",
        "sensors = [\"pump1.bearing_temp\", \"pump1.vibration\"]\nno_data = \"2s\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    agent.wait_for_log("no_data_watches=1", Duration::from_secs(10)).await;

    // Answering: nothing for longer than the limit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!agent.log_text().contains("rule=no-data"), "{}", agent.log_text());

    bank.set_behaviour(Behaviour::Silent);
    let silent_at = std::time::Instant::now();
    let raised = next(&mut alerts, &agent, "no-data", "raised").await;
    let waited = silent_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "raised after {waited:?}"
    );
    assert_eq!(raised["asset"], "line1/pump1");
    assert_eq!(raised["severity"], "warning");
    let names: Vec<&str> = raised["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "both sensors are silent: {raised}");
    assert!(names.contains(&"pump1.bearing_temp") && names.contains(&"pump1.vibration"));
    assert!(raised["value"].as_f64().unwrap() >= 2.0, "{raised}");

    bank.set_behaviour(Behaviour::Normal);
    let cleared = next(&mut alerts, &agent, "no-data", "cleared").await;
    assert_eq!(cleared["first_seen"], raised["first_seen"], "one incident");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_sensors_have_rules_and_a_quiet_publisher_raises_no_data() {
    let broker = Mosquitto::start();
    let mut alerts = subscribe(broker.port, "forewarn/+/alerts/#").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forewarn.toml");
    let text = format!(
        r#"
[agent]
id = "gw-test"
data_dir = "{data}"

[http]
enabled = false

[upstream]
broker = "mqtt://127.0.0.1:{port}"
alert_topic = "forewarn/{{agent}}/alerts/{{asset}}"

[[mqtt]]
broker = "mqtt://127.0.0.1:{port}"

  [[mqtt.subscribe]]
  topic = "plant/tank1/level"
  sensor = "tank1.level"

[[asset]]
id = "tank1"
sensors = ["tank1.level"]
no_data = "2s"

  [[asset.rule]]
  name = "overfill"
  sensor = "tank1.level"
  above = 90.0
  clear_below = 80.0
"#,
        data = dir.path().join("data").display(),
        port = broker.port
    );
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    agent.wait_for_log("subscribing", Duration::from_secs(10)).await;

    let (client, mut events) = AsyncClient::new(MqttOptions::new("tank-plc", "127.0.0.1", broker.port), 16);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let publish = |level: f64| {
        let client = client.clone();
        async move {
            client
                .publish("plant/tank1/level", QoS::AtLeastOnce, false, level.to_string())
                .await
                .unwrap()
        }
    };
    // Keep publishing (faster than no_data) through the rule's raise and clear.
    for level in [50.0, 60.0, 95.0, 96.0, 70.0, 60.0] {
        publish(level).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let raised = next(&mut alerts, &agent, "overfill", "raised").await;
    assert_eq!(raised["value"], 95.0);
    next(&mut alerts, &agent, "overfill", "cleared").await;
    assert!(!agent.log_text().contains("rule=no-data"), "{}", agent.log_text());

    // The publisher goes quiet.
    let quiet = next(&mut alerts, &agent, "no-data", "raised").await;
    assert_eq!(quiet["sensor"], "tank1.level");
    publish(61.0).await;
    next(&mut alerts, &agent, "no-data", "cleared").await;
}
