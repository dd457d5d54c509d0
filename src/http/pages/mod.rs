//! The agent's web pages, served on the `[http]` listener next to the API: an overview
//! (`/`), one sensor's history (`/ui/sensor/{name}`), one alert (`/ui/alert/{asset}/{rule}`),
//! the models (`/ui/models`), the storage (`/ui/storage`) and the operator's labels
//! (`/ui/labels`; the alert page labels its incident).
//!
//! Guarantees: every page is plain HTML with inline CSS and server-side SVG plots
//! (`plotters`' SVG backend, text as `<text>` elements), so nothing is fetched from
//! anywhere else and the pages work on a gateway without internet; every name taken from
//! the config, the store or a request is HTML-escaped ([`html::esc`]); pages only read
//! (the store, the stats, the alert records and the model files) and each store read runs
//! on a blocking thread with a bounded amount of work (sensor count and plot points are
//! capped), so a page cannot stall the agent's runtime. Labels are written by the label
//! API, not by the pages: the pages' one script ([`labels::SCRIPT`]) calls it, and every
//! page carries a Content-Security-Policy that allows that script by hash and no other.

mod alert;
mod html;
mod labels;
mod overview;
mod plot;
mod sensor;
mod series;
mod storage;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::routes::{query_params, refuse_head, ApiState};
use crate::store::StoreError;

pub use super::site::{Limit, Site, SiteAsset, SiteDevice};

/// Why a page is not shown; each is a short HTML page with its status.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("page task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = html::page(
            "forewarn",
            "",
            &format!("<p class=\"bad\">{}</p>", html::esc(&self.to_string())),
        );
        (status, html_headers(), body).into_response()
    }
}

/// The pages' routes over `state`, to merge with the API's router (which has the
/// fallback); HEAD is refused as the API refuses it, so no page renders for nothing.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/ui/sensor/{*name}", get(sensor_page))
        .route("/ui/alert/{*key}", get(alert_page))
        .route("/ui/models", get(models_page))
        .route("/ui/storage", get(storage_page))
        .route("/ui/labels", get(labels_page))
        .layer(middleware::from_fn(refuse_head))
        .with_state(state)
}

/// Runs a page builder on a blocking thread (store reads and file reads block).
async fn render<F>(state: Arc<ApiState>, build: F) -> Result<Response, PageError>
where
    F: FnOnce(&ApiState) -> Result<String, PageError> + Send + 'static,
{
    let body = tokio::task::spawn_blocking(move || build(&state)).await??;
    Ok((html_headers(), body).into_response())
}

/// A page's headers: its type and the policy that runs no script but the labels' one.
fn html_headers() -> [(axum::http::HeaderName, &'static str); 2] {
    [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (CONTENT_SECURITY_POLICY, labels::csp()),
    ]
}

async fn overview_page(State(state): State<Arc<ApiState>>) -> Result<Response, PageError> {
    render(state, overview::page).await
}

async fn sensor_page(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let range = query_params(uri.query().unwrap_or(""))
        .get("range")
        .cloned()
        .unwrap_or_else(|| "1h".into());
    let range_ms = series::parse_range(&range).map_err(PageError::BadRequest)?;
    render(state, move |s| sensor::page(s, &name, &range, range_ms)).await
}

async fn alert_page(State(state): State<Arc<ApiState>>, Path(key): Path<String>) -> Result<Response, PageError> {
    // Asset ids may hold slashes, rule names do not: the rule is after the last one.
    let Some((asset, rule)) = key.rsplit_once('/') else {
        return Err(PageError::BadRequest("expected /ui/alert/{asset}/{rule}".into()));
    };
    let (asset, rule) = (asset.to_string(), rule.to_string());
    render(state, move |s| alert::page(s, &asset, &rule)).await
}

async fn models_page(State(state): State<Arc<ApiState>>) -> Result<Response, PageError> {
    render(state, storage::models_page).await
}

async fn labels_page(State(state): State<Arc<ApiState>>) -> Result<Response, PageError> {
    render(state, labels::page).await
}

async fn storage_page(State(state): State<Arc<ApiState>>) -> Result<Response, PageError> {
    render(state, storage::page).await
}

/// Stored alarm records, as the alert lifecycle last wrote them.
fn alarms(state: &ApiState) -> Result<Vec<crate::alert::lifecycle::StoredAlarm>, PageError> {
    let outbox = crate::alert::Outbox::open(&state.store)?;
    Ok(crate::alert::lifecycle::stored_alarms(outbox.load_states()?))
}
