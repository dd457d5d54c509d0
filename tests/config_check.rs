//! `forewarn check` as an operator runs it: a good config prints a summary and exits 0;
//! a bad one prints every problem with file, line, key and what is wrong, and exits
//! non-zero.

use std::process::Command;

const QUICKSTART: &str = include_str!("../config/quickstart.toml");

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn check(text: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forewarn.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE"),
    }
}

/// The quick start with one replacement applied (the original must occur).
fn variant(from: &str, to: &str) -> String {
    assert!(QUICKSTART.contains(from), "quickstart has no {from:?}");
    QUICKSTART.replacen(from, to, 1)
}

fn assert_problem(text: &str, expected: &[&str]) {
    let out = check(text);
    assert!(!out.ok, "config was accepted:\n{text}");
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
}

#[test]
fn quickstart_is_accepted_with_a_summary() {
    let out = check(QUICKSTART);
    assert!(out.ok, "{}", out.stderr);
    for s in [
        "1 modbus device, 2 registers, 2 sensors, 1 asset, 1 rule",
        "mqtt://127.0.0.1:1883",
        "2 requests per poll",
    ] {
        assert!(out.stdout.contains(s), "summary lacks {s:?}:\n{}", out.stdout);
    }
}

#[test]
fn shipped_example_config_is_valid() {
    let out = check(include_str!("../config/forewarn.toml"));
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn unknown_key() {
    assert_problem(
        &variant("unit = 1\n", "unit = 1\ncolour = \"red\"\n"),
        &["FILE:17: modbus[0].colour: unknown field `colour`"],
    );
    assert_problem(
        &format!("{QUICKSTART}\n[extras]\nx = 1\n"),
        &["extras: unknown section `extras`"],
    );
}

#[test]
fn wrong_type() {
    assert_problem(
        &variant("unit = 1", "unit = \"one\""),
        &["FILE:16: modbus[0].unit: invalid type: string \"one\""],
    );
    assert_problem(
        &variant("above = 80.0", "above = \"hot\""),
        &["asset[0].rule[0].above: invalid type"],
    );
}

#[test]
fn unparsable_duration_and_size() {
    assert_problem(
        &variant("interval = \"1s\"", "interval = \"1 sec\""),
        &["FILE:17: modbus[0].interval: invalid duration \"1 sec\""],
    );
    assert_problem(
        &variant("max_disk = \"4GiB\"", "max_disk = \"4 gigs\""),
        &["FILE:7: storage.max_disk: invalid size \"4 gigs\""],
    );
}

#[test]
fn duplicate_sensor() {
    assert_problem(
        &variant("sensor = \"pump1.vibration\"", "sensor = \"pump1.bearing_temp\""),
        &["FILE:28: modbus[0].register[1].sensor: duplicate sensor \"pump1.bearing_temp\""],
    );
}

#[test]
fn rule_on_unknown_sensor() {
    assert_problem(
        &variant(
            "  sensor = \"pump1.bearing_temp\"\n  above",
            "  sensor = \"pump1.oil_temp\"\n  above",
        ),
        &["asset[0].rule[0].sensor: rule on unknown sensor \"pump1.oil_temp\""],
    );
}

#[test]
fn register_address_out_of_range() {
    assert_problem(
        &variant("address = 0", "address = 65535"),
        &["modbus[0].register[0].address: address 65535 out of range"],
    );
    assert_problem(
        &variant("address = 10", "address = 70000"),
        &["modbus[0].register[1].address: address 70000 out of range"],
    );
}

#[test]
fn clear_below_above_the_limit() {
    assert_problem(
        &variant("clear_below = 75.0", "clear_below = 85.0"),
        &["FILE:42: asset[0].rule[0].clear_below: clear_below = 85 is above above = 80"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = variant("interval = \"1s\"", "interval = \"soon\"")
        .replacen("max_disk = \"4GiB\"", "max_disk = \"lots\"", 1)
        .replacen("severity = \"critical\"", "severity = \"apocalyptic\"", 1);
    let out = check(&text);
    assert!(!out.ok);
    assert!(out.stderr.starts_with("3 problems in config:"), "{}", out.stderr);
    for key in ["modbus[0].interval", "storage.max_disk", "asset[0].rule[0].severity"] {
        assert!(out.stderr.contains(key), "{key} missing:\n{}", out.stderr);
    }
}

#[test]
fn syntax_errors_and_missing_sections() {
    assert_problem("[agent\nid = 1\n", &["FILE:1: TOML syntax"]);
    assert_problem("[agent]\nid = \"x\"\n", &["upstream: missing section [upstream]"]);
    let out = check("");
    assert!(
        out.stderr.contains("missing section [agent]") && out.stderr.contains("missing section [upstream]"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["check", "--config", "/nonexistent/forewarn.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/forewarn.toml: cannot read file"));
}

#[test]
fn a_budget_that_cannot_hold_the_retention_is_refused() {
    // 2 sensors at 1 Hz for 10 years cannot fit in 16 MiB.
    let text = variant("raw_retention = \"30d\"", "raw_retention = \"3650d\"").replacen(
        "max_disk = \"4GiB\"",
        "max_disk = \"16MiB\"",
        1,
    );
    let out = check(&text);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("FILE:7: storage.max_disk: 16 MiB cannot hold raw_retention = 3650d"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("short by"), "{}", out.stderr);
    // The same promise with a budget that holds it passes.
    assert!(check(&text.replacen("max_disk = \"16MiB\"", "max_disk = \"4GiB\"", 1)).ok);
}

#[test]
fn rollup_tiers_and_http_are_checked() {
    let text = variant(
        "max_disk = \"4GiB\"",
        "max_disk = \"4GiB\"\n[[storage.rollup]]\nevery = \"1m\"\nkeep = \"7d\"",
    );
    assert_problem(
        &text,
        &["storage.rollup[0].keep: keep = 7d is shorter than raw_retention = 30d"],
    );
    let ok = variant(
        "max_disk = \"4GiB\"",
        "max_disk = \"4GiB\"\n[[storage.rollup]]\nevery = \"1m\"\nkeep = \"365d\"",
    );
    assert!(check(&ok).ok);
    assert_problem(
        &format!("{QUICKSTART}\n[http]\nlisten = \"localhost\"\n"),
        &["http.listen: \"localhost\" is not ip:port"],
    );
}
