//! Cross-checks of a parsed config: what serde's types cannot express (uniqueness,
//! references between sections, address ranges, ordered limits). Each check adds a
//! problem and carries on, so one run reports everything.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::load::{KeyPath, Seg};
use super::{Config, Rule};

fn key(parts: &[&str]) -> KeyPath {
    parts.iter().map(|p| Seg::Key((*p).to_string())).collect()
}

fn at(base: &KeyPath, more: &[Seg]) -> KeyPath {
    base.iter().chain(more).cloned().collect()
}

fn k(name: &str) -> Seg {
    Seg::Key(name.to_string())
}

/// A name that is safe inside MQTT topics and log lines.
fn is_plain_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c))
}

/// Parses `mqtt://host[:port]` into host and port.
pub fn parse_broker_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("broker {url:?} must start with mqtt://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("broker {url:?}: port {p:?} is not a number 1-65535"))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("broker {url:?}: expected mqtt://host:port"));
    }
    Ok((host.to_string(), port))
}

pub(super) fn validate(c: &Config) -> Vec<(KeyPath, String)> {
    let mut out = Vec::new();

    if !is_plain_name(&c.agent.id, &[]) {
        out.push((
            key(&["agent", "id"]),
            "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
        ));
    }
    if c.agent.data_dir.as_os_str().is_empty() {
        out.push((key(&["agent", "data_dir"]), "must not be empty".into()));
    }

    let s = &c.storage;
    if s.flush_interval.0 < Duration::from_millis(10) || s.flush_interval.0 > Duration::from_secs(60) {
        out.push((
            key(&["storage", "flush_interval"]),
            format!("{} is outside 10ms..60s", s.flush_interval),
        ));
    }
    if s.raw_retention.0 < Duration::from_secs(60) {
        out.push((key(&["storage", "raw_retention"]), "must be at least 1m".into()));
    }
    if s.max_disk.0 < 16 << 20 {
        out.push((key(&["storage", "max_disk"]), "must be at least 16MiB".into()));
    }
    if s.seal_interval.0 < Duration::from_secs(1) {
        out.push((key(&["storage", "seal_interval"]), "must be at least 1s".into()));
    }
    if s.retention_interval.0 < Duration::from_millis(100) {
        out.push((key(&["storage", "retention_interval"]), "must be at least 100ms".into()));
    }
    if s.archive_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty() || *d == c.agent.data_dir)
    {
        out.push((
            key(&["storage", "archive_dir"]),
            "must be a directory other than data_dir".into(),
        ));
    }
    if s.rollup.len() > 4 {
        out.push((key(&["storage", "rollup"]), "at most 4 rollup tiers".into()));
    }
    for (i, t) in s.rollup.iter().enumerate() {
        let base = vec![k("storage"), k("rollup"), Seg::Index(i)];
        if t.every.0 < Duration::from_secs(1) {
            out.push((at(&base, &[k("every")]), "must be at least 1s".into()));
        }
        if t.keep.0 < s.raw_retention.0 {
            out.push((
                at(&base, &[k("keep")]),
                format!(
                    "keep = {} is shorter than raw_retention = {}: the rollup would never be used",
                    t.keep, s.raw_retention
                ),
            ));
        }
        if s.rollup[..i].iter().any(|o| o.every == t.every) {
            out.push((
                at(&base, &[k("every")]),
                format!("another tier already has every = {}", t.every),
            ));
        }
    }
    if let Some(problem) = super::footprint::check_budget(c) {
        out.push((key(&["storage", "max_disk"]), problem));
    }
    if c.http.enabled && c.http.listen.parse::<std::net::SocketAddr>().is_err() {
        out.push((
            key(&["http", "listen"]),
            format!("{:?} is not ip:port (e.g. \"127.0.0.1:9321\")", c.http.listen),
        ));
    }

    let u = &c.upstream;
    if let Err(e) = parse_broker_url(&u.broker) {
        out.push((key(&["upstream", "broker"]), e));
    }
    check_topic_template(
        &u.alert_topic,
        &["agent", "asset"],
        key(&["upstream", "alert_topic"]),
        &mut out,
    );
    if u.max_inflight == 0 {
        out.push((key(&["upstream", "max_inflight"]), "must be at least 1".into()));
    }
    if u.keep_alive.0 < Duration::from_secs(5) {
        out.push((key(&["upstream", "keep_alive"]), "must be at least 5s".into()));
    }

    let mut devices = HashSet::new();
    let mut sensors: HashMap<&str, KeyPath> = HashMap::new();
    for (i, d) in c.modbus.iter().enumerate() {
        let base = vec![k("modbus"), Seg::Index(i)];
        if !is_plain_name(&d.device, &[]) {
            out.push((
                at(&base, &[k("device")]),
                "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
            ));
        } else if !devices.insert(d.device.as_str()) {
            out.push((
                at(&base, &[k("device")]),
                format!("duplicate device name {:?}", d.device),
            ));
        }
        if d.address
            .rsplit_once(':')
            .and_then(|(h, p)| (!h.is_empty()).then(|| p.parse::<u16>().ok()))
            .flatten()
            .is_none()
        {
            out.push((at(&base, &[k("address")]), format!("{:?} is not host:port", d.address)));
        }
        if d.unit > 247 {
            out.push((at(&base, &[k("unit")]), format!("unit id {} is outside 0..247", d.unit)));
        }
        if d.interval.0 < Duration::from_millis(10) {
            out.push((at(&base, &[k("interval")]), "must be at least 10ms".into()));
        }
        if d.timeout.0 < Duration::from_millis(1) {
            out.push((at(&base, &[k("timeout")]), "must be at least 1ms".into()));
        }
        if d.max_registers == 0 || d.max_registers > 125 {
            out.push((
                at(&base, &[k("max_registers")]),
                format!("{} is outside 1..125", d.max_registers),
            ));
        }
        if d.register.is_empty() {
            out.push((
                at(&base, &[k("register")]),
                "a device needs at least one [[modbus.register]]".into(),
            ));
        }
        for (j, r) in d.register.iter().enumerate() {
            let rb = at(&base, &[k("register"), Seg::Index(j)]);
            if !is_plain_name(&r.sensor, &[':']) {
                out.push((
                    at(&rb, &[k("sensor")]),
                    "must be non-empty and use only letters, digits, '-', '_', '.' and ':'".into(),
                ));
            } else if let Some(first) = sensors.insert(r.sensor.as_str(), rb.clone()) {
                out.push((
                    at(&rb, &[k("sensor")]),
                    format!(
                        "duplicate sensor {:?} (first defined at {})",
                        r.sensor,
                        super::load::path_string(&first)
                    ),
                ));
            }
            let last = r.address + u32::from(r.data_type.words()) - 1;
            if last > 65_535 {
                out.push((
                    at(&rb, &[k("address")]),
                    format!(
                        "address {} out of range: a {:?} there ends at {last}, past 65535",
                        r.address, r.data_type
                    )
                    .to_lowercase(),
                ));
            }
            if r.data_type.words() > d.max_registers {
                out.push((
                    at(&rb, &[k("type")]),
                    format!(
                        "needs {} registers, more than max_registers = {}",
                        r.data_type.words(),
                        d.max_registers
                    ),
                ));
            }
            if !r.scale.is_finite() || r.scale == 0.0 {
                out.push((at(&rb, &[k("scale")]), "must be a finite, non-zero number".into()));
            }
            if !r.offset.is_finite() {
                out.push((at(&rb, &[k("offset")]), "must be a finite number".into()));
            }
        }
    }

    let mut assets = HashSet::new();
    for (i, a) in c.asset.iter().enumerate() {
        let base = vec![k("asset"), Seg::Index(i)];
        let valid_id =
            !a.id.starts_with('/') && !a.id.ends_with('/') && !a.id.contains("//") && is_plain_name(&a.id, &['/']);
        if !valid_id {
            out.push((
                at(&base, &[k("id")]),
                "must be a path like \"line1/pump1\" of letters, digits, '-', '_', '.'".into(),
            ));
        } else if !assets.insert(a.id.as_str()) {
            out.push((at(&base, &[k("id")]), format!("duplicate asset id {:?}", a.id)));
        }
        for (j, s) in a.sensors.iter().enumerate() {
            if !sensors.contains_key(s.as_str()) {
                out.push((
                    at(&base, &[k("sensors"), Seg::Index(j)]),
                    format!("unknown sensor {s:?}: no register defines it"),
                ));
            }
        }
        let mut rule_names = HashSet::new();
        for (j, r) in a.rule.iter().enumerate() {
            let rb = at(&base, &[k("rule"), Seg::Index(j)]);
            if !is_plain_name(&r.name, &[]) {
                out.push((
                    at(&rb, &[k("name")]),
                    "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
                ));
            } else if !rule_names.insert(r.name.as_str()) {
                out.push((
                    at(&rb, &[k("name")]),
                    format!("duplicate rule name {:?} in this asset", r.name),
                ));
            }
            if !sensors.contains_key(r.sensor.as_str()) {
                out.push((
                    at(&rb, &[k("sensor")]),
                    format!("rule on unknown sensor {:?}: no register defines it", r.sensor),
                ));
            }
            check_rule_limits(r, &rb, &mut out);
        }
        if let Some(m) = &a.model {
            check_model(m, a.sensors.len(), &at(&base, &[k("model")]), &mut out);
        }
    }
    check_asset_tree(c, &mut out);
    out
}

/// `parent` names another asset, and following parents never comes back (a tree).
fn check_asset_tree(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    let parents: HashMap<&str, &str> = c
        .asset
        .iter()
        .filter_map(|a| a.parent.as_deref().map(|p| (a.id.as_str(), p)))
        .collect();
    for (i, a) in c.asset.iter().enumerate() {
        let Some(parent) = a.parent.as_deref() else { continue };
        let path = key_at(i, "parent");
        if parent == a.id {
            out.push((path, "an asset cannot be its own parent".into()));
        } else if !c.asset.iter().any(|o| o.id == parent) {
            out.push((
                path,
                format!("unknown parent asset {parent:?}: no [[asset]] has this id"),
            ));
        } else {
            let mut seen = HashSet::from([a.id.as_str()]);
            let mut at_id = parent;
            while let Some(next) = parents.get(at_id) {
                if !seen.insert(at_id) {
                    out.push((
                        path,
                        format!("parent {parent:?} leads back to {:?}: assets must form a tree", a.id),
                    ));
                    break;
                }
                at_id = next;
            }
        }
    }
}

fn key_at(asset: usize, name: &str) -> KeyPath {
    vec![k("asset"), Seg::Index(asset), k(name)]
}

fn check_model(m: &super::ModelConfig, sensors: usize, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let mut bad = |name: &str, msg: String| out.push((at(base, &[k(name)]), msg));
    if sensors == 0 {
        bad("detector", "a model needs the asset to have sensors".into());
    }
    if m.period.0 < Duration::from_millis(10) || m.period.0 > Duration::from_secs(3600) {
        bad("period", format!("{} is outside 10ms..1h", m.period));
    }
    if m.max_hold > 1000 {
        bad("max_hold", format!("{} is more than 1000 periods", m.max_hold));
    }
    if m.window == 0 || m.window > 3600 {
        bad("window", format!("{} is outside 1..3600 periods", m.window));
    }
    for (name, v) in [("adapt", m.adapt), ("adapt_alarm", m.adapt_alarm)] {
        if !(0.0..=1.0).contains(&v) {
            bad(name, format!("{v} is outside 0..1"));
        }
    }
    if !(m.variance > 0.0 && m.variance <= 1.0) {
        bad("variance", format!("{} is outside (0, 1]", m.variance));
    }
    if !(m.quantile >= 0.5 && m.quantile <= 1.0) {
        bad("quantile", format!("{} is outside 0.5..1", m.quantile));
    }
    if !(m.factor.is_finite() && m.factor > 0.0) {
        bad("factor", "must be a positive number".into());
    }
    if m.alarm_n == 0 || m.alarm_n > 3600 {
        bad("alarm_n", format!("{} is outside 1..3600", m.alarm_n));
    }
    if m.alarm_k == 0 || m.alarm_k > m.alarm_n {
        bad(
            "alarm_k",
            format!("alarm_k = {} must be between 1 and alarm_n = {}", m.alarm_k, m.alarm_n),
        );
    }
    if m.contributors == 0 {
        bad("contributors", "must be at least 1".into());
    }
    if m.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        bad("file", "must not be empty".into());
    }
}

fn check_rule_limits(r: &Rule, rb: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let finite = |v: Option<f64>, name: &str, out: &mut Vec<(KeyPath, String)>| {
        if v.is_some_and(|v| !v.is_finite()) {
            out.push((at(rb, &[k(name)]), "must be a finite number".into()));
        }
    };
    finite(r.above, "above", out);
    finite(r.below, "below", out);
    finite(r.clear_below, "clear_below", out);
    finite(r.clear_above, "clear_above", out);
    match (r.above, r.below) {
        (None, None) => out.push((rb.clone(), "a rule needs `above` or `below`".into())),
        (Some(_), Some(_)) => out.push((
            at(rb, &[k("below")]),
            "set either `above` or `below`, not both (use two rules)".into(),
        )),
        (Some(above), None) => {
            if r.clear_above.is_some() {
                out.push((
                    at(rb, &[k("clear_above")]),
                    "goes with `below`; with `above` use `clear_below`".into(),
                ));
            }
            if let Some(clear) = r.clear_below.filter(|c| *c > above) {
                out.push((
                    at(rb, &[k("clear_below")]),
                    format!("clear_below = {clear} is above above = {above}: the alert could never clear"),
                ));
            }
        }
        (None, Some(below)) => {
            if r.clear_below.is_some() {
                out.push((
                    at(rb, &[k("clear_below")]),
                    "goes with `above`; with `below` use `clear_above`".into(),
                ));
            }
            if let Some(clear) = r.clear_above.filter(|c| *c < below) {
                out.push((
                    at(rb, &[k("clear_above")]),
                    format!("clear_above = {clear} is below below = {below}: the alert could never clear"),
                ));
            }
        }
    }
}

fn check_topic_template(t: &str, allowed: &[&str], path: KeyPath, out: &mut Vec<(KeyPath, String)>) {
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

#[cfg(test)]
mod tests {
    use super::parse_broker_url;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(
            parse_broker_url("mqtt://broker.local").unwrap(),
            ("broker.local".into(), 1883)
        );
        assert_eq!(parse_broker_url("mqtt://[::1]:1884").unwrap(), ("::1".into(), 1884));
        assert!(parse_broker_url("http://x:1").is_err());
        assert!(parse_broker_url("mqtt://x:notaport").is_err());
        assert!(parse_broker_url("mqtt://").is_err());
    }
}
