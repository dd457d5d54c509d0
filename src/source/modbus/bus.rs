//! A bus: one transport (a TCP connection, or a serial port) and the devices ("units")
//! read over it, one request at a time, each register group on its own schedule.
//!
//! Guarantees:
//! - Groups start on a fixed schedule. A poll that starts late records how late; a cycle
//!   that overruns its interval counts a missed deadline and the next one starts at the
//!   next slot of the schedule, never in a burst.
//! - TCP: a timeout or transport error drops the connection; it is re-opened after an
//!   exponential backoff with jitter, and the rest of that cycle is marked bad.
//! - Serial: a unit that times out backs off alone; the others on the port keep their
//!   schedule, so a dead slave costs only its own timeout, and only while it is retried.
//! - A request refused with exception 02 is split in two and both halves are read in the
//!   same cycle; a single value refused with 02 is remembered as unreadable, read on its
//!   own and marked bad, so the rest of the device keeps being read.
//! - Samples carry the time their request was sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::base::backoff::Backoff;
use crate::base::sample::{now_ms, Quality, SensorId};
use crate::config::{DataType, ModbusDevice};
use crate::stats::DeviceStats;

use super::link::{Link, ReadFailure};
use super::plan::{self, ReadRequest};
use super::reading::{self, Data};

/// Registers of one device polled at one interval.
#[derive(Debug, Clone)]
pub struct Group {
    pub interval: Duration,
    pub requests: Vec<ReadRequest>,
}

/// A device on a bus.
pub struct Unit {
    pub device: ModbusDevice,
    pub groups: Vec<Group>,
    pub stats: Arc<DeviceStats>,
    backoff: Backoff,
    retry_at: Instant,
    healthy: bool,
}

impl Unit {
    pub fn new(device: ModbusDevice, groups: Vec<Group>, stats: Arc<DeviceStats>) -> Unit {
        let shortest = groups
            .iter()
            .map(|g| g.interval)
            .min()
            .unwrap_or(Duration::from_secs(1));
        Unit {
            device,
            groups,
            stats,
            backoff: reconnect_backoff(shortest),
            retry_at: Instant::now(),
            healthy: true,
        }
    }
}

fn reconnect_backoff(interval: Duration) -> Backoff {
    Backoff::new(
        interval.clamp(Duration::from_millis(200), Duration::from_secs(2)),
        Duration::from_secs(30),
    )
}

/// What became of one request.
pub enum Outcome<'a> {
    Data(&'a Data),
    Failed(Quality),
}

/// Receives each request's outcome with the time it was sent.
pub type Sink<'s> = dyn FnMut(&ReadRequest, i64, Outcome<'_>) + Send + 's;

pub struct Bus {
    link: Link,
    pub units: Vec<Unit>,
    backoff: Backoff,
    retry_at: Instant,
}

impl Bus {
    pub fn new(link: Link, units: Vec<Unit>) -> Bus {
        let shortest = units
            .iter()
            .flat_map(|u| u.groups.iter().map(|g| g.interval))
            .min()
            .unwrap_or(Duration::from_secs(1));
        Bus {
            link,
            units,
            backoff: reconnect_backoff(shortest),
            retry_at: Instant::now(),
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Polls group `g` of unit `u` once. Returns false if it was skipped because the unit
    /// or the connection is backing off; with `mark_skipped` the sink then hears of every
    /// value as disconnected.
    pub async fn poll_group(&mut self, u: usize, g: usize, mark_skipped: bool, sink: &mut Sink<'_>) -> bool {
        if self.backing_off(u) {
            if mark_skipped {
                mark_bad(&self.units[u].groups[g].requests, Quality::Disconnected, sink);
            }
            return false;
        }
        if !self.link.is_open() && !self.connect(u, g, sink).await {
            return true;
        }
        if self.read_group(u, g, sink).await {
            let unit = &mut self.units[u];
            if !unit.healthy {
                tracing::info!(device = %unit.device.device, "reading again");
                unit.healthy = true;
            }
            unit.backoff.reset();
            self.backoff.reset();
        }
        true
    }

    /// The connection (TCP) or the unit (serial) waits out its backoff.
    fn backing_off(&self, u: usize) -> bool {
        let now = Instant::now();
        let bus_blocked = !self.link.is_open() && now < self.retry_at;
        bus_blocked || (self.link.is_serial() && now < self.units[u].retry_at)
    }

    /// Opens the link for unit `u`; on failure backs the bus off and marks group `g` bad.
    async fn connect(&mut self, u: usize, g: usize, sink: &mut Sink<'_>) -> bool {
        let unit = &mut self.units[u];
        let name = unit.device.device.as_str();
        match self.link.open(unit.device.timeout.as_duration()).await {
            Ok(()) => {
                unit.stats.connects.inc();
                if !unit.healthy {
                    tracing::info!(device = name, "reconnected");
                }
                true
            }
            Err(e) => {
                unit.stats.connect_failures.inc();
                let delay = self.backoff.next_delay();
                self.retry_at = Instant::now() + delay;
                if unit.healthy {
                    tracing::warn!(device = name, address = %unit.device.address, error = %e, retry_in = ?delay, "cannot connect");
                    unit.healthy = false;
                } else {
                    tracing::debug!(device = name, error = %e, retry_in = ?delay, "still cannot connect");
                }
                mark_bad(&unit.groups[g].requests, Quality::Disconnected, sink);
                false
            }
        }
    }

    /// Reads every request of group `g`, splitting merged requests refused with exception
    /// 02. Returns false when the connection failed and the rest of the cycle was marked bad.
    async fn read_group(&mut self, u: usize, g: usize, sink: &mut Sink<'_>) -> bool {
        let unit = &mut self.units[u];
        let limit = unit.device.timeout.as_duration();
        unit.stats.polls.inc();
        let mut i = 0;
        while i < unit.groups[g].requests.len() {
            let ts = now_ms();
            unit.stats.requests.inc();
            let requests = &mut unit.groups[g].requests;
            match self.link.read(unit.device.unit, &requests[i], limit).await {
                Ok(data) => {
                    sink(&requests[i], ts, Outcome::Data(&data));
                    requests[i].last_exception = None;
                    i += 1;
                }
                Err(ReadFailure::Exception(code)) => {
                    if !on_exception(unit, g, i, code, ts, sink) {
                        i += 1;
                    }
                }
                Err(failure) => {
                    let delay = if self.link.is_serial() {
                        let d = unit.backoff.next_delay();
                        unit.retry_at = Instant::now() + d;
                        d
                    } else {
                        let d = self.backoff.next_delay();
                        self.retry_at = Instant::now() + d;
                        d
                    };
                    on_lost_connection(unit, g, i, &failure, delay, ts, sink);
                    return false;
                }
            }
        }
        true
    }

    /// Polls every group on its schedule until `shutdown` turns true or the pipeline goes
    /// away. `stagger[u][g]` delays each group's first poll.
    pub async fn run(
        mut self,
        stagger: Vec<Vec<Duration>>,
        bus: mpsc::Sender<crate::source::Batch>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let start = Instant::now();
        let mut due: Vec<(usize, usize, Instant)> = Vec::new();
        for (u, unit) in self.units.iter().enumerate() {
            for g in 0..unit.groups.len() {
                let delay = stagger.get(u).and_then(|s| s.get(g)).copied().unwrap_or_default();
                due.push((u, g, start + delay));
            }
        }
        // Last text of each string sensor: history stores only its fingerprint.
        let mut texts: HashMap<SensorId, String> = HashMap::new();
        loop {
            let Some(k) = (0..due.len()).min_by_key(|&k| due[k].2) else {
                return;
            };
            let (u, g, at) = due[k];
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = shutdown.changed() => break,
            }
            let began = Instant::now();
            let mut samples = Vec::new();
            let polled = {
                let texts = &mut texts;
                let mut sink = |r: &ReadRequest, ts: i64, outcome: Outcome<'_>| match outcome {
                    Outcome::Data(d) => {
                        reading::decode_fields(r, d, ts, &mut samples);
                        log_changed_texts(r, d, texts);
                    }
                    Outcome::Failed(q) => reading::mark_bad(std::iter::once(r), ts, q, &mut samples),
                };
                self.poll_group(u, g, false, &mut sink).await
            };
            let unit = &self.units[u];
            let interval = unit.groups[g].interval;
            if polled {
                unit.stats.lateness.record(began - at);
            }
            let mut next = at + interval;
            let now = Instant::now();
            if next <= now {
                unit.stats.missed_deadlines.inc();
                // Skip the slots already past: the schedule resumes, without a burst.
                let behind = (now - next).as_nanos() / interval.as_nanos().max(1) + 1;
                next += interval * behind as u32;
            }
            due[k].2 = next;
            if !samples.is_empty() && bus.send(samples.into()).await.is_err() {
                break;
            }
        }
        self.close().await;
    }

    /// Closes the connection politely, within the first unit's timeout.
    pub async fn close(&mut self) {
        let limit = self.units.first().map(|u| u.device.timeout.as_duration());
        self.link.close(limit.unwrap_or_default()).await;
    }
}

/// Logs the text of string sensors when it changes (their samples hold a fingerprint).
fn log_changed_texts(r: &ReadRequest, data: &Data, last: &mut HashMap<SensorId, String>) {
    for f in r.fields.iter().filter(|f| f.data_type == DataType::String) {
        let Some(text) = reading::field_text(f, data) else {
            continue;
        };
        if last.get(&f.sensor) != Some(&text) {
            tracing::info!(sensor = %f.name, text = %text, "text changed");
            last.insert(f.sensor, text);
        }
    }
}

/// Tells the sink every value of `requests` is bad.
fn mark_bad(requests: &[ReadRequest], q: Quality, sink: &mut Sink<'_>) {
    let ts = now_ms();
    for r in requests {
        sink(r, ts, Outcome::Failed(q));
    }
}

/// A device exception on request `i` of group `g`: exception 02 on a merged request splits
/// it in place (returns true: read the halves next); otherwise the request's values are
/// marked bad, logged once per new exception code.
fn on_exception(unit: &mut Unit, g: usize, i: usize, code: u8, ts: i64, sink: &mut Sink<'_>) -> bool {
    let name = unit.device.device.as_str();
    let requests = &mut unit.groups[g].requests;
    let req = &requests[i];
    unit.stats.exceptions.inc();
    if code == 2 {
        if let Some((a, b)) = plan::split(req) {
            unit.stats.splits.inc();
            tracing::info!(
                device = name,
                table = req.kind.as_str(),
                start = req.start,
                count = req.count,
                "exception 02 (illegal data address) on a merged request; splitting it"
            );
            requests.splice(i..=i, [a, b]);
            return true;
        }
    }
    let q = Quality::Exception(code);
    if req.last_exception != Some(code) {
        let names: Vec<&str> = req.fields.iter().map(|f| f.name.as_str()).collect();
        tracing::warn!(device = name, table = req.kind.as_str(), address = req.start, count = req.count,
            sensors = %names.join(","), "{q}; sensors marked bad");
    } else {
        tracing::debug!(device = name, address = req.start, "{q}");
    }
    sink(req, ts, Outcome::Failed(q));
    requests[i].last_exception = Some(code);
    false
}

/// The connection failed on request `i`: counts it, logs it once while the unit was
/// healthy, and marks the rest of the cycle bad, since it cannot be read.
fn on_lost_connection(
    unit: &mut Unit,
    g: usize,
    i: usize,
    failure: &ReadFailure,
    delay: Duration,
    ts: i64,
    sink: &mut Sink<'_>,
) {
    let q = failure.quality();
    if q == Quality::Timeout {
        unit.stats.timeouts.inc();
    } else {
        unit.stats.transport_errors.inc();
    }
    let requests = &unit.groups[g].requests;
    if unit.healthy {
        let detail = match failure {
            ReadFailure::Transport(e) => e.clone(),
            _ => format!("no answer within {:?}", unit.device.timeout.as_duration()),
        };
        tracing::warn!(device = %unit.device.device, address = requests[i].start, error = %detail, retry_in = ?delay, "read failed; backing off");
        unit.healthy = false;
    }
    for r in &requests[i..] {
        sink(r, ts, Outcome::Failed(q));
    }
}
