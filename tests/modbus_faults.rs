//! Unhappy paths of Modbus polling against tokio-modbus's server: a device that never
//! answers, one that answers with exceptions, one whose server goes away and comes back.
//! None of them may stop or slow the healthy device, and none may produce a made-up value.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use forewarn::config::{Config, RegisterKind};
use forewarn::demo::modbus_server::{Behaviour, RegisterBank};
use forewarn::sample::{Quality, Sample};
use forewarn::source::modbus::{plan_buses, spawn};
use forewarn::stats::DeviceStats;
use tokio::sync::{mpsc, watch};

fn config(devices: &[(&str, u16)]) -> Config {
    let mut text = String::from("[agent]\nid = \"t\"\n[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n");
    for (i, (name, port)) in devices.iter().enumerate() {
        text += &format!(
            "[[modbus]]\ndevice = \"{name}\"\naddress = \"127.0.0.1:{port}\"\ninterval = \"100ms\"\ntimeout = \"150ms\"\n\
             [[modbus.register]]\nsensor = \"s{i}\"\nkind = \"holding\"\naddress = 0\ntype = \"u16\"\n"
        );
    }
    Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

/// Starts polling every device; sensor `s{i}` gets id `i`.
fn start(config: &Config) -> (mpsc::Receiver<Vec<Sample>>, watch::Sender<bool>, Vec<Arc<DeviceStats>>) {
    let (tx, rx) = mpsc::channel(1024);
    let (stop, stop_rx) = watch::channel(false);
    let stats: Vec<Arc<DeviceStats>> = config.modbus.iter().map(|_| Arc::default()).collect();
    let index = |device: &str| config.modbus.iter().position(|d| d.device == device).unwrap();
    let buses = plan_buses(
        &config.modbus,
        &|sensor| sensor.trim_start_matches('s').parse().unwrap(),
        &|device| stats[index(device)].clone(),
    );
    for mut b in buses {
        // These tests look at each device from its first poll.
        b.stagger.iter_mut().flatten().for_each(|d| *d = Duration::ZERO);
        spawn(vec![b], &tx, &stop_rx);
    }
    (rx, stop, stats)
}

async fn collect(rx: &mut mpsc::Receiver<Vec<Sample>>, for_: Duration) -> Vec<Sample> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + for_;
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.extend(batch);
    }
    out
}

fn of(samples: &[Sample], sensor: u32) -> Vec<Sample> {
    samples.iter().filter(|s| s.sensor == sensor).copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_times_out_without_slowing_a_healthy_one() {
    let healthy = RegisterBank::default();
    healthy.set(RegisterKind::Holding, 0, &[1234]);
    let silent = RegisterBank::default();
    silent.set_behaviour(Behaviour::Silent);
    let (hp, sp) = (modbus_server(healthy).await, modbus_server(silent).await);
    let (mut rx, _stop, stats) = start(&config(&[("healthy", hp), ("silent", sp)]));

    let samples = collect(&mut rx, Duration::from_secs(3)).await;
    let good = of(&samples, 0);
    assert!(
        good.len() >= 25,
        "healthy device polled only {} times in 3 s at 100 ms",
        good.len()
    );
    assert!(good.iter().all(|s| s.quality == Quality::Good && s.value == 1234.0));
    let gaps = good.windows(2).map(|w| w[1].ts_ms - w[0].ts_ms).max().unwrap();
    assert!(gaps < 250, "healthy device stalled for {gaps} ms");

    let bad = of(&samples, 1);
    assert!(!bad.is_empty(), "a timeout must leave a bad-quality marker");
    assert!(
        bad.iter().all(|s| s.quality == Quality::Timeout && s.value.is_nan()),
        "{bad:?}"
    );
    assert!(stats[1].timeouts.get() >= 1);
    // Backoff: far fewer attempts than polls would be.
    assert!(
        stats[1].timeouts.get() < 15,
        "no backoff: {} timeouts in 3 s",
        stats[1].timeouts.get()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_mark_samples_bad_and_keep_the_connection() {
    let bank = RegisterBank::default();
    bank.set_behaviour(Behaviour::Exception(4));
    let port = modbus_server(bank.clone()).await;
    let (mut rx, _stop, stats) = start(&config(&[("dev", port)]));
    let samples = collect(&mut rx, Duration::from_millis(700)).await;
    assert!(samples.len() >= 4);
    assert!(samples
        .iter()
        .all(|s| s.quality == Quality::Exception(4) && s.value.is_nan()));
    // Exceptions are answers: no reconnect needed.
    assert_eq!(stats[0].connects.get(), 1);

    bank.set(RegisterKind::Holding, 0, &[7]);
    bank.set_behaviour(Behaviour::Normal);
    let samples = collect(&mut rx, Duration::from_millis(500)).await;
    assert!(samples.iter().any(|s| s.quality.is_good() && s.value == 7.0));
    // An unmapped address is the device's exception 02, and the sensor says so.
    let holes = RegisterBank::default();
    let port = modbus_server(holes).await;
    let (mut rx, _stop2, _) = start(&config(&[("holes", port)]));
    let samples = collect(&mut rx, Duration::from_millis(400)).await;
    assert!(!samples.is_empty() && samples.iter().all(|s| s.quality == Quality::Exception(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_device_comes_back() {
    // A port where nothing listens yet.
    let port = free_port();
    let (mut rx, _stop, stats) = start(&config(&[("late", port)]));
    let before = collect(&mut rx, Duration::from_millis(800)).await;
    assert!(before.iter().all(|s| s.quality == Quality::Disconnected));
    assert!(stats[0].connect_failures.get() >= 1);

    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &[99]);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(forewarn::demo::modbus_server::serve(listener, bank));
    // Backoff is capped, and starts small: the device is read again within seconds.
    let after = collect(&mut rx, Duration::from_secs(4)).await;
    assert!(
        after.iter().any(|s| s.quality.is_good() && s.value == 99.0),
        "never reconnected"
    );
    assert_eq!(stats[0].connects.get(), 1);
}
