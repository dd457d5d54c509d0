//! The web pages in a real browser: the agent polls a Modbus server, a rule fires, and
//! headless Chromium loads every page; the rendered DOM must hold the plots with data,
//! the open alert on the overview and the rule's limit line on the sensor page.
//!
//! Chromium is required (`chromium` in `.ci/run`'s packages): without it the test fails
//! and says so. With `FOREWARN_SCREENSHOTS=<dir>` it also writes PNGs of the overview and
//! a sensor page there (the README's pictures).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use forewarn::demo::modbus_server::{Behaviour, RegisterBank};

/// How long one page load may take, start of the browser included.
const BROWSER_TIME: Duration = Duration::from_secs(90);

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!("headless Chromium is required for this test: apt-get install -y --no-install-recommends chromium");
}

/// Runs Chromium headless with `args` then `url`; returns its stdout.
fn browse(profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + BROWSER_TIME;
    let mut stdout = child.stdout.take().expect("chromium stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("chromium did not finish {url} within {BROWSER_TIME:?}");
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    reader.join().unwrap_or_default()
}

fn dump_dom(profile: &Path, url: &str) -> String {
    let dom = browse(profile, &["--dump-dom"], url);
    assert!(dom.contains("</html>"), "no DOM from {url}: {dom}");
    dom
}

/// The `points` of every `<polyline>` with at least `min` points; `stroke` filters.
fn polylines(dom: &str, stroke: Option<&str>, min: usize) -> Vec<String> {
    dom.split("<polyline")
        .skip(1)
        .filter_map(|p| p.split_once('>').map(|(attrs, _)| attrs))
        .filter(|a| stroke.is_none_or(|s| a.contains(&format!("stroke=\"{s}\""))))
        .filter_map(|a| a.split("points=\"").nth(1)?.split('"').next().map(str::to_string))
        .filter(|pts| pts.split_whitespace().count() >= min)
        .collect()
}

/// History from before the agent ran: 20 days every 10 minutes, then the last hour every
/// 2 s with 6 minutes missing (the plots must show that as a gap).
fn import_history(config: &Path, csv: &Path) {
    let now = forewarn::base::time::now_ms();
    let mut text = String::from("time;pump1.bearing_temp;pump1.vibration\n");
    let day = 86_400_000.0;
    let mut t = now - 20 * 86_400_000;
    while t < now {
        let recent = t >= now - 3_600_000;
        let hole = (now - 30 * 60_000..now - 24 * 60_000).contains(&t);
        if !hole {
            let x = t as f64;
            let temp = 58.0 + 8.0 * (x / day * std::f64::consts::TAU).sin() + 2.0 * (x / 300_000.0).sin();
            let vib = 2.0 + 0.4 * (x / 7_200_000.0).sin();
            text.push_str(&format!("{t};{temp:.2};{vib:.3}\n"));
        }
        t += if recent { 2_000 } else { 600_000 };
    }
    std::fs::write(csv, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["import", "--csv"])
        .arg(csv)
        .args(["--sep", ";", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
}

/// `forewarn train` on the imported 10-minute history (the agent is not running yet).
fn train(config: &Path) {
    let now = forewarn::base::time::now_ms();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["train", "--asset", "line1/pump1", "--from"])
        .arg((now - 20 * 86_400_000).to_string())
        .arg("--to")
        .arg((now - 2 * 3_600_000).to_string())
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "train: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_a_browser_with_plots_alerts_and_limits() {
    chromium();
    let bank = RegisterBank::default();
    set_pump_temp(&bank, 1, 60.0);
    bank.set(forewarn::config::RegisterKind::Input, 10, &[250]);
    let modbus_port = modbus_server(bank.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = dir.path().join("forewarn.toml");
    let text = pump_config(&dir.path().join("data"), modbus_port, free_port(), 100, 100).replace(
        "[http]\nenabled = false",
        &format!("[http]\nlisten = \"127.0.0.1:{http}\""),
    );
    // A model on the 10-minute history, so the models page has a file to show.
    let text =
        format!("{text}\n  [asset.model]\n  name = \"anomaly\"\n  period = \"10m\"\n  max_hold = 2\n  window = 3\n");
    std::fs::write(&config, text).unwrap();
    import_history(&config, &dir.path().join("history.csv"));
    train(&config);
    let agent = AgentProcess::start(&config, &dir.path().join("agent.log"));
    wait_for_port(http, Duration::from_secs(10));
    // The device fails for a while (Modbus exception 04): bad-quality samples, a gap.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bank.set_behaviour(Behaviour::Exception(4));
    tokio::time::sleep(Duration::from_millis(3000)).await;
    bank.set_behaviour(Behaviour::Normal);
    // A rising temperature that crosses the rule's limit (80) and stays above it.
    for t in [62.0, 66.0, 71.0, 77.0, 84.0, 90.0] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        set_pump_temp(&bank, 1, t);
    }
    agent.wait_for_log("alert raised", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let base = format!("http://127.0.0.1:{http}");
    let profile = dir.path().join("chromium-profile");
    let shots = std::env::var_os("FOREWARN_SCREENSHOTS").map(PathBuf::from);
    let checked = tokio::task::spawn_blocking(move || check_pages(&profile, &base, shots.as_deref())).await;
    drop(agent);
    if let Err(e) = checked {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Loads every page and checks what it rendered.
fn check_pages(profile: &Path, base: &str, shots: Option<&Path>) {
    let overview = dump_dom(profile, &format!("{base}/"));
    assert!(
        overview.contains("id=\"open-alerts\""),
        "no open alert on the overview:\n{overview}"
    );
    assert!(overview.contains("line1/pump1 / bearing-overheat"), "{overview}");
    assert!(overview.contains("pump1-plc"), "device missing:\n{overview}");
    assert!(overview.contains("<svg"), "no sparkline:\n{overview}");
    assert!(
        !polylines(&overview, None, 5).is_empty(),
        "sparklines without data:\n{overview}"
    );

    let sensor_url = format!("{base}/ui/sensor/pump1.bearing_temp?range=15m");
    let sensor = dump_dom(profile, &sensor_url);
    assert!(sensor.contains("id=\"history\"") && sensor.contains("<svg"), "{sensor}");
    assert!(
        !polylines(&sensor, Some("#1F77B4"), 10).is_empty(),
        "history without data:\n{sensor}"
    );
    // The device's failure: bad-quality samples, and the line broken there.
    assert!(
        !sensor.contains("bad-quality samples</td><td>0<"),
        "no bad samples:\n{sensor}"
    );
    assert!(
        polylines(&sensor, Some("#1F77B4"), 2).len() >= 2,
        "no gap at the failure:\n{sensor}"
    );
    let limit = polylines(&sensor, Some("#C81E1E"), 2);
    assert!(!limit.is_empty(), "no limit line:\n{sensor}");
    let ys: Vec<&str> = limit[0]
        .split_whitespace()
        .filter_map(|p| p.split(',').nth(1))
        .collect();
    assert!(
        ys.windows(2).all(|w| w[0] == w[1]),
        "the limit line is not level: {:?}",
        limit[0]
    );
    assert!(
        sensor.contains("bearing-overheat above 80"),
        "limit unlabelled:\n{sensor}"
    );
    for range in ["1h", "7d", "30d"] {
        let page = dump_dom(profile, &format!("{base}/ui/sensor/pump1.bearing_temp?range={range}"));
        assert!(
            !polylines(&page, Some("#1F77B4"), 2).is_empty(),
            "range {range} without data:\n{page}"
        );
    }

    let alert = dump_dom(profile, &format!("{base}/ui/alert/line1/pump1/bearing-overheat"));
    assert!(alert.contains("id=\"phase\">firing<"), "{alert}");
    assert!(
        !polylines(&alert, Some("#1F77B4"), 5).is_empty(),
        "alert window without data:\n{alert}"
    );
    assert!(alert.contains("incident start"), "{alert}");
    assert!(alert.contains("Messages waiting for the broker"), "{alert}");

    let models = dump_dom(profile, &format!("{base}/ui/models"));
    assert!(
        models.contains("<h1>Models</h1>") && models.contains("line1/pump1"),
        "{models}"
    );
    assert!(
        models.contains("pca") && models.contains("vectors from store"),
        "model file not shown:\n{models}"
    );
    let storage = dump_dom(profile, &format!("{base}/ui/storage"));
    assert!(
        storage.contains("id=\"disk-used\"") && storage.contains("raw retention"),
        "{storage}"
    );

    if let Some(dir) = shots {
        std::fs::create_dir_all(dir).expect("screenshot dir");
        let pages = [
            ("overview.png", format!("{base}/")),
            ("sensor.png", format!("{base}/ui/sensor/pump1.bearing_temp?range=1h")),
            ("alert.png", format!("{base}/ui/alert/line1/pump1/bearing-overheat")),
            ("storage.png", format!("{base}/ui/storage")),
            ("models.png", format!("{base}/ui/models")),
        ];
        for (name, url) in pages {
            let out = dir.join(name);
            let arg = format!("--screenshot={}", out.display());
            browse(profile, &[&arg, "--window-size=1100,900", "--hide-scrollbars"], &url);
            assert!(
                out.metadata().map(|m| m.len() > 1000).unwrap_or(false),
                "no screenshot {}",
                out.display()
            );
        }
    }
}

/// GET (or another method) of `target` from an in-process server; status and body.
fn fetch(addr: std::net::SocketAddr, method: &str, target: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Names from a config or a broker are text on every page, never markup; the pages
/// answer GET only and say why a sensor or a range is refused.
#[test]
fn pages_escape_names_and_refuse_what_they_do_not_serve() {
    use forewarn::base::sample::Sample;
    use forewarn::http::pages::{Limit, SiteAsset};
    use forewarn::http::{ApiState, Site};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = forewarn::store::Store::open(&dir.path().join("data"), Default::default()).unwrap();
    let evil = "<script>alert(1)</script>&\"x'";
    let id = store.sensor_id(evil).unwrap();
    let now = forewarn::base::time::now_ms();
    let batch: Vec<Sample> = (0..50)
        .map(|i| Sample::good(id, now - 50_000 + i * 1000, i as f64))
        .collect();
    store.append(&batch);
    store.flush().unwrap();
    let site = Site {
        assets: vec![SiteAsset {
            id: "<i>asset</i>".into(),
            sensors: vec![evil.into()],
            limits: vec![Limit {
                rule: "<b>hot</b>".into(),
                sensor: evil.into(),
                above: Some(40.0),
                below: None,
            }],
            model: None,
        }],
        raw_retention_ms: 86_400_000,
        ..Site::default()
    };
    let state = ApiState {
        agent: "<agent>".into(),
        store,
        stats: Arc::new(forewarn::stats::Stats::default()),
        data_dir: dir.path().join("data"),
        max_disk: 1 << 30,
        rollups: Vec::new(),
        site,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(forewarn::http::serve(listener, Arc::new(state)));

    let (status, overview) = fetch(addr, "GET", "/");
    assert_eq!(status, 200, "{overview}");
    assert!(
        !overview.contains("<script>") && !overview.contains("<agent>"),
        "{overview}"
    );
    assert!(
        overview.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&#39;"),
        "{overview}"
    );
    let target = format!("/ui/sensor/{}?range=15m", forewarn::http::percent_encode(evil));
    let (status, sensor) = fetch(addr, "GET", &target);
    assert_eq!(status, 200, "{sensor}");
    assert!(
        !sensor.contains("<b>hot</b>") && sensor.contains("&lt;b&gt;hot&lt;/b&gt; above 40"),
        "{sensor}"
    );
    assert!(sensor.contains("<polyline"), "{sensor}");

    assert_eq!(fetch(addr, "GET", "/ui/sensor/nope").0, 404);
    assert_eq!(fetch(addr, "GET", &target.replace("15m", "soon")).0, 400);
    assert_eq!(fetch(addr, "GET", "/ui/alert/line1/pump1/hot").0, 404);
    assert_eq!(fetch(addr, "HEAD", "/").0, 405);
    assert_eq!(fetch(addr, "POST", "/ui/storage").0, 405);
    for page in ["/ui/models", "/ui/storage"] {
        let (status, body) = fetch(addr, "GET", page);
        assert_eq!(status, 200, "{page}: {body}");
        assert!(body.contains("&lt;agent&gt;"), "{page}: {body}");
    }
}
