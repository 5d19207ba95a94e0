//! The HTTP surface: Logto's Management API under `/api`, OpenID Connect under `/oidc`, and
//! `/metrics`. Only this module knows Logto's JSON.

pub mod account;
mod account_identities;
pub mod auth;
pub mod codes;
mod console;
mod docs;
mod end_user_api;
pub mod error;
pub mod experience;
pub mod extract;
pub mod listener;
pub mod management;
pub mod oidc;
pub mod pages;
mod verifications;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use error::ApiError;

/// Largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// No request may hold a worker longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn router(state: AppState) -> Router {
    let (management, mut openapi) = management::router(state.clone());
    // The document covers the routes outside the Management API's router too.
    openapi.merge(<Health as utoipa::OpenApi>::openapi());
    // Both documents are built once: the routes cannot change while the server runs.
    let mut openapi = serde_json::to_value(&openapi).unwrap_or_default();
    end_user_api::merge_into(&mut openapi);
    let page = axum::response::Html(docs::render(&openapi));
    let openapi = std::sync::Arc::new(openapi);
    Router::new()
        .route("/api/status", get(status))
        .route(
            "/api/swagger.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .route("/api/docs", get(move || async move { page.clone() }))
        .merge(management)
        .merge(experience::router())
        .merge(account::router())
        .merge(account_identities::router())
        .merge(verifications::router())
        .merge(oidc::router())
        .merge(pages::routes())
        .merge(console::routes())
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(listener::bounded))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(crate::telemetry::request_context))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            strict_transport_security,
        ))
        .with_state(state)
}

/// Behind TLS (an `https` `ENDPOINT`), every response tells browsers to use HTTPS only; over
/// plain HTTP the header would be ignored, and on localhost it would pin a developer's browser.
async fn strict_transport_security(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if state.endpoint.starts_with("https://") {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(status))]
struct Health;

/// Logto's health check.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "Health check",
    responses((status = 204, description = "The service is healthy."))
)]
async fn status() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found().into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "request.method_not_allowed",
        "The method is not allowed on this route.",
    )
}

fn panic_response(cause: Box<dyn Any + Send + 'static>) -> Response {
    let cause = cause
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| cause.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(cause, "handler panicked");
    ApiError::internal().into_response()
}
