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
use crate::detect::rule::RuleEngine;
use crate::detect::{AlertEvent, AlertState};
use crate::sample::{Sample, SensorId};
use crate::source::modbus::{plan_buses, spawn as spawn_buses};
use crate::stats::Stats;
use crate::store::{Store, StoreOptions};

/// Batches in flight between sources and the pipeline.
const BUS_CAPACITY: usize = 256;

/// Runs the agent until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    let stats = Arc::new(Stats::default());
    run_with_stats(config, shutdown, stats).await
}

pub async fn run_with_stats(config: Config, mut shutdown: watch::Receiver<bool>, stats: Arc<Stats>) -> Result<()> {
    let data_dir = config.agent.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = Store::open(
        &data_dir,
        StoreOptions {
            cache_bytes: config.storage.cache.0,
            ..StoreOptions::default()
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
    let buses = plan_buses(&config.modbus, &|name| ids[name], &|device| stats.device(device));
    for d in &config.modbus {
        tracing::info!(device = %d.device, address = %d.address, unit = d.unit, registers = d.register.len(), "polling");
    }
    let tasks = spawn_buses(buses, &bus_tx, &shutdown);
    drop(bus_tx);

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

    let rules = RuleEngine::new(&config, &|name| ids.get(name).copied());
    tracing::info!(agent = %config.agent.id, sensors = ids.len(), rules = rules.len(), data_dir = %data_dir.display(), "agent started");

    let pipeline = Pipeline {
        config: &config,
        store: store.clone(),
        outbox,
        wake,
        stats: stats.clone(),
        rules,
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
                _ = flush_tick.tick() => self.flush().await,
                _ = report_tick.tick() => tracing::info!(stats = %self.stats.summary(), "running"),
                // Sources see the same signal and stop; keep receiving until they have.
                _ = shutdown.changed(), if !*shutdown.borrow() => {}
            }
        }
        self.flush().await;
        Ok(())
    }

    async fn ingest(&mut self, batch: &[Sample], events: &mut Vec<AlertEvent>) -> Result<()> {
        self.stats.samples_in.add(batch.len() as u64);
        self.store.append(batch);
        for s in batch {
            self.rules.observe(s, events);
        }
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

    async fn flush(&self) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(f)) => {
                self.stats.flushes.inc();
                self.stats.samples_stored.add(f.samples as u64);
            }
            Ok(Err(e)) => {
                // Samples stay buffered (see Store::flush) and are retried next tick.
                self.stats.flush_errors.inc();
                tracing::error!(error = %e, "flush failed; samples stay buffered and are retried");
            }
            Err(e) => tracing::error!(error = %e, "flush task failed"),
        }
    }
}
