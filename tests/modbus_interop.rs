//! Interop with an independent Modbus implementation: a pymodbus server whose register
//! map covers every table, data type, byte order, bit, string, scale and offset, encoded
//! in Python from the definitions of the orders. `forewarn poll --once` must decode every
//! value to exactly what was written (scaled values to within rounding).

mod common;

use std::process::Command;

use common::peer::{forewarn_poll_once, ModbusPeer};
use common::*;
use serde_json::{json, Value};

/// One value in the map and the register that reads it.
struct Case {
    sensor: String,
    table: &'static str,
    address: u32,
    ty: &'static str,
    order: &'static str,
    raw: Value,
    scale: f64,
    offset: f64,
    extra: &'static str,
    expect: Expect,
}

enum Expect {
    Number(f64),
    Text(&'static str),
}

fn numbers() -> Vec<(&'static str, u32, Value, f64)> {
    // (type, registers, raw value, the same as f64)
    vec![
        ("u16", 1, json!(4660), 4660.0),
        ("i16", 1, json!(-1234), -1234.0),
        ("u32", 2, json!(305_419_896u32), 305_419_896.0),
        ("i32", 2, json!(-123_456_789), -123_456_789.0),
        // Distinct bytes 00 01 .. 07, and below 2^53 so f64 holds it exactly.
        (
            "u64",
            4,
            json!(0x0001_0203_0405_0607u64),
            0x0001_0203_0405_0607u64 as f64,
        ),
        (
            "i64",
            4,
            json!(-0x0001_0203_0405_0607i64),
            -(0x0001_0203_0405_0607i64 as f64),
        ),
        ("f32", 2, json!(123.456), 123.456),
        ("f64", 4, json!(-9876.54321), -9876.54321),
    ]
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut case = |table, address, ty, order, raw: Value, scale, offset, extra, expect| {
        out.push(Case {
            sensor: format!("{table}.{ty}.{order}.{address}.{}", out.len()),
            table,
            address,
            ty,
            order,
            raw,
            scale,
            offset,
            extra,
            expect,
        })
    };
    // Every type in every order, in the holding table, unscaled.
    let mut address = 0;
    for (ty, words, raw, v) in numbers() {
        for order in ["ABCD", "DCBA", "BADC", "CDAB"] {
            case(
                "holding",
                address,
                ty,
                order,
                raw.clone(),
                1.0,
                0.0,
                "",
                Expect::Number(v),
            );
            address += words;
        }
    }
    // The input table, scaled and offset, far enough away to be a separate request.
    let mut address = 1000;
    for (ty, words, raw, v) in numbers() {
        for order in ["ABCD", "CDAB"] {
            case(
                "input",
                address,
                ty,
                order,
                raw.clone(),
                0.1,
                -5.0,
                "",
                Expect::Number(v * 0.1 - 5.0),
            );
            address += words;
        }
    }
    // Bit tables; bits of registers (bit 0 and bit 15 of holding 500 are set, bit 7 of
    // input 600 is not); strings, first character in the high byte and in the low byte.
    let singles = [
        ("coil", 10, "bool", "ABCD", json!(1), "", Expect::Number(1.0)),
        ("coil", 11, "bool", "ABCD", json!(0), "", Expect::Number(0.0)),
        ("discrete", 20, "bool", "ABCD", json!(1), "", Expect::Number(1.0)),
        ("discrete", 27, "bool", "ABCD", json!(0), "", Expect::Number(0.0)),
        ("holding", 500, "bit", "ABCD", json!(1), "bit = 0", Expect::Number(1.0)),
        ("holding", 500, "bit", "ABCD", json!(1), "bit = 15", Expect::Number(1.0)),
        ("input", 600, "bit", "ABCD", json!(0), "bit = 7", Expect::Number(0.0)),
        (
            "holding",
            700,
            "string",
            "ABCD",
            json!("PUMP-7"),
            "length = 4",
            Expect::Text("PUMP-7"),
        ),
        (
            "input",
            710,
            "string",
            "BADC",
            json!("SN12345"),
            "length = 4",
            Expect::Text("SN12345"),
        ),
    ];
    for (table, address, ty, order, raw, extra, expect) in singles {
        case(table, address, ty, order, raw, 1.0, 0.0, extra, expect);
    }
    out
}

fn bit_of(extra: &str) -> Option<u8> {
    extra.strip_prefix("bit = ").and_then(|b| b.parse().ok())
}

fn peer_map(cases: &[Case]) -> Value {
    let values: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut v = json!({"table": c.table, "address": c.address, "type": c.ty, "order": c.order, "value": c.raw});
            if let Some(bit) = bit_of(c.extra) {
                v["bit"] = json!(bit);
            }
            if c.ty == "string" {
                v["length"] = json!(4);
            }
            v
        })
        .collect();
    json!({"values": values})
}

fn register_toml(c: &Case, base: u32, prefix: &str) -> String {
    format!(
        "  [[modbus.register]]\n  sensor = \"{prefix}{}\"\n  kind = \"{}\"\n  address = {}\n  type = \"{}\"\n  order = \"{}\"\n  scale = {:?}\n  offset = {:?}\n  {}\n",
        c.sensor,
        c.table,
        c.address + base,
        c.ty,
        c.order,
        c.scale,
        c.offset,
        c.extra
    )
}

const HEAD: &str = "[agent]\nid = \"interop\"\n[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n";

#[test]
fn every_type_order_table_and_scale_decodes_as_written() {
    let cases = cases();
    let port = free_port();
    let _peer = ModbusPeer::tcp(&peer_map(&cases), port);

    let mut config = format!("{HEAD}[[modbus]]\ndevice = \"plc\"\naddress = \"127.0.0.1:{port}\"\ntimeout = \"2s\"\n");
    for c in &cases {
        config += &register_toml(c, 0, "");
    }
    // The same map through a device that numbers registers from 1, as manuals do.
    config += &format!(
        "[[modbus]]\ndevice = \"plc-1based\"\naddress = \"127.0.0.1:{port}\"\naddress_base = 1\ntimeout = \"2s\"\n"
    );
    for c in cases.iter().filter(|c| c.table == "holding") {
        config += &register_toml(c, 1, "b1.");
    }

    let (lines, code, _) = forewarn_poll_once(&config);
    let expected = cases.len() + cases.iter().filter(|c| c.table == "holding").count();
    assert_eq!(lines.len(), expected, "{lines:#?}");
    for line in &lines {
        let sensor = line["sensor"].as_str().unwrap();
        let case = cases
            .iter()
            .find(|c| c.sensor == sensor.trim_start_matches("b1."))
            .unwrap();
        assert_eq!(line["quality"], "good", "{line}");
        match case.expect {
            Expect::Number(want) => {
                let got = line["value"].as_f64().unwrap();
                let tolerance = if case.scale == 1.0 { 0.0 } else { want.abs() * 1e-12 };
                assert!(
                    (got - want).abs() <= tolerance,
                    "{sensor}: got {got}, want {want} ({line})"
                );
            }
            Expect::Text(want) => assert_eq!(line["text"], want, "{line}"),
        }
        assert!(line["raw"].as_array().is_some_and(|r| !r.is_empty()), "{line}");
    }
    assert_eq!(code, Some(0), "poll exits 0 when every value is good");
}

#[test]
fn raw_registers_are_shown_in_hex() {
    let port = free_port();
    let _peer = ModbusPeer::tcp(
        &json!({"values": [{"table": "holding", "address": 3, "type": "f32", "order": "CDAB", "value": 123.456}]}),
        port,
    );
    let config = format!(
        "{HEAD}[[modbus]]\ndevice = \"d\"\naddress = \"127.0.0.1:{port}\"\n  [[modbus.register]]\n  sensor = \"t\"\n  kind = \"holding\"\n  address = 3\n  type = \"f32\"\n  order = \"CDAB\"\n  unit = \"degC\"\n"
    );
    let (lines, _, _) = forewarn_poll_once(&config);
    assert_eq!(
        lines,
        vec![
            json!({"sensor": "t", "device": "d", "value": 123.456, "quality": "good", "raw": ["0xE979", "0x42F6"], "unit": "degC"})
        ]
    );
}

#[test]
fn probe_prints_every_interpretation() {
    let port = free_port();
    let _peer = ModbusPeer::tcp(
        &json!({"values": [{"table": "holding", "address": 3, "type": "f32", "order": "CDAB", "value": 123.456}]}),
        port,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forewarn.toml");
    let config = format!(
        "{HEAD}[[modbus]]\ndevice = \"d\"\naddress = \"127.0.0.1:{port}\"\n  [[modbus.register]]\n  sensor = \"t\"\n  kind = \"holding\"\n  address = 3\n  type = \"u16\"\n"
    );
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["poll", "--config"])
        .arg(&path)
        .args(["--probe", "d", "3", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("0xE979 0x42F6"), "{text}");
    let f32_row = text.lines().find(|l| l.contains(" f32 ")).unwrap_or_default();
    // The CDAB column (the last) shows the value that was written.
    assert!(f32_row.trim_end().ends_with("123.456"), "{text}");
    assert!(
        text.lines().any(|l| l.contains(" u16 ") && l.contains("59769")),
        "{text}"
    );
}
