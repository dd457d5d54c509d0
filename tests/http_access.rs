//! Access to the HTTP API with `[http] users_file`, against the agent binary, with users
//! made by `forewarn passwd` and `curl` as the client:
//!
//! - no credentials or a wrong password: 401 with `WWW-Authenticate: Basic`; after five
//!   wrong tries that client gets 429, right credentials included, and the failures are
//!   counted in `http_auth_failures`;
//! - a viewer reads (200) but may not act (403); an operator acts only with a CSRF token
//!   from `GET /csrf` (403 without, 202 with, and the agent reloads its models);
//! - `check` refuses a listener off loopback without users, and a broken users file with
//!   its line;
//! - with `tls_cert`/`tls_key` (a test CA made by `openssl`) the API speaks HTTPS and curl
//!   accepts its certificate.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::check::{assert_problem, QUICKSTART};
use common::*;

/// The status, headers (lower-case names) and body of a curl request.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no reply from curl {args:?}: {text}"));
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// An agent whose API has the users `ann` (viewer) and `olga` (operator), with `extra`
/// lines in `[http]`.
fn agent_with_users(dir: &Path, extra: &str) -> (AgentProcess, u16) {
    let users = dir.join("users");
    passwd(&users, "ann", "viewer", "ann-pw");
    passwd(&users, "olga", "operator", "olga-pw");
    let port = free_port();
    let http = format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\nusers_file = \"{}\"\n{extra}",
        users.display()
    );
    let config =
        pump_config(&dir.join("data"), free_port(), free_port(), 1000, 200).replace("[http]\nenabled = false\n", &http);
    let path = dir.join("forewarn.toml");
    std::fs::write(&path, config).unwrap();
    let agent = AgentProcess::start(&path, &dir.join("agent.log"));
    wait_for_port(port, Duration::from_secs(20));
    (agent, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn users_roles_csrf_and_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, port) = agent_with_users(dir.path(), "");
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let anon = curl(&[&url("/healthz")]);
    assert_eq!(anon.status, 401);
    assert!(
        anon.head.contains("www-authenticate: basic realm=\"forewarn\""),
        "{}",
        anon.head
    );

    let viewer = curl(&["-u", "ann:ann-pw", &url("/healthz")]);
    assert_eq!(viewer.status, 200, "{}", viewer.body);
    assert!(viewer.body.contains("\"http_auth_failures\":0"), "{}", viewer.body);
    let reload = url("/api/reload-models");
    assert_eq!(curl(&["-u", "ann:ann-pw", "-X", "POST", &reload]).status, 403);

    assert_eq!(curl(&["-u", "olga:olga-pw", "-X", "POST", &reload]).status, 403);
    let token = curl(&["-u", "olga:olga-pw", &url("/csrf")]);
    assert_eq!(token.status, 200);
    let header = format!("X-CSRF-Token: {}", token.body.trim());
    assert_eq!(
        curl(&["-u", "ann:ann-pw", "-H", &header, "-X", "POST", &reload]).status,
        403
    );
    let acted = curl(&["-u", "olga:olga-pw", "-H", &header, "-X", "POST", &reload]);
    assert_eq!(acted.status, 202, "{}", acted.body);
    agent.wait_for_log("models reloaded", Duration::from_secs(10)).await;

    // Wrong passwords: 401 until the limit, then 429 for this client whatever it sends.
    for i in 0..5 {
        let wrong = curl(&["-u", "ann:guess", &url("/healthz")]);
        assert_eq!(wrong.status, 401, "try {i}");
    }
    assert_eq!(curl(&["-u", "ann:guess", &url("/healthz")]).status, 429);
    let blocked = curl(&["-u", "ann:ann-pw", &url("/healthz")]);
    assert_eq!(blocked.status, 429);
    assert!(blocked.head.contains("retry-after:"), "{}", blocked.head);
    let log = agent.log_text();
    assert!(
        log.contains("wrong credentials") && log.contains("user=\"ann\""),
        "{log}"
    );
    assert!(
        !log.contains("guess") && !log.contains("ann-pw"),
        "a password reached the log"
    );
}

#[test]
fn check_refuses_an_open_listener_without_users() {
    let open = QUICKSTART.replace("[upstream]", "[http]\nlisten = \"0.0.0.0:9321\"\n\n[upstream]");
    assert_problem(&open, &["http.listen", "not a loopback address", "http.users_file"]);

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    passwd(&users, "ann", "viewer", "pw");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("bob:admin:$argon2id$v=19$x\n");
    std::fs::write(&users, text).unwrap();
    let broken = open.replace(
        "listen = \"0.0.0.0:9321\"",
        &format!("listen = \"0.0.0.0:9321\"\nusers_file = \"{}\"", users.display()),
    );
    assert_problem(
        &broken,
        &["http.users_file", &format!("{}:2: role \"admin\"", users.display())],
    );

    let half_tls = QUICKSTART.replace("[upstream]", "[http]\ntls_cert = \"/nonexistent.pem\"\n\n[upstream]");
    assert_problem(&half_tls, &["http.tls_key", "tls_cert needs tls_key"]);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certs(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
    ]
    .concat();
    openssl(dir, &ca);
    let csr = [
        &["req"][..],
        &ec,
        &["-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=api"],
    ]
    .concat();
    openssl(dir, &csr);
    std::fs::write(
        dir.join("api.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "api.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "api.crt",
            "-days",
            "2",
            "-extfile",
            "api.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let (cert, key) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    let tls = format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display());
    let (_agent, port) = agent_with_users(dir.path(), &tls);
    let ca = dir.path().join("ca.crt");
    let ca = ca.to_str().unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let ok = curl(&["--cacert", ca, "-u", "ann:ann-pw", &url]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(curl(&["--cacert", ca, &url]).status, 401);
    // Plain HTTP on the HTTPS port gets no answer; an untrusted certificate is refused.
    let plain = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("http://127.0.0.1:{port}/healthz")])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let untrusted = Command::new("curl")
        .args(["-s", "--max-time", "10", &url])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
}
