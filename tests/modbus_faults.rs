//! Unhappy paths of Modbus polling, against tokio-modbus's server and against pymodbus
//! (an independent implementation): a device that never answers, one that answers with
//! exceptions (02, 04, 06), one whose server goes away and comes back, one too slow for
//! its interval. None of them may stop or slow the healthy device, and none may produce a
//! made-up value.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::peer::{forewarn_poll_once, ModbusPeer};
use common::*;
use forewarn::base::sample::{Quality, Sample};
use forewarn::config::{Config, RegisterKind};
use forewarn::demo::modbus_server::{Behaviour, RegisterBank};
use forewarn::source::modbus::{plan_buses, spawn};
use forewarn::stats::DeviceStats;
use serde_json::json;
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
fn start(
    config: &Config,
) -> (
    mpsc::Receiver<forewarn::source::Batch>,
    watch::Sender<bool>,
    Vec<Arc<DeviceStats>>,
) {
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

async fn collect(rx: &mut mpsc::Receiver<forewarn::source::Batch>, for_: Duration) -> Vec<Sample> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + for_;
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.extend(batch.samples);
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

const HEAD: &str = "[agent]\nid = \"t\"\n[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n";

/// A device with `u16` holding registers at `addresses`; sensor `s{id}` for each,
/// numbered from `first_id`.
fn device(name: &str, address: &str, extra: &str, addresses: &[(u32, u16)]) -> String {
    let mut t = format!("[[modbus]]\ndevice = \"{name}\"\naddress = \"{address}\"\ninterval = \"100ms\"\ntimeout = \"150ms\"\n{extra}\n");
    for (id, a) in addresses {
        t += &format!("[[modbus.register]]\nsensor = \"s{id}\"\nkind = \"holding\"\naddress = {a}\ntype = \"u16\"\n");
    }
    t
}

fn parse(text: &str) -> Config {
    Config::parse(text, std::path::Path::new("t.toml")).unwrap()
}

fn holding(values: &[(u16, u16)]) -> serde_json::Value {
    let values: Vec<_> = values
        .iter()
        .map(|(a, v)| json!({"table": "holding", "address": a, "type": "u16", "value": v}))
        .collect();
    json!({ "values": values })
}

/// Receives until `done` holds for what was received, or `within` passes.
async fn until(
    rx: &mut mpsc::Receiver<forewarn::source::Batch>,
    within: Duration,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while !done(&out) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(batch)) => out.extend(batch.samples),
            _ => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_stopped_and_restarted_reconnects_and_others_keep_reading() {
    let (pa, pb) = (free_port(), free_port());
    let mut a = ModbusPeer::tcp(&holding(&[(0, 11)]), pa);
    let _b = ModbusPeer::tcp(&holding(&[(0, 22)]), pb);
    let text = format!(
        "{HEAD}{}{}",
        device("a", &format!("127.0.0.1:{pa}"), "", &[(0, 0)]),
        device("b", &format!("127.0.0.1:{pb}"), "", &[(1, 0)])
    );
    let (mut rx, _stop, stats) = start(&parse(&text));
    let first = until(&mut rx, Duration::from_secs(5), |s| {
        of(s, 0).iter().any(|x| x.value == 11.0) && of(s, 1).iter().any(|x| x.value == 22.0)
    })
    .await;
    assert!(of(&first, 0).iter().any(|x| x.quality.is_good()), "{first:?}");

    a.stop();
    let during = collect(&mut rx, Duration::from_millis(1500)).await;
    let b_during = of(&during, 1);
    assert!(b_during.len() >= 12, "b polled {} times in 1.5 s", b_during.len());
    assert!(b_during.iter().all(|x| x.quality.is_good() && x.value == 22.0));
    let gap = b_during.windows(2).map(|w| w[1].ts_ms - w[0].ts_ms).max().unwrap();
    assert!(gap < 250, "b stalled {gap} ms while a was down");
    let a_during = of(&during, 0);
    assert!(!a_during.is_empty() && a_during.iter().all(|x| !x.quality.is_good() && x.value.is_nan()));

    a.restart();
    let back = until(&mut rx, Duration::from_secs(8), |s| {
        of(s, 0).iter().any(|x| x.quality.is_good())
    })
    .await;
    assert!(of(&back, 0).iter().any(|x| x.value == 11.0), "a never came back");
    assert!(stats[0].connects.get() >= 2);
    assert_eq!(stats[1].connects.get(), 1, "b must keep its connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_exceptions_02_04_06_mark_only_their_sensors() {
    let port = free_port();
    let map = json!({
        "values": [
            {"table": "holding", "address": 0, "type": "u16", "value": 10},
            {"table": "holding", "address": 5, "type": "u16", "value": 15},
            {"table": "holding", "address": 40, "type": "u16", "value": 40},
            {"table": "holding", "address": 80, "type": "u16", "value": 80},
        ],
        "exceptions": [
            {"table": "holding", "address": 40, "code": 4},
            {"table": "holding", "address": 80, "code": 6},
        ],
    });
    let _peer = ModbusPeer::tcp(&map, port);
    // 0, 5 and the unmapped 8 merge into one request, refused with 02 because of the
    // holes: it must be split until 0 and 5 read and only 8 stays bad.
    let text = format!(
        "{HEAD}{}",
        device(
            "d",
            &format!("127.0.0.1:{port}"),
            "",
            &[(0, 0), (1, 5), (2, 8), (3, 40), (4, 80)]
        )
    );
    let (mut rx, _stop, stats) = start(&parse(&text));
    let samples = until(&mut rx, Duration::from_secs(5), |s| of(s, 4).len() >= 3).await;
    let last = |id| *of(&samples, id).last().unwrap_or_else(|| panic!("no sample for s{id}"));
    assert_eq!((last(0).quality, last(0).value), (Quality::Good, 10.0));
    assert_eq!((last(1).quality, last(1).value), (Quality::Good, 15.0));
    assert_eq!(last(2).quality, Quality::Exception(2));
    assert_eq!(last(3).quality, Quality::Exception(4));
    assert_eq!(last(4).quality, Quality::Exception(6));
    assert!([2, 3, 4]
        .iter()
        .all(|&id| of(&samples, id).iter().all(|s| s.value.is_nan())));
    // The splits are remembered: later cycles do not split again.
    let splits = stats[0].splits.get();
    assert!(splits >= 2, "{splits} splits");
    let later = collect(&mut rx, Duration::from_millis(500)).await;
    assert!(of(&later, 0).iter().all(|s| s.quality.is_good()) && !of(&later, 0).is_empty());
    assert_eq!(stats[0].splits.get(), splits);
    assert_eq!(stats[0].connects.get(), 1, "exceptions are answers: no reconnect");
}

#[test]
fn poll_once_finishes_in_about_one_timeout_when_a_device_hangs() {
    let (silent_port, healthy_port) = (free_port(), free_port());
    let _silent = ModbusPeer::silent(silent_port);
    let _healthy = ModbusPeer::tcp(&holding(&[(0, 7)]), healthy_port);
    let text = format!(
        "{HEAD}{}{}",
        device("hung", &format!("127.0.0.1:{silent_port}"), "", &[(0, 0), (1, 200)]).replace("150ms", "1s"),
        device("ok", &format!("127.0.0.1:{healthy_port}"), "", &[(2, 0)]).replace("150ms", "1s")
    );
    let (lines, code, elapsed) = forewarn_poll_once(&text);
    let stdout = format!("{lines:#?}");
    assert!(elapsed < Duration::from_millis(1800), "took {elapsed:?}");
    assert_eq!(code, Some(3), "a bad value exits 3");
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        (lines[0]["sensor"].as_str(), lines[0]["quality"].as_str()),
        (Some("s0"), Some("timeout"))
    );
    assert!(lines[0]["value"].is_null());
    assert_eq!(lines[1]["quality"], "timeout", "{stdout}");
    assert_eq!(
        (lines[2]["quality"].as_str(), lines[2]["value"].as_f64()),
        (Some("good"), Some(7.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overrunning_cycle_counts_a_missed_deadline_and_does_not_burst() {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &[5]);
    // Each answer takes 150 ms; the interval is 100 ms.
    bank.set_behaviour(Behaviour::Delay(150));
    let port = modbus_server(bank.clone()).await;
    let text = format!(
        "{HEAD}{}",
        device("slow", &format!("127.0.0.1:{port}"), "", &[(0, 0)]).replace("150ms", "1s")
    );
    let (mut rx, _stop, stats) = start(&parse(&text));
    let samples = collect(&mut rx, Duration::from_millis(2000)).await;
    assert!(
        stats[0].missed_deadlines.get() >= 5,
        "{}",
        stats[0].missed_deadlines.get()
    );
    // On schedule: one poll per two slots (200 ms), not back to back.
    let ts: Vec<i64> = samples.iter().map(|s| s.ts_ms).collect();
    assert!((7..=11).contains(&ts.len()), "{} polls in 2 s", ts.len());
    assert!(ts.windows(2).all(|w| w[1] - w[0] >= 180), "{ts:?}");
    assert!(samples.iter().all(|s| s.quality.is_good() && s.value == 5.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_with_their_own_interval_are_polled_on_their_own_schedule() {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &[1, 2]);
    let port = modbus_server(bank.clone()).await;
    let text = format!(
        "{HEAD}{}interval = \"500ms\"\n",
        device("d", &format!("127.0.0.1:{port}"), "", &[(0, 0), (1, 1)])
    );
    let (mut rx, _stop, stats) = start(&parse(&text));
    let samples = collect(&mut rx, Duration::from_millis(2050)).await;
    let (fast, slow) = (of(&samples, 0).len(), of(&samples, 1).len());
    assert!((18..=22).contains(&fast), "fast group polled {fast} times in 2 s");
    assert!((4..=5).contains(&slow), "slow group polled {slow} times in 2 s");
    // Two groups, one connection.
    assert_eq!(stats[0].connects.get(), 1);
    assert_eq!(bank.connections(), 1);
    // Poll starts were on time: p99 lateness of a few ms on an idle loopback.
    let p99 = stats[0].lateness.quantile(0.99).unwrap();
    assert!(p99 <= Duration::from_millis(20), "p99 lateness {p99:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_with_a_shared_connection_use_one() {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &[3]);
    let port = modbus_server(bank.clone()).await;
    let addr = format!("127.0.0.1:{port}");
    let text = format!(
        "{HEAD}{}{}",
        device("u1", &addr, "unit = 1\nshared_connection = true", &[(0, 0)]),
        device("u2", &addr, "unit = 2\nshared_connection = true", &[(1, 0)])
    );
    let (mut rx, _stop, _) = start(&parse(&text));
    let samples = until(&mut rx, Duration::from_secs(3), |s| {
        of(s, 0).len() >= 5 && of(s, 1).len() >= 5
    })
    .await;
    assert!(samples.iter().all(|s| s.quality.is_good() && s.value == 3.0));
    assert_eq!(bank.connections(), 1);
}
