//! Who may label, and labels without a running agent:
//!
//! - with `[http] users_file`, `POST /api/labels` needs an operator and a CSRF token (401
//!   without credentials, 403 for a viewer or without a token); the author is the user,
//!   whatever the body says; an unknown asset or an empty span is 400 naming it; a viewer
//!   lists the labels; `forewarn label --user` with a wrong password is refused, with the
//!   right one (from `FOREWARN_PASSWORD`) it goes through;
//! - `forewarn label` then `forewarn labels` on a stopped store; the agent, started
//!   afterwards, announces that label once (not again after a restart); while it runs
//!   with its API off, the CLI says that the agent holds the store.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// `forewarn ARGS` with `env`: (success, stdout, stderr).
fn forewarn(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .env_remove("FOREWARN_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .expect("run forewarn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl: (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap_or(0), body.to_string())
}

const SPAN: &str = r#""from":"2026-11-30T08:00:00Z","to":"2026-11-30T09:00:00Z""#;

#[tokio::test(flavor = "multi_thread")]
async fn only_operators_label_and_the_author_is_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    passwd(&users, "ann", "viewer", "ann-pw");
    passwd(&users, "olga", "operator", "olga-pw");
    let port = free_port();
    let http = format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\nusers_file = \"{}\"\n",
        users.display()
    );
    let config = pump_config(&dir.path().join("data"), free_port(), free_port(), 1000, 200)
        .replace("[http]\nenabled = false\n", &http);
    let path = dir.path().join("forewarn.toml");
    std::fs::write(&path, config).unwrap();
    let agent = AgentProcess::start(&path, &dir.path().join("agent.log"));
    wait_for_port(port, Duration::from_secs(20));
    let url = format!("http://127.0.0.1:{port}/api/labels");
    let body = format!(r#"{{"asset":"line1/pump1",{SPAN},"as":"false-alarm","author":"eve"}}"#);
    let post = |extra: &[&str], body: &str| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["-X", "POST", "-H", "Content-Type: application/json", "-d", body, &url]);
        curl(&args)
    };

    assert_eq!(post(&[], &body).0, 401);
    assert_eq!(post(&["-u", "olga:wrong"], &body).0, 401);
    assert_eq!(post(&["-u", "ann:ann-pw"], &body).0, 403);
    assert_eq!(post(&["-u", "olga:olga-pw"], &body).0, 403, "no CSRF token");
    let (_, token) = curl(&["-u", "olga:olga-pw", &format!("http://127.0.0.1:{port}/csrf")]);
    let csrf = format!("X-CSRF-Token: {}", token.trim());
    let operator = ["-u", "olga:olga-pw", "-H", csrf.as_str()];

    let (status, made) = post(&operator, &body);
    assert_eq!(status, 201, "{made}");
    let made: Value = serde_json::from_str(&made).unwrap();
    assert_eq!(
        (made["author"].as_str(), made["kind"].as_str()),
        (Some("olga"), Some("false-alarm"))
    );

    let (status, text) = post(&operator, &body.replace("line1/pump1", "line9/pump9"));
    assert!(status == 400 && text.contains("line9/pump9"), "{status} {text}");
    let (status, text) = post(&operator, &body.replace("09:00:00", "07:00:00"));
    assert!(
        status == 400 && text.contains("`from` must be before `to`"),
        "{status} {text}"
    );

    let (status, list) = curl(&["-u", "ann:ann-pw", &format!("{url}?asset=line1/pump1")]);
    assert_eq!(status, 200);
    let list: Vec<Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let delete = format!("{url}/{}", made["id"]);
    assert_eq!(curl(&["-u", "ann:ann-pw", "-X", "DELETE", &delete]).0, 403);

    // The CLI through the agent, with the password from the environment.
    let cfg = path.to_str().unwrap();
    let args = [
        "label",
        "--config",
        cfg,
        "--asset",
        "line1/pump1",
        "--from",
        "0",
        "--to",
        "60000",
        "--as",
        "failure",
        "--user",
        "olga",
    ];
    let (ok, _, err) = forewarn(&args, &[("FOREWARN_PASSWORD", "nope")]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, out, err) = forewarn(&args, &[("FOREWARN_PASSWORD", "olga-pw")]);
    assert!(
        ok && out.contains("failure of line1/pump1") && out.contains("by olga"),
        "{out}{err}"
    );
    let (ok, _, err) = forewarn(&["labels", "--config", cfg], &[]);
    assert!(!ok && err.contains("401") && err.contains("--user"), "{err}");
    let (ok, out, err) = forewarn(
        &["labels", "--config", cfg, "--json", "--user", "ann"],
        &[("FOREWARN_PASSWORD", "ann-pw")],
    );
    assert!(ok, "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), 2);
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_on_a_stopped_store_are_announced_once_at_the_next_start() {
    let broker = Mosquitto::start();
    let mut rx = subscribe(broker.port, "forewarn/+/alerts/#").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = dir.path().join("forewarn.toml");
    std::fs::write(&path, pump_config(&data, free_port(), broker.port, 1000, 200)).unwrap();
    let cfg = path.to_str().unwrap();

    let (ok, _, err) = forewarn(
        &[
            "label",
            "--config",
            cfg,
            "--asset",
            "line1/pump1",
            "--from",
            "soon",
            "--to",
            "0",
            "--as",
            "failure",
        ],
        &[],
    );
    assert!(!ok && err.contains("--from \"soon\""), "{err}");
    let (ok, out, err) = forewarn(
        &[
            "label",
            "--config",
            cfg,
            "--asset",
            "line1/pump1",
            "--from",
            "2026-11-30T08:00:00Z",
            "--to",
            "2026-11-30T09:30:00Z",
            "--as",
            "failure",
            "--note",
            "bearing seized",
        ],
        &[("USER", "piet")],
    );
    assert!(ok && out.contains("by piet"), "{out}{err}");
    let (ok, out, _) = forewarn(&["labels", "--config", cfg], &[]);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[1].contains("line1/pump1  failure  2026-11-30T08:00:00.000Z"),
        "{out}"
    );
    assert!(rows[1].ends_with("piet    bearing seized"), "{out}");

    let mut agent = AgentProcess::start(&path, &dir.path().join("agent.log"));
    agent.wait_for_log("label announced", Duration::from_secs(10)).await;
    let (ok, _, err) = forewarn(&["labels", "--config", cfg], &[]);
    assert!(!ok && err.contains("a running agent holds it"), "{err}");
    let msgs = collect_alerts(&mut rx, Duration::from_secs(10), |m| !m.is_empty(), || agent.log_text()).await;
    assert_eq!(
        (msgs[0]["event"].as_str(), msgs[0]["author"].as_str()),
        (Some("labelled"), Some("piet"))
    );
    assert_eq!(msgs[0]["note"], "bearing seized");
    agent.terminate();

    let agent = AgentProcess::start(&path, &dir.path().join("agent2.log"));
    agent.wait_for_log("labels loaded", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!agent.log_text().contains("label announced"), "{}", agent.log_text());
    assert!(rx.try_recv().is_err(), "announced once");
}
