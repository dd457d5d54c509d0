//! Models with a classifier of labelled failures: a forest trained on labelled history
//! catches a failure the healthy detector cannot see (every sensor at an ordinary value,
//! in a combination healthy operation never shows), through the model file and the same
//! scorer `run` and `eval` use; too few labelled failures is a clear error, from the
//! library and from `forewarn train --label-column`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use forewarn::detect::forest::Node;
use forewarn::detect::model::{Model, ModelError};
use forewarn::detect::scorer::Scorer;
use forewarn::detect::train::{self, train, TrainOptions};
use forewarn::detect::DetectError;

fn sensors() -> Vec<String> {
    vec!["x".into(), "x2".into(), "y".into(), "d".into()]
}

/// A rotating machine: `x` and `y` trace a circle (`x2` follows `x`), `d` is independent
/// noise. A labelled failure is a stall at the circle's centre: every sensor sits at its
/// healthy mean, well inside its range, which the healthy detector scores as normal; the
/// point is simply never visited while the machine runs. Returns vectors and labels.
fn machine(n: usize, stalls: &[(usize, usize)], seed: u64) -> (Vec<(i64, Vec<f64>)>, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let stalled = stalls.iter().any(|&(from, len)| i >= from && i < from + len);
            let (x, y) = if stalled {
                (0.0, 0.0)
            } else {
                let a = i as f64 / 40.0;
                (a.cos(), a.sin())
            };
            let noise = |rng: &mut fastrand::Rng| 0.02 * (rng.f64() - 0.5);
            let v = vec![
                x + noise(&mut rng),
                2.0 * x + noise(&mut rng),
                y + noise(&mut rng),
                3.0 + noise(&mut rng),
            ];
            ((i as i64 * 1000, v), u8::from(stalled))
        })
        .unzip()
}

/// Vectors during which the alarm was on, by index.
fn alarms(model: &Model, vectors: &[(i64, Vec<f64>)]) -> Vec<usize> {
    let mut scorer = Scorer::new(Arc::new(model.clone()));
    (0..vectors.len())
        .filter(|&i| scorer.step(Some(&vectors[i].1)).alarm)
        .collect()
}

#[test]
fn a_classifier_catches_a_learned_failure_the_healthy_model_misses() {
    let opts = TrainOptions::default();
    let stalls = [(700, 80), (1500, 80), (2300, 80), (3100, 80)];
    let (history, labels) = machine(4000, &stalls, 1);
    let model = train::train_labelled("m", &sensors(), &history, &labels, &opts, "test").unwrap();
    let c = model.classifier.as_ref().expect("a classifier");
    assert_eq!((c.training.rows, c.training.failures), (4000, 320));

    // Through the file: the classifier is stored, checked and read back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    model.save(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 1 << 20, "{size} bytes");
    let model = Model::load(&path).unwrap();

    // The healthy detector alone, fitted on the same healthy vectors.
    let healthy: Vec<(i64, Vec<f64>)> = history
        .iter()
        .zip(&labels)
        .filter(|(_, &l)| l == 0)
        .map(|(v, _)| v.clone())
        .collect();
    let plain = train("m", &sensors(), &healthy, &opts, "test").unwrap();
    assert!(plain.classifier.is_none());

    let (test, truth) = machine(1500, &[(1000, 150)], 2);
    assert_eq!(
        alarms(&plain, &test),
        Vec::<usize>::new(),
        "the healthy model sees nothing"
    );
    let raised = alarms(&model, &test);
    let first = raised.first().copied();
    // Within a minute: the moving mean has to fill with the stall, then three trees in four
    // have to agree.
    assert!(
        first.is_some_and(|i| (1000..1075).contains(&i)),
        "first alarm at {first:?}"
    );
    let false_alarms = raised.iter().filter(|&&i| truth[i] == 0 && i < 1000).count();
    assert_eq!(false_alarms, 0, "alarms before the stall: {raised:?}");
    assert!(raised.iter().filter(|&&i| truth[i] == 1).count() > 75, "{raised:?}");

    // The stall is named by the sensors that moved to the centre, not the bystander.
    let mut scorer = Scorer::new(Arc::new(model));
    for (_, v) in test.iter().take(1100) {
        scorer.step(Some(v));
    }
    let top = scorer.contributions(1);
    assert_ne!(top[0].0, "d", "{:?}", scorer.contributions(4));
}

#[test]
fn too_few_labelled_failures_and_broken_classifiers_are_clear_errors() {
    let (history, labels) = machine(600, &[(300, 6)], 3);
    let e = train::train_labelled("m", &sensors(), &history, &labels, &TrainOptions::default(), "t").unwrap_err();
    assert!(matches!(e, DetectError::TooFewFailures(6)), "{e}");

    // A stored split on a sensor the model does not have is refused at load.
    let (history, labels) = machine(800, &[(300, 60)], 4);
    let mut model = train::train_labelled("m", &sensors(), &history, &labels, &TrainOptions::default(), "t").unwrap();
    let json = model.to_json();
    assert!(Model::parse(&json, "ok.json").is_ok());
    let tree = &mut model.classifier.as_mut().unwrap().trees[0];
    tree[0] = Node::Split(9, 0.0, 1, 2, 0.5);
    let e = Model::parse(&model.to_json(), "bad.json").unwrap_err();
    assert!(matches!(e, ModelError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("classifier tree 0 node 0"), "{e}");
}

fn write_labelled_csv(path: &Path, failures: usize) {
    let mut text = String::from("time,pump1.bearing_temp,pump1.vibration,failing\n");
    let start = 1_700_000_000_000i64;
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..3000usize {
        let failing = i >= 2000 && i < 2000 + failures;
        let temp = if failing { 63.0 } else { 60.0 } + 0.3 * rng.f64();
        let vib = 1.2 + 0.1 * rng.f64();
        text += &format!("{},{temp:.3},{vib:.3},{}\n", start + i as i64 * 200, u8::from(failing));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn train_with_a_label_column_adds_a_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("forewarn.toml");
    let model_section = "\n  [asset.model]\n  period = \"200ms\"\n  window = 3\n";
    let text = common::pump_config(&dir.path().join("data"), 1502, 1883, 100, 200) + model_section;
    std::fs::write(&cfg, text).unwrap();
    let csv = dir.path().join("h.csv");
    let out_path = dir.path().join("m.json");
    let train = |label: &str| {
        Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["train", "--config", cfg.to_str().unwrap(), "--asset", "line1/pump1"])
            .args(["--csv", csv.to_str().unwrap(), "--out", out_path.to_str().unwrap()])
            .args(["--label-column", label])
            .output()
            .expect("run forewarn")
    };

    write_labelled_csv(&csv, 5);
    let out = train("failing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("only 5 vectors labelled as failure"), "{err}");
    let out = train("nope");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no label column \"nope\""));
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replacen(",0\n", ",maybe\n", 1)).unwrap();
    let err = String::from_utf8_lossy(&train("failing").stderr).into_owned();
    assert!(err.contains("h.csv:2: label") && err.contains("is not 0 or 1"), "{err}");

    write_labelled_csv(&csv, 200);
    let out = train("failing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("classifier: 3000 labelled vectors, 200 labelled failure"),
        "{stdout}"
    );
    let model = Model::load(&out_path).unwrap();
    assert_eq!(
        model.training.vectors, 2800,
        "the healthy detector saw the healthy rows only"
    );
    assert!(model.classifier.is_some());
}
