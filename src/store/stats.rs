//! `forewarn store-stats`: what the store holds and how long the budget lasts at the
//! current rates.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::{retention::dir_size, Store, StoreError};
use crate::time::format_rfc3339_ms;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SensorStats {
    pub samples: u64,
    pub oldest_ms: i64,
    pub newest_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoreStats {
    pub disk_bytes: u64,
    pub samples: u64,
    pub chunks: u64,
    pub sensors: BTreeMap<String, SensorStats>,
}

impl StoreStats {
    pub fn bytes_per_sample(&self) -> f64 {
        self.disk_bytes as f64 / self.samples.max(1) as f64
    }

    /// Samples per day over all sensors, from each sensor's count over its time span.
    pub fn samples_per_day(&self) -> f64 {
        self.sensors
            .values()
            .filter(|s| s.newest_ms > s.oldest_ms && s.samples > 1)
            .map(|s| (s.samples - 1) as f64 * 86_400_000.0 / (s.newest_ms - s.oldest_ms) as f64)
            .sum()
    }

    /// Days of history `max_disk` holds at the current rates and bytes per sample.
    pub fn coverage_days(&self, max_disk: u64) -> Option<f64> {
        let per_day = self.samples_per_day() * self.bytes_per_sample();
        (per_day > 0.0).then(|| max_disk as f64 / per_day)
    }

    pub fn render(&self, max_disk: u64) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "disk {:.1} MiB, {} samples in {} chunks, {:.2} bytes/sample",
            self.disk_bytes as f64 / 1048576.0,
            self.samples,
            self.chunks,
            self.bytes_per_sample()
        );
        match self.coverage_days(max_disk) {
            Some(days) => {
                let _ = writeln!(
                    s,
                    "at {:.0} samples/day, max_disk {} holds about {days:.1} days",
                    self.samples_per_day(),
                    crate::config::ByteSize(max_disk)
                );
            }
            None => {
                let _ = writeln!(s, "no rate yet: coverage unknown");
            }
        }
        for (name, st) in &self.sensors {
            let _ = writeln!(
                s,
                "  {name}: {} samples, {} .. {}",
                st.samples,
                format_rfc3339_ms(st.oldest_ms),
                format_rfc3339_ms(st.newest_ms)
            );
        }
        s
    }
}

pub fn collect(store: &Store, data_dir: &Path) -> Result<StoreStats, StoreError> {
    let names: BTreeMap<_, _> = store.sensors()?.into_iter().collect();
    let mut by_id: BTreeMap<u32, SensorStats> = BTreeMap::new();
    let mut chunks = 0;
    let mut add = |id: u32, n: u64, first: i64, last: i64| {
        let e = by_id.entry(id).or_insert(SensorStats {
            samples: 0,
            oldest_ms: i64::MAX,
            newest_ms: i64::MIN,
        });
        e.samples += n;
        e.oldest_ms = e.oldest_ms.min(first);
        e.newest_ms = e.newest_ms.max(last);
    };
    for item in store.chunk_headers() {
        match item {
            Ok((r, h)) => {
                chunks += 1;
                add(r.sensor, u64::from(h.count), h.first_ms, h.last_ms);
            }
            Err(e) => tracing::warn!(error = %e, "unreadable chunk header"),
        }
    }
    for (id, (n, first, last)) in store.unsealed_summary() {
        add(id, n as u64, first, last);
    }
    let samples = by_id.values().map(|s| s.samples).sum();
    let sensors = by_id
        .into_iter()
        .map(|(id, st)| (names.get(&id).cloned().unwrap_or_else(|| format!("sensor-{id}")), st))
        .collect();
    Ok(StoreStats {
        disk_bytes: dir_size(data_dir),
        samples,
        chunks,
        sensors,
    })
}
