//! The operator's labels on the pages: `/ui/labels` lists every label with a remove
//! button and has a form for a maintenance window ahead of time; the alert page uses the
//! same table and form ([`table`], [`form`]) for one asset.
//!
//! Guarantees: the lists are rendered here, server-side, so they read without JavaScript;
//! only the actions need it. They go through the label API (`POST /api/labels`,
//! `DELETE /api/labels/{id}`) from one fixed inline script ([`SCRIPT`]), which fetches a
//! CSRF token from `/csrf` first when the agent has users, and shows the server's answer
//! (or its refusal, word for word) in the page. The script never changes per page, so
//! the pages' Content-Security-Policy allows exactly it by its SHA-256 ([`csp`]) and no
//! other script. Every label field shown goes through [`esc`]. Times in the forms are
//! UTC, as everywhere on the pages.

use std::sync::OnceLock;

use base64::Engine;

use super::html::{self, esc, time};
use super::{ApiState, PageError};
use crate::base::label::{Label, LabelKind};
use crate::base::time::{format_rfc3339_ms, now_ms};

/// Labels listed at most on one page, newest first. Why: a page must stay small and
/// quick; the API lists them all.
pub const MAX_SHOWN: usize = 500;

/// How far ahead the maintenance form's start is put by default, and its length.
const DEFAULT_LEAD_MS: i64 = 3_600_000;
const DEFAULT_LENGTH_MS: i64 = 2 * 3_600_000;

/// The actions' script: label forms (`form.label-form`) post to the API, remove buttons
/// (`button.label-remove`) delete. Kept in one piece so its hash is one constant.
pub const SCRIPT: &str = r#"(function () {
  "use strict";
  function show(el, text, ok) {
    if (el) { el.textContent = text; el.classList.remove("ok", "bad"); el.classList.add(ok ? "ok" : "bad"); }
  }
  function utc(v) { if (!v) { return ""; } if (v.length === 16) { v += ":00"; } return v + "Z"; }
  async function headers() {
    var h = { "Content-Type": "application/json" };
    var r = await fetch("/csrf", { credentials: "same-origin", cache: "no-store" });
    if (r.ok) { h["X-CSRF-Token"] = (await r.text()).trim(); }
    return h;
  }
  async function send(method, url, body, out) {
    try {
      var init = { method: method, credentials: "same-origin", headers: await headers() };
      if (body) { init.body = JSON.stringify(body); }
      var r = await fetch(url, init);
      var text = await r.text();
      if (!r.ok) { show(out, "refused (" + r.status + "): " + text.trim(), false); return null; }
      return JSON.parse(text);
    } catch (e) { show(out, "not sent: " + e, false); return null; }
  }
  document.querySelectorAll("form.label-form").forEach(function (f) {
    f.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var out = f.querySelector(".result");
      var e = f.elements;
      var body = { asset: e.asset.value, from: utc(e.from.value), to: utc(e.to.value), as: e.as.value };
      if (e.note.value.trim()) { body.note = e.note.value.trim(); }
      if (e.author.value.trim()) { body.author = e.author.value.trim(); }
      show(out, "sending", true);
      var l = await send("POST", "/api/labels", body, out);
      if (l) {
        show(out, "stored label " + l.id + ": " + l.kind + " of " + l.asset + " by " + l.author +
          " (reload the page to see it in the lists)", true);
      }
    });
  });
  document.querySelectorAll("button.label-remove").forEach(function (b) {
    b.addEventListener("click", async function () {
      var out = document.getElementById("label-removed");
      if (!window.confirm("Remove label " + b.dataset.id + "?")) { return; }
      var l = await send("DELETE", "/api/labels/" + encodeURIComponent(b.dataset.id), null, out);
      if (l) {
        show(out, "removed label " + l.id + " (" + l.kind + " of " + l.asset + ")", true);
        var row = b.closest("tr");
        if (row) { row.remove(); }
      }
    });
  });
})();"#;

/// The `<script>` element of [`SCRIPT`], for the end of a page's body.
pub fn script_tag() -> String {
    format!("<script>{SCRIPT}</script>")
}

/// The pages' Content-Security-Policy: nothing from elsewhere, no script but [`SCRIPT`]
/// (by hash, so an injected `<script>` would not run even if escaping failed), requests
/// only to the agent itself. Inline styles stay allowed: the pages' CSS and plot bars.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, SCRIPT.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'"
        )
    })
}

/// `ts_ms` as a `datetime-local` value in UTC, to the second (`2026-12-02T06:21:17`).
pub fn local_value(ts_ms: i64) -> String {
    let s = format_rfc3339_ms(ts_ms);
    s.get(..19).unwrap_or(&s).to_string()
}

/// `ts_ms` rounded up to the next whole second: an exclusive end that keeps `ts_ms` in.
pub fn ceil_second(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(1000) * 1000 + if ts_ms.rem_euclid(1000) > 0 { 1000 } else { 0 }
}

/// Whether `l`'s span is past, now or ahead at `now`.
fn state(l: &Label, now: i64) -> &'static str {
    if l.span.to_ms <= now {
        "past"
    } else if l.span.from_ms <= now {
        "now"
    } else {
        "ahead"
    }
}

/// What a label table shows beside the label's own fields.
pub struct TableOptions {
    /// The incident's span `[from, to)`: a column says which labels overlap it.
    pub incident: Option<(i64, i64)>,
    /// Show the asset column (the all-labels page).
    pub asset: bool,
    pub now_ms: i64,
}

/// The labels as a table (newest first, at most [`MAX_SHOWN`]), each with a remove
/// button; `id` is the table's element id.
pub fn table(id: &str, labels: &[Label], opts: &TableOptions) -> String {
    if labels.is_empty() {
        return format!("<p class=\"muted\" id=\"{}\">no labels</p>", esc(id));
    }
    let mut head = vec!["id"];
    if opts.asset {
        head.push("asset");
    }
    head.extend(["kind", "from", "to (exclusive)", "when", "author", "note"]);
    if opts.incident.is_some() {
        head.push("this incident");
    }
    head.push("");
    let mut rows = Vec::new();
    for l in labels.iter().rev().take(MAX_SHOWN) {
        let mut row = vec![l.id.to_string()];
        if opts.asset {
            row.push(esc(&l.span.asset));
        }
        row.extend([
            format!("<span class=\"kind\">{}</span>", esc(l.span.kind.as_str())),
            time(l.span.from_ms),
            time(l.span.to_ms),
            state(l, opts.now_ms).to_string(),
            esc(&l.span.author),
            l.span.note.as_deref().map(esc).unwrap_or_default(),
        ]);
        if let Some((from, to)) = opts.incident {
            row.push(if l.overlaps(from, to) {
                "<b class=\"overlap\">overlaps</b>".into()
            } else {
                "<span class=\"muted\">outside</span>".into()
            });
        }
        row.push(format!(
            "<button type=\"button\" class=\"label-remove\" data-id=\"{}\">remove</button>",
            l.id
        ));
        rows.push(row);
    }
    let mut s = html::table(&head, &rows).replacen("<table>", &format!("<table id=\"{}\">", esc(id)), 1);
    if labels.len() > MAX_SHOWN {
        s.push_str(&format!(
            "<p class=\"muted\">the {MAX_SHOWN} newest of {} labels; <a href=\"/api/labels\">all as JSON</a></p>",
            labels.len()
        ));
    }
    s.push_str("<p role=\"status\" id=\"label-removed\"></p>");
    s
}

/// The asset a form labels: one fixed asset, or a choice among the config's.
pub enum AssetField<'a> {
    Fixed(&'a str),
    Choose(Vec<&'a str>),
}

/// A label form (`form.label-form`): asset, span as UTC `datetime-local` inputs, kind
/// (`kinds`: a choice, or fixed when there is one), note and, for an agent without
/// users, the author's name (with users the server takes the user's name).
pub fn form(id: &str, asset: &AssetField<'_>, span: (i64, i64), kinds: &[LabelKind]) -> String {
    let asset_html = match asset {
        AssetField::Fixed(a) => format!("<input type=\"hidden\" name=\"asset\" value=\"{}\">", esc(a)),
        AssetField::Choose(ids) => {
            let mut s = String::from("<label>asset <select name=\"asset\" required><option value=\"\">choose</option>");
            for a in ids {
                s.push_str(&format!("<option value=\"{0}\">{0}</option>", esc(a)));
            }
            s.push_str("</select></label> ");
            s
        }
    };
    let kind_html = match kinds {
        [one] => format!("<input type=\"hidden\" name=\"as\" value=\"{}\">", one.as_str()),
        _ => {
            let mut s = String::from("<label>kind <select name=\"as\" required><option value=\"\">choose</option>");
            for k in kinds {
                s.push_str(&format!("<option value=\"{0}\">{0}</option>", k.as_str()));
            }
            s.push_str("</select></label> ");
            s
        }
    };
    format!(
        "<form class=\"label-form\" id=\"{id}\">{asset_html}\
         <label>from <input type=\"datetime-local\" name=\"from\" step=\"1\" required value=\"{from}\"></label> \
         <label>to <input type=\"datetime-local\" name=\"to\" step=\"1\" required value=\"{to}\"></label> (UTC) \
         {kind_html}<label>note <input type=\"text\" name=\"note\" maxlength=\"{max_note}\" size=\"40\"></label> \
         <label>by <input type=\"text\" name=\"author\" maxlength=\"{max_author}\" size=\"10\" \
         placeholder=\"your name\" title=\"used when the agent has no users; otherwise your user name\"></label> \
         <button type=\"submit\">save label</button><p role=\"status\" class=\"result\"></p></form>\
         <noscript><p class=\"muted\">Labelling needs JavaScript here; \
         <code>forewarn label</code> does the same from a shell.</p></noscript>",
        id = esc(id),
        from = local_value(span.0),
        to = local_value(span.1),
        max_note = crate::base::label::MAX_NOTE,
        max_author = crate::base::label::MAX_AUTHOR,
    )
}

/// `/ui/labels`: every label, and a maintenance window ahead of time.
pub fn page(state: &ApiState) -> Result<String, PageError> {
    let labels = state.store.labels(None)?;
    let now = now_ms();
    let ids: Vec<&str> = state.site.assets.iter().map(|a| a.id.as_str()).collect();
    let start = ceil_hour(now + DEFAULT_LEAD_MS / 2);
    let mut body = String::from(
        "<h2>Plan a maintenance window</h2><p class=\"muted\">Alerts of the asset are held back \
         during it and its data is never learned from.</p>",
    );
    body.push_str(&form(
        "maintenance-form",
        &AssetField::Choose(ids),
        (start, start + DEFAULT_LENGTH_MS),
        &[LabelKind::Maintenance],
    ));
    body.push_str(&format!("<h2>All labels ({})</h2>", labels.len()));
    let opts = TableOptions {
        incident: None,
        asset: true,
        now_ms: now,
    };
    body.push_str(&table("labels", &labels, &opts));
    body.push_str(&script_tag());
    Ok(html::page("Labels", &state.agent, &body))
}

/// `ts_ms` rounded up to a whole hour.
fn ceil_hour(ts_ms: i64) -> i64 {
    let h = 3_600_000;
    ts_ms.div_euclid(h) * h + if ts_ms.rem_euclid(h) > 0 { h } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::label::NewLabel;

    fn label(id: u64, note: &str, from_ms: i64, to_ms: i64) -> Label {
        Label {
            id,
            span: NewLabel {
                asset: "line1/<pump>".into(),
                from_ms,
                to_ms,
                kind: LabelKind::FalseAlarm,
                note: Some(note.into()),
                author: "o'neil\"".into(),
            },
            created_ms: 1,
        }
    }

    #[test]
    fn a_hostile_note_asset_and_author_are_escaped() {
        let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        let opts = TableOptions {
            incident: Some((0, 10)),
            asset: true,
            now_ms: 5,
        };
        let s = table("labels", &[label(7, hostile, 0, 100)], &opts);
        assert!(!s.contains("<script>") && !s.contains("<img"), "{s}");
        assert!(s.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x"), "{s}");
        assert!(
            s.contains("line1/&lt;pump&gt;") && s.contains("o&#39;neil&quot;"),
            "{s}"
        );
        let f = form(
            "f",
            &AssetField::Fixed("a\"><script>"),
            (0, 1000),
            &[LabelKind::Failure],
        );
        assert!(
            !f.contains("<script>") && f.contains("value=\"a&quot;&gt;&lt;script&gt;\""),
            "{f}"
        );
    }

    #[test]
    fn rows_say_which_labels_overlap_the_incident_and_when_they_are() {
        let labels = [label(1, "a", 0, 50), label(2, "b", 100, 200), label(3, "c", 300, 400)];
        let opts = TableOptions {
            incident: Some((40, 150)),
            asset: false,
            now_ms: 150,
        };
        let s = table("t", &labels, &opts);
        let rows: Vec<&str> = s.split("<tr>").skip(2).collect();
        assert_eq!(rows.len(), 3, "{s}");
        // Newest first: 3 (ahead, outside), 2 (now, overlaps), 1 (past, overlaps: 40..50).
        assert!(rows[0].starts_with("<td>3</td>") && rows[0].contains("ahead") && rows[0].contains("outside"));
        assert!(
            rows[1].contains("<td>now</td>") && rows[1].contains("overlaps"),
            "{}",
            rows[1]
        );
        assert!(
            rows[2].contains("<td>past</td>") && rows[2].contains("overlaps"),
            "{}",
            rows[2]
        );
        assert!(!s.contains("<th>asset</th>"));
        assert!(table("t", &[], &opts).contains("no labels"));
    }

    #[test]
    fn form_times_are_utc_seconds_and_ends_round_up() {
        assert_eq!(local_value(1_700_000_000_123), "2023-11-14T22:13:20");
        assert_eq!(ceil_second(1_700_000_000_123), 1_700_000_001_000);
        assert_eq!(ceil_second(1_700_000_000_000), 1_700_000_000_000);
        assert_eq!(ceil_hour(3_600_001), 7_200_000);
        let f = form(
            "f",
            &AssetField::Choose(vec!["a", "b"]),
            (0, 3_600_000),
            &[LabelKind::FalseAlarm, LabelKind::Failure],
        );
        assert!(f.contains("value=\"1970-01-01T00:00:00\"") && f.contains("value=\"1970-01-01T01:00:00\""));
        assert!(f.contains("<option value=\"failure\">") && f.contains("<option value=\"b\">"));
    }

    #[test]
    fn the_policy_allows_exactly_the_script() {
        let p = csp();
        assert!(p.contains("script-src 'sha256-") && !p.contains("unsafe-eval"), "{p}");
        assert!(!p
            .split(';')
            .any(|d| d.contains("script-src") && d.contains("unsafe-inline")));
        // The hash is of the script's exact text: a changed script changes it.
        let digest = ring::digest::digest(&ring::digest::SHA256, SCRIPT.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(p.contains(&hash));
    }
}
