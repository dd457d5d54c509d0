//! Samples that the agent has flushed survive `kill -9`: a real agent process polls a
//! Modbus server, is killed without warning, and the store it leaves behind is opened
//! and read back.

mod common;

use std::time::Duration;

use common::*;
use forewarn::base::sample::now_ms;
use forewarn::config::{DataType, RegisterKind, WordOrder};
use forewarn::demo::modbus_server::RegisterBank;
use forewarn::source::modbus::decode::encode;
use forewarn::store::{Store, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_before_kill9_are_readable_after_restart_even_mid_seal() {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &encode(42.5, DataType::F32, WordOrder::ABCD));
    bank.set(RegisterKind::Input, 10, &[7]);
    let modbus_port = modbus_server(bank).await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("forewarn.toml");
    let (interval_ms, flush_ms) = (50, 200);
    // No broker: alerts are not the point here, and the agent must run without one.
    std::fs::write(
        &config,
        pump_config(&data, modbus_port, free_port(), interval_ms, flush_ms),
    )
    .unwrap();

    let mut rounds = Vec::new();
    for round in 0..8 {
        let mut agent = AgentProcess::start(&config, &dir.path().join(format!("agent{round}.log")));
        let started = now_ms();
        // Random kill points, some of them during a seal (every second).
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1200..2600))).await;
        let killed = now_ms();
        agent.kill9();
        rounds.push((started, killed));
    }

    let store = Store::open(&data, StoreOptions::default()).expect("the store opens after kill -9");
    let temp = store
        .lookup_sensor("pump1.bearing_temp")
        .unwrap()
        .expect("sensor registered");
    let samples = store.read(temp, 0, i64::MAX).unwrap();
    assert!(samples.iter().all(|s| s.quality.is_good() && s.value == 42.5));
    for (started, killed) in rounds {
        // Everything older than one flush interval (plus scheduling slack) before the
        // kill was flushed, so it must be there, at the poll rate, without holes.
        let durable_until = killed - 2 * flush_ms as i64 - 100;
        let got: Vec<i64> = samples
            .iter()
            .map(|s| s.ts_ms)
            .filter(|t| *t >= started && *t <= durable_until)
            .collect();
        assert!(
            !got.is_empty(),
            "no samples between start {started} and {durable_until}"
        );
        let first_gap = got[0] - started;
        assert!(first_gap < 1000, "first sample {first_gap} ms after start");
        let max_gap = got.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(
            max_gap <= 3 * interval_ms as i64,
            "a hole of {max_gap} ms in durable samples"
        );
        let last = *got.last().unwrap();
        assert!(
            durable_until - last <= 3 * interval_ms as i64,
            "samples stop {} ms before the durable mark",
            durable_until - last
        );
    }
}
