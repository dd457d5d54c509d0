//! The training command of the CLI: `train` a machine's model on its history (the store,
//! with the operators' labels applied, or a CSV file, optionally labelled), as the next
//! version of its model file. Evaluation is `eval_cli`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use forewarn::base::time::parse_time;
use forewarn::config::{Asset, Config, Dur, Period};
use forewarn::detect::history::{self, History};
use forewarn::detect::model::Model;
use forewarn::detect::resample::Resampler;
use forewarn::detect::train::{self, train, TrainOptions};
use forewarn::detect::versions;
use forewarn::store::Store;

/// Where `train` reads healthy history.
pub enum TrainSource {
    Store {
        from: Option<String>,
        to: Option<String>,
    },
    Csv {
        path: PathBuf,
        sep: char,
        time_column: Option<String>,
        /// A 0/1 failure label column: the healthy detector is fitted on rows labelled 0,
        /// and a classifier on all rows.
        label_column: Option<String>,
    },
}

pub(crate) fn asset<'a>(config: &'a Config, id: &str) -> Result<&'a Asset> {
    config.asset.iter().find(|a| a.id == id).ok_or_else(|| {
        let ids: Vec<&str> = config.asset.iter().map(|a| a.id.as_str()).collect();
        anyhow::anyhow!("no asset {id:?} in the config; assets: {}", ids.join(", "))
    })
}

pub fn train_cmd(config_path: &Path, asset_id: &str, source: TrainSource, out: Option<&Path>) -> Result<ExitCode> {
    let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let asset = asset(&config, asset_id)?;
    let Some(mc) = &asset.model else {
        bail!("asset {asset_id:?} has no [asset.model] section; add one (see config/forewarn.toml) so the agent loads the model");
    };
    let path = out.map_or_else(|| mc.path(&config.agent.data_dir, &asset.id), Path::to_path_buf);
    let started = Instant::now();
    let (mut model, complete, total) = match source {
        TrainSource::Store { from, to } => {
            let (from, to) = range(from, to)?;
            let store = open_stopped_store(&config)?;
            let history = History::read(&store, &asset.id, &asset.sensors, from, to)?;
            let opts = history.train_options(mc);
            let clocked = history.clock(opts.period_ms, opts.max_hold);
            let (model, set) = clocked.train(&asset.id, &asset.sensors, &opts, "store", &|_| false)?;
            println!("{}", set.describe());
            (model, set.healthy, set.ticks)
        }
        TrainSource::Csv {
            path,
            sep,
            time_column,
            label_column,
        } => {
            let (rows, labels) = from_csv(
                &path,
                sep,
                time_column.as_deref(),
                label_column.as_deref(),
                &asset.sensors,
            )?;
            let opts = history::train_options(mc, rows.iter().map(|r| (r.1, r.0)), asset.sensors.len());
            let (vectors, tick_labels, total) = vectors(&rows, labels, asset.sensors.len(), &opts);
            let label = path.display().to_string();
            let model = match &tick_labels {
                None => train(&asset.id, &asset.sensors, &vectors, &opts, &label),
                Some(l) => train::train_labelled(&asset.id, &asset.sensors, &vectors, l, &opts, &label),
            }
            .with_context(|| format!("training the model of {}", asset.id))?;
            (model, vectors.len(), total)
        }
    };
    let saved = versions::save_version(&mut model, &path)?;
    print_model(&model, &asset.id, complete, total, &path, started);
    print_clock(&model, mc.period);
    match &saved.kept {
        Some(kept) => println!(
            "version {}; the model it replaces is kept as {} (`forewarn model rollback` restores it)",
            saved.version,
            kept.display()
        ),
        None => println!("version {}", saved.version),
    }
    Ok(ExitCode::SUCCESS)
}

/// Complete vectors `(ts_ms, values)` on the model's clock, their labels, and how many
/// ticks there were in all (complete or not).
type Vectors = (Vec<(i64, Vec<f64>)>, Option<Vec<u8>>, usize);

/// The complete vectors of `rows` on the model's clock.
fn vectors(rows: &[Row], labels: Option<Vec<(i64, u8)>>, sensors: usize, opts: &TrainOptions) -> Vectors {
    let mut r = Resampler::new(sensors, opts.period_ms, opts.max_hold);
    let mut ticks = Vec::new();
    for (ts, j, v) in rows {
        r.push(*j, *ts, *v, &mut ticks);
    }
    r.finish(&mut ticks);
    let total = ticks.len();
    ticks.retain(|t| t.values.is_some());
    let tick_labels = labels.map(|l| train::tick_labels(&ticks, &l, opts.period_ms));
    let vectors = ticks
        .into_iter()
        .filter_map(|t| t.values.map(|v| (t.ts_ms, v)))
        .collect();
    (vectors, tick_labels, total)
}

/// What `train` tells its user: the data, the drifting sensors, thresholds and classifier.
fn print_model(model: &Model, asset: &str, complete: usize, total: usize, path: &Path, started: Instant) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "model of {} ({} detector, {} sensors): {} complete vectors of {} ({} skipped as incomplete), {} .. {}",
        asset,
        model.detector.kind().as_str(),
        model.sensors.len(),
        complete,
        total,
        total - complete,
        forewarn::base::sample::rfc3339_ms(model.training.from_ms),
        forewarn::base::sample::rfc3339_ms(model.training.to_ms),
    );
    let drifting: Vec<&str> = model
        .sensors
        .iter()
        .zip(model.scaler.drifting(model.features.drift_noise))
        .filter(|(_, d)| *d)
        .map(|(s, _)| s.as_str())
        .collect();
    println!(
        "drifting sensors (their baseline follows them, also while alarmed): {}",
        if drifting.is_empty() {
            "none".to_string()
        } else {
            drifting.join(", ")
        }
    );
    println!(
        "thresholds {:?}; written to {} ({size} bytes) in {:.2} s",
        model.thresholds,
        path.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(c) = &model.classifier {
        let bytes = serde_json::to_string(c).map_or(0, |j| j.len());
        println!(
            "classifier: {} labelled vectors, {} labelled failure, {} fitted on; {} trees, {} nodes, {bytes} bytes of the file; threshold {}",
            c.training.rows,
            c.training.failures,
            c.training.fitted,
            c.trees.len(),
            c.nodes(),
            c.threshold
        );
    }
    println!("a running agent loads it on SIGHUP (systemctl reload forewarn) or at its next start");
}

/// The clock and the trend `train` chose: an `auto` period and whether the training was
/// long enough for trend thresholds.
fn print_clock(model: &Model, period: Period) {
    let how = match period {
        Period::Auto => "auto: the slowest sensor's typical sampling interval",
        Period::Every(_) => "as configured",
    };
    println!("period {} ({how})", Dur::from_millis(model.period_ms as u64));
    let window = Dur::from_millis(model.features.trend_ms.max(0) as u64);
    if model.features.trend_ms <= 0 {
        println!("trend: off");
    } else if model.scaler.trend.is_empty() {
        println!(
            "trend over {window}: not calibrated (the training must span {} windows); scored without it",
            forewarn::detect::trend::MIN_WINDOWS
        );
    } else {
        let daily = if model.scaler.trend_daily.is_empty() {
            "not calibrated (needs a day more of training)".to_string()
        } else {
            format!("{:?}", model.scaler.trend_daily)
        };
        println!(
            "trend over {window} (thresholds in healthy standard deviations): change {:?}, change against the day before {daily}",
            model.scaler.trend
        );
    }
}

type Row = (i64, usize, Option<f64>);

/// `--from`/`--to` as ms; the whole history where absent.
pub(crate) fn range(from: Option<String>, to: Option<String>) -> Result<(i64, i64)> {
    let time = |t: Option<String>, default: i64| -> Result<i64> {
        match t {
            None => Ok(default),
            Some(t) => parse_time(&t).with_context(|| format!("{t:?} is not a time (RFC 3339 or epoch ms)")),
        }
    };
    Ok((time(from, i64::MIN)?, time(to, i64::MAX)?))
}

/// The store of a stopped agent, for training and evaluating on its history.
pub(crate) fn open_stopped_store(config: &Config) -> Result<Store> {
    crate::history::open_store(
        config,
        "is the agent running? stop it first: the store allows one process",
    )
}

/// Labels `(ts_ms, 0/1)` of a CSV file, in time order, when it has a label column.
type Labels = Option<Vec<(i64, u8)>>;

fn from_csv(
    path: &Path,
    sep: char,
    time_column: Option<&str>,
    label_column: Option<&str>,
    sensors: &[String],
) -> Result<(Vec<Row>, Labels)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("{}: empty file: expected a header line", path.display());
    };
    let cols: Vec<String> = header
        .split(sep)
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let ti = match time_column {
        None => 0,
        Some(t) => cols
            .iter()
            .position(|c| c == t)
            .with_context(|| format!("{}: no time column {t:?}", path.display()))?,
    };
    let label_index = label_column
        .map(|l| {
            cols.iter()
                .position(|c| c == l)
                .with_context(|| format!("{}: no label column {l:?} (--label-column)", path.display()))
        })
        .transpose()?;
    let mut labels = Vec::new();
    let mut index = Vec::new();
    for name in sensors {
        let found = cols
            .iter()
            .position(|c| c == name || forewarn::source::csv::sensor_name("", c) == *name);
        match found {
            Some(i) => index.push(i),
            None => bail!(
                "{}: no column for sensor {name:?}; the header has {} (is the separator {sep:?} right? --sep)",
                path.display(),
                cols.join(&sep.to_string())
            ),
        }
    }
    let mut rows = Vec::new();
    let mut bad_times = 0;
    for (n, line) in lines {
        let cells: Vec<&str> = line.split(sep).map(str::trim).collect();
        let Some(ts) = cells.get(ti).and_then(|t| parse_time(t.trim_matches('"'))) else {
            bad_times += 1;
            if bad_times <= 10 {
                tracing::warn!(file = %path.display(), line = n + 1, "time does not parse; row skipped");
            }
            continue;
        };
        if let Some(li) = label_index {
            match cells.get(li).and_then(|c| c.trim_matches('"').parse::<f64>().ok()) {
                Some(v) if v == 0.0 || v == 1.0 => labels.push((ts, v as u8)),
                _ => bail!("{}:{}: label {:?} is not 0 or 1", path.display(), n + 1, cells.get(li)),
            }
        }
        for (j, &i) in index.iter().enumerate() {
            let v = cells
                .get(i)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|v| v.is_finite());
            rows.push((ts, j, v));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    labels.sort_by_key(|l| l.0);
    Ok((rows, label_index.map(|_| labels)))
}
