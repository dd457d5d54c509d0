//! Threshold rules with hysteresis. For every good sample of its sensor a rule reports
//! where the value stands: past the limit (`Alarm`), back past the clear level
//! (`Normal`), or in between (`Hold`, which changes nothing). The alert lifecycle turns
//! that into one `raised` and one `cleared` message per incident, however long the
//! condition lasts or however the value hovers at the limit.
//! Bad-quality samples are not observations at all: a device that stops answering is not
//! a cooled-down bearing.

use std::collections::HashMap;

use super::{AlarmDef, AlarmId, Level, Observation, Policy};
use crate::base::sample::{Sample, SensorId};
use crate::config::{Asset, Rule};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    /// Alarm when value > raise; normal when value < clear.
    High { raise: f64, clear: f64 },
    /// Alarm when value < raise; normal when value > clear.
    Low { raise: f64, clear: f64 },
}

#[derive(Debug)]
struct RuleState {
    alarm: AlarmId,
    sensor: String,
    limit: Limit,
}

/// All configured rules, indexed by the sensor they watch.
#[derive(Debug, Default)]
pub struct RuleEngine {
    rules: Vec<RuleState>,
    by_sensor: HashMap<SensorId, Vec<usize>>,
}

/// The lifecycle timing a rule asks for.
pub fn policy(rule: &Rule) -> Policy {
    let ms = |d: crate::config::Dur| d.as_duration().as_millis() as i64;
    Policy {
        min_duration_ms: ms(rule.min_duration),
        clear_after_ms: ms(rule.clear_after),
        renotify_ms: rule.renotify.map(ms),
    }
}

impl RuleEngine {
    /// Builds the engine from the validated assets; `ids` maps sensor names to ids and
    /// `register` enrols each rule's alarm with the lifecycle.
    pub fn new(
        assets: &[Asset],
        ids: &dyn Fn(&str) -> Option<SensorId>,
        register: &mut dyn FnMut(AlarmDef) -> AlarmId,
    ) -> Self {
        let mut engine = RuleEngine::default();
        for asset in assets {
            for rule in &asset.rule {
                let limit = match (rule.above, rule.below) {
                    (Some(raise), _) => Limit::High {
                        raise,
                        clear: rule.clear_below.unwrap_or(raise),
                    },
                    (None, Some(raise)) => Limit::Low {
                        raise,
                        clear: rule.clear_above.unwrap_or(raise),
                    },
                    // Validation rejects a rule with neither limit.
                    (None, None) => continue,
                };
                let Some(id) = ids(&rule.sensor) else { continue };
                let alarm = register(AlarmDef {
                    asset: asset.id.clone(),
                    rule: rule.name.clone(),
                    severity: rule.severity,
                    policy: policy(rule),
                });
                engine.by_sensor.entry(id).or_default().push(engine.rules.len());
                engine.rules.push(RuleState {
                    alarm,
                    sensor: rule.sensor.clone(),
                    limit,
                });
            }
        }
        engine
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Feeds one sample; pushes one observation per rule on its sensor to `out`.
    pub fn observe(&self, s: &Sample, out: &mut Vec<(AlarmId, Observation)>) {
        if !s.quality.is_good() || !s.value.is_finite() {
            return;
        }
        let Some(indices) = self.by_sensor.get(&s.sensor) else {
            return;
        };
        for &i in indices {
            let st = &self.rules[i];
            let (alarm, normal, raise, clear) = match st.limit {
                Limit::High { raise, clear } => (s.value > raise, s.value < clear, raise, clear),
                Limit::Low { raise, clear } => (s.value < raise, s.value > clear, raise, clear),
            };
            let level = if alarm {
                Level::Alarm
            } else if normal {
                Level::Normal
            } else {
                Level::Hold
            };
            out.push((
                st.alarm,
                Observation {
                    ts_ms: s.ts_ms,
                    level,
                    sensor: st.sensor.clone(),
                    value: s.value,
                    threshold: raise,
                    clear_threshold: clear,
                    score: None,
                    sensors: Vec::new(),
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

    fn engine(rule_toml: &str) -> (RuleEngine, Vec<AlarmDef>) {
        let text = format!(
            r#"
[agent]
id = "t"
[upstream]
broker = "mqtt://127.0.0.1:1"
[[modbus]]
device = "d"
address = "127.0.0.1:502"
  [[modbus.register]]
  sensor = "temp"
  kind = "holding"
  address = 0
  type = "u16"
[[asset]]
id = "a"
sensors = ["temp"]
  [[asset.rule]]
  name = "r"
  sensor = "temp"
  {rule_toml}
"#
        );
        let config = crate::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let mut defs = Vec::new();
        let e = RuleEngine::new(&config.asset, &|n| (n == "temp").then_some(7), &mut |d| {
            defs.push(d);
            defs.len() - 1
        });
        (e, defs)
    }

    fn levels(e: &RuleEngine, values: &[f64]) -> Vec<Level> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            e.observe(&Sample::good(7, i as i64, *v), &mut out);
        }
        out.iter().map(|(_, o)| o.level).collect()
    }

    #[test]
    fn high_limit_with_hysteresis_band() {
        let (e, defs) = engine("above = 80.0\nclear_below = 75.0\nmin_duration = \"2s\"\nrenotify = \"1h\"");
        assert_eq!(
            levels(&e, &[70.0, 81.0, 79.0, 75.0, 74.9]),
            vec![Level::Normal, Level::Alarm, Level::Hold, Level::Hold, Level::Normal]
        );
        assert_eq!(
            defs[0].policy,
            Policy {
                min_duration_ms: 2000,
                clear_after_ms: 0,
                renotify_ms: Some(3_600_000)
            }
        );
    }

    #[test]
    fn low_limit_carries_both_thresholds() {
        let (e, _) = engine("below = 10.0\nclear_above = 12.0");
        let mut out = Vec::new();
        e.observe(&Sample::good(7, 5, 9.0), &mut out);
        let (_, o) = &out[0];
        assert_eq!(
            (o.level, o.threshold, o.clear_threshold, o.ts_ms),
            (Level::Alarm, 10.0, 12.0, 5)
        );
        assert_eq!(levels(&e, &[11.0, 13.0]), vec![Level::Hold, Level::Normal]);
    }

    #[test]
    fn bad_quality_and_other_sensors_are_not_observations() {
        let (e, _) = engine("above = 80.0");
        let mut out = Vec::new();
        e.observe(&Sample::bad(7, 1, Quality::Timeout), &mut out);
        e.observe(
            &Sample {
                sensor: 7,
                ts_ms: 2,
                value: 0.0,
                quality: Quality::Exception(4),
            },
            &mut out,
        );
        e.observe(&Sample::good(9, 3, 0.0), &mut out);
        e.observe(&Sample::good(7, 4, f64::NAN), &mut out);
        assert!(out.is_empty());
    }
}
