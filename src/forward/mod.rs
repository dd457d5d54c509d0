//! Telemetry forwarding: every `[[forward]]` destination is fed from the local history
//! behind its own durable cursor, so the store is the buffer through any outage.
//!
//! ```text
//!  store ──read_after──> Planner (cursors: sent / confirmed) ──Batch──> encode ──> sink
//!    ^                        ^                                                   │
//!    └── cursors (sled) <─────┴──────────── confirm (PUBACK, HTTP 2xx) <──────────┘
//! ```
//!
//! Guarantees: the cursor moves only on the destination's confirmation, in send order
//! ([`window`]); after an outage or `kill -9` a destination resumes at its cursor, in time
//! order per sensor, and repeats at most what was in flight. Live data goes first; the
//! backlog goes beside it at `backfill_rate`. Retention never evicts a chunk a
//! destination has not confirmed (`store::cursor::Cursors::protected`).
//!
//! Samples that reach the store with a time at or before the newest one of their sensor
//! (a device replaying its buffer between live readings) are behind the time-ordered
//! reads; the store journals them (`store::late`) and each destination takes them from
//! the journal behind a position of its own, so they are sent too.
//!
//! The broker sink is in [`link`], the Sparkplug B edge node in [`sparkplug`], InfluxDB in
//! [`influx`]; [`engine`] is what they share.

mod encode;
mod engine;
mod influx;
mod link;
mod plan;
mod sparkplug;
mod window;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Asset, Destination, ForwardSettings};
use crate::mqtt::Connection;
use crate::stats::Stats;
use crate::store::Store;
use engine::Engine;

pub use encode::SCHEMA;

/// Samples of sensors outside every asset are sent under this asset.
pub use crate::base::names::UNASSIGNED_ASSET as UNASSIGNED;

/// Opens every destination (reading its password, token and TLS files now) and starts it.
/// Cursors of destinations no longer configured are dropped, so they stop holding
/// retention back.
pub fn start(
    settings: Vec<ForwardSettings>,
    assets: &[Asset],
    store: &Store,
    stats: &Stats,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>> {
    // Samples that arrive behind a destination's cursor reach it through the late
    // journal, kept only while there are destinations.
    store.keep_late(!settings.is_empty());
    let cursors = store.cursors().context("opening the forward cursors")?;
    let names: Vec<&str> = settings.iter().map(|s| s.name.as_str()).collect();
    for gone in cursors.retain_destinations(&names)? {
        tracing::info!(destination = %gone, "cursor of a destination no longer configured dropped");
    }
    let asset_of = Arc::new(engine::AssetMap::new(assets));
    let mut tasks = Vec::new();
    for s in settings {
        let section = format!("forward[{}]", s.name);
        let engine = Engine::new(
            &s,
            store.clone(),
            cursors.clone(),
            stats.forward(&s.name),
            asset_of.clone(),
        )
        .with_context(|| format!("{section}: reading its cursors"))?;
        let stop = shutdown.clone();
        match &s.destination {
            Destination::Mqtt {
                endpoint,
                sparkplug: Some(node),
                max_inflight,
                ..
            } => {
                let connection = Connection::open(endpoint.clone(), &section)?;
                tracing::info!(destination = %s.name, broker = %connection.broker(), group = %node.group, node = %node.node, "forwarding as a Sparkplug B edge node");
                let sink = sparkplug::SparkplugSink {
                    connection,
                    node: node.clone(),
                    max_inflight: *max_inflight,
                };
                tasks.push(tokio::spawn(sink.run(engine, stop)));
            }
            Destination::Mqtt {
                endpoint,
                topic,
                max_inflight,
                sparkplug: None,
            } => {
                let connection = Connection::open(endpoint.clone(), &section)?;
                tracing::info!(destination = %s.name, broker = %connection.broker(), format = ?s.format, "forwarding");
                let sink = link::BrokerSink {
                    connection,
                    topic: topic.clone(),
                    max_inflight: *max_inflight,
                };
                tasks.push(tokio::spawn(sink.run(engine, stop)));
            }
            Destination::Influx(target) => {
                let client = influx::InfluxClient::open(target.clone(), &section)?;
                tracing::info!(destination = %s.name, server = %client.server(), "forwarding to InfluxDB");
                tasks.push(tokio::spawn(influx_loop(client, engine, stop)));
            }
        }
    }
    Ok(tasks)
}

/// One write at a time: read a batch, post it, confirm it on 2xx; on failure keep the
/// cursor, back off and send the same data again.
async fn influx_loop(mut client: influx::InfluxClient, mut engine: Engine, mut shutdown: watch::Receiver<bool>) {
    let mut retry = engine::Retry::new(&client.server(), &engine.name);
    let mut tick = tokio::time::interval(engine.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let batch = match engine.next_batch() {
            Some(b) => b,
            None => {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        let body = encode::line_protocol(&engine.agent, &batch);
        engine.sent(&batch);
        let result = tokio::select! {
            r = client.write(body) => r,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => {
                retry.succeeded();
                engine.confirmed(&batch);
            }
            Err(e) => {
                engine.failed();
                let delay = retry.failed(&e.cause(), e.is_configuration());
                if !engine.pause(delay, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}
