//! `forewarn model list | rollback`: the versions of an asset's model file. `list` shows
//! the current model, the previous versions kept next to it and a retraining's shadow
//! candidate; `rollback` makes the newest previous version current again (the replaced
//! one stays kept). A running agent loads the result on SIGHUP or `POST /api/reload-models`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};

use forewarn::base::sample::rfc3339_ms;
use forewarn::config::Config;
use forewarn::detect::versions;

/// `forewarn model …`
#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Show the versions of an asset's model: version, trained range, when written,
    /// source, and whether it is current, a kept previous version or a shadow candidate.
    List {
        /// Config file.
        #[arg(long, short, default_value = forewarn::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// The asset whose model files to show.
        #[arg(long)]
        asset: String,
    },
    /// Make the previous version of an asset's model current again.
    Rollback {
        /// Config file.
        #[arg(long, short, default_value = forewarn::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// The asset whose model to roll back.
        #[arg(long)]
        asset: String,
    },
}

pub fn run(command: ModelCommand) -> Result<ExitCode> {
    match command {
        ModelCommand::List { config, asset } => list(&model_path(&config, &asset)?),
        ModelCommand::Rollback { config, asset } => {
            let path = model_path(&config, &asset)?;
            let r = versions::rollback(&path)?;
            println!(
                "{asset}: version {} is current again in {} (version {} kept as {}); a running agent loads it on SIGHUP or POST /api/reload-models",
                r.to,
                path.display(),
                r.from,
                r.kept.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The current model file of `asset` as configured.
fn model_path(config_path: &Path, asset: &str) -> Result<PathBuf> {
    let config = Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let a = crate::predict_cli::asset(&config, asset)?;
    let Some(mc) = &a.model else {
        bail!("asset {asset:?} has no [asset.model] section");
    };
    Ok(mc.path(&config.agent.data_dir, &a.id))
}

fn list(path: &Path) -> Result<ExitCode> {
    let entries = versions::list(path)?;
    if entries.is_empty() {
        println!("no model files at {} yet; `forewarn train` writes one", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>7} {:<8} {:<49} {:>7} {:<24} {:<16} file",
        "version", "role", "trained on", "vectors", "written", "source"
    );
    for e in entries {
        let written = e
            .written
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(|| "-".into(), |d| rfc3339_ms(d.as_millis() as i64));
        match &e.model {
            Ok(m) => println!(
                "{:>7} {:<8} {:<49} {:>7} {:<24} {:<16} {}",
                m.version,
                e.role.as_str(),
                format!("{} .. {}", rfc3339_ms(m.training.from_ms), rfc3339_ms(m.training.to_ms)),
                m.training.vectors,
                written,
                m.training.source,
                e.path.display()
            ),
            Err(err) => println!("{:>7} {:<8} does not load: {err}", "?", e.role.as_str()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
