//! `/ui/storage`: the retention promise against the disk budget, and how far each forward
//! destination is behind; `/ui/models`: what each asset's model file holds and its latest
//! score. Both read files and trees the agent writes; neither changes anything.

use serde_json::Value;

use super::html::{self, esc, num, table, time};
use super::{alarms, ApiState, PageError};
use crate::base::time::now_ms;
use crate::detect::model::Model;

pub fn page(state: &ApiState) -> Result<String, PageError> {
    let stats = crate::store::stats::collect(&state.store, &state.data_dir)?;
    let retention_days = state.site.raw_retention_ms as f64 / 86_400_000.0;
    let used = if state.max_disk > 0 {
        stats.disk_bytes as f64 / state.max_disk as f64
    } else {
        0.0
    };
    let coverage = match stats.coverage_days(state.max_disk) {
        Some(days) if days < retention_days => format!(
            "<span class=\"bad\">about {days:.1} days: less than the retention promise; retention will evict young data only past 90 % of max_disk, else raise a storage alert</span>"
        ),
        Some(days) if days > 730.0 => format!("<span class=\"ok\">about {:.0} years</span>", days / 365.25),
        Some(days) => format!("<span class=\"ok\">about {days:.1} days</span>"),
        None => "<span class=\"muted\">no rate yet</span>".into(),
    };
    let oldest = stats.sensors.values().map(|s| s.oldest_ms).filter(|t| *t > 0).min();
    let rows = vec![
        vec![
            "raw retention (promise)".into(),
            esc(&html::duration(state.site.raw_retention_ms)),
        ],
        vec![
            "disk used / max_disk".into(),
            format!(
                "<span id=\"disk-used\">{} of {} ({:.1} %)</span> <span class=\"bar\" style=\"width:{:.0}px\"></span>",
                html::bytes(stats.disk_bytes),
                html::bytes(state.max_disk),
                used * 100.0,
                (used * 200.0).clamp(0.0, 200.0)
            ),
        ],
        vec![
            "samples / chunks".into(),
            format!("{} / {}", stats.samples, stats.chunks),
        ],
        vec![
            "rate".into(),
            format!(
                "{:.0} samples/day at {:.2} bytes/sample",
                stats.samples_per_day(),
                stats.bytes_per_sample()
            ),
        ],
        vec!["projected coverage of max_disk".into(), coverage],
        vec!["oldest sample".into(), oldest.map_or("–".into(), time)],
    ];
    let mut body = format!("<h2>Budget</h2>{}", table(&["", ""], &rows));
    body.push_str(&forward_section(state)?);
    Ok(html::page("Storage", &state.agent, &body))
}

/// Each destination's figures and its cursors: the oldest point every sensor is
/// confirmed through is how far behind it is.
fn forward_section(state: &ApiState) -> Result<String, PageError> {
    let figures = state.stats.forwards_json();
    let cursors = state.store.cursors()?.all()?;
    let mut names: Vec<String> = state.site.forwards.clone();
    for (dest, _) in &cursors {
        if !names.contains(dest) {
            names.push(dest.clone());
        }
    }
    if names.is_empty() {
        return Ok("<h2>Forwarding</h2><p class=\"muted\">no [[forward]] destinations</p>".into());
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let f = figures.get(name).cloned().unwrap_or(Value::Null);
            let n = |k: &str| f.get(k).and_then(Value::as_u64).map_or("–".into(), |v| v.to_string());
            let mine = cursors
                .iter()
                .find(|(d, _)| d == name)
                .map(|(_, c)| c.as_slice())
                .unwrap_or(&[]);
            let through = mine.iter().map(|(_, c)| c.through()).min();
            let up = match f.get("up").and_then(Value::as_u64) {
                Some(1) => "<span class=\"ok\">up</span>",
                Some(_) => "<span class=\"bad\">failing</span>",
                None => "<span class=\"muted\">not started</span>",
            };
            vec![
                esc(name),
                up.into(),
                mine.len().to_string(),
                through.map_or("–".into(), time),
                through.map_or("–".into(), |t| html::duration((now - t).max(0))),
                n("lag_seconds"),
                n("backlog_samples"),
                format!("{} / {} / {}", n("sent"), n("confirmed"), n("failed")),
            ]
        })
        .collect();
    Ok(format!(
        "<h2>Forwarding</h2>{}",
        table(
            &[
                "destination",
                "state",
                "sensors",
                "confirmed through",
                "cursor lag",
                "lag (s)",
                "backlog",
                "sent / confirmed / failed"
            ],
            &rows
        )
    ))
}

pub fn models_page(state: &ApiState) -> Result<String, PageError> {
    let stored = alarms(state)?;
    let mut body = String::new();
    let mut any = false;
    for a in &state.site.assets {
        let Some((alarm, path)) = &a.model else { continue };
        any = true;
        body.push_str(&format!(
            "<h2>{}</h2><p>file <code>{}</code></p>",
            esc(&a.id),
            esc(&path.display().to_string())
        ));
        let model = match Model::load(path) {
            Ok(m) => m,
            Err(e) => {
                body.push_str(&format!("<p class=\"bad\">not loaded: {}</p>", esc(&e.to_string())));
                continue;
            }
        };
        let score = stored
            .iter()
            .find(|s| s.asset == a.id && s.rule == *alarm)
            .and_then(|s| s.last.as_ref())
            .and_then(|o| o.score.map(|v| (v, o.threshold, o.ts_ms)));
        body.push_str(&model_table(&model, score));
    }
    if !any {
        body.push_str("<p class=\"muted\">no asset has an [asset.model]</p>");
    }
    Ok(html::page("Models", &state.agent, &body))
}

fn model_table(m: &Model, score: Option<(f64, f64, i64)>) -> String {
    let thresholds: Vec<String> = m.thresholds.iter().map(|t| num(*t)).collect();
    let score = match score {
        Some((v, t, at)) => format!("{} against {} at {}", num(v), num(t), time(at)),
        None => "<span class=\"muted\">no score recorded yet (the alarm has been normal since start)</span>".into(),
    };
    let rows = vec![
        vec!["file format".into(), m.format.to_string()],
        vec![
            "detector".into(),
            esc(&format!("{:?}", m.detector.kind()).to_lowercase()),
        ],
        vec![
            "sensors".into(),
            m.sensors
                .iter()
                .map(|s| html::sensor_link(s, "1d"))
                .collect::<Vec<_>>()
                .join(", "),
        ],
        vec!["period".into(), esc(&html::duration(m.period_ms))],
        vec!["thresholds".into(), esc(&thresholds.join(", "))],
        vec![
            "trained on".into(),
            format!(
                "{} to {}, {} vectors from {}",
                time(m.training.from_ms),
                time(m.training.to_ms),
                m.training.vectors,
                esc(&m.training.source)
            ),
        ],
        vec![
            "classifier".into(),
            if m.classifier.is_some() { "yes" } else { "no" }.into(),
        ],
        vec!["latest score".into(), score],
    ];
    table(&["", ""], &rows)
}
