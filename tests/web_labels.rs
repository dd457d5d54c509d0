//! Labels from the web pages, in a real browser (Playwright driving Debian's Chromium,
//! `tests/web/label.mjs`):
//!
//! - a rule fires; on the alert's page the engineer marks the incident as a false alarm:
//!   the form comes pre-filled with the incident's span, the page shows the stored label,
//!   and `GET /api/labels` holds it with that asset, kind, span and note; after a reload the
//!   asset's list shows it overlapping the incident;
//! - on `/ui/labels` a maintenance window for tomorrow is planned with the form and a
//!   label with a hostile note is removed with its button; the lists escape the note and
//!   every page carries a Content-Security-Policy under which the page's script runs;
//! - with `[http] users_file`, an operator (HTTP Basic in the browser, CSRF token fetched
//!   by the page) plans a window as themself; a viewer, and a window that ends before it
//!   starts, are shown the server's refusal.
//!
//! With `FOREWARN_SCREENSHOTS=<dir>` it writes PNGs of the pages after each action there.
//! Needs Chromium and `playwright-core` in `tests/web/node_modules` (`.ci/run` installs
//! both); without them the test fails and says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use forewarn::base::time::{format_rfc3339_ms, now_ms, parse_time};
use forewarn::demo::modbus_server::RegisterBank;
use serde_json::{json, Value};

/// One browser run, start of Chromium included.
const BROWSER_TIME: Duration = Duration::from_secs(120);

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Runs `tests/web/label.mjs` with `job`; returns what it printed.
fn browser(job: Value) -> Value {
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is required: npm install --no-save --prefix tests/web playwright-core (see .ci/run)"
    );
    assert!(Path::new("/usr/bin/chromium").exists(), "headless Chromium is required");
    let mut child = Command::new("node")
        .arg(web_dir().join("label.mjs"))
        .arg(job.to_string())
        .current_dir(web_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed");
    let deadline = std::time::Instant::now() + BROWSER_TIME;
    while matches!(child.try_wait(), Ok(None)) {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser did not finish {job} within {BROWSER_TIME:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("node output");
    let text = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "label.mjs printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(seen.get("error").is_none(), "browser: {seen}");
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["console"], json!([]), "script errors or policy violations");
    seen
}

/// Runs `job` in the browser on a blocking thread (the agent's test runtime goes on).
/// With `FOREWARN_SCREENSHOTS=<dir>` and a `shot` name, a PNG of the page after the
/// action goes there.
async fn browse(mut job: Value, shot: Option<&str>) -> Value {
    if let (Some(dir), Some(name)) = (std::env::var_os("FOREWARN_SCREENSHOTS"), shot) {
        job["screenshot"] = json!(Path::new(&dir).join(name));
    }
    tokio::task::spawn_blocking(move || browser(job)).await.unwrap()
}

/// curl: (status, headers and body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn labels(base: &str, auth: &[&str]) -> Vec<Value> {
    let mut args = auth.to_vec();
    let url = format!("{base}/api/labels");
    args.push(&url);
    let (status, body) = curl(&args);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A `datetime-local` value (UTC) as epoch ms, as the page's script sends it.
fn utc_ms(value: &Value) -> i64 {
    let v = value.as_str().unwrap_or_default();
    let v = if v.len() == 16 {
        format!("{v}:00")
    } else {
        v.to_string()
    };
    parse_time(&format!("{v}Z")).unwrap_or_else(|| panic!("not a datetime-local value: {value}"))
}

/// Tomorrow at `hour`:00 UTC, as a `datetime-local` value and as ms.
fn tomorrow_at(hour: i64) -> (String, i64) {
    let day = 86_400_000;
    let ms = (now_ms().div_euclid(day) + 1) * day + hour * 3_600_000;
    (format_rfc3339_ms(ms)[..16].to_string(), ms)
}

fn agent_config(dir: &Path, modbus_port: u16, http: u16, users: Option<&Path>) -> PathBuf {
    let users = users.map_or(String::new(), |u| format!("users_file = \"{}\"\n", u.display()));
    let text = pump_config(&dir.join("data"), modbus_port, free_port(), 100, 100).replace(
        "[http]\nenabled = false\n",
        &format!("[http]\nlisten = \"127.0.0.1:{http}\"\n{users}"),
    );
    let path = dir.join("forewarn.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_labels_an_alert_and_plans_a_maintenance_window() {
    let bank = RegisterBank::default();
    set_pump_temp(&bank, 1, 60.0);
    let modbus_port = modbus_server(bank.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = agent_config(dir.path(), modbus_port, http, None);
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    wait_for_port(http, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = now_ms();
    set_pump_temp(&bank, 1, 90.0);
    agent.wait_for_log("alert raised", Duration::from_secs(10)).await;
    let raised = now_ms();
    let base = format!("http://127.0.0.1:{http}");

    // The incident, labelled on its page.
    let note = "valve noise, not the bearing";
    let seen = browse(
        json!({
            "action": "label",
            "url": format!("{base}/ui/alert/line1/pump1/bearing-overheat"),
            "kind": "false-alarm",
            "note": note,
        }),
        Some("alert-labelled.png"),
    )
    .await;
    assert_eq!(seen["result"]["class"], "ok", "{seen}");
    assert!(
        seen["result"]["text"]
            .as_str()
            .unwrap()
            .contains("stored label 1: false-alarm of line1/pump1"),
        "{seen}"
    );
    let (from, to) = (utc_ms(&seen["prefilled"]["from"]), utc_ms(&seen["prefilled"]["to"]));
    // Pre-filled from the incident: first seen (to the second) to now, the alarm open.
    assert!(
        (before / 1000 * 1000 - 1000..=raised).contains(&from),
        "from {from} not at the incident's start ({before}..{raised})"
    );
    assert!(to >= raised && to <= now_ms() + 1000, "to {to}: not now");
    let stored = labels(&base, &[]);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let l = &stored[0];
    assert_eq!(
        (l["asset"].as_str(), l["kind"].as_str(), l["note"].as_str()),
        (Some("line1/pump1"), Some("false-alarm"), Some(note))
    );
    assert_eq!((l["from_ms"].as_i64(), l["to_ms"].as_i64()), (Some(from), Some(to)));
    assert_eq!(l["author"], "anonymous");
    let after = seen["after"].as_str().unwrap();
    assert!(
        after.contains("id=\"asset-labels\"") && after.contains(note),
        "list after reload"
    );
    assert!(after.contains("(1 overlapping this incident)"), "{after}");
    assert!(after.contains("class=\"overlap\""), "{after}");

    // A planned stop, ahead of time, on the labels page.
    let ((from_text, from_ms), (to_text, to_ms)) = (tomorrow_at(8), tomorrow_at(10));
    let seen = browse(
        json!({
            "action": "maintenance",
            "url": format!("{base}/ui/labels"),
            "asset": "line1/pump1",
            "from": from_text,
            "to": to_text,
            "note": "bearing swap",
        }),
        Some("labels.png"),
    )
    .await;
    assert_eq!(seen["result"]["class"], "ok", "{seen}");
    let stored = labels(&base, &[]);
    assert_eq!(stored.len(), 2, "{stored:?}");
    let m = &stored[1];
    assert_eq!(
        (m["kind"].as_str(), m["note"].as_str()),
        (Some("maintenance"), Some("bearing swap"))
    );
    assert_eq!(
        (m["from_ms"].as_i64(), m["to_ms"].as_i64()),
        (Some(from_ms), Some(to_ms))
    );
    assert!(seen["after"].as_str().unwrap().contains("<td>ahead</td>"), "{seen}");

    hostile_note_is_escaped_and_removed(&base).await;
    drop(agent);
}

/// A label whose note is markup: shown as text on both lists, removed with its button.
async fn hostile_note_is_escaped_and_removed(base: &str) {
    let hostile = "<script>document.title='owned'</script><img src=x onerror=alert(1)>";
    let body = json!({"asset": "line1/pump1", "from": 0, "to": 60_000, "as": "failure", "note": hostile});
    let body = body.to_string();
    let url = format!("{base}/api/labels");
    let (status, made) = curl(&["-X", "POST", "-H", "Content-Type: application/json", "-d", &body, &url]);
    assert_eq!(status, 201, "{made}");
    let id = serde_json::from_str::<Value>(&made).unwrap()["id"].as_u64().unwrap();
    for page in ["/ui/labels", "/ui/alert/line1/pump1/bearing-overheat"] {
        let (status, html) = curl(&["-i", &format!("{base}{page}")]);
        assert_eq!(status, 200, "{page}");
        assert!(
            !html.contains("<script>document") && !html.contains("<img src=x"),
            "{page}"
        );
        assert!(html.contains("&lt;script&gt;document.title=&#39;owned&#39;"), "{page}");
        let csp = html
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-security-policy:"))
            .unwrap_or_else(|| panic!("{page} has no Content-Security-Policy"));
        let script_src = csp.split(';').find(|d| d.contains("script-src")).unwrap_or_default();
        assert!(
            script_src.contains("'sha256-") && !script_src.contains("unsafe-inline"),
            "{csp}"
        );
    }
    let seen = browse(
        json!({"action": "remove", "url": format!("{base}/ui/labels"), "id": id}),
        None,
    )
    .await;
    assert_eq!(seen["result"]["class"], "ok", "{seen}");
    assert_eq!(seen["row_left"], 0, "the row stays after removal: {seen}");
    assert_eq!(seen["title"], "Labels", "the injected script ran");
    let after = seen["after"].as_str().unwrap();
    assert!(!after.contains("owned"), "removed label still listed");
    let left = labels(base, &[]);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|l| l["id"].as_u64() != Some(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_an_operator_labels_as_themself_and_a_viewer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    passwd(&users, "ann", "viewer", "ann-pw");
    passwd(&users, "olga", "operator", "olga-pw");
    let http = free_port();
    let config = agent_config(dir.path(), free_port(), http, Some(&users));
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    wait_for_port(http, Duration::from_secs(20));
    let base = format!("http://127.0.0.1:{http}");
    let ((from_text, from_ms), (to_text, _)) = (tomorrow_at(6), tomorrow_at(7));
    let job = |user: &str, password: &str, note: &str| {
        json!({
            "action": "maintenance", "url": format!("{base}/ui/labels"),
            "asset": "line1/pump1", "from": from_text, "to": to_text, "note": note,
            "user": user, "password": password,
        })
    };

    let seen = browse(job("ann", "ann-pw", "viewer's try"), None).await;
    assert_eq!(seen["result"]["class"], "bad", "{seen}");
    let text = seen["result"]["text"].as_str().unwrap();
    assert!(
        text.contains("refused (403)") && text.contains("actions need an operator"),
        "{text}"
    );

    // An end before the start: the page shows the server's reason.
    let mut backwards = job("olga", "olga-pw", "backwards");
    (backwards["from"], backwards["to"]) = (json!(to_text), json!(from_text));
    let seen = browse(backwards, None).await;
    let text = seen["result"]["text"].as_str().unwrap();
    assert!(
        seen["result"]["class"] == "bad"
            && text.contains("refused (400)")
            && text.contains("`from` must be before `to`"),
        "{seen}"
    );

    let seen = browse(job("olga", "olga-pw", "night shift stop"), None).await;
    assert_eq!(seen["result"]["class"], "ok", "{seen}");
    assert!(seen["result"]["text"].as_str().unwrap().contains("by olga"), "{seen}");
    let stored = labels(&base, &["-u", "ann:ann-pw"]);
    assert_eq!(stored.len(), 1, "only the operator's label: {stored:?}");
    assert_eq!(
        (stored[0]["author"].as_str(), stored[0]["from_ms"].as_i64()),
        (Some("olga"), Some(from_ms))
    );
    assert_eq!(
        curl(&[&format!("{base}/ui/labels")]).0,
        401,
        "the page needs credentials"
    );
    drop(agent);
}
