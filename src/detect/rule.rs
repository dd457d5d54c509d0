//! Threshold rules with hysteresis: one `raised` event when the value crosses the limit,
//! one `cleared` event when it comes back past the clear level; nothing in between,
//! however long the condition lasts or however the value hovers at the limit.
//! Bad-quality samples neither raise nor clear: a device that stops answering is not a
//! cooled-down bearing.

use std::collections::HashMap;

use super::{AlertEvent, AlertState};
use crate::config::{Config, Rule};
use crate::sample::{Sample, SensorId};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    /// Raise when value > raise; clear when value < clear.
    High { raise: f64, clear: f64 },
    /// Raise when value < raise; clear when value > clear.
    Low { raise: f64, clear: f64 },
}

#[derive(Debug)]
struct RuleState {
    asset: String,
    rule: Rule,
    limit: Limit,
    /// `Some(first_seen_ms)` while the alert is raised.
    firing: Option<i64>,
}

/// All configured rules, indexed by the sensor they watch.
#[derive(Debug, Default)]
pub struct RuleEngine {
    rules: Vec<RuleState>,
    by_sensor: HashMap<SensorId, Vec<usize>>,
}

impl RuleEngine {
    /// Builds the engine from a validated config; `ids` maps sensor names to ids.
    pub fn new(config: &Config, ids: &dyn Fn(&str) -> Option<SensorId>) -> Self {
        let mut engine = RuleEngine::default();
        for asset in &config.asset {
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
                engine.by_sensor.entry(id).or_default().push(engine.rules.len());
                engine.rules.push(RuleState {
                    asset: asset.id.clone(),
                    rule: rule.clone(),
                    limit,
                    firing: None,
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

    /// Feeds one sample; pushes any state change to `out`.
    pub fn observe(&mut self, s: &Sample, out: &mut Vec<AlertEvent>) {
        if !s.quality.is_good() || !s.value.is_finite() {
            return;
        }
        let Some(indices) = self.by_sensor.get(&s.sensor) else {
            return;
        };
        for &i in indices {
            let st = &mut self.rules[i];
            let (crossed, cleared, raise, clear) = match st.limit {
                Limit::High { raise, clear } => (s.value > raise, s.value < clear, raise, clear),
                Limit::Low { raise, clear } => (s.value < raise, s.value > clear, raise, clear),
            };
            let (state, threshold, first_seen_ms) = match st.firing {
                None if crossed => {
                    st.firing = Some(s.ts_ms);
                    (AlertState::Raised, raise, s.ts_ms)
                }
                Some(first) if cleared => {
                    st.firing = None;
                    (AlertState::Cleared, clear, first)
                }
                _ => continue,
            };
            out.push(AlertEvent {
                asset: st.asset.clone(),
                rule: st.rule.name.clone(),
                state,
                severity: st.rule.severity,
                sensor: st.rule.sensor.clone(),
                value: s.value,
                threshold,
                ts_ms: s.ts_ms,
                first_seen_ms,
                score: None,
                contributions: Vec::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Quality;

    fn engine(rule_toml: &str) -> RuleEngine {
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
        let config = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        RuleEngine::new(&config, &|n| (n == "temp").then_some(7))
    }

    fn run(e: &mut RuleEngine, values: &[f64]) -> Vec<(AlertState, f64)> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            e.observe(&Sample::good(7, i as i64, *v), &mut out);
        }
        out.iter().map(|a| (a.state, a.value)).collect()
    }

    #[test]
    fn one_raise_one_clear_despite_hovering() {
        let mut e = engine("above = 80.0\nclear_below = 75.0");
        let got = run(&mut e, &[70.0, 81.0, 79.0, 82.0, 90.0, 76.0, 81.0, 74.0, 80.5, 70.0]);
        assert_eq!(
            got,
            vec![
                (AlertState::Raised, 81.0),
                (AlertState::Cleared, 74.0),
                (AlertState::Raised, 80.5),
                (AlertState::Cleared, 70.0)
            ]
        );
    }

    #[test]
    fn low_limit_and_first_seen() {
        let mut e = engine("below = 10.0\nclear_above = 12.0");
        let mut out = Vec::new();
        for (t, v) in [(0, 11.0), (1, 9.0), (2, 11.0), (3, 13.0)] {
            e.observe(&Sample::good(7, t, v), &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[1].state, out[1].first_seen_ms, out[1].ts_ms, out[1].threshold),
            (AlertState::Cleared, 1, 3, 12.0)
        );
    }

    #[test]
    fn bad_quality_neither_raises_nor_clears() {
        let mut e = engine("above = 80.0");
        let mut out = Vec::new();
        e.observe(&Sample::good(7, 0, 90.0), &mut out);
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
        assert_eq!(out.len(), 1);
        e.observe(&Sample::good(9, 3, 0.0), &mut out); // another sensor
        assert_eq!(out.len(), 1);
    }
}
