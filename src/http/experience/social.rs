//! Logto's social verification routes of the Experience API (logto-compat §7):
//! `POST /api/experience/verification/social/:connectorId/authorization-uri` and `…/verify`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::experience;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/experience/verification/social/{connector_id}/authorization-uri",
            post(authorization_uri),
        )
        .route(
            "/api/experience/verification/social/{connector_id}/verify",
            post(verify),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationUriBody {
    state: String,
    redirect_uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationUriResponse {
    verification_id: String,
    authorization_uri: String,
}

async fn authorization_uri(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Path(connector_id): Path<String>,
    Json(body): Json<AuthorizationUriBody>,
) -> Result<axum::Json<AuthorizationUriResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let (verification_id, authorization_uri) = experience
        .social_authorization_uri(&connector_id, Some(&body.state), &body.redirect_uri)
        .await?;
    Ok(axum::Json(AuthorizationUriResponse {
        verification_id,
        authorization_uri,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyBody {
    connector_data: Map<String, Value>,
    verification_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyResponse {
    verification_id: String,
}

async fn verify(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Path(connector_id): Path<String>,
    Json(body): Json<VerifyBody>,
) -> Result<axum::Json<VerifyResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .verify_social(&connector_id, &body.verification_id, &body.connector_data)
        .await?;
    Ok(axum::Json(VerifyResponse { verification_id }))
}
