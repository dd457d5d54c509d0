//! Model files and model options, unhappy paths included: a model round-trips through its
//! file and scores the same; a missing file, a corrupt file, another format version or
//! other sensors are clear errors; `forewarn check` rejects bad `[asset.model]` options and
//! a broken asset tree with file, line and key; `eval --format csv` scores a user's
//! labelled history and writes one prediction per scored row.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use forewarn::config::Config;
use forewarn::detect::model::{Model, ModelError};
use forewarn::detect::scorer::Scorer;
use forewarn::detect::train::{train, TrainOptions};

fn sensors() -> Vec<String> {
    vec!["a".into(), "b".into(), "c".into()]
}

/// Three sensors, the first two following one load, the third independent.
fn healthy(n: usize) -> Vec<(i64, Vec<f64>)> {
    let mut rng = fastrand::Rng::with_seed(3);
    (0..n)
        .map(|i| {
            let load = (i as f64 / 40.0).sin();
            (
                i as i64 * 1000,
                vec![
                    load + 0.05 * rng.f64(),
                    2.0 * load + 0.05 * rng.f64(),
                    5.0 + 0.1 * rng.f64(),
                ],
            )
        })
        .collect()
}

/// `a` and `b` follow the load with almost no noise, which by default makes them drifting
/// sensors (their baseline follows their level); these tests are about their correlation,
/// so no sensor is treated as drifting.
fn options() -> TrainOptions {
    let mut o = TrainOptions::default();
    o.features.drift_noise = 0.0;
    o
}

#[test]
fn a_model_round_trips_and_catches_a_broken_correlation() {
    let model = train("line1/m1", &sensors(), &healthy(600), &options(), "test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models/m1.json");
    model.save(&path).unwrap();
    let back = Model::load(&path).unwrap();
    assert_eq!(back, model);
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);

    let mut scorer = Scorer::new(Arc::new(back));
    let mut raised = 0;
    for (_, v) in healthy(300) {
        raised += usize::from(scorer.step(Some(&v)).alarm);
    }
    assert_eq!(raised, 0, "no alarm on healthy data");
    // Sensor b no longer follows the load.
    let mut first = None;
    for (i, (_, mut v)) in healthy(100).into_iter().enumerate() {
        v[1] = 6.0;
        if scorer.step(Some(&v)).alarm && first.is_none() {
            first = Some(i);
        }
    }
    assert!(first.is_some_and(|i| i < 20), "alarm after {first:?} vectors");
    assert_eq!(scorer.contributions(1)[0].0, "b");
    // An incomplete vector is not scored.
    assert_eq!(scorer.step(None).score, None);
}

#[test]
fn unusable_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Model::load(&dir.path().join("none.json")).unwrap_err();
    assert!(matches!(missing, ModelError::Io { .. }), "{missing}");

    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"format\": 1, \"asset\": ").unwrap();
    assert!(Model::load(&corrupt)
        .unwrap_err()
        .to_string()
        .contains("not a forewarn model"));

    let model = train("line1/m1", &sensors(), &healthy(100), &TrainOptions::default(), "test").unwrap();
    let old = dir.path().join("old.json");
    std::fs::write(&old, model.to_json().replacen("\"format\":1", "\"format\":0", 1)).unwrap();
    assert!(matches!(
        Model::load(&old).unwrap_err(),
        ModelError::Format { found: 0, .. }
    ));

    let short = dir.path().join("short.json");
    std::fs::write(
        &short,
        model.to_json().replacen("\"thresholds\":[", "\"thresholds\":[1.0,", 1),
    )
    .unwrap();
    assert!(Model::load(&short).unwrap_err().to_string().contains("thresholds"));

    let err = model
        .check_asset("m.json", "line1/m1", &["a".into(), "c".into(), "b".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trained on sensors") && err.contains("train it again"),
        "{err}"
    );
    assert!(model.check_asset("m.json", "line1/m2", &sensors()).is_err());
    assert!(train("x", &sensors(), &healthy(10), &TrainOptions::default(), "t").is_err());
}

const BASE: &str = r#"
[agent]
id = "t"
[upstream]
broker = "mqtt://127.0.0.1:1883"
[[modbus]]
device = "d"
address = "127.0.0.1:502"
  [[modbus.register]]
  sensor = "a"
  kind = "holding"
  address = 0
  type = "u16"
[[asset]]
id = "line1"
[[asset]]
id = "line1/m1"
parent = "line1"
sensors = ["a"]
"#;

fn problems(extra: &str) -> String {
    match Config::parse(&format!("{BASE}{extra}"), Path::new("f.toml")) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn check_rejects_bad_model_options_and_asset_trees() {
    assert_eq!(problems("  [asset.model]\n  window = 5\n"), "");
    let e = problems(
        "  [asset.model]\n  window = 0\n  alarm_k = 9\n  alarm_n = 5\n  quantile = 1.5\n  detector = \"svm\"\n",
    );
    assert!(e.contains("detector"), "{e}");
    let e = problems(
        "  [asset.model]\n  window = 0\n  alarm_k = 9\n  alarm_n = 5\n  quantile = 1.5\n  drift_noise = 1.5\n  drift_adapt = -0.1\n  classifier_threshold = 0.0\n",
    );
    for key in [
        "asset[1].model.window",
        "asset[1].model.alarm_k",
        "asset[1].model.quantile",
        "asset[1].model.drift_noise",
        "asset[1].model.drift_adapt",
        "asset[1].model.classifier_threshold",
    ] {
        assert!(e.contains(key), "{key} in {e}");
    }
    assert!(e.contains("f.toml:"), "names the file and line: {e}");
    let e = problems("[[asset]]\nid = \"x\"\nparent = \"nowhere\"\n");
    assert!(e.contains("asset[2].parent") && e.contains("unknown parent"), "{e}");
    let e = problems("[[asset]]\nid = \"p\"\nparent = \"q\"\n[[asset]]\nid = \"q\"\nparent = \"p\"\n");
    assert!(e.contains("the asset tree has a cycle"), "{e}");
    // The model's alarm is named like a rule of its asset, or re-notifies too often.
    let e = problems(
        "  [[asset.rule]]\n  name = \"model\"\n  sensor = \"a\"\n  above = 1.0\n  [asset.model]\n  renotify = \"100ms\"\n",
    );
    for key in ["asset[1].model.name", "asset[1].model.renotify"] {
        assert!(e.contains(key), "{key} in {e}");
    }
    assert_eq!(
        problems("  [[asset.rule]]\n  name = \"model\"\n  sensor = \"a\"\n  above = 1.0\n  [asset.model]\n  name = \"pca\"\n  renotify = \"1h\"\n"),
        ""
    );
}

#[test]
fn eval_scores_a_labelled_csv_and_writes_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("history.csv");
    let mut text = String::from("time,a,b,label\n");
    let start = 1_700_000_000i64;
    for (i, (_, v)) in healthy(1000).into_iter().enumerate() {
        let fault = (600..800).contains(&i);
        let b = if fault { v[1] + 3.0 } else { v[1] };
        text += &format!("{},{},{},{}\n", (start + i as i64) * 1000, v[0], b, u8::from(fault));
    }
    std::fs::write(&csv, text).unwrap();
    let preds = dir.path().join("pred.csv");
    // The training covers the whole load cycle, so the baseline stays where it was trained,
    // also while alarmed (a baseline that follows the load would read the next swing as a
    // deviation).
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["eval", "--format", "csv", "--label-column", "label"])
        .args(["--drift-noise", "0", "--adapt", "0", "--adapt-alarm", "0", "--data"])
        .arg(&csv)
        .arg("--predictions")
        .arg(&preds)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let pooled = stdout.lines().find(|l| l.starts_with("pooled")).expect("a pooled line");
    let f1: f64 = pooled.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(f1 > 0.8, "{stdout}");
    let written = std::fs::read_to_string(&preds).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines[0], "file,datetime,pred_anomaly");
    assert_eq!(lines.len(), 1 + 600);
    assert!(lines[1].starts_with(&format!("history.csv,{},", (start + 400) * 1000)));

    std::fs::write(&csv, "time,a,label\n1,x,0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["eval", "--format", "csv", "--label-column", "label", "--data"])
        .arg(&csv)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("history.csv:2") && err.contains("not a number"),
        "{err}"
    );
}
