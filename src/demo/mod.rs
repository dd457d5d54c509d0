//! `forewarn demo`: a simulated plant, an embedded MQTT broker, the agent and a
//! subscriber, all in one process on free loopback ports, with a temporary data dir.
//! Alerts arrive on stdout as one JSON object per line; logs go to stderr.

pub mod broker;
pub mod modbus_server;
pub mod plant;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

/// The demo's config: one pump PLC, one asset with an overheat rule.
pub fn demo_config(modbus_port: u16, broker_port: u16, data_dir: &Path) -> Result<Config> {
    let text = format!(
        r#"
[agent]
id = "demo-gw"
data_dir = "{data_dir}"

[storage]
raw_retention = "1d"
max_disk = "64MiB"

[upstream]
broker = "mqtt://127.0.0.1:{broker_port}"
alert_topic = "forewarn/{{agent}}/alerts/{{asset}}"

[[modbus]]
device = "pump1-plc"
address = "127.0.0.1:{modbus_port}"
unit = 1
interval = "500ms"
timeout = "250ms"

  [[modbus.register]]
  sensor = "pump1.bearing_temp"
  kind = "holding"
  address = {temp}
  type = "f32"
  order = "ABCD"
  unit = "degC"

  [[modbus.register]]
  sensor = "pump1.vibration"
  kind = "input"
  address = {vib}
  type = "u16"
  scale = 0.01
  unit = "mm/s"

[[asset]]
id = "line1/pump1"
sensors = ["pump1.bearing_temp", "pump1.vibration"]

  [[asset.rule]]
  name = "bearing-overheat"
  sensor = "pump1.bearing_temp"
  above = 80.0
  clear_below = 75.0
  severity = "critical"
"#,
        data_dir = data_dir.display().to_string().replace('\\', "/"),
        temp = plant::BEARING_TEMP_ADDR,
        vib = plant::VIBRATION_ADDR,
    );
    Config::parse(&text, Path::new("<demo>")).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs the demo until `duration` has passed or Ctrl-C.
pub async fn run(duration: Option<Duration>) -> Result<()> {
    let bank = modbus_server::RegisterBank::default();
    let modbus = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulated PLC")?;
    let modbus_port = modbus.local_addr()?.port();
    tokio::spawn(plant::simulate(bank.clone(), Duration::from_millis(100)));
    tokio::spawn(modbus_server::serve(modbus, bank));

    let mqtt = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo broker")?;
    let broker_port = mqtt.local_addr()?.port();
    tokio::spawn(broker::serve(mqtt));

    let data = tempfile::Builder::new()
        .prefix("forewarn-demo-")
        .tempdir()
        .context("creating a temporary data dir")?;
    let config = demo_config(modbus_port, broker_port, data.path())?;

    let subscribed = subscribe_and_print(broker_port).await?;
    eprintln!(
        "forewarn demo: simulated pump PLC on 127.0.0.1:{modbus_port}, broker on 127.0.0.1:{broker_port}, data in {}.\n\
         The bearing starts overheating after ~20 s (alert near 35 s) and recovers near 70 s; the cycle repeats every 90 s.\n\
         Alerts appear below, one JSON object per line. Ctrl-C to stop.",
        data.path().display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(crate::agent::run(config, stop_rx));
    tokio::select! {
        _ = async { match duration { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
        _ = crate::shutdown_signal() => {}
    }
    let _ = stop_tx.send(true);
    agent.await.context("agent task")??;
    subscribed.abort();
    Ok(())
}

/// Connects a subscriber to the demo broker and prints each alert; returns once the
/// subscription is in place, so no alert of the run is missed.
async fn subscribe_and_print(port: u16) -> Result<tokio::task::JoinHandle<()>> {
    let (client, mut events) = AsyncClient::new(MqttOptions::new("forewarn-demo-subscriber", "127.0.0.1", port), 16);
    client.subscribe("forewarn/+/alerts/#", QoS::AtMostOnce).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("demo subscriber: {e}"),
            Err(_) => anyhow::bail!("demo subscriber: no SUBACK from the embedded broker"),
        }
    }
    Ok(tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&p.payload);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
    }))
}
