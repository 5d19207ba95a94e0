//! Personal access tokens: `pat_` + a 32-character secret, looked up by keyed hash, the value
//! sealed in the vault because Logto shows it again on every read.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::user::{NewPersonalAccessToken, User, UserCommand};
use projections::users::TokenRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{execute, find};
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::store::Unit;

/// Domain of the keyed hash personal access tokens are looked up by.
pub const TOKEN_HASH_KIND: &str = "personal_access_token";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token, rename_token))
        .routes(routes!(delete_token))
        .routes(routes!(rename_token_legacy, delete_token_legacy))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub tenant_id: &'static str,
    pub user_id: String,
    pub name: String,
    pub value: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

async fn response(state: &AppState, row: TokenRow) -> Result<TokenResponse, ApiError> {
    let value = state
        .store
        .open_vault(&row.vault_ref)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            tracing::error!(vault_ref = %row.vault_ref, "token value missing from the vault");
            ApiError::internal()
        })?;
    Ok(TokenResponse {
        tenant_id: "default",
        user_id: row.user_id,
        name: row.name,
        value,
        created_at: row.created_at,
        expires_at: row.expires_at,
    })
}

async fn token_named(state: &AppState, id: &str, name: &str) -> Result<TokenResponse, ApiError> {
    let row = {
        let db = state.store.pool().get().await?;
        projections::users::tokens(&db, id)
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(ApiError::not_found)?
    };
    response(state, row).await
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"name\": must be 1 to 256 characters",
        ));
    }
    Ok(())
}

/// The user's personal access tokens, values included.
#[utoipa::path(get, path = "/api/users/{id}/personal-access-tokens", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Vec<TokenResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<TokenResponse>>, ApiError> {
    find(&state, &id).await?;
    let rows = {
        let db = state.store.pool().get().await?;
        projections::users::tokens(&db, &id).await?
    };
    let mut tokens = Vec::with_capacity(rows.len());
    for row in rows {
        tokens.push(response(&state, row).await?);
    }
    Ok(axum::Json(tokens))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenBody {
    pub name: String,
    pub expires_at: Option<i64>,
}

/// Create a personal access token.
#[utoipa::path(post, path = "/api/users/{id}/personal-access-tokens", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = CreateTokenBody,
    responses((status = 201, body = TokenResponse), (status = 400), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<CreateTokenBody>,
) -> Result<(StatusCode, axum::Json<TokenResponse>), ApiError> {
    check_name(&body.name)?;
    if body.expires_at.is_some_and(|at| at <= context.now_ms()) {
        return Err(ApiError::bad_request(
            "The expiration time must be in the future.",
        ));
    }
    find(&state, &id).await?;
    let value = format!("pat_{}", ids::secret().map_err(|_| ApiError::internal())?);
    let vault_ref = format!(
        "pat-{}",
        ids::standard_id().map_err(|_| ApiError::internal())?
    );
    let unit = Unit::new()
        .seal(vault_ref.clone(), value.as_bytes().to_vec())
        .then::<User>(
            &id,
            UserCommand::AddPersonalAccessToken(NewPersonalAccessToken {
                name: body.name.clone(),
                lookup_hash: state.store.keyring().lookup_hash(TOKEN_HASH_KIND, &value),
                vault_ref,
                expires_at: body.expires_at,
            }),
        );
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(token_named(&state, &id, &body.name).await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameBody {
    /// The new name.
    pub name: String,
    /// The token's current name.
    pub current_name: Option<String>,
}

async fn rename(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: &str,
    name: String,
    new_name: String,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    check_name(&new_name)?;
    find(state, id).await?;
    execute(
        state,
        caller,
        context,
        id,
        UserCommand::RenamePersonalAccessToken {
            name,
            new_name: new_name.clone(),
        },
    )
    .await?;
    Ok(axum::Json(token_named(state, id, &new_name).await?))
}

/// Rename a token (`currentName` → `name`).
#[utoipa::path(patch, path = "/api/users/{id}/personal-access-tokens", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = RenameBody,
    responses((status = 200, body = TokenResponse), (status = 400), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn rename_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RenameBody>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let current = body.current_name.ok_or_else(|| {
        ApiError::invalid_input("body", "Error in key path \"currentName\": Required")
    })?;
    rename(&state, &caller, &context, &id, current, body.name).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NameBody {
    pub name: String,
}

/// Rename a token (legacy route).
#[utoipa::path(patch, path = "/api/users/{id}/personal-access-tokens/{name}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("name" = String, Path, description = "Current token name.")),
    request_body = NameBody,
    responses((status = 200, body = TokenResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn rename_token_legacy(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, name)): Path<(String, String)>,
    Json(body): Json<NameBody>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    rename(&state, &caller, &context, &id, name, body.name).await
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: &str,
    name: String,
) -> Result<StatusCode, ApiError> {
    execute(
        state,
        caller,
        context,
        id,
        UserCommand::DeletePersonalAccessToken { name },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a token; its sealed value is destroyed.
#[utoipa::path(post, path = "/api/users/{id}/personal-access-tokens/delete", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = NameBody,
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &caller, &context, &id, body.name).await
}

/// Delete a token (legacy route).
#[utoipa::path(delete, path = "/api/users/{id}/personal-access-tokens/{name}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("name" = String, Path, description = "Token name.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_token_legacy(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&state, &caller, &context, &id, name).await
}
