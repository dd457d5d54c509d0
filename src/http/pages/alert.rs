//! `/ui/alert/{asset}/{rule}`: one alarm — the window around its incident for every sensor
//! involved (with the incident's start and the limit), the score against the threshold
//! for a model, each sensor's contribution, and its lifecycle: the stored record and the
//! messages still waiting in the outbox (published ones are upstream's to keep); the
//! asset's labels, which of them overlap the incident, and a form to label the incident
//! (its span pre-filled from first seen to last seen, or to now while it is open).

use super::html::{self, esc, num, table, time};
use super::labels::{self, AssetField, TableOptions};
use super::plot::{self, Plot};
use super::sensor::limit_lines;
use super::{alarms, series, ApiState, PageError};
use crate::alert::lifecycle::StoredAlarm;
use crate::alert::{AlertMessage, Outbox};
use crate::base::label::LabelKind;
use crate::base::time::now_ms;

/// Time shown before an incident's start and after its end.
const MARGIN_MS: i64 = 15 * 60_000;
/// Outbox entries scanned at most for this alarm's messages.
const MAX_OUTBOX_SCAN: usize = 10_000;

pub fn page(state: &ApiState, asset: &str, rule: &str) -> Result<String, PageError> {
    let record = alarms(state)?.into_iter().find(|a| a.asset == asset && a.rule == rule);
    let messages = waiting_messages(state, asset, rule)?;
    if record.is_none() && messages.is_empty() {
        return Err(PageError::NotFound(format!(
            "no alert state for {asset}/{rule}: the alarm is normal or not configured"
        )));
    }
    let mut body = String::new();
    if let Some(r) = &record {
        body.push_str(&lifecycle_table(r));
        body.push_str(&score_section(r));
        body.push_str(&window_plots(state, r)?);
    }
    body.push_str(&messages_table(&messages));
    body.push_str(&labels_section(state, asset, record.as_ref())?);
    Ok(html::page(&format!("Alert {asset} / {rule}"), &state.agent, &body))
}

fn lifecycle_table(r: &StoredAlarm) -> String {
    let phase = format!("{:?}", r.phase).to_lowercase();
    let class = if r.is_open() { "bad" } else { "ok" };
    let mut rows = vec![
        vec![
            "phase".into(),
            format!("<span class=\"{class}\" id=\"phase\">{}</span>", esc(&phase)),
        ],
        vec!["first seen".into(), time(r.first_seen_ms)],
        vec!["last seen in alarm".into(), time(r.last_seen_ms)],
        vec!["phase since".into(), time(r.since_ms)],
        vec!["last notified".into(), time(r.last_notify_ms)],
    ];
    if let Some(root) = &r.folded_into {
        rows.push(vec!["folded into".into(), esc(root)]);
    }
    for (child, cleared) in &r.children {
        let s = if *cleared { "cleared" } else { "firing" };
        rows.push(vec!["folded child".into(), format!("{} ({s})", esc(child))]);
    }
    format!("<h2>Lifecycle</h2>{}", table(&["", ""], &rows))
}

/// The score against its threshold (models), and every sensor's share.
fn score_section(r: &StoredAlarm) -> String {
    let Some(o) = &r.last else {
        return String::new();
    };
    let mut s = String::from("<h2>Latest observation</h2>");
    match o.score {
        Some(score) => {
            let share = if o.threshold > 0.0 { score / o.threshold } else { 0.0 };
            s.push_str(&format!(
                "<p id=\"score\">score {} against threshold {} ({:.0} % of it) at {}</p>",
                num(score),
                num(o.threshold),
                share * 100.0,
                time(o.ts_ms)
            ));
        }
        None => s.push_str(&format!(
            "<p>{} = {} against limit {} (clears at {}) at {}</p>",
            esc(&o.sensor),
            num(o.value),
            num(o.threshold),
            num(o.clear_threshold),
            time(o.ts_ms)
        )),
    }
    let rows: Vec<Vec<String>> = o
        .sensors
        .iter()
        .map(|v| {
            let pct = (v.contribution.clamp(0.0, 1.0) * 100.0).round();
            vec![
                html::sensor_link(&v.name, "1h"),
                num(v.value),
                format!("<span class=\"bar\" style=\"width:{pct}px\"></span> {pct} %"),
            ]
        })
        .collect();
    if !rows.is_empty() {
        s.push_str(&table(&["sensor", "value", "contribution"], &rows));
    }
    s
}

/// The sensors involved over the incident's window, most contributing first.
fn window_plots(state: &ApiState, r: &StoredAlarm) -> Result<String, PageError> {
    let now = now_ms();
    let start = if r.first_seen_ms > 0 {
        r.first_seen_ms
    } else {
        r.since_ms
    };
    let end = if r.is_open() || r.last_seen_ms <= 0 {
        now
    } else {
        (r.last_seen_ms + MARGIN_MS).min(now)
    };
    let (from, to) = (start - MARGIN_MS, end.max(start + 60_000));
    let mut names: Vec<String> = match &r.last {
        Some(o) if !o.sensors.is_empty() => o.sensors.iter().map(|v| v.name.clone()).collect(),
        Some(o) => vec![o.sensor.clone()],
        None => Vec::new(),
    };
    names.dedup();
    let mut s = format!("<h2>Window {} to {}</h2>", time(from), time(to));
    for name in names.iter().take(8) {
        let Some(id) = state.store.lookup_sensor(name)? else {
            continue;
        };
        let history = series::read(&state.store, &state.rollups, id, from, to)?;
        let mut limits = limit_lines(state, name);
        if let Some(o) = r.last.as_ref().filter(|o| o.score.is_none() && o.sensor == *name) {
            if !limits.iter().any(|l| l.1 == o.threshold) {
                limits.push((format!("{} limit {}", r.rule, num(o.threshold)), o.threshold));
            }
        }
        let svg = plot::or_note(plot::history_svg(&Plot {
            from_ms: from,
            to_ms: to,
            history: &history,
            limits,
            marks: vec![("incident start".into(), start)],
            size: (900, 300),
        }));
        s.push_str(&format!("<h3>{}</h3>{svg}", html::sensor_link(name, "1d")));
    }
    Ok(s)
}

/// The incident's span `[from, to)`: first seen (or the phase's start) to just after
/// last seen, or to now while the alarm is open.
fn incident_span(r: &StoredAlarm, now: i64) -> (i64, i64) {
    let from = if r.first_seen_ms > 0 {
        r.first_seen_ms
    } else {
        r.since_ms
    };
    let to = if r.is_open() || r.last_seen_ms <= 0 {
        now
    } else {
        r.last_seen_ms + 1
    };
    (from, labels::ceil_second(to.max(from + 1)))
}

/// The asset's labels, those overlapping the incident marked, and the form to label it.
fn labels_section(state: &ApiState, asset: &str, record: Option<&StoredAlarm>) -> Result<String, PageError> {
    let now = now_ms();
    let all = state.store.labels(Some(asset))?;
    let span = record.map(|r| incident_span(r, now));
    let mut s = String::from("<h2>Label this incident</h2>");
    // Without a record (only messages left) the form starts at the last quarter hour.
    let (from, to) = span.unwrap_or((now - MARGIN_MS, labels::ceil_second(now)));
    let kinds = [LabelKind::FalseAlarm, LabelKind::Failure, LabelKind::Maintenance];
    s.push_str(&labels::form(
        "label-form",
        &AssetField::Fixed(asset),
        (from, to),
        &kinds,
    ));
    let overlapping = span.map_or(0, |(f, t)| all.iter().filter(|l| l.overlaps(f, t)).count());
    s.push_str(&format!(
        "<h2>Labels of {} ({} overlapping this incident)</h2>",
        esc(asset),
        overlapping
    ));
    let opts = TableOptions {
        incident: span,
        asset: false,
        now_ms: now,
    };
    s.push_str(&labels::table("asset-labels", &all, &opts));
    s.push_str(&labels::script_tag());
    Ok(s)
}

/// This alarm's messages not yet acknowledged by the broker, oldest first.
fn waiting_messages(state: &ApiState, asset: &str, rule: &str) -> Result<Vec<AlertMessage>, PageError> {
    let outbox = Outbox::open(&state.store)?;
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..MAX_OUTBOX_SCAN {
        let Some(entry) = outbox.next_after(after)? else { break };
        after = Some(entry.seq);
        if let Ok(m) = serde_json::from_slice::<AlertMessage>(&entry.payload) {
            if m.asset == asset && m.rule == rule {
                out.push(m);
            }
        }
    }
    Ok(out)
}

fn messages_table(messages: &[AlertMessage]) -> String {
    if messages.is_empty() {
        return "<h2>Messages waiting for the broker</h2><p class=\"muted\">none: every message of this alarm was delivered</p>".into();
    }
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            vec![
                m.seq.to_string(),
                esc(m.state.as_str()),
                esc(&m.ts),
                esc(&m.sensor),
                num(m.value),
                m.score.map_or("–".into(), num),
                num(m.threshold),
            ]
        })
        .collect();
    format!(
        "<h2>Messages waiting for the broker</h2>{}",
        table(&["seq", "state", "at", "sensor", "value", "score", "threshold"], &rows)
    )
}
