//! Training from labels, `eval --store`, versioned model files and retraining, on a real
//! store in a temporary directory and through the real binary:
//! - a model trained on the first regime alarms on a later healthy-but-different window;
//!   once that window is labelled false-alarm, `forewarn train` from the store learns it
//!   and `forewarn eval --store` shows no alarm in it (and no false alarms at all);
//! - each written model gets the next version and keeps the one it replaced; `forewarn
//!   model rollback` restores it, `model list` shows them;
//! - retraining keeps a worse candidate as a shadow and promotes a better one;
//! - `eval --store` on a store another process holds is a clear error.

use std::path::Path;
use std::process::{Command, Output};

use forewarn::base::label::{LabelKind, NewLabel};
use forewarn::base::sample::{Quality, Sample};
use forewarn::config::Config;
use forewarn::detect::model::Model;
use forewarn::detect::retrain::{retrain, Decision};
use forewarn::detect::versions;
use forewarn::store::{Store, StoreOptions};

/// Start of the generated history, ms.
const T0: i64 = 1_750_000_000_000;
/// Seconds of the first healthy regime, of the different regime after it, and of the
/// return to the first.
const FIRST: i64 = 1200;
const OTHER: i64 = 600;
const BACK: i64 = 600;

const ASSET: &str = "m1";

fn config(dir: &Path, model_extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[agent]
id = "t"
data_dir = "{data}"
[upstream]
broker = "mqtt://127.0.0.1:1"
[[modbus]]
device = "d"
address = "127.0.0.1:1"
  [[modbus.register]]
  sensor = "a"
  kind = "holding"
  address = 0
  type = "u16"
  [[modbus.register]]
  sensor = "b"
  kind = "holding"
  address = 1
  type = "u16"
  [[modbus.register]]
  sensor = "c"
  kind = "holding"
  address = 2
  type = "u16"
[[asset]]
id = "{ASSET}"
sensors = ["a", "b", "c"]
  [asset.model]
  drift_noise = 0.0
{model_extra}
"#,
        data = dir.join("data").display()
    );
    let name = if model_extra.is_empty() {
        "forewarn.toml"
    } else {
        "forewarn-tuned.toml"
    };
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// One second of the machine at `t` s: `a` and `b` follow a load; in the other regime `b`
/// runs 1.5 higher for the same load (a different but healthy operating point).
fn vector(rng: &mut fastrand::Rng, t: i64, other: bool) -> [f64; 3] {
    let load = (t as f64 / 40.0).sin();
    let shift = if other { 1.5 } else { 0.0 };
    [
        load + 0.05 * rng.f64(),
        2.0 * load + shift + 0.05 * rng.f64(),
        5.0 + 0.1 * rng.f64(),
    ]
}

/// Writes the three regimes into the store of `dir`, one vector a second.
fn write_history(dir: &Path) {
    let store = open_store(dir);
    let ids: Vec<_> = ["a", "b", "c"].iter().map(|s| store.sensor_id(s).unwrap()).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut batch = Vec::new();
    for t in 0..FIRST + OTHER + BACK {
        let other = (FIRST..FIRST + OTHER).contains(&t);
        for (id, v) in ids.iter().zip(vector(&mut rng, t, other)) {
            batch.push(Sample {
                sensor: *id,
                ts_ms: T0 + t * 1000,
                value: v,
                quality: Quality::Good,
            });
        }
        if batch.len() >= 450 {
            store.append(&batch);
            batch.clear();
        }
    }
    store.append(&batch);
    store.flush().unwrap();
}

fn label(dir: &Path, from_s: i64, to_s: i64, kind: LabelKind) {
    let store = open_store(dir);
    let l = NewLabel {
        asset: ASSET.into(),
        from_ms: T0 + from_s * 1000,
        to_ms: T0 + to_s * 1000,
        kind,
        note: None,
        author: "op".into(),
    };
    store.add_label(l, T0).unwrap();
}

/// The store of `dir`; sled releases a store's lock a moment after it is dropped.
fn open_store(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(&dir.join("data"), StoreOptions::default()) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn forewarn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(args)
        .output()
        .expect("run forewarn")
}

fn ok(args: &[&str]) -> String {
    let out = forewarn(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "forewarn {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `(FAR%, MAR%)` of the asset row of `eval --store`.
fn rates(eval: &str) -> (f64, f64) {
    let row = eval
        .lines()
        .find(|l| l.starts_with(ASSET))
        .unwrap_or_else(|| panic!("no row for the asset in\n{eval}"));
    let cells: Vec<f64> = row.split_whitespace().skip(1).map(|c| c.parse().unwrap()).collect();
    (cells[2], cells[3])
}

/// `(scored, alarmed)` of the first label line of `eval --store`.
fn label_rows(eval: &str) -> (usize, usize) {
    let line = eval
        .lines()
        .find(|l| l.starts_with("label "))
        .unwrap_or_else(|| panic!("no label line in\n{eval}"));
    let num = |marker: &str| -> usize {
        let head = line.split(marker).next().unwrap_or_default();
        head.rsplit(' ').next().unwrap_or_default().parse().unwrap()
    };
    (num(" scored rows"), num(" alarmed"))
}

fn time(s: i64) -> String {
    (T0 + s * 1000).to_string()
}

#[test]
fn a_false_alarm_label_is_learned_by_training_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    write_history(dir.path());

    let out = ok(&["train", "-c", cfg, "--asset", ASSET, "--to", &time(FIRST - 1)]);
    assert!(out.contains("version 1"), "{out}");
    let before = ok(&["eval", "--store", "-c", cfg, "--asset", ASSET]);
    let (far, _) = rates(&before);
    assert!(far > 10.0, "the first model alarms on the other regime:\n{before}");

    label(dir.path(), FIRST, FIRST + OTHER, LabelKind::FalseAlarm);
    let labelled = ok(&["eval", "--store", "-c", cfg, "--asset", ASSET]);
    let (scored, alarmed) = label_rows(&labelled);
    assert!(scored >= OTHER as usize - 2 && alarmed > scored / 2, "{labelled}");

    let out = ok(&["train", "-c", cfg, "--asset", ASSET]);
    assert!(
        out.contains("in false-alarm spans") && out.contains("version 2"),
        "{out}"
    );
    let after = ok(&["eval", "--store", "-c", cfg, "--asset", ASSET]);
    println!("before the label:\n{labelled}\nretrained with it:\n{after}");
    let (scored, alarmed) = label_rows(&after);
    assert!(scored > 0 && alarmed == 0, "the labelled window still alarms:\n{after}");
    assert_eq!(rates(&after).0, 0.0, "{after}");

    // The first model is kept; scored on the same history it still alarms there.
    let model_dir = dir.path().join("data/models");
    let v1 = model_dir.join("m1.v1.json");
    let old = ok(&[
        "eval",
        "--store",
        "-c",
        cfg,
        "--asset",
        ASSET,
        "--model",
        v1.to_str().unwrap(),
    ]);
    assert!(label_rows(&old).1 > 0 && old.contains("version 1"), "{old}");
}

#[test]
fn maintenance_is_never_learned_and_failures_feed_the_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    write_history(dir.path());
    // The other regime as maintenance: not learned, so the model alarms when it is back.
    label(dir.path(), FIRST, FIRST + OTHER, LabelKind::Maintenance);
    let out = ok(&["train", "-c", cfg, "--asset", ASSET]);
    assert!(
        out.contains(&format!("{} skipped in maintenance spans", OTHER)),
        "{out}"
    );
    let model = Model::load(&dir.path().join("data/models/m1.json")).unwrap();
    assert!(model.classifier.is_none());
    // Scored without the maintenance rows, it has no false alarms.
    let eval = ok(&["eval", "--store", "-c", cfg, "--asset", ASSET]);
    assert_eq!(rates(&eval).0, 0.0, "{eval}");
    assert_eq!(label_rows(&eval).0, 0, "maintenance rows are not scored:\n{eval}");

    // A few failure vectors are too few for a classifier: the training says so.
    label(dir.path(), 100, 105, LabelKind::Failure);
    let out = ok(&["train", "-c", cfg, "--asset", ASSET]);
    assert!(out.contains("healthy detector only"), "{out}");
    // Enough of them: a classifier.
    label(dir.path(), 200, 260, LabelKind::Failure);
    let out = ok(&["train", "-c", cfg, "--asset", ASSET]);
    assert!(out.contains("classifier:"), "{out}");
    let model = Model::load(&dir.path().join("data/models/m1.json")).unwrap();
    assert_eq!(model.version, 3);
    assert!(model.classifier.is_some_and(|c| c.training.failures >= 60));
}

#[test]
fn versions_are_kept_listed_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    write_history(dir.path());
    let out = forewarn(&["model", "rollback", "-c", cfg, "--asset", ASSET]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model file"));

    for _ in 0..versions::KEEP_VERSIONS + 2 {
        ok(&["train", "-c", cfg, "--asset", ASSET, "--to", &time(FIRST - 1)]);
    }
    let current = dir.path().join("data/models/m1.json");
    let last = versions::KEEP_VERSIONS as u64 + 2;
    assert_eq!(Model::load(&current).unwrap().version, last);
    let kept: Vec<u64> = versions::kept_versions(&current).unwrap().iter().map(|v| v.0).collect();
    assert_eq!(
        kept,
        (2..last).collect::<Vec<_>>(),
        "the last {} are kept",
        versions::KEEP_VERSIONS
    );

    let out = ok(&["model", "rollback", "-c", cfg, "--asset", ASSET]);
    assert!(out.contains(&format!("version {} is current again", last - 1)), "{out}");
    assert_eq!(Model::load(&current).unwrap().version, last - 1);
    ok(&["model", "rollback", "-c", cfg, "--asset", ASSET]);
    assert_eq!(Model::load(&current).unwrap().version, last - 2);
    let list = ok(&["model", "list", "-c", cfg, "--asset", ASSET]);
    let current_line = list.lines().find(|l| l.contains(" current ")).unwrap();
    assert!(current_line.trim_start().starts_with(&(last - 2).to_string()), "{list}");
    assert_eq!(
        list.lines().filter(|l| l.contains(" previous ")).count(),
        versions::KEEP_VERSIONS,
        "{list}"
    );

    // A new model after a rollback takes a number never used before.
    ok(&["train", "-c", cfg, "--asset", ASSET, "--to", &time(FIRST - 1)]);
    assert_eq!(Model::load(&current).unwrap().version, last + 1);
}

fn asset(cfg: &Path) -> (Config, forewarn::config::Asset) {
    let config = Config::load(cfg).unwrap();
    let a = config.asset.iter().find(|a| a.id == ASSET).unwrap().clone();
    (config, a)
}

#[test]
fn retraining_keeps_a_worse_candidate_as_shadow_and_promotes_a_better_one() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let cfg = config(dir.path(), "");
    ok(&[
        "train",
        "-c",
        cfg.to_str().unwrap(),
        "--asset",
        ASSET,
        "--to",
        &time(FIRST - 1),
    ]);
    label(dir.path(), FIRST, FIRST + OTHER, LabelKind::FalseAlarm);
    let end = T0 + (FIRST + OTHER + BACK) * 1000;

    // A tiny margin over the healthy statistics: more false alarms than the current model.
    let tight = config(dir.path(), "  factor = 0.2\n");
    let (config, a) = asset(&tight);
    let data = &config.agent.data_dir;
    let store = open_store(dir.path());
    let current_path = data.join("models/m1.json");
    // The current model alarms on the labelled window; the tight candidate everywhere.
    let o = retrain(&store, &a, data, T0 + FIRST * 1000, end).unwrap();
    let Decision::Shadow { reason } = &o.decision else {
        panic!("a worse candidate was promoted: {o:?}");
    };
    assert!(reason.contains("FAR"), "{reason}");
    assert!(o.candidate.far > o.current.as_ref().unwrap().far);
    assert_eq!(o.written, versions::shadow_path(&current_path));
    assert_eq!(
        Model::load(&current_path).unwrap().version,
        1,
        "the current model is untouched"
    );
    assert_eq!(Model::load(&o.written).unwrap().version, 2);

    // With the usual margin the candidate learns the labelled window: promoted.
    let (_, a) = asset(&cfg);
    let o = retrain(&store, &a, data, T0, end).unwrap();
    assert_eq!(o.decision, Decision::Promote, "{o:?}");
    assert!(o.candidate.far < o.current.as_ref().unwrap().far, "{o:?}");
    assert_eq!(o.written, current_path);
    assert_eq!(Model::load(&current_path).unwrap().version, 2);
    assert_eq!(
        Model::load(&versions::version_path(&current_path, 1)).unwrap().version,
        1
    );
    drop(store);

    let out = ok(&["model", "rollback", "-c", cfg.to_str().unwrap(), "--asset", ASSET]);
    assert!(out.contains("version 1 is current again"), "{out}");
    assert_eq!(Model::load(&current_path).unwrap().version, 1);
}

#[test]
fn eval_store_on_a_store_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let cfg = cfg.to_str().unwrap();
    write_history(dir.path());
    ok(&["train", "-c", cfg, "--asset", ASSET, "--to", &time(FIRST - 1)]);
    let held = open_store(dir.path());
    let out = forewarn(&["eval", "--store", "-c", cfg, "--asset", ASSET]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is the agent running? stop it first"), "{err}");
    drop(held);
    let out = forewarn(&["eval", "--store", "-c", cfg, "--asset", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no asset \"nope\""));
    let out = forewarn(&["eval", "-c", cfg, "--asset", ASSET]);
    assert!(!out.status.success(), "--asset without --store is refused");
}

#[test]
fn retraining_options_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let load = |extra: &str| match Config::load(&config(dir.path(), extra)) {
        Ok(c) => Ok(c.asset[0].model.clone().unwrap()),
        Err(e) => Err(e.to_string()),
    };
    let m = load("").unwrap();
    assert_eq!((m.retrain, m.retrain_history.to_string()), (None, "7d".to_string()));
    let m = load("  retrain = \"1d\"\n  retrain_history = \"3d\"\n").unwrap();
    assert_eq!(m.retrain.map(|d| d.as_duration().as_secs()), Some(86_400));
    let e = load("  retrain = \"500ms\"\n  retrain_history = \"10s\"\n").unwrap_err();
    assert!(
        e.contains("asset[0].model.retrain") && e.contains("shorter than 1s"),
        "{e}"
    );
    assert!(
        e.contains("asset[0].model.retrain_history") && e.contains("fewer than 30 periods"),
        "{e}"
    );
}
