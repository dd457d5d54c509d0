//! The agent as systemd's `Type=notify` sees it: the test binds the notification socket
//! itself (a path, or an abstract name) and runs the agent with `NOTIFY_SOCKET` and
//! `WATCHDOG_USEC` set, as systemd would. It must say `READY=1`, keep `STATUS=` current
//! with samples/s and the outbox depth, feed the watchdog at half its period, stop
//! feeding it when its pipeline stalls (the `FOREWARN_TEST_STALL_AFTER` test hook) while
//! the process stays alive, and say `STOPPING=1` on SIGTERM.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use forewarn::config::RegisterKind;
use forewarn::demo::modbus_server::RegisterBank;
use tokio::net::UnixDatagram;
use tokio::time::Instant;

/// One notification, or `None` when nothing came within `within`.
async fn next_message(socket: &UnixDatagram, within: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(within, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(Err(e)) => panic!("notification socket: {e}"),
        Err(_) => None,
    }
}

/// Every notification that arrives within `within`.
async fn messages_for(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while let Some(m) = next_message(socket, deadline.saturating_duration_since(Instant::now())).await {
        out.push(m);
    }
    out
}

/// Waits for a notification with a line that satisfies `wanted`; returns that message
/// and everything received before it.
async fn wait_for(
    socket: &UnixDatagram,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
    agent: &AgentProcess,
) -> (String, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = next_message(socket, left).await else {
            panic!(
                "no wanted notification; got {seen:#?}\nagent log:\n{}",
                agent.log_text()
            );
        };
        if m.lines().any(&wanted) {
            return (m, seen);
        }
        seen.push(m);
    }
}

/// A polled Modbus device and an upstream broker that is not there (the publisher only
/// retries): the agent's own progress is what is watched.
async fn write_config(dir: &Path) -> std::path::PathBuf {
    let bank = RegisterBank::default();
    bank.set(RegisterKind::Input, 10, &[120]);
    let modbus_port = modbus_server(bank).await;
    let config = dir.join("forewarn.toml");
    let text = pump_config(&dir.join("data"), modbus_port, free_port(), 100, 200);
    std::fs::write(&config, text).expect("write config");
    config
}

fn samples_per_s(message: &str) -> Option<f64> {
    let status = message.lines().find_map(|l| l.strip_prefix("STATUS="))?;
    status.split(" samples/s").next()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_and_watchdog_then_stopping_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path()).await;
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notification socket");
    let socket_env = socket_path.to_str().expect("utf-8 path");
    // 2 s: the agent feeds every second.
    let env = [("NOTIFY_SOCKET", socket_env), ("WATCHDOG_USEC", "2000000")];
    let mut agent = AgentProcess::start_with_env(&config, &dir.path().join("agent.log"), &env);

    let (ready, _) = wait_for(&socket, Duration::from_secs(20), |l| l == "READY=1", &agent).await;
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("outbox 0")),
        "READY=1 comes with a status: {ready:?}"
    );
    let after: Vec<String> = messages_for(&socket, Duration::from_millis(4500)).await;
    let feeds = after.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    assert!(
        (3..=6).contains(&feeds),
        "about one WATCHDOG=1 a second for 4.5 s, got {feeds}: {after:#?}"
    );
    // Two registers every 100 ms: about 20 samples/s once polling runs.
    let rates: Vec<f64> = after.iter().filter_map(|m| samples_per_s(m)).collect();
    assert!(
        rates.iter().any(|&r| (5.0..=60.0).contains(&r)),
        "STATUS= reports samples/s: {after:#?}"
    );
    assert!(after.iter().all(|m| m.contains("outbox 0")), "{after:#?}");
    assert!(!after.iter().any(|m| m.contains("STOPPING=1")));

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(agent.child.id().to_string())
        .status();
    wait_for(&socket, Duration::from_secs(10), |l| l == "STOPPING=1", &agent).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = agent.child.wait().expect("wait");
        (status, agent)
    })
    .await
    .expect("join");
    assert!(
        status.0.success(),
        "orderly exit after SIGTERM: {:?}\n{}",
        status.0,
        status.1.log_text()
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_pipeline_stops_feeding_the_watchdog() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram as StdDatagram};

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path()).await;
    // An abstract socket, as systemd uses in containers.
    let name = format!("forewarn-test-notify-{}-{}", std::process::id(), free_port());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let std_socket = StdDatagram::bind_addr(&addr).expect("bind the notification socket");
    std_socket.set_nonblocking(true).expect("nonblocking");
    let socket = UnixDatagram::from_std(std_socket).expect("tokio socket");
    let socket_env = format!("@{name}");
    let env = [
        ("NOTIFY_SOCKET", socket_env.as_str()),
        ("WATCHDOG_USEC", "1000000"),
        ("FOREWARN_TEST_STALL_AFTER", "3s"),
    ];
    let mut agent = AgentProcess::start_with_env(&config, &dir.path().join("agent.log"), &env);

    wait_for(&socket, Duration::from_secs(20), |l| l == "READY=1", &agent).await;
    let (_, before) = wait_for(
        &socket,
        Duration::from_secs(15),
        |l| l.starts_with("STATUS=pipeline stalled"),
        &agent,
    )
    .await;
    let fed = before.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count();
    assert!(fed >= 3, "the watchdog is fed before the stall: {before:#?}");

    // Stalled: statuses keep coming (the process is alive), the watchdog starves.
    let during = messages_for(&socket, Duration::from_secs(3)).await;
    assert!(during.len() >= 4, "status keeps coming during the stall: {during:#?}");
    assert!(
        during.iter().all(|m| !m.lines().any(|l| l == "WATCHDOG=1")),
        "no WATCHDOG=1 while the pipeline is stalled: {during:#?}"
    );
    assert!(
        during.iter().all(|m| m.contains("STATUS=pipeline stalled")),
        "{during:#?}"
    );
    assert!(
        agent.is_running(),
        "the stalled agent is still alive:\n{}",
        agent.log_text()
    );
    let log = agent.log_text();
    assert!(log.contains("the pipeline stalls now"), "{log}");
    assert!(log.contains("the watchdog is no longer fed"), "{log}");
}
