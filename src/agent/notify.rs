//! The service manager's view of the agent: systemd's notification protocol
//! (`sd_notify`) for `Type=notify`, spoken directly over a Unix datagram socket (no
//! libsystemd).
//!
//! - `READY=1` once the store is open and every source, the publisher, the HTTP API and
//!   retention have started ([`Supervisor::ready`]).
//! - `STATUS=` with the rate of samples received and the outbox depth, refreshed on every
//!   tick, and naming a stalled pipeline when there is one.
//! - `WATCHDOG=1` (when systemd sets `WATCHDOG_USEC`) with each status, at least every half
//!   watchdog period, but only while the pipeline makes progress: the pipeline bumps a [`Heartbeat`] on every turn of
//!   its loop (it turns at least once a second, on its clock tick), and a tick whose
//!   heartbeat has not moved for [`STALL_GRACE`] sends no `WATCHDOG=1`. A hung pipeline
//!   (a flush that never returns, a deadlock) therefore stops feeding the watchdog and
//!   systemd restarts the agent, which an independent timer would hide.
//! - `STOPPING=1` as soon as shutdown begins (SIGTERM).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) everything here is
//! inert. A message that cannot be sent is logged once at debug level and never fails the
//! agent: notifications are advice to the service manager, not part of the data path.

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::signals::wait_true;
use crate::stats::Stats;

/// How often `STATUS=` is refreshed at the latest (more often with a short watchdog).
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// A heartbeat that has not moved for this long is a stalled pipeline: twice the
/// pipeline's one-second clock tick, so a tick that falls between two turns of an idle
/// pipeline still feeds the watchdog.
pub(crate) const STALL_GRACE: Duration = Duration::from_secs(2);

/// Progress of the pipeline: a counter its loop bumps on every turn.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A sender of notifications to `$NOTIFY_SOCKET`, or nothing when it is unset.
#[derive(Debug)]
pub(crate) struct Notifier {
    target: Option<Target>,
}

#[cfg(unix)]
#[derive(Debug)]
struct Target {
    socket: std::os::unix::net::UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

#[cfg(not(unix))]
#[derive(Debug)]
struct Target;

impl Notifier {
    /// The notifier systemd asks for through `NOTIFY_SOCKET`; inert when it is unset or
    /// unusable (logged: the agent runs on, the unit's start would just time out).
    pub fn from_env() -> Notifier {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        match Notifier::for_socket(&value) {
            Ok(notifier) => notifier,
            Err(e) => {
                tracing::warn!(socket = ?value, error = %e, "NOTIFY_SOCKET unusable; no notifications to the service manager");
                Notifier { target: None }
            }
        }
    }

    /// A notifier for one socket: a path, or an abstract name written `@name`.
    pub fn for_socket(value: &OsStr) -> io::Result<Notifier> {
        Ok(Notifier {
            target: Some(Target::open(value)?),
        })
    }

    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message (`KEY=value` lines); a no-op without a socket.
    pub fn send(&self, message: &str) -> io::Result<()> {
        match &self.target {
            Some(target) => target.send(message.as_bytes()),
            None => Ok(()),
        }
    }
}

#[cfg(unix)]
impl Target {
    fn open(value: &OsStr) -> io::Result<Target> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let bytes = value.as_bytes();
        let addr = match bytes {
            [] => return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty socket name")),
            [b'@', name @ ..] => abstract_addr(name)?,
            [b'/', ..] => SocketAddr::from_pathname(std::path::Path::new(value))?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract name (@name)",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        // A full receive queue must never block a runtime thread: the message is dropped
        // instead, and the next tick sends a fresh one.
        socket.set_nonblocking(true)?;
        Ok(Target { socket, addr })
    }

    /// Addressed on every send rather than connected once, so a socket that systemd
    /// re-creates (`daemon-reexec`) is found again.
    fn send(&self, message: &[u8]) -> io::Result<()> {
        self.socket.send_to_addr(message, &self.addr).map(|_| ())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn abstract_addr(_name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

#[cfg(not(unix))]
impl Target {
    fn open(_value: &OsStr) -> io::Result<Target> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no Unix sockets on this platform",
        ))
    }

    fn send(&self, _message: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// The watchdog period systemd set (`WATCHDOG_USEC`), if it is meant for this process
/// (`WATCHDOG_PID`, when set, names it).
pub(crate) fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Decides, tick by tick, whether the pipeline still makes progress.
#[derive(Debug)]
pub(crate) struct Progress {
    last_beat: u64,
    last_moved: Instant,
}

impl Progress {
    pub fn new(beat: u64, now: Instant) -> Progress {
        Progress {
            last_beat: beat,
            last_moved: now,
        }
    }

    /// How long the heartbeat has stood still, if longer than [`STALL_GRACE`].
    pub fn stalled(&mut self, beat: u64, now: Instant) -> Option<Duration> {
        if beat != self.last_beat {
            self.last_beat = beat;
            self.last_moved = now;
        }
        let still = now.saturating_duration_since(self.last_moved);
        (still > STALL_GRACE).then_some(still)
    }
}

/// The `STATUS=` text.
pub(crate) fn status_text(samples_per_s: f64, outbox_depth: u64, stalled: Option<Duration>) -> String {
    match stalled {
        Some(still) => format!("pipeline stalled for {} s; outbox {outbox_depth}", still.as_secs()),
        None => format!("{samples_per_s:.1} samples/s; outbox {outbox_depth}"),
    }
}

/// The task that tells the service manager about the agent.
pub(crate) struct Supervisor {
    pub notifier: Notifier,
    pub heartbeat: Heartbeat,
    pub stats: Arc<Stats>,
    /// `WATCHDOG_USEC`, when systemd watches the agent.
    pub watchdog: Option<Duration>,
}

impl Supervisor {
    /// From systemd's environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env(heartbeat: Heartbeat, stats: Arc<Stats>) -> Supervisor {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Supervisor {
            notifier: Notifier::from_env(),
            heartbeat,
            stats,
            watchdog: watchdog_period(usec.as_deref(), pid.as_deref(), std::process::id()),
        }
    }

    /// `READY=1`: the store is open and the sources run.
    pub fn ready(&self) {
        if self.notifier.is_active() {
            tracing::info!(watchdog = ?self.watchdog, "notifying the service manager: ready");
        }
        let status = status_text(0.0, self.stats.outbox_depth.get(), None);
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// Refreshes the status and feeds the watchdog until shutdown, then says `STOPPING=1`.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        if !self.notifier.is_active() {
            return;
        }
        let every = self.watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        let mut progress = Progress::new(self.heartbeat.get(), Instant::now());
        let mut last = (Instant::now(), self.stats.samples_in.get());
        let mut was_stalled = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => break,
            }
            let now = Instant::now();
            let samples = self.stats.samples_in.get();
            let elapsed = now.saturating_duration_since(last.0).as_secs_f64();
            let rate = if elapsed > 0.0 {
                samples.saturating_sub(last.1) as f64 / elapsed
            } else {
                0.0
            };
            last = (now, samples);
            let stalled = progress.stalled(self.heartbeat.get(), now);
            if stalled.is_some() != was_stalled {
                was_stalled = stalled.is_some();
                if was_stalled {
                    tracing::error!("the pipeline makes no progress; the watchdog is no longer fed");
                } else {
                    tracing::info!("the pipeline makes progress again");
                }
            }
            let status = status_text(rate, self.stats.outbox_depth.get(), stalled);
            let feed = if self.watchdog.is_some() && stalled.is_none() {
                "WATCHDOG=1\n"
            } else {
                ""
            };
            self.send(&format!("{feed}STATUS={status}"));
        }
        self.send("STOPPING=1\nSTATUS=stopping: storing what was received, draining the outbox");
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.notifier.send(message) {
            tracing::debug!(error = %e, "notification to the service manager not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_follows_usec_and_pid() {
        assert_eq!(
            watchdog_period(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_period(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        // Meant for another process (inherited from a parent that systemd watches).
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
    }

    #[test]
    fn a_still_heartbeat_is_a_stall_only_after_the_grace() {
        let t0 = Instant::now();
        let mut p = Progress::new(0, t0);
        assert_eq!(p.stalled(0, t0 + Duration::from_secs(1)), None);
        assert_eq!(p.stalled(1, t0 + Duration::from_secs(2)), None);
        assert_eq!(p.stalled(1, t0 + Duration::from_secs(4)), None);
        assert_eq!(p.stalled(1, t0 + Duration::from_secs(5)), Some(Duration::from_secs(3)));
        // Moving again ends the stall at once.
        assert_eq!(p.stalled(2, t0 + Duration::from_secs(6)), None);
    }

    #[test]
    fn status_names_rate_outbox_and_stall() {
        assert_eq!(status_text(12.34, 3, None), "12.3 samples/s; outbox 3");
        assert_eq!(
            status_text(0.0, 0, Some(Duration::from_millis(4500))),
            "pipeline stalled for 4 s; outbox 0"
        );
    }

    #[test]
    fn socket_names_are_paths_or_abstract() {
        assert!(Notifier::for_socket(OsStr::new("")).is_err());
        assert!(Notifier::for_socket(OsStr::new("relative/notify")).is_err());
        assert!(!Notifier { target: None }.is_active());
        assert!(Notifier { target: None }.send("READY=1").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn sends_to_a_path_socket() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::for_socket(path.as_os_str()).expect("notifier");
        notifier.send("READY=1\nSTATUS=up").expect("send");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let name = format!("forewarn-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind");
        let notifier = Notifier::for_socket(OsStr::new(&format!("@{name}"))).expect("notifier");
        notifier.send("WATCHDOG=1").expect("send");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
