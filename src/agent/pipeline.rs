//! The pipeline: the one task between the sources and the store. It appends every batch,
//! lets rules, models and `no-data` watches observe it, turns their observations into
//! alerts through the sink, flushes the store on a clock and after acknowledgements wait
//! (group commit), and only then runs those acknowledgements. It is the only caller of
//! `Store::flush`.
//!
//! Guarantees: a batch refused under storage pressure is counted and never acknowledged
//! (its broker keeps it); an acknowledgement runs only after the flush that made its
//! samples durable; a store that keeps failing with space on disk ends the agent, so the
//! service manager restarts it.
//!
//! **Refused batches come back.** A broker resends an unacknowledged message only on a
//! new connection of the session, so a refused message would stay in its in-flight window
//! for good, and once the window is full the input receives nothing more. The pipeline
//! keeps the refused batches' acks (not their samples) and, once it accepts samples again,
//! asks their sources for them ([`Ack::redeliver`]): the MQTT input reconnects and its
//! persistent session brings them back. Keeping the samples here instead would cost the
//! in-flight windows' worth of decoded samples (up to `max_payload` per message, times a
//! window a broker may leave unbounded) on a gateway with little memory, for data the
//! broker holds anyway; an ack costs a packet id. Batches without an ack (Modbus, QoS 0)
//! cannot come back: they are counted as rejected.
//!
//! **Labels.** The operator's labels are read from the store at start and again after
//! each change the HTTP API reports ([`LabelChange`]). Their maintenance windows are
//! checked against the clock every second: while one covers now, the alarms of its asset
//! and of the asset's descendants are suppressed ([`Maintenance`]; each start and end is
//! logged once). Labels not yet announced upstream go out as `labelled` events; if that
//! write fails it is retried on the clock.
//!
//! **Progress is visible.** Every turn of the loop bumps a [`Heartbeat`] (the loop turns at
//! least once a second, on its clock tick); the service manager's watchdog is fed only
//! while it moves (`notify.rs`). The test hook `FOREWARN_TEST_STALL_AFTER` (a duration,
//! e.g. `3s`) makes the loop stop turning that long after start, with the process alive,
//! so that tests can watch the watchdog starve; it is compiled in and inert unless set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch, Notify};

use super::notify::Heartbeat;
use super::retention::PRESSURE_DISK_FULL;
use crate::alert::labelled::{unannounced, LabelChange, LabelEvent, LabelNotice};
use crate::alert::maintenance::Maintenance;
use crate::alert::sink::{AlertSink, SinkError};
use crate::base::label::Label;
use crate::base::sample::SensorId;
use crate::config::Asset;
use crate::detect::live::{LoadOutcome, ModelAlarms, ModelEngine};
use crate::detect::rule::RuleEngine;
use crate::detect::silence::SilenceWatch;
use crate::detect::{AlarmId, Observation};
use crate::source::{Ack, Batch};
use crate::stats::Stats;
use crate::store::{Store, StoreError};

/// Unflushed samples kept in memory at most (only reached while flushes fail).
const MAX_PENDING: usize = 2_000_000;
/// Consecutive failed flushes (with space on disk) after which the agent stops.
const MAX_FAILING_FLUSHES: u32 = 30;

pub(super) struct Pipeline {
    /// Every `flush_interval` the store is flushed; `ack_delay` after a waiting
    /// acknowledgement at the latest.
    pub flush_interval: Duration,
    pub ack_delay: Duration,
    /// Below this many free bytes new samples are refused (`min_free_disk`).
    pub min_free: u64,
    /// Where models are loaded from, again on SIGHUP.
    pub assets: Vec<Asset>,
    pub data_dir: PathBuf,
    pub store: Store,
    pub alerts: AlertSink,
    pub stats: Arc<Stats>,
    pub rules: RuleEngine,
    /// Failure-prediction models, per asset.
    pub models: ModelEngine,
    pub model_alarms: ModelAlarms,
    /// `no_data` watches, per asset.
    pub silence: SilenceWatch,
    pub ids: HashMap<String, SensorId>,
    /// Notified on SIGHUP.
    pub reload: Arc<Notify>,
    /// Consecutive failed flushes.
    pub failing_flushes: u32,
    /// Acknowledgements waiting for the flush that makes their samples durable.
    pub waiting: Vec<Ack>,
    /// When the flush for `waiting` is due (group commit).
    pub ack_deadline: Option<tokio::time::Instant>,
    /// Acks of refused batches, to ask their sources for them once samples are accepted
    /// again. Bounded by the brokers' in-flight windows: nothing more arrives while those
    /// are full of refused messages.
    pub refused: Vec<Ack>,
    /// Bumped on every turn of the loop.
    pub heartbeat: Heartbeat,
    /// The test hook's stall: when the loop stops turning (`FOREWARN_TEST_STALL_AFTER`).
    pub stall_at: Option<tokio::time::Instant>,
    /// The maintenance windows of the labels.
    pub maintenance: Maintenance,
    /// Labels could not be read or announced: try again on the clock.
    pub labels_due: bool,
}

/// The test hook's environment variable (see the module documentation).
const STALL_HOOK: &str = "FOREWARN_TEST_STALL_AFTER";

/// When the test hook stalls the pipeline, if it is set.
pub(super) fn stall_hook() -> Result<Option<tokio::time::Instant>> {
    let Some(value) = std::env::var_os(STALL_HOOK) else {
        return Ok(None);
    };
    let text = value.to_str().with_context(|| format!("{STALL_HOOK} is not UTF-8"))?;
    let after = humantime::parse_duration(text.trim()).with_context(|| format!("{STALL_HOOK}={text:?}"))?;
    tracing::warn!(after = ?after, "test hook {STALL_HOOK} set: the pipeline will stall");
    Ok(Some(tokio::time::Instant::now() + after))
}

impl Pipeline {
    pub async fn run(
        mut self,
        mut batches: mpsc::Receiver<Batch>,
        mut alarms: mpsc::Receiver<(AlarmId, Observation)>,
        mut labels: mpsc::Receiver<LabelChange>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        self.refresh_labels().await;
        tracing::info!(maintenance_windows = self.maintenance.len(), "labels loaded");
        let mut flush_tick = tokio::time::interval(self.flush_interval);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(Duration::from_secs(60));
        report_tick.tick().await;
        // Silences and re-notifications are due by the clock, not by a sample.
        let mut clock_tick = tokio::time::interval(Duration::from_secs(1));
        clock_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = Vec::new();
        loop {
            self.heartbeat.beat();
            tokio::select! {
                batch = batches.recv() => match batch {
                    Some(batch) => self.ingest(batch, &mut events).await?,
                    // Every source has stopped (after shutdown): drain done.
                    None => break,
                },
                Some(alarm) = alarms.recv() => {
                    self.alerts.observe([alarm]).await.context("raising a storage alert")?;
                }
                Some(change) = labels.recv() => self.label_changed(change).await,
                _ = flush_tick.tick() => self.flush().await?,
                // Acknowledgements are waiting: flush soon rather than at the next tick, so
                // the broker's in-flight window keeps moving (group commit).
                _ = tokio::time::sleep_until(self.ack_deadline.unwrap_or_else(tokio::time::Instant::now)), if self.ack_deadline.is_some() => self.flush().await?,
                _ = report_tick.tick() => tracing::info!(stats = %self.stats.summary(), "running"),
                _ = clock_tick.tick() => self.on_clock(&mut events).await?,
                _ = self.reload.notified() => {
                    self.models = load_models(&self.assets, &self.data_dir, &self.ids, &self.model_alarms);
                    tracing::info!(models = self.models.len(), "models reloaded");
                }
                // Sources see the same signal and stop; keep receiving until they have.
                _ = shutdown.changed(), if !*shutdown.borrow() => {}
                _ = tokio::time::sleep_until(self.stall_at.unwrap_or_else(tokio::time::Instant::now)), if self.stall_at.is_some() => {
                    tracing::warn!("test hook {STALL_HOOK}: the pipeline stalls now");
                    std::future::pending::<()>().await;
                }
            }
        }
        self.flush().await
    }

    async fn ingest(&mut self, batch: Batch, observations: &mut Vec<(AlarmId, Observation)>) -> Result<()> {
        let Batch { samples: batch, ack } = batch;
        let batch = &batch[..];
        self.stats.samples_in.add(batch.len() as u64);
        // The last resort of retention, and the bound on memory while flushes fail: refuse
        // (and count) rather than fail writes or grow without limit. A refused batch is not
        // acknowledged: its broker keeps it.
        if self.refusing() {
            let (pressure, buffered) = (self.stats.storage_pressure(), self.store.pending_len());
            self.stats.samples_rejected.events(batch.len() as u64, |n| {
                tracing::warn!(
                    rejected = n,
                    storage_pressure = pressure,
                    buffered,
                    "samples refused: the disk is nearly full or flushes keep failing; acknowledged inputs keep them"
                )
            });
            if let Some(ack) = ack.filter(Ack::can_redeliver) {
                self.hold_refused(ack);
            }
        } else {
            self.store.append(batch);
            if let Some(ack) = ack {
                self.waiting.push(ack);
                if self.ack_deadline.is_none() {
                    self.ack_deadline = Some(tokio::time::Instant::now() + self.ack_delay);
                }
            }
        }
        let now = crate::base::time::now_ms();
        for s in batch {
            self.rules.observe(s, observations);
            self.models.observe(s, observations);
            self.silence.observe(s, now);
        }
        // The outbox lives in the same database as the history: if it cannot be written,
        // nothing durable can be promised any more.
        self.alerts
            .observe(observations.drain(..))
            .await
            .context("writing alerts to the outbox")?;
        Ok(())
    }

    /// Whether new samples are refused: the disk is nearly full, or so much waits for
    /// flushes that keep failing that memory must not grow further.
    fn refusing(&self) -> bool {
        self.stats.storage_pressure.get() == PRESSURE_DISK_FULL || self.store.pending_len() > MAX_PENDING
    }

    /// Keeps a refused batch's ack until samples are accepted again.
    fn hold_refused(&mut self, ack: Ack) {
        self.refused.push(ack);
        let held = self.refused.len();
        self.stats.refused_held.set(held as u64);
        if held == 1 {
            tracing::warn!(
                "refused messages stay unacknowledged with their broker; they are asked back once samples are accepted again"
            );
        }
    }

    /// Samples are accepted again: asks the sources of the refused batches for them.
    fn release_refused(&mut self) {
        if self.refused.is_empty() || self.refusing() {
            return;
        }
        let held = self.refused.len();
        for ack in self.refused.drain(..) {
            ack.redeliver();
        }
        self.stats.refused_held.set(0);
        tracing::info!(
            messages = held,
            "samples accepted again; the messages refused meanwhile are asked back from their brokers"
        );
    }

    /// What the clock makes due: refused batches once samples are accepted again, silent
    /// sensors, re-notifications.
    async fn on_clock(&mut self, observations: &mut Vec<(AlarmId, Observation)>) -> Result<()> {
        self.release_refused();
        let now = crate::base::time::now_ms();
        self.apply_maintenance(now);
        if self.labels_due {
            self.refresh_labels().await;
        }
        self.silence.check(now, observations);
        self.alerts
            .observe(observations.drain(..))
            .await
            .context("writing alerts to the outbox")?;
        self.alerts.tick(now).await.context("writing alerts to the outbox")?;
        Ok(())
    }

    /// A change the HTTP API made: a removal is announced, then the labels are read again
    /// (which announces an addition).
    async fn label_changed(&mut self, change: LabelChange) {
        if let LabelChange::Removed(label) = change {
            let notice = self.notice(label, LabelEvent::Unlabelled);
            if let Err(e) = self.alerts.announce(vec![notice], None).await {
                tracing::warn!(error = %e, "the removal of a label could not be announced upstream");
            }
        }
        self.refresh_labels().await;
    }

    /// Reads the labels from the store, takes their maintenance windows and announces
    /// those not announced yet. A failure is logged (once) and retried on the clock.
    async fn refresh_labels(&mut self) {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || store.labels(None)).await;
        let result = match read {
            Ok(Ok(labels)) => {
                self.maintenance.set_labels(&labels);
                self.apply_maintenance(crate::base::time::now_ms());
                self.announce_new(&labels).await.map_err(|e| e.to_string())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(_) => self.labels_due = false,
            Err(e) => {
                if !self.labels_due {
                    tracing::warn!(error = %e, "labels could not be read or announced; retrying every second");
                }
                self.labels_due = true;
            }
        }
    }

    /// Announces the labels above the outbox's mark as `labelled` events.
    async fn announce_new(&mut self, labels: &[Label]) -> Result<usize, SinkError> {
        let mark = self.alerts.label_mark().await?;
        let new = unannounced(labels, mark);
        let Some(top) = new.last().map(|l| l.id) else {
            return Ok(0);
        };
        let notices = new
            .into_iter()
            .map(|l| self.notice(l.clone(), LabelEvent::Labelled))
            .collect();
        self.alerts.announce(notices, Some(top)).await
    }

    fn notice(&self, label: Label, event: LabelEvent) -> LabelNotice {
        LabelNotice {
            asset_path: self.alerts.lifecycle().asset_path(&label.span.asset),
            model_version: self.models.version_of(&label.span.asset),
            label,
            event,
            ts_ms: crate::base::time::now_ms(),
        }
    }

    /// Follows the maintenance windows to `now_ms`: logs each start and end once and
    /// suppresses (or frees) the alarms concerned.
    fn apply_maintenance(&mut self, now_ms: i64) {
        let changes = self.maintenance.update(now_ms);
        if changes.is_empty() {
            return;
        }
        for asset in &changes.began {
            tracing::info!(%asset, "maintenance began: alerts of this asset and its descendants are suppressed");
        }
        for asset in &changes.ended {
            tracing::info!(%asset, "maintenance ended: alarms of this asset raise again");
        }
        self.alerts.set_maintenance(self.maintenance.active());
    }

    /// The disk-full refusal follows free space at every flush, against the same
    /// `min_free_disk` retention uses, so a disk that fills between two retention passes
    /// is refused before the store's own reserve is reached. Leaving disk-full is left to
    /// the same figure; whether the budget is kept is retention's to say.
    fn check_free_space(&self) {
        let free = self.store.reserve().free();
        let pressure = &self.stats.storage_pressure;
        if free < self.min_free {
            pressure.set(PRESSURE_DISK_FULL);
        } else if pressure.get() == PRESSURE_DISK_FULL {
            pressure.set(0);
        }
    }

    /// Flushes the store. Errors keep the samples buffered for the next tick; a store that
    /// keeps failing although the disk has space (sled stops writing after an I/O error)
    /// ends the agent with an error, so that the service manager restarts it.
    async fn flush(&mut self) -> Result<()> {
        self.check_free_space();
        if let Err(e) = self.alerts.save_states().await {
            tracing::error!(error = %e, "cannot save alert states; a pending timer may restart after a crash");
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await? {
            Ok(f) => {
                if self.failing_flushes > 0 {
                    tracing::info!(samples = f.samples, "store writable again; buffered samples written");
                }
                self.failing_flushes = 0;
                self.stats.flushes.inc();
                self.stats.samples_stored.add(f.samples as u64);
                // Everything appended before this flush is durable now.
                for ack in self.waiting.drain(..) {
                    ack.done();
                }
                self.ack_deadline = None;
            }
            Err(e) => {
                self.stats.flush_errors.inc();
                self.failing_flushes += 1;
                // Retry at the regular pace, not in a tight loop.
                self.ack_deadline = None;
                if self.failing_flushes == 1 {
                    tracing::error!(error = %e, buffered = self.store.pending_len(), "flush failed; samples stay buffered and are retried");
                }
                if !matches!(e, StoreError::NoSpace { .. }) && self.failing_flushes >= MAX_FAILING_FLUSHES {
                    anyhow::bail!(
                        "the store has failed {} flushes in a row ({e}); stopping so that it is reopened",
                        self.failing_flushes
                    );
                }
            }
        }
        Ok(())
    }
}

/// Loads every configured model; a machine whose model cannot be used runs without one.
pub(super) fn load_models(
    assets: &[Asset],
    data_dir: &Path,
    ids: &HashMap<String, SensorId>,
    alarms: &ModelAlarms,
) -> ModelEngine {
    let (engine, outcomes) = ModelEngine::load(assets, data_dir, &|name| ids.get(name).copied(), alarms);
    for o in outcomes {
        match o {
            LoadOutcome::Loaded { asset, path } => tracing::info!(%asset, model = %path.display(), "model loaded"),
            LoadOutcome::Failed { asset, error } => {
                tracing::warn!(%asset, error = %error, "no model for this asset; train one with `forewarn train`, then send SIGHUP")
            }
        }
    }
    engine
}
