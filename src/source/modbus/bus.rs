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
        let now = Instant::now();
        let unit = &mut self.units[u];
        let limit = unit.device.timeout.as_duration();
        let name = unit.device.device.as_str();
        let bus_blocked = !self.link.is_open() && now < self.retry_at;
        let unit_blocked = self.link.is_serial() && now < unit.retry_at;
        if bus_blocked || unit_blocked {
            if mark_skipped {
                let ts = now_ms();
                for r in &unit.groups[g].requests {
                    sink(r, ts, Outcome::Failed(Quality::Disconnected));
                }
            }
            return false;
        }
        if !self.link.is_open() {
            match self.link.open(limit).await {
                Ok(()) => {
                    unit.stats.connects.inc();
                    if !unit.healthy {
                        tracing::info!(device = name, "reconnected");
                    }
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
                    let ts = now_ms();
                    for r in &unit.groups[g].requests {
                        sink(r, ts, Outcome::Failed(Quality::Disconnected));
                    }
                    return true;
                }
            }
        }

        unit.stats.polls.inc();
        let unit_id = unit.device.unit;
        let requests = &mut unit.groups[g].requests;
        let mut i = 0;
        while i < requests.len() {
            let ts = now_ms();
            unit.stats.requests.inc();
            let failure = match self.link.read(unit_id, &requests[i], limit).await {
                Ok(data) => {
                    sink(&requests[i], ts, Outcome::Data(&data));
                    requests[i].last_exception = None;
                    i += 1;
                    continue;
                }
                Err(f) => f,
            };
            let req = &requests[i];
            if let ReadFailure::Exception(code) = failure {
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
                        continue;
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
                i += 1;
                continue;
            }
            // The connection is gone: the rest of this cycle cannot be read.
            let q = failure.quality();
            if q == Quality::Timeout {
                unit.stats.timeouts.inc();
            } else {
                unit.stats.transport_errors.inc();
            }
            let delay = if self.link.is_serial() {
                let d = unit.backoff.next_delay();
                unit.retry_at = Instant::now() + d;
                d
            } else {
                let d = self.backoff.next_delay();
                self.retry_at = Instant::now() + d;
                d
            };
            if unit.healthy {
                let detail = match &failure {
                    ReadFailure::Transport(e) => e.clone(),
                    _ => format!("no answer within {limit:?}"),
                };
                tracing::warn!(device = name, address = req.start, error = %detail, retry_in = ?delay, "read failed; backing off");
                unit.healthy = false;
            }
            for r in &requests[i..] {
                sink(r, ts, Outcome::Failed(q));
            }
            return true;
        }
        if !unit.healthy {
            tracing::info!(device = name, "reading again");
            unit.healthy = true;
        }
        unit.backoff.reset();
        self.backoff.reset();
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
