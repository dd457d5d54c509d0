//! Cross-checks of a parsed config: what serde's types cannot express (uniqueness,
//! references between sections, address ranges, ordered limits). Each check adds a
//! problem and carries on, so one run reports everything.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::keys::{at, check_topic_template, is_plain_name, k, key, KeyPath, Seg};
use super::{Asset, Config, DataType, Register, Rule};

pub(super) fn validate(c: &Config) -> Vec<(KeyPath, String)> {
    let mut out = Vec::new();
    check_agent(c, &mut out);
    check_storage(c, &mut out);
    if let Some(problem) = super::footprint::check_budget(c) {
        out.push((key(&["storage", "max_disk"]), problem));
    }
    check_http(c, &mut out);
    check_upstream(c, &mut out);
    let sensors = super::modbus_checks::check_devices(c, &mut out);
    let globs = super::mqtt_checks::check_mqtt(c, &mut out);
    let known = |name: &str| sensors.contains_key(name) || globs.iter().any(|g| crate::base::glob::glob_match(g, name));
    let mut assets = HashSet::new();
    for (i, a) in c.asset.iter().enumerate() {
        let base = vec![k("asset"), Seg::Index(i)];
        check_asset(a, &base, &known, &mut assets, &mut out);
        let rule_names = check_rules(a, &base, &sensors, &known, &mut out);
        check_no_data(a, &base, &rule_names, &mut out);
        check_model_name(a, &base, &rule_names, &mut out);
    }
    check_asset_tree(c, &mut out);
    out
}

/// `[agent]`: a name safe in topics, a data directory.
fn check_agent(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    if !is_plain_name(&c.agent.id, &[]) {
        out.push((
            key(&["agent", "id"]),
            "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
        ));
    }
    if c.agent.data_dir.as_os_str().is_empty() {
        out.push((key(&["agent", "data_dir"]), "must not be empty".into()));
    }
}

/// `[storage]` and its rollup tiers.
fn check_storage(c: &Config, out: &mut Vec<(KeyPath, String)>) {
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
    if s.min_free_disk.0 < crate::base::names::WRITE_RESERVE {
        out.push((
            key(&["storage", "min_free_disk"]),
            format!(
                "{} is below the {} the store always keeps free; samples must be refused before that",
                s.min_free_disk,
                super::ByteSize(crate::base::names::WRITE_RESERVE)
            ),
        ));
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
}

/// `[http]`: an address to listen on; off loopback only with users; users and TLS files
/// that can be read and parse.
fn check_http(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    let h = &c.http;
    if !h.enabled {
        return;
    }
    match h.listen.parse::<std::net::SocketAddr>() {
        Err(_) => out.push((
            key(&["http", "listen"]),
            format!("{:?} is not ip:port (e.g. \"127.0.0.1:9321\")", h.listen),
        )),
        Ok(addr) if !addr.ip().is_loopback() && h.users_file.is_none() => out.push((
            key(&["http", "listen"]),
            format!(
                "{} is not a loopback address: set http.users_file (users made by `forewarn passwd`) \
                 so that the API asks for credentials, or listen on 127.0.0.1",
                h.listen
            ),
        )),
        Ok(_) => {}
    }
    if let Some(file) = &h.users_file {
        if let Err(problems) = super::users::parse(file) {
            for p in problems {
                out.push((key(&["http", "users_file"]), p.to_string()));
            }
        }
    }
    match (&h.tls_cert, &h.tls_key) {
        (Some(cert), Some(key_file)) => {
            if let Err(p) = check_pem(cert, key_file) {
                out.push((key(&["http", "tls_cert"]), p));
            }
        }
        (Some(_), None) => out.push((key(&["http", "tls_key"]), "tls_cert needs tls_key".into())),
        (None, Some(_)) => out.push((key(&["http", "tls_cert"]), "tls_key needs tls_cert".into())),
        (None, None) => {}
    }
}

/// A certificate chain and a private key as PEM; whether they belong together is
/// rustls' question at start-up.
fn check_pem(cert: &std::path::Path, key_file: &std::path::Path) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("{}: no PEM private key: {e}", key_file.display()))?;
    Ok(())
}

/// `[upstream]`: the alert topic, the connection and the session.
fn check_upstream(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    let u = &c.upstream;
    check_topic_template(
        &u.alert_topic,
        &["agent", "asset", "site"],
        key(&["upstream", "alert_topic"]),
        out,
    );
    check_upstream_session(c, out);
    if u.max_inflight == 0 {
        out.push((key(&["upstream", "max_inflight"]), "must be at least 1".into()));
    }
    if u.keep_alive.0 < Duration::from_secs(5) {
        out.push((key(&["upstream", "keep_alive"]), "must be at least 5s".into()));
    }
}

/// One asset's id (a unique path) and its sensors (each defined by a register or a
/// subscription).
fn check_asset<'a>(
    a: &'a Asset,
    base: &KeyPath,
    known: &dyn Fn(&str) -> bool,
    ids: &mut HashSet<&'a str>,
    out: &mut Vec<(KeyPath, String)>,
) {
    let valid_id =
        !a.id.starts_with('/') && !a.id.ends_with('/') && !a.id.contains("//") && is_plain_name(&a.id, &['/']);
    if !valid_id {
        out.push((
            at(base, &[k("id")]),
            "must be a path like \"line1/pump1\" of letters, digits, '-', '_', '.'".into(),
        ));
    } else if !ids.insert(a.id.as_str()) {
        out.push((at(base, &[k("id")]), format!("duplicate asset id {:?}", a.id)));
    }
    check_rule_timing(a, base, out);
    for (j, s) in a.sensors.iter().enumerate() {
        if !known(s) {
            out.push((
                at(base, &[k("sensors"), Seg::Index(j)]),
                format!("unknown sensor {s:?}: no register or MQTT subscription defines it"),
            ));
        }
    }
}

/// An asset's rules: unique plain names, numeric sensors, consistent limits. Returns the
/// rule names, which the `no-data` alarm and the model may not reuse.
fn check_rules<'a>(
    a: &'a Asset,
    base: &KeyPath,
    sensors: &HashMap<&str, &Register>,
    known: &dyn Fn(&str) -> bool,
    out: &mut Vec<(KeyPath, String)>,
) -> HashSet<&'a str> {
    let mut rule_names = HashSet::new();
    for (j, r) in a.rule.iter().enumerate() {
        let rb = at(base, &[k("rule"), Seg::Index(j)]);
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
        check_rule_limits(r, &rb, out);
    }
    rule_names
}

/// `no_data`: a sane interval, sensors to watch, a free alarm name.
fn check_no_data(a: &Asset, base: &KeyPath, rule_names: &HashSet<&str>, out: &mut Vec<(KeyPath, String)>) {
    if let Some(d) = a.no_data {
        let nb = at(base, &[k("no_data")]);
        if d.0 < Duration::from_secs(1) || d.0 > Duration::from_secs(86_400) {
            out.push((nb, format!("{d} is outside 1s..1d")));
        } else if a.sensors.is_empty() {
            out.push((nb, "the asset has no sensors to watch".into()));
        } else if rule_names.contains(crate::base::names::NO_DATA_RULE)
            || a.model
                .as_ref()
                .is_some_and(|m| m.name == crate::base::names::NO_DATA_RULE)
        {
            out.push((
                nb,
                format!(
                    "{:?} is the alarm of no_data and also the name of a rule or the model of this asset; rename that one",
                    crate::base::names::NO_DATA_RULE
                ),
            ));
        }
    }
}

/// `[asset.model]`: its options and an alarm name of its own.
fn check_model_name(a: &Asset, base: &KeyPath, rule_names: &HashSet<&str>, out: &mut Vec<(KeyPath, String)>) {
    if let Some(m) = &a.model {
        let mb = at(base, &[k("model")]);
        check_model(m, a.sensors.len(), &mb, out);
        if !is_plain_name(&m.name, &[]) {
            out.push((
                at(&mb, &[k("name")]),
                "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
            ));
        } else if rule_names.contains(m.name.as_str()) {
            out.push((
                at(&mb, &[k("name")]),
                format!(
                    "{:?} is also the name of a rule of this asset; name the model's alarm differently",
                    m.name
                ),
            ));
        }
    }
}

/// Site, status topics, TLS files and credentials of `[upstream]`.
fn check_upstream_session(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    let u = &c.upstream;
    let up = |name: &str| key(&["upstream", name]);
    if let Some(site) = &u.site {
        if !is_plain_name(site, &[]) {
            out.push((
                up("site"),
                "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
            ));
        }
    }
    check_topic_template(&u.status_topic, &["agent", "site"], up("status_topic"), out);
    check_topic_template(&u.heartbeat_topic, &["agent", "site"], up("heartbeat_topic"), out);
    for (name, t) in [
        ("alert_topic", &u.alert_topic),
        ("status_topic", &u.status_topic),
        ("heartbeat_topic", &u.heartbeat_topic),
    ] {
        if u.site.is_none() && t.contains("{site}") {
            out.push((up(name), "uses {site} but upstream.site is not set".into()));
        }
    }
    if u.status_topic == u.heartbeat_topic {
        out.push((up("heartbeat_topic"), "must differ from status_topic".into()));
    }
    if u.heartbeat_interval.0 < Duration::from_secs(1) {
        out.push((up("heartbeat_interval"), "must be at least 1s".into()));
    }

    u.connection().check(&vec![k("upstream")], out);
}

/// `parent` names another asset, and following parents never comes back to the start.
fn check_asset_tree(c: &Config, out: &mut Vec<(KeyPath, String)>) {
    let parent_of: HashMap<&str, &str> = c
        .asset
        .iter()
        .filter_map(|a| a.parent.as_deref().map(|p| (a.id.as_str(), p)))
        .collect();
    for (i, a) in c.asset.iter().enumerate() {
        let Some(parent) = a.parent.as_deref() else { continue };
        let path = vec![k("asset"), Seg::Index(i), k("parent")];
        if parent == a.id {
            out.push((path, "an asset cannot be its own parent".into()));
        } else if !c.asset.iter().any(|o| o.id == parent) {
            out.push((
                path,
                format!("unknown parent {parent:?}: no [[asset]] has this id (declare the parent as an asset, it may have no sensors)"),
            ));
        } else {
            let mut seen = HashSet::from([a.id.as_str()]);
            let mut at_id = parent;
            while let Some(next) = parent_of.get(at_id) {
                if !seen.insert(at_id) {
                    break;
                }
                if *next == a.id {
                    out.push((
                        path,
                        format!("parent {parent:?} leads back to {:?}: the asset tree has a cycle", a.id),
                    ));
                    break;
                }
                at_id = next;
            }
        }
    }
}

fn check_model(m: &super::ModelConfig, sensors: usize, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let mut bad = |name: &str, msg: String| out.push((at(base, &[k(name)]), msg));
    if sensors == 0 {
        bad("detector", "a model needs the asset to have sensors".into());
    }
    if let super::Period::Every(p) = m.period {
        if p.0 < Duration::from_millis(10) || p.0 > Duration::from_secs(3600) {
            bad("period", format!("{p} is outside 10ms..1h (or \"auto\")"));
        }
    }
    let trend = m.trend_window.0;
    if !trend.is_zero() && (trend < Duration::from_secs(600) || trend > Duration::from_secs(7 * 86_400)) {
        bad(
            "trend_window",
            format!("{} is outside 10m..7d (0s: off)", m.trend_window),
        );
    }
    if !(1.0..=100.0).contains(&m.trend_factor) {
        bad("trend_factor", format!("{} is outside 1..100", m.trend_factor));
    }
    if m.max_hold > 1000 {
        bad("max_hold", format!("{} is more than 1000 periods", m.max_hold));
    }
    if m.window == 0 || m.window > 3600 {
        bad("window", format!("{} is outside 1..3600 periods", m.window));
    }
    for (name, v) in [
        ("adapt", m.adapt),
        ("adapt_alarm", m.adapt_alarm),
        ("drift_noise", m.drift_noise),
        ("drift_adapt", m.drift_adapt),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bad(name, format!("{v} is outside 0..1"));
        }
    }
    if !(m.classifier_threshold > 0.0 && m.classifier_threshold <= 1.0) {
        bad(
            "classifier_threshold",
            format!("{} is outside (0, 1]", m.classifier_threshold),
        );
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
    if !(m.calibration >= 0.0 && m.calibration <= 0.5) {
        bad("calibration", format!("{} is outside 0..0.5", m.calibration));
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
    if let Some(every) = m.renotify.filter(|d| d.0 < Duration::from_secs(1)) {
        bad(
            "renotify",
            format!("{every} is shorter than 1s: it would flood the broker"),
        );
    }
    if m.contributors == 0 {
        bad("contributors", "must be at least 1".into());
    }
    if m.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        bad("file", "must not be empty".into());
    }
    for (name, msg) in m.retrain_problems() {
        bad(name, msg);
    }
}

/// Lifecycle durations of an asset's rules.
fn check_rule_timing(a: &super::Asset, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    const DAY: Duration = Duration::from_secs(86_400);
    for (j, r) in a.rule.iter().enumerate() {
        let rb = at(base, &[k("rule"), Seg::Index(j)]);
        for (name, d) in [("min_duration", r.min_duration), ("clear_after", r.clear_after)] {
            if d.0 > DAY {
                out.push((at(&rb, &[k(name)]), format!("{d} is longer than 1d")));
            }
        }
        if let Some(every) = r.renotify.filter(|d| d.0 < Duration::from_secs(1)) {
            out.push((
                at(&rb, &[k("renotify")]),
                format!("{every} is shorter than 1s: it would flood the broker"),
            ));
        }
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
