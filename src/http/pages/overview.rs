//! `/`: the agent at a glance — its figures, open alerts, Modbus devices with their health
//! and every sensor with its last value, quality and a sparkline of the last hour.

use std::collections::HashMap;

use serde_json::Value;

use super::html::{self, esc, num, table, time};
use super::{alarms, plot, series, ApiState, PageError};
use crate::base::sample::Sample;
use crate::base::time::now_ms;

/// Sensors the overview lists at most: each costs a store read of its last hour.
const MAX_SENSORS: usize = 300;
/// The sparklines' window.
const SPARK_MS: i64 = 3_600_000;

pub fn page(state: &ApiState) -> Result<String, PageError> {
    let now = now_ms();
    let mut sensors = state.store.sensors()?;
    sensors.sort_by(|a, b| a.1.cmp(&b.1));
    let listed = sensors.len().min(MAX_SENSORS);
    let mut last: HashMap<String, Sample> = HashMap::new();
    let mut rows = Vec::with_capacity(listed);
    for (id, name) in sensors.iter().take(MAX_SENSORS) {
        let h = series::read(&state.store, &[], *id, now - SPARK_MS, now)?;
        if let Some(s) = h.last {
            last.insert(name.clone(), s);
        }
        rows.push(vec![
            html::sensor_link(name, "1h"),
            h.last.map_or("–".into(), |s| num(s.value)),
            h.last
                .map_or("<span class=\"muted\">none in the last hour</span>".into(), |s| {
                    let class = if s.quality.is_good() { "ok" } else { "bad" };
                    format!("<span class=\"{class}\">{}</span>", esc(&s.quality.to_string()))
                }),
            h.last.map_or("–".into(), |s| time(s.ts_ms)),
            plot::or_note(plot::sparkline_svg(&h, now - SPARK_MS, now)),
        ]);
    }
    let mut body = agent_section(state);
    body.push_str(&alerts_section(state)?);
    body.push_str(&devices_section(state, &last));
    body.push_str(&format!("<h2>Sensors ({})</h2>", sensors.len()));
    if sensors.len() > listed {
        body.push_str(&format!("<p class=\"muted\">the first {listed} by name are listed</p>"));
    }
    body.push_str(&table(&["sensor", "last value", "quality", "at", "last hour"], &rows));
    Ok(html::page("Overview", &state.agent, &body))
}

fn agent_section(state: &ApiState) -> String {
    let a = &state.stats.agent;
    let pressure = state.stats.storage_pressure();
    let class = if pressure == "ok" { "ok" } else { "bad" };
    let rows = vec![
        vec!["agent".into(), esc(&state.agent)],
        vec![
            "storage".into(),
            format!("<span class=\"{class}\">{}</span>", esc(pressure)),
        ],
        vec![
            "samples in / stored / refused".into(),
            format!(
                "{} / {} / {}",
                a.samples_in.get(),
                a.samples_stored.get(),
                a.samples_rejected.get()
            ),
        ],
        vec![
            "alerts raised / published / waiting".into(),
            format!(
                "{} / {} / {}",
                a.alerts_raised.get(),
                a.alerts_published.get(),
                a.outbox_depth.get()
            ),
        ],
    ];
    format!("<h2>Agent</h2>{}", table(&["", ""], &rows))
}

fn alerts_section(state: &ApiState) -> Result<String, PageError> {
    let open: Vec<_> = alarms(state)?.into_iter().filter(|a| a.is_open()).collect();
    if open.is_empty() {
        return Ok("<h2>Open alerts</h2><p class=\"ok\" id=\"no-alerts\">none</p>".into());
    }
    let rows: Vec<Vec<String>> = open
        .iter()
        .map(|a| {
            let obs = a.last.as_ref();
            vec![
                html::alert_link(&a.asset, &a.rule),
                esc(&format!("{:?}", a.phase).to_lowercase()),
                obs.map_or("–".into(), |o| html::sensor_link(&o.sensor, "1h")),
                obs.map_or("–".into(), |o| num(o.value)),
                obs.map_or("–".into(), |o| num(o.threshold)),
                time(a.first_seen_ms),
                time(a.last_seen_ms),
            ]
        })
        .collect();
    Ok(format!(
        "<h2>Open alerts ({})</h2><div id=\"open-alerts\">{}</div>",
        open.len(),
        table(
            &["alert", "phase", "sensor", "value", "limit", "first seen", "last seen"],
            &rows
        )
    ))
}

/// Each configured device's figures; the last poll is its newest stored sample.
fn devices_section(state: &ApiState, last: &HashMap<String, Sample>) -> String {
    if state.site.devices.is_empty() {
        return String::new();
    }
    let figures = state.stats.devices_json();
    let rows: Vec<Vec<String>> = state
        .site
        .devices
        .iter()
        .map(|d| {
            let f = figures.get(&d.name).cloned().unwrap_or(Value::Null);
            let n = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
            let newest = d.sensors.iter().filter_map(|s| last.get(s)).max_by_key(|s| s.ts_ms);
            let errors = n("timeouts") + n("transport_errors") + n("exceptions");
            let class = if errors == 0 { "ok" } else { "bad" };
            vec![
                esc(&d.name),
                newest.map_or("<span class=\"muted\">none in the last hour</span>".into(), |s| {
                    time(s.ts_ms)
                }),
                n("polls").to_string(),
                format!(
                    "<span class=\"{class}\">{errors}</span> ({} timeouts, {} transport, {} exceptions)",
                    n("timeouts"),
                    n("transport_errors"),
                    n("exceptions")
                ),
                n("connects").saturating_sub(1).to_string(),
                n("connect_failures").to_string(),
                n("missed_deadlines").to_string(),
                f.get("lateness_p99_ms")
                    .and_then(Value::as_f64)
                    .map_or("–".into(), |v| format!("{v:.1} ms")),
            ]
        })
        .collect();
    format!(
        "<h2>Devices</h2>{}",
        table(
            &[
                "device",
                "last poll",
                "polls",
                "errors",
                "reconnects",
                "failed connects",
                "missed deadlines",
                "lateness p99"
            ],
            &rows
        )
    )
}
