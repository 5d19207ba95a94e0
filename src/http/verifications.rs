//! Logto's Account API verification records (`/api/verifications/*`), authenticated like
//! `/api/my-account` by the person's opaque access token. A record is a `verification_record`
//! stream (see `domain::verification_record`): ten minutes long, the caller's alone.
//!
//! - `POST /api/verifications/password`: the person's password, checked under the sentinel
//!   (keyed by their user id, so a stolen access token cannot guess on without locking), makes
//!   a record that proves their identity in the `logto-verification-id` header.
//! - `POST /api/verifications/verification-code` and `.../verify`: a code mailed to the
//!   person's primary email (through `http/codes.rs`, like the Experience API's), entered back,
//!   makes the same kind of proof for someone without a password.
//! - `POST /api/verifications/social` and `.../social/verify`: a trip to a social provider
//!   whose verified return proves ownership of the upstream identity, for
//!   `POST /api/my-account/identities` to link, once.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::Actor;
use domain::message::UsageType;
use domain::user::{User, UserCommand};
use domain::verification_record::{TTL_MS, VerificationRecord, VerificationRecordCommand};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::AppState;
use crate::connectors::social::{self, SocialSession, SocialUser, TokenSet};
use crate::crypto::ids;
use crate::http::account::account_holder;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::http::experience::flow::{
    Checked, SENTINEL_HASH_KIND, check_password, invalid_credentials, stored_password,
};
use crate::http::extract::{Json, RequestContext};
use crate::sentinel;
use crate::store::Unit;

/// The header that names the record proving the caller's identity for a sensitive change.
pub const VERIFICATION_ID_HEADER: &str = "logto-verification-id";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/verifications/password", post(verify_password))
        .route("/api/verifications/verification-code", post(send_code))
        .route(
            "/api/verifications/verification-code/verify",
            post(verify_code),
        )
        .route("/api/verifications/social", post(start_social))
        .route("/api/verifications/social/verify", post(verify_social))
}

fn session_ref(record_id: &str) -> String {
    format!("verification_record/{record_id}/session")
}

fn result_ref(record_id: &str) -> String {
    format!("verification_record/{record_id}/result")
}

/// What the provider vouched for, sealed from the verified return until the link.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProvenIdentity {
    pub connector_id: String,
    pub target: String,
    pub user: SocialUser,
    pub tokens: TokenSet,
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "verification record");
    ApiError::internal()
}

fn not_found() -> ApiError {
    ApiError::from(domain::Rejection::from(
        domain::verification_record::VerificationRecordError::NotFound,
    ))
}

fn permission_denied() -> ApiError {
    ApiError::from(domain::Rejection::from(
        domain::verification_record::VerificationRecordError::PermissionDenied,
    ))
}

/// Logto's `expiresAt`: an ISO 8601 instant.
fn iso(ms: i64) -> Result<String, ApiError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(internal)?
        .format(&Rfc3339)
        .map_err(internal)
}

/// Answers 401 `verification_record.permission_denied` unless the `logto-verification-id`
/// header names a live identity record of `user_id`; the presentation is recorded with its
/// `purpose` (Logto's `identityVerified`, checked before anything else the route checks).
pub(crate) async fn prove_identity(
    state: &AppState,
    context: &RequestContext,
    headers: &HeaderMap,
    user_id: &str,
    purpose: &str,
) -> Result<(), ApiError> {
    let record_id = headers
        .get(VERIFICATION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(permission_denied)?;
    state
        .store
        .run(
            Unit::new().then::<VerificationRecord>(
                record_id,
                VerificationRecordCommand::ProveIdentity {
                    user_id: user_id.to_owned(),
                    purpose: purpose.to_owned(),
                    now: context.now_ms(),
                },
            ),
            &context.metadata(Actor::User(user_id.to_owned())),
        )
        .await?;
    Ok(())
}

/// The identity a verified social record proves. Whose record it is, whether it is still
/// live and whether it was spent is the record's decision when the link consumes it.
pub(crate) async fn proven_identity(
    state: &AppState,
    record_id: &str,
) -> Result<ProvenIdentity, ApiError> {
    let sealed = state
        .store
        .open_vault(&result_ref(record_id))
        .await?
        .ok_or_else(not_found)?;
    serde_json::from_slice(&sealed).map_err(internal)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    verification_record_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_uri: Option<String>,
    expires_at: String,
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

async fn verify_password(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<PasswordBody>,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    if body.password.is_empty() {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"password\": must not be empty",
        ));
    }
    let pool = state.store.pool();
    let now = context.now_ms();
    let key = state
        .store
        .keyring()
        .lookup_hash(SENTINEL_HASH_KIND, &format!("user-id:{}", user.id));
    sentinel::check_lockout(pool, &key, now)
        .await
        .map_err(ApiError::verification_blocked)?;
    let record_id = ids::standard_id().map_err(internal)?;
    let metadata = context.metadata(Actor::User(user.id.clone()));
    match check_password(stored_password(&user), body.password).await? {
        Checked::Match { rehashed } => {
            let expires_at = now + TTL_MS;
            let mut unit = Unit::new().then_fresh::<VerificationRecord>(
                record_id.clone(),
                VerificationRecordCommand::ProvePassword {
                    user_id: user.id.clone(),
                    expires_at,
                },
            );
            if let Some(rehashed) = rehashed {
                unit = unit.then::<User>(user.id.clone(), UserCommand::RehashPassword(rehashed));
            }
            state.store.run(unit, &metadata).await?;
            if let Err(error) = sentinel::clear(pool, &key).await {
                tracing::warn!(%error, "sentinel failures not cleared after a verification");
            }
            Ok((
                StatusCode::CREATED,
                axum::Json(Created {
                    verification_record_id: record_id,
                    authorization_uri: None,
                    expires_at: iso(expires_at)?,
                }),
            ))
        }
        Checked::Mismatch => {
            let refused = Unit::new().then_fresh::<VerificationRecord>(
                record_id,
                VerificationRecordCommand::RefusePassword {
                    user_id: user.id.clone(),
                },
            );
            state.store.run(refused, &metadata).await?;
            let config = {
                let db = pool.get().await?;
                projections::sign_in_experience::current(&db).await?
            };
            match sentinel::record_failure(pool, &key, &config.sentinel_policy, now).await {
                Ok(Some(limited)) => Err(ApiError::verification_blocked(limited)),
                Ok(None) => Err(invalid_credentials()),
                Err(error) => {
                    tracing::warn!(%error, "sentinel failure not recorded");
                    Err(invalid_credentials())
                }
            }
        }
    }
}

/// Logto's `verificationCodeIdentifierGuard`.
#[derive(Deserialize)]
struct CodeIdentifier {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// The record's code stream (see `http/codes.rs`).
fn code_scope(record_id: &str) -> String {
    format!("verification_record:{record_id}")
}

/// The address a code goes to: the person's own primary email, the only identifier whose code
/// proves who they are (SMS is not offered: 501 as Logto answers without a connector).
fn own_email(
    user: &projections::users::UserRow,
    identifier: &CodeIdentifier,
) -> Result<String, ApiError> {
    if identifier.kind == "phone" {
        return Err(ApiError::connector_not_found("Sms"));
    }
    if identifier.kind != "email" {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"identifier.type\": Invalid enum value",
        ));
    }
    let email = codes::email(&identifier.value, "identifier.value")?;
    let own = user
        .primary_email
        .as_deref()
        .is_some_and(|primary| primary.eq_ignore_ascii_case(&email));
    if !own {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.email_not_exist",
            "The email is not the primary email of this account.",
        ));
    }
    Ok(email)
}

#[derive(Deserialize)]
struct SendCodeBody {
    identifier: CodeIdentifier,
}

async fn send_code(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<SendCodeBody>,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    let email = own_email(&user, &body.identifier)?;
    let record_id = ids::standard_id().map_err(internal)?;
    let actor = Actor::User(user.id.clone());
    codes::send(
        &state,
        &context,
        actor.clone(),
        codes::Send {
            scope: code_scope(&record_id),
            code_id: record_id.clone(),
            email: &email,
            usage_type: UsageType::UserPermissionValidation,
            ui_locales: None,
            context: json!({ "user": { "id": user.id, "username": user.username,
                                       "name": user.name, "primaryEmail": email } }),
        },
    )
    .await?;
    let expires_at = context.now_ms() + TTL_MS;
    let unit = Unit::new().then_fresh::<VerificationRecord>(
        record_id.clone(),
        VerificationRecordCommand::StartEmailCode {
            user_id: user.id,
            expires_at,
        },
    );
    state.store.run(unit, &context.metadata(actor)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Created {
            verification_record_id: record_id,
            authorization_uri: None,
            expires_at: iso(expires_at)?,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyCodeBody {
    identifier: CodeIdentifier,
    verification_id: String,
    code: String,
}

async fn verify_code(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<VerifyCodeBody>,
) -> Result<axum::Json<VerifiedBody>, ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    codes::require_code(&body.code)?;
    let email = own_email(&user, &body.identifier)?;
    let actor = Actor::User(user.id.clone());
    let record_id = body.verification_id;
    codes::verify(
        &state,
        &context,
        actor.clone(),
        &code_scope(&record_id),
        Some(&record_id),
        &email,
        &body.code,
    )
    .await?;
    let unit = Unit::new().then::<VerificationRecord>(
        record_id.clone(),
        VerificationRecordCommand::VerifyEmailCode {
            user_id: user.id,
            now: context.now_ms(),
        },
    );
    state.store.run(unit, &context.metadata(actor)).await?;
    Ok(axum::Json(VerifiedBody {
        verification_record_id: record_id,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SocialBody {
    connector_id: String,
    redirect_uri: String,
    state: String,
}

async fn start_social(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<SocialBody>,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    if body.state.is_empty() || url::Url::parse(&body.redirect_uri).is_err() {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"redirectUri\": Invalid url",
        ));
    }
    let connector = social::connector(&state.store, &body.connector_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "entity.not_found",
                "The social connector was not found.",
            )
        })?;
    let (uri, session) = connector
        .social
        .authorization_uri(
            &body.connector_id,
            &connector.config,
            &body.state,
            &body.redirect_uri,
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, connector_id = %body.connector_id, "authorization URI not built");
            ApiError::from(error)
        })?;
    let record_id = ids::standard_id().map_err(internal)?;
    let expires_at = context.now_ms() + TTL_MS;
    let unit = Unit::new()
        .then_fresh::<VerificationRecord>(
            record_id.clone(),
            VerificationRecordCommand::StartSocial {
                user_id: user.id.clone(),
                connector_id: body.connector_id,
                session_ref: session_ref(&record_id),
                expires_at,
            },
        )
        .seal(
            session_ref(&record_id),
            serde_json::to_vec(&session).map_err(internal)?,
        );
    state
        .store
        .run(unit, &context.metadata(Actor::User(user.id)))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Created {
            verification_record_id: record_id,
            authorization_uri: Some(uri),
            expires_at: iso(expires_at)?,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SocialVerifyBody {
    verification_record_id: String,
    connector_data: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifiedBody {
    verification_record_id: String,
}

async fn verify_social(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<SocialVerifyBody>,
) -> Result<axum::Json<VerifiedBody>, ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    let record_id = body.verification_record_id;
    let sealed = state
        .store
        .open_vault(&session_ref(&record_id))
        .await?
        .ok_or_else(not_found)?;
    let session: SocialSession = serde_json::from_slice(&sealed).map_err(internal)?;
    let connector = social::connector(&state.store, &session.connector_id)
        .await?
        .ok_or_else(crate::http::experience::flow::invalid_connector)?;
    let metadata = context.metadata(Actor::User(user.id.clone()));
    let answer = connector
        .social
        .user_info(
            &connector.config,
            &session,
            &body.connector_data,
            context.now_ms(),
        )
        .await;
    let (social_user, tokens) = match answer {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(
                connector_id = %session.connector_id,
                code = error.code,
                reason = error.reason,
                message = %error.message,
                "social verification refused"
            );
            let failed = Unit::new().then::<VerificationRecord>(
                record_id,
                VerificationRecordCommand::FailSocial {
                    user_id: user.id,
                    reason: error.code.to_owned(),
                },
            );
            if let Err(unrecorded) = state.store.run(failed, &metadata).await {
                tracing::warn!(%unrecorded, "social verification failure not recorded");
            }
            return Err(error.into());
        }
    };
    let proven = ProvenIdentity {
        connector_id: session.connector_id,
        target: connector.target,
        user: social_user,
        tokens,
    };
    let unit = Unit::new()
        .then::<VerificationRecord>(
            record_id.clone(),
            VerificationRecordCommand::VerifySocial {
                user_id: user.id,
                result_ref: result_ref(&record_id),
                now: context.now_ms(),
            },
        )
        .seal(
            result_ref(&record_id),
            serde_json::to_vec(&proven).map_err(internal)?,
        );
    state.store.run(unit, &metadata).await?;
    Ok(axum::Json(VerifiedBody {
        verification_record_id: record_id,
    }))
}
