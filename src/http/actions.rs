//! The API's actions, the routes that change something: `POST /api/reload-models` reloads
//! the failure-prediction models, as SIGHUP does (after `forewarn train`), so an operator
//! without a shell on the gateway can load a new model. With users, actions need an
//! operator and a CSRF token ([`super::auth`]).

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::Notify;

/// The action routes; `reload` is the pipeline's SIGHUP notification.
pub fn router(reload: Arc<Notify>) -> Router {
    Router::new().route(
        "/api/reload-models",
        post(move || async move {
            reload.notify_one();
            tracing::info!("models reload asked over http");
            reply("models reload started\n")
        }),
    )
}

fn reply(text: &'static str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}
