//! The secured upstream against a real Mosquitto whose listeners the test configures: a
//! TLS listener that requires a client certificate signed by the test CA and a password
//! from `mosquitto_passwd`, and a plain loopback listener for the test's subscriber.
//! Certificates are made at run time with `openssl` (a test CA, the broker's certificate
//! for 127.0.0.1, the gateway's client certificate, and a second, untrusted CA).
//!
//! - the right CA, client certificate and password: connects, publishes the retained
//!   birth message, heartbeats and alerts; `kill -9` leaves the last will `offline`, and
//!   SIGTERM a retained `offline` of its own;
//! - a wrong password, or a broker certificate from an untrusted CA: a clear error in the
//!   log, retries with a growing backoff (no busy loop), no crash, and the password never
//!   in the log;
//! - an `[[mqtt]]` input over the same mutual-TLS listener receives and stores what a
//!   plain client publishes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use forewarn::demo::modbus_server::RegisterBank;
use serde_json::Value;

const USER: &str = "gw-test";
const PASSWORD: &str = "correct-horse-battery";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `{name}.crt`/`{name}.key`.
fn make_ca(dir: &Path, name: &str) {
    let (key, crt, subj) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={name}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &subj,
        ],
    );
}

/// A leaf certificate `{name}.crt`/`{name}.key` signed by CA `ca`, with extensions `ext`.
fn make_leaf(dir: &Path, name: &str, ca: &str, ext: &str) {
    let (key, csr, crt, subj) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("/CN={name}"),
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// Mosquitto with a mutual-TLS + password listener and a plain one for subscribers.
struct SecureBroker {
    broker: Mosquitto,
    tls_port: u16,
    plain_port: u16,
    certs: PathBuf,
}

fn secure_broker() -> SecureBroker {
    let (tls_port, plain_port) = (free_port(), free_port());
    let broker = Mosquitto::start_with_conf(tls_port, |dir| {
        make_ca(dir, "ca");
        make_ca(dir, "rogue-ca");
        make_leaf(
            dir,
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        );
        make_leaf(
            dir,
            "client",
            "ca",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        let passwd = dir.join("passwd");
        let status = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args([USER, PASSWORD])
            .status()
            .expect("mosquitto_passwd (package mosquitto) must be installed");
        assert!(status.success());
        let d = dir.display();
        format!(
            "per_listener_settings true\nuser root\nlog_dest stderr\nlog_type all\npersistence false\n\
             listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n\
             require_certificate true\nallow_anonymous false\npassword_file {d}/passwd\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n"
        )
    });
    wait_for_port(plain_port, Duration::from_secs(10));
    let certs = broker.dir().to_path_buf();
    SecureBroker {
        broker,
        tls_port,
        plain_port,
        certs,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    bank: RegisterBank,
}

async fn setup(b: &SecureBroker, ca: &str, password_line: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let c = b.certs.display();
    let upstream = format!(
        "broker = \"mqtts://127.0.0.1:{port}\"\nsite = \"plant-a\"\n\
         alert_topic = \"forewarn/{{site}}/{{agent}}/alerts/{{asset}}\"\n\
         status_topic = \"forewarn/{{site}}/{{agent}}/status\"\n\
         heartbeat_topic = \"forewarn/{{site}}/{{agent}}/heartbeat\"\nheartbeat_interval = \"1s\"\n\
         ca_file = \"{c}/{ca}.crt\"\nclient_cert = \"{c}/client.crt\"\nclient_key = \"{c}/client.key\"\n\
         username = \"{USER}\"\n{password_line}",
        port = b.tls_port
    );
    let (bank, config) = two_pump_setup(dir.path(), &upstream).await;
    let log = dir.path().join("agent.log");
    Setup {
        _dir: dir,
        config,
        log,
        bank,
    }
}

async fn next_on(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    topic: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (t, p) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing on {topic}"))
            .unwrap();
        let v: Value = serde_json::from_slice(&p).unwrap();
        if t == topic && accept(&v) {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_password_connects_and_keeps_the_status_current() {
    let b = secure_broker();
    let mut rx = subscribe(b.plain_port, "forewarn/#").await;
    let pw_file = b.certs.join("agent-password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let s = setup(&b, "ca", &format!("password_file = \"{}\"", pw_file.display())).await;
    let mut agent = AgentProcess::start(&s.config, &s.log);

    let status = "forewarn/plant-a/gw-test/status";
    let birth = next_on(&mut rx, status, |v| v["state"] == "online").await;
    assert_eq!(
        (&birth["agent"], &birth["site"]),
        (&Value::from("gw-test"), &Value::from("plant-a"))
    );
    assert_eq!(birth["config_hash"].as_str().map(str::len), Some(16));
    let beat = next_on(&mut rx, "forewarn/plant-a/gw-test/heartbeat", |v| {
        v["samples_in"].as_u64() > Some(0)
    })
    .await;
    for field in ["samples_stored", "samples_rejected", "outbox_depth", "device_errors"] {
        assert!(beat[field].is_u64(), "heartbeat lacks {field}: {beat}");
    }

    set_pump_temp(&s.bank, 2, 91.0);
    let alert = next_on(&mut rx, "forewarn/plant-a/gw-test/alerts/line1/pump2", |_| true).await;
    assert_eq!(
        (alert["state"].as_str(), alert["schema"].as_u64()),
        (Some("raised"), Some(1))
    );

    // Connection lost without a goodbye: the broker publishes the last will.
    agent.kill9();
    let will = next_on(&mut rx, status, |v| v["state"] == "offline").await;
    assert_eq!(will["reason"], "connection lost");

    // An orderly stop says goodbye itself, retained.
    let mut agent = AgentProcess::start(&s.config, &s.log.with_extension("2.log"));
    next_on(&mut rx, status, |v| v["state"] == "online").await;
    agent.terminate();
    let bye = next_on(&mut rx, status, |v| v["state"] == "offline").await;
    assert_eq!(bye["reason"], "shutdown");
    let mut late = subscribe(b.plain_port, status).await;
    let retained = next_on(&mut late, status, |_| true).await;
    assert_eq!(retained["reason"], "shutdown");
    assert!(!agent.log_text().contains(PASSWORD));
    drop(b.broker);
}

/// Waits for the fourth failed attempt; the time since the first shows the backoff.
async fn assert_retries_with_backoff(agent: &mut AgentProcess, error: &str) {
    let attempt = "upstream connection attempt failed";
    agent.wait_for_count(attempt, 1, Duration::from_secs(15)).await;
    let first = Instant::now();
    agent.wait_for_count(attempt, 4, Duration::from_secs(15)).await;
    let spent = first.elapsed();
    let log = agent.log_text();
    // 0.25 s, 0.5 s and 1 s between attempts, each ±20 %.
    assert!(
        spent >= Duration::from_millis(1200),
        "retried too fast: 4 attempts in {spent:?}\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("ERROR") && l.contains(error)),
        "no clear error {error:?} in:\n{log}"
    );
    // Logged once, not once per attempt.
    assert_eq!(log.matches("cannot connect to the upstream broker").count(), 1, "{log}");
    assert!(agent.is_running(), "the agent stopped:\n{log}");
    assert!(
        !log.contains(PASSWORD) && !log.contains("wrong-password"),
        "a password was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error_retried_with_backoff() {
    let b = secure_broker();
    let s = setup(&b, "ca", "password_env = \"FOREWARN_TEST_MQTT_PASSWORD\"").await;
    let mut agent =
        AgentProcess::start_with_env(&s.config, &s.log, &[("FOREWARN_TEST_MQTT_PASSWORD", "wrong-password")]);
    assert_retries_with_backoff(&mut agent, "the broker refused the login").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_broker_certificate_is_a_clear_error_retried_with_backoff() {
    let b = secure_broker();
    let s = setup(&b, "rogue-ca", &format!("password = \"{PASSWORD}\"")).await;
    let mut agent = AgentProcess::start(&s.config, &s.log);
    assert_retries_with_backoff(&mut agent, "TLS handshake failed").await;
    assert!(agent.log_text().contains("UnknownIssuer"), "{}", agent.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_input_over_mutual_tls_with_password() {
    let b = secure_broker();
    let dir = tempfile::tempdir().unwrap();
    let c = b.certs.display();
    let data = dir.path().join("data");
    let config = dir.path().join("forewarn.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[agent]
id = "gw-tls-in"
data_dir = "{data}"
[storage]
flush_interval = "100ms"
[upstream]
broker = "mqtt://127.0.0.1:{plain}"
[http]
enabled = false
[[mqtt]]
broker = "mqtts://127.0.0.1:{tls}"
ca_file = "{c}/ca.crt"
client_cert = "{c}/client.crt"
client_key = "{c}/client.key"
username = "{USER}"
password_env = "FOREWARN_TEST_MQTT_PASSWORD"
  [[mqtt.subscribe]]
  topic = "plant/{{machine}}/temp"
  format = "number"
  sensor = "{{machine}}.temp"
"#,
            data = data.display(),
            plain = b.plain_port,
            tls = b.tls_port
        ),
    )
    .unwrap();
    let mut agent = AgentProcess::start_with_env(
        &config,
        &dir.path().join("agent.log"),
        &[("FOREWARN_TEST_MQTT_PASSWORD", PASSWORD)],
    );
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("mosquitto_pub")
        .args([
            "-p",
            &b.plain_port.to_string(),
            "-q",
            "1",
            "-t",
            "plant/pump9/temp",
            "-m",
            "42.5",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!agent.log_text().contains(PASSWORD), "the password leaked into the log");
    agent.kill9();
    let store = forewarn::store::Store::open(&data, Default::default()).unwrap();
    let id = store.lookup_sensor("pump9.temp").unwrap().expect("sensor registered");
    let got = store.read(id, 0, i64::MAX).unwrap();
    assert_eq!(got.iter().map(|s| s.value).collect::<Vec<_>>(), vec![42.5]);
}

/// With every log level on, for forewarn and the libraries under it, no password from the
/// config, a file or the environment reaches the log, through the upstream connection and
/// an MQTT input that both log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_a_trace_log() {
    let b = secure_broker();
    let c = b.certs.display();
    let input = format!(
        "[[mqtt]]\nbroker = \"mqtts://127.0.0.1:{tls}\"\nca_file = \"{c}/ca.crt\"\n\
         client_cert = \"{c}/client.crt\"\nclient_key = \"{c}/client.key\"\nusername = \"{USER}\"\n\
         password_env = \"FOREWARN_TEST_MQTT_PASSWORD\"\n  [[mqtt.subscribe]]\n  topic = \"plant/+/temp\"\n",
        tls = b.tls_port
    );
    let s = setup(&b, "ca", &format!("password = \"{PASSWORD}\"")).await;
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{text}\n{input}")).unwrap();
    let mut agent =
        AgentProcess::start_logging(&s.config, &s.log, "trace", &[("FOREWARN_TEST_MQTT_PASSWORD", PASSWORD)]);
    agent
        .wait_for_log("mqtt input connected", Duration::from_secs(15))
        .await;
    agent
        .wait_for_log("birth message acknowledged", Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.terminate();
    let log = agent.log_text();
    assert!(log.contains("TRACE"), "the log is not at trace level:\n{log}");
    assert!(!log.contains(PASSWORD), "a password reached the trace log");
}
