//! Logto's Experience API (`/api/experience`, logto-compat §7): the public routes a sign-in
//! page drives, bound to the interaction by the `_interaction` cookie that the authorization
//! endpoint set. The steps themselves live in `flow.rs`, shared with the hosted pages.

pub mod flow;
mod mfa;
pub mod rules;
mod social;
mod verification_code;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum_extra::extract::CookieJar;
use domain::interaction::{IdentifierType, InteractionEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::http::oidc::INTERACTION_COOKIE;
use flow::{Experience, Identification, ProfileUpdate};

/// Outside the Management API's authentication: the interaction cookie is the credential.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/experience", put(start))
        .route("/api/experience/interaction-event", put(change_event))
        .route("/api/experience/interaction", get(interaction))
        .route("/api/experience/verification/password", post(password))
        .route(
            "/api/experience/verification/new-password-identity",
            post(new_password_identity),
        )
        .route(
            "/api/experience/verification/one-time-token/verify",
            post(one_time_token),
        )
        .route("/api/experience/identification", post(identification))
        .route("/api/experience/profile", post(profile))
        .route("/api/experience/submit", post(submit))
        .merge(verification_code::router())
        .merge(social::router())
        .merge(mfa::router())
}

/// The interaction the browser's cookie names.
pub async fn experience<'a>(
    state: &'a AppState,
    context: &'a RequestContext,
    jar: &CookieJar,
) -> Result<Experience<'a>, ApiError> {
    Experience::load(
        state,
        context,
        jar.get(INTERACTION_COOKIE).map(|c| c.value()),
    )
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
/// Logto's `captchaToken` is ignored with any other unknown key: no captcha provider exists.
struct EventBody {
    interaction_event: InteractionEvent,
}

async fn start(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<EventBody>,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    experience.set_event(body.interaction_event, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_event(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<EventBody>,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    experience.set_event(body.interaction_event, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn interaction(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
) -> Result<axum::Json<Value>, ApiError> {
    let experience = experience(&state, &context, &jar).await?;
    Ok(axum::Json(experience.sanitized()))
}

#[derive(Deserialize)]
struct IdentifierBody {
    #[serde(rename = "type")]
    kind: IdentifierType,
    value: String,
}

#[derive(Deserialize)]
struct PasswordBody {
    identifier: IdentifierBody,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationResponse {
    verification_id: String,
}

async fn password(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<PasswordBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .verify_password(body.identifier.kind, &body.identifier.value, body.password)
        .await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

async fn new_password_identity(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<PasswordBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    // Logto only registers usernames this way; emails and phones need a verification code.
    if body.identifier.kind != IdentifierType::Username {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"identifier.type\": Invalid literal value, expected \"username\"",
        ));
    }
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .new_password_identity(body.identifier.value, body.password)
        .await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

#[derive(Deserialize)]
struct OneTimeTokenBody {
    token: String,
    identifier: IdentifierBody,
}

async fn one_time_token(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<OneTimeTokenBody>,
) -> Result<axum::Json<VerificationResponse>, ApiError> {
    if body.identifier.kind != IdentifierType::Email {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"identifier.type\": Invalid literal value, expected \"email\"",
        ));
    }
    let mut experience = experience(&state, &context, &jar).await?;
    let verification_id = experience
        .verify_one_time_token(&body.token, &body.identifier.value, false)
        .await?;
    Ok(axum::Json(VerificationResponse { verification_id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentificationBody {
    verification_id: Option<String>,
}

async fn identification(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<IdentificationBody>,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    Ok(
        match experience.identify(body.verification_id.as_deref()).await? {
            Identification::Existing => StatusCode::NO_CONTENT,
            Identification::Created => StatusCode::CREATED,
        },
    )
}

async fn profile(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Json(body): Json<ProfileUpdate>,
) -> Result<StatusCode, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    experience.set_profile(body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubmitResponse {
    redirect_to: String,
}

async fn submit(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
) -> Result<axum::Json<SubmitResponse>, ApiError> {
    let mut experience = experience(&state, &context, &jar).await?;
    let redirect_to = experience.submit().await?;
    Ok(axum::Json(SubmitResponse { redirect_to }))
}
