//! Cross-checks of a parsed config: what serde's types cannot express (uniqueness,
//! references between sections, address ranges, ordered limits). Each check adds a
//! problem and carries on, so one run reports everything.

use std::collections::HashSet;
use std::time::Duration;

use super::load::{KeyPath, Seg};
use super::{Config, DataType, Rule};

fn key(parts: &[&str]) -> KeyPath {
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

    let sensors = super::modbus_checks::check_devices(c, &mut out);

    let globs = check_mqtt(c, &mut out);
    let known =
        |name: &str| sensors.contains_key(name) || globs.iter().any(|g| crate::store::query::glob_match(g, name));

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
            if !known(s) {
                out.push((
                    at(&base, &[k("sensors"), Seg::Index(j)]),
                    format!("unknown sensor {s:?}: no register or MQTT subscription defines it"),
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
            match sensors.get(r.sensor.as_str()) {
                None if !known(&r.sensor) => out.push((
                    at(&rb, &[k("sensor")]),
                    format!(
                        "rule on unknown sensor {:?}: no register or MQTT subscription defines it",
                        r.sensor
                    ),
                )),
                Some(reg) if reg.data_type == DataType::String => out.push((
                    at(&rb, &[k("sensor")]),
                    format!("rule on string sensor {:?}: a threshold needs a number", r.sensor),
                )),
                _ => {}
            }
            check_rule_limits(r, &rb, &mut out);
        }
    }
    out
}

/// Checks `[[mqtt]]`; returns a glob per subscription of the sensor names it can produce.
fn check_mqtt(c: &Config, out: &mut Vec<(KeyPath, String)>) -> Vec<String> {
    use super::PayloadFormat;
    let mut globs = Vec::new();
    let mut client_ids = HashSet::new();
    for (i, m) in c.mqtt.iter().enumerate() {
        let base = vec![k("mqtt"), Seg::Index(i)];
        if let Err(e) = parse_broker_url(&m.broker) {
            out.push((at(&base, &[k("broker")]), e));
        }
        if m.qos > 1 {
            out.push((
                at(&base, &[k("qos")]),
                format!("qos {} is not supported: use 0 or 1", m.qos),
            ));
        }
        let id = c.mqtt_client_id(i);
        if !client_ids.insert(id.clone()) {
            out.push((
                at(&base, &[k("client_id")]),
                format!("client id {id:?} is used twice; the broker would disconnect one of them"),
            ));
        }
        let secrets = [
            m.password.is_some(),
            m.password_file.is_some(),
            m.password_env.is_some(),
        ];
        if secrets.iter().filter(|s| **s).count() > 1 {
            out.push((
                at(&base, &[k("password")]),
                "set only one of password, password_file, password_env".into(),
            ));
        }
        if let Some(f) = &m.password_file {
            if std::fs::metadata(f).is_err() {
                out.push((at(&base, &[k("password_file")]), format!("cannot read {}", f.display())));
            }
        }
        if m.subscribe.is_empty() {
            out.push((
                at(&base, &[k("subscribe")]),
                "an [[mqtt]] input needs at least one [[mqtt.subscribe]]".into(),
            ));
        }
        for (j, sub) in m.subscribe.iter().enumerate() {
            let sb = at(&base, &[k("subscribe"), Seg::Index(j)]);
            let topic_vars = match crate::source::mqtt::topic::TopicTemplate::parse(&sub.topic) {
                Ok(t) => t.vars().map(str::to_string).collect::<Vec<_>>(),
                Err(e) => {
                    out.push((at(&sb, &[k("topic")]), e));
                    continue;
                }
            };
            let format_vars: &[&str] = match sub.format {
                PayloadFormat::Number => &[],
                PayloadFormat::Json if sub.value.is_some() => &[],
                PayloadFormat::Json => &["field"],
                PayloadFormat::Influx => &["measurement", "field", "*"],
                PayloadFormat::Sparkplug => &["group", "node", "device", "metric"],
            };
            let template = crate::source::mqtt::sensor_template(sub);
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    out.push((at(&sb, &[k("sensor")]), format!("unclosed '{{' in {template:?}")));
                    break;
                };
                let name = &rest[open + 1..open + close];
                if name != "topic"
                    && !topic_vars.iter().any(|v| v == name)
                    && !format_vars.contains(&name)
                    && !format_vars.contains(&"*")
                {
                    let mut allowed: Vec<String> = topic_vars.iter().map(|v| format!("{{{v}}}")).collect();
                    allowed.extend(format_vars.iter().map(|v| format!("{{{v}}}")));
                    out.push((
                        at(&sb, &[k("sensor")]),
                        format!(
                            "unknown placeholder {{{name}}} for a {:?} subscription; allowed: {}",
                            sub.format,
                            if allowed.is_empty() {
                                "none".into()
                            } else {
                                allowed.join(", ")
                            }
                        )
                        .to_lowercase(),
                    ));
                }
                rest = &rest[open + close + 1..];
            }
            if sub.format != PayloadFormat::Json && (sub.timestamp.is_some() || sub.value.is_some()) {
                out.push((
                    sb.clone(),
                    "`timestamp` and `value` apply to format = \"json\" only".into(),
                ));
            }
            globs.push(crate::source::mqtt::sensor_glob(&template, &sub.topic));
        }
    }
    globs
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
