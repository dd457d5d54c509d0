//! Tests of the Sparkplug B decoder: hand-computed wire bytes, births and aliases, signed
//! types, sequence gaps, malformed input, a deterministic fuzz loop and the corpus.
use super::*;

const NBIRTH: &str = "spBv1.0/plant1/NBIRTH/edge1";
const NDATA: &str = "spBv1.0/plant1/NDATA/edge1";
const NDEATH: &str = "spBv1.0/plant1/NDEATH/edge1";
const NCMD: &str = "spBv1.0/plant1/NCMD/edge1";
const DBIRTH: &str = "spBv1.0/plant1/DBIRTH/edge1/pump";
const DDATA: &str = "spBv1.0/plant1/DDATA/edge1/pump";
const DDEATH: &str = "spBv1.0/plant1/DDEATH/edge1/pump";
const DCMD: &str = "spBv1.0/plant1/DCMD/edge1/pump";
const STATE: &str = "spBv1.0/STATE/scada1";

fn m(name: &str, alias: Option<u64>, datatype: Option<u32>, value: Value) -> Metric {
    let name = Some(name.as_bytes().to_vec()).filter(|n| !n.is_empty());
    let value = Some(value);
    Metric {
        name,
        alias,
        datatype,
        value,
        ..Metric::default()
    }
}

/// A metric that is sent by alias only, as in DATA messages.
fn by_alias(alias: u64, value: Value) -> Metric {
    m("", Some(alias), None, value)
}

fn pl(seq: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        seq,
        metrics,
        ..Payload::default()
    }
    .encode_to_vec()
}

fn run(sp: &mut Sparkplug, topic: &str, payload: &[u8]) -> Decoded {
    sp.decode(topic, payload).unwrap_or_else(|e| panic!("{topic}: {e}"))
}

fn values(d: &Decoded) -> Vec<(String, f64)> {
    d.readings.iter().map(|r| (r.vars[3].1.clone(), r.value)).collect()
}

fn vals(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Written from the protobuf wire format by hand, so field numbers and
/// wire types are checked independently of the structs above.
#[rustfmt::skip]
const HAND_NBIRTH: &[u8] = &[
    0x08, 0xE8, 0x07,                                      // timestamp = 1000
    0x12, 0x0D, 0x0A, 0x01, b'a', 0x10, 0x01, 0x20, 0x03,  // "a", alias 1, Int32
          0x50, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F,              //   int_value = -2
    0x12, 0x0E, 0x0A, 0x01, b'b', 0x20, 0x0A,              // "b", Double
          0x69, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F,              //   double_value = 1.5
    0x12, 0x0D, 0x0A, 0x01, b'c', 0x18, 0xD0, 0x0F,        // "c", timestamp 2000
          0x20, 0x09, 0x65, 0, 0, 0x20, 0x40,              //   Float, 2.5
    0x12, 0x10, 0x0A, 0x01, b'd', 0x20, 0x04, 0x58,        // "d", Int64, long_value
          0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, // = -1
    0x12, 0x07, 0x0A, 0x01, b'e', 0x20, 0x0B, 0x70, 0x01,  // "e", Boolean true
    0x12, 0x07, 0x0A, 0x01, b'f', 0x20, 0x03, 0x38, 0x01,  // "f", Int32, is_null
    0x12, 0x09, 0x0A, 0x01, b'g', 0x20, 0x0C,              // "g", String
          0x7A, 0x02, b'h', b'i',                          //   string_value "hi"
    0x18, 0x05,                                            // seq = 5
    0x22, 0x01, b'u',                                      // uuid = "u"
];

#[test]
fn hand_written_payload_matches_the_wire_format() {
    let parsed = Payload::decode(HAND_NBIRTH).expect("valid payload");
    // Re-encoding gives the same bytes minus the uuid, which is skipped.
    assert_eq!(parsed.encode_to_vec(), HAND_NBIRTH[..HAND_NBIRTH.len() - 3]);
    let mut sp = Sparkplug::default();
    let d = run(&mut sp, NBIRTH, HAND_NBIRTH);
    let want = [("a", -2.0), ("b", 1.5), ("c", 2.5), ("d", -1.0), ("e", 1.0)];
    assert_eq!((d.kind, values(&d)), (MessageKind::NBirth, vals(&want)));
    let ts: Vec<Option<i64>> = d.readings.iter().map(|r| r.ts_ms).collect();
    assert_eq!(ts, [Some(1000), Some(1000), Some(2000), Some(1000), Some(1000)]);
    assert_eq!((d.nulls, d.unknown_aliases, d.seq_gap), (1, 0, None));
    assert_eq!(d.non_numeric, [("g".to_owned(), "String")]);
    // Alias 1 with no datatype: Int32 from the birth; seq 6 follows 5.
    let ndata = [0x12, 0x08, 0x10, 0x01, 0x50, 0xFD, 0xFF, 0xFF, 0xFF, 0x0F, 0x18, 0x06];
    let d = run(&mut sp, NDATA, &ndata);
    assert_eq!((values(&d), d.seq_gap), (vals(&[("a", -3.0)]), None));
    assert_eq!(d.readings[0].ts_ms, None);
}

#[test]
fn aliases_resolve_for_node_and_device() {
    let mut sp = Sparkplug::default();
    let rebirth = m("Node Control/Rebirth", Some(2), Some(11), Value::Boolean(false));
    let temp = m("Temp", Some(1), Some(10), Value::Double(20.5));
    let birth = vec![m("bdSeq", None, Some(8), Value::Long(3)), rebirth, temp];
    let d = run(&mut sp, NBIRTH, &pl(Some(0), birth));
    assert_eq!(
        values(&d),
        vals(&[("bdSeq", 3.0), ("Node Control/Rebirth", 0.0), ("Temp", 20.5)])
    );
    let speed = m("Speed", Some(1), Some(2), Value::Int(0xFED4));
    let d = run(&mut sp, DBIRTH, &pl(Some(1), vec![speed]));
    assert_eq!(values(&d), vals(&[("Speed", -300.0)]));
    let d = run(&mut sp, NDATA, &pl(Some(2), vec![by_alias(1, Value::Double(21.0))]));
    let vars: Vec<String> = d.readings[0].vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(vars.join(" "), "group=plant1 node=edge1 device= metric=Temp");
    assert_eq!(
        (d.readings.len(), d.readings[0].value, d.readings[0].ts_ms),
        (1, 21.0, None)
    );
    let by_name = m("Speed", None, None, Value::Int(7));
    let data = vec![by_alias(1, Value::Int(-5i32 as u32)), by_name];
    let d = run(&mut sp, DDATA, &pl(Some(3), data));
    assert_eq!(values(&d), vals(&[("Speed", -5.0), ("Speed", 7.0)]));
    assert_eq!(d.readings[0].vars[2], ("device".to_owned(), "pump".to_owned()));
    assert_eq!((d.kind, d.seq_gap, d.unknown_aliases), (MessageKind::DData, None, 0));
}

#[test]
fn signed_and_unsigned_integers() {
    let cases = [
        (Some(1), Value::Int(0xFB), -5.0),
        (Some(1), Value::Int(-5i32 as u32), -5.0),
        (Some(2), Value::Int(0xFFFE), -2.0),
        (Some(3), Value::Int(i32::MIN as u32), f64::from(i32::MIN)),
        (Some(3), Value::Long(-7i64 as u64), -7.0),
        (Some(4), Value::Long(-9i64 as u64), -9.0),
        (Some(5), Value::Int(250), 250.0),
        (Some(7), Value::Int(4_000_000_000), 4e9),
        (Some(7), Value::Long(4_000_000_000), 4e9),
        (Some(8), Value::Long(u64::MAX), u64::MAX as f64),
        (None, Value::Int(u32::MAX), f64::from(u32::MAX)),
    ];
    let metrics = cases.iter().map(|(dt, v, _)| m("x", None, *dt, v.clone())).collect();
    let d = run(&mut Sparkplug::default(), NBIRTH, &pl(Some(0), metrics));
    let got: Vec<f64> = d.readings.iter().map(|r| r.value).collect();
    assert_eq!(got, cases.iter().map(|c| c.2).collect::<Vec<_>>());
}

#[test]
fn seq_gaps_are_reported_with_the_readings() {
    let mut sp = Sparkplug::default();
    let one = |seq| pl(seq, vec![m("x", None, Some(10), Value::Double(1.0))]);
    let topics = [
        NBIRTH, NDATA, NDATA, NDATA, DBIRTH, DDATA, DDEATH, NDATA, NDATA, NDATA, NDATA, NBIRTH, NDATA,
    ];
    // -1 stands for a payload without seq.
    let seqs = [254, 255, 0, 2, 3, 5, 6, -1, 40, 300, 7, 100, 101].map(|s: i64| u64::try_from(s).ok());
    let mut gaps = Vec::new();
    for (topic, seq) in topics.into_iter().zip(seqs) {
        let d = run(&mut sp, topic, &one(seq));
        gaps.push(d.seq_gap);
        assert_eq!(d.readings.len(), usize::from(topic != DDEATH), "{topic} {seq:?}");
    }
    let mut want = vec![None; 13];
    want[3] = Some((1, 2));
    want[5] = Some((4, 5));
    assert_eq!(gaps, want);
    // Another node keeps its own count.
    assert_eq!(run(&mut sp, "spBv1.0/plant1/NDATA/edge2", &one(Some(9))).seq_gap, None);
}

#[test]
fn unknown_aliases_are_counted_and_state_follows_births_and_deaths() {
    let mut sp = Sparkplug::default();
    let data = |seq| pl(Some(seq), vec![by_alias(5, Value::Double(2.0))]);
    let d = run(&mut sp, NDATA, &data(0));
    assert_eq!((d.readings.len(), d.unknown_aliases), (0, 1));
    let bd_seq = |bd| m("bdSeq", None, Some(8), Value::Long(bd));
    let born = |bd| pl(Some(0), vec![bd_seq(bd), m("T", Some(5), Some(10), Value::Double(1.0))]);
    run(&mut sp, NBIRTH, &born(1));
    assert_eq!(values(&run(&mut sp, NDATA, &data(1))), vals(&[("T", 2.0)]));
    // A late NDEATH of an earlier session must not forget the current one.
    let d = run(&mut sp, NDEATH, &pl(None, vec![bd_seq(0)]));
    assert_eq!((d.kind, d.readings.len()), (MessageKind::NDeath, 0));
    assert_eq!(run(&mut sp, NDATA, &data(2)).unknown_aliases, 0);
    run(&mut sp, NDEATH, &pl(None, vec![bd_seq(1)]));
    assert_eq!(run(&mut sp, NDATA, &data(3)).unknown_aliases, 1);
    // NBIRTH drops device aliases; DDEATH drops them too.
    let dbirth = |seq| pl(Some(seq), vec![m("P", Some(5), Some(9), Value::Float(1.0))]);
    run(&mut sp, NBIRTH, &born(2));
    run(&mut sp, DBIRTH, &dbirth(1));
    assert_eq!(values(&run(&mut sp, DDATA, &data(2))), vals(&[("P", 2.0)]));
    run(&mut sp, NBIRTH, &born(3));
    assert_eq!(run(&mut sp, DDATA, &data(1)).unknown_aliases, 1);
    run(&mut sp, DBIRTH, &dbirth(2));
    run(&mut sp, DDEATH, &pl(Some(3), vec![]));
    assert_eq!(run(&mut sp, DDATA, &data(4)).unknown_aliases, 1);
}

#[test]
fn non_numeric_null_and_non_finite_metrics_are_reported() {
    let mut null = m("null", None, Some(10), Value::Double(1.0));
    null.is_null = Some(true);
    let no_value = Metric {
        name: Some(b"empty".to_vec()),
        ..Metric::default()
    };
    let metrics = vec![
        m("s", None, Some(12), Value::String(vec![0xFF, 0xFE])),
        m("text", None, Some(14), Value::String(b"t".to_vec())),
        // A String datatype decides, whatever value kind came with it.
        m("uuid", None, Some(15), Value::Long(7)),
        m("when", None, Some(13), Value::Long(1_700_000_000_123)),
        m("nan", None, Some(9), Value::Float(f32::NAN)),
        m("inf", None, Some(10), Value::Double(f64::INFINITY)),
        Metric {
            name: Some(vec![b'x', 0xFF]),
            ..m("", Some(9), Some(10), Value::Double(1.0))
        },
        m("", None, Some(10), Value::Double(1.0)),
        no_value,
        null,
        m("ok", None, Some(10), Value::Double(4.0)),
    ];
    let d = run(&mut Sparkplug::default(), NBIRTH, &pl(Some(0), metrics));
    // DateTime is stored as its epoch milliseconds.
    assert_eq!(values(&d), vals(&[("when", 1_700_000_000_123.0), ("ok", 4.0)]));
    let kinds: Vec<(&str, &str)> = d.non_numeric.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    assert_eq!(kinds, [("s", "String"), ("text", "Text"), ("uuid", "UUID")]);
    assert_eq!(
        (d.non_finite.clone(), d.unusable, d.nulls),
        (vec!["nan".to_owned(), "inf".to_owned()], 3, 1)
    );
    // bytes, dataset, template and extension values (tags 16 to 19) are valid but no
    // numbers. Per metric: datatype, then the value's two-byte tag and an empty length.
    let mut payload = Vec::new();
    for (datatype, tag) in [(17, 0x82), (16, 0x8A), (19, 0x92), (0, 0x9A)] {
        payload.extend([0x12, 8, 0x0A, 0x01, b'v', 0x20, datatype, tag, 0x01, 0x00]);
    }
    let d = run(&mut Sparkplug::default(), NBIRTH, &payload);
    let kinds: Vec<&str> = d.non_numeric.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        (d.readings.len(), kinds),
        (0, vec!["Bytes", "DataSet", "Template", "extension"])
    );
    // A DATA metric of a String birth is no number either.
    let mut sp = Sparkplug::default();
    run(
        &mut sp,
        NBIRTH,
        &pl(
            Some(0),
            vec![m("Serial", Some(4), Some(12), Value::String(b"A1".to_vec()))],
        ),
    );
    let d = run(
        &mut sp,
        NDATA,
        &pl(Some(1), vec![by_alias(4, Value::String(b"A2".to_vec()))]),
    );
    assert_eq!(d.non_numeric, [("Serial".to_owned(), "String")]);
}

#[test]
fn floats_keep_their_shortest_decimal() {
    let metrics = vec![
        m("f", Some(1), Some(9), Value::Float(123.456)),
        m("d", None, Some(10), Value::Double(123.456)),
    ];
    let mut sp = Sparkplug::default();
    let d = run(&mut sp, NBIRTH, &pl(Some(0), metrics));
    assert_eq!(values(&d), vals(&[("f", 123.456), ("d", 123.456)]));
    let d = run(&mut sp, NDATA, &pl(Some(1), vec![by_alias(1, Value::Float(0.1))]));
    assert_eq!(values(&d), vals(&[("f", 0.1)]));
}

#[test]
fn rebirth_is_asked_for_data_no_birth_explains() {
    let mut sp = Sparkplug::default();
    let ncmd = Some(NCMD.to_owned());
    // Named data from a node never born: stored, and a rebirth asked (its datatypes are
    // unknown). So for an unknown alias and for a device never born.
    let d = run(
        &mut sp,
        NDATA,
        &pl(Some(0), vec![m("T", None, None, Value::Double(1.0))]),
    );
    assert_eq!((d.readings.len(), d.rebirth.clone()), (1, ncmd.clone()));
    let birth = pl(Some(0), vec![m("T", Some(5), Some(10), Value::Double(1.0))]);
    let d = run(&mut sp, NBIRTH, &birth);
    assert_eq!(d.rebirth, None);
    assert_eq!(
        run(&mut sp, NDATA, &pl(Some(1), vec![by_alias(5, Value::Double(2.0))])).rebirth,
        None
    );
    let d = run(&mut sp, NDATA, &pl(Some(2), vec![by_alias(6, Value::Double(2.0))]));
    assert_eq!((d.unknown_aliases, d.rebirth.clone()), (1, ncmd.clone()));
    let d = run(
        &mut sp,
        DDATA,
        &pl(Some(3), vec![m("P", None, None, Value::Double(3.0))]),
    );
    assert_eq!(d.rebirth, ncmd);
    // Commands, deaths and STATE never ask.
    for topic in [NCMD, DCMD, DDEATH, NDEATH] {
        assert_eq!(run(&mut sp, topic, &pl(None, vec![])).rebirth, None, "{topic}");
    }
}

#[test]
fn births_are_reported_for_keeping_and_restore_the_aliases() {
    let mut sp = Sparkplug::default();
    let bd = m("bdSeq", None, Some(8), Value::Long(7));
    let d = run(
        &mut sp,
        NBIRTH,
        &pl(Some(0), vec![bd, m("T", Some(5), Some(3), Value::Int(1))]),
    );
    let Some(BirthChange::Node { at, bd_seq, names }) = d.change else {
        panic!("{:?}", d.change)
    };
    assert_eq!((at.node.as_str(), at.device.as_str(), bd_seq), ("edge1", "", Some(7)));
    let dbirth = run(
        &mut sp,
        DBIRTH,
        &pl(Some(1), vec![m("P", Some(1), Some(2), Value::Int(1))]),
    );
    let Some(BirthChange::Device { names: pump, .. }) = dbirth.change else {
        panic!("{:?}", dbirth.change)
    };
    // A fresh decoder (a restarted agent) given the kept births resolves alias-only data,
    // with the births' signedness, and asks for no rebirth.
    let mut restarted = Sparkplug::default();
    let place = |device: &str| births::Place {
        group: "plant1".into(),
        node: "edge1".into(),
        device: device.into(),
    };
    let born = |names: Names| Names { born: true, ..names };
    restarted.restore(vec![
        Restored {
            at: place(""),
            bd_seq: Some(7),
            names: born(names),
        },
        Restored {
            at: place("pump"),
            bd_seq: None,
            names: born(pump),
        },
    ]);
    let d = run(
        &mut restarted,
        NDATA,
        &pl(Some(9), vec![by_alias(5, Value::Int(-4i32 as u32))]),
    );
    assert_eq!((values(&d), d.rebirth), (vals(&[("T", -4.0)]), None));
    let d = run(
        &mut restarted,
        DDATA,
        &pl(Some(10), vec![by_alias(1, Value::Int(0xFFFF))]),
    );
    assert_eq!((values(&d), d.rebirth), (vals(&[("P", -1.0)]), None));
    // A stale NDEATH changes nothing; the live one is reported.
    let stale = run(
        &mut restarted,
        NDEATH,
        &pl(None, vec![m("bdSeq", None, Some(8), Value::Long(6))]),
    );
    assert_eq!(stale.change, None);
    let dead = run(
        &mut restarted,
        NDEATH,
        &pl(None, vec![m("bdSeq", None, Some(8), Value::Long(7))]),
    );
    assert!(
        matches!(dead.change, Some(BirthChange::NodeGone { .. })),
        "{:?}",
        dead.change
    );
}

#[test]
fn rebirth_request_is_a_boolean_node_control_metric() {
    let msg = Payload::decode(rebirth_request(1_700_000_000_000).as_slice()).expect("decodes");
    assert_eq!(msg.timestamp, Some(1_700_000_000_000));
    assert_eq!(msg.metrics.len(), 1);
    let metric = &msg.metrics[0];
    assert_eq!(metric.name.as_deref(), Some(REBIRTH_METRIC.as_bytes()));
    assert_eq!(
        (metric.datatype, metric.value.clone()),
        (Some(11), Some(Value::Boolean(true)))
    );
}

#[test]
fn timestamps_prefer_the_metric() {
    let mut a = m("a", None, Some(10), Value::Double(1.0));
    a.timestamp = Some(5);
    let mut huge = a.clone();
    huge.timestamp = Some(u64::MAX);
    let metrics = vec![a, huge, m("c", None, Some(10), Value::Double(1.0))];
    let mut sp = Sparkplug::default();
    // The payload timestamp (9) is appended: protobuf fields may come in any order.
    for (payload_ts, want) in [
        (&[0x08, 0x09][..], [Some(5), None, Some(9)]),
        (&[], [Some(5), None, None]),
    ] {
        let bytes = [pl(None, metrics.clone()), payload_ts.to_vec()].concat();
        let d = run(&mut sp, NBIRTH, &bytes);
        assert_eq!(d.readings.iter().map(|r| r.ts_ms).collect::<Vec<_>>(), want);
    }
}

#[test]
fn malformed_payloads_and_topics_are_errors() {
    let mut sp = Sparkplug::default();
    run(&mut sp, NBIRTH, &pl(Some(0), vec![]));
    // Bad varint, truncated metric, wrong wire type, missing varint, bad nested tag.
    let bad: [&[u8]; 5] = [
        &[0xFF],
        &[0x12, 0x05, 0x0A],
        &[0x0A, 0x01, 0x00],
        &[0x08],
        &[0x12, 0x02, 0x7A, 0x09],
    ];
    for bytes in bad {
        match sp.decode(NDATA, bytes) {
            Err(e @ DecodeError::Payload { .. }) => assert!(e.to_string().contains(NDATA), "{e}"),
            other => panic!("{bytes:?}: {other:?}"),
        }
    }
    // Failed messages leave the sequence alone.
    assert_eq!(run(&mut sp, NDATA, &pl(Some(1), vec![])).seq_gap, None);
    let topics = "|spBv1.0|spAv1.0/g/NDATA/n|spBv1.0/g/NDATA|spBv1.0/g/NFOO/n|spBv1.0/g/NDATA/n/d|\
                  spBv1.0/g/DDATA/n|spBv1.0/g/NDATA/n/|spBv1.0//NDATA/n|spBv1.0/g/STATE/n|spBv1.0/g/DDATA/n/d/x";
    for topic in topics.split('|') {
        let res = sp.decode(topic, &[]);
        assert!(matches!(res, Err(DecodeError::Topic { .. })), "{topic:?}: {res:?}");
    }
}

#[test]
fn state_and_commands_give_no_readings() {
    let mut sp = Sparkplug::default();
    for topic in [STATE, "STATE/scada1"] {
        let d = run(&mut sp, topic, br#"{"online":true,"timestamp":1}"#);
        assert_eq!((d.kind, d.readings.len()), (MessageKind::State, 0));
    }
    run(&mut sp, NBIRTH, &pl(Some(0), vec![]));
    let rebirth = m("Node Control/Rebirth", None, Some(11), Value::Boolean(true));
    let cmd = pl(None, vec![rebirth]);
    for (topic, kind) in [(NCMD, MessageKind::NCmd), (DCMD, MessageKind::DCmd)] {
        let d = run(&mut sp, topic, &cmd);
        assert_eq!((d.kind, d.readings.len()), (kind, 0));
    }
    assert_eq!(run(&mut sp, NDATA, &pl(Some(1), vec![])).seq_gap, None);
}

#[test]
fn fuzz_never_panics() {
    let birth = m("P", Some(5), Some(1), Value::Int(0xFF));
    let seeds = [
        HAND_NBIRTH.to_vec(),
        pl(Some(1), vec![birth, by_alias(5, Value::Long(3))]),
    ];
    let topics = [NBIRTH, NDATA, DBIRTH, DDATA, DDEATH, NDEATH, STATE, NCMD];
    let mut rng = crate::source::mqtt::FuzzRng(0x2545_f491_4f6c_dd1d);
    let mut sp = Sparkplug::default();
    for round in 0..20_000 {
        let mut buf = seeds[round % seeds.len()].clone();
        match round % 3 {
            0 => buf.truncate(rng.below(buf.len() + 1)),
            1 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(buf.len());
                    buf[i] ^= 1 << rng.below(8);
                }
            }
            _ => buf = (0..rng.below(48)).map(|_| rng.next() as u8).collect(),
        }
        let mut topic = topics[rng.below(topics.len())].as_bytes().to_vec();
        if rng.below(8) == 0 {
            let i = rng.below(topic.len());
            topic[i] = b"/\0xN"[rng.below(4)];
        }
        if let Ok(d) = sp.decode(&String::from_utf8_lossy(&topic), &buf) {
            assert!(d.readings.iter().all(|r| r.value.is_finite() && r.vars.len() == 4));
        }
    }
}

#[test]
fn corpus_files_decode_to_expected_counts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    let expected = std::fs::read_to_string(format!("{dir}/expected.txt")).expect("corpus/expected.txt is readable");
    // Files are replayed through one decoder in the listed order, so DATA
    // files can rely on the births listed before them.
    let mut sp = Sparkplug::default();
    let mut checked = Vec::new();
    for entry in expected.lines().filter(|l| l.starts_with("sparkplug/")) {
        let (name, count) = entry.split_once(' ').expect("`filename count` line");
        let file = name.trim_start_matches("sparkplug/");
        let topic = file.trim_end_matches(".bin").replace("__", "/");
        let bytes = std::fs::read(format!("{dir}/{name}")).expect("corpus file exists");
        let d = run(&mut sp, &topic, &bytes);
        assert_eq!((d.unknown_aliases, d.seq_gap), (0, None), "{name}");
        assert_eq!(d.readings.len().to_string(), count.trim(), "{name}");
        checked.push(file.to_owned());
    }
    let mut files: Vec<String> = std::fs::read_dir(format!("{dir}/sparkplug"))
        .expect("corpus/sparkplug exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    files.sort();
    checked.sort();
    assert_eq!(files, checked, "every corpus file has an expected count");
}
