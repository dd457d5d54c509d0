//! Forwarding as a Sparkplug B edge node, against an independent decoder: a pysparkplug
//! host (`tests/peers/sparkplug_host.py`) on a real Mosquitto decodes the agent's births
//! and data. Samples reach the agent through an MQTT JSON input.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::peer::SparkplugHost;
use common::*;
use forewarn::http::{get, Remote};
use serde_json::Value;

const DEVICE: &str = "line1:pump1";

fn config(data: &Path, broker: u16, http: u16, forward_extra: &str) -> String {
    format!(
        r#"
[agent]
id = "gw-sp"
data_dir = "{data}"
[storage]
flush_interval = "100ms"
[upstream]
broker = "mqtt://127.0.0.1:{broker}"
[http]
listen = "127.0.0.1:{http}"

{input}
[[asset]]
id = "line1/pump1"
sensors = ["pump1.temp", "pump1.flow"]

[[forward]]
name = "scada"
to = "mqtt://127.0.0.1:{broker}"
format = "sparkplug"
group = "plant"
interval = "200ms"
{forward_extra}
"#,
        data = data.display(),
        input = json_input("fw-in", broker),
    )
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Publishes a JSON reading at QoS 1 with `mosquitto_pub`.
fn publish(port: u16, machine: &str, body: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-p", &port.to_string(), "-q", "1", "-t"])
        .arg(format!("plant/{machine}/telemetry"))
        .args(["-m", body])
        .status()
        .expect("mosquitto_pub must be installed (.ci/run installs it)");
    assert!(status.success());
}

fn stored(http: u16, sensor: &str) -> usize {
    match get(&format!("127.0.0.1:{http}"), &format!("/query?sensor={sensor}")) {
        Ok(Remote::Reply { status: 200, body }) => String::from_utf8_lossy(&body).lines().count(),
        _ => 0,
    }
}

/// Every metric the host decoded from DDATA of `device`, with the message's seq.
fn data_metrics(host: &SparkplugHost, device: &str) -> Vec<Value> {
    host.of_type("DDATA")
        .into_iter()
        .filter(|m| m["device"] == device)
        .flat_map(|m| m["metrics"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn values_of(metrics: &[Value], name: &str) -> Vec<(i64, f64)> {
    metrics
        .iter()
        .filter(|m| m["name"] == name)
        .filter_map(|m| Some((m["timestamp"].as_i64()?, m["value"].as_f64()?)))
        .collect()
}

fn bd_seq(message: &Value) -> i64 {
    message["metrics"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == "bdSeq"))
        .and_then(|m| m["value"].as_i64())
        .unwrap_or_else(|| panic!("no bdSeq in {message}"))
}

async fn start_agent(cfg: &Path, log: &Path) -> AgentProcess {
    let agent = AgentProcess::start(cfg, log);
    agent
        .wait_for_log("sparkplug session started", Duration::from_secs(15))
        .await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_data_rebirth_and_death_reach_a_sparkplug_host() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = (dir.path().join("data"), free_port());
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&data, broker.port, http, "")).unwrap();
    let mut host = SparkplugHost::start(broker.port, "scada");
    let mut agent = start_agent(&cfg, &dir.path().join("agent1.log")).await;
    host.wait_until("the NBIRTH", Duration::from_secs(10), |h| {
        !h.of_type("NBIRTH").is_empty()
    });
    let nbirth = &host.of_type("NBIRTH")[0];
    assert_eq!(
        (nbirth["group"].as_str(), nbirth["node"].as_str()),
        (Some("plant"), Some("gw-sp"))
    );
    assert_eq!(nbirth["seq"], 0);
    let first_bd_seq = bd_seq(nbirth);
    assert!(nbirth.to_string().contains("Node Control/Rebirth"), "{nbirth}");

    // Live samples (within the default 60 s live window) of an asset and of no asset.
    let t0 = now_ms() - 3_000;
    for i in 0..3 {
        let (ts, temp, flow) = (t0 + i * 100, 21.5 + i as f64, 1.0 + i as f64);
        publish(
            broker.port,
            "pump1",
            &format!(r#"{{"ts":{ts},"temp":{temp},"flow":{flow}}}"#),
        );
    }
    publish(broker.port, "pump9", &format!(r#"{{"ts":{t0},"temp":7.25}}"#));
    // The forwarder finds sensors the input created at its next registry read (10 s).
    host.wait_until("the DDATA of the samples", Duration::from_secs(30), |h| {
        values_of(&data_metrics(h, DEVICE), "pump1.temp").len() >= 3
            && !values_of(&data_metrics(h, "_unassigned"), "pump9.temp").is_empty()
    });
    let metrics = data_metrics(&host, DEVICE);
    assert_eq!(
        values_of(&metrics, "pump1.temp"),
        vec![(t0, 21.5), (t0 + 100, 22.5), (t0 + 200, 23.5)]
    );
    assert_eq!(
        values_of(&metrics, "pump1.flow"),
        vec![(t0, 1.0), (t0 + 100, 2.0), (t0 + 200, 3.0)]
    );
    assert!(metrics.iter().all(|m| m["is_historical"] == false), "{metrics:#?}");
    assert_eq!(
        values_of(&data_metrics(&host, "_unassigned"), "pump9.temp"),
        vec![(t0, 7.25)]
    );

    // The device's birth named every sensor with its alias and datatype Double, and the
    // data's aliases are the birth's.
    let dbirth = host
        .of_type("DBIRTH")
        .into_iter()
        .rfind(|m| m["device"] == DEVICE)
        .expect("a DBIRTH of the pump");
    let born: Vec<(String, i64, i64)> = dbirth["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["alias"].as_i64().unwrap(),
                m["datatype"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut names: Vec<&str> = born.iter().map(|(n, _, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["pump1.flow", "pump1.temp"]);
    assert!(born.iter().all(|(_, _, dt)| *dt == 10), "{born:?}");
    assert_ne!(born[0].1, born[1].1, "aliases are distinct");
    for m in &metrics {
        let alias = m["alias"].as_i64().unwrap();
        assert!(
            born.iter().any(|(n, a, _)| *a == alias && m["name"] == n.as_str()),
            "{m}"
        );
    }

    // seq runs on by one over births and data, from 0 at the NBIRTH.
    let numbered: Vec<i64> = host
        .messages()
        .iter()
        .filter(|m| m["type"] != "NDEATH")
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    for pair in numbered.windows(2) {
        assert_eq!(pair[1], (pair[0] + 1) % 256, "{numbered:?}");
    }

    // A host's rebirth request: NBIRTH of the same session and the devices again, with
    // their last values.
    host.command("rebirth plant gw-sp");
    host.wait_until("the rebirth", Duration::from_secs(10), |h| {
        h.of_type("NBIRTH").len() == 2 && h.of_type("DBIRTH").iter().filter(|m| m["device"] == DEVICE).count() >= 2
    });
    let reborn = host.of_type("NBIRTH")[1].clone();
    assert_eq!((reborn["seq"].as_i64(), bd_seq(&reborn)), (Some(0), first_bd_seq));
    let dbirth = host
        .of_type("DBIRTH")
        .into_iter()
        .rfind(|m| m["device"] == DEVICE)
        .unwrap();
    assert!(
        values_of(dbirth["metrics"].as_array().unwrap(), "pump1.temp") == vec![(t0 + 200, 23.5)],
        "{dbirth}"
    );

    // kill -9: the broker publishes the will, the NDEATH of the birth's bdSeq.
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.kill9();
    host.wait_until("the NDEATH", Duration::from_secs(10), |h| {
        !h.of_type("NDEATH").is_empty()
    });
    assert_eq!(bd_seq(&host.of_type("NDEATH")[0]), first_bd_seq);

    // The next session has the next bdSeq, though the process was killed.
    let _agent = start_agent(&cfg, &dir.path().join("agent2.log")).await;
    host.wait_until("the NBIRTH after the restart", Duration::from_secs(10), |h| {
        h.of_type("NBIRTH").len() == 3
    });
    assert_eq!(bd_seq(&host.of_type("NBIRTH")[2]), (first_bd_seq + 1) % 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_waits_for_the_primary_host_and_then_comes_as_historical() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (data, http) = (dir.path().join("data"), free_port());
    let cfg = dir.path().join("forewarn.toml");
    let extra = "primary_host = \"scada\"\nlive_window = \"1s\"";
    std::fs::write(&cfg, config(&data, broker.port, http, extra)).unwrap();
    let mut host = SparkplugHost::start(broker.port, "scada");
    let stamp = now_ms();
    host.command(&format!("offline {stamp}"));
    let agent = start_agent(&cfg, &dir.path().join("agent.log")).await;

    let t0 = now_ms() - 500;
    for i in 0..3 {
        publish(
            broker.port,
            "pump1",
            &format!(r#"{{"ts":{},"temp":{}}}"#, t0 + i * 100, 40.0 + i as f64),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stored(http, "pump1.temp") < 3 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Offline host: no birth and no data, while the samples sit in the store. Long enough
    // for the forwarder to have found the new sensors (10 s).
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(
        host.of_type("NBIRTH").is_empty() && host.of_type("DDATA").is_empty(),
        "{:#?}",
        host.messages()
    );

    host.command(&format!("online {}", stamp + 1));
    host.wait_until("the held data", Duration::from_secs(15), |h| {
        values_of(&data_metrics(h, DEVICE), "pump1.temp").len() >= 3
    });
    assert_eq!(host.of_type("NBIRTH").len(), 1);
    let held = data_metrics(&host, DEVICE);
    assert_eq!(
        values_of(&held, "pump1.temp"),
        vec![(t0, 40.0), (t0 + 100, 41.0), (t0 + 200, 42.0)]
    );
    assert!(held.iter().all(|m| m["is_historical"] == true), "{held:#?}");

    // A sample that arrives now is live again.
    let live = now_ms();
    publish(broker.port, "pump1", &format!(r#"{{"ts":{live},"temp":50.5}}"#));
    host.wait_until("live data", Duration::from_secs(10), |h| {
        values_of(&data_metrics(h, DEVICE), "pump1.temp").contains(&(live, 50.5))
    });
    let last = data_metrics(&host, DEVICE)
        .into_iter()
        .rfind(|m| m["timestamp"] == live)
        .unwrap();
    assert_eq!(last["is_historical"], false, "{last}");
}
