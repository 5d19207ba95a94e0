//! The Experience API's verification codes and password reset (logto-compat §7):
//! `POST /api/experience/verification/verification-code` (and `/verify`) and
//! `PUT /api/experience/profile/password`. The steps are in `flow/email_code.rs`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum_extra::extract::CookieJar;
use domain::interaction::{IdentifierType, InteractionEvent};
use serde::{Deserialize, Serialize};

use super::experience;
use crate::app::AppState;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/experience/verification/verification-code",
            post(send_code),
        )
        .route(
            "/api/experience/verification/verification-code/verify",
            post(verify_code),
        )
        .route("/api/experience/profile/password", put(reset_password))
}

#[derive(Deserialize)]
struct IdentifierBody {
    #[serde(rename = "type")]
    kind: IdentifierType,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendBody {
    identifier: IdentifierBody,
    interaction_event: InteractionEvent,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyBody {
    identifier: IdentifierBody,
    verification_id: String,
    code: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationResponse {
    verification_id: String,
}

/// Codes go to emails; a phone number would need an SMS connector, which none is.
fn email_of(identifier: &IdentifierBody) -> Result<&str, ApiError> {
    match identifier.kind {
        IdentifierType::Email => Ok(&identifier.value),
        IdentifierType::Phone => Err(ApiError::connector_not_found("Sms")),
        IdentifierType::Username => Err(ApiError::invalid_input(
            "body",
            "Error in key path \"identifier.type\": expected \"email\" or \"phone\"",
        )),
    }
}

async fn send_code(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<SendBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    let email = email_of(&body.identifier)?;
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .send_email_code(email, body.interaction_event)
        .await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

async fn verify_code(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<VerifyBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    let email = email_of(&body.identifier)?;
    codes::require_code(&body.code)?;
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .verify_email_code(email, &body.verification_id, &body.code)
        .await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    experience.reset_password(body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
