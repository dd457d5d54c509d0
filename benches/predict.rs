//! Failure-prediction costs: per-sample scoring latency for an 8-sensor machine, model file
//! size, and training time on 24 h of 1 Hz history, for every detector, and for a PCA
//! model with a random-forest classifier trained on the same day with ~5 % of it labelled
//! as failure (`forewarn train --label-column`). Run with `cargo bench --bench predict`;
//! figures go to the README's "Measured" table.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use forewarn::detect::detector::DetectorKind;
use forewarn::detect::model::Model;
use forewarn::detect::resample::{Resampler, Tick};
use forewarn::detect::scorer::Scorer;
use forewarn::detect::train::{self, train, TrainOptions};

/// 8 correlated sensors with noise, one vector per second.
fn history(n: usize) -> Vec<(i64, Vec<f64>)> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            let load = (i as f64 / 600.0).sin();
            let v = (0..8)
                .map(|j| 10.0 * j as f64 + load * (1.0 + j as f64 * 0.1) + 0.1 * (rng.f64() - 0.5))
                .collect();
            (i as i64 * 1000, v)
        })
        .collect()
}

/// Labels of `history(n)` after failures were written into it: the last 100 s of every
/// 2000 s (5 %), during which two sensors drift apart from the load.
fn add_failures(day: &mut [(i64, Vec<f64>)]) -> Vec<(i64, u8)> {
    day.iter_mut()
        .enumerate()
        .map(|(i, (ts, v))| {
            let failing = i % 2000 >= 1900;
            if failing {
                v[3] += 0.3;
                v[5] -= 0.2;
            }
            (*ts, u8::from(failing))
        })
        .collect()
}

/// Complete vectors of raw history, resampled as `forewarn train` does.
fn resample(day: &[(i64, Vec<f64>)], opts: &TrainOptions) -> Vec<Tick> {
    let mut r = Resampler::new(8, opts.period_ms, opts.max_hold);
    let mut ticks = Vec::new();
    for (ts, v) in day {
        for (j, x) in v.iter().enumerate() {
            r.push(j, *ts, Some(*x), &mut ticks);
        }
    }
    r.finish(&mut ticks);
    ticks.retain(|t| t.values.is_some());
    ticks
}

fn vectors(ticks: Vec<Tick>) -> Vec<(i64, Vec<f64>)> {
    ticks
        .into_iter()
        .filter_map(|t| t.values.map(|v| (t.ts_ms, v)))
        .collect()
}

/// Prints one row: training time, scoring cost per sample on `probe`, model file size.
fn report(name: &str, train_s: f64, model: Model, probe: &[(i64, Vec<f64>)]) {
    let size = model.to_json().len();
    let mut scorer = Scorer::new(Arc::new(model));
    let t0 = Instant::now();
    let mut alarms = 0u64;
    for (_, v) in probe {
        alarms += u64::from(black_box(scorer.step(Some(v))).alarm);
    }
    let per = t0.elapsed().as_secs_f64() / probe.len() as f64;
    black_box(alarms);
    println!("{name:<12} {train_s:>12.3} s {:>13.2} µs {size:>8} bytes", per * 1e6);
}

fn main() {
    // `cargo test --all-targets` runs this too (without `--bench`): a short smoke run there.
    let full = std::env::args().any(|a| a == "--bench");
    let (day_n, probe_n) = if full { (86_400, 200_000) } else { (2_000, 2_000) };
    let sensors: Vec<String> = (0..8).map(|j| format!("m.s{j}")).collect();
    let day = history(day_n);
    let probe = history(probe_n);
    println!(
        "{:<12} {:>14} {:>16} {:>14}",
        "detector",
        if full { "train 24h 1Hz" } else { "train (smoke)" },
        "score/sample",
        "model file"
    );
    for kind in [
        DetectorKind::Pca,
        DetectorKind::Mahalanobis,
        DetectorKind::Mset,
        DetectorKind::Ewma,
    ] {
        let opts = TrainOptions {
            detector: kind,
            ..TrainOptions::default()
        };
        let t0 = Instant::now();
        // From raw samples, as `forewarn train` does: resample, then fit and calibrate.
        let vectors = vectors(resample(&day, &opts));
        let model = train("m", &sensors, &vectors, &opts, "bench").expect("train");
        report(kind.as_str(), t0.elapsed().as_secs_f64(), model, &probe);
    }
    let opts = TrainOptions::default();
    let mut day = day;
    let labels = add_failures(&mut day);
    let t0 = Instant::now();
    let ticks = resample(&day, &opts);
    let tick_labels = train::tick_labels(&ticks, &labels, opts.period_ms);
    let vectors = vectors(ticks);
    let model = train::train_labelled("m", &sensors, &vectors, &tick_labels, &opts, "bench").expect("train");
    let c = model.classifier.as_ref().expect("classifier");
    let summary = format!(
        "forest: {} trees, {} nodes, fitted on {} of {} vectors ({} labelled failure)",
        c.trees.len(),
        c.nodes(),
        c.training.fitted,
        c.training.rows,
        c.training.failures
    );
    report("pca+forest", t0.elapsed().as_secs_f64(), model, &probe);
    println!("{summary}");
}
