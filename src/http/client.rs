//! The CLI's client for the running agent's API: one blocking request (a GET, or an
//! action with its headers and body) over a std `TcpStream`, no runtime needed. It tells "no agent listens" apart from a failure,
//! reads bodies sized by `Content-Length`, chunked or ended by the close, and reports an
//! answer cut short (the server cuts a streamed answer whose store read failed) as an
//! error, never as a shorter answer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long to wait for the connection. Why: on loopback a listening agent accepts at
/// once (even over its connection cap, through the backlog); no answer means none runs.
const CONNECT_TIME: Duration = Duration::from_millis(500);

/// How long to wait for the next bytes of the answer. Why: the server gives a connection
/// at most `CONNECTION_TIME` (five minutes); waiting longer would only hang the CLI.
const READ_TIME: Duration = Duration::from_secs(300);

/// Outcome of asking a running agent.
#[derive(Debug)]
pub enum Remote {
    /// Nothing listens: the agent is not running.
    NotRunning,
    Reply {
        status: u16,
        body: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr:?} is not ip:port: {source}")]
    Address {
        addr: String,
        source: std::net::AddrParseError,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
    #[error("the reply was cut short: the agent failed while answering (see its log)")]
    CutShort,
}

/// A blocking GET of `target` (path and query string) at `addr` (`ip:port`).
pub fn get(addr: &str, target: &str) -> Result<Remote, ClientError> {
    request(addr, "GET", target, &[], None)
}

/// A blocking request: `method` on `target` with extra `headers` (name, value) and a
/// JSON `body`, if any.
pub fn request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Remote, ClientError> {
    let addr: SocketAddr = addr.parse().map_err(|source| ClientError::Address {
        addr: addr.to_string(),
        source,
    })?;
    let mut stream = match TcpStream::connect_timeout(&addr, CONNECT_TIME) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(Remote::NotRunning),
        Err(e) => return Err(e.into()),
    };
    stream.set_read_timeout(Some(READ_TIME))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Result<Remote, ClientError> {
    let split = find(raw, b"\r\n\r\n").ok_or(ClientError::Malformed("no end of the head"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(ClientError::Malformed("no status"))?;
    let headers: Vec<(String, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let rest = &raw[split + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| ClientError::Malformed("bad Content-Length"))?;
        rest.get(..len).ok_or(ClientError::CutShort)?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Remote::Reply { status, body })
}

/// The body of a chunked reply; trailers are ignored.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::with_capacity(data.len());
    loop {
        let line_end = find(data, b"\r\n").ok_or(ClientError::CutShort)?;
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
            .ok_or(ClientError::Malformed("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = data.get(..size).ok_or(ClientError::CutShort)?;
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or(ClientError::CutShort)?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &[u8]) -> Result<Vec<u8>, ClientError> {
        match parse_reply(raw)? {
            Remote::Reply { body, .. } => Ok(body),
            Remote::NotRunning => unreachable!(),
        }
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let sized = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(body(sized).unwrap(), b"abc");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap(), b"abcde");
        assert_eq!(body(b"HTTP/1.1 404 Not Found\r\n\r\nno").unwrap(), b"no");
        match parse_reply(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap() {
            Remote::Reply { status, .. } => assert_eq!(status, 404),
            Remote::NotRunning => unreachable!(),
        }
    }

    #[test]
    fn an_answer_cut_short_is_an_error() {
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n";
        assert!(matches!(body(cut), Err(ClientError::CutShort)));
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab";
        assert!(matches!(body(cut), Err(ClientError::CutShort)));
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc";
        assert!(matches!(body(short), Err(ClientError::CutShort)));
        assert!(matches!(body(b"garbage"), Err(ClientError::Malformed(_))));
    }
}
