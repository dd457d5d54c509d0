//! Cross-checks of the `[[mqtt]]` inputs: broker URLs and their TLS files, credentials,
//! client ids, topic templates, and sensor-name templates whose placeholders a
//! subscription can fill. Returns what each subscription can name, so that rules and
//! assets may refer to MQTT sensors that exist only once their first message arrives.

use std::collections::HashSet;

use super::broker::parse_broker;
use super::keys::{at, k, readable, KeyPath, Seg};
use super::{Config, PayloadFormat};

/// Checks `[[mqtt]]`; returns a glob per subscription of the sensor names it can produce.
pub(super) fn check_mqtt(c: &Config, out: &mut Vec<(KeyPath, String)>) -> Vec<String> {
    let mut globs = Vec::new();
    let mut client_ids = HashSet::new();
    for (i, m) in c.mqtt.iter().enumerate() {
        let base = vec![k("mqtt"), Seg::Index(i)];
        let tls = match parse_broker(&m.broker) {
            Ok(b) => b.tls,
            Err(e) => {
                out.push((at(&base, &[k("broker")]), e));
                false
            }
        };
        if tls && m.ca_file.is_none() {
            out.push((
                at(&base, &[k("ca_file")]),
                "an mqtts:// broker needs ca_file (the CA that signed the broker's certificate)".into(),
            ));
        }
        for (name, file) in [
            ("ca_file", &m.ca_file),
            ("client_cert", &m.client_cert),
            ("client_key", &m.client_key),
        ] {
            let Some(path) = file else { continue };
            if !tls {
                out.push((at(&base, &[k(name)]), "TLS options need an mqtts:// broker".into()));
            }
            readable(path, at(&base, &[k(name)]), out);
        }
        if m.client_cert.is_some() != m.client_key.is_some() {
            out.push((
                at(&base, &[k("client_key")]),
                "client_cert and client_key go together".into(),
            ));
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
            let topic_vars = match super::TopicTemplate::parse(&sub.topic) {
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
            let template = super::sensor_template(sub);
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
            globs.push(super::sensor_glob(&template, &sub.topic));
        }
    }
    globs
}
