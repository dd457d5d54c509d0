//! The local HTTP API through real sockets: every route's status, content type and body,
//! and every limit of the server — head size, head time, connection cap, connection time —
//! held against clients that misbehave, while well-behaved clients keep being served.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forewarn::base::sample::Sample;
use forewarn::http::{self, ApiState, Limits, Remote, HEADER_READ_TIME, MAX_CONNECTIONS, MAX_HEAD_BYTES};
use forewarn::stats::Stats;
use forewarn::store::query::{self, Format, Query};
use forewarn::store::{Store, StoreOptions};

/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600_000;

struct Server {
    addr: SocketAddr,
    store: Store,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// A server over a store holding `samples` one-second samples of `s.a`.
fn start(limits: Limits, samples: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data"), StoreOptions::default()).unwrap();
    let id = store.sensor_id("s.a").unwrap();
    let batch: Vec<Sample> = (0..samples)
        .map(|i| Sample::good(id, T0 + i as i64 * 1000, (i % 100) as f64 / 4.0))
        .collect();
    store.append(&batch);
    store.flush().unwrap();
    let state = ApiState {
        agent: "edge-test".into(),
        store: store.clone(),
        stats: Arc::new(Stats::default()),
        data_dir: dir.path().join("data"),
        max_disk: 1 << 30,
        rollups: Vec::new(),
        site: http::Site::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(http::serve_with(listener, http::router(Arc::new(state)), limits));
    Server {
        addr,
        store,
        _runtime: runtime,
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Everything the server sends until it closes; a reset after the reply still counts as
/// the close (the server may close with bytes of an oversized head unread).
fn read_all(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close within {within:?}; got {raw:?}")
            }
            Err(_) => return raw,
        }
    }
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends `request` as it is and reads the reply to the close.
fn raw_request(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    // The server may refuse an oversized head before reading it all.
    let _ = stream.write_all(request);
    parse(&read_all(&mut stream, Duration::from_secs(10)))
}

fn request(addr: SocketAddr, method: &str, target: &str) -> Reply {
    raw_request(
        addr,
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn expected_answer(store: &Store, q: &Query) -> Vec<u8> {
    let mut out = Vec::new();
    query::run(store, q, &[], &mut out).unwrap();
    out
}

fn all_of(sensor: &str) -> Query {
    Query {
        sensor_glob: sensor.into(),
        from_ms: i64::MIN,
        to_ms: i64::MAX,
        every_ms: None,
        format: Format::Jsonl,
    }
}

#[test]
fn every_route_answers_as_documented() {
    let server = start(Limits::default(), 3);
    let addr = server.addr;
    let r = request(addr, "GET", "/healthz");
    assert_eq!(
        (r.status, r.header("content-type").as_deref()),
        (200, Some("application/json"))
    );
    let h: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (h["status"].as_str(), h["agent"].as_str()),
        (Some("ok"), Some("edge-test"))
    );
    assert_eq!(r.header("connection").as_deref(), Some("close"));

    let r = request(addr, "GET", "/metrics");
    assert_eq!(
        (r.status, r.header("content-type").as_deref()),
        (200, Some("text/plain; version=0.0.4"))
    );
    let r = request(addr, "GET", "/stats");
    assert_eq!(
        (r.status, r.header("content-type").as_deref()),
        (200, Some("text/plain; charset=utf-8"))
    );
    assert!(text(&r).contains("s.a:"), "{}", text(&r));

    let r = request(addr, "GET", "/query?sensor=s.%2A&to=2026-01-01T00:00:01Z&format=csv");
    assert_eq!((r.status, r.header("content-type").as_deref()), (200, Some("text/csv")));
    assert_eq!(
        text(&r),
        "sensor,ts,value,quality\ns.a,2026-01-01T00:00:00.000Z,0,good\ns.a,2026-01-01T00:00:01.000Z,0.25,good\n"
    );
    assert_eq!(r.header("content-length").as_deref(), Some(&*r.body.len().to_string()));
    let r = request(addr, "GET", "/query?sensor=s.a&every=1m");
    assert_eq!(
        (r.status, r.header("content-type").as_deref()),
        (200, Some("application/x-ndjson"))
    );
    assert_eq!(text(&r).lines().count(), 1, "{}", text(&r));

    for (target, error) in [
        (
            "/query?from=yesterday",
            "from=\"yesterday\" is not a time (RFC 3339 or epoch ms)\n",
        ),
        ("/query?format=xml", "unknown format \"xml\": expected jsonl or csv\n"),
    ] {
        let r = request(addr, "GET", target);
        assert_eq!((r.status, text(&r).as_str()), (400, error), "{target}");
    }
    assert_eq!(request(addr, "GET", "/query?every=often").status, 400);
    let r = request(addr, "GET", "/nope");
    assert_eq!(
        (r.status, text(&r).as_str()),
        (404, "not found; try /healthz, /metrics, /query, /stats\n")
    );
}

#[test]
fn methods_other_than_get_get_405() {
    let server = start(Limits::default(), 1);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = request(server.addr, method, "/query");
        assert_eq!((r.status, text(&r).as_str()), (405, "only GET is served\n"), "{method}");
        assert_eq!(r.header("allow").as_deref(), Some("GET"), "{method}");
    }
    // HEAD too: axum would run the whole query to throw its answer away.
    let r = request(server.addr, "HEAD", "/query");
    assert_eq!((r.status, r.header("allow").as_deref()), (405, Some("GET")));
    assert_eq!(request(server.addr, "POST", "/nope").status, 404);
}

#[test]
fn a_long_answer_streams_and_arrives_whole() {
    // Some 60 bytes a line: about 300 KB, several chunks.
    let server = start(Limits::default(), 5_000);
    let r = request(server.addr, "GET", "/query?sensor=s.a");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding").as_deref(), Some("chunked"));
    let q = all_of("s.a");
    let body = match http::get(&server.addr.to_string(), "/query?sensor=s.a").unwrap() {
        Remote::Reply { status: 200, body } => body,
        _ => panic!("no answer"),
    };
    let expected = expected_answer(&server.store, &q);
    assert_eq!(body.len(), expected.len());
    assert!(body == expected);
    assert_eq!(String::from_utf8(body).unwrap().lines().count(), 5_000);
}

#[test]
fn a_head_over_the_cap_gets_431_and_the_connection_is_closed() {
    let server = start(Limits::default(), 1);
    let pad = "a".repeat(MAX_HEAD_BYTES);
    let r = raw_request(
        server.addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 431);
    // Just under the cap is served.
    let pad = "a".repeat(MAX_HEAD_BYTES - 100);
    let r = raw_request(
        server.addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200);
    // So is a long query string, up to the cap.
    let target = format!("/query?sensor={}", "b".repeat(MAX_HEAD_BYTES - 100));
    assert_eq!(request(server.addr, "GET", &target).status, 200);
    let target = format!("/query?sensor={}", "b".repeat(MAX_HEAD_BYTES));
    assert_eq!(request(server.addr, "GET", &target).status, 431);
}

/// Writes one byte of a head every 200 ms until the server closes; the time it took.
fn dribble(addr: SocketAddr, give_up: Duration) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ");
    let mut buf = [0u8; 256];
    while started.elapsed() < give_up {
        if stream.write_all(b"z").is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(n) if n > 0 => panic!("a reply to half a head: {:?}", &buf[..n]),
            _ => break,
        }
    }
    started.elapsed()
}

#[test]
fn a_slow_head_is_cut_off_while_others_are_served() {
    let server = start(Limits::default(), 1);
    let addr = server.addr;
    let slow = std::thread::spawn(move || dribble(addr, HEADER_READ_TIME * 3));
    let silent = std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        assert!(read_all(&mut stream, HEADER_READ_TIME * 3).is_empty());
        started.elapsed()
    });
    let started = Instant::now();
    while started.elapsed() < HEADER_READ_TIME {
        let asked = Instant::now();
        assert_eq!(request(addr, "GET", "/healthz").status, 200);
        assert!(asked.elapsed() < Duration::from_secs(1), "{:?}", asked.elapsed());
        std::thread::sleep(Duration::from_millis(250));
    }
    for (what, took) in [("dribbling", slow.join().unwrap()), ("silent", silent.join().unwrap())] {
        assert!(
            took >= HEADER_READ_TIME - Duration::from_millis(300) && took < HEADER_READ_TIME * 2,
            "{what} client cut off after {took:?}"
        );
    }
}

/// `n` connections that have sent nothing, once the server has accepted them.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let idle = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    idle
}

/// Sends a GET and tells whether the reply began within `within`.
fn answered_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(n) => n > 0 && buf.starts_with(b"HTTP/1.1 200"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_connection_over_the_cap_waits_for_a_free_slot() {
    // Idle connections are not cut off during the test: only the cap is at work.
    let limits = Limits {
        header_read_time: Duration::from_secs(60),
        ..Limits::default()
    };
    let server = start(limits, 1);
    let mut idle = idle_connections(server.addr, MAX_CONNECTIONS);
    let mut waiting = TcpStream::connect(server.addr).unwrap();
    waiting.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    assert!(
        !answered_within(&mut waiting, Duration::from_secs(1)),
        "served over the cap"
    );
    drop(idle.pop());
    assert!(
        answered_within(&mut waiting, Duration::from_secs(2)),
        "not served once a slot freed"
    );
    drop(idle);
    assert_eq!(request(server.addr, "GET", "/healthz").status, 200);
}

#[test]
fn stalled_clients_hold_the_slots_for_at_most_the_head_time() {
    let server = start(Limits::default(), 1);
    let started = Instant::now();
    let _idle = idle_connections(server.addr, MAX_CONNECTIONS);
    let mut waiting = TcpStream::connect(server.addr).unwrap();
    waiting.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    assert!(answered_within(&mut waiting, HEADER_READ_TIME * 2), "never served");
    let took = started.elapsed();
    assert!(took >= HEADER_READ_TIME - Duration::from_millis(300), "{took:?}");
}

#[test]
fn a_response_not_read_in_time_is_cut_off() {
    // About 12 MB: more than the sockets' buffers take from a client that reads nothing, so
    // the server must wait on the client.
    let limits = Limits {
        connection_time: Duration::from_secs(1),
        ..Limits::default()
    };
    let server = start(limits, 200_000);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.write_all(b"GET /query?sensor=s.a HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let raw = read_all(&mut stream, Duration::from_secs(10));
    let reply = parse(&raw);
    assert_eq!(reply.header("transfer-encoding").as_deref(), Some("chunked"));
    assert!(!raw.ends_with(b"\r\n0\r\n\r\n"), "the whole answer went out");
    let whole = expected_answer(&server.store, &all_of("s.a")).len();
    assert!(reply.body.len() < whole, "{} of {whole} bytes", reply.body.len());
    assert_eq!(request(server.addr, "GET", "/healthz").status, 200);
}

#[test]
fn the_api_listens_on_loopback_by_default() {
    let listen: SocketAddr = forewarn::config::HttpConfig::default().listen.parse().unwrap();
    assert!(listen.ip().is_loopback(), "{listen}");
}
