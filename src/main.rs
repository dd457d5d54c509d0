//! The `forewarn` command line, the top layer: it parses arguments (clap checks their
//! shape, the config layer their meaning) and calls the library.
//!
//! - `run`: the daemon; `check`: validate a config and summarise it;
//! - `poll --once` / `--probe`: read Modbus devices once, for commissioning;
//! - `query`, `import`, `store-stats`: the local history, through the running agent or on
//!   the stopped store;
//! - `train`, `eval`: failure-prediction models and their evaluation on labelled files;
//!   `model list | rollback`: the versions of a model file;
//! - `demo`: a simulated plant, a broker and the agent in one process;
//! - `passwd`: add or change a user of the HTTP API (`[http] users_file`);
//! - `label`, `labels`: the operator's labels (false alarm, failure, maintenance).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use forewarn::config::{Config, RegisterKind, DEFAULT_CONFIG_PATH};

mod check_cli;
mod eval_cli;
mod history;
mod label_cli;
mod model_cli;
mod passwd_cli;
mod predict_cli;

#[derive(Parser)]
#[command(
    name = "forewarn",
    version,
    about = "Edge agent: reads plant sensors, keeps their history, raises alerts upstream"
)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive); overrides RUST_LOG.
    #[arg(long, global = true, env = "FOREWARN_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: poll the configured devices, store samples, publish alerts.
    Run {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate a config file; print a summary, or every problem with file, line and key.
    Check {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Print stored samples (raw, or aggregated with --every) as JSON lines or CSV. Asks the
    /// running agent over its HTTP API, or reads the store directly when it is stopped.
    Query {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Sensor names; `*` and `?` are wildcards.
        #[arg(long, default_value = "*")]
        sensor: String,
        /// Start, RFC 3339 (`2026-11-30T00:00:00Z`) or epoch ms; default: the beginning.
        #[arg(long)]
        from: Option<String>,
        /// End (inclusive); default: now and later.
        #[arg(long)]
        to: Option<String>,
        /// Aggregate into intervals (min, max, mean, count), e.g. `1m`.
        #[arg(long)]
        every: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QueryFormat::Jsonl)]
        format: QueryFormat,
    },
    /// Load history into the store (the agent must be stopped): a wide CSV file, or an
    /// archive directory written by retention.
    Import {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// CSV file: a time column and one column per sensor, named by its header.
        #[arg(long, conflicts_with = "archive", required_unless_present = "archive")]
        csv: Option<PathBuf>,
        /// Name of the time column (default: the first column).
        #[arg(long)]
        time_column: Option<String>,
        /// Column separator.
        #[arg(long, default_value = ",")]
        sep: char,
        /// Prefix for sensor names, e.g. `pump7.`.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Archive directory (storage.archive_dir) to restore.
        #[arg(long)]
        archive: Option<PathBuf>,
    },
    /// Disk use, samples, bytes per sample, time span per sensor and projected coverage.
    StoreStats {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Train a machine's failure-prediction model on healthy history: the store (agent
    /// stopped; operator labels applied: false-alarm spans healthy, failure spans for the
    /// classifier, maintenance skipped) or a CSV file with one column per sensor. The model
    /// it replaces is kept as the previous version.
    Train(TrainArgs),
    /// Evaluate failure prediction on labelled history: per file, train on its first 400
    /// rows, replay the rest through the live scorer, print F1, FAR, MAR and NAB scores.
    Eval(Box<EvalArgs>),
    /// The versions of an asset's model file: list them, or roll back to the previous one.
    #[command(subcommand)]
    Model(model_cli::ModelCommand),
    /// Commissioning: read every configured register once and print one JSON line per
    /// sensor (sensor, device, value, quality, raw registers in hex); or, with --probe,
    /// show every type and byte order of a few registers. Exits 3 if a value is not good.
    #[command(group(clap::ArgGroup::new("mode").required(true).args(["once", "probe"])))]
    Poll {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Read every register once, then exit.
        #[arg(long)]
        once: bool,
        /// Read COUNT registers of DEVICE from ADDRESS (in the device's address base) and
        /// print every type/byte-order interpretation.
        #[arg(long, num_args = 3, value_names = ["DEVICE", "ADDRESS", "COUNT"])]
        probe: Option<Vec<String>>,
        /// Table read by --probe.
        #[arg(long, value_enum, default_value_t = RegisterKind::Holding, requires = "probe")]
        table: RegisterKind,
    },
    /// Run a simulated plant, an embedded broker and the agent in one process; alerts are
    /// printed on stdout as JSON lines.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Add USER to the HTTP API's users file FILE, or change their password and role; the
    /// password is asked for (hidden on a terminal) or read from standard input.
    Passwd {
        /// The users file (`[http] users_file`); created with mode 0600 if missing.
        file: PathBuf,
        /// The user name (no ':', '#' or blanks).
        user: String,
        /// What the user may do: viewer reads, operator also runs actions.
        #[arg(long, value_enum, default_value_t = passwd_cli::RoleArg::Viewer)]
        role: passwd_cli::RoleArg,
        /// Read the password from the first line of standard input without prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Label a span of an asset's history: a false alarm, a real failure, or maintenance
    /// (its alerts are suppressed; may lie ahead, for a planned stop). Through the running
    /// agent's HTTP API, or on the stopped store. `--remove ID` takes a label back.
    Label(LabelArgs),
    /// List the labels (of one asset with --asset), through the agent or on the store.
    Labels {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Only the labels of this asset.
        #[arg(long)]
        asset: Option<String>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        credentials: label_cli::Credentials,
    },
}

/// The arguments of `label`.
#[derive(clap::Args)]
struct LabelArgs {
    /// Config file.
    #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// The asset (an `[[asset]]` id).
    #[arg(long, required_unless_present = "remove")]
    asset: Option<String>,
    /// Start of the span, RFC 3339 (`2026-12-01T14:00:00Z`) or epoch ms.
    #[arg(long, required_unless_present = "remove")]
    from: Option<String>,
    /// End of the span (exclusive); may lie in the future.
    #[arg(long, required_unless_present = "remove")]
    to: Option<String>,
    /// What the span was.
    #[arg(long = "as", value_enum, required_unless_present = "remove")]
    kind: Option<forewarn::base::label::LabelKind>,
    /// A note for whoever reads it later.
    #[arg(long)]
    note: Option<String>,
    /// Who says so (default: $USER); with users on the API, the user is the author.
    #[arg(long)]
    author: Option<String>,
    /// Remove the label with this id instead (a label made by mistake).
    #[arg(long, conflicts_with_all = ["asset", "from", "to", "kind", "note", "author"])]
    remove: Option<u64>,
    #[command(flatten)]
    credentials: label_cli::Credentials,
}

/// The arguments of `train`.
#[derive(clap::Args)]
struct TrainArgs {
    /// Config file.
    #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// The asset (machine) whose model to train; it needs an [asset.model] section.
    #[arg(long)]
    asset: String,
    /// Start of the healthy history in the store, RFC 3339 or epoch ms.
    #[arg(long, conflicts_with = "csv")]
    from: Option<String>,
    /// End of the healthy history in the store (inclusive).
    #[arg(long, conflicts_with = "csv")]
    to: Option<String>,
    /// Healthy history as CSV: a time column and a column named after each sensor.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// CSV column separator.
    #[arg(long, default_value = ",")]
    sep: char,
    /// Name of the CSV time column (default: the first column).
    #[arg(long)]
    time_column: Option<String>,
    /// A 0/1 failure label column of the CSV: fit the healthy detector on rows
    /// labelled 0 and a random-forest classifier on all rows.
    #[arg(long, requires = "csv")]
    label_column: Option<String>,
    /// Write the model here instead of the asset's model file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The arguments of `eval`.
#[derive(clap::Args)]
struct EvalArgs {
    /// `skab` (SKAB's `;`-separated files) or `csv` (time, sensors, a 0/1 label).
    #[arg(long, value_enum, default_value_t = eval_cli::EvalFormat::Skab)]
    format: eval_cli::EvalFormat,
    /// Directory of labelled files (or one CSV file with --format csv).
    #[arg(long, required_unless_present = "store")]
    data: Option<PathBuf>,
    /// Score an asset's model on the labelled history in the store instead (the agent
    /// must be stopped): anomaly = failure label, maintenance spans not scored.
    #[arg(long, requires = "asset", conflicts_with = "data")]
    store: bool,
    /// --store: config file.
    #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// --store: the asset whose model to score.
    #[arg(long, requires = "store")]
    asset: Option<String>,
    /// --store: start of the history, RFC 3339 or epoch ms (default: the beginning).
    #[arg(long, requires = "store")]
    from: Option<String>,
    /// --store: end of the history (inclusive; default: the end).
    #[arg(long, requires = "store")]
    to: Option<String>,
    /// --store: the model file to score (default: the asset's current model).
    #[arg(long, requires = "store")]
    model: Option<PathBuf>,
    /// Write `file,datetime,pred_anomaly` for every scored row to this CSV.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// --format csv: column separator.
    #[arg(long, default_value = ",")]
    sep: char,
    /// --format csv: time column (default: the first column).
    #[arg(long)]
    time_column: Option<String>,
    /// --format csv: the 0/1 label column.
    #[arg(long, default_value = "anomaly")]
    label_column: String,
    /// Add a random-forest classifier to each file's model, fitted on the labelled rows
    /// of all the other files (leave-one-file-out).
    #[arg(long)]
    classifier: bool,
    /// Group files for the per-group rows and the worst group: by top folder or each file.
    #[arg(long, value_enum, default_value_t = forewarn::detect::skab::GroupBy::Folder)]
    group_by: forewarn::detect::skab::GroupBy,
    /// Grouped cross-validation of the choice of settings: hold out one folder (or file)
    /// at a time, choose among a fixed grid on the others, score the held-out one. Tuning
    /// flags set what the grid does not vary.
    #[arg(long, value_enum)]
    cv: Option<forewarn::detect::skab::GroupBy>,
    /// Model options over the defaults of `[asset.model]`.
    #[command(flatten)]
    tuning: eval_cli::Tuning,
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        // The demo's embedded broker logs every connection and subscription at info.
        .unwrap_or_else(|| EnvFilter::new("info,rumqttd=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // journald adds its own timestamps; keep one event per line either way.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<ExitCode> {
    match command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
        Command::Poll {
            config,
            once: _,
            probe,
            table,
        } => poll(&config, probe.as_deref(), table),
        Command::Demo { duration } => demo(duration.map(Duration::from_secs)),
        Command::Passwd {
            file,
            user,
            role,
            password_stdin,
        } => passwd_cli::passwd(&file, &user, role, password_stdin),
        Command::Query {
            config,
            sensor,
            from,
            to,
            every,
            format,
        } => {
            let mut params = vec![("sensor", sensor), ("format", format.as_str().to_string())];
            params.extend(from.map(|v| ("from", v)));
            params.extend(to.map(|v| ("to", v)));
            params.extend(every.map(|v| ("every", v)));
            history::query(&config, &params)
        }
        Command::Import {
            config,
            csv,
            time_column,
            sep,
            prefix,
            archive,
        } => {
            let opts = forewarn::source::csv::CsvOptions {
                time_column,
                separator: sep,
                prefix,
            };
            history::import(&config, csv.as_deref(), archive.as_deref(), &opts)
        }
        Command::StoreStats { config } => history::store_stats(&config),
        Command::Train(args) => train(args),
        Command::Label(args) => label(args),
        Command::Labels {
            config,
            asset,
            json,
            credentials,
        } => label_cli::labels(&config, asset.as_deref(), json, &credentials),
        Command::Eval(args) => eval(*args),
        Command::Model(command) => model_cli::run(command),
    }
}

/// `forewarn label`: make a label, or remove one.
fn label(args: LabelArgs) -> Result<ExitCode> {
    if let Some(id) = args.remove {
        return label_cli::remove(&args.config, id, &args.credentials);
    }
    let (Some(asset), Some(from), Some(to), Some(kind)) = (args.asset, args.from, args.to, args.kind) else {
        anyhow::bail!("--asset, --from, --to and --as are needed (or --remove ID)");
    };
    let spec = label_cli::LabelSpec {
        asset,
        from,
        to,
        kind,
        note: args.note,
        author: args.author,
    };
    label_cli::label(&args.config, &spec, &args.credentials)
}

/// `forewarn train`: from the store, or from a CSV file.
fn train(args: TrainArgs) -> Result<ExitCode> {
    let TrainArgs {
        config,
        asset,
        from,
        to,
        csv,
        sep,
        time_column,
        label_column,
        out,
    } = args;
    let source = match csv {
        Some(path) => predict_cli::TrainSource::Csv {
            path,
            sep,
            time_column,
            label_column,
        },
        None => predict_cli::TrainSource::Store { from, to },
    };
    predict_cli::train_cmd(&config, &asset, source, out.as_deref())
}

/// `forewarn eval`: labelled files replayed through the live scorer.
fn eval(args: EvalArgs) -> Result<ExitCode> {
    if args.store {
        return eval_cli::eval_store_cmd(eval_cli::StoreEval {
            config: args.config,
            asset: args.asset.context("--store needs --asset")?,
            from: args.from,
            to: args.to,
            model: args.model,
        });
    }
    let EvalArgs {
        format,
        data,
        predictions,
        sep,
        time_column,
        label_column,
        classifier,
        group_by,
        cv,
        tuning,
        ..
    } = args;
    let data = data.context("--data is required without --store")?;
    eval_cli::eval_cmd(eval_cli::EvalArgs {
        format,
        data,
        predictions,
        layout: forewarn::detect::eval::CsvLayout {
            separator: sep,
            time_column,
            label_column,
        },
        tuning,
        classifier,
        group_by,
        cv,
    })
}

/// `forewarn query --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum QueryFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header and one row per sample or interval.
    Csv,
}

impl QueryFormat {
    /// The name the HTTP API's `format` parameter takes.
    fn as_str(self) -> &'static str {
        match self {
            QueryFormat::Jsonl => "jsonl",
            QueryFormat::Csv => "csv",
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn check(path: &Path) -> Result<ExitCode> {
    match Config::load(path) {
        Ok(config) => {
            print!("{}", check_cli::summary(&config));
            println!("{}: OK", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprint!("{errors}");
            Ok(ExitCode::from(2))
        }
    }
}

fn run(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    runtime()?.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut agent = tokio::spawn(forewarn::agent::run(config, stop_rx));
        tokio::select! {
            res = &mut agent => return res.context("agent task")?.map(|()| ExitCode::SUCCESS),
            _ = forewarn::agent::shutdown_signal() => tracing::info!("stopping"),
        }
        let _ = stop_tx.send(true);
        agent.await.context("agent task")??;
        Ok(ExitCode::SUCCESS)
    })
}

fn poll(path: &Path, probe: Option<&[String]>, table: RegisterKind) -> Result<ExitCode> {
    use forewarn::source::modbus::once;
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = runtime()?;
    let Some(probe) = probe else {
        let lines = rt.block_on(once::poll_once(&config.modbus));
        let all_good = lines.iter().all(|l| l["quality"] == "good");
        for line in lines {
            println!("{line}");
        }
        return Ok(if all_good { ExitCode::SUCCESS } else { ExitCode::from(3) });
    };
    let [device, address, count] = probe else {
        anyhow::bail!("--probe takes DEVICE ADDRESS COUNT");
    };
    let device = config
        .modbus
        .iter()
        .find(|d| &d.device == device)
        .with_context(|| format!("no [[modbus]] device named {device:?} in {}", path.display()))?;
    let address: u32 = address
        .parse()
        .with_context(|| format!("ADDRESS {address:?} is not a number"))?;
    let max = if table.is_bits() { 2000 } else { 125 };
    let count: u16 = count
        .parse()
        .ok()
        .filter(|c| (1..=max).contains(c))
        .with_context(|| format!("COUNT {count:?} is not a number 1..{max}"))?;
    let text = rt
        .block_on(once::probe(device, table, address, count))
        .map_err(anyhow::Error::msg)?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn demo(duration: Option<Duration>) -> Result<ExitCode> {
    runtime()?.block_on(forewarn::demo::run(duration))?;
    Ok(ExitCode::SUCCESS)
}
