//! The history commands of the CLI: `query`, `import` and `store-stats`. Queries and
//! statistics go through the running agent's HTTP API when it answers (the agent holds
//! the store's lock), and open the store directly when it does not.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use forewarn::config::Config;
use forewarn::http::{self, Remote};
use forewarn::source::csv::{self, CsvOptions};
use forewarn::store::{archive, query, stats, Store, StoreOptions};

/// What to do instead when a query finds the store held by the agent.
const QUERY_BUSY: &str = "enable [http] so queries go through the agent";

fn load(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Opens the store of `agent.data_dir` for a command. Commands must not create one: a
/// mistyped data directory would answer "no data" from a fresh, empty store, and leave it
/// behind (`import` creates the directory itself before this). sled allows one process:
/// a store an agent is still releasing (it just stopped) is waited for a moment
/// ([`LOCK_WAIT`]); one a running agent holds is refused with `busy`, what to do instead.
pub(crate) fn open_store(config: &Config, busy: &str) -> Result<Store> {
    let dir = &config.agent.data_dir;
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!(
            "the data directory {} is not a directory (agent.data_dir)",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the data directory {} does not exist (agent.data_dir): no store to read; is this the agent's config?",
            dir.display()
        ),
        Err(e) => bail!("the data directory {}: {e}", dir.display()),
    }
    // Commands read or write once, in order: a small page cache is enough and keeps a
    // gateway's memory for the agent.
    let opts = StoreOptions {
        cache_bytes: 8 << 20,
        ..StoreOptions::default()
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let e = match Store::open(dir, opts) {
            Ok(store) => return Ok(store),
            Err(e) => e,
        };
        let locked = e.to_string().contains("lock") || e.to_string().contains("WouldBlock");
        if locked && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        let hint = if locked {
            format!(" — a running agent holds it; {busy}")
        } else {
            String::new()
        };
        bail!("opening the store in {}: {e}{hint}", dir.display());
    }
}

/// How long [`open_store`] waits for a store another process is releasing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Asks the running agent; `None` when no agent answers.
fn remote(config: &Config, target: &str) -> Result<Option<Vec<u8>>> {
    let Some(listen) = config.http_listen().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    match http::get(&listen.to_string(), target).with_context(|| format!("asking the agent at {listen}"))? {
        Remote::NotRunning => Ok(None),
        Remote::Reply { status: 200, body } => Ok(Some(body)),
        Remote::Reply { status, body } => {
            bail!("the agent answered {status}: {}", String::from_utf8_lossy(&body).trim())
        }
    }
}

pub fn query(config_path: &Path, params: &[(&str, String)]) -> Result<ExitCode> {
    let config = load(config_path)?;
    let map: HashMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let q = http::parse_query(&map).map_err(anyhow::Error::msg)?;
    let target = format!(
        "/query?{}",
        params
            .iter()
            .map(|(k, v)| format!("{k}={}", http::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(body) = remote(&config, &target)? {
        out.write_all(&body)?;
    } else {
        let store = open_store(&config, QUERY_BUSY)?;
        query::run(&store, &q, &config.rollup_tiers(), &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn store_stats(config_path: &Path) -> Result<ExitCode> {
    let config = load(config_path)?;
    let text = match remote(&config, "/stats")? {
        Some(body) => String::from_utf8_lossy(&body).into_owned(),
        None => {
            let store = open_store(&config, QUERY_BUSY)?;
            stats::collect(&store, &config.agent.data_dir)?.render(config.storage.max_disk.0)
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub fn import(
    config_path: &Path,
    csv_path: Option<&Path>,
    archive_dir: Option<&Path>,
    opts: &CsvOptions,
) -> Result<ExitCode> {
    let config = load(config_path)?;
    std::fs::create_dir_all(&config.agent.data_dir)
        .with_context(|| format!("creating data dir {}", config.agent.data_dir.display()))?;
    let store = open_store(&config, "stop it to import")?;
    if let Some(dir) = archive_dir {
        let r = archive::restore(dir, &store).with_context(|| format!("restoring {}", dir.display()))?;
        println!(
            "restored {} chunks ({} samples) from {} files; {} damaged records skipped",
            r.chunks, r.samples, r.files, r.damaged
        );
        return Ok(if r.damaged == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    let Some(path) = csv_path else {
        bail!("give --csv FILE or --archive DIR")
    };
    let started = std::time::Instant::now();
    let report = csv::import(&store, path, opts, &mut |r| {
        // Each line is a durability point: those rows survive a crash from here on.
        println!("imported {} rows ({} samples), durable", r.rows, r.samples);
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "done: {} rows, {} samples of {} sensors in {secs:.2} s ({:.0} samples/s); {} rows with a bad time and {} bad cells skipped",
        report.rows,
        report.samples,
        report.sensors,
        report.samples as f64 / secs.max(1e-9),
        report.bad_rows,
        report.bad_cells
    );
    Ok(ExitCode::SUCCESS)
}
