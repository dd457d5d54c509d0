//! Real parts for integration tests: a Mosquitto broker on its own port (killable and
//! restartable), a tokio-modbus server over a register bank, and the agent as a child
//! process with a generated config.
#![allow(dead_code)]

pub mod schema;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use forewarn::demo::modbus_server::{self, RegisterBank};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mosquitto_binary() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

/// A Mosquitto process on its own port, stopped on drop.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra lines for mosquitto.conf.
    extra: String,
    /// A whole config written by the test ([`Mosquitto::start_with_conf`]).
    custom_conf: Option<String>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
            extra: String::new(),
            custom_conf: None,
        };
        m.restart();
        m
    }

    /// A broker with a config of the test's own (listeners, TLS, password file), in a
    /// directory of its own. `conf` gets the directory and returns the config text; `port`
    /// is the listener to wait for.
    pub fn start_with_conf(port: u16, conf: impl FnOnce(&Path) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = conf(dir.path());
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
            extra: String::new(),
            custom_conf: Some(text),
        };
        m.restart();
        m
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGSTOP: the broker keeps its sockets but reads and acknowledges nothing.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-STOP").arg(c.id().to_string()).status();
        }
    }

    /// Starts the broker again on the same port (after [`Mosquitto::stop`]).
    pub fn restart(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        if let Some(text) = &self.custom_conf {
            std::fs::write(&conf, text).expect("write conf");
            self.spawn(&conf);
            return;
        }
        let mut persistence = if self.dir.path().join("persist").exists() {
            format!(
                "persistence true\npersistence_location {}/\n",
                self.dir.path().display()
            )
        } else {
            "persistence false\n".to_string()
        };
        persistence.push_str(&self.extra);
        // `user root`: as root, Mosquitto would otherwise drop to its own user, which
        // cannot write the persistence file into this test's private directory.
        let conf_text = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n{persistence}",
            self.port
        );
        std::fs::write(&conf, conf_text).expect("write conf");
        self.spawn(&conf);
    }

    fn spawn(&mut self, conf: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("log file");
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto must be installed (.ci/run installs it)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    /// SIGTERM: Mosquitto saves its persistent sessions before it exits.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Keeps sessions and queued QoS 1 messages across [`Mosquitto::stop_gracefully`].
    /// A persistent broker with extra config lines (e.g. queue and in-flight limits).
    pub fn start_persistent_with(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("persist"), "").expect("marker");
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
            extra: extra.to_string(),
            custom_conf: None,
        };
        m.restart();
        m
    }

    pub fn start_persistent() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("persist"), "").expect("marker");
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
            extra: String::new(),
            custom_conf: None,
        };
        m.restart();
        m
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tokio-modbus TCP server serving `bank` on a free port, in this process.
pub async fn modbus_server(bank: RegisterBank) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(modbus_server::serve(listener, bank));
    port
}

/// Subscribes to `filter` and forwards every message (topic, payload) to the receiver.
/// Returns once the subscription is acknowledged.
pub async fn subscribe(port: u16, filter: &str) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    subscribe_as(port, filter, &format!("test-sub-{}", free_port()), true).await
}

/// Like [`subscribe`], with a client id and, with `clean_session = false`, a session the
/// broker keeps (and queues QoS 1 messages for) while the subscriber is away.
pub async fn subscribe_as(
    port: u16,
    filter: &str,
    id: &str,
    clean_session: bool,
) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_clean_session(clean_session);
    let (client, mut events) = AsyncClient::new(options, 64);
    client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            // A resumed session may deliver queued messages before the SUBACK.
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => assert!(Instant::now() < deadline, "no SUBACK"),
        }
    }
    tokio::spawn(async move {
        let _client = client;
        loop {
            let event = tokio::select! {
                // The test dropped its receiver: leave, so this client id is free again.
                _ = tx.closed() => return,
                event = events.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    rx
}

/// Like [`subscribe`], but the subscription survives a broker that restarts without its
/// sessions: the client reconnects and subscribes again after every CONNACK. The watch
/// counts acknowledged subscriptions, so a test can wait until the subscriber is back.
pub async fn subscribe_resilient(
    port: u16,
    filter: &str,
) -> (
    mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    tokio::sync::watch::Receiver<u32>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (subacks_tx, mut subacks) = tokio::sync::watch::channel(0u32);
    let mut options = MqttOptions::new(format!("test-resilient-{}", free_port()), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 64);
    let filter = filter.to_string();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = tx.closed() => return,
                event = events.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => subacks_tx.send_modify(|n| *n += 1),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subacks.wait_for(|n| *n >= 1))
        .await
        .expect("no SUBACK")
        .expect("subscriber alive");
    (rx, subacks)
}

/// A TCP forwarder in front of a broker that the test opens and closes: closed, it
/// accepts and hangs up at once (the agent sees a broker that is down) and cuts the
/// connections it was forwarding.
pub struct Gate {
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    forwards: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Gate {
    pub async fn start(target: u16) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let forwards = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_open, handles) = (open.clone(), forwards.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                handles.lock().unwrap().push(forward);
            }
        });
        Gate { port, open, forwards }
    }

    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for f in self.forwards.lock().unwrap().drain(..) {
            f.abort();
        }
    }
}

/// The agent as a child process, killed on drop.
pub struct AgentProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl AgentProcess {
    pub fn start(config: &Path, log: &Path) -> AgentProcess {
        AgentProcess::start_with_env(config, log, &[])
    }

    /// Like [`AgentProcess::start`], with extra environment variables.
    pub fn start_with_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> AgentProcess {
        AgentProcess::start_logging(config, log, "forewarn=debug,info", env)
    }

    /// Like [`AgentProcess::start_with_env`], with the `--log` filter given.
    pub fn start_logging(config: &Path, log: &Path, filter: &str, env: &[(&str, &str)]) -> AgentProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["--log", filter, "run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start the agent");
        AgentProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: the agent's orderly shutdown.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the agent's log contains `needle` at least `n` times.
    pub async fn wait_for_count(&self, needle: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log_text().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "agent logged {needle:?} fewer than {n} times:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the agent's log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "agent never logged {needle:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A config with one Modbus device and one overheat rule, for the given ports.
pub fn pump_config(data_dir: &Path, modbus_port: u16, broker_port: u16, interval_ms: u64, flush_ms: u64) -> String {
    format!(
        r#"
[agent]
id = "gw-test"
data_dir = "{data}"

[storage]
flush_interval = "{flush_ms}ms"
# Seal often, so that kills land in the middle of sealing too.
seal_interval = "1s"

[http]
enabled = false

[upstream]
broker = "mqtt://127.0.0.1:{broker_port}"
alert_topic = "forewarn/{{agent}}/alerts/{{asset}}"

[[modbus]]
device = "pump1-plc"
address = "127.0.0.1:{modbus_port}"
interval = "{interval_ms}ms"
timeout = "300ms"

  [[modbus.register]]
  sensor = "pump1.bearing_temp"
  kind = "holding"
  address = 0
  type = "f32"

  [[modbus.register]]
  sensor = "pump1.vibration"
  kind = "input"
  address = 10
  type = "u16"
  scale = 0.01

[[asset]]
id = "line1/pump1"
sensors = ["pump1.bearing_temp", "pump1.vibration"]

  [[asset.rule]]
  name = "bearing-overheat"
  sensor = "pump1.bearing_temp"
  above = 80.0
  clear_below = 75.0
  severity = "critical"
"#,
        data = data_dir.display()
    )
}

pub mod check;
pub mod peer;

/// Sets the `f32` bearing temperature of pump `n` (1 or 2) of [`two_pump_config`].
pub fn set_pump_temp(bank: &RegisterBank, n: u16, t: f64) {
    use forewarn::config::{DataType, RegisterKind, WordOrder};
    let words = forewarn::source::modbus::decode::encode(t, DataType::F32, WordOrder::ABCD);
    bank.set(RegisterKind::Holding, (n - 1) * 2, &words);
}

/// A config with two pumps (assets `line1/pump1` and `line1/pump2`, each with an
/// overheat rule above 80, clearing below 75) on one Modbus device polled every 100 ms.
/// `upstream` is the whole body of `[upstream]`; `assets` is appended to the file.
pub fn two_pump_config(data_dir: &Path, modbus_port: u16, upstream: &str, assets: &str) -> String {
    format!(
        r#"
[agent]
id = "gw-test"
data_dir = "{data}"

[storage]
flush_interval = "200ms"

[http]
enabled = false

[upstream]
{upstream}

[[modbus]]
device = "plc"
address = "127.0.0.1:{modbus_port}"
interval = "100ms"
timeout = "300ms"

  [[modbus.register]]
  sensor = "pump1.bearing_temp"
  kind = "holding"
  address = 0
  type = "f32"

  [[modbus.register]]
  sensor = "pump2.bearing_temp"
  kind = "holding"
  address = 2
  type = "f32"

[[asset]]
id = "line1/pump1"
sensors = ["pump1.bearing_temp"]

  [[asset.rule]]
  name = "overheat"
  sensor = "pump1.bearing_temp"
  above = 80.0
  clear_below = 75.0
  severity = "critical"

[[asset]]
id = "line1/pump2"
sensors = ["pump2.bearing_temp"]

  [[asset.rule]]
  name = "overheat"
  sensor = "pump2.bearing_temp"
  above = 80.0
  clear_below = 75.0
{assets}
"#,
        data = data_dir.display()
    )
}

/// Collects alert messages (JSON) from `rx`, de-duplicated by `id`, until `done` holds
/// for them; panics with `context()` after `within`.
pub async fn collect_alerts(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    within: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
    context: impl Fn() -> String,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while !done(&out) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((_, payload))) => {
                let v: serde_json::Value = serde_json::from_slice(&payload).expect("alert is JSON");
                if seen.insert(v["id"].as_str().unwrap_or_default().to_string()) {
                    out.push(v);
                }
            }
            _ => panic!("alerts missing; got {out:#?}\n{}", context()),
        }
    }
    out
}

/// Both pumps of [`two_pump_config`] at 60 °C behind a Modbus server, and the config
/// written to `dir/forewarn.toml` (data in `dir/data`). Returns the register bank and
/// the config's path.
pub async fn two_pump_setup(dir: &Path, upstream: &str) -> (RegisterBank, PathBuf) {
    let bank = RegisterBank::default();
    set_pump_temp(&bank, 1, 60.0);
    set_pump_temp(&bank, 2, 60.0);
    let modbus_port = modbus_server(bank.clone()).await;
    let config = dir.join("forewarn.toml");
    std::fs::write(&config, two_pump_config(&dir.join("data"), modbus_port, upstream, "")).expect("write config");
    (bank, config)
}

/// An `[[mqtt]]` input on a persistent QoS 1 session, one JSON subscription on
/// `plant/{machine}/telemetry` naming `{machine}.{field}`, stamped by `ts`.
pub fn json_input(client_id: &str, broker: u16) -> String {
    format!(
        r#"[[mqtt]]
broker = "mqtt://127.0.0.1:{broker}"
client_id = "{client_id}"
qos = 1
clean_session = false
  [[mqtt.subscribe]]
  topic = "plant/{{machine}}/telemetry"
  format = "json"
  sensor = "{{machine}}.{{field}}"
  timestamp = "ts"
"#
    )
}

/// `forewarn passwd FILE USER --role ROLE --password-stdin`: adds a user of the HTTP API.
pub fn passwd(file: &Path, user: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("passwd")
        .arg(file)
        .args([user, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
