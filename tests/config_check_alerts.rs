//! `forewarn check` on the alert options: the secured upstream (TLS files, credentials,
//! status topics), the asset tree and the lifecycle timing of rules. Each bad value is
//! reported with file, line and key.

mod common;

use common::check::{assert_problem, check, QUICKSTART};

/// The quick start with lines added after `[upstream]`'s alert topic and after the
/// asset's id.
fn with(upstream: &str, asset: &str) -> String {
    let topic = "alert_topic = \"forewarn/{agent}/alerts/{asset}\"\n";
    let id = "id = \"line1/pump1\"\n";
    assert!(QUICKSTART.contains(topic) && QUICKSTART.contains(id));
    QUICKSTART
        .replacen(topic, &format!("{topic}{upstream}\n"), 1)
        .replacen(id, &format!("{id}{asset}\n"), 1)
}

#[test]
fn a_complete_secure_upstream_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "gw.pem", "gw.key", "pw"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let d = dir.path().display();
    let text = with(
        &format!(
            "site = \"plant-a\"\nstatus_topic = \"forewarn/{{site}}/{{agent}}/status\"\n\
             ca_file = \"{d}/ca.pem\"\nclient_cert = \"{d}/gw.pem\"\nclient_key = \"{d}/gw.key\"\n\
             username = \"gw\"\npassword_file = \"{d}/pw\"\nheartbeat_interval = \"30s\""
        ),
        "parent = \"line1\"\n[[asset]]\nid = \"line1\"",
    )
    .replace("mqtt://127.0.0.1:1883", "mqtts://broker.example:8883");
    let out = check(&text);
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn tls_files_and_credentials_are_checked() {
    assert_problem(
        &with("", "").replace("mqtt://127.0.0.1:1883", "mqtts://127.0.0.1"),
        &["FILE:9: upstream.ca_file: an mqtts:// broker needs ca_file"],
    );
    assert_problem(
        &with(
            "ca_file = \"/nonexistent/ca.pem\"\nclient_cert = \"/nonexistent/gw.pem\"",
            "",
        ),
        &[
            "FILE:12: upstream.ca_file: TLS options need an mqtts:// broker",
            "upstream.ca_file: cannot read /nonexistent/ca.pem",
            "upstream.client_key: client_cert needs client_key",
        ],
    );
    assert_problem(
        &with("password = \"x\"\npassword_env = \"PW\"", ""),
        &[
            "FILE:13: upstream.password_env: set only one of password, password_env",
            "FILE:12: upstream.password: a password needs upstream.username",
        ],
    );
    assert_problem(
        &with("username = \"u\"\npassword_file = \"/nonexistent/pw\"", ""),
        &["FILE:13: upstream.password_file: cannot read /nonexistent/pw"],
    );
}

#[test]
fn status_topics_and_site_are_checked() {
    assert_problem(
        &with(
            "status_topic = \"forewarn/{site}/{agent}/status\"\nheartbeat_topic = \"x/#\"",
            "",
        ),
        &[
            "FILE:12: upstream.status_topic: uses {site} but upstream.site is not set",
            "upstream.heartbeat_topic: \"x/#\" is not a publishable topic",
        ],
    );
    assert_problem(
        &with("site = \"plant a\"\nheartbeat_interval = \"100ms\"", ""),
        &[
            "FILE:12: upstream.site: must be non-empty",
            "upstream.heartbeat_interval: must be at least 1s",
        ],
    );
}

#[test]
fn the_asset_tree_is_checked() {
    assert_problem(
        &with("", "parent = \"line9\""),
        &["FILE:37: asset[0].parent: unknown parent \"line9\""],
    );
    assert_problem(
        &with("", "parent = \"line1/pump1\""),
        &["asset[0].parent: an asset cannot be its own parent"],
    );
    assert_problem(
        &with(
            "",
            "parent = \"line1\"\n[[asset]]\nid = \"line1\"\nparent = \"line1/pump1\"",
        ),
        &["asset[1].parent: parent \"line1/pump1\" leads back to \"line1\": the asset tree has a cycle"],
    );
}

#[test]
fn lifecycle_timing_is_checked() {
    let text = QUICKSTART.replacen(
        "severity = \"critical\"",
        "severity = \"critical\"\n  min_duration = \"2d\"\n  renotify = \"10ms\"\n  clear_after = \"soon\"",
        1,
    );
    assert_problem(&text, &["asset[0].rule[0].clear_after: invalid duration \"soon\""]);
    let text = text.replace("\"soon\"", "\"30s\"");
    assert_problem(
        &text,
        &[
            "asset[0].rule[0].min_duration: 2d is longer than 1d",
            "asset[0].rule[0].renotify: 10ms is shorter than 1s",
        ],
    );
}

#[test]
fn no_data_watches_are_checked() {
    let out = check(&with("", "no_data = \"30s\""));
    assert!(out.ok, "{}", out.stderr);
    assert_problem(
        &with("", "no_data = \"100ms\""),
        &["asset[0].no_data: 100ms is outside 1s..1d"],
    );
    assert_problem(
        &with("", "no_data = \"30s\"").replace("name = \"bearing-overheat\"", "name = \"no-data\""),
        &["asset[0].no_data: \"no-data\" is the alarm of no_data"],
    );
    assert_problem(
        &format!("{}\n[[asset]]\nid = \"line2\"\nno_data = \"30s\"\n", with("", "")),
        &["asset[1].no_data: the asset has no sensors to watch"],
    );
}

/// What `check` cannot know (a variable set only for the service, a file readable only
/// by its user) is found when the agent starts, the same way for the upstream connection
/// and for every input: the agent stops at once, naming the section and the key.
#[test]
fn connection_problems_at_start_up_name_their_section() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &str| {
        let path = dir.path().join("forewarn.toml");
        std::fs::write(&path, config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["run", "--config"])
            .arg(&path)
            .env_remove("FOREWARN_TEST_UNSET_PW")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let data = dir.path().join("data");
    let base = format!(
        "[agent]\nid = \"gw\"\ndata_dir = \"{}\"\n[http]\nenabled = false\n",
        data.display()
    );
    let upstream_pw =
        "[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\nusername = \"u\"\npassword_env = \"FOREWARN_TEST_UNSET_PW\"\n";
    let (ok, err) = run(&format!("{base}{upstream_pw}"));
    assert!(!ok);
    assert!(
        err.contains("upstream.password_env: the environment variable FOREWARN_TEST_UNSET_PW is not set"),
        "{err}"
    );
    let input_pw = "[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n[[mqtt]]\nbroker = \"mqtt://127.0.0.1:1\"\n\
                    username = \"u\"\npassword_env = \"FOREWARN_TEST_UNSET_PW\"\n[[mqtt.subscribe]]\ntopic = \"a/+\"\n";
    let (ok, err) = run(&format!("{base}{input_pw}"));
    assert!(!ok);
    assert!(
        err.contains("mqtt[0].password_env: the environment variable FOREWARN_TEST_UNSET_PW is not set"),
        "{err}"
    );
}
