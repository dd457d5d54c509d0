//! Writes to InfluxDB over HTTP/1.1: `POST /write` (1.x, database and retention policy,
//! Basic auth) or `/api/v2/write` (2.x, org and bucket, `Token` auth), line protocol at
//! millisecond precision. One kept-alive connection, opened again after any failure. A
//! write counts as confirmed only on a 2xx answer (InfluxDB answers 204); anything else
//! is an error that names its cause, so the forwarder can log each distinct cause once.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::base::secret::Secret;
use crate::config::{InfluxAuth, InfluxTarget};
use crate::mqtt::{read_password, read_password_file, SetupError};

/// Why a write was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("request failed: {0}")]
    Request(String),
}

impl WriteError {
    /// A cause that stays the same while the same thing is wrong (for logging it once).
    pub fn cause(&self) -> String {
        match self {
            WriteError::Status { status, body } => format!("{status} {body}"),
            other => other.to_string(),
        }
    }

    /// Wrong credentials, a missing database: nothing a retry alone will fix.
    pub fn is_configuration(&self) -> bool {
        matches!(self, WriteError::Status { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

pub struct InfluxClient {
    target: InfluxTarget,
    /// The `Authorization` header's value.
    authorization: Option<Secret>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl InfluxClient {
    /// Reads the password or token now, so a missing file stops the agent at start-up.
    pub fn open(target: InfluxTarget, section: &str) -> Result<InfluxClient, SetupError> {
        let authorization = match &target.auth {
            InfluxAuth::None => None,
            InfluxAuth::Basic { username, password } => {
                let pw = read_password(password, section)?;
                let pair = format!("{username}:{}", pw.as_ref().map_or("", Secret::expose));
                Some(Secret::new(format!("Basic {}", STANDARD.encode(pair.as_bytes()))))
            }
            InfluxAuth::TokenFile(path) => {
                let token = read_password_file(path).map_err(|error| SetupError::PasswordFile {
                    section: section.to_string(),
                    path: path.display().to_string(),
                    error,
                })?;
                Some(Secret::new(format!("Token {}", token.expose())))
            }
        };
        Ok(InfluxClient {
            target,
            authorization,
            sender: None,
        })
    }

    /// `host:port` of the server, for log lines.
    pub fn server(&self) -> String {
        format!("{}:{}", self.target.host, self.target.port)
    }

    /// Posts `body`; `Ok` once the server confirmed it.
    pub async fn write(&mut self, body: String) -> Result<(), WriteError> {
        let limit = self.target.timeout;
        let result = match tokio::time::timeout(limit, self.post(body)).await {
            Ok(r) => r,
            Err(_) => Err(WriteError::Timeout(limit)),
        };
        if result.is_err() {
            // A connection that failed or timed out mid-request is not reused.
            self.sender = None;
        }
        result
    }

    async fn post(&mut self, body: String) -> Result<(), WriteError> {
        let mut req = hyper::Request::post(&self.target.path)
            .header(hyper::header::HOST, self.server())
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if let Some(auth) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, auth.expose());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| WriteError::Request(e.to_string()))?;
        let sender = self.connection().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| WriteError::Request(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&bytes);
        let body: String = text.trim().chars().take(300).collect();
        Err(WriteError::Status { status, body })
    }

    async fn connection(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, WriteError> {
        if self.sender.as_ref().is_some_and(|s| s.is_closed()) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = tokio::net::TcpStream::connect((self.target.host.as_str(), self.target.port))
                .await
                .map_err(|e| WriteError::Connect(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| WriteError::Connect(e.to_string()))?;
            // The connection task ends when the sender is dropped or the server closes.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| WriteError::Connect("no connection".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PasswordSource;

    #[test]
    fn basic_credentials_are_base64_as_rfc_7617_says() {
        let target = InfluxTarget {
            host: "h".into(),
            port: 8086,
            path: "/write?db=x&precision=ms".into(),
            auth: InfluxAuth::Basic {
                username: "Aladdin".into(),
                password: PasswordSource::Inline(Secret::new("open sesame")),
            },
            timeout: Duration::from_secs(1),
        };
        let client = InfluxClient::open(target, "forward[h]").unwrap();
        let header = client.authorization.as_ref().map(Secret::expose);
        assert_eq!(header, Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
    }
}
