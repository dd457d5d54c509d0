//! Wiring of the daemon: opens the store, starts the sources, the pipeline and the alert
//! publisher, and shuts them down in order.
//!
//! ```text
//!  modbus device tasks ──Vec<Sample>──> pipeline ──append──> store (flush every flush_interval)
//!        (bounded channel: a full          │
//!         pipeline slows polling)          └──observe──> rules ───Observation──> lifecycle ──> outbox ──> publisher ──> MQTT
//!                                                   └──> models ──┘          ^
//!                                   retention ──storage alarms (channel)────┘
//! ```
//!
//! SIGHUP reloads the failure-prediction models (after `forewarn train`); their alarms stay
//! registered with the lifecycle, so open model alerts carry over a reload.
//!
//! Shutdown order: sources stop; the pipeline drains the channel, evaluates and flushes
//! everything it received; the publisher keeps sending the outbox for a short grace
//! period and leaves the rest for the next start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch, Notify};

use crate::alert::lifecycle::Lifecycle;
use crate::alert::publisher::Publisher;
use crate::alert::sink::AlertSink;
use crate::alert::status::StatusInfo;
use crate::alert::Outbox;
use crate::base::sample::SensorId;
use crate::config::{Config, Severity};
use crate::detect::live::{LoadOutcome, ModelAlarms, ModelEngine};
use crate::detect::rule::RuleEngine;
use crate::detect::silence::SilenceWatch;
use crate::detect::{AlarmDef, AlarmId, Level, Observation, Policy};
use crate::source::modbus::{plan_buses, spawn as spawn_buses};
use crate::source::mqtt::MqttSource;
use crate::source::{Ack, Batch};
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

    // Every sensor a register defines or an asset names: MQTT sensors are otherwise only
    // registered when their first message arrives, and the rules, models and watches
    // built below need their ids now.
    let mut ids: HashMap<String, SensorId> = HashMap::new();
    let named = config
        .asset
        .iter()
        .flat_map(|a| a.sensors.iter().chain(a.rule.iter().map(|r| &r.sensor)));
    for name in config.sensors().chain(named.map(String::as_str)) {
        if ids.contains_key(name) {
            continue;
        }
        ids.insert(
            name.to_string(),
            store
                .sensor_id(name)
                .with_context(|| format!("registering sensor {name}"))?,
        );
    }

    let (bus_tx, bus_rx) = mpsc::channel::<Batch>(BUS_CAPACITY);
    let buses = plan_buses(&config.modbus, &|name| ids[name], &|device| stats.device(device));
    for d in &config.modbus {
        tracing::info!(device = %d.device, address = %d.address, unit = d.unit, registers = d.register.len(), "polling");
    }
    let mut tasks = spawn_buses(buses, &bus_tx, &shutdown);
    for (i, settings) in config
        .input_settings()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .enumerate()
    {
        let connection = crate::mqtt::Connection::open(settings.endpoint.clone(), &format!("mqtt[{i}]"))?;
        tracing::info!(broker = %connection.broker(), client = %connection.client_id(), subscriptions = settings.subscriptions.len(), "subscribing");
        let source = MqttSource {
            settings,
            connection,
            store: store.clone(),
            bus: bus_tx.clone(),
            stats: stats.clone(),
        };
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = source.run(stop).await {
                tracing::error!(error = %e, "mqtt input stopped");
            }
        }));
    }
    drop(bus_tx);

    let shutdown_http = shutdown.clone();
    let upstream = crate::alert::upstream::options(&config.upstream_settings().map_err(anyhow::Error::msg)?)?;
    let wake = Arc::new(Notify::new());

    let mut lifecycle = Lifecycle::from_config(&config);
    let rules = RuleEngine::new(&config, &|name| ids.get(name).copied(), &mut |d| lifecycle.register(d));
    let model_alarms = ModelAlarms::register(&config, &mut |d| lifecycle.register(d));
    let silence = SilenceWatch::new(
        &config,
        &|name| ids.get(name).copied(),
        &mut |d| lifecycle.register(d),
        crate::base::time::now_ms(),
    );
    let storage_alarms = STORAGE_RULES.map(|rule| {
        lifecycle.register(AlarmDef {
            asset: STORAGE_ASSET.into(),
            rule: rule.into(),
            severity: Severity::Critical,
            policy: Policy::default(),
        })
    });
    let (alerts, restored) = AlertSink::open(
        lifecycle,
        outbox.clone(),
        wake.clone(),
        stats.clone(),
        &config.agent.id,
        config.upstream.site.as_deref(),
        &config.upstream.alert_topic,
    )
    .context("reading the alert states")?;
    if restored.open > 0 {
        tracing::info!(open = restored.open, "open alerts carried over from the last run");
    }
    for key in &restored.dropped {
        tracing::warn!(alarm = %key.replace('\u{1f}', "/"), "state of an alarm that is no longer configured dropped; no cleared alert will follow");
    }
    let (alarm_tx, alarm_rx) = mpsc::channel::<(AlarmId, Observation)>(16);

    let publisher = Publisher {
        options: upstream,
        outbox: outbox.clone(),
        wake: wake.clone(),
        stats: stats.clone(),
        drain_grace: Duration::from_secs(2),
        status: StatusInfo::new(&config),
        acked: None,
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
        stats: stats.clone(),
        alarms: alarm_tx,
        alarm_ids: storage_alarms,
    };
    tasks.push(tokio::spawn(retention.run(shutdown.clone())));

    let models = load_models(&config, &ids, &model_alarms);
    tracing::info!(agent = %config.agent.id, sensors = ids.len(), rules = rules.len(), models = models.len(), no_data_watches = silence.len(), data_dir = %data_dir.display(), "agent started");
    // SIGHUP reloads the models (after `forewarn train`); the listener ends with the agent.
    let reload = Arc::new(Notify::new());
    tasks.push(tokio::spawn(forward_hangups(reload.clone(), shutdown.clone())));

    let pipeline = Pipeline {
        config: &config,
        store: store.clone(),
        alerts,
        stats: stats.clone(),
        rules,
        models,
        model_alarms,
        silence,
        ids,
        reload,
        failing_flushes: 0,
        waiting: Vec::new(),
        ack_deadline: None,
    };
    let result = pipeline.run(bus_rx, alarm_rx, &mut shutdown).await;

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
    alerts: AlertSink,
    stats: Arc<Stats>,
    rules: RuleEngine,
    /// Failure-prediction models, per asset.
    models: ModelEngine,
    model_alarms: ModelAlarms,
    /// `no_data` watches, per asset.
    silence: SilenceWatch,
    ids: HashMap<String, SensorId>,
    /// Notified on SIGHUP.
    reload: Arc<Notify>,
    /// Consecutive failed flushes.
    failing_flushes: u32,
    /// Acknowledgements waiting for the flush that makes their samples durable.
    waiting: Vec<Ack>,
    /// When the flush for `waiting` is due (group commit).
    ack_deadline: Option<tokio::time::Instant>,
}

impl Pipeline<'_> {
    async fn run(
        mut self,
        mut bus: mpsc::Receiver<Batch>,
        mut alarms: mpsc::Receiver<(AlarmId, Observation)>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut flush_tick = tokio::time::interval(self.config.storage.flush_interval.as_duration());
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(Duration::from_secs(60));
        report_tick.tick().await;
        // Silences and re-notifications are due by the clock, not by a sample.
        let mut clock_tick = tokio::time::interval(Duration::from_secs(1));
        clock_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = Vec::new();
        loop {
            tokio::select! {
                batch = bus.recv() => match batch {
                    Some(batch) => self.ingest(batch, &mut events).await?,
                    // Every source has stopped (after shutdown): drain done.
                    None => break,
                },
                Some(alarm) = alarms.recv() => {
                    self.alerts.observe([alarm]).await.context("raising a storage alert")?;
                }
                _ = flush_tick.tick() => self.flush().await?,
                // Acknowledgements are waiting: flush soon rather than at the next tick, so
                // the broker's in-flight window keeps moving (group commit).
                _ = tokio::time::sleep_until(self.ack_deadline.unwrap_or_else(tokio::time::Instant::now)), if self.ack_deadline.is_some() => self.flush().await?,
                _ = report_tick.tick() => tracing::info!(stats = %self.stats.summary(), "running"),
                _ = clock_tick.tick() => self.on_clock(&mut events).await?,
                _ = self.reload.notified() => {
                    self.models = load_models(self.config, &self.ids, &self.model_alarms);
                    tracing::info!(models = self.models.len(), "models reloaded");
                }
                // Sources see the same signal and stop; keep receiving until they have.
                _ = shutdown.changed(), if !*shutdown.borrow() => {}
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
        if self.stats.storage_pressure.get() == PRESSURE_DISK_FULL || self.store.pending_len() > MAX_PENDING {
            self.stats.samples_rejected.add(batch.len() as u64);
        } else {
            self.store.append(batch);
            if let Some(ack) = ack {
                self.waiting.push(ack);
                if self.ack_deadline.is_none() {
                    self.ack_deadline = Some(tokio::time::Instant::now() + self.config.storage.ack_delay.as_duration());
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

    /// What the clock makes due: silent sensors, re-notifications.
    async fn on_clock(&mut self, observations: &mut Vec<(AlarmId, Observation)>) -> Result<()> {
        let now = crate::base::time::now_ms();
        self.silence.check(now, observations);
        self.alerts
            .observe(observations.drain(..))
            .await
            .context("writing alerts to the outbox")?;
        self.alerts.tick(now).await.context("writing alerts to the outbox")?;
        Ok(())
    }

    /// Flushes the store. Errors keep the samples buffered for the next tick; a store that
    /// keeps failing although the disk has space (sled stops writing after an I/O error)
    /// ends the agent with an error, so that the service manager restarts it.
    async fn flush(&mut self) -> Result<()> {
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
fn load_models(config: &Config, ids: &HashMap<String, SensorId>, alarms: &ModelAlarms) -> ModelEngine {
    let (engine, outcomes) = ModelEngine::load(config, &|name| ids.get(name).copied(), alarms);
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

/// Periodic retention, and the storage alarms when the budget cannot be kept.
struct Retention {
    store: Store,
    data_dir: std::path::PathBuf,
    policy: retention::Policy,
    every: Duration,
    stats: Arc<Stats>,
    /// To the pipeline, whose lifecycle turns them into alerts.
    alarms: mpsc::Sender<(AlarmId, Observation)>,
    /// `storage-budget` and `disk-full`, in [`STORAGE_RULES`] order.
    alarm_ids: [AlarmId; 2],
}

/// The agent's own alarms, on the asset [`STORAGE_ASSET`].
const STORAGE_RULES: [&str; 2] = ["storage-budget", "disk-full"];

impl Retention {
    async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was = Pressure::Ok;
        let stop = wait_true(shutdown);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            let (store, dir, policy) = (self.store.clone(), self.data_dir.clone(), self.policy.clone());
            let report = match tokio::task::spawn_blocking(move || {
                retention::enforce(&store, &dir, &policy, crate::base::time::now_ms())
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
            if report.pressure != was {
                match report.pressure {
                    Pressure::DiskFull => tracing::error!(free = report.free, "filesystem nearly full: refusing new samples until space is freed"),
                    Pressure::OverBudget => tracing::error!(used = report.used, budget = self.policy.max_disk, "storage over budget with nothing older than raw_retention left to evict; raising a storage alert"),
                    Pressure::Ok => tracing::info!("storage back within its budget"),
                }
                was = report.pressure;
            }
            // Two independent alarms; the lifecycle raises each once and clears it once,
            // across restarts too.
            let now = crate::base::time::now_ms();
            let budget = self.policy.max_disk as f64;
            for (id, active) in self.alarm_ids.into_iter().zip([
                report.pressure == Pressure::OverBudget,
                report.pressure == Pressure::DiskFull,
            ]) {
                let obs = Observation {
                    ts_ms: now,
                    level: if active { Level::Alarm } else { Level::Normal },
                    sensor: "data_dir".into(),
                    value: report.used as f64,
                    threshold: budget,
                    clear_threshold: budget,
                    score: None,
                    sensors: Vec::new(),
                };
                if self.alarms.send((id, obs)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (systemd's stop).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
