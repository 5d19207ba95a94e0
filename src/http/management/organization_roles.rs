//! `/api/organization-roles`: the roles of the organization template (Logto §8). Organization
//! scopes do not exist here, so every role lists empty `scopes` and `resourceScopes`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use domain::organization_role::{
    NewOrganizationRole, OrganizationRole, OrganizationRoleCommand, OrganizationRolePatch,
};
use domain::patch::Patch;
use domain::role::RoleType;
use projections::organizations::{self, OrganizationRoleRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::listing::{self, Listing, Paging};
use super::organizations::{check_length, check_name, keyword, not_exists, relation_not_found};
use super::roles::RoleTypeBody;
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_organization_roles, create_organization_role))
        .routes(routes!(
            get_organization_role,
            update_organization_role,
            delete_organization_role
        ))
}

/// Logto's organization role object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRoleResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub role_type: String,
}

impl From<OrganizationRoleRow> for OrganizationRoleResponse {
    fn from(row: OrganizationRoleRow) -> OrganizationRoleResponse {
        OrganizationRoleResponse {
            tenant_id: "default",
            id: row.id,
            name: row.name,
            description: row.description,
            role_type: row.role_type,
        }
    }
}

/// A role in the list, with the scopes it grants (always none here).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationRoleWithScopes {
    #[serde(flatten)]
    pub role: OrganizationRoleResponse,
    #[schema(value_type = Vec<Object>)]
    pub scopes: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub resource_scopes: Vec<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrganizationRole {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 256)]
    pub description: Option<String>,
    /// `User` (default) or `MachineToMachine`.
    #[serde(default, rename = "type")]
    pub role_type: Option<RoleTypeBody>,
    /// Organization scopes to grant; none exist here, so any id is unknown.
    #[serde(default)]
    pub organization_scope_ids: Vec<String>,
    /// Resource scopes to grant; not supported here.
    #[serde(default)]
    pub resource_scope_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationRole {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable, max_length = 256)]
    pub description: Patch<String>,
    #[serde(default, rename = "type")]
    pub role_type: Option<RoleTypeBody>,
}

/// The role, or Logto's 404 (a raw `pool.one` lookup there, hence `entity.not_found`).
async fn find(state: &AppState, id: &str) -> Result<OrganizationRoleRow, ApiError> {
    let db = state.store.pool().get().await?;
    organizations::role_by_id(&db, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn execute(
    state: &AppState,
    caller: Caller,
    context: &RequestContext,
    id: &str,
    command: OrganizationRoleCommand,
) -> Result<(), ApiError> {
    state
        .store
        .execute::<OrganizationRole>(id, command, &context.metadata(caller.actor))
        .await?;
    Ok(())
}

/// List organization roles by name; `q` matches id, name or description.
#[utoipa::path(get, path = "/api/organization-roles", tag = "Organization roles",
    params(
        ("q" = Option<String>, Query, description = "Case-insensitive substring of id, name or description."),
        ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
        ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100)."),
    ),
    responses((status = 200, body = Vec<OrganizationRoleWithScopes>), (status = 400)),
    security(("bearer" = [])))]
async fn list_organization_roles(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<OrganizationRoleWithScopes>, ApiError> {
    let page = listing::required_page(&query)?;
    let db = state.store.pool().get().await?;
    let (rows, total) = organizations::list_roles(&db, &keyword(&query), page.window()).await?;
    Ok(Listing {
        rows: rows
            .into_iter()
            .map(|row| OrganizationRoleWithScopes {
                role: row.into(),
                scopes: Vec::new(),
                resource_scopes: Vec::new(),
            })
            .collect(),
        paging: Some(Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Create an organization role.
#[utoipa::path(post, path = "/api/organization-roles", tag = "Organization roles",
    request_body = CreateOrganizationRole,
    responses((status = 201, body = OrganizationRoleResponse), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn create_organization_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateOrganizationRole>,
) -> Result<(StatusCode, axum::Json<OrganizationRoleResponse>), ApiError> {
    check_name(&body.name)?;
    if let Some(description) = &body.description {
        check_length("description", description, 256)?;
    }
    if !body.organization_scope_ids.is_empty() {
        return Err(relation_not_found());
    }
    if !body.resource_scope_ids.is_empty() {
        return Err(ApiError::bad_request(
            "Resource scopes on organization roles are not supported.",
        ));
    }
    let id = ids::standard_id().map_err(|_| ApiError::internal())?;
    execute(
        &state,
        caller,
        &context,
        &id,
        OrganizationRoleCommand::Create(NewOrganizationRole {
            id: id.clone(),
            name: body.name,
            description: body.description,
            role_type: body.role_type.map_or(RoleType::User, Into::into),
        }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(find(&state, &id).await?.into()),
    ))
}

/// Get an organization role.
#[utoipa::path(get, path = "/api/organization-roles/{id}", tag = "Organization roles",
    params(("id" = String, Path, description = "Organization role id.")),
    responses((status = 200, body = OrganizationRoleResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_organization_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<OrganizationRoleResponse>, ApiError> {
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Update an organization role's name, description or type.
#[utoipa::path(patch, path = "/api/organization-roles/{id}", tag = "Organization roles",
    params(("id" = String, Path, description = "Organization role id.")),
    request_body = UpdateOrganizationRole,
    responses((status = 200, body = OrganizationRoleResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn update_organization_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateOrganizationRole>,
) -> Result<axum::Json<OrganizationRoleResponse>, ApiError> {
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    if let Patch::Value(description) = &body.description {
        check_length("description", description, 256)?;
    }
    // Logto updates with `UPDATE … RETURNING`, which reports a missing row as `entity.not_exists`.
    {
        let db = state.store.pool().get().await?;
        if organizations::role_by_id(&db, &id).await?.is_none() {
            return Err(not_exists("organization role"));
        }
    }
    execute(
        &state,
        caller,
        &context,
        &id,
        OrganizationRoleCommand::Update(OrganizationRolePatch {
            name: body.name,
            description: body.description,
            role_type: body.role_type.map(Into::into),
        }),
    )
    .await?;
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Delete an organization role; every member and JIT list loses it.
#[utoipa::path(delete, path = "/api/organization-roles/{id}", tag = "Organization roles",
    params(("id" = String, Path, description = "Organization role id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_organization_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    execute(
        &state,
        caller,
        &context,
        &id,
        OrganizationRoleCommand::Delete,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
