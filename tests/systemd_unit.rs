//! `systemd/forewarn.service` as systemd and the Debian package see it: its exposure in
//! `systemd-analyze security` stays at 2.0 or below, it is a `Type=notify` unit with a
//! watchdog, and it starts the binary where the package (`[package.metadata.deb]` in
//! `Cargo.toml`) installs it, with the config the package ships.

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "systemd/forewarn.service";
/// The highest overall exposure the unit may have.
const MAX_EXPOSURE: f64 = 2.0;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn systemd_analyze() -> PathBuf {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("systemd-analyze")))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("systemd-analyze not found: this test needs systemd's tools (`apt-get install systemd`; .ci/run installs it)")
    })
}

/// The number in "→ Overall exposure level for forewarn.service: 1.5 OK 🙂".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.contains("Overall exposure level"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_parses_from_the_report() {
    let report = "✗ UMask= ...\n\n→ Overall exposure level for forewarn.service: 1.5 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.5));
    assert_eq!(overall_exposure("no summary"), None);
}

#[test]
fn unit_exposure_is_at_most_two() {
    // `--offline=yes` reads the unit file alone: no running systemd, no installed binary.
    // The threshold is in tenths; over it, systemd-analyze exits non-zero.
    let out = Command::new(systemd_analyze())
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(root().join(UNIT))
        .output()
        .expect("run systemd-analyze");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let exposure = overall_exposure(&report).unwrap_or_else(|| panic!("no overall exposure in the report:\n{report}"));
    eprintln!("overall exposure of {UNIT}: {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
    assert!(out.status.success(), "systemd-analyze failed:\n{report}");
}

/// `Key=value` lines of the unit, in order (repeated keys kept).
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn unit_is_notify_with_a_watchdog_and_serial_ports() {
    let unit = std::fs::read_to_string(root().join(UNIT)).expect("read the unit");
    let d = directives(&unit);
    let has = |k: &str, v: &str| d.iter().any(|(dk, dv)| dk == k && dv == v);
    for (k, v) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("Restart", "on-failure"),
        ("SupplementaryGroups", "dialout"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-ttyUSB rw"),
        ("UMask", "0027"),
    ] {
        assert!(has(k, v), "{UNIT} lacks {k}={v}");
    }
    // The notification socket is a Unix socket.
    assert!(d
        .iter()
        .any(|(k, v)| k == "RestrictAddressFamilies" && v.split_whitespace().any(|f| f == "AF_UNIX")));
    // Either would cut the agent off from its serial ports or its network.
    for k in ["PrivateDevices", "PrivateNetwork", "IPAddressDeny"] {
        assert!(!d.iter().any(|(dk, _)| dk == k), "{UNIT} must not set {k}=");
    }
}

#[test]
fn unit_and_package_agree() {
    let unit = std::fs::read_to_string(root().join(UNIT)).expect("read the unit");
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("Cargo.toml parses");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .expect("deb assets")
        .iter()
        .map(|a| {
            (
                a[0].as_str().unwrap_or("").to_string(),
                a[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let installed = |src: &str| {
        assets.iter().find(|(s, _)| s == src).map(|(_, dest)| {
            let file = Path::new(src).file_name().and_then(|f| f.to_str()).unwrap_or("");
            let dest = if dest.ends_with('/') {
                format!("{dest}{file}")
            } else {
                dest.clone()
            };
            format!("/{dest}")
        })
    };
    let binary = installed("target/release/forewarn").expect("the binary is a deb asset");
    let config = installed("config/forewarn.toml").expect("the example config is a deb asset");
    assert_eq!(binary, "/usr/bin/forewarn");
    assert_eq!(config, "/etc/forewarn/forewarn.toml");
    let d = directives(&unit);
    for key in ["ExecStart", "ExecStartPre"] {
        let (_, cmd) = d.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}="));
        assert!(
            cmd.starts_with(&format!("{binary} ")),
            "{key}={cmd} does not run {binary}"
        );
        assert!(
            cmd.ends_with(&format!("--config {config}")),
            "{key}={cmd} does not read {config}"
        );
    }
    let conffiles: Vec<&str> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(conffiles.contains(&config.as_str()), "{config} is a conffile");
    // cargo-deb finds the unit as <package>.service in `unit-scripts`.
    let units = deb["systemd-units"]["unit-scripts"]
        .as_str()
        .expect("systemd-units.unit-scripts");
    assert!(root().join(units).join("forewarn.service").is_file());
    let scripts = deb["maintainer-scripts"].as_str().expect("maintainer-scripts");
    let postinst = std::fs::read_to_string(root().join(scripts).join("postinst")).expect("postinst");
    for needle in [
        "adduser --system",
        "forewarn dialout",
        "/var/lib/forewarn",
        "#DEBHELPER#",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}");
    }
}
