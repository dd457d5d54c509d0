//! The pymodbus device of `tests/peers/modbus_peer.py` as a child process: started on a
//! port (or serial device) with a register map, stopped on drop, restartable.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ModbusPeer {
    args: Vec<String>,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/modbus_peer.py")
}

impl ModbusPeer {
    /// Serves `map` (see the script) on TCP `port`.
    pub fn tcp(map: &serde_json::Value, port: u16) -> ModbusPeer {
        Self::start(map, &["--tcp".into(), port.to_string()])
    }

    /// Serves `map` as the given unit ids on a serial device (RTU).
    pub fn serial(map: &serde_json::Value, device: &str, units: &[u8]) -> ModbusPeer {
        let mut args = vec!["--serial".to_string(), device.to_string()];
        for u in units {
            args.extend(["--unit".to_string(), u.to_string()]);
        }
        Self::start(map, &args)
    }

    /// Accepts connections on `port` and never answers.
    pub fn silent(port: u16) -> ModbusPeer {
        Self::start(
            &serde_json::json!({}),
            &["--silent".into(), "--tcp".into(), port.to_string()],
        )
    }

    fn start(map: &serde_json::Value, args: &[String]) -> ModbusPeer {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("map.json");
        std::fs::write(&path, map.to_string()).expect("write map");
        let mut all = vec![
            script().display().to_string(),
            "--map".into(),
            path.display().to_string(),
        ];
        all.extend(args.iter().cloned());
        let mut peer = ModbusPeer {
            args: all,
            _dir: dir,
            child: None,
        };
        peer.restart();
        peer
    }

    /// Starts the server again (after [`ModbusPeer::stop`]); returns once it serves.
    pub fn restart(&mut self) {
        let mut child = Command::new("python3")
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with pymodbus must be installed (.ci/run installs it)");
        let stdout = child.stdout.take().expect("stdout");
        let deadline = Instant::now() + Duration::from_secs(20);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        assert_eq!(line.trim(), "ready", "the pymodbus peer did not start: {:?}", self.args);
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ModbusPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pseudo-terminal pair made by socat, as two serial devices linked back to back.
pub struct PtyPair {
    pub a: String,
    pub b: String,
    child: Child,
}

impl PtyPair {
    pub fn open() -> PtyPair {
        let dir = std::env::temp_dir();
        let tag = format!("forewarn-pty-{}-{}", std::process::id(), super::free_port());
        let (a, b) = (dir.join(format!("{tag}-a")), dir.join(format!("{tag}-b")));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat must be installed (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(a.exists() && b.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(20));
        }
        PtyPair {
            a: a.display().to_string(),
            b: b.display().to_string(),
            child,
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `forewarn poll --once` on a config text: the JSON lines, the exit code and how
/// long it took.
pub fn forewarn_poll_once(config: &str) -> (Vec<serde_json::Value>, Option<i32>, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("forewarn.toml");
    std::fs::write(&path, config).expect("write config");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["--log", "error", "poll", "--once", "--config"])
        .arg(&path)
        .output()
        .expect("run forewarn poll");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (lines, out.status.code(), elapsed)
}

/// The Sparkplug B edge node of `tests/peers/sparkplug_peer.py` (pysparkplug) as a child
/// process: commands go to its stdin, and every line it prints is kept, so a test can
/// wait for "done CMD" and for the commands (NCMD) it received.
pub struct SparkplugPeer {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SparkplugPeer {
    /// Connects the node to the broker on `port`; returns once it is subscribed.
    pub fn start(port: u16) -> SparkplugPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sparkplug_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with pysparkplug must be installed (.ci/run installs it)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let peer = SparkplugPeer { child, stdin, lines };
        peer.wait_for("ready", 1, Duration::from_secs(20));
        peer
    }

    /// Sends a command (see the script) and waits until it is published.
    pub fn command(&mut self, cmd: &str) {
        use std::io::Write;
        let done = format!("done {}", cmd.split_whitespace().next().unwrap_or_default());
        let before = self.count(&done);
        writeln!(self.stdin, "{cmd}").expect("peer stdin");
        self.stdin.flush().expect("peer stdin");
        self.wait_for(&done, before + 1, Duration::from_secs(10));
    }

    /// How many lines the peer printed that are exactly `line`.
    pub fn count(&self, line: &str) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| *l == line).count()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until the peer printed `line` `n` times.
    pub fn wait_for(&self, line: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count(line) < n {
            assert!(
                Instant::now() < deadline,
                "the sparkplug peer printed {line:?} fewer than {n} times: {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SparkplugPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Sparkplug B host application of `tests/peers/sparkplug_host.py` (pysparkplug) as
/// a child process: every message it decoded is a JSON line; commands (STATE, NCMD rebirth)
/// go to its stdin.
pub struct SparkplugHost {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SparkplugHost {
    /// Subscribes to `spBv1.0/#` on the broker on `port` as host `host`; returns once
    /// subscribed.
    pub fn start(port: u16, host: &str) -> SparkplugHost {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sparkplug_host.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--host", host])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with pysparkplug must be installed (.ci/run installs it)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let host = SparkplugHost { child, stdin, lines };
        host.wait_until("ready", Duration::from_secs(20), |h| {
            h.lines.lock().unwrap().iter().any(|l| l == "ready")
        });
        host
    }

    /// Sends a command (see the script) and waits until it is published.
    pub fn command(&mut self, cmd: &str) {
        use std::io::Write;
        let done = format!("done {}", cmd.split_whitespace().next().unwrap_or_default());
        let count = |h: &SparkplugHost| h.lines.lock().unwrap().iter().filter(|l| **l == done).count();
        let before = count(self);
        writeln!(self.stdin, "{cmd}").expect("host stdin");
        self.stdin.flush().expect("host stdin");
        self.wait_until(&done.clone(), Duration::from_secs(10), |h| count(h) > before);
    }

    /// Every message decoded so far, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Messages of one type (`NBIRTH`, `DBIRTH`, `DDATA`, `NDEATH`, …).
    pub fn of_type(&self, kind: &str) -> Vec<serde_json::Value> {
        self.messages().into_iter().filter(|m| m["type"] == kind).collect()
    }

    /// Waits until `ok` holds; panics with what was decoded after `within`.
    pub fn wait_until(&self, what: &str, within: Duration, ok: impl Fn(&SparkplugHost) -> bool) {
        let deadline = Instant::now() + within;
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the host saw: {:#?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SparkplugHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
