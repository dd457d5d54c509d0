//! Turns config text into a [`Config`] or the full list of what is wrong with it.
//!
//! serde stops at the first error of a document, which would make fixing a config a loop
//! of edit-and-retry. So each section, and each element of `[[modbus]]` and `[[asset]]`,
//! is deserialized on its own and every failure is kept. Key paths come from
//! `serde_path_to_error`; line numbers from a second, span-keeping parse of the same text.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use super::keys::{path_string, KeyPath, Seg};
use super::{validate, Config, ConfigErrors, ConfigProblem};

/// The largest config file read. Real configs are a few KiB; the cap keeps `check` from
/// reading `/dev/zero` or a runaway generated file into memory.
pub(super) const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Why a config file could not be read; the caller adds the path.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file ({0}); give the path of a TOML file")]
    NotAFile(&'static str),
    #[error("file is larger than {max} bytes; a config is a few KiB")]
    TooLarge { max: u64 },
    #[error("cannot read file: not UTF-8 text")]
    NotUtf8,
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Reads a config file of at most `max` bytes. Only regular files (symlinks followed) are
/// opened: opening a FIFO would block until a writer appears, and a device may never end.
/// At most `max + 1` bytes are read, so a file that grows after the size check is still
/// refused rather than read without bound.
pub(super) fn read_bounded(path: &Path, max: u64) -> Result<String, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(&meta)));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { max });
    }
    let file = std::fs::File::open(path)?;
    // The path may have been replaced between the two calls; the open handle is what
    // gets read, so it is checked again.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind_of(&meta)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line of the deepest part of `path` that exists in the document.
fn line_of(text: &str, root: &DeValue<'_>, path: &[Seg]) -> Option<usize> {
    let mut node = root;
    let mut best = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => node.get(k.as_str()),
            Seg::Index(i) => node.get(*i),
        };
        match next {
            Some(spanned) => {
                let span = spanned.span();
                if span.end > span.start {
                    best = Some(line_at(text, span.start));
                }
                node = spanned.get_ref();
            }
            None => break,
        }
    }
    best
}

/// The parser's message, with the key named where it only says "duplicate key": its span
/// covers the second definition, which is the one to delete or rename.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message();
    let key = e
        .span()
        .and_then(|s| text.get(s))
        .map(|k| k.trim().trim_start_matches('[').trim_end_matches(']').trim())
        .filter(|k| !k.is_empty() && !k.contains('\n'));
    match key {
        Some(key) if message == "duplicate key" => {
            format!("duplicate key `{key}`: each key and each [table] may be defined only once")
        }
        _ => message.to_string(),
    }
}

const SECTIONS: &[&str] = &[
    "agent", "storage", "upstream", "modbus", "mqtt", "asset", "http", "forward",
];

pub(super) fn parse(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let problem = |line, key: String, message: String| ConfigProblem {
        file: file.to_path_buf(),
        line,
        key,
        message,
    };

    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(ConfigErrors(
            syntax_errors
                .iter()
                .map(|e| {
                    let line = e.span().map(|s| line_at(text, s.start));
                    problem(line, String::new(), format!("TOML syntax: {}", syntax_message(text, e)))
                })
                .collect(),
        ));
    }
    let root = DeValue::Table(doc.into_inner());
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        ConfigErrors(vec![problem(line, String::new(), e.message().to_string())])
    })?;

    let mut raw_problems: Vec<(KeyPath, String)> = Vec::new();
    let mut config = Config::default();
    for (key, value) in &table {
        let at = vec![Seg::Key(key.clone())];
        match key.as_str() {
            "agent" => section(value, at, &mut raw_problems, &mut config.agent),
            "storage" => section(value, at, &mut raw_problems, &mut config.storage),
            "upstream" => section(value, at, &mut raw_problems, &mut config.upstream),
            "modbus" => config.modbus = elements(value, at, &mut raw_problems),
            "asset" => config.asset = elements(value, at, &mut raw_problems),
            "mqtt" => config.mqtt = elements(value, at, &mut raw_problems),
            "http" => section(value, at, &mut raw_problems, &mut config.http),
            "forward" => config.forward = elements(value, at, &mut raw_problems),
            other => raw_problems.push((
                at,
                format!("unknown section `{other}`, expected one of {}", SECTIONS.join(", ")),
            )),
        }
    }
    for required in ["agent", "upstream"] {
        if !table.contains_key(required) {
            raw_problems.push((vec![Seg::Key(required.into())], format!("missing section [{required}]")));
        }
    }
    // Cross-checks only make sense on a config whose parts all parsed; otherwise they
    // would report follow-on errors of a section that is already reported as broken.
    if raw_problems.is_empty() {
        raw_problems = validate::validate(&config);
    }
    if raw_problems.is_empty() {
        raw_problems = resolution_problems(&config);
    }
    if raw_problems.is_empty() {
        return Ok(config);
    }
    Err(ConfigErrors(
        raw_problems
            .into_iter()
            .map(|(path, message)| problem(line_of(text, &root, &path), path_string(&path), message))
            .collect(),
    ))
}

/// The checks should leave nothing that cannot be resolved; should they miss something,
/// it is still reported here, by `check`, and not when the agent starts.
fn resolution_problems(config: &Config) -> Vec<(KeyPath, String)> {
    let mut out = Vec::new();
    if let Err(e) = config.upstream_settings() {
        out.push((vec![Seg::Key("upstream".into())], e));
    }
    if let Err(e) = config.http_listen() {
        out.push((vec![Seg::Key("http".into()), Seg::Key("listen".into())], e));
    }
    if let Err(e) = config.input_settings() {
        out.push((vec![Seg::Key("mqtt".into())], e));
    }
    if let Err(e) = config.forward_settings() {
        out.push((vec![Seg::Key("forward".into())], e));
    }
    out
}

/// Deserializes one value, recording a problem (with its full key path) on failure.
fn typed<T: DeserializeOwned>(value: &toml::Value, at: &KeyPath, problems: &mut Vec<(KeyPath, String)>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(v) => Some(v),
        Err(err) => {
            let mut path = at.clone();
            for seg in err.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => path.push(Seg::Key(variant.clone())),
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            let message = err.into_inner().message().to_string();
            problems.push((path, message));
            None
        }
    }
}

fn section<T: DeserializeOwned>(value: &toml::Value, at: KeyPath, problems: &mut Vec<(KeyPath, String)>, slot: &mut T) {
    if let Some(v) = typed(value, &at, problems) {
        *slot = v;
    }
}

fn elements<T: DeserializeOwned>(value: &toml::Value, at: KeyPath, problems: &mut Vec<(KeyPath, String)>) -> Vec<T> {
    let Some(items) = value.as_array() else {
        problems.push((at, "expected an array of tables, e.g. [[section]]".into()));
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let mut path = at.clone();
            path.push(Seg::Index(i));
            typed(item, &path, problems)
        })
        .collect()
}
