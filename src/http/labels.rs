//! The operator's labels over the API: `GET /api/labels[?asset=ID]` lists them (a viewer
//! may), `POST /api/labels` makes one and `DELETE /api/labels/{id}` removes one made by
//! mistake (actions: an operator and a CSRF token when users are configured).
//!
//! `POST` takes `{"asset", "from", "to", "as", "note"?, "author"?}`: times as RFC 3339 or
//! epoch ms (`to` may lie in the future: a planned stop), `as` one of `false-alarm`,
//! `failure`, `maintenance`. It answers 201 with the stored label once the store has made
//! it durable; an asset the config does not name, an empty span, an unknown kind or a
//! malformed body is 400 naming the field. The author is the authenticated user; without
//! users (a loopback API) it is the body's `author` (what `forewarn label` sends), else
//! `anonymous`, so a user can never write under another's name.
//!
//! After each change the pipeline is told ([`LabelChange`]): it refreshes its maintenance
//! windows and announces the label upstream (the store writes labels in id order, so the
//! pipeline's announcement mark skips none).

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Router};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::Caller;
use crate::alert::labelled::LabelChange;
use crate::base::label::{LabelKind, NewLabel};
use crate::store::{Store, StoreError};

/// Who writes when nobody is authenticated and the body names no one.
pub const ANONYMOUS: &str = "anonymous";

/// What the label routes read and write.
pub struct LabelsState {
    pub store: Store,
    /// The config's asset ids: a label for anything else is refused.
    pub assets: HashSet<String>,
    /// Told of every change.
    pub changes: mpsc::Sender<LabelChange>,
}

#[derive(Debug, thiserror::Error)]
enum LabelsError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no label {0}")]
    NotFound(u64),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

impl IntoResponse for LabelsError {
    fn into_response(self) -> Response {
        let status = match self {
            LabelsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LabelsError::NotFound(_) => StatusCode::NOT_FOUND,
            LabelsError::Store(StoreError::NoSpace { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// The label routes over `state`.
pub fn router(state: Arc<LabelsState>) -> Router {
    Router::new()
        .route("/api/labels", get(list).post(create))
        .route("/api/labels/{id}", delete(remove))
        .with_state(state)
}

/// The body of `POST /api/labels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRequest {
    asset: String,
    from: serde_json::Value,
    to: serde_json::Value,
    #[serde(rename = "as")]
    kind: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    author: Option<String>,
}

/// A time field: epoch ms as a number or a string, or RFC 3339.
fn time_field(name: &str, v: &serde_json::Value) -> Result<i64, String> {
    let parsed = match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => crate::base::time::parse_time(s),
        _ => None,
    };
    parsed.ok_or_else(|| format!("`{name}`: {v} is not a time (RFC 3339 or epoch ms)"))
}

/// The label a request asks for, checked against the config's assets.
fn new_label(body: &[u8], assets: &HashSet<String>, caller: Option<&str>) -> Result<NewLabel, String> {
    let req: LabelRequest = serde_json::from_slice(body).map_err(|e| format!("the body is not a label: {e}"))?;
    if !assets.contains(&req.asset) {
        return Err(format!("`asset`: {:?} is not an asset of the config", req.asset));
    }
    let kind = LabelKind::parse(&req.kind)
        .ok_or_else(|| format!("`as`: {:?} is not false-alarm, failure or maintenance", req.kind))?;
    let author = match caller {
        Some(user) => user.to_string(),
        None => req
            .author
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| ANONYMOUS.to_string()),
    };
    let label = NewLabel {
        asset: req.asset,
        from_ms: time_field("from", &req.from)?,
        to_ms: time_field("to", &req.to)?,
        kind,
        note: req.note.filter(|n| !n.trim().is_empty()),
        author,
    };
    label.validate().map_err(|e| e.to_string())?;
    Ok(label)
}

async fn create(
    State(state): State<Arc<LabelsState>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Result<Response, LabelsError> {
    let caller = caller.map(|Extension(c)| c.0);
    let label = new_label(&body, &state.assets, caller.as_deref()).map_err(LabelsError::BadRequest)?;
    let store = state.store.clone();
    let stored = tokio::task::spawn_blocking(move || store.add_label(label, crate::base::time::now_ms())).await??;
    tracing::info!(id = stored.id, asset = %stored.span.asset, kind = %stored.span.kind, author = %stored.span.author, "label made");
    // The pipeline gone means the agent is stopping; the next start announces it.
    let _ = state.changes.send(LabelChange::Added(stored.clone())).await;
    Ok(json(StatusCode::CREATED, &stored))
}

async fn list(State(state): State<Arc<LabelsState>>, uri: Uri) -> Result<Response, LabelsError> {
    let params = super::routes::query_params(uri.query().unwrap_or(""));
    let asset = params.get("asset").cloned();
    let store = state.store.clone();
    let labels = tokio::task::spawn_blocking(move || store.labels(asset.as_deref())).await??;
    Ok(json(StatusCode::OK, &labels))
}

async fn remove(State(state): State<Arc<LabelsState>>, Path(id): Path<String>) -> Result<Response, LabelsError> {
    let id: u64 = id
        .parse()
        .map_err(|_| LabelsError::BadRequest(format!("{id:?} is not a label id")))?;
    let store = state.store.clone();
    let removed = tokio::task::spawn_blocking(move || store.remove_label(id)).await??;
    let label = removed.ok_or(LabelsError::NotFound(id))?;
    tracing::info!(id, asset = %label.span.asset, kind = %label.span.kind, "label removed");
    let _ = state.changes.send(LabelChange::Removed(label.clone())).await;
    Ok(json(StatusCode::OK, &label))
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(CONTENT_TYPE, "application/json")], body + "\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> HashSet<String> {
        ["line1/pump1".to_string()].into_iter().collect()
    }

    fn ask(body: &str, caller: Option<&str>) -> Result<NewLabel, String> {
        new_label(body.as_bytes(), &assets(), caller)
    }

    #[test]
    fn times_in_both_forms_and_the_author_rules() {
        let l = ask(
            r#"{"asset":"line1/pump1","from":"2026-12-02T09:00:00Z","to":1796205600000,"as":"maintenance","author":"eve"}"#,
            None,
        )
        .unwrap();
        assert_eq!((l.from_ms, l.to_ms), (1_796_205_600_000 - 3_600_000, 1_796_205_600_000));
        assert_eq!((l.kind, l.author.as_str()), (LabelKind::Maintenance, "eve"));
        let body = r#"{"asset":"line1/pump1","from":0,"to":"10","as":"failure","author":"eve"}"#;
        assert_eq!(
            ask(body, Some("olga")).unwrap().author,
            "olga",
            "a user writes as themself"
        );
        let body = r#"{"asset":"line1/pump1","from":0,"to":10,"as":"false-alarm"}"#;
        assert_eq!(ask(body, None).unwrap().author, ANONYMOUS);
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases = [
            (r#"{"asset":"pump9","from":0,"to":10,"as":"failure"}"#, "`asset`"),
            (
                r#"{"asset":"line1/pump1","from":"soon","to":10,"as":"failure"}"#,
                "`from`",
            ),
            (r#"{"asset":"line1/pump1","from":0,"to":true,"as":"failure"}"#, "`to`"),
            (r#"{"asset":"line1/pump1","from":0,"to":10,"as":"broken"}"#, "`as`"),
            (
                r#"{"asset":"line1/pump1","from":10,"to":10,"as":"failure"}"#,
                "`from` must be before `to`",
            ),
            (r#"{"asset":"line1/pump1","from":0,"to":10}"#, "missing field `as`"),
            (
                r#"{"asset":"line1/pump1","from":0,"to":10,"as":"failure","kind":1}"#,
                "unknown field `kind`",
            ),
        ];
        for (body, needle) in cases {
            let e = ask(body, None).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }
}
