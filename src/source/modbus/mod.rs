//! Modbus TCP polling: one task per device, each with its own interval, timeout and
//! reconnect backoff, so a slow or dead device never delays the others.
//!
//! Guarantees:
//! - Every request (and every connect) is bounded by the device's `timeout`;
//!   tokio-modbus has no timeout of its own.
//! - After a timeout or a transport error the connection is dropped and re-opened with
//!   exponential backoff: a late reply can never be matched to the next request.
//! - A read that fails yields bad-quality samples (why it failed, value NaN) for the
//!   affected sensors, never a made-up value. A Modbus exception affects only the sensors
//!   of that request; a lost connection affects the rest of the cycle.
//! - Samples carry the time their request was sent.
//! - Poll cycles start on a fixed schedule; a cycle that overruns is counted as a missed
//!   deadline and the next one starts at the next tick, not in a burst.

pub mod decode;
pub mod plan;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::lookup_host;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::Slave;

use crate::backoff::Backoff;
use crate::config::{ModbusDevice, RegisterKind};
use crate::sample::{now_ms, Quality, Sample, SensorId};
use crate::stats::DeviceStats;
use plan::{Field, PlanInput, ReadRequest};

/// Compiles a device's registers into its poll plan; `ids` maps sensor names to ids.
pub fn device_plan(device: &ModbusDevice, ids: &dyn Fn(&str) -> SensorId) -> Vec<ReadRequest> {
    let inputs = device
        .register
        .iter()
        .map(|r| PlanInput {
            kind: r.kind,
            // Validation guarantees the address fits.
            address: r.address as u16,
            field: Field {
                sensor: ids(&r.sensor),
                name: r.sensor.clone(),
                offset: 0,
                data_type: r.data_type,
                order: r.order,
                scale: r.scale,
                add: r.offset,
            },
        })
        .collect();
    plan::build(inputs, device.max_gap, device.max_registers)
}

/// Decodes the fields of one response into samples.
pub fn decode_fields(req: &ReadRequest, words: &[u16], ts_ms: i64, out: &mut Vec<Sample>) {
    for f in &req.fields {
        let start = usize::from(f.offset);
        let end = start + usize::from(f.data_type.words());
        let sample = match words.get(start..end) {
            Some(w) => {
                let value = decode::decode(w, f.data_type, f.order) * f.scale + f.add;
                if value.is_finite() {
                    Sample::good(f.sensor, ts_ms, value)
                } else {
                    Sample::bad(f.sensor, ts_ms, Quality::Invalid)
                }
            }
            // A device that answers with fewer registers than asked.
            None => Sample::bad(f.sensor, ts_ms, Quality::Invalid),
        };
        out.push(sample);
    }
}

fn mark_bad(reqs: &[ReadRequest], ts_ms: i64, quality: Quality, out: &mut Vec<Sample>) {
    for r in reqs {
        out.extend(r.fields.iter().map(|f| Sample::bad(f.sensor, ts_ms, quality)));
    }
}

/// Why a request produced no registers.
enum ReadFailure {
    Exception(u8),
    /// The connection is no longer trustworthy.
    Connection(Quality, String),
}

async fn read(ctx: &mut Context, req: &ReadRequest, limit: Duration) -> Result<Vec<u16>, ReadFailure> {
    let call = async {
        match req.kind {
            RegisterKind::Holding => ctx.read_holding_registers(req.start, req.count).await,
            RegisterKind::Input => ctx.read_input_registers(req.start, req.count).await,
        }
    };
    match timeout(limit, call).await {
        Err(_) => Err(ReadFailure::Connection(
            Quality::Timeout,
            format!("no answer within {limit:?}"),
        )),
        Ok(Err(e)) => Err(ReadFailure::Connection(Quality::Disconnected, e.to_string())),
        Ok(Ok(Err(code))) => Err(ReadFailure::Exception(u8::from(code))),
        Ok(Ok(Ok(words))) => Ok(words),
    }
}

async fn connect(address: &str, unit: u8, limit: Duration) -> Result<Context, String> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = lookup_host(address)
            .await
            .map_err(|e| format!("resolving {address}: {e}"))?
            .collect();
        let addr = addrs
            .first()
            .ok_or_else(|| format!("{address} resolves to no address"))?;
        tokio_modbus::client::tcp::connect_slave(*addr, Slave(unit))
            .await
            .map_err(|e| e.to_string())
    };
    timeout(limit, attempt)
        .await
        .map_err(|_| format!("connect timed out after {limit:?}"))?
}

/// A running device poller.
pub struct DevicePoller {
    pub device: ModbusDevice,
    pub plan: Vec<ReadRequest>,
    pub bus: mpsc::Sender<crate::source::Batch>,
    pub stats: Arc<DeviceStats>,
    /// Delay of the first poll, so that devices do not all fire at the same instant.
    pub stagger: Duration,
}

impl DevicePoller {
    /// Polls until `shutdown` turns true or the pipeline goes away.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let DevicePoller {
            device,
            plan,
            bus,
            stats,
            stagger,
        } = self;
        let name = device.device.as_str();
        let limit = device.timeout.as_duration();
        let interval = device.interval.as_duration();
        let mut ctx: Option<Context> = None;
        let mut backoff = Backoff::new(
            interval.clamp(Duration::from_millis(200), Duration::from_secs(2)),
            Duration::from_secs(30),
        );
        let mut retry_at = Instant::now();
        let mut healthy = true;
        let mut ticker = tokio::time::interval_at(Instant::now() + stagger, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);

        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            let cycle_start = Instant::now();
            let mut samples = Vec::with_capacity(plan.iter().map(|r| r.fields.len()).sum());

            if ctx.is_none() {
                if Instant::now() < retry_at {
                    continue;
                }
                match connect(&device.address, device.unit, limit).await {
                    Ok(c) => {
                        stats.connects.inc();
                        if !healthy {
                            tracing::info!(device = name, "reconnected");
                        }
                        ctx = Some(c);
                    }
                    Err(e) => {
                        stats.connect_failures.inc();
                        let delay = backoff.next_delay();
                        retry_at = Instant::now() + delay;
                        if healthy {
                            tracing::warn!(device = name, address = %device.address, error = %e, retry_in = ?delay, "cannot connect");
                            healthy = false;
                        } else {
                            tracing::debug!(device = name, error = %e, retry_in = ?delay, "still cannot connect");
                        }
                        mark_bad(&plan, now_ms(), Quality::Disconnected, &mut samples);
                    }
                }
            }

            if let Some(c) = ctx.as_mut() {
                stats.polls.inc();
                for (i, req) in plan.iter().enumerate() {
                    let ts = now_ms();
                    stats.requests.inc();
                    match read(c, req, limit).await {
                        Ok(words) => decode_fields(req, &words, ts, &mut samples),
                        Err(ReadFailure::Exception(code)) => {
                            stats.exceptions.inc();
                            let q = Quality::Exception(code);
                            tracing::warn!(device = name, start = req.start, count = req.count, "{q}");
                            mark_bad(std::slice::from_ref(req), ts, q, &mut samples);
                        }
                        Err(ReadFailure::Connection(q, detail)) => {
                            if q == Quality::Timeout {
                                stats.timeouts.inc();
                            } else {
                                stats.transport_errors.inc();
                            }
                            let delay = backoff.next_delay();
                            retry_at = Instant::now() + delay;
                            if healthy {
                                tracing::warn!(device = name, start = req.start, error = %detail, retry_in = ?delay, "read failed; reconnecting");
                                healthy = false;
                            }
                            mark_bad(&plan[i..], ts, q, &mut samples);
                            ctx = None;
                            break;
                        }
                    }
                }
                if ctx.is_some() {
                    if !healthy {
                        tracing::info!(device = name, "reading again");
                        healthy = true;
                    }
                    backoff.reset();
                }
            }

            if cycle_start.elapsed() > interval {
                stats.missed_deadlines.inc();
            }
            if !samples.is_empty() && bus.send(samples.into()).await.is_err() {
                break;
            }
        }
        if let Some(mut c) = ctx {
            // Best effort: the device may already be gone.
            let _ = timeout(limit, c.disconnect()).await;
        }
    }
}
