//! Silence: the alarm of an asset whose sensors stop delivering. Rules and models only
//! judge good samples (a device that stops answering is not a cooled-down bearing), so a
//! dead sensor or a device off the network would quietly switch off a machine's
//! protection. An asset with `no_data` gets one more alarm, `no-data`: it is in alarm
//! while at least one of its sensors has delivered no good sample for that long, and back
//! to normal once every sensor has again.
//!
//! Time is the agent's clock at arrival, not the samples' own timestamps: a source that
//! backfills old readings is delivering, one whose clock runs ahead is not hiding a
//! silence. A sensor never heard from counts from the agent's start. The watch is checked
//! on a timer (`check`), since silence produces no sample to react to. Memory: one
//! timestamp per watched sensor.

use std::collections::HashMap;

use super::{AlarmDef, AlarmId, Level, Observation, Policy, SensorValue};
use crate::base::sample::{Sample, SensorId};
use crate::config::{Asset, Severity};

pub use crate::base::names::NO_DATA_RULE;

#[derive(Debug)]
struct Watch {
    alarm: AlarmId,
    after_ms: i64,
    sensors: Vec<String>,
    /// Arrival time of each sensor's last good sample (ms since the epoch).
    last_good: Vec<i64>,
}

/// Every asset's `no_data` watch.
#[derive(Debug, Default)]
pub struct SilenceWatch {
    watches: Vec<Watch>,
    /// (watch, position in its sensors) per sensor id.
    by_sensor: HashMap<SensorId, Vec<(usize, usize)>>,
}

impl SilenceWatch {
    /// Registers one `no-data` alarm per asset with `no_data`; every sensor counts as
    /// heard from at `now_ms`.
    pub fn new(
        assets: &[Asset],
        ids: &dyn Fn(&str) -> Option<SensorId>,
        register: &mut dyn FnMut(AlarmDef) -> AlarmId,
        now_ms: i64,
    ) -> Self {
        let mut watch = SilenceWatch::default();
        for asset in assets {
            let Some(after) = asset.no_data else { continue };
            let alarm = register(AlarmDef {
                asset: asset.id.clone(),
                rule: NO_DATA_RULE.into(),
                severity: Severity::Warning,
                policy: Policy::default(),
            });
            let w = watch.watches.len();
            for (j, name) in asset.sensors.iter().enumerate() {
                if let Some(id) = ids(name) {
                    watch.by_sensor.entry(id).or_default().push((w, j));
                }
            }
            watch.watches.push(Watch {
                alarm,
                after_ms: after.as_duration().as_millis() as i64,
                sensors: asset.sensors.clone(),
                last_good: vec![now_ms; asset.sensors.len()],
            });
        }
        watch
    }

    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Notes a sample that arrived at `now_ms`; only good ones count as delivered.
    pub fn observe(&mut self, s: &Sample, now_ms: i64) {
        if !s.quality.is_good() || !s.value.is_finite() {
            return;
        }
        for &(w, j) in self.by_sensor.get(&s.sensor).into_iter().flatten() {
            let last = &mut self.watches[w].last_good[j];
            *last = (*last).max(now_ms);
        }
    }

    /// One observation per watched asset at `now_ms`: in alarm while a sensor is silent.
    pub fn check(&self, now_ms: i64, out: &mut Vec<(AlarmId, Observation)>) {
        for w in &self.watches {
            let secs = |j: usize| ((now_ms - w.last_good[j]).max(0) / 100) as f64 / 10.0;
            let mut silent: Vec<usize> = (0..w.sensors.len())
                .filter(|&j| now_ms - w.last_good[j] >= w.after_ms)
                .collect();
            silent.sort_by_key(|&j| w.last_good[j]);
            let limit = w.after_ms as f64 / 1000.0;
            let share = 1.0 / silent.len().max(1) as f64;
            let main = silent.first().copied().unwrap_or(0);
            out.push((
                w.alarm,
                Observation {
                    ts_ms: now_ms,
                    level: if silent.is_empty() { Level::Normal } else { Level::Alarm },
                    sensor: w.sensors.get(main).cloned().unwrap_or_default(),
                    value: (0..w.sensors.len()).map(secs).fold(0.0, f64::max),
                    threshold: limit,
                    clear_threshold: limit,
                    score: None,
                    sensors: silent
                        .iter()
                        .map(|&j| SensorValue {
                            name: w.sensors[j].clone(),
                            value: secs(j),
                            contribution: share,
                        })
                        .collect(),
                    model_version: None,
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::sample::Quality;

    fn watch() -> (SilenceWatch, Vec<AlarmDef>) {
        let text = r#"
[agent]
id = "gw"
data_dir = "/tmp/x"
[upstream]
broker = "mqtt://127.0.0.1:1883"
[[mqtt]]
broker = "mqtt://127.0.0.1:1883"
  [[mqtt.subscribe]]
  topic = "t/a"
  sensor = "a"
  [[mqtt.subscribe]]
  topic = "t/b"
  sensor = "b"
[[asset]]
id = "pump"
sensors = ["a", "b"]
no_data = "10s"
[[asset]]
id = "other"
sensors = ["a"]
"#;
        let config = crate::config::Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let mut defs = Vec::new();
        let ids = |n: &str| match n {
            "a" => Some(1),
            "b" => Some(2),
            _ => None,
        };
        let w = SilenceWatch::new(
            &config.asset,
            &ids,
            &mut |d| {
                defs.push(d);
                defs.len() - 1
            },
            0,
        );
        (w, defs)
    }

    fn check(w: &SilenceWatch, now: i64) -> Observation {
        let mut out = Vec::new();
        w.check(now, &mut out);
        assert_eq!(out.len(), 1, "one watched asset");
        out.remove(0).1
    }

    #[test]
    fn a_silent_sensor_is_an_alarm_until_it_delivers_again() {
        let (mut w, defs) = watch();
        assert_eq!((defs.len(), defs[0].rule.as_str()), (1, NO_DATA_RULE));
        assert_eq!(check(&w, 9_999).level, Level::Normal, "counted from the start");
        w.observe(&Sample::good(1, 5_000, 1.0), 5_000);
        let o = check(&w, 12_000);
        assert_eq!(o.level, Level::Alarm);
        assert_eq!((o.sensor.as_str(), o.value, o.threshold), ("b", 12.0, 10.0));
        assert_eq!(o.sensors.len(), 1, "{o:?}");
        // A bad-quality sample is not a delivery.
        w.observe(&Sample::bad(2, 12_500, Quality::Timeout), 12_500);
        assert_eq!(check(&w, 13_000).level, Level::Alarm);
        w.observe(&Sample::good(2, 13_500, 2.0), 13_500);
        assert_eq!(check(&w, 14_000).level, Level::Normal);
        // Now `a` has been silent since 5 s.
        let o = check(&w, 15_000);
        assert_eq!((o.level, o.sensor.as_str()), (Level::Alarm, "a"));
    }

    #[test]
    fn arrival_time_counts_not_the_samples_timestamp() {
        let (mut w, _) = watch();
        // Backfilled readings from long ago arrive now: the sensors are delivering.
        w.observe(&Sample::good(1, -1_000_000, 1.0), 20_000);
        w.observe(&Sample::good(2, -1_000_000, 1.0), 20_000);
        assert_eq!(check(&w, 25_000).level, Level::Normal);
    }
}
