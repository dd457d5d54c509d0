//! The evaluation commands of the CLI: `eval` scores the modelling on labelled history
//! (SKAB files, or the user's own CSV) through the same streaming scorer the agent runs,
//! per file, per group and for the worst group, or cross-validates the choice of settings
//! (`--cv`); `eval --store` scores an asset's model on the gateway's own labelled history.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use forewarn::config::{Config, Dur, Period};
use forewarn::detect::detector::DetectorKind;
use forewarn::detect::eval::cv;
use forewarn::detect::eval::{self, CsvLayout, FileResult};
use forewarn::detect::forest;
use forewarn::detect::history::History;
use forewarn::detect::model::Model;
use forewarn::detect::resample;
use forewarn::detect::skab::{self, FilePredictions, GroupBy, Score};
use forewarn::detect::train::TrainOptions;

use crate::predict_cli::{asset, open_stopped_store, range};

/// The layout of `eval`'s labelled files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    /// SKAB's `;`-separated files with `anomaly` and `changepoint` columns.
    Skab,
    /// A time column, one column per sensor and a 0/1 label column.
    Csv,
}

/// Options of `eval` beyond the data.
pub struct EvalArgs {
    pub format: EvalFormat,
    pub data: PathBuf,
    pub predictions: Option<PathBuf>,
    pub layout: CsvLayout,
    pub tuning: Tuning,
    /// Add a classifier per file, fitted on the labelled rows of the other files.
    pub classifier: bool,
    /// How files are grouped for the per-group rows and the worst group.
    pub group_by: GroupBy,
    /// Cross-validate the choice of settings instead, holding out one such group at a time.
    pub cv: Option<GroupBy>,
}

/// The tuning flags of `eval`, over the defaults of `[asset.model]`.
#[derive(Debug, clap::Args)]
pub struct Tuning {
    /// Share of the classifier's trees that must vote "failure" (default as
    /// [asset.model] classifier_threshold).
    #[arg(long)]
    classifier_threshold: Option<f64>,
    /// Detector (default as [asset.model]).
    #[arg(long, value_enum)]
    detector: Option<DetectorKind>,
    /// Moving-mean window, periods.
    #[arg(long)]
    window: Option<u32>,
    /// PCA: explained variance of the kept components.
    #[arg(long)]
    variance: Option<f64>,
    /// Threshold quantile of healthy statistics.
    #[arg(long)]
    quantile: Option<f64>,
    /// Threshold margin on that quantile.
    #[arg(long)]
    factor: Option<f64>,
    /// Share of the training rows held back to calibrate the thresholds on (0: in-sample).
    #[arg(long)]
    calibration: Option<f64>,
    /// Baseline adaptation per period while healthy.
    #[arg(long)]
    adapt: Option<f64>,
    /// Baseline adaptation per period while alarmed.
    #[arg(long)]
    adapt_alarm: Option<f64>,
    /// Noise share below which a sensor drifts (its baseline always follows it).
    #[arg(long)]
    drift_noise: Option<f64>,
    /// Baseline adaptation per period of a drifting sensor.
    #[arg(long)]
    drift_adapt: Option<f64>,
    /// Raise on k over-threshold periods of the last n.
    #[arg(long)]
    alarm_k: Option<u32>,
    #[arg(long)]
    alarm_n: Option<u32>,
    /// Minimum alarm length, periods.
    #[arg(long)]
    min_duration: Option<u32>,
    /// Period of the common clock: a duration, or `auto` (the files' typical sampling
    /// interval, as `[asset.model] period = "auto"`). Default: `auto` with `--format csv`,
    /// 1s for SKAB's 1 Hz files.
    #[arg(long)]
    period: Option<Period>,
}

impl Tuning {
    /// The options for scoring `files`: the `[asset.model]` defaults on the resolved
    /// period, under the flags.
    pub fn options_for(&self, files: &[skab::LabelledFile], format: EvalFormat) -> TrainOptions {
        let defaults = forewarn::config::ModelConfig::default();
        let period_ms = match self.period {
            Some(Period::Auto) => auto_period(files),
            None if format == EvalFormat::Csv => auto_period(files),
            None => None,
            Some(Period::Every(d)) => Some((d.as_duration().as_millis() as i64).max(1)),
        };
        match period_ms {
            Some(p) => self.options_on(defaults.train_options_every(p)),
            None => self.options(),
        }
    }

    pub fn options(&self) -> TrainOptions {
        self.options_on(TrainOptions::default())
    }

    fn options_on(&self, mut o: TrainOptions) -> TrainOptions {
        o.detector = self.detector.unwrap_or(o.detector);
        o.features.window = self.window.unwrap_or(o.features.window).max(1);
        o.variance = self.variance.unwrap_or(o.variance);
        o.quantile = self.quantile.unwrap_or(o.quantile);
        o.factor = self.factor.unwrap_or(o.factor);
        o.calibration = self.calibration.unwrap_or(o.calibration).clamp(0.0, 0.5);
        o.features.adapt_alarm = self.adapt_alarm.unwrap_or(o.features.adapt_alarm);
        o.features.adapt = self.adapt.unwrap_or(o.features.adapt);
        o.features.drift_noise = self.drift_noise.unwrap_or(o.features.drift_noise);
        o.features.drift_adapt = self.drift_adapt.unwrap_or(o.features.drift_adapt);
        o.alarm.k = self.alarm_k.unwrap_or(o.alarm.k);
        o.alarm.n = self.alarm_n.unwrap_or(o.alarm.n).max(o.alarm.k);
        o.alarm.min_duration = self.min_duration.unwrap_or(o.alarm.min_duration);
        o.classifier_threshold = self
            .classifier_threshold
            .unwrap_or(o.classifier_threshold)
            .clamp(f64::MIN_POSITIVE, 1.0);
        o
    }
}

/// The typical sampling interval of labelled files, as `period = "auto"` finds it.
fn auto_period(files: &[skab::LabelledFile]) -> Option<i64> {
    let samples = files
        .iter()
        .flat_map(|f| f.ts_s.iter().map(|t| (0, t.saturating_mul(1000))));
    resample::auto_period_ms(samples, 1)
}

pub fn eval_cmd(args: EvalArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let files = match args.format {
        EvalFormat::Skab => eval::read_skab_dir(&args.data)?,
        EvalFormat::Csv => eval::list_csv(&args.data)?
            .iter()
            .map(|(p, n)| eval::read_labelled_history(p, n, &args.layout))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let options = args.tuning.options_for(&files, args.format);
    if let Some(by) = args.cv {
        if args.classifier {
            bail!("--cv chooses among the healthy-model settings; it does not combine with --classifier");
        }
        return cv_cmd(&files, &options, by, started);
    }
    let results = if args.classifier {
        eval::evaluate_leave_one_out(files, &options, skab::TRAIN_ROWS)?
    } else {
        eval::evaluate(files, &options, skab::TRAIN_ROWS)?
    };
    if let Some(p) = &args.predictions {
        write_predictions(p, &results).with_context(|| format!("writing {}", p.display()))?;
    }
    println!(
        "{} (train on the first {} rows of each file)",
        describe(&options),
        skab::TRAIN_ROWS
    );
    if args.classifier {
        println!(
            "classifier: leave-one-file-out (each file's model adds a forest of {} trees fitted on the labelled rows of all the other files; threshold {})",
            forest::TREES,
            options.classifier_threshold
        );
    }
    print_header("file");
    let mut pooled = Vec::new();
    for r in &results {
        let p = FilePredictions::from_alarms(&r.file.name, r.pred.clone());
        print_row(&r.file.name, &skab::score_file(&r.file, &p));
        pooled.push((r.file.clone(), p));
    }
    let total = skab::score_predictions(&pooled);
    print_row("pooled", &total);
    let groups = skab::group_scores(&pooled, args.group_by);
    print_header(&format!("group ({})", args.group_by.as_str()));
    for (g, s) in &groups {
        print_row(g, s);
    }
    print_worst(skab::worst(&groups).as_ref());
    println!(
        "changepoints {}, missed {}, false changepoint detections {}; {:.1} s",
        total.changepoints,
        total.missed_changepoints,
        total.false_cp_detections,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The settings of a run, on one line.
fn describe(o: &TrainOptions) -> String {
    format!(
        "period {} detector {} window {} variance {} quantile {} factor {} calibration {} adapt {:.4}/{} drift {}/{} alarm {}/{} min {}",
        Dur::from_millis(o.period_ms.max(0) as u64),
        o.detector.as_str(),
        o.features.window,
        o.variance,
        o.quantile,
        o.factor,
        o.calibration,
        o.features.adapt,
        o.features.adapt_alarm,
        o.features.drift_noise,
        o.features.drift_adapt,
        o.alarm.k,
        o.alarm.n,
        o.alarm.min_duration,
    )
}

/// `eval --cv`: the grid, each fold's choice and held-out score, then pooled and worst.
fn cv_cmd(files: &[skab::LabelledFile], base: &TrainOptions, by: GroupBy, started: Instant) -> Result<ExitCode> {
    let grid = cv::candidates(base);
    let r = cv::cross_validate(files, &grid, by, skab::TRAIN_ROWS)?;
    println!(
        "grouped cross-validation, one {} held out at a time; objective: worst training folder's 50*F1 + 0.5*Standard - (its FAR% - {}) when above",
        by.as_str(),
        cv::FAR_BUDGET
    );
    for (i, (c, o)) in grid.iter().zip(&r.objective_all).enumerate() {
        println!(
            "candidate {i} {:<20} objective on all files {o:>7.2}: {}",
            c.name,
            describe(&c.options)
        );
    }
    println!(
        "{:<24} {:<20} {:>9} {:>5} {:>6} {:>6} {:>6} {:>8} {:>7} {:>7}",
        "held out", "chosen", "objective", "rows", "F1", "FAR%", "MAR%", "Standard", "LowFP", "LowFN"
    );
    for f in &r.folds {
        let s = &f.score;
        println!(
            "{:<24} {:<20} {:>9.2} {:>5} {:>6.3} {:>6.2} {:>6.2} {:>8.2} {:>7.2} {:>7.2}",
            f.held_out,
            grid[f.chosen].name,
            f.objective,
            s.test_rows,
            s.f1,
            s.far,
            s.mar,
            s.nab_standard,
            s.nab_low_fp,
            s.nab_low_fn
        );
    }
    print_header("held out, all folds");
    print_row("pooled", &r.pooled);
    print_worst(r.worst.as_ref());
    println!("{:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn print_header(first: &str) {
    println!(
        "{first:<24} {:>5} {:>6} {:>6} {:>6} {:>8} {:>7} {:>7}",
        "rows", "F1", "FAR%", "MAR%", "Standard", "LowFP", "LowFN"
    );
}

/// The worst-group row, then which group each of its figures came from.
fn print_worst(w: Option<&skab::Worst>) {
    let Some(w) = w else {
        return;
    };
    println!(
        "{:<24} {:>5} {:>6.3} {:>6.2} {:>6.2} {:>8.2} {:>7.2} {:>7.2}",
        "worst group",
        "",
        w.f1.value,
        w.far.value,
        w.mar.value,
        w.nab_standard.value,
        w.nab_low_fp.value,
        w.nab_low_fn.value
    );
    println!(
        "  from: F1 {}, FAR {}, MAR {}, Standard {}, LowFP {}, LowFN {}",
        w.f1.group, w.far.group, w.mar.group, w.nab_standard.group, w.nab_low_fp.group, w.nab_low_fn.group
    );
}

fn print_row(name: &str, s: &Score) {
    println!(
        "{name:<24} {:>5} {:>6.3} {:>6.2} {:>6.2} {:>8.2} {:>7.2} {:>7.2}",
        s.test_rows, s.f1, s.far, s.mar, s.nab_standard, s.nab_low_fp, s.nab_low_fn
    );
}

fn write_predictions(path: &Path, results: &[FileResult]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "file,datetime,pred_anomaly")?;
    for r in results {
        let start = r.file.rows() - r.file.test_rows();
        for (i, p) in r.pred.iter().enumerate() {
            writeln!(w, "{},{},{}", r.file.name, r.file.times[start + i], p)?;
        }
    }
    w.flush()
}

/// What `eval --store` scores: an asset's model on the gateway's own labelled history.
pub struct StoreEval {
    pub config: PathBuf,
    pub asset: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The model file; the asset's current model when `None`.
    pub model: Option<PathBuf>,
}

/// `eval --store`: replays the asset's stored history through the model's live scorer
/// and scores its alarms against the labels (anomaly = failure label, maintenance not
/// scored), with the SKAB metrics `eval` prints for labelled files, then how much of each
/// label's span alarmed.
pub fn eval_store_cmd(args: StoreEval) -> Result<ExitCode> {
    let started = Instant::now();
    let config = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let asset = asset(&config, &args.asset)?;
    let path = match (&args.model, &asset.model) {
        (Some(p), _) => p.clone(),
        (None, Some(mc)) => mc.path(&config.agent.data_dir, &asset.id),
        (None, None) => bail!(
            "asset {:?} has no [asset.model] section and no --model was given",
            asset.id
        ),
    };
    let shown = path.display().to_string();
    let model = Model::load(&path).and_then(|m| m.check_asset(&shown, &asset.id, &asset.sensors).map(|()| m))?;
    let (from, to) = range(args.from, args.to)?;
    let store = open_stopped_store(&config)?;
    let history = History::read(&store, &asset.id, &asset.sensors, from, to)?;
    let clocked = history.clock(model.period_ms, model.max_hold);
    let eval = clocked.evaluate(&asset.id, &asset.sensors, &model);
    let ts =
        |i: Option<&(i64, Option<Vec<f64>>)>| i.map_or_else(|| "-".into(), |t| forewarn::base::sample::rfc3339_ms(t.0));
    println!(
        "model {shown} version {} ({} detector); history {} .. {}: {} ticks, {} scored (complete, not in maintenance)",
        model.version,
        model.detector.kind().as_str(),
        ts(clocked.ticks.first()),
        ts(clocked.ticks.last()),
        clocked.ticks.len(),
        eval.rows.len()
    );
    print_header("asset");
    print_row(&asset.id, &eval.score);
    let (first, last) = (
        clocked.ticks.first().map_or(0, |t| t.0),
        clocked.ticks.last().map_or(0, |t| t.0),
    );
    for label in history
        .labels
        .iter()
        .filter(|l| l.overlaps(first, last + clocked.period_ms))
    {
        let (rows, alarmed) = eval.in_span(&clocked, label);
        println!(
            "label {} {} {} .. {}: {rows} scored rows, {alarmed} alarmed",
            label.id,
            label.span.kind,
            forewarn::base::sample::rfc3339_ms(label.span.from_ms),
            forewarn::base::sample::rfc3339_ms(label.span.to_ms),
        );
    }
    println!(
        "changepoints {}, missed {}, false changepoint detections {}; {:.1} s",
        eval.score.changepoints,
        eval.score.missed_changepoints,
        eval.score.false_cp_detections,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
