//! Alert delivery figures on loopback, against a real Mosquitto (which must be installed):
//!
//! 1. latency from the sample that trips a rule to the broker's PUBACK of its alert: the
//!    agent's own path — rule, lifecycle, outbox commit with fsync, publisher, QoS 1 —
//!    for 2,000 alerts (raised and cleared in turn), one at a time; p50, p99, max;
//! 2. the outbox drain rate after an outage: 10,000 alerts queued while no broker is
//!    reachable, then the time from the publisher's start until the last PUBACK. How long
//!    the outage lasted does not matter (the queue is on disk; the reconnect backoff is
//!    capped at 30 s and is not part of the drain).
//!
//! Run: `cargo bench --bench alert_delivery` (figures in README, "Measured"). Under
//! `cargo test` (no `--bench` argument) it runs a small smoke version of both.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forewarn::alert::lifecycle::Lifecycle;
use forewarn::alert::publisher::Publisher;
use forewarn::alert::sink::AlertSink;
use forewarn::alert::status::{config_hash, StatusInfo};
use forewarn::alert::Outbox;
use forewarn::alert::{AlertEvent, AlertState};
use forewarn::base::sample::Sample;
use forewarn::config::Config;
use forewarn::detect::rule::RuleEngine;
use forewarn::stats::Stats;
use forewarn::store::{Store, StoreOptions};
use tokio::sync::{mpsc, watch, Notify};

/// Alerts measured, and alerts drained: (full run, smoke run under `cargo test`).
const LATENCY_ALERTS: (usize, usize) = (2_000, 20);
const DRAIN_ALERTS: (usize, usize) = (10_000, 500);
/// Alerts sent first, while connecting, and left out of the latency figures.
const WARM_UP: usize = 50;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn mosquitto(dir: &Path, port: u16) -> Child {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"),
    )
    .expect("write conf");
    let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn config(broker_port: u16, data: &Path) -> Config {
    let text = format!(
        r#"
[agent]
id = "bench"
data_dir = "{}"
[upstream]
broker = "mqtt://127.0.0.1:{broker_port}"
[[modbus]]
device = "plc"
address = "127.0.0.1:502"
  [[modbus.register]]
  sensor = "temp"
  kind = "holding"
  address = 0
  type = "f32"
[[asset]]
id = "line1/pump1"
sensors = ["temp"]
  [[asset.rule]]
  name = "overheat"
  sensor = "temp"
  above = 80.0
  clear_below = 75.0
"#,
        data.display()
    );
    Config::parse(&text, Path::new("<bench>")).expect("bench config")
}

fn publisher(
    config: &Config,
    outbox: &Outbox,
    wake: &Arc<Notify>,
    stats: &Arc<Stats>,
) -> (Publisher, mpsc::UnboundedReceiver<u64>) {
    let (acked, acks) = mpsc::unbounded_channel();
    let upstream = config.upstream_settings().expect("upstream settings");
    let p = Publisher {
        options: forewarn::alert::upstream::options(&upstream).expect("upstream options"),
        outbox: outbox.clone(),
        wake: wake.clone(),
        stats: stats.clone(),
        drain_grace: Duration::from_millis(100),
        status: StatusInfo::new(&upstream, config_hash(config)),
        acked: Some(acked),
    };
    (p, acks)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(broker_port: u16, alerts: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(broker_port, dir.path());
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let outbox = Outbox::open(&store).expect("outbox");
    let (wake, stats) = (Arc::new(Notify::new()), Arc::new(Stats::default()));
    let mut lifecycle = Lifecycle::for_assets(&config.asset);
    let rules = RuleEngine::new(&config.asset, &|_| Some(1), &mut |d| lifecycle.register(d));
    let (mut sink, _) = AlertSink::open(
        lifecycle,
        outbox.clone(),
        wake.clone(),
        stats.clone(),
        "bench",
        None,
        &config.upstream.alert_topic,
    )
    .expect("sink");
    let (publisher, mut acks) = publisher(&config, &outbox, &wake, &stats);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(publisher.run(stopped));

    let mut observations = Vec::new();
    let mut took = Vec::with_capacity(alerts);
    let t_start = forewarn::base::time::now_ms();
    for i in 0..alerts + WARM_UP {
        let value = if i % 2 == 0 { 90.0 } else { 60.0 };
        let t0 = Instant::now();
        rules.observe(&Sample::good(1, t_start + i as i64, value), &mut observations);
        let msgs = sink.observe(observations.drain(..)).await.expect("commit");
        let seq = msgs.last().expect("every sample changes the state").seq;
        while acks.recv().await.expect("publisher alive") < seq {}
        // The first alerts include connecting; leave them out.
        if i >= WARM_UP {
            took.push(t0.elapsed());
        }
    }
    took.sort();
    println!(
        "sample -> PUBACK latency over {} alerts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        took.len(),
        percentile(&took, 0.50).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    let _ = stop.send(true);
    let _ = task.await;
}

async fn drain(broker_port: u16, alerts: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(broker_port, dir.path());
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let outbox = Outbox::open(&store).expect("outbox");
    // The outage: alerts pile up in the outbox, in commits of 100 as a busy pipeline makes.
    let topic = "forewarn/bench/alerts/line1/pump1".to_string();
    let now = forewarn::base::time::now_ms();
    for chunk in 0..alerts / 100 {
        let batch: Vec<(String, AlertEvent)> = (0..100)
            .map(|i| {
                let n = (chunk * 100 + i) as i64;
                let event = AlertEvent {
                    asset: "line1/pump1".into(),
                    rule: "overheat".into(),
                    state: if n % 2 == 0 {
                        AlertState::Raised
                    } else {
                        AlertState::Cleared
                    },
                    sensor: "temp".into(),
                    value: 90.0,
                    threshold: 80.0,
                    ts_ms: now + n,
                    first_seen_ms: now + n - n % 2,
                    last_seen_ms: now + n,
                    asset_path: vec!["line1".into(), "line1/pump1".into()],
                    ..Default::default()
                };
                (topic.clone(), event)
            })
            .collect();
        outbox.commit("bench", &batch, &[]).expect("commit");
    }
    assert_eq!(outbox.len(), alerts);
    let (wake, stats) = (Arc::new(Notify::new()), Arc::new(Stats::default()));
    let (publisher, mut acks) = publisher(&config, &outbox, &wake, &stats);
    let (stop, stopped) = watch::channel(false);
    let t0 = Instant::now();
    let task = tokio::spawn(publisher.run(stopped));
    let mut n = 0;
    while n < alerts {
        acks.recv().await.expect("publisher alive");
        n += 1;
    }
    let spent = t0.elapsed();
    assert!(outbox.is_empty());
    println!(
        "outbox drain: {alerts} queued alerts acknowledged in {:.2} s = {:.0} alerts/s (max_inflight {})",
        spent.as_secs_f64(),
        alerts as f64 / spent.as_secs_f64(),
        config.upstream.max_inflight
    );
    let _ = stop.send(true);
    let _ = task.await;
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it.
    let full = std::env::args().any(|a| a == "--bench");
    let pick = |(full_size, smoke): (usize, usize)| if full { full_size } else { smoke };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut broker = mosquitto(dir.path(), port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        latency(port, pick(LATENCY_ALERTS)).await;
        drain(port, pick(DRAIN_ALERTS)).await;
    });
    let _ = broker.kill();
    let _ = broker.wait();
}
