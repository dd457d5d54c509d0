//! Slow sensors with the default model options: a bearing temperature read every 5 minutes
//! that follows the ambient day (a daily cycle several times its noise, with day-to-day
//! weather) and whose failure builds over hours. `forewarn train --csv` trains on healthy
//! days and chooses the clock from the data; the model file is then replayed sample by
//! sample through the resampler and scorer the agent runs. A creep up, and one down, must
//! alarm before the failure at every time of day; the healthy sensor must not alarm in a
//! week.

use std::f64::consts::TAU;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use forewarn::config::Config;
use forewarn::detect::model::Model;
use forewarn::detect::resample::Resampler;
use forewarn::detect::scorer::Scorer;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Sampling interval of the temperature.
const STEP: i64 = 5 * MINUTE;
/// Monday 2026-01-05 00:00 UTC.
const START: i64 = 1_767_571_200_000;
/// Healthy days the model is trained on.
const TRAIN_DAYS: i64 = 4;

const CONFIG: &str = r#"
[agent]
id = "t"
[upstream]
broker = "mqtt://127.0.0.1:1883"
[[modbus]]
device = "d"
address = "127.0.0.1:502"
  [[modbus.register]]
  sensor = "fan1.bearing_temp"
  kind = "holding"
  address = 0
  type = "u16"
[[asset]]
id = "fan1"
sensors = ["fan1.bearing_temp"]
  [asset.model]
"#;

/// A healthy bearing temperature: 55 °C, ±1 °C over the day (coolest at 05:00, ±10 %
/// from day to day), weather that moves the level by up to ±0.4 °C over days, and noise
/// of 0.25 °C standard deviation (the sum of three uniforms). Seeded.
struct Bearing {
    rng: fastrand::Rng,
    /// Per day: amplitude of the daily cycle and the weather offset at midnight.
    days: Vec<(f64, f64)>,
}

impl Bearing {
    fn new(seed: u64, days: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let days = (0..=days)
            .map(|_| (1.0 + 0.2 * (rng.f64() - 0.5), 0.8 * (rng.f64() - 0.5)))
            .collect();
        Bearing { rng, days }
    }

    fn healthy(&mut self, ts: i64) -> f64 {
        let t = (ts - START) as f64 / DAY as f64;
        let d = (t.floor() as usize).min(self.days.len() - 2);
        let frac = t - d as f64;
        let (amp, w0) = self.days[d];
        let w1 = self.days[d + 1].1;
        let weather = w0 + (w1 - w0) * frac;
        let daily = -amp * (TAU * (frac - 5.0 / 24.0) + TAU / 4.0).sin();
        let noise = (self.rng.f64() + self.rng.f64() + self.rng.f64() - 1.5) * 0.5;
        55.0 + daily + weather + noise
    }
}

/// Writes `(ts, value)` as a CSV file with a time column.
fn write_csv(path: &Path, rows: &[(i64, f64)]) {
    let mut text = String::from("time,fan1.bearing_temp\n");
    for (ts, v) in rows {
        text += &format!("{ts},{v:.2}\n");
    }
    std::fs::write(path, text).unwrap();
}

/// `forewarn train --csv` on `TRAIN_DAYS` healthy days of `bearing`, with
/// `model_options` added to `[asset.model]`; the model file is `dir/fan1.json`.
fn run_train(dir: &Path, bearing: &mut Bearing, model_options: &str) -> std::process::Output {
    let config = dir.join("forewarn.toml");
    std::fs::write(&config, format!("{CONFIG}  {model_options}\n")).unwrap();
    let rows: Vec<(i64, f64)> = (0..TRAIN_DAYS * DAY / STEP)
        .map(|i| {
            let ts = START + i * STEP;
            (ts, bearing.healthy(ts))
        })
        .collect();
    let csv = dir.join("healthy.csv");
    write_csv(&csv, &rows);
    Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["train", "--asset", "fan1", "--config"])
        .arg(&config)
        .arg("--csv")
        .arg(&csv)
        .arg("--out")
        .arg(dir.join("fan1.json"))
        .output()
        .unwrap()
}

/// [`run_train`] that must succeed: the model and what train printed.
fn train(dir: &Path, bearing: &mut Bearing, model_options: &str) -> (Model, String) {
    let out = run_train(dir, bearing, model_options);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (Model::load(&dir.join("fan1.json")).unwrap(), stdout)
}

/// Replays samples `(ts, value)` through the agent's resampler and scorer; returns the
/// times of raised alarms and the sensor named first at the first one.
fn replay(model: &Model, samples: impl Iterator<Item = (i64, f64)>) -> (Vec<i64>, Option<String>) {
    let mut resampler = Resampler::new(1, model.period_ms, model.max_hold);
    let mut scorer = Scorer::new(Arc::new(model.clone()));
    let (mut ticks, mut raised, mut named, mut was) = (Vec::new(), Vec::new(), None, false);
    for (ts, v) in samples {
        resampler.push(0, ts, Some(v), &mut ticks);
        for t in ticks.drain(..) {
            let alarm = scorer.step(t.values.as_deref()).alarm;
            if alarm && !std::mem::replace(&mut was, alarm) {
                raised.push(t.ts_ms);
                if named.is_none() {
                    named = scorer.contributions(1).first().map(|c| c.0.clone());
                }
            }
            was = alarm;
        }
    }
    (raised, named)
}

/// Healthy from the end of training for `days_before` days up to `onset`, then the
/// temperature creeps by `total` °C over `ramp` ms; the failure is at `onset + ramp`.
/// Returns (first alarm - failure) in ms, or `None` for no alarm before the failure, and
/// the alarms during the healthy days.
fn creep(model: &Model, seed: u64, onset: i64, ramp: i64, total: f64) -> (Option<i64>, Vec<i64>, Option<String>) {
    let mut bearing = Bearing::new(seed, 30);
    let from = START + TRAIN_DAYS * DAY;
    let failure = onset + ramp;
    let samples = (0..).map(|i| from + i * STEP).take_while(|ts| *ts < failure).map(|ts| {
        let fault = total * ((ts - onset) as f64 / ramp as f64).clamp(0.0, 1.0);
        (ts, bearing.healthy(ts) + fault)
    });
    let (raised, named) = replay(model, samples);
    let (before, after): (Vec<i64>, Vec<i64>) = raised.into_iter().partition(|t| *t < onset);
    (after.first().map(|t| t - failure), before, named)
}

#[test]
fn a_creep_up_or_down_over_hours_alarms_before_the_failure_at_any_time_of_day() {
    let dir = tempfile::tempdir().unwrap();
    let (model, printed) = train(dir.path(), &mut Bearing::new(1, 30), "");
    assert_eq!(model.period_ms, STEP, "{printed}");
    assert!(printed.contains("period 5m (auto"), "{printed}");
    assert_eq!(model.scaler.trend.len(), 1, "trend calibrated: {printed}");
    // A bearing running hot: +3 °C over 4 h, and a cooling fault: -3 °C over 4 h, the
    // failure at 2 days plus each of 6 times of the day after the training.
    let mut leads = Vec::new();
    for (k, total) in [3.0, -3.0].into_iter().enumerate() {
        for hour in [2, 6, 10, 14, 18, 22] {
            let ramp = 4 * HOUR;
            let onset = START + (TRAIN_DAYS + 2) * DAY + hour * HOUR - ramp;
            let (lead, early, named) = creep(&model, 10 + k as u64 * 100 + hour as u64, onset, ramp, total);
            assert!(
                early.is_empty(),
                "{total} °C at {hour}h: alarms while healthy at {early:?}"
            );
            let lead = lead.unwrap_or_else(|| panic!("{total} °C, failure at {hour}h: no alarm before it"));
            assert!(lead < 0, "{lead}");
            assert_eq!(named.as_deref(), Some("fan1.bearing_temp"));
            leads.push(-lead / MINUTE);
        }
    }
    println!("alarm lead before the failure, minutes: {leads:?}");
    // Without the trend the drifting temperature's baseline follows the creep: missed.
    let (flat, _) = train(dir.path(), &mut Bearing::new(1, 30), "trend_window = \"0s\"");
    let onset = START + (TRAIN_DAYS + 2) * DAY + 10 * HOUR;
    assert_eq!(creep(&flat, 20, onset, 4 * HOUR, 3.0).0, None);
}

#[test]
fn a_healthy_temperature_with_daily_cycles_does_not_alarm_in_a_week() {
    let dir = tempfile::tempdir().unwrap();
    let (model, printed) = train(dir.path(), &mut Bearing::new(2, 30), "");
    assert!(!model.scaler.trend.is_empty(), "{printed}");
    for seed in [3, 4, 5] {
        let mut bearing = Bearing::new(seed, 30);
        let from = START + TRAIN_DAYS * DAY;
        let week = (0..7 * DAY / STEP).map(|i| {
            let ts = from + i * STEP;
            (ts, bearing.healthy(ts))
        });
        let (raised, _) = replay(&model, week);
        assert!(raised.is_empty(), "seed {seed}: alarms at {raised:?}");
    }
}

#[test]
fn an_explicit_period_is_kept_and_a_short_training_has_no_trend() {
    let dir = tempfile::tempdir().unwrap();
    let (model, printed) = train(dir.path(), &mut Bearing::new(6, 30), "period = \"10m\"");
    assert_eq!(model.period_ms, 10 * MINUTE, "{printed}");
    assert!(printed.contains("period 10m (as configured)"), "{printed}");
    // A 1 s clock on 5-minute data: most vectors are incomplete (a value is held for
    // `max_hold` periods only).
    let (model, printed) = train(dir.path(), &mut Bearing::new(6, 30), "period = \"1s\"");
    assert_eq!(model.period_ms, 1000);
    assert!(model.training.vectors < 7 * 1152, "{printed}");
    assert!(printed.contains("skipped as incomplete"), "{printed}");
    // Trend off: no trend thresholds.
    let (model, printed) = train(dir.path(), &mut Bearing::new(6, 30), "trend_window = \"0s\"");
    assert!(
        model.scaler.trend.is_empty() && printed.contains("trend: off"),
        "{printed}"
    );
    // A window longer than a third of the training is not calibrated.
    let (model, printed) = train(dir.path(), &mut Bearing::new(6, 30), "trend_window = \"2d\"");
    assert!(model.scaler.trend.is_empty(), "{printed}");
    assert!(printed.contains("not calibrated"), "{printed}");
}

#[test]
fn bad_period_and_trend_options_are_refused() {
    let problems = |options: &str| match Config::parse(&format!("{CONFIG}  {options}\n"), Path::new("f.toml")) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        problems("period = \"auto\"\n  trend_window = \"6h\"\n  trend_factor = 2.0"),
        ""
    );
    assert!(problems("period = \"fast\"").contains("\"auto\""));
    let e = problems("period = \"2h\"\n  trend_window = \"1m\"\n  trend_factor = 0.5");
    for key in ["model.period", "model.trend_window", "model.trend_factor"] {
        assert!(e.contains(key), "{key} in {e}");
    }
}

/// `forewarn eval --format csv` on slow history: it finds the period itself (5m), so the
/// creep is scored and alarmed; on a forced 1 s clock no vector is ever complete.
#[test]
fn eval_of_a_labelled_slow_csv_resolves_the_period_and_sees_the_creep() {
    let dir = tempfile::tempdir().unwrap();
    let mut bearing = Bearing::new(9, 10);
    let (onset, failure) = (START + 5 * DAY + 9 * HOUR, START + 5 * DAY + 13 * HOUR);
    let mut text = String::from("time,fan1.bearing_temp,failing\n");
    for i in 0..(6 * DAY / STEP) {
        let ts = START + i * STEP;
        let creep = if (onset..failure).contains(&ts) {
            3.0 * (ts - onset) as f64 / (failure - onset) as f64
        } else {
            0.0
        };
        let label = u8::from((onset..failure).contains(&ts));
        text += &format!("{ts},{:.2},{label}\n", bearing.healthy(ts) + creep);
    }
    let csv = dir.path().join("slow.csv");
    std::fs::write(&csv, text).unwrap();
    let eval = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
            .args(["eval", "--format", "csv", "--label-column", "failing", "--data"])
            .arg(&csv)
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let pooled = stdout.lines().find(|l| l.starts_with("pooled")).unwrap().to_string();
        let mar: f64 = pooled.split_whitespace().nth(4).unwrap().parse().unwrap();
        (stdout, mar)
    };
    let (auto, mar) = eval(&[]);
    assert!(auto.starts_with("period 5m "), "{auto}");
    assert!(mar < 80.0, "the creep is mostly missed: {auto}");
    let (fixed, mar) = eval(&["--period", "1s"]);
    assert!(fixed.starts_with("period 1s "), "{fixed}");
    assert_eq!(mar, 100.0, "{fixed}");
}

/// The figures of the README ("Slow sensors"): the largest score over two healthy weeks
/// for six seeds, and the alarm lead for other creeps at six times of day. Run with
/// `cargo test --test slow_failures -- --ignored --nocapture`.
#[test]
#[ignore]
fn figures() {
    let dir = tempfile::tempdir().unwrap();
    let (model, printed) = train(dir.path(), &mut Bearing::new(1, 30), "");
    println!("{printed}");
    for seed in [3, 4, 5, 6, 7, 8] {
        let mut bearing = Bearing::new(seed, 30);
        let mut resampler = Resampler::new(1, model.period_ms, model.max_hold);
        let mut scorer = Scorer::new(Arc::new(model.clone()));
        let (mut ticks, mut max) = (Vec::new(), 0.0f64);
        for i in 0..(14 * DAY / STEP) {
            let ts = START + TRAIN_DAYS * DAY + i * STEP;
            resampler.push(0, ts, Some(bearing.healthy(ts)), &mut ticks);
            for t in ticks.drain(..) {
                max = max.max(scorer.step(t.values.as_deref()).score.unwrap_or(0.0));
            }
        }
        println!("seed {seed}: largest score over two healthy weeks {max:.3}");
        assert!(max < 1.0);
    }
    for (total, hours) in [(3.0, 4), (-3.0, 4), (3.0, 8), (-3.0, 8), (2.0, 4), (2.0, 6), (5.0, 6)] {
        let mut leads = Vec::new();
        for hour in [2, 6, 10, 14, 18, 22] {
            let ramp = hours * HOUR;
            let onset = START + (TRAIN_DAYS + 2) * DAY + hour * HOUR - ramp;
            let (lead, early, _) = creep(&model, 10 + hour as u64, onset, ramp, total);
            assert!(early.is_empty());
            leads.push(lead.map(|l| -l / MINUTE));
        }
        println!("{total:+} °C over {hours} h: alarm minutes before the failure {leads:?}");
    }
}
