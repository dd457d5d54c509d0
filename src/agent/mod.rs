//! Wiring of the daemon: opens the store, starts the sources, the pipeline and the alert
//! publisher, and shuts them down in order. Each engine receives its own resolved section
//! of the config, never the whole file.
//!
//! ```text
//!  modbus device tasks ──Vec<Sample>──> pipeline ──append──> store (flush every flush_interval)
//!  mqtt inputs            (bounded        │
//!                          channel)       └──observe──> rules ───Observation──> lifecycle ──> outbox ──> publisher ──> MQTT
//!                                                   └──> models ──┘          ^
//!                                   retention ──storage alarms (channel)────┘
//! ```
//!
//! The pipeline is in [`pipeline`], the retention task in [`retention`], signals and the
//! shutdown broadcast in [`signals`], the service manager's notifications (`READY=1`,
//! `STATUS=`, a watchdog fed by the pipeline's progress, `STOPPING=1`) in [`notify`].
//! SIGHUP reloads the failure-prediction models (after `forewarn train`, or when scheduled
//! retraining in [`retrain`] promotes a candidate); their alarms
//! stay registered with the lifecycle, so open model alerts carry over a reload.
//!
//! Shutdown order: sources stop; the pipeline drains the channel, evaluates and flushes
//! everything it received; the publisher keeps sending the outbox for a short grace
//! period and leaves the rest for the next start.

mod notify;
mod pipeline;
mod retention;
mod retrain;
mod signals;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::alert::lifecycle::Lifecycle;
use crate::alert::publisher::Publisher;
use crate::alert::sink::AlertSink;
use crate::alert::status::{config_hash, StatusInfo};
use crate::alert::Outbox;
use crate::base::sample::SensorId;
use crate::config::{Config, Severity, UpstreamSettings};
use crate::detect::live::ModelAlarms;
use crate::detect::rule::RuleEngine;
use crate::detect::silence::SilenceWatch;
use crate::detect::{AlarmDef, AlarmId, Observation, Policy};
use crate::mqtt::Connection;
use crate::source::modbus::{plan_buses, spawn as spawn_buses};
use crate::source::mqtt::MqttSource;
use crate::source::Batch;
use crate::stats::Stats;
use crate::store::retention::Policy as RetentionPolicy;
use crate::store::{SealPolicy, Store, StoreOptions};
use notify::{Heartbeat, Supervisor};
use pipeline::{load_models, stall_hook, Pipeline};
pub use retention::STORAGE_ASSET;
use retention::{Retention, STORAGE_RULES};
pub use signals::shutdown_signal;
use signals::{forward_hangups, wait_true};

/// Batches in flight between sources and the pipeline (a "bus" is a Modbus transport).
const BATCH_QUEUE: usize = 256;
/// Label changes in flight from the API to the pipeline (an operator makes a few a day).
const LABEL_QUEUE: usize = 64;

/// Runs the agent until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    let stats = Arc::new(Stats::default());
    run_with_stats(config, shutdown, stats).await
}

/// [`run`], with the counters given (the demo prints them).
pub async fn run_with_stats(config: Config, mut shutdown: watch::Receiver<bool>, stats: Arc<Stats>) -> Result<()> {
    let upstream = config.upstream_settings().map_err(anyhow::Error::msg)?;
    let stall_at = stall_hook()?;
    let (store, outbox) = open_store(&config, &stats)?;
    let ids = register_sensors(&config, &store)?;
    let (batches_rx, mut tasks) = start_sources(&config, &ids, &store, &stats, &shutdown)?;
    let wake = Arc::new(Notify::new());
    let alarms = register_alarms(&config, &ids);
    let alerts = open_sink(alarms.lifecycle, &outbox, &wake, &stats, &upstream)?;
    let publisher = start_publisher(&config, &upstream, &outbox, &wake, &stats, &shutdown)?;
    let forwards = config.forward_settings().map_err(anyhow::Error::msg)?;
    tasks.extend(crate::forward::start(
        forwards,
        &config.asset,
        &store,
        &stats,
        &shutdown,
    )?);
    // SIGHUP (and the API's reload action) reloads the models after `forewarn train`; the
    // listener ends with the agent.
    let reload = Arc::new(Notify::new());
    // The API tells the pipeline of label changes (maintenance windows, announcements).
    let (label_tx, label_rx) = mpsc::channel(LABEL_QUEUE);
    if let Some(http) = start_http(&config, &store, &stats, (&reload, label_tx), &shutdown).await? {
        tasks.push(http);
    }
    let (alarm_tx, alarm_rx) = mpsc::channel::<(AlarmId, Observation)>(16);
    tasks.push(tokio::spawn(
        retention_task(&config, &store, &stats, alarm_tx, alarms.storage).run(shutdown.clone()),
    ));

    // Scheduled retraining promotes through the same reload.
    tasks.extend(retrain::spawn(
        &config.asset,
        &store,
        &config.agent.data_dir,
        &reload,
        &shutdown,
    ));
    let models = load_models(&config.asset, &config.agent.data_dir, &ids, &alarms.models);
    tracing::info!(agent = %config.agent.id, sensors = ids.len(), rules = alarms.rules.len(), models = models.len(), no_data_watches = alarms.silence.len(), data_dir = %config.agent.data_dir.display(), "agent started");
    tasks.push(tokio::spawn(forward_hangups(reload.clone(), shutdown.clone())));
    // The store is open and the sources run: the service manager may consider the agent up.
    let heartbeat = Heartbeat::default();
    let supervisor = Supervisor::from_env(heartbeat.clone(), stats.clone());
    supervisor.ready();
    tasks.push(tokio::spawn(supervisor.run(shutdown.clone())));

    let pipeline = Pipeline {
        flush_interval: config.storage.flush_interval.as_duration(),
        ack_delay: config.storage.ack_delay.as_duration(),
        min_free: config.storage.min_free_disk.0,
        assets: config.asset.clone(),
        data_dir: config.agent.data_dir.clone(),
        store,
        alerts,
        stats: stats.clone(),
        rules: alarms.rules,
        models,
        model_alarms: alarms.models,
        silence: alarms.silence,
        ids,
        reload,
        failing_flushes: 0,
        waiting: Vec::new(),
        ack_deadline: None,
        refused: Vec::new(),
        heartbeat,
        stall_at,
        maintenance: Default::default(),
        labels_due: false,
    };
    let result = pipeline.run(batches_rx, alarm_rx, label_rx, &mut shutdown).await;

    for t in tasks {
        let _ = t.await;
    }
    let _ = publisher.await;
    tracing::info!(stats = %stats.summary(), "agent stopped");
    result
}

/// The store in `data_dir` (created if missing) and the alert outbox inside it.
fn open_store(config: &Config, stats: &Stats) -> Result<(Store, Outbox)> {
    let data_dir = &config.agent.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let seal = SealPolicy {
        max_age: config.storage.seal_interval.as_duration(),
        ..SealPolicy::default()
    };
    let options = StoreOptions {
        cache_bytes: config.storage.cache.0,
        seal,
    };
    let store =
        Store::open(data_dir, options).with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let outbox = Outbox::open(&store).context("opening the alert outbox")?;
    stats.outbox_depth.set(outbox.len() as u64);
    Ok((store, outbox))
}

/// Ids of every sensor a register defines or an asset names: MQTT sensors are otherwise
/// only registered when their first message arrives, and the rules, models and watches
/// need their ids now.
fn register_sensors(config: &Config, store: &Store) -> Result<HashMap<String, SensorId>> {
    let mut ids: HashMap<String, SensorId> = HashMap::new();
    for name in config.named_sensors() {
        if ids.contains_key(name) {
            continue;
        }
        let id = store
            .sensor_id(name)
            .with_context(|| format!("registering sensor {name}"))?;
        ids.insert(name.to_string(), id);
    }
    Ok(ids)
}

/// The Modbus bus tasks and the MQTT inputs, all feeding one bounded channel. An input's
/// TLS files and password are read here, before anything runs.
fn start_sources(
    config: &Config,
    ids: &HashMap<String, SensorId>,
    store: &Store,
    stats: &Arc<Stats>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(mpsc::Receiver<Batch>, Vec<JoinHandle<()>>)> {
    let (batches_tx, batches_rx) = mpsc::channel::<Batch>(BATCH_QUEUE);
    let buses = plan_buses(&config.modbus, &|name| ids[name], &|device| stats.device(device));
    for d in &config.modbus {
        tracing::info!(device = %d.device, address = %d.address, unit = d.unit, registers = d.register.len(), "polling");
    }
    let mut tasks = spawn_buses(buses, &batches_tx, shutdown);
    for (i, settings) in config
        .input_settings()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .enumerate()
    {
        let connection = Connection::open(settings.endpoint.clone(), &format!("mqtt[{i}]"))?;
        tracing::info!(broker = %connection.broker(), client = %connection.client_id(), subscriptions = settings.subscriptions.len(), "subscribing");
        let source = MqttSource {
            settings,
            connection,
            store: store.clone(),
            batches: batches_tx.clone(),
            stats: stats.clone(),
        };
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = source.run(stop).await {
                tracing::error!(error = %e, "mqtt input stopped");
            }
        }));
    }
    Ok((batches_rx, tasks))
}

/// Everything that raises alarms, registered with one lifecycle.
struct Alarms {
    lifecycle: Lifecycle,
    rules: RuleEngine,
    models: ModelAlarms,
    silence: SilenceWatch,
    /// `storage-budget` and `disk-full`.
    storage: [AlarmId; 2],
}

fn register_alarms(config: &Config, ids: &HashMap<String, SensorId>) -> Alarms {
    let assets = &config.asset;
    let mut lifecycle = Lifecycle::for_assets(assets);
    let id = |name: &str| ids.get(name).copied();
    let rules = RuleEngine::new(assets, &id, &mut |d| lifecycle.register(d));
    let models = ModelAlarms::register(assets, &mut |d| lifecycle.register(d));
    let now = crate::base::time::now_ms();
    let silence = SilenceWatch::new(assets, &id, &mut |d| lifecycle.register(d), now);
    let storage = STORAGE_RULES.map(|rule| {
        lifecycle.register(AlarmDef {
            asset: STORAGE_ASSET.into(),
            rule: rule.into(),
            severity: Severity::Critical,
            policy: Policy::default(),
        })
    });
    Alarms {
        lifecycle,
        rules,
        models,
        silence,
        storage,
    }
}

/// The alert sink, with the lifecycle states of the last run restored.
fn open_sink(
    lifecycle: Lifecycle,
    outbox: &Outbox,
    wake: &Arc<Notify>,
    stats: &Arc<Stats>,
    upstream: &UpstreamSettings,
) -> Result<AlertSink> {
    let (alerts, restored) = AlertSink::open(
        lifecycle,
        outbox.clone(),
        wake.clone(),
        stats.clone(),
        &upstream.agent,
        upstream.site.as_deref(),
        &upstream.alert_topic,
    )
    .context("reading the alert states")?;
    if restored.open > 0 {
        tracing::info!(open = restored.open, "open alerts carried over from the last run");
    }
    for key in &restored.dropped {
        tracing::warn!(alarm = %key.replace('\u{1f}', "/"), "state of an alarm that is no longer configured dropped; no cleared alert will follow");
    }
    Ok(alerts)
}

/// The one owner of the upstream connection; its TLS files and password are read here.
fn start_publisher(
    config: &Config,
    upstream: &UpstreamSettings,
    outbox: &Outbox,
    wake: &Arc<Notify>,
    stats: &Arc<Stats>,
    shutdown: &watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let publisher = Publisher {
        options: crate::alert::upstream::options(upstream)?,
        outbox: outbox.clone(),
        wake: wake.clone(),
        stats: stats.clone(),
        drain_grace: Duration::from_secs(2),
        status: StatusInfo::new(upstream, config_hash(config)),
        acked: None,
    };
    Ok(tokio::spawn(publisher.run(shutdown.clone())))
}

/// What the web pages show of the configuration: assets with their limits and model
/// files, devices with their sensors, the retention promise, the forward destinations.
fn pages_site(config: &Config) -> crate::http::Site {
    use crate::http::pages::{Limit, SiteAsset, SiteDevice};
    let assets = config
        .asset
        .iter()
        .map(|a| SiteAsset {
            id: a.id.clone(),
            sensors: a.sensors.clone(),
            limits: a
                .rule
                .iter()
                .map(|r| Limit {
                    rule: r.name.clone(),
                    sensor: r.sensor.clone(),
                    above: r.above,
                    below: r.below,
                })
                .collect(),
            model: a
                .model
                .as_ref()
                .map(|m| (m.name.clone(), m.path(&config.agent.data_dir, &a.id))),
        })
        .collect();
    let devices = config
        .modbus
        .iter()
        .map(|d| SiteDevice {
            name: d.device.clone(),
            sensors: d.register.iter().map(|r| r.sensor.clone()).collect(),
        })
        .collect();
    crate::http::Site {
        assets,
        devices,
        raw_retention_ms: config.storage.raw_retention.as_duration().as_millis() as i64,
        forwards: config.forward.iter().map(|f| f.name.clone()).collect(),
    }
}

/// The local HTTP API, when enabled; it stops with the agent.
async fn start_http(
    config: &Config,
    store: &Store,
    stats: &Arc<Stats>,
    (reload, label_changes): (&Arc<Notify>, mpsc::Sender<crate::alert::labelled::LabelChange>),
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<JoinHandle<()>>> {
    let Some(listen) = config.http_listen().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    let h = &config.http;
    let access = crate::http::Access {
        auth: match &h.users_file {
            Some(f) => Some(Arc::new(crate::http::auth::Auth::load(f, stats.clone())?)),
            None => None,
        },
        tls: match (&h.tls_cert, &h.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::tls::acceptor(cert, key)?),
            _ => None,
        },
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {listen}"))?;
    let api = crate::http::ApiState {
        agent: config.agent.id.clone(),
        store: store.clone(),
        stats: stats.clone(),
        data_dir: config.agent.data_dir.clone(),
        max_disk: config.storage.max_disk.0,
        rollups: config.rollup_tiers(),
        site: pages_site(config),
    };
    tracing::info!(%listen, users = access.auth.is_some(), https = access.tls.is_some(), "http api");
    let labels = crate::http::labels::LabelsState {
        store: store.clone(),
        assets: config.asset.iter().map(|a| a.id.clone()).collect(),
        changes: label_changes,
    };
    let app = crate::http::app(Arc::new(api))
        .merge(crate::http::actions::router(reload.clone()))
        .merge(crate::http::labels::router(Arc::new(labels)));
    let stop = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        tokio::select! {
            _ = crate::http::serve_access(listener, app, crate::http::Limits::default(), access) => {}
            _ = wait_true(stop) => {}
        }
    })))
}

fn retention_task(
    config: &Config,
    store: &Store,
    stats: &Arc<Stats>,
    alarms: mpsc::Sender<(AlarmId, Observation)>,
    alarm_ids: [AlarmId; 2],
) -> Retention {
    let s = &config.storage;
    Retention {
        store: store.clone(),
        data_dir: config.agent.data_dir.clone(),
        policy: RetentionPolicy {
            raw_retention: s.raw_retention.as_duration(),
            max_disk: s.max_disk.0,
            min_free: s.min_free_disk.0,
            archive_dir: s.archive_dir.clone(),
            rollups: config.rollup_tiers(),
        },
        every: s.retention_interval.as_duration(),
        stats: stats.clone(),
        alarms,
        alarm_ids,
    }
}
