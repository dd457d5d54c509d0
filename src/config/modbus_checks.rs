//! Cross-checks of the `[[modbus]]` sections: names, addresses and their base, which
//! data type goes with which table, serial settings that only make sense on RTU (and
//! must agree between the devices of one port), and request limits. Every problem is
//! reported with its key path; checking carries on so one run reports everything.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::keys::{at, is_plain_name, k, path_string, KeyPath, Seg};
use super::{Config, DataType, Endpoint, ModbusDevice, Register, WordOrder};

type Problems = Vec<(KeyPath, String)>;

/// Checks every device and register; returns the sensors defined, by name.
pub(super) fn check_devices<'c>(c: &'c Config, out: &mut Problems) -> HashMap<&'c str, &'c Register> {
    let mut devices = HashSet::new();
    let mut sensors: HashMap<&str, (&Register, KeyPath)> = HashMap::new();
    // Serial port → (index of the first device on it, unit ids seen).
    let mut ports: HashMap<String, (usize, HashSet<u8>)> = HashMap::new();
    for (i, d) in c.modbus.iter().enumerate() {
        let base = vec![k("modbus"), Seg::Index(i)];
        let key = |name: &str| at(&base, &[k(name)]);
        if !is_plain_name(&d.device, &[]) {
            out.push((
                key("device"),
                "must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
            ));
        } else if !devices.insert(d.device.as_str()) {
            out.push((key("device"), format!("duplicate device name {:?}", d.device)));
        }
        match d.endpoint() {
            Endpoint::Tcp(addr) => check_tcp(d, &addr, &base, out),
            Endpoint::Rtu(path) => {
                check_rtu(d, &path, &base, out);
                check_shared_port(c, i, &path, &mut ports, &base, out);
            }
        }
        check_limits(d, &base, out);
        for (j, r) in d.register.iter().enumerate() {
            let rb = at(&base, &[k("register"), Seg::Index(j)]);
            check_sensor_name(r, &rb, &mut sensors, out);
            check_register(d, r, &rb, out);
        }
    }
    sensors.into_iter().map(|(name, (r, _))| (name, r)).collect()
}

/// Devices on one serial port: distinct unit ids, one set of line settings.
fn check_shared_port(
    c: &Config,
    i: usize,
    path: &str,
    ports: &mut HashMap<String, (usize, HashSet<u8>)>,
    base: &KeyPath,
    out: &mut Problems,
) {
    let d = &c.modbus[i];
    let key = |name: &str| at(base, &[k(name)]);
    let (first, units) = ports.entry(path.to_string()).or_insert((i, HashSet::new()));
    if !units.insert(d.unit) {
        out.push((key("unit"), format!("unit {} is already polled on {path}", d.unit)));
    }
    let first = &c.modbus[*first];
    if first.serial() != d.serial() {
        out.push((
            key("address"),
            format!(
                "{path} is also used by device {:?} with other line settings ({} vs {}); one port has one speed, parity and pause",
                first.device,
                first.serial(),
                d.serial()
            ),
        ));
    }
}

/// A device's address base, timing and request limits, and that it reads something.
fn check_limits(d: &ModbusDevice, base: &KeyPath, out: &mut Problems) {
    let key = |name: &str| at(base, &[k(name)]);
    if d.address_base > 1 {
        out.push((key("address_base"), format!("{} is neither 0 nor 1", d.address_base)));
    }
    if d.interval.0 < Duration::from_millis(10) {
        out.push((key("interval"), "must be at least 10ms".into()));
    }
    if d.timeout.0 < Duration::from_millis(1) {
        out.push((key("timeout"), "must be at least 1ms".into()));
    }
    if d.max_registers == 0 || d.max_registers > 125 {
        out.push((key("max_registers"), format!("{} is outside 1..125", d.max_registers)));
    }
    if d.max_bits == 0 || d.max_bits > 2000 {
        out.push((key("max_bits"), format!("{} is outside 1..2000", d.max_bits)));
    }
    if d.register.is_empty() {
        out.push((
            key("register"),
            "a device needs at least one [[modbus.register]]".into(),
        ));
    }
}

/// A register's sensor name is plain and defined once across every device.
fn check_sensor_name<'c>(
    r: &'c Register,
    rb: &KeyPath,
    sensors: &mut HashMap<&'c str, (&'c Register, KeyPath)>,
    out: &mut Problems,
) {
    if !is_plain_name(&r.sensor, &[':']) {
        out.push((
            at(rb, &[k("sensor")]),
            "must be non-empty and use only letters, digits, '-', '_', '.' and ':'".into(),
        ));
    } else if let Some((_, first)) = sensors.get(r.sensor.as_str()) {
        out.push((
            at(rb, &[k("sensor")]),
            format!(
                "duplicate sensor {:?} (first defined at {})",
                r.sensor,
                path_string(first)
            ),
        ));
    } else {
        sensors.insert(r.sensor.as_str(), (r, rb.clone()));
    }
}

fn check_tcp(d: &ModbusDevice, addr: &str, base: &KeyPath, out: &mut Problems) {
    let key = |name: &str| at(base, &[k(name)]);
    let host_port = addr
        .rsplit_once(':')
        .and_then(|(h, p)| (!h.is_empty()).then(|| p.parse::<u16>().ok()))
        .flatten();
    if host_port.is_none() {
        out.push((
            key("address"),
            format!("{addr:?} is neither host:port (TCP) nor rtu:///dev/PORT (RTU)"),
        ));
    }
    let serial_only = [
        ("baud", d.baud.is_some()),
        ("parity", d.parity.is_some()),
        ("data_bits", d.data_bits.is_some()),
        ("stop_bits", d.stop_bits.is_some()),
        ("pause", d.pause.is_some()),
    ];
    for (name, set) in serial_only {
        if set {
            out.push((
                key(name),
                format!("is a serial-line setting; this device is on TCP ({addr})"),
            ));
        }
    }
}

fn check_rtu(d: &ModbusDevice, path: &str, base: &KeyPath, out: &mut Problems) {
    let key = |name: &str| at(base, &[k(name)]);
    if !path.starts_with('/') || path.len() < 2 {
        out.push((
            key("address"),
            format!("{:?}: expected rtu:///dev/PORT, e.g. rtu:///dev/ttyUSB0", d.address),
        ));
    }
    if d.unit == 0 || d.unit > 247 {
        out.push((
            key("unit"),
            format!("unit id {} is outside 1..247 (0 is broadcast: nobody answers)", d.unit),
        ));
    }
    if d.shared_connection {
        out.push((
            key("shared_connection"),
            "is for TCP; the devices of one serial port always share it".into(),
        ));
    }
    let s = d.serial();
    if !(300..=1_000_000).contains(&s.baud) {
        out.push((key("baud"), format!("{} is outside 300..1000000", s.baud)));
    }
    if !matches!(s.data_bits, 7 | 8) {
        out.push((key("data_bits"), format!("{} is neither 7 nor 8", s.data_bits)));
    }
    if !matches!(s.stop_bits, 1 | 2) {
        out.push((key("stop_bits"), format!("{} is neither 1 nor 2", s.stop_bits)));
    }
    if s.pause > Duration::from_secs(1) {
        out.push((key("pause"), "must be at most 1s".into()));
    }
}

fn check_register(d: &ModbusDevice, r: &Register, rb: &KeyPath, out: &mut Problems) {
    let key = |name: &str| at(rb, &[k(name)]);
    let dt = r.data_type;
    let base = u32::from(d.address_base);
    if r.address < base {
        out.push((
            key("address"),
            "address 0 does not exist with address_base = 1 (the first register is 1)".into(),
        ));
    }
    let last = r.address.saturating_sub(base) + u32::from(r.span().max(1)) - 1;
    if last > 65_535 {
        out.push((
            key("address"),
            format!(
                "address {} out of range: a {} there ends at protocol address {last}, past 65535",
                r.address,
                dt.as_str()
            ),
        ));
    }
    if r.kind.is_bits() && dt != DataType::Bool {
        out.push((
            key("type"),
            format!(
                "{} tables hold single bits: use type = \"bool\" (not {:?})",
                r.kind.as_str(),
                dt.as_str()
            ),
        ));
    } else if !r.kind.is_bits() && dt == DataType::Bool {
        out.push((
            key("type"),
            format!(
                "\"bool\" is for coil and discrete tables; for a bit of a {} register use type = \"bit\" with bit = N",
                r.kind.as_str()
            ),
        ));
    }
    match (dt, r.bit) {
        (DataType::Bit, None) => out.push((key("bit"), "type = \"bit\" needs bit = 0..15".into())),
        (DataType::Bit, Some(b)) if b > 15 => out.push((key("bit"), format!("{b} is outside 0..15"))),
        (DataType::Bit, Some(_)) | (_, None) => {}
        (_, Some(_)) => out.push((key("bit"), "only goes with type = \"bit\"".into())),
    }
    match (dt, r.length) {
        (DataType::String, None) => out.push((key("length"), "type = \"string\" needs length = N registers".into())),
        (DataType::String, Some(n)) if n == 0 || n > d.max_registers => out.push((
            key("length"),
            format!("{n} is outside 1..{} (max_registers)", d.max_registers),
        )),
        (DataType::String, Some(_)) | (_, None) => {}
        (_, Some(_)) => out.push((key("length"), "only goes with type = \"string\"".into())),
    }
    if dt == DataType::String && !matches!(r.order, WordOrder::ABCD | WordOrder::BADC) {
        out.push((
            key("order"),
            "strings are ABCD (first character in the high byte) or BADC (in the low byte)".into(),
        ));
    }
    if dt.words() > d.max_registers {
        out.push((
            key("type"),
            format!(
                "needs {} registers, more than max_registers = {}",
                dt.words(),
                d.max_registers
            ),
        ));
    }
    if !r.scale.is_finite() || r.scale == 0.0 {
        out.push((key("scale"), "must be a finite, non-zero number".into()));
    }
    if !r.offset.is_finite() {
        out.push((key("offset"), "must be a finite number".into()));
    }
    if r.interval.is_some_and(|i| i.0 < Duration::from_millis(10)) {
        out.push((key("interval"), "must be at least 10ms".into()));
    }
}
