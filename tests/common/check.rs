//! `forewarn check` as a test runs it: on a config text written to a temporary file, with
//! the file's path replaced by `FILE` in the messages so tests can match whole lines.

use std::process::Command;

/// The README's quick-start config, the base of most config tests.
pub const QUICKSTART: &str = include_str!("../../config/quickstart.toml");

pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn check(text: &str) -> Outcome {
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

/// The config must be refused, with every `expected` text among the problems.
pub fn assert_problem(text: &str, expected: &[&str]) {
    let out = check(text);
    assert!(!out.ok, "config was accepted:\n{text}");
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in:\n{}", out.stderr);
    }
}
