//! Commissioning: `forewarn poll --once` reads every configured value once and reports
//! each as a JSON line; `--probe` reads a few registers and shows every interpretation of
//! them, so byte orders are read off a table instead of guessed.
//!
//! Buses are read in parallel and every request is bounded by its device's timeout, so a
//! run lasts about one timeout even when a device hangs; values that could not be read
//! say why (`timeout`, `disconnected`, `exception 02 (illegal data address)`, ...).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::{DataType, ModbusDevice, RegisterKind, WordOrder};
use crate::stats::DeviceStats;

use super::bus::Outcome;
use super::decode::{decode, decode_integer, decode_string};
use super::link::{Link, ReadFailure};
use super::plan::ReadRequest;
use super::plan_buses;
use super::reading::{self, Data};

/// Reads every register of `devices` once; one JSON object per sensor, in config order.
pub async fn poll_once(devices: &[ModbusDevice]) -> Vec<Value> {
    let registers: Vec<(&ModbusDevice, &crate::config::Register)> = devices
        .iter()
        .flat_map(|d| d.register.iter().map(move |r| (d, r)))
        .collect();
    let index: HashMap<&str, u32> = registers
        .iter()
        .enumerate()
        .map(|(i, (_, r))| (r.sensor.as_str(), i as u32))
        .collect();
    let buses = plan_buses(devices, &|name| index[name], &|_| Arc::new(DeviceStats::default()));
    let tasks: Vec<_> = buses
        .into_iter()
        .map(|planned| {
            tokio::spawn(async move {
                let mut bus = planned.bus;
                let mut found: Vec<(u32, Value)> = Vec::new();
                let mut sink = |r: &ReadRequest, _ts: i64, outcome: Outcome<'_>| {
                    for f in &r.fields {
                        let line = match &outcome {
                            Outcome::Data(data) => {
                                let mut line = match reading::field_value(f, data) {
                                    Ok(v) => json!({"value": v, "quality": "good"}),
                                    Err(q) => json!({"value": null, "quality": q.to_string()}),
                                };
                                line["raw"] = json!(reading::field_raw(f, data));
                                if let Some(text) = reading::field_text(f, data) {
                                    line["text"] = json!(text);
                                }
                                line
                            }
                            Outcome::Failed(q) => json!({"value": null, "quality": q.to_string(), "raw": []}),
                        };
                        found.push((f.sensor, line));
                    }
                };
                for u in 0..bus.units.len() {
                    for g in 0..bus.units[u].groups.len() {
                        bus.poll_group(u, g, true, &mut sink).await;
                    }
                }
                bus.close().await;
                found
            })
        })
        .collect();
    let mut by_sensor: HashMap<u32, Value> = HashMap::new();
    for t in tasks {
        if let Ok(found) = t.await {
            by_sensor.extend(found);
        }
    }
    registers
        .iter()
        .enumerate()
        .map(|(i, (d, r))| {
            let mut line = json!({"sensor": r.sensor, "device": d.device});
            if let Some(Value::Object(read)) = by_sensor.remove(&(i as u32)) {
                line.as_object_mut().into_iter().for_each(|o| o.extend(read.clone()));
            } else {
                line["value"] = Value::Null;
                line["quality"] = json!("not read");
            }
            if let Some(unit) = &r.unit {
                line["unit"] = json!(unit);
            }
            line
        })
        .collect()
}

/// Reads `count` registers (or bits) of `table` from `address` (in the device's address
/// base) and renders every interpretation as a table.
pub async fn probe(device: &ModbusDevice, table: RegisterKind, address: u32, count: u16) -> Result<String, String> {
    let start = address
        .checked_sub(u32::from(device.address_base))
        .and_then(|a| u16::try_from(a).ok())
        .filter(|a| u32::from(*a) + u32::from(count) <= 65_536)
        .ok_or_else(|| format!("address {address} with {count} values is outside the device's address range"))?;
    let limit = device.timeout.as_duration();
    let mut link = Link::new(device.endpoint(), device.serial());
    link.open(limit).await?;
    let req = ReadRequest {
        kind: table,
        start,
        count,
        fields: Vec::new(),
        last_exception: None,
    };
    let data = link.read(device.unit, &req, limit).await.map_err(|f| match f {
        ReadFailure::Exception(c) => crate::base::sample::Quality::Exception(c).to_string(),
        ReadFailure::Timeout => format!("no answer within {limit:?}"),
        ReadFailure::Transport(e) => e,
    });
    link.close(limit).await;
    Ok(render_probe(device, table, address, &data?))
}

/// Every type and byte order of `data`, starting at each register.
pub fn render_probe(device: &ModbusDevice, table: RegisterKind, address: u32, data: &Data) -> String {
    let mut s = String::new();
    let words = match data {
        Data::Bits(bits) => {
            let _ = writeln!(s, "{} {} from {address}:", device.device, table.as_str());
            for (i, b) in bits.iter().enumerate() {
                let _ = writeln!(s, "  {:>5}  {}", address + i as u32, u8::from(*b));
            }
            return s;
        }
        Data::Words(w) => w,
    };
    let hex: Vec<String> = words.iter().map(|w| format!("0x{w:04X}")).collect();
    let _ = writeln!(
        s,
        "{} {} {address}..{}: {}",
        device.device,
        table.as_str(),
        address + words.len().max(1) as u32 - 1,
        hex.join(" ")
    );
    let _ = writeln!(
        s,
        "{:>7}  {:<6} {:>24} {:>24} {:>24} {:>24}",
        "address", "type", "ABCD", "DCBA", "BADC", "CDAB"
    );
    let types = [
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::F32,
        DataType::U64,
        DataType::I64,
        DataType::F64,
    ];
    for i in 0..words.len() {
        for dt in types {
            let Some(w) = words.get(i..i + usize::from(dt.words())) else {
                continue;
            };
            let _ = write!(s, "{:>7}  {:<6}", address + i as u32, dt.as_str());
            for order in WordOrder::ALL {
                let _ = write!(s, " {:>24}", format_value(w, dt, order));
            }
            s.push('\n');
        }
    }
    for order in [WordOrder::ABCD, WordOrder::BADC] {
        let _ = writeln!(s, "string ({}): {:?}", order.as_str(), decode_string(words, order));
    }
    s
}

/// One cell of the probe table: integers exactly (a u64 counter past 2^53 would lose its
/// last digits as an f64), floats in their shortest form.
fn format_value(words: &[u16], dt: DataType, order: WordOrder) -> String {
    match decode_integer(words, dt, order) {
        Some(n) => n.to_string(),
        None => format_number(decode(words, dt, order)),
    }
}

fn format_number(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e15 || (v != 0.0 && v.abs() < 1e-6) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_bit_integers_are_shown_exactly() {
        // 2^63 + 1 and -(2^63) + 1: neither survives a round trip through f64.
        let u = [0x8000, 0x0000, 0x0000, 0x0001];
        assert_eq!(format_value(&u, DataType::U64, WordOrder::ABCD), "9223372036854775809");
        assert_eq!(format_value(&u, DataType::I64, WordOrder::ABCD), "-9223372036854775807");
        assert_eq!(
            format_value(&[0xFFFF; 4], DataType::U64, WordOrder::ABCD),
            "18446744073709551615"
        );
        assert_eq!(format_value(&[0xFFFF; 4], DataType::I64, WordOrder::ABCD), "-1");
        assert_eq!(format_value(&[0x0001, 0, 0, 0], DataType::U64, WordOrder::CDAB), "1");
        assert_eq!(format_value(&[0xFFFE], DataType::I16, WordOrder::ABCD), "-2");
        // Floats keep their shortest decimal form.
        assert_eq!(format_value(&[0x3FC0, 0x0000], DataType::F32, WordOrder::ABCD), "1.5");
    }
}
