//! Key paths (`modbus[2].register[0].address`) and the small helpers every check uses to
//! name the key a problem is about.

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) type KeyPath = Vec<Seg>;

pub(super) fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub(super) fn key(parts: &[&str]) -> KeyPath {
    parts.iter().map(|p| Seg::Key((*p).to_string())).collect()
}

pub(super) fn at(base: &KeyPath, more: &[Seg]) -> KeyPath {
    base.iter().chain(more).cloned().collect()
}

pub(super) fn k(name: &str) -> Seg {
    Seg::Key(name.to_string())
}

/// A name that is safe inside MQTT topics and log lines.
pub(super) fn is_plain_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c))
}

pub(super) fn readable(path: &std::path::Path, at: KeyPath, out: &mut Vec<(KeyPath, String)>) {
    if let Err(e) = std::fs::File::open(path) {
        out.push((at, format!("cannot read {}: {e}", path.display())));
    }
}

/// A topic template: publishable, with only the `allowed` placeholders. Here because
/// `validate` and `forward` both check templates and must not import each other.
pub(super) fn check_topic_template(t: &str, allowed: &[&str], path: KeyPath, out: &mut Vec<(KeyPath, String)>) {
    if t.is_empty() || t.contains(['+', '#']) || t.starts_with('$') {
        out.push((
            path.clone(),
            format!("{t:?} is not a publishable topic (empty, wildcard or $-topic)"),
        ));
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            out.push((path.clone(), format!("unclosed '{{' in {t:?}")));
            return;
        };
        let name = &rest[open + 1..open + close];
        if !allowed.contains(&name) {
            out.push((
                path.clone(),
                format!(
                    "unknown placeholder {{{name}}}; allowed: {}",
                    allowed
                        .iter()
                        .map(|a| format!("{{{a}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        rest = &rest[open + close + 1..];
    }
}
