//! Counters that every stage keeps, so an operator can tell what came in, what was
//! stored, what was rejected and what failed. Plain atomics: cheap on the hot path, read
//! by the periodic log line and by health reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per Modbus device.
#[derive(Debug, Default)]
pub struct DeviceStats {
    pub polls: Counter,
    pub requests: Counter,
    pub timeouts: Counter,
    pub transport_errors: Counter,
    pub exceptions: Counter,
    pub connects: Counter,
    pub connect_failures: Counter,
    pub missed_deadlines: Counter,
}

/// Whole-agent figures.
#[derive(Debug, Default)]
pub struct Stats {
    pub samples_in: Counter,
    pub samples_stored: Counter,
    pub flushes: Counter,
    pub flush_errors: Counter,
    pub alerts_raised: Counter,
    pub alerts_published: Counter,
    pub outbox_depth: Counter,
    devices: Mutex<BTreeMap<String, Arc<DeviceStats>>>,
}

impl Stats {
    pub fn device(&self, name: &str) -> Arc<DeviceStats> {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices.entry(name.to_string()).or_default().clone()
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "samples_in={} stored={} flushes={} flush_errors={} alerts_raised={} alerts_published={} outbox={}",
            self.samples_in.get(),
            self.samples_stored.get(),
            self.flushes.get(),
            self.flush_errors.get(),
            self.alerts_raised.get(),
            self.alerts_published.get(),
            self.outbox_depth.get()
        );
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        for (name, d) in devices.iter() {
            s.push_str(&format!(
                " {name}:polls={},timeouts={},errors={},exceptions={},reconnects={}",
                d.polls.get(),
                d.timeouts.get(),
                d.transport_errors.get() + d.connect_failures.get(),
                d.exceptions.get(),
                d.connects.get().saturating_sub(1)
            ));
        }
        s
    }
}
