//! The global roles a user holds.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use domain::role::RoleType;
use domain::user::UserCommand;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{execute, find};
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::http::management::listing::Listing;
use crate::http::management::roles::{RoleResponse, list_held};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, assign_roles, replace_roles))
        .routes(routes!(remove_role))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleIdsBody {
    pub role_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignedRoles {
    pub role_ids: Vec<String>,
    /// Only in the answer to `POST`: the ids that were not held before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_role_ids: Option<Vec<String>>,
}

/// Checks the ids name existing user roles.
pub async fn check_user_roles(state: &AppState, role_ids: &[String]) -> Result<(), ApiError> {
    let db = state.store.pool().get().await?;
    let found = projections::roles::by_ids(&db, role_ids).await?;
    for role_id in role_ids {
        let role = found
            .iter()
            .find(|r| &r.id == role_id)
            .ok_or_else(|| ApiError::not_exists_with_id("role", role_id))?;
        if role.role_type != RoleType::User.as_str() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user.invalid_role_type",
                "Can not assign machine to machine role to user.",
            )
            .with_data(json!({ "roleId": role_id })));
        }
    }
    Ok(())
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// The roles a user holds (paginated, searchable).
#[utoipa::path(get, path = "/api/users/{id}/roles", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
           ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100)."),
           ("search" = Option<String>, Query, description = "Logto search over role id, name, description.")),
    responses((status = 200, body = Vec<RoleResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_roles(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Listing<RoleResponse>, ApiError> {
    find(&state, &id).await?;
    let held = {
        let db = state.store.pool().get().await?;
        projections::users::role_ids(&db, &id).await?
    };
    list_held(&state, &uri, &query, held).await
}

/// Give roles to a user; ones already held are ignored.
#[utoipa::path(post, path = "/api/users/{id}/roles", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = RoleIdsBody,
    responses((status = 201, body = AssignedRoles), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn assign_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RoleIdsBody>,
) -> Result<(StatusCode, axum::Json<AssignedRoles>), ApiError> {
    find(&state, &id).await?;
    let role_ids = dedup(body.role_ids);
    check_user_roles(&state, &role_ids).await?;
    let held = {
        let db = state.store.pool().get().await?;
        projections::users::role_ids(&db, &id).await?
    };
    let added: Vec<String> = role_ids
        .iter()
        .filter(|r| !held.contains(r))
        .cloned()
        .collect();
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::AssignRoles {
            role_ids: role_ids.clone(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AssignedRoles {
            role_ids,
            added_role_ids: Some(added),
        }),
    ))
}

/// Make the user hold exactly these roles.
#[utoipa::path(put, path = "/api/users/{id}/roles", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = RoleIdsBody,
    responses((status = 200, body = AssignedRoles), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn replace_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RoleIdsBody>,
) -> Result<axum::Json<AssignedRoles>, ApiError> {
    find(&state, &id).await?;
    let role_ids = dedup(body.role_ids);
    check_user_roles(&state, &role_ids).await?;
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::ReplaceRoles {
            role_ids: role_ids.clone(),
        },
    )
    .await?;
    Ok(axum::Json(AssignedRoles {
        role_ids,
        added_role_ids: None,
    }))
}

/// Take a role from a user.
#[utoipa::path(delete, path = "/api/users/{id}/roles/{role_id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("role_id" = String, Path, description = "Role id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, role_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::RemoveRole { role_id },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
