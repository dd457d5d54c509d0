//! What every destination's loop shares: the planner with its cursors, the sensors it
//! covers (found again as inputs create new ones), confirmation into the durable cursor,
//! the figures, and the retry policy that logs each distinct failure once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::{Batch, Item, PlanOptions, Planner, Target};
use super::UNASSIGNED;
use crate::base::backoff::Backoff;
use crate::base::glob::glob_match;
use crate::base::sample::Sample;
use crate::base::sample::SensorId;
use crate::base::time::now_ms;
use crate::config::{Asset, ForwardSettings};
use crate::stats::ForwardFigures;
use crate::store::cursor::Cursors;
use crate::store::{Store, StoreError};

/// How often the sensor registry is read again for sensors that appeared.
const REFRESH: Duration = Duration::from_secs(10);
/// How often lag and backlog are measured.
const GAUGES: Duration = Duration::from_secs(5);
/// How far back a sensor's last known sample is looked for (a birth's value).
const LAST_LOOKBACK_MS: i64 = 3_600_000;

/// The asset each sensor belongs to (the first asset that lists it).
pub struct AssetMap {
    by_sensor: HashMap<String, Arc<str>>,
    unassigned: Arc<str>,
}

impl AssetMap {
    pub fn new(assets: &[Asset]) -> AssetMap {
        let mut by_sensor = HashMap::new();
        for a in assets {
            let id: Arc<str> = Arc::from(a.id.as_str());
            for s in &a.sensors {
                by_sensor.entry(s.clone()).or_insert_with(|| id.clone());
            }
        }
        AssetMap {
            by_sensor,
            unassigned: Arc::from(UNASSIGNED),
        }
    }

    fn of(&self, sensor: &str) -> Arc<str> {
        self.by_sensor.get(sensor).unwrap_or(&self.unassigned).clone()
    }
}

pub struct Engine {
    pub name: String,
    pub agent: String,
    pub interval: Duration,
    /// Samples younger than this are live; older ones are backlog.
    pub live_window_ms: i64,
    globs: Vec<String>,
    batch: usize,
    store: Store,
    cursors: Cursors,
    pub stats: Arc<ForwardFigures>,
    assets: Arc<AssetMap>,
    planner: Planner,
    known: HashMap<SensorId, ()>,
    refreshed: Instant,
    measured: Option<Instant>,
    backfill_clock: Instant,
    /// Late-journal positions: handed over, and confirmed (the durable one).
    late_sent: u64,
    late_confirmed: u64,
    late_queue: VecDeque<Batch>,
}

impl Engine {
    pub fn new(
        s: &ForwardSettings,
        store: Store,
        cursors: Cursors,
        stats: Arc<ForwardFigures>,
        assets: Arc<AssetMap>,
    ) -> Result<Engine, StoreError> {
        let opts = PlanOptions {
            batch: s.batch,
            backfill_rate: s.backfill_rate,
            backfill_order: s.backfill_order,
            live_window_ms: s.live_window_ms,
            shaping: s.shaping,
        };
        let confirmed = cursors.load(&s.name)?;
        let late = cursors.late(&s.name)?;
        let mut engine = Engine {
            name: s.name.clone(),
            agent: s.agent.clone(),
            interval: s.interval,
            live_window_ms: s.live_window_ms,
            globs: s.sensors.clone(),
            batch: s.batch,
            planner: Planner::new(opts, Vec::new(), confirmed),
            store,
            cursors,
            stats,
            assets,
            known: HashMap::new(),
            refreshed: Instant::now(),
            measured: None,
            backfill_clock: Instant::now(),
            late_sent: late,
            late_confirmed: late,
            late_queue: VecDeque::new(),
        };
        engine.refresh()?;
        engine.drop_uncovered()?;
        Ok(engine)
    }

    /// Adds sensors of the registry that match and are not forwarded yet.
    fn refresh(&mut self) -> Result<(), StoreError> {
        self.refreshed = Instant::now();
        for (id, name) in self.store.sensors()? {
            if self.known.contains_key(&id) || !self.globs.iter().any(|g| glob_match(g, &name)) {
                continue;
            }
            self.known.insert(id, ());
            let target = Target {
                sensor: id,
                name: Arc::from(name.as_str()),
            };
            self.planner.add(self.assets.of(&name), target);
        }
        Ok(())
    }

    /// Cursors of sensors this destination no longer covers are removed, so they do not
    /// hold retention back.
    fn drop_uncovered(&mut self) -> Result<(), StoreError> {
        let stale: Vec<SensorId> = self
            .planner
            .confirmed
            .keys()
            .filter(|id| !self.known.contains_key(id))
            .copied()
            .collect();
        if !stale.is_empty() {
            tracing::info!(destination = %self.name, sensors = stale.len(), "cursors of sensors no longer forwarded dropped");
            self.cursors.remove(&self.name, &stale)?;
            for id in &stale {
                self.planner.confirmed.remove(id);
            }
        }
        Ok(())
    }

    /// The next batch with something to send. Batches that only move cursors (an empty
    /// gap, samples all inside the deadband) are confirmed here, at once.
    pub fn next_batch(&mut self) -> Option<Batch> {
        if self.refreshed.elapsed() >= REFRESH {
            if let Err(e) = self.refresh() {
                tracing::warn!(destination = %self.name, error = %e, "cannot read the sensor registry");
            }
        }
        self.measure_if_due();
        let elapsed = self.backfill_clock.elapsed().as_secs_f64();
        self.backfill_clock = Instant::now();
        self.planner.refill(elapsed);
        for _ in 0..64 {
            if self.late_queue.is_empty() {
                self.fill_late();
            }
            if let Some(batch) = self.late_queue.pop_front() {
                if batch.items.is_empty() {
                    self.confirmed(&batch);
                    continue;
                }
                return Some(batch);
            }
            let batch = match self.planner.next_batch(&self.store, now_ms()) {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(destination = %self.name, error = %e, "cannot read the store");
                    return None;
                }
            };
            if !batch.items.is_empty() {
                return Some(batch);
            }
            self.confirmed(&batch);
        }
        None
    }

    /// Batches of the late journal's next records: the samples this destination's
    /// time-ordered reads have already passed. The last batch of a record carries its
    /// position, so the position moves only once all of the record is confirmed.
    fn fill_late(&mut self) {
        let records = match self.store.late_after(self.late_sent, 16) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(destination = %self.name, error = %e, "cannot read the late journal");
                return;
            }
        };
        let names: HashMap<SensorId, Arc<str>> = self.planner.sensors().map(|t| (t.sensor, t.name.clone())).collect();
        for (seq, samples) in records {
            let mut by_asset: Vec<Batch> = Vec::new();
            let mut held = 0u64;
            for s in samples {
                let Some(name) = names.get(&s.sensor) else { continue };
                if !self.planner.has_passed(s.sensor, s.ts_ms) {
                    continue;
                }
                if !self.planner.sends_raw() {
                    held += 1;
                    continue;
                }
                let asset = self.assets.of(name);
                let full = |b: &Batch| b.asset == asset && b.items.len() < self.batch;
                match by_asset.iter_mut().rev().find(|b| full(b)) {
                    Some(b) => b.items.push((name.clone(), Item::Raw(s))),
                    None => by_asset.push(Batch {
                        asset,
                        items: vec![(name.clone(), Item::Raw(s))],
                        ..Batch::default()
                    }),
                }
            }
            if held > 0 {
                tracing::warn!(destination = %self.name, samples = held, "late samples for rollups already sent are not sent");
            }
            let mut last = by_asset.pop().unwrap_or_default();
            last.late = Some(seq);
            last.suppressed += held;
            self.late_queue.extend(by_asset);
            self.late_queue.push_back(last);
            self.late_sent = seq;
        }
    }

    /// The assets forwarded now, each with its sensors.
    pub fn assets(&self) -> &[(Arc<str>, Vec<Target>)] {
        self.planner.assets()
    }

    /// The newest stored sample of `sensor` within the last hour, if any.
    pub fn last_sample(&self, sensor: SensorId) -> Option<Sample> {
        let from = now_ms().saturating_sub(LAST_LOOKBACK_MS);
        self.store.read(sensor, from, i64::MAX).ok()?.pop()
    }

    /// The session number after the one last stored, stored before it is used, so a
    /// crash never makes a destination reuse one.
    pub fn next_session(&self, next: impl FnOnce(Option<u64>) -> u64) -> u64 {
        let previous = self.cursors.session(&self.name).unwrap_or_else(|e| {
            tracing::warn!(destination = %self.name, error = %e, "cannot read the session number");
            None
        });
        let n = next(previous);
        if let Err(e) = self.cursors.save_session(&self.name, n) {
            tracing::warn!(destination = %self.name, error = %e, "cannot write the session number");
        }
        n
    }

    /// A batch was handed to the destination.
    pub fn sent(&self, batch: &Batch) {
        self.stats.sent.add(batch.items.len() as u64);
    }

    /// The destination confirmed `batch`: the cursor moves and is written.
    pub fn confirmed(&mut self, batch: &Batch) {
        let cursors = self.planner.confirm(&batch.advances);
        let mut saved = self.cursors.save(&self.name, &cursors);
        if let Some(seq) = batch.late {
            self.late_confirmed = seq;
            saved = saved.and(self.cursors.save_late(&self.name, seq));
        }
        if let Err(e) = saved {
            // In memory the cursor has moved; on disk it lags, so a restart repeats.
            tracing::warn!(destination = %self.name, error = %e, "cannot write the forward cursor");
        }
        self.stats.confirmed.add(batch.items.len() as u64);
        self.stats.suppressed.add(batch.suppressed);
        self.stats.up.set(1);
    }

    /// What was handed over but not confirmed goes again (nothing failed).
    pub fn rewind(&mut self) {
        self.planner.rewind();
        self.late_sent = self.late_confirmed;
        self.late_queue.clear();
    }

    /// A send or the connection failed: what was in flight goes again.
    pub fn failed(&mut self) {
        self.rewind();
        self.stats.failed.inc();
        self.stats.up.set(0);
    }

    /// Measures lag and backlog when they are due, also while the destination is down.
    pub fn measure_if_due(&mut self) {
        if self.measured.is_none_or(|t| t.elapsed() >= GAUGES) {
            self.measure();
        }
    }

    /// Waits `delay` (a backoff), keeping the gauges current; false on shutdown.
    pub async fn pause(&mut self, delay: Duration, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            self.measure_if_due();
            let step = (until - tokio::time::Instant::now()).min(Duration::from_secs(1));
            if step.is_zero() {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = shutdown.changed() => return false,
            }
        }
    }

    /// Lag (age of the oldest sample not confirmed) and backlog (samples not confirmed).
    fn measure(&mut self) {
        self.measured = Some(Instant::now());
        let now = now_ms();
        let (mut oldest, mut backlog) = (None::<i64>, 0u64);
        for t in self.planner.sensors() {
            let Some(c) = self.planner.confirmed.get(&t.sensor) else {
                continue;
            };
            let ranges = if c.has_gap() {
                vec![(c.low, c.gap_to), (c.high, i64::MAX)]
            } else {
                vec![(c.high, i64::MAX)]
            };
            for (after, until) in ranges {
                if let Ok(first) = self.store.read_after(t.sensor, after, until, 1) {
                    if let Some(s) = first.first() {
                        oldest = Some(oldest.map_or(s.ts_ms, |o| o.min(s.ts_ms)));
                    }
                }
                backlog += self.store.estimate_count(t.sensor, after, until).unwrap_or(0);
            }
        }
        let lag_s = oldest.map_or(0, |ts| (now - ts).max(0) / 1000);
        self.stats.lag_seconds.set(lag_s as u64);
        self.stats.backlog_samples.set(backlog);
    }
}

/// The reconnect policy of a destination and what the log has said: one error per
/// distinct cause (a wrong password, a missing database), a warning when a working
/// destination fails, the rest at debug; the backoff grows to 30 s.
pub struct Retry {
    server: String,
    destination: String,
    backoff: Backoff,
    last: Option<String>,
    working: bool,
}

impl Retry {
    pub fn new(server: &str, destination: &str) -> Retry {
        Retry {
            server: server.to_string(),
            destination: destination.to_string(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            last: None,
            working: true,
        }
    }

    pub fn succeeded(&mut self) {
        if !self.working {
            tracing::info!(destination = %self.destination, server = %self.server, "destination accepts data again; sending the backlog");
        }
        self.working = true;
        self.last = None;
        self.backoff.reset();
    }

    /// Logs the failure as it deserves; the delay before the next attempt.
    pub fn failed(&mut self, cause: &str, configuration: bool) -> Duration {
        let delay = self.backoff.next_delay();
        let (destination, server) = (&self.destination, &self.server);
        if self.last.as_deref() != Some(cause) {
            if configuration {
                tracing::error!(%destination, %server, error = %cause, retry_in = ?delay, "destination refuses the data; it stays in the store");
            } else if self.working {
                tracing::warn!(%destination, %server, error = %cause, retry_in = ?delay, "destination unreachable; data stays in the store");
            } else {
                tracing::debug!(%destination, %server, error = %cause, retry_in = ?delay, "destination still failing");
            }
        }
        self.last = Some(cause.to_string());
        self.working = false;
        delay
    }
}
