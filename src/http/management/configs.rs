//! `/api/configs/oidc/private-keys`: the token signing keys (list, rotate, delete the previous).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::signing_key::{self, SigningKeyCommand, SigningKeys};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
