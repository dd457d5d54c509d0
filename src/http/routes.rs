//! What the local API answers: the routes, the state their handlers read, and how a
//! request's parameters become a store query. Each route answers with the statuses,
//! content types and bodies the API has always had, so a script written against it keeps
//! working: GET only (HEAD and every other method get 405 and `only GET is served`), 404
//! with the list of routes for any other path, 400 with the reason for bad `/query`
//! parameters, 500 with the store's error. A new feature adds its routes in [`router`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::stream::{self, StreamError};
use crate::stats::Stats;
use crate::store::query::{self, Format, Query};
use crate::store::{Store, StoreError};

/// What the handlers read.
pub struct ApiState {
    pub agent: String,
    pub store: Store,
    pub stats: Arc<Stats>,
    pub data_dir: PathBuf,
    pub max_disk: u64,
    pub rollups: Vec<crate::config::Tier>,
    /// What the web pages show of the configuration.
    pub site: super::site::Site,
}

/// Why a request gets no answer of its route; each is a plain-text reply.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        text(status, format!("{self}\n"))
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The API's routes over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/query", get(query))
        .route("/stats", get(stats))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .layer(middleware::from_fn(refuse_head))
        .with_state(state)
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found; try /healthz, /metrics, /query, /stats\n".into(),
    )
}

/// Every route is GET only; a route that takes another method lists it in `Allow` here.
async fn not_allowed() -> Response {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n".into());
    reply
        .headers_mut()
        .insert(ALLOW, axum::http::HeaderValue::from_static("GET"));
    reply
}

/// axum answers HEAD with the GET handler and drops the body, which would run a whole
/// store query for nothing; the API has never served HEAD.
pub(super) async fn refuse_head(req: Request, next: Next) -> Response {
    if req.method() == Method::HEAD {
        return not_allowed().await;
    }
    next.run(req).await
}

async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    ([(CONTENT_TYPE, "application/json")], health_json(&state)).into_response()
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], state.stats.prometheus()).into_response()
}

async fn stats(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let st = state.clone();
    let stats = tokio::task::spawn_blocking(move || crate::store::stats::collect(&st.store, &st.data_dir)).await??;
    Ok(text(StatusCode::OK, stats.render(state.max_disk)))
}

async fn query(State(state): State<Arc<ApiState>>, uri: Uri) -> Result<Response, ApiError> {
    let q = parse_query(&query_params(uri.query().unwrap_or(""))).map_err(ApiError::BadRequest)?;
    let content_type = if q.format == Format::Csv {
        "text/csv"
    } else {
        "application/x-ndjson"
    };
    let body = stream::blocking(move |out| query::run(&state.store, &q, &state.rollups, out).map(drop)).await?;
    Ok(([(CONTENT_TYPE, content_type)], body).into_response())
}

/// `a=1&b=x%20y` as a map; the last of a repeated key wins, a key without `=` is empty.
pub(super) fn query_params(query_string: &str) -> HashMap<String, String> {
    query_string
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
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
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// The declared figures (`stats`), with the agent's name and a status in front.
fn health_json(state: &ApiState) -> String {
    let mut m = serde_json::Map::new();
    m.insert("status".into(), "ok".into());
    m.insert("agent".into(), state.agent.clone().into());
    m.extend(state.stats.health());
    serde_json::Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::client::percent_encode;

    #[test]
    fn query_parameters() {
        let p = query_params("sensor=pump1.%2A&from=2023-11-14T22:13:20Z&every=1m&format=csv&format=csv");
        let q = parse_query(&p).unwrap();
        assert_eq!(q.sensor_glob, "pump1.*");
        assert_eq!(
            (q.from_ms, q.to_ms, q.every_ms, q.format),
            (1_700_000_000_000, i64::MAX, Some(60_000), Format::Csv)
        );
        let bad: HashMap<String, String> = [("from".to_string(), "yesterday".to_string())].into();
        assert!(parse_query(&bad).unwrap_err().contains("from"));
        assert_eq!(percent_decode(&percent_encode("a b:+/*")), "a b:+/*");
        // A broken escape stays as it is rather than failing the request.
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
        assert_eq!(query_params("x&y=")["x"], "");
    }
}
