//! The agent's local HTTP API: `GET /healthz` (JSON figures), `GET /metrics` (Prometheus
//! text), `GET /query?sensor=GLOB&from=T&to=T[&every=1m][&format=jsonl|csv]` and
//! `GET /stats`. While the agent runs it holds the store's lock, so `forewarn query` and
//! `forewarn store-stats` go through here.
//!
//! A deliberately small HTTP/1.1 server: GET only, one request per connection, bounded
//! request size and read time. It listens on loopback by default.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::Stats;
use crate::store::query::{self, Format, Query};
use crate::store::Store;

/// What the handlers read.
pub struct ApiState {
    pub agent: String,
    pub store: Store,
    pub stats: Arc<Stats>,
    pub data_dir: PathBuf,
    pub max_disk: u64,
    pub rollups: Vec<crate::store::rollup::Tier>,
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, state).await {
                tracing::debug!(error = %e, "http connection");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, state: Arc<ApiState>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    let reply = match head {
        Err(_) => Reply::text(408, "request timeout\n"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {
            let text = String::from_utf8_lossy(&buf);
            let mut parts = text.lines().next().unwrap_or_default().split_whitespace();
            match (parts.next(), parts.next()) {
                (Some("GET"), Some(target)) => route(target, state).await,
                _ => Reply::text(405, "only GET is served\n"),
            }
        }
    };
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&reply.body).await?;
    stream.shutdown().await
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query parameter value.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn route(target: &str, state: Arc<ApiState>) -> Reply {
    let (path, query_string) = target.split_once('?').unwrap_or((target, ""));
    let params: HashMap<String, String> = query_string
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    match path {
        "/healthz" => Reply {
            status: 200,
            content_type: "application/json",
            body: health_json(&state).into_bytes(),
        },
        "/metrics" => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: state.stats.prometheus().into_bytes(),
        },
        "/stats" => {
            let st = state.clone();
            match tokio::task::spawn_blocking(move || crate::store::stats::collect(&st.store, &st.data_dir)).await {
                Ok(Ok(stats)) => Reply::text(200, stats.render(state.max_disk)),
                Ok(Err(e)) => Reply::text(500, format!("{e}\n")),
                Err(e) => Reply::text(500, format!("{e}\n")),
            }
        }
        "/query" => match parse_query(&params) {
            Err(e) => Reply::text(400, format!("{e}\n")),
            Ok(q) => {
                let st = state.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    query::run(&st.store, &q, &st.rollups, &mut out).map(|_| (out, q.format))
                })
                .await;
                match result {
                    Ok(Ok((body, format))) => Reply {
                        status: 200,
                        content_type: if format == Format::Csv {
                            "text/csv"
                        } else {
                            "application/x-ndjson"
                        },
                        body,
                    },
                    Ok(Err(e)) => Reply::text(500, format!("{e}\n")),
                    Err(e) => Reply::text(500, format!("{e}\n")),
                }
            }
        },
        _ => Reply::text(404, "not found; try /healthz, /metrics, /query, /stats\n"),
    }
}

/// Builds a [`Query`] from `sensor`, `from`, `to`, `every` and `format` parameters.
pub fn parse_query(p: &HashMap<String, String>) -> Result<Query, String> {
    let time = |name: &str, default: i64| match p.get(name) {
        None => Ok(default),
        Some(v) => {
            crate::base::time::parse_time(v).ok_or_else(|| format!("{name}={v:?} is not a time (RFC 3339 or epoch ms)"))
        }
    };
    let every_ms = match p.get("every") {
        None => None,
        Some(v) => {
            let d = crate::base::units::parse_duration(v)?;
            Some((d.as_millis() as i64).max(1))
        }
    };
    Ok(Query {
        sensor_glob: p.get("sensor").cloned().unwrap_or_else(|| "*".into()),
        from_ms: time("from", i64::MIN)?,
        to_ms: time("to", i64::MAX)?,
        every_ms,
        format: p.get("format").map(|f| f.parse()).transpose()?.unwrap_or(Format::Jsonl),
    })
}

fn health_json(state: &ApiState) -> String {
    let s = &state.stats;
    serde_json::json!({
        "status": "ok",
        "agent": state.agent,
        "samples_in": s.samples_in.get(),
        "samples_stored": s.samples_stored.get(),
        "samples_rejected": s.samples_rejected.get(),
        "flush_errors": s.flush_errors.get(),
        "alerts_raised": s.alerts_raised.get(),
        "alerts_published": s.alerts_published.get(),
        "outbox_depth": s.outbox_depth.get(),
        "storage_pressure": s.storage_pressure(),
        "devices": s.devices_json(),
        "mqtt": s.inputs_json(),
    })
    .to_string()
}

/// Outcome of asking a running agent.
pub enum Remote {
    /// Nothing listens: the agent is not running.
    NotRunning,
    Reply {
        status: u16,
        body: Vec<u8>,
    },
}

/// A blocking GET against the local API, for the CLI.
pub fn get(addr: &str, target: &str) -> std::io::Result<Remote> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stream = match StdTcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(Remote::NotRunning),
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed reply"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    Ok(Remote::Reply {
        status,
        body: raw[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let p: HashMap<String, String> = [
            ("sensor", "pump1.*"),
            ("from", "2023-11-14T22:13:20Z"),
            ("every", "1m"),
            ("format", "csv"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let q = parse_query(&p).unwrap();
        assert_eq!(
            (q.from_ms, q.to_ms, q.every_ms, q.format),
            (1_700_000_000_000, i64::MAX, Some(60_000), Format::Csv)
        );
        let bad: HashMap<String, String> = [("from".to_string(), "yesterday".to_string())].into();
        assert!(parse_query(&bad).unwrap_err().contains("from"));
        assert_eq!(percent_decode(&percent_encode("a b:+/*")), "a b:+/*");
    }
}
