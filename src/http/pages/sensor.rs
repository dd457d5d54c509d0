//! `/ui/sensor/{name}?range=1h`: one sensor's history over a range from minutes to months,
//! with the limits of every rule on it drawn as lines and bad-quality spans as gaps.

use super::html::{self, esc, num, table, time};
use super::plot::{self, Plot};
use super::series::{self, History, RANGES};
use super::{ApiState, PageError};
use crate::base::time::now_ms;

pub fn page(state: &ApiState, name: &str, range: &str, range_ms: i64) -> Result<String, PageError> {
    let id = state
        .store
        .lookup_sensor(name)?
        .ok_or_else(|| PageError::NotFound(format!("no sensor {name:?} in the store")))?;
    let now = now_ms();
    let from = now - range_ms;
    let history = series::read(&state.store, &state.rollups, id, from, now)?;
    let limits = limit_lines(state, name);
    let plot = plot::or_note(plot::history_svg(&Plot {
        from_ms: from,
        to_ms: now,
        history: &history,
        limits: limits.clone(),
        marks: Vec::new(),
        size: (960, 360),
    }));
    let mut body = range_links(name, range);
    body.push_str(&format!("<div id=\"history\">{plot}</div>"));
    body.push_str(&summary(&history, &limits));
    Ok(html::page(&format!("Sensor {name}"), &state.agent, &body))
}

/// Every `[[asset.rule]]` limit on `sensor`, labelled with its rule.
pub fn limit_lines(state: &ApiState, sensor: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for l in state.site.limits_of(sensor) {
        if let Some(v) = l.above {
            out.push((format!("{} above {}", l.rule, num(v)), v));
        }
        if let Some(v) = l.below {
            out.push((format!("{} below {}", l.rule, num(v)), v));
        }
    }
    out
}

/// The range choices as plain links, the current one in bold.
fn range_links(name: &str, current: &str) -> String {
    let mut s = String::from("<p class=\"ranges\">range: ");
    for r in RANGES {
        if *r == current {
            s.push_str(&format!("<b>{}</b> ", esc(r)));
        } else {
            s.push_str(&format!("<a href=\"{}\">{}</a> ", html::sensor_href(name, r), esc(r)));
        }
    }
    s.push_str("</p>");
    s
}

fn summary(h: &History, limits: &[(String, f64)]) -> String {
    let shown = match h.every_ms {
        Some(e) => format!("means of {} buckets", html::duration(e)),
        None => "raw samples".into(),
    };
    let mut rows = vec![
        vec!["points drawn".into(), format!("{} ({shown})", h.points())],
        vec!["gaps".into(), h.segments.len().saturating_sub(1).to_string()],
        vec!["bad-quality samples".into(), h.bad.to_string()],
    ];
    if let Some(s) = h.last {
        rows.push(vec![
            "last sample".into(),
            format!(
                "{} ({}) at {}",
                num(s.value),
                esc(&s.quality.to_string()),
                time(s.ts_ms)
            ),
        ]);
    }
    for (label, _) in limits {
        rows.push(vec!["limit".into(), esc(label)]);
    }
    table(&["", ""], &rows)
}
