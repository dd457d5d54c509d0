//! `forewarn check` as an operator runs it: a good config prints a summary and exits 0;
//! a bad one prints every problem with file, line, key and what is wrong, and exits
//! non-zero.

mod common;

use std::process::Command;

use common::check::{assert_problem, check, QUICKSTART};

/// The quick start with one replacement applied (the original must occur).
fn variant(from: &str, to: &str) -> String {
    assert!(QUICKSTART.contains(from), "quickstart has no {from:?}");
    QUICKSTART.replacen(from, to, 1)
}

#[test]
fn quickstart_is_accepted_with_a_summary() {
    let out = check(QUICKSTART);
    assert!(out.ok, "{}", out.stderr);
    for s in [
        "1 modbus device, 2 registers, 2 sensors, 1 asset, 1 rule",
        "mqtt://127.0.0.1:1883",
        "2 requests per poll",
    ] {
        assert!(out.stdout.contains(s), "summary lacks {s:?}:\n{}", out.stdout);
    }
}

#[test]
fn shipped_example_config_is_valid() {
    let out = check(include_str!("../config/forewarn.toml"));
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn unknown_key() {
    assert_problem(
        &variant("unit = 1\n", "unit = 1\ncolour = \"red\"\n"),
        &["FILE:17: modbus[0].colour: unknown field `colour`"],
    );
    assert_problem(
        &format!("{QUICKSTART}\n[extras]\nx = 1\n"),
        &["extras: unknown section `extras`"],
    );
}

#[test]
fn wrong_type() {
    assert_problem(
        &variant("unit = 1", "unit = \"one\""),
        &["FILE:16: modbus[0].unit: invalid type: string \"one\""],
    );
    assert_problem(
        &variant("above = 80.0", "above = \"hot\""),
        &["asset[0].rule[0].above: invalid type"],
    );
}

#[test]
fn unparsable_duration_and_size() {
    assert_problem(
        &variant("interval = \"1s\"", "interval = \"1 sec\""),
        &["FILE:17: modbus[0].interval: invalid duration \"1 sec\""],
    );
    assert_problem(
        &variant("max_disk = \"4GiB\"", "max_disk = \"4 gigs\""),
        &["FILE:7: storage.max_disk: invalid size \"4 gigs\""],
    );
}

#[test]
fn duplicate_sensor() {
    assert_problem(
        &variant("sensor = \"pump1.vibration\"", "sensor = \"pump1.bearing_temp\""),
        &["FILE:28: modbus[0].register[1].sensor: duplicate sensor \"pump1.bearing_temp\""],
    );
}

#[test]
fn rule_on_unknown_sensor() {
    assert_problem(
        &variant(
            "  sensor = \"pump1.bearing_temp\"\n  above",
            "  sensor = \"pump1.oil_temp\"\n  above",
        ),
        &["asset[0].rule[0].sensor: rule on unknown sensor \"pump1.oil_temp\""],
    );
}

#[test]
fn register_address_out_of_range() {
    assert_problem(
        &variant("address = 0", "address = 65535"),
        &["modbus[0].register[0].address: address 65535 out of range"],
    );
    assert_problem(
        &variant("address = 10", "address = 70000"),
        &["modbus[0].register[1].address: address 70000 out of range"],
    );
}

#[test]
fn clear_below_above_the_limit() {
    assert_problem(
        &variant("clear_below = 75.0", "clear_below = 85.0"),
        &["FILE:42: asset[0].rule[0].clear_below: clear_below = 85 is above above = 80"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = variant("interval = \"1s\"", "interval = \"soon\"")
        .replacen("max_disk = \"4GiB\"", "max_disk = \"lots\"", 1)
        .replacen("severity = \"critical\"", "severity = \"apocalyptic\"", 1);
    let out = check(&text);
    assert!(!out.ok);
    assert!(out.stderr.starts_with("3 problems in config:"), "{}", out.stderr);
    for key in ["modbus[0].interval", "storage.max_disk", "asset[0].rule[0].severity"] {
        assert!(out.stderr.contains(key), "{key} missing:\n{}", out.stderr);
    }
}

#[test]
fn syntax_errors_and_missing_sections() {
    assert_problem("[agent\nid = 1\n", &["FILE:1: TOML syntax"]);
    assert_problem("[agent]\nid = \"x\"\n", &["upstream: missing section [upstream]"]);
    let out = check("");
    assert!(
        out.stderr.contains("missing section [agent]") && out.stderr.contains("missing section [upstream]"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["check", "--config", "/nonexistent/forewarn.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/forewarn.toml: cannot read file"));
}

#[test]
fn a_budget_that_cannot_hold_the_retention_is_refused() {
    // 2 sensors at 1 Hz for 10 years cannot fit in 16 MiB.
    let text = variant("raw_retention = \"30d\"", "raw_retention = \"3650d\"").replacen(
        "max_disk = \"4GiB\"",
        "max_disk = \"16MiB\"",
        1,
    );
    let out = check(&text);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("FILE:7: storage.max_disk: 16 MiB cannot hold raw_retention = 3650d"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("short by"), "{}", out.stderr);
    // The same promise with a budget that holds it passes.
    assert!(check(&text.replacen("max_disk = \"16MiB\"", "max_disk = \"4GiB\"", 1)).ok);
}

/// The refusal of samples must come before the store's own write reserve, or sled would
/// be the one to meet a full disk.
#[test]
fn min_free_disk_below_the_write_reserve_is_refused() {
    let text = variant("max_disk = \"4GiB\"", "max_disk = \"4GiB\"\nmin_free_disk = \"1MiB\"");
    assert_problem(
        &text,
        &["storage.min_free_disk: 1MiB is below the 4MiB the store always keeps free"],
    );
    let ok = variant("max_disk = \"4GiB\"", "max_disk = \"4GiB\"\nmin_free_disk = \"4MiB\"");
    assert!(check(&ok).ok, "{}", check(&ok).stderr);
}

#[test]
fn rollup_tiers_and_http_are_checked() {
    let text = variant(
        "max_disk = \"4GiB\"",
        "max_disk = \"4GiB\"\n[[storage.rollup]]\nevery = \"1m\"\nkeep = \"7d\"",
    );
    assert_problem(
        &text,
        &["storage.rollup[0].keep: keep = 7d is shorter than raw_retention = 30d"],
    );
    let ok = variant(
        "max_disk = \"4GiB\"",
        "max_disk = \"4GiB\"\n[[storage.rollup]]\nevery = \"1m\"\nkeep = \"365d\"",
    );
    assert!(check(&ok).ok);
    assert_problem(
        &format!("{QUICKSTART}\n[http]\nlisten = \"localhost\"\n"),
        &["http.listen: \"localhost\" is not ip:port"],
    );
}

/// The quick start with one more device appended (it becomes `modbus[1]`).
fn with_device(device: &str) -> String {
    format!("{QUICKSTART}\n[[modbus]]\ndevice = \"extra\"\n{device}\n")
}

const TCP: &str = "address = \"127.0.0.1:502\"\n";

#[test]
fn tables_and_types_must_match() {
    assert_problem(
        &with_device(&format!(
            "{TCP}[[modbus.register]]\nsensor = \"x\"\nkind = \"coil\"\naddress = 0\ntype = \"u16\"\n"
        )),
        &["modbus[1].register[0].type: coil tables hold single bits: use type = \"bool\""],
    );
    assert_problem(
        &with_device(&format!(
            "{TCP}[[modbus.register]]\nsensor = \"x\"\nkind = \"holding\"\naddress = 0\ntype = \"bool\"\n"
        )),
        &["modbus[1].register[0].type: \"bool\" is for coil and discrete tables"],
    );
}

#[test]
fn bits_and_strings_need_their_options() {
    let reg = |extra: &str| {
        with_device(&format!(
            "{TCP}[[modbus.register]]\nsensor = \"x\"\nkind = \"holding\"\naddress = 0\n{extra}\n"
        ))
    };
    assert_problem(
        &reg("type = \"bit\""),
        &["modbus[1].register[0].bit: type = \"bit\" needs bit = 0..15"],
    );
    assert_problem(
        &reg("type = \"bit\"\nbit = 16"),
        &["modbus[1].register[0].bit: 16 is outside 0..15"],
    );
    assert_problem(
        &reg("type = \"u16\"\nbit = 3"),
        &["register[0].bit: only goes with type = \"bit\""],
    );
    assert_problem(
        &reg("type = \"string\""),
        &["register[0].length: type = \"string\" needs length"],
    );
    assert_problem(
        &reg("type = \"string\"\nlength = 200"),
        &["register[0].length: 200 is outside 1..125"],
    );
    assert_problem(
        &reg("type = \"string\"\nlength = 4\norder = \"CDAB\""),
        &["register[0].order: strings are ABCD"],
    );
    assert_problem(
        &reg("type = \"u16\"\nlength = 4"),
        &["register[0].length: only goes with type = \"string\""],
    );
    assert_problem(
        &reg("type = \"u16\"\ninterval = \"5ms\""),
        &["register[0].interval: must be at least 10ms"],
    );
}

#[test]
fn address_base_and_request_limits() {
    let reg = "[[modbus.register]]\nsensor = \"x\"\nkind = \"holding\"\naddress = 0\ntype = \"u16\"\n";
    assert_problem(
        &with_device(&format!("{TCP}address_base = 1\n{reg}")),
        &["modbus[1].register[0].address: address 0 does not exist with address_base = 1"],
    );
    assert_problem(
        &with_device(&format!("{TCP}address_base = 2\n{reg}")),
        &["modbus[1].address_base: 2 is neither 0 nor 1"],
    );
    assert_problem(
        &with_device(&format!("{TCP}max_bits = 3000\n{reg}")),
        &["modbus[1].max_bits: 3000 is outside 1..2000"],
    );
    assert_problem(
        &with_device(&format!("address = \"plc.local\"\n{reg}")),
        &["modbus[1].address: \"plc.local\" is neither host:port (TCP) nor rtu:///dev/PORT (RTU)"],
    );
}

#[test]
fn serial_settings_belong_to_rtu_and_agree_per_port() {
    let reg =
        |s: &str| format!("[[modbus.register]]\nsensor = \"{s}\"\nkind = \"holding\"\naddress = 0\ntype = \"u16\"\n");
    assert_problem(
        &with_device(&format!("{TCP}baud = 9600\n{}", reg("x"))),
        &["modbus[1].baud: is a serial-line setting; this device is on TCP"],
    );
    assert_problem(
        &with_device(&format!("address = \"rtu://ttyUSB0\"\n{}", reg("x"))),
        &["modbus[1].address: \"rtu://ttyUSB0\": expected rtu:///dev/PORT"],
    );
    assert_problem(
        &with_device(&format!("address = \"rtu:///dev/ttyUSB0\"\nunit = 0\n{}", reg("x"))),
        &["modbus[1].unit: unit id 0 is outside 1..247"],
    );
    assert_problem(
        &with_device(&format!(
            "address = \"rtu:///dev/ttyUSB0\"\nparity = \"mark\"\n{}",
            reg("x")
        )),
        &["modbus[1].parity: unknown variant `mark`"],
    );
    assert_problem(
        &with_device(&format!(
            "address = \"rtu:///dev/ttyUSB0\"\nshared_connection = true\n{}",
            reg("x")
        )),
        &["modbus[1].shared_connection: is for TCP"],
    );
    let two = format!(
        "{}\n[[modbus]]\ndevice = \"second\"\naddress = \"rtu:///dev/ttyUSB0\"\nunit = 1\nbaud = 9600\n{}",
        with_device(&format!("address = \"rtu:///dev/ttyUSB0\"\nunit = 1\n{}", reg("x"))),
        reg("y")
    );
    assert_problem(
        &two,
        &[
            "modbus[2].unit: unit 1 is already polled on /dev/ttyUSB0",
            "modbus[2].address: /dev/ttyUSB0 is also used by device \"extra\" with other line settings (19200 8E1 vs 9600 8E1)",
        ],
    );
}

#[test]
fn rules_need_numbers_not_strings() {
    let text = variant(
        "  type = \"f32\"            # at least u16, i16, u32, i32, f32",
        "  type = \"string\"\n  length = 4",
    );
    assert_problem(
        &text,
        &["asset[0].rule[0].sensor: rule on string sensor \"pump1.bearing_temp\": a threshold needs a number"],
    );
}

#[test]
fn plans_with_groups_bits_and_rtu_are_printed() {
    let out = check(&with_device(
        "address = \"rtu:///dev/ttyUSB0\"\nunit = 3\nbaud = 9600\nparity = \"none\"\naddress_base = 1\n\
         [[modbus.register]]\nsensor = \"a\"\nkind = \"coil\"\naddress = 1\ntype = \"bool\"\n\
         [[modbus.register]]\nsensor = \"b\"\nkind = \"coil\"\naddress = 9\ntype = \"bool\"\n\
         [[modbus.register]]\nsensor = \"c\"\nkind = \"input\"\naddress = 100\ntype = \"string\"\nlength = 8\ninterval = \"1m\"\n",
    ));
    assert!(out.ok, "{}", out.stderr);
    for s in [
        "device extra at rtu:///dev/ttyUSB0 (9600 8N1) unit 3: every 1s, timeout 1s, 1-based addresses, 1 request per poll",
        "    coil 1..9 (9 bits): a, b",
        "   and every 1m: 1 request per poll",
        "    input 100..107 (8 words): c",
    ] {
        assert!(out.stdout.contains(s), "summary lacks {s:?}:\n{}", out.stdout);
    }
}

/// The quick start with an `[[mqtt]]` input appended.
fn with_mqtt(body: &str) -> String {
    format!("{QUICKSTART}\n[[mqtt]]\nbroker = \"mqtt://127.0.0.1:1883\"\n{body}\n")
}

#[test]
fn the_readme_mqtt_example_is_accepted() {
    let text = with_mqtt(
        "client_id = \"forewarn-gw-01-in\"\nqos = 1\nclean_session = false\n[[mqtt.subscribe]]\n\
         topic = \"plant/{line}/{machine}/telemetry\"\nformat = \"json\"\nsensor = \"{machine}.{field}\"\ntimestamp = \"ts\"\n",
    );
    let out = check(&text);
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn mqtt_inputs_are_checked() {
    let sub = |topic: &str, rest: &str| format!("[[mqtt.subscribe]]\ntopic = \"{topic}\"\n{rest}");
    assert_problem(
        &with_mqtt(&sub("plant/x{line}/t", "")),
        &["mqtt[0].subscribe[0].topic:", "whole level"],
    );
    assert_problem(
        &with_mqtt(&sub(
            "plant/{line}/t",
            "format = \"json\"\nsensor = \"{machine}.{field}\"\n",
        )),
        &["mqtt[0].subscribe[0].sensor: unknown placeholder {machine}"],
    );
    assert_problem(
        &with_mqtt(&format!("qos = 2\n{}", sub("a", ""))),
        &["mqtt[0].qos: qos 2 is not supported"],
    );
    assert_problem(
        &with_mqtt(&format!("password = \"x\"\npassword_env = \"P\"\n{}", sub("a", ""))),
        &["mqtt[0].password_env: set only one of password, password_env"],
    );
    // The same credential rules as [upstream]: a password without a user is never sent.
    assert_problem(
        &with_mqtt(&format!("password_file = \"/etc/hostname\"\n{}", sub("a", ""))),
        &["mqtt[0].password_file: a password needs mqtt[0].username"],
    );
    assert_problem(
        &with_mqtt(""),
        &["mqtt[0].subscribe: an [[mqtt]] input needs at least one"],
    );
    // Below 1KiB a few fields do not fit; above 256MiB no MQTT packet reaches the limit.
    for size in ["512B", "1GiB"] {
        assert_problem(
            &with_mqtt(&format!("max_payload = \"{size}\"\n{}", sub("a", ""))),
            &["mqtt[0].max_payload: max_payload must be between 1KiB and 256MiB"],
        );
    }
    let large = with_mqtt(&format!("max_payload = \"16MiB\"\n{}", sub("a", "")));
    assert!(check(&large).ok, "{}", check(&large).stderr);
    assert_problem(
        &with_mqtt(&sub("a/b", "format = \"xml\"\n")),
        &["mqtt[0].subscribe[0].format: unknown variant `xml`"],
    );
    assert_problem(
        &with_mqtt(&sub("a/b", "format = \"number\"\ntimestamp = \"ts\"\n")),
        &["apply to format = \"json\" only"],
    );
    // Line-protocol timestamps in another unit than nanoseconds are named per subscription.
    let seconds = with_mqtt(&sub("t/{host}", "format = \"influx\"\nprecision = \"s\"\n"));
    assert!(check(&seconds).ok, "{}", check(&seconds).stderr);
    assert_problem(
        &with_mqtt(&sub("t/{host}", "format = \"influx\"\nprecision = \"min\"\n")),
        &["mqtt[0].subscribe[0].precision: unknown variant `min`"],
    );
    assert_problem(
        &with_mqtt(&sub("a/b", "format = \"json\"\nprecision = \"ms\"\n")),
        &["mqtt[0].subscribe[0]: `precision` applies to format = \"influx\" only"],
    );
    // A rule may watch a sensor that only an MQTT subscription names.
    let rule_on_mqtt = with_mqtt(&sub("plant/{machine}/temp", "")).replacen(
        "  sensor = \"pump1.bearing_temp\"\n  above",
        "  sensor = \"plant.pump7.temp\"\n  above",
        1,
    );
    assert!(check(&rule_on_mqtt).ok, "{}", check(&rule_on_mqtt).stderr);
    assert_problem(
        &rule_on_mqtt.replacen("plant.pump7.temp", "plant.pump7.pressure", 1),
        &["rule on unknown sensor \"plant.pump7.pressure\""],
    );
}

/// `forewarn check --config PATH`, killed if it has not answered within five seconds, so
/// a file that cannot be read to its end fails the test instead of hanging it.
fn check_path_bounded(path: &std::path::Path) -> (bool, String) {
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .arg("check")
        .arg("--config")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check --config {} did not finish within 5 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn config_files_that_are_not_small_regular_files_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let big = dir.path().join("big.toml");
    let mut text = QUICKSTART.to_string();
    while text.len() <= 4 << 20 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, text).unwrap();
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    for (path, expected) in [
        (
            std::path::PathBuf::from("/dev/zero"),
            "not a regular file (a character device)",
        ),
        (link, "not a regular file (a character device)"),
        (fifo, "not a regular file (a FIFO)"),
        (dir.path().to_path_buf(), "not a regular file (a directory)"),
        (big, "file is larger than 4194304 bytes"),
    ] {
        let (ok, stderr) = check_path_bounded(&path);
        assert!(!ok, "{} was accepted", path.display());
        let line = format!("{}: {expected}", path.display());
        assert!(stderr.contains(&line), "expected {line:?} in:\n{stderr}");
    }
    // A symlink to a good config is followed.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, QUICKSTART).unwrap();
    let to_good = dir.path().join("to-good.toml");
    std::os::unix::fs::symlink(&good, &to_good).unwrap();
    assert!(check_path_bounded(&to_good).0);
}

#[test]
fn a_duplicate_key_is_named() {
    assert_problem(
        &variant("id = \"gw-01\"\n", "id = \"gw-01\"\nid = \"gw-02\"\n"),
        &["TOML syntax: duplicate key `id`"],
    );
    assert_problem(
        &format!("{QUICKSTART}\n[agent]\ndata_dir = \"/tmp\"\n"),
        &["TOML syntax: duplicate key `agent`"],
    );
}

#[test]
fn sizes_and_durations_with_spaces_or_overflow_are_refused() {
    for (from, to, expected) in [
        (
            "interval = \"1s\"",
            "interval = \" 1s\"",
            "modbus[0].interval: invalid duration \" 1s\" (contains a space)",
        ),
        (
            "raw_retention = \"30d\"",
            "raw_retention = \"99999999999999999999d\"",
            "storage.raw_retention: invalid duration \"99999999999999999999d\" (too large)",
        ),
        (
            "max_disk = \"4GiB\"",
            "max_disk = \"4 GiB\"",
            "FILE:7: storage.max_disk: invalid size \"4 GiB\" (contains a space)",
        ),
        (
            "max_disk = \"4GiB\"",
            "max_disk = \"18446744073709551616B\"",
            "storage.max_disk: invalid size \"18446744073709551616B\" (more than 18446744073709551615 bytes)",
        ),
    ] {
        assert_problem(&variant(from, to), &[expected, "e.g."]);
    }
}

#[test]
fn mqtt_max_sensors_is_checked() {
    let sub = "[[mqtt.subscribe]]\ntopic = \"a/{b}\"\n";
    for bad in ["0", "1000001"] {
        assert_problem(
            &with_mqtt(&format!("max_sensors = {bad}\n{sub}")),
            &[&format!(
                "mqtt[0].max_sensors: max_sensors = {bad} is out of range: use 1 to 1000000"
            )],
        );
    }
    assert!(check(&with_mqtt(&format!("max_sensors = 50\n{sub}"))).ok);
}

#[test]
fn forward_destinations_are_checked() {
    let base = QUICKSTART.to_string();
    assert_problem(
        &format!("{base}\n[[forward]]\nname = \"a\"\nto = \"http://h:8086\"\nformat = \"json\"\n"),
        &[
            "forward[0].format: an http:// destination takes format = \"influx\"",
            "forward[0].database: set database",
        ],
    );
    assert_problem(
        &format!("{base}\n[[forward]]\nname = \"a\"\nto = \"mqtt://h\"\nformat = \"influx\"\ndatabase = \"x\"\n"),
        &[
            "forward[0].format: format = \"influx\" needs an http:// destination",
            "forward[0].database: is an InfluxDB option",
        ],
    );
    assert_problem(
        &format!("{base}\n[[forward]]\nname = \"a\"\nto = \"ftp://h\"\nformat = \"json\"\n[[forward]]\nname = \"a\"\nto = \"mqtt://h\"\nformat = \"json\"\nevery = \"10s\"\ndeadband = 1.0\nbatch = 0\n"),
        &["forward[0].to: broker \"ftp://h\" must start with mqtt://", "forward[1].name: \"a\" names another destination too", "forward[1].deadband: applies to raw samples", "forward[1].batch: must be 1..=100000"],
    );
    assert_problem(
        &format!("{base}\n[[forward]]\nname = \"a\"\nto = \"http://h:8086\"\nformat = \"influx\"\nbucket = \"b\"\n"),
        &["forward[0].org: an InfluxDB 2.x bucket needs org"],
    );
    assert_problem(
        &format!("{base}\n[[forward]]\nname = \"a\"\nto = \"mqtt://h\"\nformat = \"json\"\ntopic = \"t/{{nope}}\"\n"),
        &["forward[0].topic"],
    );
    let ok = check(&format!("{base}\n[[forward]]\nname = \"h\"\nto = \"http://h:8086\"\nformat = \"influx\"\ndatabase = \"plant\"\nusername = \"u\"\npassword = \"p\"\n"));
    assert!(ok.ok, "{}", ok.stderr);
    // `check` projects what the destination sends (no polled sensor matches here).
    assert!(
        ok.stdout.contains("forward h to http://h:8086 (influx): "),
        "{}",
        ok.stdout
    );
    assert!(ok.stdout.contains(" B/s"), "{}", ok.stdout);
}

#[test]
fn sparkplug_forwarding_is_accepted_and_its_ids_checked() {
    let sparkplug = "\n[[forward]]\nname = \"scada\"\nto = \"mqtt://127.0.0.1:1883\"\nformat = \"sparkplug\"\ngroup = \"plant\"\nprimary_host = \"scada-1\"\n";
    let out = check(&format!("{QUICKSTART}{sparkplug}"));
    assert!(out.ok, "{}", out.stderr);
    assert_problem(
        &format!(
            "{QUICKSTART}{}",
            sparkplug.replace("group = \"plant\"", "group = \"plant/1\"")
        ),
        &["forward[0].group: \"plant/1\" must be non-empty, without '/', '+' or '#'"],
    );
    assert_problem(
        &format!("{QUICKSTART}{}", sparkplug.replace("\"sparkplug\"", "\"json\"")),
        &[
            "forward[0].group: is a Sparkplug option",
            "forward[0].primary_host: is a Sparkplug option",
        ],
    );
}
