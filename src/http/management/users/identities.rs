//! A user's upstream identities (`identities.<target> = {userId, details}`): view, link by an
//! admin, remove.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::user::UserCommand;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{UserResponse, execute, find};
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_identity, put_identity, delete_identity))
        .routes(routes!(all_identities))
        .routes(routes!(get_sso_identity))
}

fn not_linked() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user.identity_not_exist",
        "The social identity has not been registered yet.",
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityResponse {
    #[schema(value_type = Object)]
    pub identity: Value,
}

/// One upstream identity of the user.
#[utoipa::path(get, path = "/api/users/{id}/identities/{target}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("target" = String, Path, description = "Connector target, e.g. github."),
           ("includeTokenSecret" = Option<bool>, Query, description = "Add the stored upstream token set, desensitized.")),
    responses((status = 200, body = IdentityResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_identity(
    State(state): State<AppState>,
    Path((id, target)): Path<(String, String)>,
) -> Result<axum::Json<IdentityResponse>, ApiError> {
    let user = find(&state, &id).await?;
    let identity = user
        .identities
        .get(&target)
        .cloned()
        .ok_or_else(not_linked)?;
    Ok(axum::Json(IdentityResponse { identity }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBody {
    /// The user's id at the identity provider.
    pub user_id: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Map<String, Value>>,
}

/// Link (or replace) an upstream identity; 201 when the target is new, 200 when replaced.
/// Answers the whole identities map.
#[utoipa::path(put, path = "/api/users/{id}/identities/{target}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("target" = String, Path, description = "Connector target.")),
    request_body = IdentityBody,
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn put_identity(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, target)): Path<(String, String)>,
    Json(body): Json<IdentityBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    if body.user_id.is_empty() {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"userId\": must not be empty",
        ));
    }
    let existed = find(&state, &id).await?.identities.get(&target).is_some();
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::LinkIdentity {
            target,
            user_id: body.user_id,
            details: body.details.map(Value::Object),
        },
    )
    .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(find(&state, &id).await?.identities)))
}

/// Remove an upstream identity; answers the user.
#[utoipa::path(delete, path = "/api/users/{id}/identities/{target}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("target" = String, Path, description = "Connector target.")),
    responses((status = 200, body = UserResponse), (status = 404)),
    security(("bearer" = [])))]
async fn delete_identity(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, target)): Path<(String, String)>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    find(&state, &id).await?;
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::UnlinkIdentity { target },
    )
    .await?;
    super::respond(&state, &id).await
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllIdentities {
    #[schema(value_type = Vec<Object>)]
    pub social_identities: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub sso_identities: Vec<Value>,
}

/// Every identity of the user, social and enterprise SSO.
#[utoipa::path(get, path = "/api/users/{id}/all-identities", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = AllIdentities), (status = 404)),
    security(("bearer" = [])))]
async fn all_identities(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<AllIdentities>, ApiError> {
    let user = find(&state, &id).await?;
    let social_identities = user
        .identities
        .as_object()
        .map(|identities| {
            identities
                .iter()
                .map(|(target, identity)| json!({ "target": target, "identity": identity }))
                .collect()
        })
        .unwrap_or_default();
    Ok(axum::Json(AllIdentities {
        social_identities,
        sso_identities: Vec::new(),
    }))
}

/// An enterprise SSO identity (read-only).
#[utoipa::path(get, path = "/api/users/{id}/sso-identities/{sso_connector_id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("sso_connector_id" = String, Path, description = "SSO connector id.")),
    responses((status = 404)),
    security(("bearer" = [])))]
async fn get_sso_identity(
    State(state): State<AppState>,
    Path((id, _connector)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    find(&state, &id).await?;
    // Enterprise SSO connectors are not part of idledger, so no user has such an identity.
    Err(ApiError::not_found())
}
