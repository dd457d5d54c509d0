//! Counters that every stage keeps, so an operator can tell what came in, what was
//! stored, what was rejected and what failed. Plain atomics: cheap on the hot path, read
//! by the periodic log line and by health reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Reads one counter of an MQTT subscription.
type InputField = fn(&InputStats) -> u64;

/// Reads one counter of a device.
type DeviceField = fn(&DeviceStats) -> u64;

/// A histogram of durations: 100 µs steps to 10 ms, then 10 ms steps to 1 s, so
/// percentiles of poll lateness are exact enough to compare with a few milliseconds, in
/// 1.6 KB per device.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

const FINE: usize = 100;
const COARSE: usize = 100;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..FINE + COARSE + 1).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    fn bucket(d: Duration) -> usize {
        let us = d.as_micros();
        if us < 10_000 {
            (us / 100) as usize
        } else {
            (FINE + (us / 10_000) as usize).min(FINE + COARSE)
        }
    }

    /// Upper edge of a bucket.
    fn edge(i: usize) -> Duration {
        if i < FINE {
            Duration::from_micros(100 * (i as u64 + 1))
        } else {
            Duration::from_millis(10 * (i - FINE) as u64 + 10)
        }
    }

    pub fn record(&self, d: Duration) {
        self.buckets[Self::bucket(d)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(&other.buckets) {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// The duration below which `q` (0..=1) of the recorded values lie (bucket's upper
    /// edge); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Self::edge(i));
            }
        }
        Some(Self::edge(FINE + COARSE))
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
    /// Requests split after exception 02 (illegal data address).
    pub splits: Counter,
    /// How late each poll started against its schedule.
    pub lateness: Histogram,
}

/// Per MQTT subscription (and, for `unknown_topic`, per input).
#[derive(Debug, Default)]
pub struct InputStats {
    pub messages: Counter,
    pub samples: Counter,
    pub malformed: Counter,
    pub non_finite: Counter,
    pub future: Counter,
    pub unknown_topic: Counter,
    pub seq_gaps: Counter,
}

/// Whole-agent figures.
#[derive(Debug, Default)]
pub struct Stats {
    pub samples_in: Counter,
    pub samples_stored: Counter,
    /// Refused because the disk is full (the last resort of retention).
    pub samples_rejected: Counter,
    /// 0 ok, 1 over budget, 2 disk full.
    pub storage_pressure: Counter,
    pub evicted_samples: Counter,
    pub flushes: Counter,
    pub flush_errors: Counter,
    pub alerts_raised: Counter,
    pub alerts_published: Counter,
    pub outbox_depth: Counter,
    devices: Mutex<BTreeMap<String, Arc<DeviceStats>>>,
    inputs: Mutex<BTreeMap<String, Arc<InputStats>>>,
}

impl Stats {
    pub fn device(&self, name: &str) -> Arc<DeviceStats> {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices.entry(name.to_string()).or_default().clone()
    }

    pub fn input(&self, name: &str) -> Arc<InputStats> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        inputs.entry(name.to_string()).or_default().clone()
    }

    pub fn inputs_json(&self) -> serde_json::Value {
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        inputs
            .iter()
            .map(|(name, i)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "messages": i.messages.get(), "samples": i.samples.get(), "malformed": i.malformed.get(),
                        "non_finite": i.non_finite.get(), "future": i.future.get(), "unknown_topic": i.unknown_topic.get(),
                        "seq_gaps": i.seq_gaps.get(),
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    pub fn storage_pressure(&self) -> &'static str {
        match self.storage_pressure.get() {
            0 => "ok",
            1 => "over_budget",
            _ => "disk_full",
        }
    }

    pub fn devices_json(&self) -> serde_json::Value {
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices
            .iter()
            .map(|(name, d)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "polls": d.polls.get(), "requests": d.requests.get(), "timeouts": d.timeouts.get(),
                        "transport_errors": d.transport_errors.get(), "exceptions": d.exceptions.get(),
                        "connects": d.connects.get(), "connect_failures": d.connect_failures.get(),
                        "missed_deadlines": d.missed_deadlines.get(),
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Prometheus text exposition of every counter.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            s.push_str(&format!(
                "# HELP forewarn_{name} {help}\n# TYPE forewarn_{name} {kind}\nforewarn_{name} {value}\n"
            ));
        };
        metric(
            "samples_in_total",
            "counter",
            "Samples received from sources.",
            self.samples_in.get(),
        );
        metric(
            "samples_stored_total",
            "counter",
            "Samples made durable.",
            self.samples_stored.get(),
        );
        metric(
            "samples_rejected_total",
            "counter",
            "Samples refused because the disk is full.",
            self.samples_rejected.get(),
        );
        metric(
            "flush_errors_total",
            "counter",
            "Failed store flushes.",
            self.flush_errors.get(),
        );
        metric(
            "alerts_raised_total",
            "counter",
            "Alert messages written to the outbox.",
            self.alerts_raised.get(),
        );
        metric(
            "alerts_published_total",
            "counter",
            "Alert messages acknowledged by the broker.",
            self.alerts_published.get(),
        );
        metric(
            "outbox_depth",
            "gauge",
            "Alerts waiting for the broker.",
            self.outbox_depth.get(),
        );
        metric(
            "storage_pressure",
            "gauge",
            "0 ok, 1 over budget, 2 disk full.",
            self.storage_pressure.get(),
        );
        metric(
            "evicted_samples_total",
            "counter",
            "Samples removed by retention.",
            self.evicted_samples.get(),
        );
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let fields: [(&str, DeviceField); 6] = [
            ("modbus_polls_total", |d| d.polls.get()),
            ("modbus_timeouts_total", |d| d.timeouts.get()),
            ("modbus_transport_errors_total", |d| d.transport_errors.get()),
            ("modbus_exceptions_total", |d| d.exceptions.get()),
            ("modbus_connect_failures_total", |d| d.connect_failures.get()),
            ("modbus_missed_deadlines_total", |d| d.missed_deadlines.get()),
        ];
        for (name, get) in fields {
            s.push_str(&format!("# TYPE forewarn_{name} counter\n"));
            for (device, d) in devices.iter() {
                s.push_str(&format!("forewarn_{name}{{device=\"{device}\"}} {}\n", get(d)));
            }
        }
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        let fields: [(&str, InputField); 6] = [
            ("mqtt_messages_total", |i| i.messages.get()),
            ("mqtt_samples_total", |i| i.samples.get()),
            ("mqtt_malformed_total", |i| i.malformed.get()),
            ("mqtt_non_finite_total", |i| i.non_finite.get()),
            ("mqtt_future_total", |i| i.future.get()),
            ("mqtt_unknown_topic_total", |i| i.unknown_topic.get()),
        ];
        for (name, get) in fields {
            s.push_str(&format!("# TYPE forewarn_{name} counter\n"));
            for (input, i) in inputs.iter() {
                s.push_str(&format!(
                    "forewarn_{name}{{subscription=\"{}\"}} {}\n",
                    input.replace('"', "'"),
                    get(i)
                ));
            }
        }
        s
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
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        for (name, i) in inputs.iter() {
            s.push_str(&format!(
                " {name}:messages={},samples={},malformed={},non_finite={},future={},unknown_topic={}",
                i.messages.get(),
                i.samples.get(),
                i.malformed.get(),
                i.non_finite.get(),
                i.future.get(),
                i.unknown_topic.get()
            ));
        }
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        for (name, d) in devices.iter() {
            s.push_str(&format!(
                " {name}:polls={},timeouts={},errors={},exceptions={},reconnects={},missed={}",
                d.polls.get(),
                d.timeouts.get(),
                d.transport_errors.get() + d.connect_failures.get(),
                d.exceptions.get(),
                d.connects.get().saturating_sub(1),
                d.missed_deadlines.get()
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 0..99 {
            h.record(Duration::from_micros(us * 10));
        }
        h.record(Duration::from_millis(42));
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(500)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_micros(1000)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_millis(50)));
        h.record(Duration::from_secs(5));
        assert_eq!(h.count(), 101);
    }
}
