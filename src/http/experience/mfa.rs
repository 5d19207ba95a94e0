//! Logto's Experience API routes for second factors: verifying a TOTP code or a backup code
//! (`/api/experience/verification/totp/verify`, `…/backup-code/verify`), and enrolling new ones
//! (`…/totp/secret`, `…/backup-code/generate`, `/api/experience/profile/mfa`,
//! `…/profile/mfa/mfa-skipped`). The steps are in `flow/mfa.rs`, shared with the pages.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum_extra::extract::CookieJar;
use domain::mfa::MfaFactorKind;
use serde::{Deserialize, Serialize};

use super::experience;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/experience/verification/totp/secret",
            post(totp_secret),
        )
        .route(
            "/api/experience/verification/totp/verify",
            post(totp_verify),
        )
        .route(
            "/api/experience/verification/backup-code/generate",
            post(backup_code_generate),
        )
        .route(
            "/api/experience/verification/backup-code/verify",
            post(backup_code_verify),
        )
        .route("/api/experience/profile/mfa", post(bind))
        .route("/api/experience/profile/mfa/mfa-skipped", post(skip))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationResponse {
    verification_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretResponse {
    verification_id: String,
    secret: String,
    secret_qr_code: String,
}

async fn totp_secret(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
) -> Result<axum::Json<SecretResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let (verification_id, secret, secret_qr_code) = experience.new_totp_secret().await?;
    Ok(axum::Json(SecretResponse {
        verification_id,
        secret,
        secret_qr_code,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TotpBody {
    code: String,
    verification_id: Option<String>,
}

async fn totp_verify(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<TotpBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .verify_totp(&body.code, body.verification_id.as_deref())
        .await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CodesResponse {
    verification_id: String,
    codes: Vec<String>,
}

async fn backup_code_generate(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
) -> Result<axum::Json<CodesResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let (verification_id, codes) = experience.new_backup_codes().await?;
    Ok(axum::Json(CodesResponse {
        verification_id,
        codes,
    }))
}

#[derive(Deserialize)]
struct BackupCodeBody {
    code: String,
}

async fn backup_code_verify(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<BackupCodeBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience.verify_backup_code(&body.code).await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindBody {
    #[serde(rename = "type")]
    factor: MfaFactorKind,
    verification_id: String,
}

async fn bind(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<BindBody>,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    experience
        .bind_mfa(body.factor, &body.verification_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn skip(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    experience.skip_mfa().await?;
    Ok(StatusCode::NO_CONTENT)
}
