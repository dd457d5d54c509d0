//! `forewarn passwd FILE USER [--role viewer|operator] [--password-stdin]`: adds a user of
//! the HTTP API or changes one. On a terminal the password is asked twice with echo off
//! (through `stty`, so no terminal library is needed); otherwise, or with
//! `--password-stdin`, it is the first line of standard input, for scripts.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};

use forewarn::base::secret::Secret;
use forewarn::config::users::{self, Role};

/// `--role`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
}

pub fn passwd(file: &Path, user: &str, role: RoleArg, password_stdin: bool) -> Result<ExitCode> {
    users::check_name(user).map_err(anyhow::Error::msg)?;
    let role = match role {
        RoleArg::Viewer => Role::Viewer,
        RoleArg::Operator => Role::Operator,
    };
    let password = if password_stdin || !std::io::stdin().is_terminal() {
        read_line()?
    } else {
        let first = prompt("password: ")?;
        if first.expose() != prompt("again: ")?.expose() {
            bail!("the passwords differ; nothing written");
        }
        first
    };
    if password.expose().is_empty() {
        bail!("an empty password is refused");
    }
    users::set_user(file, user, role, &password).with_context(|| format!("forewarn passwd {}", file.display()))?;
    eprintln!("{user} ({role}) written to {}", file.display());
    Ok(ExitCode::SUCCESS)
}

fn read_line() -> Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
}

/// Asks on stderr with the terminal's echo off for the answer.
fn prompt(text: &str) -> Result<Secret> {
    eprint!("{text}");
    std::io::stderr().flush().ok();
    let stty = |arg: &str| {
        Command::new("stty")
            .arg(arg)
            .stdin(Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let hidden = stty("-echo");
    let answer = read_line();
    if hidden {
        stty("echo");
    }
    eprintln!();
    answer
}
