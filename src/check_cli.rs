//! `forewarn check`: what a valid config will do, in a few lines for the person who wrote
//! it; the problems of an invalid one are the config layer's own report.

use forewarn::config::Config;
use forewarn::source::modbus::describe;

/// The short description `forewarn check` prints for a valid config.
pub(crate) fn summary(c: &Config) -> String {
    use std::fmt::Write;
    let registers: usize = c.modbus.iter().map(|d| d.register.len()).sum();
    let rules: usize = c.asset.iter().map(|a| a.rule.len()).sum();
    let mut s = String::new();
    let _ = writeln!(s, "agent {} (data in {})", c.agent.id, c.agent.data_dir.display());
    let _ = writeln!(
        s,
        "{} modbus device{}, {registers} register{}, {} sensor{}, {} asset{}, {rules} rule{}",
        c.modbus.len(),
        plural(c.modbus.len()),
        plural(registers),
        c.modbus_sensors().count(),
        plural(c.modbus_sensors().count()),
        c.asset.len(),
        plural(c.asset.len()),
        plural(rules)
    );
    for d in &c.modbus {
        s.push_str(&describe(d));
    }
    let _ = writeln!(
        s,
        "storage: keep raw {} within {}, flush every {}",
        c.storage.raw_retention, c.storage.max_disk, c.storage.flush_interval
    );
    let _ = writeln!(s, "alerts to {} on {}", c.upstream.broker, c.upstream.alert_topic);
    for f in &c.forward {
        let p = f.projection(c, &c.agent.id);
        let _ = writeln!(
            s,
            "forward {} to {} ({}): {} polled sensor{}, {}{:.1} samples/s, about {:.0} B/s{}",
            f.name,
            f.to,
            format!("{:?}", f.format).to_lowercase(),
            p.polled_sensors,
            plural(p.polled_sensors),
            if f.deadband.is_some() { "at most " } else { "" },
            p.per_second,
            p.bytes_per_second,
            if c.mqtt.is_empty() {
                ""
            } else {
                " (MQTT sensors add their own rate)"
            }
        );
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
