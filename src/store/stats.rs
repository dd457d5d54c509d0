//! `forewarn store-stats`: what the store holds and how long the budget lasts at the
//! current rates.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::{retention::dir_size, Store, StoreError};
use crate::base::time::format_rfc3339_ms;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SensorStats {
    pub samples: u64,
    pub oldest_ms: i64,
    pub newest_ms: i64,
}

/// One telemetry destination's cursors, summed up.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ForwardStats {
    pub destination: String,
    pub sensors: usize,
    /// Every sensor is confirmed at least through this time (`None`: nothing yet).
    pub confirmed_through_ms: Option<i64>,
    /// Sensors with a backlog still being backfilled.
    pub backfilling: usize,
    /// Position in the late journal.
    pub late: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoreStats {
    pub disk_bytes: u64,
    pub samples: u64,
    pub chunks: u64,
    pub sensors: BTreeMap<String, SensorStats>,
    pub forward: Vec<ForwardStats>,
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
        for f in &self.forward {
            let through = f
                .confirmed_through_ms
                .map_or_else(|| "nothing yet".to_string(), format_rfc3339_ms);
            let _ = writeln!(
                s,
                "forward {}: {} sensors, all confirmed through {through}, {} backfilling, late journal at {}",
                f.destination, f.sensors, f.backfilling, f.late
            );
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
    // (first, last, count) of every chunk and of the unsealed points, per sensor.
    let mut spans: BTreeMap<u32, Vec<(i64, i64, u64)>> = BTreeMap::new();
    let mut chunks = 0;
    for item in store.chunk_headers() {
        match item {
            Ok((r, h)) => {
                chunks += 1;
                spans
                    .entry(r.sensor)
                    .or_default()
                    .push((h.first_ms, h.last_ms, u64::from(h.count)));
            }
            Err(e) => tracing::warn!(error = %e, "unreadable chunk header"),
        }
    }
    for (id, (n, first, last)) in store.unsealed_summary() {
        spans.entry(id).or_default().push((first, last, n as u64));
    }
    let mut by_id: BTreeMap<u32, SensorStats> = BTreeMap::new();
    for (id, mut sp) in spans {
        sp.sort_unstable();
        let oldest_ms = sp.iter().map(|s| s.0).min().unwrap_or(0);
        let newest_ms = sp.iter().map(|s| s.1).max().unwrap_or(0);
        // Spans overlap only where history was imported over history already held (or
        // imported twice); a read merges those samples, one per timestamp, so count what
        // a read returns. Elsewhere the headers' counts are exact and far cheaper.
        let overlapping = sp.windows(2).any(|w| w[1].0 <= w[0].1);
        let samples = if overlapping {
            store.read(id, oldest_ms, newest_ms)?.len() as u64
        } else {
            sp.iter().map(|s| s.2).sum()
        };
        by_id.insert(
            id,
            SensorStats {
                samples,
                oldest_ms,
                newest_ms,
            },
        );
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
        forward: forward_stats(store)?,
    })
}

/// Each destination's cursors: how far all its sensors are confirmed, and the backlog.
fn forward_stats(store: &Store) -> Result<Vec<ForwardStats>, StoreError> {
    let cursors = store.cursors()?;
    let mut out = Vec::new();
    for (destination, list) in cursors.all()? {
        let through = list.iter().map(|(_, c)| c.through()).min().filter(|t| *t > i64::MIN);
        out.push(ForwardStats {
            late: cursors.late(&destination)?,
            sensors: list.len(),
            confirmed_through_ms: through,
            backfilling: list.iter().filter(|(_, c)| c.has_gap()).count(),
            destination,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::sample::Sample;
    use crate::store::codec::Point;
    use crate::store::{SealPolicy, StoreOptions};

    #[test]
    fn history_imported_over_history_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            cache_bytes: 1 << 20,
            seal: SealPolicy {
                max_unsealed: 50,
                ..SealPolicy::default()
            },
        };
        let store = Store::open(dir.path(), opts).unwrap();
        let (a, b) = (store.sensor_id("a").unwrap(), store.sensor_id("b").unwrap());
        for i in 0..60 {
            store.append(&[Sample::good(a, i * 1000, 1.0), Sample::good(b, i * 1000, 1.0)]);
        }
        store.flush().unwrap();
        // `a` gets 30..90 s imported over its 0..60 s; `b` gets 60..90 s after its own.
        let points = |from: i64| -> Vec<Point> {
            (from..90)
                .map(|i| Point {
                    ts_ms: i * 1000,
                    value: 2.0,
                    quality: 0,
                })
                .collect()
        };
        store.write_sealed(a, &mut points(30)).unwrap();
        store.write_sealed(b, &mut points(60)).unwrap();
        let st = collect(&store, dir.path()).unwrap();
        assert_eq!(st.sensors["a"].samples, 90, "{st:?}");
        assert_eq!(st.sensors["b"].samples, 90, "{st:?}");
        assert_eq!((st.sensors["a"].oldest_ms, st.sensors["a"].newest_ms), (0, 89_000));
        assert_eq!(st.samples, 180);
    }
}

#[cfg(test)]
mod forward_tests {
    use super::*;
    use crate::store::cursor::SensorCursor;
    use crate::store::StoreOptions;

    #[test]
    fn each_destination_s_cursors_are_summed_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let cursors = store.cursors().unwrap();
        let gap = SensorCursor {
            low: 1_000,
            gap_to: 5_000,
            high: 9_000,
        };
        let done = SensorCursor {
            low: 9_000,
            gap_to: 9_000,
            high: 9_000,
        };
        cursors.save("historian", &[(1, gap), (2, done)]).unwrap();
        cursors.save_late("historian", 4).unwrap();
        let stats = collect(&store, dir.path()).unwrap();
        assert_eq!(
            stats.forward,
            vec![ForwardStats {
                destination: "historian".into(),
                sensors: 2,
                confirmed_through_ms: Some(1_000),
                backfilling: 1,
                late: 4,
            }]
        );
        let text = stats.render(1 << 30);
        assert!(
            text.contains("forward historian: 2 sensors, all confirmed through 1970-01-01T00:00:01.000Z, 1 backfilling, late journal at 4"),
            "{text}"
        );
    }
}
