//! Modbus acquisition, TCP and RTU: the configured registers compiled into poll plans
//! (`plan.rs`), read over buses (`bus.rs`: one task per TCP device, per shared TCP
//! connection or per serial port) through links that bound and distrust every exchange
//! (`link.rs`), and decoded into samples (`reading.rs`, `decode.rs`). `once.rs` reads
//! everything once for commissioning (`forewarn poll`).
//!
//! Guarantees, detailed in each module: every request is bounded by its device's
//! `timeout`; a broken connection is dropped and re-opened with backoff; a failed read
//! yields bad-quality samples, never a made-up value; a slow or dead device never delays
//! a device on another bus, and on a shared serial port costs only its own timeout.

pub mod bus;
pub mod decode;
pub(crate) mod link;
pub mod once;
pub(crate) mod plan;
pub mod reading;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::base::sample::SensorId;
use crate::config::{Endpoint, ModbusDevice};
use crate::stats::DeviceStats;
use bus::{Bus, Group, Unit};
use link::Link;
use plan::{Field, Limits, PlanInput};

/// Compiles a device's registers into groups (one per distinct interval, the device's
/// own first), each with its poll plan; `ids` maps sensor names to ids.
pub fn device_groups(device: &ModbusDevice, ids: &dyn Fn(&str) -> SensorId) -> Vec<Group> {
    let mut intervals = vec![device.interval];
    for r in &device.register {
        let i = device.interval_of(r);
        if !intervals.contains(&i) {
            intervals.push(i);
        }
    }
    let limits = Limits {
        max_gap: device.max_gap,
        max_registers: device.max_registers,
        max_bits: device.max_bits,
    };
    intervals
        .into_iter()
        .map(|interval| {
            let inputs = device
                .register
                .iter()
                .filter(|r| device.interval_of(r) == interval)
                .map(|r| PlanInput {
                    kind: r.kind,
                    address: device.protocol_address(r),
                    field: Field {
                        sensor: ids(&r.sensor),
                        name: r.sensor.clone(),
                        offset: 0,
                        span: r.span(),
                        data_type: r.data_type,
                        bit: r.bit.unwrap_or(0),
                        order: r.order,
                        scale: r.scale,
                        add: r.offset,
                    },
                })
                .collect();
            Group {
                interval: interval.as_duration(),
                requests: plan::build(inputs, limits),
            }
        })
        .filter(|g| !g.requests.is_empty())
        .collect()
}

/// A bus ready to run, with the delay of each group's first poll (`[unit][group]`).
pub struct PlannedBus {
    pub bus: Bus,
    pub stagger: Vec<Vec<Duration>>,
}

/// Groups the devices into buses: one per serial port, one per TCP connection shared
/// with `shared_connection`, one per other device. First polls are spread evenly over
/// each group's interval across all groups, so devices do not all fire at once.
pub fn plan_buses(
    devices: &[ModbusDevice],
    ids: &dyn Fn(&str) -> SensorId,
    stats: &dyn Fn(&str) -> Arc<DeviceStats>,
) -> Vec<PlannedBus> {
    let mut order: Vec<String> = Vec::new();
    let mut members: HashMap<String, Vec<&ModbusDevice>> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        let key = match d.endpoint() {
            Endpoint::Rtu(path) => format!("rtu:{path}"),
            Endpoint::Tcp(addr) if d.shared_connection => format!("tcp:{addr}"),
            Endpoint::Tcp(_) => format!("device:{i}"),
        };
        if !members.contains_key(&key) {
            order.push(key.clone());
        }
        members.entry(key).or_default().push(d);
    }
    let total: usize = devices.iter().map(|d| device_groups(d, &|_| 0).len()).sum();
    let mut k = 0u32;
    order
        .iter()
        .map(|key| {
            let devs = &members[key];
            let link = Link::new(devs[0].endpoint(), devs[0].serial());
            let mut stagger = Vec::new();
            let units = devs
                .iter()
                .map(|d| {
                    let groups = device_groups(d, ids);
                    stagger.push(
                        groups
                            .iter()
                            .map(|g| {
                                k += 1;
                                g.interval * (k - 1) / total.max(1) as u32
                            })
                            .collect(),
                    );
                    Unit::new((*d).clone(), groups, stats(&d.device))
                })
                .collect();
            PlannedBus {
                bus: Bus::new(link, units),
                stagger,
            }
        })
        .collect()
}

/// Starts one task per bus; they poll until `shutdown` turns true or `tx` closes.
pub fn spawn(
    buses: Vec<PlannedBus>,
    batches: &mpsc::Sender<crate::source::Batch>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    buses
        .into_iter()
        .map(|b| tokio::spawn(b.bus.run(b.stagger, batches.clone(), shutdown.clone())))
        .collect()
}

/// The poll plan of a device as `forewarn check` prints it.
pub fn describe(d: &ModbusDevice) -> String {
    let groups = device_groups(d, &|_| 0);
    let mut s = String::new();
    let line = match d.endpoint() {
        Endpoint::Rtu(_) => format!("{} ({})", d.address, d.serial()),
        Endpoint::Tcp(_) if d.shared_connection => format!("{} (shared connection)", d.address),
        Endpoint::Tcp(_) => d.address.clone(),
    };
    let first = groups.first().map_or(0, |g| g.requests.len());
    let base = if d.address_base == 1 { ", 1-based addresses" } else { "" };
    let _ = writeln!(
        s,
        "  device {} at {line} unit {}: every {}, timeout {}{base}, {first} request{} per poll",
        d.device,
        d.unit,
        d.interval,
        d.timeout,
        plural(first)
    );
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            let n = g.requests.len();
            let every = crate::config::Dur(g.interval);
            let _ = writeln!(s, "   and every {every}: {n} request{} per poll", plural(n));
        }
        for r in &g.requests {
            let names: Vec<&str> = r.fields.iter().map(|f| f.name.as_str()).collect();
            let unit = if r.kind.is_bits() { "bit" } else { "word" };
            let first = u32::from(r.start) + u32::from(d.address_base);
            let _ = writeln!(
                s,
                "    {} {first}..{} ({} {unit}{}): {}",
                r.kind.as_str(),
                first + u32::from(r.count) - 1,
                r.count,
                plural(usize::from(r.count)),
                names.join(", ")
            );
        }
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
