//! The pages' HTML pieces: escaping, the common frame (title, navigation, inline CSS),
//! tables and number formats. Everything a page shows goes through [`esc`] or is a number
//! formatted here, so no name from a config, a broker or a URL can inject markup.

use std::fmt::Write;

use crate::base::time::format_rfc3339_ms;
use crate::http::percent_encode;

/// The stylesheet, inline: the pages load nothing from elsewhere.
const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#1f3a5f;color:#fff;padding:.5em 1em}header a{color:#fff;margin-right:1em}\
main{padding:0 1em 2em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:middle}\
th{background:#eee}.bad{color:#b00}.ok{color:#070}.muted{color:#777}\
.ranges a{margin-right:.6em}.bar{display:inline-block;height:.8em;background:#1f77b4}\
svg{background:#fff}form.label-form{margin:.5em 0}form.label-form label{margin-right:.5em}";

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (escaped here), the agent's name, navigation and `body`.
pub fn page(title: &str, agent: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title><style>{CSS}</style></head>\
         <body><header><b>forewarn</b> {a} &nbsp; <a href=\"/\">overview</a><a href=\"/ui/models\">models</a>\
         <a href=\"/ui/storage\">storage</a><a href=\"/ui/labels\">labels</a></header><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        a = esc(agent),
    )
}

/// A table with a header row; cells are HTML already (escape text with [`esc`]).
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table>");
    // Key-value tables pass empty headings: no header row then.
    if head.iter().any(|h| !h.is_empty()) {
        s.push_str("<tr>");
        for h in head {
            let _ = write!(s, "<th>{}</th>", esc(h));
        }
        s.push_str("</tr>");
    }
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

/// The escaped address of a sensor's page over `range`.
pub fn sensor_href(name: &str, range: &str) -> String {
    esc(&format!(
        "/ui/sensor/{}?range={}",
        percent_encode(name),
        percent_encode(range)
    ))
}

/// A link to a sensor's page.
pub fn sensor_link(name: &str, range: &str) -> String {
    format!("<a href=\"{}\">{}</a>", sensor_href(name, range), esc(name))
}

/// A link to an alert's page.
pub fn alert_link(asset: &str, rule: &str) -> String {
    let path: Vec<String> = asset.split('/').chain([rule]).map(percent_encode).collect();
    format!(
        "<a href=\"/ui/alert/{}\">{} / {}</a>",
        esc(&path.join("/")),
        esc(asset),
        esc(rule)
    )
}

/// A time, or a dash for none.
pub fn time(ts_ms: i64) -> String {
    if ts_ms <= 0 {
        return "–".into();
    }
    esc(&format_rfc3339_ms(ts_ms))
}

/// A value with up to 4 significant decimals, or a dash when it is not a number.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Bytes in MiB or GiB.
pub fn bytes(b: u64) -> String {
    let mib = b as f64 / 1_048_576.0;
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A duration in the largest whole unit that fits (`90d`, `36h`, `15m`, `42s`).
pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 2 * 3600 => format!("{}h", s / 3600),
        s if s >= 120 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_links_encode_names() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let link = sensor_link("p<1>/t", "1h");
        assert!(link.contains("/ui/sensor/p%3C1%3E%2Ft?range=1h"), "{link}");
        assert!(link.contains(">p&lt;1&gt;/t</a>"), "{link}");
        assert!(alert_link("line1/pump1", "hot").contains("/ui/alert/line1/pump1/hot"));
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(80.0), "80");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(duration(90 * 86_400_000), "90d");
    }
}
