//! A user's password: set (given or generated), verify (re-encoding imported digests as
//! argon2id on success), and whether there is one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::user::{Password, UserCommand};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{CreateUser, UserResponse, execute, find};
use crate::app::AppState;
use crate::crypto::password::{self, PasswordError};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_password))
        .routes(routes!(verify_password))
        .routes(routes!(has_password))
        .routes(routes!(set_expiration))
}

fn hashing_failed(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "password hashing failed");
    ApiError::internal()
}

/// argon2id on the blocking pool: it takes tens of milliseconds of CPU by design.
pub async fn hash(plain: String) -> Result<Password, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(hashing_failed)?
        .map_err(hashing_failed)
}

fn generate() -> Result<String, ApiError> {
    password::generate().map_err(hashing_failed)
}

fn legacy_error(error: PasswordError) -> ApiError {
    match error {
        PasswordError::UnsupportedLegacy(algorithm) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "password.unsupported_legacy_hash_algorithm",
            format!("Unsupported legacy hash algorithm {algorithm}."),
        ),
        PasswordError::BadDigest(_) | PasswordError::Hashing(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "password.invalid_legacy_password_format",
            "Invalid password digest format.",
        ),
    }
}

/// The password a new user starts with: hashed plain text, an imported digest, a generated one
/// (returned once), or none.
pub async fn initial(body: &CreateUser) -> Result<(Option<Password>, Option<String>), ApiError> {
    let generate_requested = body.generate_password == Some(true);
    match (&body.password, &body.password_digest) {
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "user.password_and_digest",
            "You cannot set both plain text password and password digest.",
        )),
        (Some(_), None) | (None, Some(_)) if generate_requested => Err(ApiError::bad_request(
            "`generatePassword` cannot be combined with `password` or `passwordDigest`.",
        )),
        (None, None) if generate_requested => {
            let plain = generate()?;
            Ok((Some(hash(plain.clone()).await?), Some(plain)))
        }
        (Some(plain), None) if plain.is_empty() => Err(ApiError::invalid_input(
            "body",
            "Error in key path \"password\": must not be empty",
        )),
        (Some(plain), None) => Ok((Some(hash(plain.clone()).await?), None)),
        (None, Some(digest)) => {
            let algorithm = body.password_algorithm.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "user.password_algorithm_required",
                    "Password algorithm is required.",
                )
            })?;
            if digest.chars().count() > 256 {
                return Err(ApiError::invalid_input(
                    "body",
                    "Error in key path \"passwordDigest\": at most 256 characters",
                ));
            }
            let imported = Password {
                password_digest: digest.clone(),
                password_algorithm: algorithm,
            };
            password::validate(&imported).map_err(legacy_error)?;
            Ok((Some(imported), None))
        }
        (None, None) => Ok((None, None)),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetPasswordBody {
    pub password: Option<String>,
    /// idledger: generate a strong random password, returned once as `generatedPassword`.
    pub generate_password: Option<bool>,
}

/// Set a user's password (argon2id), or have one generated and returned once.
#[utoipa::path(patch, path = "/api/users/{id}/password", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = SetPasswordBody,
    responses((status = 200, body = UserResponse), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<SetPasswordBody>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let (plain, generated) = match (body.password, body.generate_password == Some(true)) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "`generatePassword` cannot be combined with `password`.",
            ));
        }
        (Some(plain), false) if !plain.is_empty() => (plain, None),
        (None, true) => {
            let plain = generate()?;
            (plain.clone(), Some(plain))
        }
        (Some(_) | None, false) => {
            return Err(ApiError::invalid_input(
                "body",
                "Error in key path \"password\": Required",
            ));
        }
    };
    find(&state, &id).await?;
    let hashed = hash(plain).await?;
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::SetPassword(hashed),
    )
    .await?;
    let mut response = UserResponse::from_row(find(&state, &id).await?, false);
    response.generated_password = generated;
    Ok(axum::Json(response))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyPasswordBody {
    pub password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "session.invalid_credentials",
        "Wrong account or password.",
    )
}

/// Checks a password; a correct one stored in an imported format is re-encoded as argon2id.
#[utoipa::path(post, path = "/api/users/{id}/password/verify", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = VerifyPasswordBody,
    responses((status = 204), (status = 400), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn verify_password(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<VerifyPasswordBody>,
) -> Result<StatusCode, ApiError> {
    if body.password.is_empty() {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"password\": must not be empty",
        ));
    }
    let user = find(&state, &id).await?;
    let (Some(digest), Some(algorithm)) = (user.password_digest, user.password_algorithm) else {
        return Err(invalid_credentials());
    };
    let stored = Password {
        password_digest: digest,
        password_algorithm: serde_json::from_value(serde_json::Value::String(algorithm))
            .map_err(hashing_failed)?,
    };
    let plain = body.password;
    let (matches, rehashed) = tokio::task::spawn_blocking(move || {
        let matches = password::verify(&plain, &stored)?;
        let rehashed = if matches && password::needs_rehash(&stored) {
            Some(password::hash(&plain)?)
        } else {
            None
        };
        Ok::<_, PasswordError>((matches, rehashed))
    })
    .await
    .map_err(hashing_failed)?
    .map_err(hashing_failed)?;
    if !matches {
        return Err(invalid_credentials());
    }
    if let Some(rehashed) = rehashed {
        execute(
            &state,
            &caller,
            &context,
            &id,
            UserCommand::RehashPassword(rehashed),
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HasPassword {
    pub has_password: bool,
}

/// Whether the user has a password.
#[utoipa::path(get, path = "/api/users/{id}/has-password", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = HasPassword), (status = 404)),
    security(("bearer" = [])))]
async fn has_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<HasPassword>, ApiError> {
    Ok(axum::Json(HasPassword {
        has_password: find(&state, &id).await?.password_digest.is_some(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpirationBody {
    pub is_expired: bool,
}

/// Password expiry: no expiration policy is enabled here, so a password cannot be expired.
#[utoipa::path(patch, path = "/api/users/{id}/password/expiration", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = ExpirationBody,
    responses((status = 200, body = UserResponse), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn set_expiration(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ExpirationBody>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let user = find(&state, &id).await?;
    if body.is_expired {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "sign_in_experiences.password_expiration_not_enabled",
            "Password expiration is not enabled.",
        ));
    }
    Ok(axum::Json(UserResponse::from_row(user, false)))
}
