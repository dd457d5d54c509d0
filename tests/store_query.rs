//! `forewarn query`, `store-stats` and `import` as an operator uses them: through the
//! running agent's HTTP API (the agent holds the store's lock), and directly on the store
//! once the agent is stopped — with the same answers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use forewarn::config::{DataType, RegisterKind, WordOrder};
use forewarn::demo::modbus_server::RegisterBank;
use forewarn::source::modbus::decode::encode;

fn forewarn(args: &[&str], config: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_stats_while_running_and_after_stop() {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Holding, 0, &encode(50.5, DataType::F32, WordOrder::ABCD));
    bank.set(RegisterKind::Input, 10, &[250]);
    let modbus_port = modbus_server(bank).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = dir.path().join("forewarn.toml");
    let text = pump_config(&dir.path().join("data"), modbus_port, free_port(), 100, 100).replace(
        "[http]\nenabled = false",
        &format!("[http]\nlisten = \"127.0.0.1:{http}\""),
    );
    std::fs::write(&config, text).unwrap();

    // History from elsewhere, imported before the agent starts.
    let csv = dir.path().join("old.csv");
    std::fs::write(
        &csv,
        "time;pump1.bearing_temp\n2026-01-01 00:00:00;20.5\n2026-01-01 00:00:30;21.5\n2026-01-01 00:01:10;30\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = forewarn(&["import", "--csv", csv.to_str().unwrap(), "--sep", ";"], &config);
    assert!(ok && stdout.contains("done: 3 rows, 3 samples"), "{stdout}{stderr}");

    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    wait_for_port(http, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let old_range = ["--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T23:59:59Z"];
    let mut args = vec!["query", "--sensor", "pump1.bearing_temp"];
    args.extend(old_range);
    let (ok, live_raw, stderr) = forewarn(&args, &config);
    assert!(ok, "{stderr}");
    assert_eq!(
        live_raw,
        "{\"sensor\":\"pump1.bearing_temp\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"value\":20.5}\n\
         {\"sensor\":\"pump1.bearing_temp\",\"ts\":\"2026-01-01T00:00:30.000Z\",\"value\":21.5}\n\
         {\"sensor\":\"pump1.bearing_temp\",\"ts\":\"2026-01-01T00:01:10.000Z\",\"value\":30}\n"
    );
    args.extend(["--every", "1m", "--format", "csv"]);
    let (_, live_agg, _) = forewarn(&args, &config);
    assert_eq!(
        live_agg,
        "sensor,ts,value,min,max,mean,count\npump1.bearing_temp,2026-01-01T00:00:00.000Z,21,20.5,21.5,21,2\npump1.bearing_temp,2026-01-01T00:01:00.000Z,30,30,30,30,1\n"
    );
    // Live samples of the agent are visible while it runs.
    let (_, recent, _) = forewarn(
        &["query", "--sensor", "pump1.*", "--from", "2026-06-01T00:00:00Z"],
        &config,
    );
    assert!(
        recent.lines().filter(|l| l.contains("\"value\":50.5")).count() >= 5,
        "{recent}"
    );
    assert!(recent
        .lines()
        .any(|l| l.contains("pump1.vibration") && l.contains("\"value\":2.5")));
    let (ok, stats, _) = forewarn(&["store-stats"], &config);
    assert!(
        ok && stats.contains("pump1.bearing_temp:") && stats.contains("bytes/sample"),
        "{stats}"
    );
    // The store is locked by the agent: importing says why it cannot.
    let (ok, _, err) = forewarn(&["import", "--csv", csv.to_str().unwrap(), "--sep", ";"], &config);
    assert!(!ok && err.contains("opening the store"), "{err}");

    drop(agent);
    let (ok, offline_agg, stderr) = forewarn(&args, &config);
    assert!(ok, "{stderr}");
    assert_eq!(offline_agg, live_agg);
    let (ok, stats, _) = forewarn(&["store-stats"], &config);
    assert!(ok && stats.contains("pump1.vibration:"), "{stats}");
    let (ok, _, err) = forewarn(&["query", "--from", "last tuesday"], &config);
    assert!(!ok && err.contains("from"), "{err}");
}

#[test]
fn query_and_stats_on_a_missing_data_directory_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("no-such-data");
    let config = dir.path().join("forewarn.toml");
    std::fs::write(&config, pump_config(&data, free_port(), free_port(), 100, 100)).unwrap();
    for args in [&["query", "--sensor", "pump1.*"][..], &["store-stats"][..]] {
        let (ok, _, stderr) = forewarn(args, &config);
        assert!(!ok, "{args:?} succeeded");
        let expected = format!("the data directory {} does not exist", data.display());
        assert!(
            stderr.contains(&expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
}
