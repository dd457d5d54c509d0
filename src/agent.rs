//! Wiring of the daemon: opens the store, starts the sources, the pipeline and the alert
//! publisher, and shuts them down in order.
//!
//! ```text
//!  modbus device tasks ──Vec<Sample>──> pipeline ──append──> store (flush every flush_interval)
//!        (bounded channel: a full          │
//!         pipeline slows polling)          └──observe──> rules ──AlertEvent──> outbox ──> publisher ──> MQTT
//! ```
//!
//! Shutdown order: sources stop; the pipeline drains the channel, evaluates and flushes
//! everything it received; the publisher keeps sending the outbox for a short grace
//! period and leaves the rest for the next start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch, Notify};

use crate::alert::publisher::{Publisher, UpstreamOptions};
use crate::alert::{render_topic, Outbox};
use crate::config::{parse_broker_url, Config};
use crate::detect::live::{LoadOutcome, ModelEngine};
use crate::detect::rule::RuleEngine;
use crate::detect::{AlertEvent, AlertState};
use crate::sample::{Sample, SensorId};
use crate::source::modbus::{device_plan, DevicePoller};
use crate::stats::Stats;
use crate::store::retention::{self, Pressure};
use crate::store::{SealPolicy, Store, StoreError, StoreOptions};

/// Batches in flight between sources and the pipeline.
const BUS_CAPACITY: usize = 256;
/// Unflushed samples kept in memory at most (only reached while flushes fail).
const MAX_PENDING: usize = 2_000_000;
/// The pseudo-asset of the agent's own alerts (storage).
pub const STORAGE_ASSET: &str = "_agent";
const PRESSURE_DISK_FULL: u64 = 2;
/// Consecutive failed flushes (with space on disk) after which the agent stops.
const MAX_FAILING_FLUSHES: u32 = 30;

async fn wait_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    let stats = Arc::new(Stats::default());
    run_with_stats(config, shutdown, stats).await
}

pub async fn run_with_stats(config: Config, mut shutdown: watch::Receiver<bool>, stats: Arc<Stats>) -> Result<()> {
    let data_dir = config.agent.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let seal = SealPolicy {
        max_age: config.storage.seal_interval.as_duration(),
        ..SealPolicy::default()
    };
    let store = Store::open(
        &data_dir,
        StoreOptions {
            cache_bytes: config.storage.cache.0,
            seal,
        },
    )
    .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let outbox = Outbox::open(store.db()).context("opening the alert outbox")?;
    stats.outbox_depth.set(outbox.len() as u64);

    let mut ids: HashMap<String, SensorId> = HashMap::new();
    for name in config.sensors() {
        ids.insert(
            name.to_string(),
            store
                .sensor_id(name)
                .with_context(|| format!("registering sensor {name}"))?,
        );
    }

    let (bus_tx, bus_rx) = mpsc::channel::<Vec<Sample>>(BUS_CAPACITY);
    let mut tasks = Vec::new();
    let n = config.modbus.len().max(1) as u32;
    for (i, device) in config.modbus.iter().enumerate() {
        let plan = device_plan(device, &|name| ids[name]);
        tracing::info!(device = %device.device, address = %device.address, requests = plan.len(), registers = device.register.len(), "polling");
        let poller = DevicePoller {
            device: device.clone(),
            stagger: device.interval.as_duration() * i as u32 / n,
            plan,
            bus: bus_tx.clone(),
            stats: stats.device(&device.device),
        };
        tasks.push(tokio::spawn(poller.run(shutdown.clone())));
    }
    drop(bus_tx);

    let shutdown_http = shutdown.clone();
    let (host, port) = parse_broker_url(&config.upstream.broker).map_err(anyhow::Error::msg)?;
    let wake = Arc::new(Notify::new());
    let publisher = Publisher {
        options: UpstreamOptions {
            host,
            port,
            client_id: config.upstream_client_id(),
            keep_alive: config.upstream.keep_alive.as_duration(),
            max_inflight: config.upstream.max_inflight,
        },
        outbox: outbox.clone(),
        wake: wake.clone(),
        stats: stats.clone(),
        drain_grace: Duration::from_secs(2),
    };
    let publisher = tokio::spawn(publisher.run(shutdown.clone()));

    if config.http.enabled {
        let listener = tokio::net::TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
        let api = crate::http::ApiState {
            agent: config.agent.id.clone(),
            store: store.clone(),
            stats: stats.clone(),
            data_dir: data_dir.clone(),
            max_disk: config.storage.max_disk.0,
            rollups: config.rollup_tiers(),
        };
        tracing::info!(listen = %config.http.listen, "http api");
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = crate::http::serve(listener, Arc::new(api)) => {}
                _ = wait_true(shutdown_http) => {}
            }
        }));
    }
    let retention = Retention {
        store: store.clone(),
        data_dir: data_dir.clone(),
        policy: retention::Policy {
            raw_retention: config.storage.raw_retention.as_duration(),
            max_disk: config.storage.max_disk.0,
            min_free: config.storage.min_free_disk.0,
            archive_dir: config.storage.archive_dir.clone(),
            rollups: config.rollup_tiers(),
        },
        every: config.storage.retention_interval.as_duration(),
        outbox: outbox.clone(),
        wake: wake.clone(),
        stats: stats.clone(),
        agent: config.agent.id.clone(),
        topic: render_topic(&config.upstream.alert_topic, &config.agent.id, STORAGE_ASSET),
    };
    tasks.push(tokio::spawn(retention.run(shutdown.clone())));

    let rules = RuleEngine::new(&config, &|name| ids.get(name).copied());
    let models = load_models(&config, &ids);
    tracing::info!(agent = %config.agent.id, sensors = ids.len(), rules = rules.len(), models = models.len(), data_dir = %data_dir.display(), "agent started");
    // SIGHUP reloads the models (after `forewarn train`); the listener ends with the agent.
    let reload = Arc::new(Notify::new());
    tasks.push(tokio::spawn(forward_hangups(reload.clone(), shutdown.clone())));

    let pipeline = Pipeline {
        config: &config,
        store: store.clone(),
        outbox,
        wake,
        stats: stats.clone(),
        rules,
        models,
        ids,
        reload,
        failing_flushes: 0,
    };
    let result = pipeline.run(bus_rx, &mut shutdown).await;

    for t in tasks {
        let _ = t.await;
    }
    let _ = publisher.await;
    tracing::info!(stats = %stats.summary(), "agent stopped");
    result
}

struct Pipeline<'a> {
    config: &'a Config,
    store: Store,
    outbox: Outbox,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    rules: RuleEngine,
    /// Failure-prediction models, per asset.
    models: ModelEngine,
    ids: HashMap<String, SensorId>,
    /// Notified on SIGHUP.
    reload: Arc<Notify>,
    /// Consecutive failed flushes.
    failing_flushes: u32,
}

impl Pipeline<'_> {
    async fn run(mut self, mut bus: mpsc::Receiver<Vec<Sample>>, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        let mut flush_tick = tokio::time::interval(self.config.storage.flush_interval.as_duration());
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(Duration::from_secs(60));
        report_tick.tick().await;
        let mut events = Vec::new();
        loop {
            tokio::select! {
                batch = bus.recv() => match batch {
                    Some(batch) => self.ingest(&batch, &mut events).await?,
                    // Every source has stopped (after shutdown): drain done.
                    None => break,
                },
                _ = flush_tick.tick() => self.flush().await?,
                _ = report_tick.tick() => tracing::info!(stats = %self.stats.summary(), "running"),
                _ = self.reload.notified() => {
                    let next = load_models(self.config, &self.ids);
                    self.models.replace(next, crate::time::now_ms(), &mut events);
                    tracing::info!(models = self.models.len(), "models reloaded");
                    self.publish(&mut events).await?;
                }
                // Sources see the same signal and stop; keep receiving until they have.
                _ = shutdown.changed(), if !*shutdown.borrow() => {}
            }
        }
        self.flush().await
    }

    async fn ingest(&mut self, batch: &[Sample], events: &mut Vec<AlertEvent>) -> Result<()> {
        self.stats.samples_in.add(batch.len() as u64);
        // The last resort of retention, and the bound on memory while flushes fail: refuse
        // (and count) rather than fail writes or grow without limit.
        if self.stats.storage_pressure.get() == PRESSURE_DISK_FULL || self.store.pending_len() > MAX_PENDING {
            self.stats.samples_rejected.add(batch.len() as u64);
        } else {
            self.store.append(batch);
        }
        for s in batch {
            self.rules.observe(s, events);
            self.models.observe(s, events);
        }
        self.publish(events).await
    }

    /// Writes alert events to the outbox and wakes the publisher.
    async fn publish(&mut self, events: &mut Vec<AlertEvent>) -> Result<()> {
        for event in events.drain(..) {
            let topic = render_topic(&self.config.upstream.alert_topic, &self.config.agent.id, &event.asset);
            let (outbox, agent) = (self.outbox.clone(), self.config.agent.id.clone());
            let pushed =
                tokio::task::spawn_blocking(move || outbox.push(&agent, &topic, &event).map(|m| (m, event))).await?;
            match pushed {
                Ok((msg, event)) => {
                    self.stats.alerts_raised.inc();
                    self.stats.outbox_depth.set(self.outbox.len() as u64);
                    let verb = if event.state == AlertState::Raised {
                        "alert raised"
                    } else {
                        "alert cleared"
                    };
                    tracing::info!(asset = %event.asset, rule = %event.rule, sensor = %event.sensor, value = event.value, seq = msg.seq, "{verb}");
                    self.wake.notify_one();
                }
                // The outbox lives in the same database as the history: if it cannot be
                // written, nothing durable can be promised any more.
                Err(e) => return Err(anyhow::Error::new(e).context("writing an alert to the outbox")),
            }
        }
        Ok(())
    }

    /// Flushes the store. Errors keep the samples buffered for the next tick; a store that
    /// keeps failing although the disk has space (sled stops writing after an I/O error)
    /// ends the agent with an error, so that the service manager restarts it.
    async fn flush(&mut self) -> Result<()> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await? {
            Ok(f) => {
                if self.failing_flushes > 0 {
                    tracing::info!(samples = f.samples, "store writable again; buffered samples written");
                }
                self.failing_flushes = 0;
                self.stats.flushes.inc();
                self.stats.samples_stored.add(f.samples as u64);
            }
            Err(e) => {
                self.stats.flush_errors.inc();
                self.failing_flushes += 1;
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
fn load_models(config: &Config, ids: &HashMap<String, SensorId>) -> ModelEngine {
    let (engine, outcomes) = ModelEngine::load(config, &|name| ids.get(name).copied());
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

async fn forward_hangups(reload: Arc<Notify>, shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = hup.recv() => reload.notify_one(),
                _ = &mut stop => return,
            }
        }
    }
    #[cfg(not(unix))]
    wait_true(shutdown).await;
}

/// Periodic retention, and the storage alert when the budget cannot be kept.
struct Retention {
    store: Store,
    data_dir: std::path::PathBuf,
    policy: retention::Policy,
    every: Duration,
    outbox: Outbox,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    agent: String,
    topic: String,
}

impl Retention {
    async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut firing: HashMap<&'static str, i64> = HashMap::new();
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            let (store, dir, policy) = (self.store.clone(), self.data_dir.clone(), self.policy.clone());
            let report = match tokio::task::spawn_blocking(move || {
                retention::enforce(&store, &dir, &policy, crate::time::now_ms())
            })
            .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "retention pass failed");
                    continue;
                }
                Err(_) => continue,
            };
            self.stats.evicted_samples.add(report.evicted_samples);
            self.stats.storage_pressure.set(match report.pressure {
                Pressure::Ok => 0,
                Pressure::OverBudget => 1,
                Pressure::DiskFull => PRESSURE_DISK_FULL,
            });
            let now = crate::time::now_ms();
            // Two independent alarms, each raised once and cleared once.
            for (rule, active) in [
                ("storage-budget", report.pressure == Pressure::OverBudget),
                ("disk-full", report.pressure == Pressure::DiskFull),
            ] {
                let state = match (firing.get(rule).copied(), active) {
                    (None, true) => {
                        firing.insert(rule, now);
                        AlertState::Raised
                    }
                    (Some(_), false) => AlertState::Cleared,
                    _ => continue,
                };
                let first_seen_ms = if state == AlertState::Cleared {
                    firing.remove(rule).unwrap_or(now)
                } else {
                    now
                };
                match (rule, state) {
                    (_, AlertState::Cleared) => tracing::info!(rule, "storage alarm cleared"),
                    ("disk-full", _) => tracing::error!(free = report.free, "filesystem nearly full: refusing new samples until space is freed"),
                    _ => tracing::error!(used = report.used, budget = self.policy.max_disk, "storage over budget with nothing older than raw_retention left to evict; raising a storage alert"),
                }
                let event = AlertEvent {
                    asset: STORAGE_ASSET.into(),
                    rule: rule.into(),
                    state,
                    severity: crate::config::Severity::Critical,
                    sensor: "data_dir".into(),
                    value: report.used as f64,
                    threshold: self.policy.max_disk as f64,
                    ts_ms: now,
                    first_seen_ms,
                    score: None,
                    contributions: Vec::new(),
                };
                let (outbox, agent, topic) = (self.outbox.clone(), self.agent.clone(), self.topic.clone());
                match tokio::task::spawn_blocking(move || outbox.push(&agent, &topic, &event)).await {
                    Ok(Ok(_)) => {
                        self.stats.alerts_raised.inc();
                        self.wake.notify_one();
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot store the storage alert"),
                    Err(_) => {}
                }
            }
        }
    }
}
