//! `forewarn label` and `forewarn labels`: an operator's labels from the shell. They go
//! through the running agent's HTTP API when it answers (the agent holds the store's
//! lock, and it applies a maintenance window and announces a label at once), and open
//! the stopped store directly when nothing listens; a label stored that way is announced
//! upstream when the agent next starts.
//!
//! Everything a command is given is checked here first, against the config, so an error
//! names the flag (`--from`, `--asset`) rather than a field of the API. With users on the
//! API, `--user` and the password (`FOREWARN_PASSWORD` or `--password-file`, never an
//! argument, which other users could read) authenticate; an action first fetches a CSRF
//! token. Without users the author is `--author`, else `$USER`. The CLI speaks plain HTTP,
//! as `query` does: an API behind `tls_cert` is reached by curl or the web pages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::Engine;

use forewarn::base::label::{Label, LabelKind, NewLabel};
use forewarn::base::sample::rfc3339_ms;
use forewarn::base::time::{now_ms, parse_time};
use forewarn::config::Config;
use forewarn::http::{self, Remote};
use forewarn::store::Store;

/// The environment variable a password is read from.
pub const PASSWORD_ENV: &str = "FOREWARN_PASSWORD";

/// How to authenticate to an API with users.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Credentials {
    /// User of the HTTP API (`[http] users_file`); the password comes from
    /// FOREWARN_PASSWORD or --password-file.
    #[arg(long)]
    pub user: Option<String>,
    /// A file whose first line is the password of --user.
    #[arg(long, requires = "user")]
    pub password_file: Option<PathBuf>,
}

/// What `forewarn label` makes.
#[derive(Debug, Clone)]
pub struct LabelSpec {
    pub asset: String,
    pub from: String,
    pub to: String,
    pub kind: LabelKind,
    pub note: Option<String>,
    pub author: Option<String>,
}

fn load(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The label `spec` asks for, checked against `config`; errors name the flag.
fn new_label(config: &Config, spec: &LabelSpec) -> Result<NewLabel> {
    if !config.asset.iter().any(|a| a.id == spec.asset) {
        let known: Vec<&str> = config.asset.iter().map(|a| a.id.as_str()).collect();
        bail!(
            "--asset {:?} is not an asset of the config (assets: {})",
            spec.asset,
            known.join(", ")
        );
    }
    let time = |flag: &str, text: &str| {
        parse_time(text).with_context(|| format!("{flag} {text:?} is not a time (RFC 3339 or epoch ms)"))
    };
    let (from_ms, to_ms) = (time("--from", &spec.from)?, time("--to", &spec.to)?);
    if from_ms >= to_ms {
        bail!("--from must be before --to (the span is empty)");
    }
    let author = spec
        .author
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "anonymous".to_string());
    let label = NewLabel {
        asset: spec.asset.clone(),
        from_ms,
        to_ms,
        kind: spec.kind,
        note: spec.note.clone().filter(|n| !n.trim().is_empty()),
        author,
    };
    label.validate().map_err(|e| match e {
        forewarn::base::label::LabelError::NoteTooLong(_) => anyhow::anyhow!("--note: {e}"),
        forewarn::base::label::LabelError::BadAuthor => anyhow::anyhow!("--author: {e}"),
        _ => anyhow::anyhow!("{e}"),
    })?;
    Ok(label)
}

/// `forewarn label`: makes a label.
pub fn label(config_path: &Path, spec: &LabelSpec, creds: &Credentials) -> Result<ExitCode> {
    let config = load(config_path)?;
    let label = new_label(&config, spec)?;
    let body = serde_json::json!({
        "asset": label.asset,
        "from": label.from_ms,
        "to": label.to_ms,
        "as": label.kind,
        "note": label.note,
        "author": label.author,
    });
    let stored: Label = match Agent::of(&config, creds)? {
        Some(agent) => match agent.act("POST", "/api/labels", Some(body.to_string().as_bytes()))? {
            Some((_, reply)) => serde_json::from_slice(&reply).context("reading the agent's answer")?,
            None => open_store(&config)?.add_label(label, now_ms())?,
        },
        None => open_store(&config)?.add_label(label, now_ms())?,
    };
    println!("label {} made: {}", stored.id, describe(&stored));
    Ok(ExitCode::SUCCESS)
}

/// `forewarn label --remove ID`.
pub fn remove(config_path: &Path, id: u64, creds: &Credentials) -> Result<ExitCode> {
    let config = load(config_path)?;
    let target = format!("/api/labels/{id}");
    let removed: Option<Label> = match Agent::of(&config, creds)? {
        Some(agent) => match agent.act("DELETE", &target, None)? {
            Some((404, _)) => None,
            Some((_, reply)) => Some(serde_json::from_slice(&reply).context("reading the agent's answer")?),
            None => open_store(&config)?.remove_label(id)?,
        },
        None => open_store(&config)?.remove_label(id)?,
    };
    match removed {
        Some(l) => println!("label {id} removed: {}", describe(&l)),
        None => bail!("--remove {id}: no such label"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `forewarn labels`: lists labels as a table, or as one JSON array with `json`.
pub fn labels(config_path: &Path, asset: Option<&str>, json: bool, creds: &Credentials) -> Result<ExitCode> {
    let config = load(config_path)?;
    if let Some(a) = asset.filter(|a| !config.asset.iter().any(|x| &x.id == a)) {
        bail!("--asset {a:?} is not an asset of the config");
    }
    let target = match asset {
        Some(a) => format!("/api/labels?asset={}", http::percent_encode(a)),
        None => "/api/labels".to_string(),
    };
    let remote = match Agent::of(&config, creds)? {
        Some(agent) => agent.read(&target)?,
        None => None,
    };
    let labels: Vec<Label> = match remote {
        Some(body) => serde_json::from_slice(&body).context("reading the agent's answer")?,
        None => open_store(&config)?.labels(asset)?,
    };
    if json {
        println!("{}", serde_json::to_string(&labels)?);
    } else {
        print!("{}", table(&labels));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(l: &Label) -> String {
    let s = &l.span;
    format!(
        "{} of {} from {} to {} by {}",
        s.kind,
        s.asset,
        rfc3339_ms(s.from_ms),
        rfc3339_ms(s.to_ms),
        s.author
    )
}

/// The labels as aligned columns under a header.
fn table(labels: &[Label]) -> String {
    let mut rows = vec![["id", "asset", "label", "from", "to", "author", "note"]
        .map(String::from)
        .to_vec()];
    for l in labels {
        let s = &l.span;
        rows.push(vec![
            l.id.to_string(),
            s.asset.clone(),
            s.kind.to_string(),
            rfc3339_ms(s.from_ms),
            rfc3339_ms(s.to_ms),
            s.author.clone(),
            s.note.clone().unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The running agent's API, as far as the config says where it listens.
struct Agent {
    addr: String,
    /// `Basic …`, with `--user`.
    authorization: Option<String>,
}

impl Agent {
    fn of(config: &Config, creds: &Credentials) -> Result<Option<Agent>> {
        let Some(listen) = config.http_listen().map_err(anyhow::Error::msg)? else {
            return Ok(None);
        };
        let authorization = match &creds.user {
            Some(user) => {
                let password = password(creds.password_file.as_deref())?;
                let pair = format!("{user}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            None => None,
        };
        Ok(Some(Agent {
            addr: listen.to_string(),
            authorization,
        }))
    }

    fn send(&self, method: &str, target: &str, extra: &[(&str, &str)], body: Option<&[u8]>) -> Result<Remote> {
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &self.authorization {
            headers.push(("Authorization", a));
        }
        http::request(&self.addr, method, target, &headers, body)
            .with_context(|| format!("asking the agent at {}", self.addr))
    }

    /// A GET; `None` when no agent listens.
    fn read(&self, target: &str) -> Result<Option<Vec<u8>>> {
        match self.send("GET", target, &[], None)? {
            Remote::NotRunning => Ok(None),
            Remote::Reply { status: 200, body } => Ok(Some(body)),
            Remote::Reply { status, body } => refused(status, &body),
        }
    }

    /// An action, with a CSRF token when authenticated; `None` when no agent listens.
    /// Answers 2xx and 404 as (status, body); anything else is an error.
    fn act(&self, method: &str, target: &str, body: Option<&[u8]>) -> Result<Option<(u16, Vec<u8>)>> {
        let token = match &self.authorization {
            Some(_) => match self.read("/csrf")? {
                Some(t) => Some(String::from_utf8_lossy(&t).trim().to_string()),
                None => return Ok(None),
            },
            None => None,
        };
        let extra: Vec<(&str, &str)> = token.iter().map(|t| ("X-CSRF-Token", t.as_str())).collect();
        match self.send(method, target, &extra, body)? {
            Remote::NotRunning => Ok(None),
            Remote::Reply { status, body } if (200..300).contains(&status) || status == 404 => Ok(Some((status, body))),
            Remote::Reply { status, body } => refused(status, &body),
        }
    }
}

fn refused<T>(status: u16, body: &[u8]) -> Result<T> {
    let text = String::from_utf8_lossy(body);
    let hint = match status {
        401 => " — give --user, and the password in FOREWARN_PASSWORD or --password-file",
        403 => " — labels need a user with the operator role",
        _ => "",
    };
    bail!("the agent answered {status}: {}{hint}", text.trim())
}

/// The password of `--user`: the first line of `file`, else `FOREWARN_PASSWORD`.
fn password(file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("--password-file {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    std::env::var(PASSWORD_ENV)
        .with_context(|| format!("--user needs a password: set {PASSWORD_ENV} or give --password-file"))
}

/// The stopped store, for when no agent answers.
fn open_store(config: &Config) -> Result<Store> {
    crate::history::open_store(
        config,
        "its HTTP API did not answer: enable [http] (labels then go through the agent) or stop the agent",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        // The quick-start config: one asset, `line1/pump1`.
        let text = include_str!("../config/quickstart.toml");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    fn spec(from: &str, to: &str) -> LabelSpec {
        LabelSpec {
            asset: "line1/pump1".into(),
            from: from.into(),
            to: to.into(),
            kind: LabelKind::Maintenance,
            note: None,
            author: Some("anna".into()),
        }
    }

    #[test]
    fn flags_are_checked_and_named() {
        let c = config();
        let ok = new_label(&c, &spec("2026-12-02T06:00:00Z", "1796205600000")).unwrap();
        assert_eq!((ok.author.as_str(), ok.kind), ("anna", LabelKind::Maintenance));
        let err = |s: LabelSpec| new_label(&c, &s).unwrap_err().to_string();
        assert!(err(spec("noon", "10")).contains("--from \"noon\""));
        assert!(err(spec("0", "soon")).contains("--to \"soon\""));
        assert!(err(spec("10", "10")).contains("--from must be before --to"));
        let mut s = spec("0", "10");
        s.asset = "pump9".into();
        assert!(err(s).contains("--asset \"pump9\""));
        let mut s = spec("0", "10");
        s.note = Some("x".repeat(2000));
        assert!(err(s).starts_with("--note"));
    }

    #[test]
    fn the_table_lines_up() {
        let l = Label {
            id: 3,
            span: new_label(&config(), &spec("0", "60000")).unwrap(),
            created_ms: 0,
        };
        let t = table(&[l]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("id  asset"), "{t}");
        assert!(
            lines[1].starts_with("3   line1/pump1  maintenance  1970-01-01T00:00:00.000Z"),
            "{t}"
        );
    }
}
