//! Modbus RTU over a pseudo-terminal pair (socat) against pymodbus's serial server. Two
//! units share the port: unit 1 answers, unit 2 is a dead slave. The live unit keeps its
//! schedule (one dead slave costs only its own timeout, and only while it is retried),
//! and every value decodes as written. (Linux pseudo-terminals refuse parity settings,
//! so the line here is 8N1.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::peer::{forewarn_poll_once, ModbusPeer, PtyPair};
use forewarn::base::sample::{Quality, Sample};
use forewarn::config::Config;
use forewarn::source::modbus::{plan_buses, spawn};
use forewarn::stats::DeviceStats;
use serde_json::json;
use tokio::sync::{mpsc, watch};

fn map() -> serde_json::Value {
    json!({"values": [
        {"table": "holding", "address": 0, "type": "f32", "order": "CDAB", "value": 21.5},
        {"table": "holding", "address": 2, "type": "i16", "value": -40},
        {"table": "coil", "address": 3, "type": "bool", "value": 1},
        {"table": "input", "address": 7, "type": "u32", "order": "DCBA", "value": 123456},
    ]})
}

fn config(port: &str, interval: &str) -> String {
    let head = "[agent]\nid = \"rtu\"\n[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n";
    let reg = |sensor: &str, kind: &str, address: u32, ty: &str, order: &str| {
        format!("  [[modbus.register]]\n  sensor = \"{sensor}\"\n  kind = \"{kind}\"\n  address = {address}\n  type = \"{ty}\"\n  order = \"{order}\"\n")
    };
    format!(
        "{head}[[modbus]]\ndevice = \"live\"\naddress = \"rtu://{port}\"\nunit = 1\nbaud = 19200\nparity = \"none\"\ninterval = \"{interval}\"\ntimeout = \"200ms\"\npause = \"5ms\"\n{}{}{}{}\
         [[modbus]]\ndevice = \"dead\"\naddress = \"rtu://{port}\"\nunit = 2\nbaud = 19200\nparity = \"none\"\ninterval = \"{interval}\"\ntimeout = \"200ms\"\npause = \"5ms\"\n{}",
        reg("temp", "holding", 0, "f32", "CDAB"),
        reg("level", "holding", 2, "i16", "ABCD"),
        reg("running", "coil", 3, "bool", "ABCD"),
        reg("count", "input", 7, "u32", "DCBA"),
        reg("gone", "holding", 0, "u16", "ABCD"),
    )
}

#[test]
fn poll_once_over_rtu_decodes_every_value() {
    let pty = PtyPair::open();
    let _peer = ModbusPeer::serial(&map(), &pty.b, &[1]);
    let (lines, code, elapsed) = forewarn_poll_once(&config(&pty.a, "1s"));
    let value = |sensor: &str| {
        let line = lines.iter().find(|l| l["sensor"] == sensor).unwrap();
        (line["quality"].as_str().unwrap().to_string(), line["value"].as_f64())
    };
    assert_eq!(value("temp"), ("good".into(), Some(21.5)), "{lines:#?}");
    assert_eq!(value("level"), ("good".into(), Some(-40.0)));
    assert_eq!(value("running"), ("good".into(), Some(1.0)));
    assert_eq!(value("count"), ("good".into(), Some(123456.0)));
    assert_eq!(value("gone"), ("timeout".into(), None));
    assert_eq!(code, Some(3));
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_slave_costs_only_its_own_timeout() {
    let pty = PtyPair::open();
    let _peer = ModbusPeer::serial(&map(), &pty.b, &[1]);
    let config = Config::parse(&config(&pty.a, "250ms"), std::path::Path::new("rtu.toml")).unwrap();
    let names = ["temp", "level", "running", "count", "gone"];
    let stats: Vec<Arc<DeviceStats>> = vec![Arc::default(), Arc::default()];
    let buses = plan_buses(
        &config.modbus,
        &|s| names.iter().position(|n| *n == s).unwrap() as u32,
        &|d| stats[usize::from(d == "dead")].clone(),
    );
    assert_eq!(buses.len(), 1, "both units share the port's one bus");
    let (tx, mut rx) = mpsc::channel(1024);
    let (_stop, stop_rx) = watch::channel(false);
    spawn(buses, &tx, &stop_rx);

    let mut samples: Vec<Sample> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        samples.extend(batch.samples);
    }
    let temp: Vec<&Sample> = samples.iter().filter(|s| s.sensor == 0).collect();
    assert!(
        temp.len() >= 13,
        "live unit polled {} times in 4 s at 250 ms",
        temp.len()
    );
    assert!(temp.iter().all(|s| s.quality.is_good() && s.value == 21.5));
    let gap = temp.windows(2).map(|w| w[1].ts_ms - w[0].ts_ms).max().unwrap();
    // A timeout of the dead unit (200 ms) may delay one poll of the live one, no more.
    assert!(gap < 500, "live unit stalled {gap} ms");
    let gone: Vec<&Sample> = samples.iter().filter(|s| s.sensor == 4).collect();
    assert!(!gone.is_empty() && gone.iter().all(|s| s.quality == Quality::Timeout && s.value.is_nan()));
    // The dead unit backs off instead of costing a timeout every cycle.
    assert!(stats[1].timeouts.get() <= 6, "{} timeouts", stats[1].timeouts.get());
    assert_eq!(stats[0].timeouts.get(), 0);
}
