//! The figures every stage keeps, so an operator can tell what came in, what was stored,
//! what was rejected and what failed. Each figure is declared once, in the tables below
//! (`figures!`): its field, its kind, its Prometheus name and its name in JSON, with the
//! doc comment as its help text. That one declaration drives `/metrics`, `/healthz`, the
//! heartbeat and the log's stats line, so a figure that is recorded is always exported,
//! under one name everywhere.

mod metric;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

pub use metric::{Counter, Figure, Gauge, Histogram, Kind, Level, PRESSURE_LEVELS};

/// One declared figure of a struct `T`.
pub struct Decl<T> {
    /// Prometheus name, without the `forewarn_` prefix.
    pub prom: &'static str,
    /// Name in `/healthz`, the heartbeat and the stats line.
    pub json: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub read: fn(&T) -> u64,
}

/// Declares a struct of figures and its table [`Decl`]s, from one list of fields.
macro_rules! figures {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])+ pub $field:ident: $ty:ident => $prom:literal, $json:literal; )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Default)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl $name {
            /// Every figure of this struct, as declared.
            pub const FIGURES: &'static [Decl<$name>] = &[
                $( Decl {
                    prom: $prom,
                    json: $json,
                    help: concat!($($doc),+),
                    kind: <$ty as Figure>::KIND,
                    read: |m: &$name| m.$field.value(),
                }, )*
            ];
        }
    };
}

figures! {
    /// Whole-agent figures.
    pub struct AgentFigures {
        /// Samples received from sources.
        pub samples_in: Counter => "samples_in_total", "samples_in";
        /// Samples made durable.
        pub samples_stored: Counter => "samples_stored_total", "samples_stored";
        /// Samples refused because the disk is full or flushes keep failing.
        pub samples_rejected: Counter => "samples_rejected_total", "samples_rejected";
        /// Refused messages left unacknowledged, to be asked back from their broker once
        /// samples are accepted again.
        pub refused_held: Gauge => "refused_messages_held", "refused_messages_held";
        /// Storage pressure: 0 ok, 1 over budget, 2 disk full.
        pub storage_pressure: Level => "storage_pressure", "storage_pressure";
        /// Samples removed by retention.
        pub evicted_samples: Counter => "evicted_samples_total", "evicted_samples";
        /// Store flushes that completed.
        pub flushes: Counter => "flushes_total", "flushes";
        /// Failed store flushes.
        pub flush_errors: Counter => "flush_errors_total", "flush_errors";
        /// Alert messages written to the outbox.
        pub alerts_raised: Counter => "alerts_raised_total", "alerts_raised";
        /// Observations in alarm ignored because their asset (or an ancestor) was under
        /// maintenance.
        pub alarms_suppressed: Counter => "alarms_suppressed_total", "alarms_suppressed";
        /// Alert messages held in memory because the disk is nearly full (written later).
        pub alerts_held: Gauge => "alerts_held", "alerts_held";
        /// Alert messages acknowledged by the broker.
        pub alerts_published: Counter => "alerts_published_total", "alerts_published";
        /// Alerts waiting for the broker.
        pub outbox_depth: Gauge => "outbox_depth", "outbox_depth";
        /// HTTP requests refused for wrong credentials (unknown user or wrong password).
        pub http_auth_failures: Counter => "http_auth_failures_total", "http_auth_failures";
    }
}

figures! {
    /// Per Modbus device (label `device`).
    pub struct DeviceFigures {
        /// Poll cycles started.
        pub polls: Counter => "modbus_polls_total", "polls";
        /// Requests sent.
        pub requests: Counter => "modbus_requests_total", "requests";
        /// Requests without an answer in time.
        pub timeouts: Counter => "modbus_timeouts_total", "timeouts";
        /// Requests that failed on the connection.
        pub transport_errors: Counter => "modbus_transport_errors_total", "transport_errors";
        /// Exception responses of the device.
        pub exceptions: Counter => "modbus_exceptions_total", "exceptions";
        /// Connections opened.
        pub connects: Counter => "modbus_connects_total", "connects";
        /// Connections that could not be opened.
        pub connect_failures: Counter => "modbus_connect_failures_total", "connect_failures";
        /// Poll cycles that overran their interval.
        pub missed_deadlines: Counter => "modbus_missed_deadlines_total", "missed_deadlines";
        /// Merged requests split after exception 02 (illegal data address).
        pub splits: Counter => "modbus_splits_total", "splits";
    }
}

figures! {
    /// Per MQTT subscription (label `subscription`; `unknown_topic` per input).
    pub struct InputFigures {
        /// Messages received.
        pub messages: Counter => "mqtt_messages_total", "messages";
        /// Samples handed to the store (after readings of one sensor and millisecond
        /// collapsed into one).
        pub samples: Counter => "mqtt_samples_total", "samples";
        /// Payloads or readings that did not decode.
        pub malformed: Counter => "mqtt_malformed_total", "malformed";
        /// Readings that were not finite numbers.
        pub non_finite: Counter => "mqtt_non_finite_total", "non_finite";
        /// Readings stamped too far in the future.
        pub future: Counter => "mqtt_future_total", "future";
        /// Readings stamped before 2000-01-01.
        pub past: Counter => "mqtt_past_total", "past";
        /// Readings refused for their sensor name: too long, or a new sensor past the
        /// input's `max_sensors`.
        pub sensor_limit: Counter => "mqtt_sensor_limit_total", "sensor_limit";
        /// Messages larger than `max_payload`: acknowledged and skipped.
        pub oversized: Counter => "mqtt_oversized_total", "oversized";
        /// Messages on a topic no subscription maps.
        pub unknown_topic: Counter => "mqtt_unknown_topic_total", "unknown_topic";
        /// Sparkplug B sequence numbers that skipped.
        pub seq_gaps: Counter => "mqtt_seq_gaps_total", "seq_gaps";
        /// Sparkplug B metrics named by an alias no birth certificate bound: not stored
        /// (the input asks the node to rebirth).
        pub unknown_alias: Counter => "mqtt_unknown_alias_total", "unknown_alias";
        /// Sparkplug B rebirth requests (NCMD `Node Control/Rebirth`) the input sent.
        pub rebirths: Counter => "mqtt_rebirth_requests_total", "rebirth_requests";
        /// Metrics or fields that carry no number (Sparkplug String, Text, Bytes, DataSet,
        /// Template, UUID, File, arrays; line protocol string fields): not stored.
        pub non_numeric: Counter => "mqtt_non_numeric_total", "non_numeric";
        /// Readings of one message that fell on the same sensor and millisecond as a later
        /// one of the same message: the store keeps one value per millisecond, the last.
        pub collapsed: Counter => "mqtt_collapsed_total", "collapsed";
    }
}

figures! {
    /// Per telemetry destination (label `destination`).
    pub struct ForwardFigures {
        /// Samples (or rollup buckets) handed to the destination.
        pub sent: Counter => "forward_sent_total", "sent";
        /// Samples the destination confirmed (PUBACK, HTTP 204); the cursor moved past them.
        pub confirmed: Counter => "forward_confirmed_total", "confirmed";
        /// Sends or connections that failed; the cursor stayed where it was.
        pub failed: Counter => "forward_failed_total", "failed";
        /// Samples held back by the deadband (covered by the cursor, never sent).
        pub suppressed: Counter => "forward_suppressed_total", "suppressed";
        /// Seconds between now and the oldest stored sample not yet confirmed.
        pub lag_seconds: Gauge => "forward_lag_seconds", "lag_seconds";
        /// Stored samples not yet confirmed (estimated from chunk headers).
        pub backlog_samples: Gauge => "forward_backlog_samples", "backlog_samples";
        /// 1 while the destination accepts data, 0 while it fails.
        pub up: Gauge => "forward_up", "up";
    }
}

/// A Modbus device's figures and how late its polls start.
#[derive(Debug, Default)]
pub struct DeviceStats {
    pub counts: DeviceFigures,
    /// How late each poll started against its schedule.
    pub lateness: Histogram,
}

impl std::ops::Deref for DeviceStats {
    type Target = DeviceFigures;
    fn deref(&self) -> &DeviceFigures {
        &self.counts
    }
}

/// The figures of one MQTT subscription.
pub type InputStats = InputFigures;

/// Every figure of the agent: its own, and one set per device and per subscription.
#[derive(Debug, Default)]
pub struct Stats {
    pub agent: AgentFigures,
    devices: Mutex<BTreeMap<String, Arc<DeviceStats>>>,
    inputs: Mutex<BTreeMap<String, Arc<InputStats>>>,
    forwards: Mutex<BTreeMap<String, Arc<ForwardFigures>>>,
}

impl std::ops::Deref for Stats {
    type Target = AgentFigures;
    fn deref(&self) -> &AgentFigures {
        &self.agent
    }
}

/// Upper edges of the lateness histogram's exported buckets, in seconds.
const LATENESS_BUCKETS: [f64; 8] = [0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

impl Stats {
    pub fn device(&self, name: &str) -> Arc<DeviceStats> {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices.entry(name.to_string()).or_default().clone()
    }

    pub fn input(&self, name: &str) -> Arc<InputStats> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        inputs.entry(name.to_string()).or_default().clone()
    }

    pub fn forward(&self, name: &str) -> Arc<ForwardFigures> {
        let mut forwards = self.forwards.lock().unwrap_or_else(|p| p.into_inner());
        forwards.entry(name.to_string()).or_default().clone()
    }

    fn forwards(&self) -> Vec<(String, Arc<ForwardFigures>)> {
        let forwards = self.forwards.lock().unwrap_or_else(|p| p.into_inner());
        forwards.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Per telemetry destination, every declared figure.
    pub fn forwards_json(&self) -> Value {
        let mut out = Map::new();
        for (name, f) in self.forwards() {
            out.insert(name, Value::Object(json_fields(&*f, ForwardFigures::FIGURES)));
        }
        Value::Object(out)
    }

    fn devices(&self) -> Vec<(String, Arc<DeviceStats>)> {
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        devices.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn inputs(&self) -> Vec<(String, Arc<InputStats>)> {
        let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The storage pressure's name: `ok`, `over_budget` or `disk_full`.
    pub fn storage_pressure(&self) -> &'static str {
        self.agent.storage_pressure.name()
    }

    /// The agent's own figures as JSON fields (levels by name).
    pub fn agent_json(&self) -> Map<String, Value> {
        json_fields(&self.agent, AgentFigures::FIGURES)
    }

    /// Per device, every declared figure and the lateness percentiles.
    pub fn devices_json(&self) -> Value {
        let mut out = Map::new();
        for (name, d) in self.devices() {
            let mut m = json_fields(&d.counts, DeviceFigures::FIGURES);
            for (key, q) in [("lateness_p50_ms", 0.5), ("lateness_p99_ms", 0.99)] {
                let ms = d.lateness.quantile(q).map(|l| l.as_secs_f64() * 1000.0);
                m.insert(key.into(), ms.map_or(Value::Null, Value::from));
            }
            out.insert(name, Value::Object(m));
        }
        Value::Object(out)
    }

    /// Per subscription, every declared figure.
    pub fn inputs_json(&self) -> Value {
        let mut out = Map::new();
        for (name, i) in self.inputs() {
            out.insert(name, Value::Object(json_fields(&*i, InputFigures::FIGURES)));
        }
        Value::Object(out)
    }

    /// `/healthz` and the heartbeat: the agent's figures, its devices and its inputs.
    pub fn health(&self) -> Map<String, Value> {
        let mut m = self.agent_json();
        m.insert("devices".into(), self.devices_json());
        m.insert("mqtt".into(), self.inputs_json());
        m.insert("forward".into(), self.forwards_json());
        m
    }

    /// Prometheus text exposition of every declared figure.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        for d in AgentFigures::FIGURES {
            header(&mut s, d);
            let _ = writeln!(s, "forewarn_{} {}", d.prom, (d.read)(&self.agent));
        }
        let devices = self.devices();
        for d in DeviceFigures::FIGURES {
            header(&mut s, d);
            for (device, stats) in &devices {
                let _ = writeln!(
                    s,
                    "forewarn_{}{{device=\"{}\"}} {}",
                    d.prom,
                    label(device),
                    (d.read)(&stats.counts)
                );
            }
        }
        lateness_histogram(&mut s, &devices);
        let inputs = self.inputs();
        for d in InputFigures::FIGURES {
            header(&mut s, d);
            for (input, stats) in &inputs {
                let _ = writeln!(
                    s,
                    "forewarn_{}{{subscription=\"{}\"}} {}",
                    d.prom,
                    label(input),
                    (d.read)(stats)
                );
            }
        }
        let forwards = self.forwards();
        for d in ForwardFigures::FIGURES {
            header(&mut s, d);
            for (dest, stats) in &forwards {
                let _ = writeln!(
                    s,
                    "forewarn_{}{{destination=\"{}\"}} {}",
                    d.prom,
                    label(dest),
                    (d.read)(stats)
                );
            }
        }
        s
    }

    /// One line for the log: every declared figure, then each input's and device's.
    pub fn summary(&self) -> String {
        let mut s = pairs(&self.agent, AgentFigures::FIGURES, " ");
        for (name, i) in self.inputs() {
            let _ = write!(s, " {name}:{}", pairs(&*i, InputFigures::FIGURES, ","));
        }
        for (name, d) in self.devices() {
            let _ = write!(s, " {name}:{}", pairs(&d.counts, DeviceFigures::FIGURES, ","));
        }
        for (name, f) in self.forwards() {
            let _ = write!(s, " {name}:{}", pairs(&*f, ForwardFigures::FIGURES, ","));
        }
        s
    }
}

fn json_fields<T>(figures: &T, decls: &[Decl<T>]) -> Map<String, Value> {
    decls
        .iter()
        .map(|d| {
            let v = (d.read)(figures);
            let value = match d.kind {
                Kind::Level(names) => Value::from(names.get(v as usize).copied().unwrap_or("unknown")),
                Kind::Counter | Kind::Gauge => Value::from(v),
            };
            (d.json.to_string(), value)
        })
        .collect()
}

fn pairs<T>(figures: &T, decls: &[Decl<T>], sep: &str) -> String {
    decls
        .iter()
        .map(|d| match d.kind {
            Kind::Level(names) => format!("{}={}", d.json, names.get((d.read)(figures) as usize).unwrap_or(&"?")),
            Kind::Counter | Kind::Gauge => format!("{}={}", d.json, (d.read)(figures)),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn header<T>(s: &mut String, d: &Decl<T>) {
    let kind = match d.kind {
        Kind::Counter => "counter",
        Kind::Gauge | Kind::Level(_) => "gauge",
    };
    let help = d.help.split_whitespace().collect::<Vec<_>>().join(" ");
    let _ = writeln!(s, "# HELP forewarn_{} {help}", d.prom);
    let _ = writeln!(s, "# TYPE forewarn_{} {kind}", d.prom);
}

/// A label value as Prometheus' text format needs it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `forewarn_modbus_poll_lateness_seconds`, a histogram per device.
fn lateness_histogram(s: &mut String, devices: &[(String, Arc<DeviceStats>)]) {
    let name = "forewarn_modbus_poll_lateness_seconds";
    let _ = writeln!(s, "# HELP {name} How late each poll started against its schedule.");
    let _ = writeln!(s, "# TYPE {name} histogram");
    for (device, d) in devices {
        let device = label(device);
        for le in LATENESS_BUCKETS {
            let n = d.lateness.count_at_most(std::time::Duration::from_secs_f64(le));
            let _ = writeln!(s, "{name}_bucket{{device=\"{device}\",le=\"{le}\"}} {n}");
        }
        let total = d.lateness.count();
        let _ = writeln!(s, "{name}_bucket{{device=\"{device}\",le=\"+Inf\"}} {total}");
        let _ = writeln!(
            s,
            "{name}_sum{{device=\"{device}\"}} {}",
            d.lateness.sum().as_secs_f64()
        );
        let _ = writeln!(s, "{name}_count{{device=\"{device}\"}} {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_figure_is_in_every_export() {
        let stats = Stats::default();
        stats.samples_in.add(5);
        stats.storage_pressure.set(2);
        let d = stats.device("plc");
        d.splits.inc();
        d.lateness.record(std::time::Duration::from_millis(3));
        stats.input("in:a/+").seq_gaps.add(4);
        stats.forward("hist").confirmed.add(3);
        let prom = stats.prometheus();
        let health = Value::Object(stats.health());
        let summary = stats.summary();
        for decl in AgentFigures::FIGURES {
            assert!(
                prom.contains(&format!("# TYPE forewarn_{} ", decl.prom)),
                "{}",
                decl.prom
            );
            assert!(health.get(decl.json).is_some(), "{}", decl.json);
            assert!(summary.contains(&format!("{}=", decl.json)), "{}", decl.json);
        }
        for decl in DeviceFigures::FIGURES {
            assert!(
                prom.contains(&format!("forewarn_{}{{device=\"plc\"}}", decl.prom)),
                "{}",
                decl.prom
            );
            assert!(health["devices"]["plc"].get(decl.json).is_some(), "{}", decl.json);
        }
        for decl in InputFigures::FIGURES {
            assert!(prom.contains(&format!("forewarn_{}{{subscription=\"in:a/+\"}}", decl.prom)));
            assert!(health["mqtt"]["in:a/+"].get(decl.json).is_some(), "{}", decl.json);
        }
        for decl in ForwardFigures::FIGURES {
            assert!(prom.contains(&format!("forewarn_{}{{destination=\"hist\"}}", decl.prom)));
            assert!(health["forward"]["hist"].get(decl.json).is_some(), "{}", decl.json);
        }
        assert!(summary.contains("confirmed=3"), "{summary}");
        assert!(prom.contains("forewarn_storage_pressure 2\n"));
        assert!(prom.contains("# TYPE forewarn_storage_pressure gauge"));
        assert!(prom.contains("forewarn_modbus_splits_total{device=\"plc\"} 1"));
        assert!(prom.contains("forewarn_mqtt_seq_gaps_total{subscription=\"in:a/+\"} 4"));
        assert!(prom.contains("forewarn_modbus_poll_lateness_seconds_bucket{device=\"plc\",le=\"0.005\"} 1"));
        assert!(prom.contains("forewarn_modbus_poll_lateness_seconds_count{device=\"plc\"} 1"));
        assert_eq!(health["storage_pressure"], "disk_full");
        assert_eq!(health["samples_in"], 5);
        assert!(
            summary.contains("seq_gaps=4") && summary.contains("splits=1"),
            "{summary}"
        );
    }
}
