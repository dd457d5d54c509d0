//! `forewarn demo`: a simulated plant, an embedded MQTT broker (rumqttd), the agent and a
//! subscriber, all in one process on free loopback ports, with a temporary data dir.
//! Alerts arrive on stdout as one JSON object per line; logs go to stderr, which also
//! names the ports and the web page's address.

pub(crate) mod broker;
pub mod modbus_server;
pub(crate) mod plant;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

/// The demo's config: one pump PLC, one asset with an overheat rule and a model.
pub fn demo_config(modbus_port: u16, broker_port: u16, http_port: u16, data_dir: &Path) -> Result<Config> {
    let text = format!(
        r#"
[agent]
id = "demo-gw"
data_dir = "{data_dir}"

[storage]
raw_retention = "1d"
max_disk = "64MiB"

[http]
listen = "127.0.0.1:{http_port}"

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

  [asset.model]
  period = "500ms"
  window = 3
  alarm_k = 3
  alarm_n = 5
  min_duration = "2s"
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

    let broker_port = tokio::task::spawn_blocking(broker::start).await??.port();
    // The agent binds the API itself; a port the kernel just handed out is free.
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("a free port for the web page")?
        .port();

    let data = tempfile::Builder::new()
        .prefix("forewarn-demo-")
        .tempdir()
        .context("creating a temporary data dir")?;
    let config = demo_config(modbus_port, broker_port, http_port, data.path())?;
    train_model(&config)?;

    let subscribed = subscribe_and_print(broker_port).await?;
    eprintln!(
        "forewarn demo: simulated pump PLC on 127.0.0.1:{modbus_port}, broker on 127.0.0.1:{broker_port}, data in {}.\n\
         web page: http://127.0.0.1:{http_port}/\n\
         The bearing starts overheating after ~20 s: the model alerts within seconds, the 80 °C rule near 35 s;\n\
         it recovers near 70 s and the cycle repeats every 90 s.\n\
         Alerts appear below, one JSON object per line. Ctrl-C to stop.",
        data.path().display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(crate::agent::run(config, stop_rx));
    tokio::select! {
        _ = async { match duration { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
        _ = crate::agent::shutdown_signal() => {}
    }
    let _ = stop_tx.send(true);
    agent.await.context("agent task")??;
    subscribed.abort();
    Ok(())
}

/// Trains the pump's model on ten minutes of healthy history, as `forewarn train` would on
/// a gateway that had run the pump before, and writes it where the agent looks.
fn train_model(config: &Config) -> Result<()> {
    let asset = config.asset.first().context("the demo config has an asset")?;
    let mc = asset.model.as_ref().context("the demo asset has a model")?;
    let opts = mc.train_options();
    let history = plant::healthy_history(1200, opts.period_ms);
    let model = crate::detect::train::train(&asset.id, &asset.sensors, &history, &opts, "demo")?;
    model.save(&mc.path(&config.agent.data_dir, &asset.id))?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::detect::alarm::Transition;
    use crate::detect::model::Model;
    use crate::detect::scorer::Scorer;

    /// The demo's model, trained as `run` trains it, on one cycle of the plant's readings
    /// at the poll interval: it raises while the bearing is still far below the 80 °C
    /// rule, and clears once the bearing has cooled down.
    #[test]
    fn the_model_alerts_long_before_the_rule_and_clears_after_the_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let config = demo_config(1502, 1883, 9321, dir.path()).unwrap();
        train_model(&config).unwrap();
        let asset = &config.asset[0];
        let path = asset.model.as_ref().unwrap().path(dir.path(), &asset.id);
        let mut scorer = Scorer::new(Arc::new(Model::load(&path).unwrap()));
        let mut edges = Vec::new();
        for i in 0..180 {
            let t = i as f64 * 0.5;
            let (temp, vib) = plant::reading(t);
            if let Some(e) = scorer.step(Some(&[temp, vib])).transition {
                edges.push((e, t, temp));
            }
        }
        assert_eq!(edges.len(), 2, "{edges:?}");
        let (raised, cleared) = (edges[0], edges[1]);
        assert_eq!((raised.0, cleared.0), (Transition::Raised, Transition::Cleared));
        assert!(raised.1 > 20.0 && raised.2 < 70.0, "raised at {raised:?}");
        assert!(cleared.1 > 78.0, "cleared at {cleared:?}");
    }
}
