//! The agent's local HTTP API: `GET /healthz` (JSON figures), `GET /metrics` (Prometheus
//! text), `GET /query?sensor=GLOB&from=T&to=T[&every=1m][&format=jsonl|csv]` and
//! `GET /stats`; the operator's labels under `/api/labels` ([`labels`]). While the agent runs it holds the store's lock, so `forewarn query` and
//! `forewarn store-stats` go through here ([`client`]).
//!
//! This file owns the connections, served by hyper's HTTP/1.1 server with an axum
//! [`Router`] ([`routes::router`]) answering. It guarantees, whatever a client does: a
//! request head of at most [`MAX_HEAD_BYTES`] (beyond it, 431 and the connection closed);
//! a complete head within [`HEADER_READ_TIME`] of the accept, or the connection is closed;
//! at most [`MAX_CONNECTIONS`] connections served at once, the others waiting in the
//! listen backlog; one request per connection and at most [`CONNECTION_TIME`] per
//! connection, response included. It listens where `[http] listen` says, loopback by
//! default. With [`Access`] it asks for credentials ([`auth`]) and speaks HTTPS
//! ([`tls`]); each request carries its client's address ([`auth::PeerAddr`]).

pub mod actions;
pub mod auth;
pub mod client;
pub mod labels;
pub mod pages;
pub mod routes;
mod site;
mod stream;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower_service::Service;

pub use client::{get, percent_encode, request, ClientError, Remote};
pub use routes::{parse_query, router, ApiState};
pub use site::Site;

/// The largest request head (request line and headers) read. Why: the API takes a few
/// short parameters, so 16 KiB is ample for any glob or time, and a client cannot make
/// the server buffer without bound. hyper answers a longer head with 431 and closes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long a client has, from the accept, to send its whole request head. Why: a local
/// client sends its request at once; one that sends nothing or dribbles bytes (slowloris)
/// would otherwise hold a connection slot for ever.
pub const HEADER_READ_TIME: Duration = Duration::from_secs(5);

/// Connections served at once. Why: each costs a task, buffers and possibly a blocking
/// store read; 64 is far above what the CLI and a metrics scraper use, and keeps a
/// misbehaving local client from using up file descriptors or the blocking pool. A
/// connection over the cap waits in the listen backlog until a slot frees, which a
/// stalled client does after [`HEADER_READ_TIME`] at the latest.
pub const MAX_CONNECTIONS: usize = 64;

/// The longest life of one connection: request, store read and whole response. Why: it
/// bounds a client that reads an answer slowly or not at all; five minutes is the CLI's
/// own read timeout, and years of one sensor's history stream in far less.
pub const CONNECTION_TIME: Duration = Duration::from_secs(300);

/// hyper refuses a read buffer under 8 KiB (it panics), so no head cap goes below it.
const MIN_HEAD_BYTES: usize = 8 * 1024;

/// Pause after a failed accept. Why: when file descriptors run out every accept fails at
/// once, and retrying without a pause would spin a core.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The limits [`serve_with`] enforces; [`Limits::default`] is the constants above.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub header_read_time: Duration,
    pub max_connections: usize,
    pub connection_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: MAX_HEAD_BYTES,
            header_read_time: HEADER_READ_TIME,
            max_connections: MAX_CONNECTIONS,
            connection_time: CONNECTION_TIME,
        }
    }
}

/// Serves the API's routes and the web pages with the default limits, for as long as the
/// future is polled.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    serve_with(listener, app(state), Limits::default()).await
}

/// The API's routes and the web pages ([`pages`]) over `state`.
pub fn app(state: Arc<ApiState>) -> Router {
    router(state.clone()).merge(pages::router(state))
}

/// Who may connect and how: users (`[http] users_file`) and HTTPS (`tls_cert`,
/// `tls_key`); the default is neither, for loopback.
#[derive(Clone, Default)]
pub struct Access {
    pub auth: Option<Arc<auth::Auth>>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Access {
    /// `app` behind the users' check, when there are users.
    pub fn protect(&self, app: Router) -> Router {
        match &self.auth {
            Some(a) => app.layer(axum::middleware::from_fn_with_state(a.clone(), auth::require)),
            None => app,
        }
    }
}

/// Serves `app` on `listener` within `limits`, for as long as the future is polled.
pub async fn serve_with(listener: TcpListener, app: Router, limits: Limits) {
    serve_access(listener, app, limits, Access::default()).await
}

/// [`serve_with`], with `access`'s users and TLS.
pub async fn serve_access(listener: TcpListener, app: Router, limits: Limits, access: Access) {
    let app = access.protect(app);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // The slot is taken before the accept: over the cap, connections wait in the
        // kernel's backlog and are served in turn, and the server never reads from more
        // than the cap at once.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "http accept");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let app = app.clone();
        let Some(tls) = access.tls.clone() else {
            tokio::spawn(connection(stream, peer, Instant::now(), app, limits, slot));
            continue;
        };
        tokio::spawn(async move {
            let start = Instant::now();
            let head_time = limits.header_read_time.min(limits.connection_time);
            match tokio::time::timeout(head_time, tls.accept(stream)).await {
                Ok(Ok(stream)) => connection(stream, peer, start, app, limits, slot).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "https handshake"),
                Err(_) => tracing::debug!(%peer, "https handshake not complete in time; closing"),
            }
        });
    }
}

/// One connection accepted at `start`, closed when its head is late or its time is up.
/// The slot is held until the socket is closed.
async fn connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    start: Instant,
    app: Router,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = start + limits.connection_time;
    // hyper calls the service once the head is parsed: that ends the head's deadline.
    let head_read = Arc::new(Notify::new());
    let signal = head_read.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        signal.notify_one();
        req.extensions_mut().insert(auth::PeerAddr(peer));
        let mut app = app.clone();
        async move { app.call(req).await }
    });
    let conn = http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(limits.max_head_bytes.max(MIN_HEAD_BYTES))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let head_time = limits.header_read_time.min(limits.connection_time);
    tokio::select! {
        done = conn.as_mut() => return finished(done),
        () = head_read.notified() => {}
        () = tokio::time::sleep_until(start + head_time) => {
            tracing::debug!("http request head not complete in time; closing");
            return;
        }
    }
    match tokio::time::timeout_at(deadline, conn).await {
        Ok(done) => finished(done),
        Err(_) => tracing::debug!("http connection over its time; closing"),
    }
}

fn finished(done: Result<(), hyper::Error>) {
    if let Err(e) = done {
        tracing::debug!(error = %e, "http connection");
    }
}
