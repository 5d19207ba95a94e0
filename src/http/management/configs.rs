//! `/api/configs/oidc/private-keys`: the token signing keys (list, rotate, delete the previous);
//! `/api/configs/id-token`: which extended claims the ID token carries.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::id_token_config::{self, IdTokenConfig, IdTokenConfigCommand, IdTokenConfigs};
use domain::signing_key::{self, SigningKeyCommand, SigningKeys};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::command::execute;
use crate::app::AppState;
use crate::bootstrap::new_signing_key;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_private_keys))
        .routes(routes!(rotate_private_keys))
        .routes(routes!(delete_private_key))
        .routes(routes!(get_id_token_config, put_id_token_config))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKeyResponse {
    pub id: String,
    /// Seconds since the epoch, as Logto stores key creation times.
    pub created_at: i64,
    /// `EC` (idledger signs with ES384).
    pub signing_key_algorithm: &'static str,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateBody {
    /// `EC` (default). `RSA` is not offered.
    #[serde(default)]
    pub signing_key_algorithm: Option<String>,
}

async fn keys(state: &AppState) -> Result<Vec<PrivateKeyResponse>, ApiError> {
    let db = state.store.pool().get().await?;
    Ok(projections::signing_keys::all(&db)
        .await?
        .into_iter()
        .map(|row| PrivateKeyResponse {
            id: row.kid,
            created_at: row.created_at / 1000,
            signing_key_algorithm: "EC",
        })
        .collect())
}

/// The signing keys, newest (the one in use) first.
#[utoipa::path(get, path = "/api/configs/oidc/private-keys", tag = "Configs",
    responses((status = 200, body = Vec<PrivateKeyResponse>)),
    security(("bearer" = [])))]
async fn list_private_keys(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<PrivateKeyResponse>>, ApiError> {
    Ok(axum::Json(keys(&state).await?))
}

/// Generate a new signing key; the previous one keeps verifying until deleted, older ones go.
#[utoipa::path(post, path = "/api/configs/oidc/private-keys/rotate", tag = "Configs",
    request_body = RotateBody,
    responses((status = 200, body = Vec<PrivateKeyResponse>), (status = 400)),
    security(("bearer" = [])))]
async fn rotate_private_keys(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<RotateBody>,
) -> Result<axum::Json<Vec<PrivateKeyResponse>>, ApiError> {
    match body.signing_key_algorithm.as_deref() {
        None | Some("EC") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Signing key algorithm {other} is not supported; use EC."
            )));
        }
    }
    let (key, private) = new_signing_key().map_err(|_| ApiError::internal())?;
    let unit = Unit::new()
        .seal(key.vault_ref.clone(), private)
        .then::<SigningKeys>(signing_key::STREAM_ID, SigningKeyCommand::Rotate(key));
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    state.keys.reload().await?;
    Ok(axum::Json(keys(&state).await?))
}

/// Delete a signing key other than the current one.
#[utoipa::path(delete, path = "/api/configs/oidc/private-keys/{key_id}", tag = "Configs",
    params(("key_id" = String, Path, description = "Key id (kid).")),
    responses((status = 204), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn delete_private_key(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .execute::<SigningKeys>(
            signing_key::STREAM_ID,
            SigningKeyCommand::Delete { kid: key_id },
            &context.metadata(caller.actor),
        )
        .await?;
    state.keys.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The ID token's extended claims (Logto's `idToken` config); 404 when none was ever recorded,
/// and then the ID token carries none.
#[utoipa::path(get, path = "/api/configs/id-token", tag = "Configs",
    responses((status = 200, body = Object,
        description = "`{ enabledExtendedClaims?: (\"custom_data\" | \"identities\" | \"sso_identities\" | \"roles\" | \"organizations\" | \"organization_data\" | \"organization_roles\")[] }`"),
        (status = 404)),
    security(("bearer" = [])))]
async fn get_id_token_config(
    State(state): State<AppState>,
) -> Result<axum::Json<IdTokenConfig>, ApiError> {
    let db = state.store.pool().get().await?;
    projections::id_token_config::current(&db)
        .await?
        .map(axum::Json)
        .ok_or_else(ApiError::not_found)
}

/// Replace the setting. A claim it leaves out disappears from ID tokens issued from now on
/// (userinfo keeps every claim of the granted scopes); an unknown claim name is a 400.
#[utoipa::path(put, path = "/api/configs/id-token", tag = "Configs",
    request_body(content = Object,
        description = "`{ enabledExtendedClaims?: [...] }` with the claim names `GET` lists."),
    responses((status = 200, body = Object, description = "The setting now in force."),
        (status = 400)),
    security(("bearer" = [])))]
async fn put_id_token_config(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(config): Json<IdTokenConfig>,
) -> Result<axum::Json<IdTokenConfig>, ApiError> {
    execute::<IdTokenConfigs>(
        &state,
        caller,
        &context,
        id_token_config::STREAM_ID,
        IdTokenConfigCommand::Replace(config),
    )
    .await?;
    get_id_token_config(State(state)).await
}
