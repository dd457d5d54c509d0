//! Cross-checks of the `[[mqtt]]` inputs: broker URLs and their TLS files, credentials,
//! client ids, topic templates, and sensor-name templates whose placeholders a
//! subscription can fill. Returns what each subscription can name, so that rules and
//! assets may refer to MQTT sensors that exist only once their first message arrives.

use std::collections::HashSet;

use super::keys::{at, k, KeyPath, Seg};
use super::{Config, PayloadFormat, Subscription};

/// The largest `max_sensors`: beyond it the bound no longer protects the registry.
const MAX_SENSORS_LIMIT: usize = 1_000_000;

/// Checks `[[mqtt]]`; returns a glob per subscription of the sensor names it can produce.
pub(super) fn check_mqtt(c: &Config, out: &mut Vec<(KeyPath, String)>) -> Vec<String> {
    let mut globs = Vec::new();
    let mut client_ids = HashSet::new();
    for (i, m) in c.mqtt.iter().enumerate() {
        let base = vec![k("mqtt"), Seg::Index(i)];
        m.connection().check(&base, out);
        if m.qos > 1 {
            out.push((
                at(&base, &[k("qos")]),
                format!("qos {} is not supported: use 0 or 1", m.qos),
            ));
        }
        check_max_payload(m.max_payload.0, &base, out);
        let id = c.mqtt_client_id(i);
        if !client_ids.insert(id.clone()) {
            out.push((
                at(&base, &[k("client_id")]),
                format!("client id {id:?} is used twice; the broker would disconnect one of them"),
            ));
        }
        if !(1..=MAX_SENSORS_LIMIT).contains(&m.max_sensors) {
            out.push((
                at(&base, &[k("max_sensors")]),
                format!(
                    "max_sensors = {} is out of range: use 1 to {MAX_SENSORS_LIMIT}",
                    m.max_sensors
                ),
            ));
        }
        if m.subscribe.is_empty() {
            out.push((
                at(&base, &[k("subscribe")]),
                "an [[mqtt]] input needs at least one [[mqtt.subscribe]]".into(),
            ));
        }
        for (j, sub) in m.subscribe.iter().enumerate() {
            let sb = at(&base, &[k("subscribe"), Seg::Index(j)]);
            globs.extend(check_subscription(sub, &sb, out));
        }
    }
    globs
}

/// The smallest and largest `max_payload`: below 1 KiB a few JSON fields would not fit;
/// the largest is the most an MQTT packet can carry (its remaining length is at most
/// 256 MiB), so any limit above it would never apply.
pub(super) const MAX_PAYLOAD_RANGE: (u64, u64) = (1 << 10, 256 << 20);

fn check_max_payload(bytes: u64, base: &KeyPath, out: &mut Vec<(KeyPath, String)>) {
    let (low, high) = MAX_PAYLOAD_RANGE;
    if !(low..=high).contains(&bytes) {
        out.push((
            at(base, &[k("max_payload")]),
            format!("max_payload must be between 1KiB and 256MiB, not {bytes} bytes"),
        ));
    }
}

/// One subscription: its topic template, the placeholders of its sensor template, and the
/// options of its format. Returns the glob of the names it can produce.
fn check_subscription(sub: &Subscription, sb: &KeyPath, out: &mut Vec<(KeyPath, String)>) -> Option<String> {
    let topic_vars = match super::TopicTemplate::parse(&sub.topic) {
        Ok(t) => t.vars().map(str::to_string).collect::<Vec<_>>(),
        Err(e) => {
            out.push((at(sb, &[k("topic")]), e));
            return None;
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
    check_sensor_template(sub, &template, &topic_vars, format_vars, sb, out);
    if sub.format != PayloadFormat::Json && (sub.timestamp.is_some() || sub.value.is_some()) {
        out.push((
            sb.clone(),
            "`timestamp` and `value` apply to format = \"json\" only".into(),
        ));
    }
    if sub.format != PayloadFormat::Influx && sub.precision.is_some() {
        out.push((sb.clone(), "`precision` applies to format = \"influx\" only".into()));
    }
    Some(super::sensor_glob(&template, &sub.topic))
}

/// Every `{name}` of the sensor template is one the topic or the format fills.
fn check_sensor_template(
    sub: &Subscription,
    template: &str,
    topic_vars: &[String],
    format_vars: &[&str],
    sb: &KeyPath,
    out: &mut Vec<(KeyPath, String)>,
) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            out.push((at(sb, &[k("sensor")]), format!("unclosed '{{' in {template:?}")));
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
                at(sb, &[k("sensor")]),
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
}
