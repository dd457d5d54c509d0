//! Telemetry forwarding to Debian's InfluxDB 1.x (`influxd`, started by the test on its
//! own ports): every stored sample arrives through a database outage and a `kill -9` of
//! the agent; a missing database and a wrong password are each one clear error, the
//! cursor stays, and data flows once the cause is fixed.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, json_input, wait_for_port, AgentProcess, Mosquitto};
use rumqttc::{AsyncClient, MqttOptions, QoS};

/// An `influxd` with its own directories and ports, killed on drop.
struct Influx {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    auth: bool,
}

impl Influx {
    fn start(auth: bool) -> Influx {
        let mut i = Influx {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            auth,
        };
        i.restart();
        i
    }

    fn restart(&mut self) {
        let d = self.dir.path().display();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  auth-enabled = {auth}\n  log-enabled = false\n",
            rpc = free_port(),
            port = self.port,
            auth = self.auth,
        );
        let path = self.dir.path().join("influxdb.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("influxd")
            .arg("-config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("influxd (Debian package influxdb) must be installed");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(20));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `POST /query` with `q`, as `user` when given; the body.
    fn query(&self, q: &str, user: Option<(&str, &str)>) -> String {
        let body = format!("q={}", urlencode(q));
        let mut req = format!(
            "POST /query?db=plant HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some((u, p)) = user {
            req.push_str(&format!("Authorization: Basic {}\r\n", b64(&format!("{u}:{p}"))));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Points of `sensor` stored.
    fn count(&self, sensor: &str, user: Option<(&str, &str)>) -> u64 {
        let text = self.query(
            &format!("SELECT count(value) FROM forewarn WHERE sensor = '{sensor}'"),
            user,
        );
        let Some(json) = text.split("\r\n\r\n").nth(1) else {
            return 0;
        };
        let json = json.lines().find(|l| l.starts_with('{')).unwrap_or("{}");
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        v["results"][0]["series"][0]["values"][0][1].as_u64().unwrap_or(0)
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        self.kill();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn config(data: &Path, input: u16, influx: u16, extra: &str) -> String {
    format!(
        r#"
[agent]
id = "gw-test"
data_dir = "{data}"

[storage]
flush_interval = "50ms"

[upstream]
broker = "mqtt://127.0.0.1:{input}"

[http]
enabled = false

[[asset]]
id = "pump1"
sensors = ["pump1.temp"]

{inp}
[[forward]]
name = "historian"
to = "http://127.0.0.1:{influx}"
format = "influx"
database = "plant"
live_window = "3s"
interval = "200ms"
batch = 100
backfill_rate = 1000
{extra}
"#,
        data = data.display(),
        inp = json_input(&format!("fwd-influx-{}", free_port()), input),
    )
}

async fn publish(port: u16, t0: i64, n: i64) {
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new(format!("pub-{}", free_port()), "127.0.0.1", port), 100);
    let poll = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for i in 0..n {
        let body = format!(r#"{{"ts": {}, "temp": {}}}"#, t0 + i * 10, i);
        client
            .publish("plant/pump1/telemetry", QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poll).await;
}

async fn wait_count(influx: &Influx, n: u64, user: Option<(&str, &str)>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let c = influx.count("pump1.temp", user);
        if c >= n {
            assert_eq!(c, n, "more points than samples");
            return;
        }
        assert!(Instant::now() < deadline, "only {c} of {n} points arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_through_an_outage_and_a_kill_9() {
    let input = Mosquitto::start_persistent();
    let mut influx = Influx::start(false);
    influx.query("CREATE DATABASE plant", None);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("forewarn.toml");
    std::fs::write(&cfg, config(&dir.path().join("data"), input.port, influx.port, "")).unwrap();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent.log"));
    agent
        .wait_for_log("forwarding to InfluxDB", Duration::from_secs(10))
        .await;
    let t0 = forewarn::base::time::now_ms() - 60_000;
    publish(input.port, t0, 200).await;
    wait_count(&influx, 200, None, Duration::from_secs(20)).await;

    influx.kill();
    publish(input.port, t0 + 2_000, 300).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agent.log_text().contains("destination unreachable"),
        "{}",
        agent.log_text()
    );
    influx.restart();
    wait_count(&influx, 500, None, Duration::from_secs(40)).await;

    publish(input.port, t0 + 5_000, 300).await;
    agent.kill9();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("agent2.log"));
    wait_count(&influx, 800, None, Duration::from_secs(30)).await;
    // A line protocol point per sample: values and the tags as written.
    let text = influx.query("SELECT value FROM forewarn WHERE sensor = 'pump1.temp' LIMIT 2", None);
    assert!(text.contains("\"values\":[["), "{text}");
    let tags = influx.query("SHOW TAG VALUES FROM forewarn WITH KEY = asset", None);
    assert!(tags.contains("pump1"), "{tags}");
    agent.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_and_a_wrong_password_are_one_error_each() {
    let input = Mosquitto::start_persistent();
    let influx = Influx::start(true);
    // The first user may be created without credentials.
    influx.query("CREATE USER admin WITH PASSWORD 'secret' WITH ALL PRIVILEGES", None);
    let admin = Some(("admin", "secret"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("forewarn.toml");
    let data = dir.path().join("data");

    // Wrong password: 401, once in the log, nothing confirmed.
    let wrong = "username = \"admin\"\npassword = \"nope\"\n";
    std::fs::write(&cfg, config(&data, input.port, influx.port, wrong)).unwrap();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("a.log"));
    agent
        .wait_for_log("forwarding to InfluxDB", Duration::from_secs(10))
        .await;
    publish(input.port, forewarn::base::time::now_ms(), 50).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = agent.log_text();
    assert_eq!(log.matches("destination refuses the data").count(), 1, "{log}");
    assert!(log.contains("401"), "{log}");
    agent.terminate();

    // Right password, database missing: 404, once; creating it lets the data through
    // without a restart, from the cursor that never moved.
    let right =
        "username = \"admin\"\npassword_file = \"PW\"\n".replace("PW", &dir.path().join("pw").display().to_string());
    std::fs::write(dir.path().join("pw"), "secret\n").unwrap();
    std::fs::write(&cfg, config(&data, input.port, influx.port, &right)).unwrap();
    let mut agent = AgentProcess::start(&cfg, &dir.path().join("b.log"));
    agent
        .wait_for_log("forwarding to InfluxDB", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = agent.log_text();
    assert_eq!(log.matches("destination refuses the data").count(), 1, "{log}");
    assert!(log.contains("database not found"), "{log}");
    influx.query("CREATE DATABASE plant", admin);
    wait_count(&influx, 50, admin, Duration::from_secs(40)).await;
    assert!(
        !agent.log_text().contains("secret"),
        "the password never reaches the log"
    );
    agent.terminate();
}
