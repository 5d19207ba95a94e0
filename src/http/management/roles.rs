//! `/api/roles`: global roles, their scopes and the applications holding them (Logto §8).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use domain::Aggregate;
use domain::application::{Application, ApplicationCommand};
use domain::patch::Patch;
use domain::resource::MANAGEMENT_API_RESOURCE_ID;
use domain::role::{NewRole, Role, RoleCommand, RolePatch, RoleType};
use projections::resources::{self, ScopeRow};
use projections::roles::{self, FeaturedApplication, RoleFilter, RoleRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::command::execute;
use super::listing::{self, Listing, Page, Paging};
use super::lockout::{self, AccessChange};
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_scopes, add_scopes))
        .routes(routes!(remove_scope))
        .routes(routes!(list_applications, assign_applications))
        .routes(routes!(remove_application))
        .routes(routes!(list_users, assign_users))
        .routes(routes!(remove_user))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub role_type: String,
    pub is_default: bool,
}

impl From<RoleRow> for RoleResponse {
    fn from(row: RoleRow) -> RoleResponse {
        RoleResponse {
            tenant_id: "default",
            id: row.id,
            name: row.name,
            description: row.description,
            role_type: row.role_type,
            is_default: row.is_default,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeaturedApplicationResponse {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub app_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeaturedUserResponse {
    pub id: String,
    pub avatar: Option<String>,
    pub name: Option<String>,
}

impl From<projections::users::UserRow> for FeaturedUserResponse {
    fn from(user: projections::users::UserRow) -> FeaturedUserResponse {
        FeaturedUserResponse {
            id: user.id,
            avatar: user.avatar,
            name: user.name,
        }
    }
}

/// A role in the list, with who holds it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleWithHolders {
    #[serde(flatten)]
    pub role: RoleResponse,
    pub users_count: i64,
    pub featured_users: Vec<FeaturedUserResponse>,
    pub applications_count: i64,
    pub featured_applications: Vec<FeaturedApplicationResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub resource_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
}

impl From<ScopeRow> for ScopeResponse {
    fn from(row: ScopeRow) -> ScopeResponse {
        ScopeResponse {
            tenant_id: "default",
            id: row.id,
            resource_id: row.resource_id,
            name: row.name,
            description: row.description,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRole {
    pub name: String,
    pub description: String,
    /// `User` (default) or `MachineToMachine`.
    #[serde(default, rename = "type")]
    pub role_type: Option<RoleTypeBody>,
    #[serde(default)]
    pub is_default: Option<bool>,
    #[serde(default)]
    pub scope_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum RoleTypeBody {
    User,
    MachineToMachine,
}

impl From<RoleTypeBody> for RoleType {
    fn from(body: RoleTypeBody) -> RoleType {
        match body {
            RoleTypeBody::User => RoleType::User,
            RoleTypeBody::MachineToMachine => RoleType::MachineToMachine,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRole {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_default: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeIdsBody {
    pub scope_ids: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIdsBody {
    pub application_ids: Vec<String>,
}

fn check_text(key: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid_input(
            "body",
            format!("Error in key path \"{key}\": must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

async fn find(state: &AppState, id: &str) -> Result<RoleRow, ApiError> {
    let db = state.store.pool().get().await?;
    roles::by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_exists_with_id("role", id))
}

fn role_filter(query: &QueryPairs) -> Result<RoleFilter, ApiError> {
    let role_type = match query.get("type") {
        None => None,
        Some(name @ ("User" | "MachineToMachine")) => Some(name.to_owned()),
        Some(_) => {
            return Err(ApiError::invalid_input(
                "query",
                "Error in key path \"type\": expected User or MachineToMachine",
            ));
        }
    };
    Ok(RoleFilter {
        role_type,
        among: None,
        exclude_application_id: query.get("excludeApplicationId").map(str::to_owned),
        search: listing::search(query, roles::SEARCH_COLUMNS)?,
    })
}

/// Lists roles among `held` (paginated, searchable), for `/applications/:id/roles`.
pub async fn list_held(
    state: &AppState,
    uri: &Uri,
    query: &QueryPairs,
    held: Vec<String>,
) -> Result<Listing<RoleResponse>, ApiError> {
    let page = listing::page(query, false)?;
    let mut filter = role_filter(query)?;
    filter.among = Some(held);
    let db = state.store.pool().get().await?;
    let (rows, total) = roles::list(&db, &filter, page.map(Page::window)).await?;
    Ok(Listing {
        rows: rows.into_iter().map(RoleResponse::from).collect(),
        paging: page.map(|page| Paging::new(state, uri, query, page, total)),
    })
}

/// List roles with the users and applications holding them.
#[utoipa::path(get, path = "/api/roles", tag = "Roles",
    params(
        ("type" = Option<String>, Query, description = "User or MachineToMachine."),
        ("excludeApplicationId" = Option<String>, Query, description = "Leave out roles this app holds."),
        ("search" = Option<String>, Query, description = "Logto search over id, name, description."),
        ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
        ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100)."),
    ),
    responses((status = 200, body = Vec<RoleWithHolders>), (status = 400)),
    security(("bearer" = [])))]
async fn list_roles(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<RoleWithHolders>, ApiError> {
    let page = listing::page(&query, false)?;
    let filter = role_filter(&query)?;
    let db = state.store.pool().get().await?;
    let (rows, total) = roles::list(&db, &filter, page.map(Page::window)).await?;
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        let (applications_count, featured) = roles::applications_of(&db, &row.id).await?;
        let (users_count, featured_users) = projections::users::holders_of(&db, &row.id).await?;
        listed.push(RoleWithHolders {
            role: row.into(),
            users_count,
            featured_users: featured_users
                .into_iter()
                .map(FeaturedUserResponse::from)
                .collect(),
            applications_count,
            featured_applications: featured
                .into_iter()
                .map(
                    |FeaturedApplication { id, name, app_type }| FeaturedApplicationResponse {
                        id,
                        name,
                        app_type,
                    },
                )
                .collect(),
        });
    }
    Ok(Listing {
        rows: listed,
        paging: page.map(|page| Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Checks scope ids exist, and that the Management API is not given to a user role.
async fn check_scopes(
    state: &AppState,
    role_type: RoleType,
    scope_ids: &[String],
) -> Result<(), ApiError> {
    let db = state.store.pool().get().await?;
    let found = resources::scopes_by_ids(&db, scope_ids).await?;
    for scope_id in scope_ids {
        let scope = found
            .iter()
            .find(|s| &s.id == scope_id)
            .ok_or_else(|| ApiError::not_exists_with_id("scope", scope_id))?;
        if role_type == RoleType::User && scope.resource_id == MANAGEMENT_API_RESOURCE_ID {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "role.management_api_scopes_not_assignable_to_user_role",
                "Cannot assign management API scopes to a user role.",
            ));
        }
    }
    Ok(())
}

/// Create a role.
#[utoipa::path(post, path = "/api/roles", tag = "Roles",
    request_body = CreateRole,
    responses((status = 200, body = RoleResponse), (status = 400), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateRole>,
) -> Result<axum::Json<RoleResponse>, ApiError> {
    check_text("name", &body.name, 128)?;
    check_text("description", &body.description, 128)?;
    let role_type: RoleType = body.role_type.map_or(RoleType::User, Into::into);
    let scope_ids = body.scope_ids.unwrap_or_default();
    check_scopes(&state, role_type, &scope_ids).await?;
    let id = ids::standard_id().map_err(|_| ApiError::internal())?;
    state
        .store
        .execute::<Role>(
            &id,
            RoleCommand::Create(NewRole {
                id: id.clone(),
                name: body.name,
                description: body.description,
                role_type,
                is_default: body.is_default.unwrap_or(false),
                scope_ids,
            }),
            &context.metadata(caller.actor),
        )
        .await?;
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Get a role.
#[utoipa::path(get, path = "/api/roles/{id}", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    responses((status = 200, body = RoleResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RoleResponse>, ApiError> {
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Update a role's name, description or default flag.
#[utoipa::path(patch, path = "/api/roles/{id}", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    request_body = UpdateRole,
    responses((status = 200, body = RoleResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateRole>,
) -> Result<axum::Json<RoleResponse>, ApiError> {
    if let Some(name) = &body.name {
        check_text("name", name, 128)?;
    }
    if let Some(description) = &body.description {
        check_text("description", description, 128)?;
    }
    let command = RoleCommand::Update(RolePatch {
        name: body.name,
        description: body.description,
        is_default: body.is_default.map_or(Patch::Absent, Patch::Value),
    });
    execute::<Role>(&state, caller, &context, &id, command).await?;
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Delete a role; every holder loses it.
#[utoipa::path(delete, path = "/api/roles/{id}", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    lockout::check(&caller.actor, &AccessChange::DeleteRole { id: &id })?;
    execute::<Role>(&state, caller, &context, &id, RoleCommand::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Scopes of a role.
#[utoipa::path(get, path = "/api/roles/{id}/scopes", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    responses((status = 200, body = Vec<ScopeResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_scopes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<ScopeResponse>>, ApiError> {
    find(&state, &id).await?;
    let db = state.store.pool().get().await?;
    let scope_ids = roles::scope_ids(&db, &id).await?;
    let scopes = resources::scopes_by_ids(&db, &scope_ids).await?;
    Ok(axum::Json(
        scopes.into_iter().map(ScopeResponse::from).collect(),
    ))
}

/// Add scopes to a role.
#[utoipa::path(post, path = "/api/roles/{id}/scopes", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    request_body = ScopeIdsBody,
    responses((status = 201, body = Vec<ScopeResponse>), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn add_scopes(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<ScopeIdsBody>,
) -> Result<(StatusCode, axum::Json<Vec<ScopeResponse>>), ApiError> {
    let role = find(&state, &id).await?;
    let role_type = if role.role_type == RoleType::User.as_str() {
        RoleType::User
    } else {
        RoleType::MachineToMachine
    };
    check_scopes(&state, role_type, &body.scope_ids).await?;
    let command = RoleCommand::AddScopes {
        scope_ids: body.scope_ids.clone(),
    };
    execute::<Role>(&state, caller, &context, &id, command).await?;
    let db = state.store.pool().get().await?;
    let scopes = resources::scopes_by_ids(&db, &body.scope_ids).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(scopes.into_iter().map(ScopeResponse::from).collect()),
    ))
}

/// Remove a scope from a role.
#[utoipa::path(delete, path = "/api/roles/{id}/scopes/{scope_id}", tag = "Roles",
    params(("id" = String, Path, description = "Role id."),
           ("scope_id" = String, Path, description = "Scope id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_scope(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, scope_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lockout::check(
        &caller.actor,
        &AccessChange::RemoveScope {
            role_id: &id,
            scope_id: &scope_id,
        },
    )?;
    let command = RoleCommand::RemoveScope { scope_id };
    execute::<Role>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applications holding a role.
#[utoipa::path(get, path = "/api/roles/{id}/applications", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    responses((status = 200, body = Vec<Object>), (status = 404)),
    security(("bearer" = [])))]
async fn list_applications(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<serde_json::Value>>, ApiError> {
    find(&state, &id).await?;
    let db = state.store.pool().get().await?;
    let mut holders = Vec::new();
    for application_id in roles::application_ids(&db, &id).await? {
        if let Some(app) = projections::applications::by_id(&db, &application_id).await? {
            holders.push(json!({
                "tenantId": "default",
                "id": app.id,
                "name": app.name,
                "description": app.description,
                "type": app.app_type,
                "createdAt": app.created_at,
            }));
        }
    }
    Ok(axum::Json(holders))
}

/// Runs `command` on every holder's stream in one unit: each of them gets the role, or none does.
async fn assign_to_each<A>(
    state: &AppState,
    caller: Caller,
    context: &RequestContext,
    holders: &[String],
    command: A::Command,
) -> Result<(), ApiError>
where
    A: Aggregate,
    A::Command: Clone + Sync,
{
    let unit = holders.iter().fold(Unit::new(), |unit, holder| {
        unit.then::<A>(holder.as_str(), command.clone())
    });
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok(())
}

/// Give a machine-to-machine role to applications, atomically.
#[utoipa::path(post, path = "/api/roles/{id}/applications", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    request_body = ApplicationIdsBody,
    responses((status = 201), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn assign_applications(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<ApplicationIdsBody>,
) -> Result<StatusCode, ApiError> {
    let role = find(&state, &id).await?;
    if role.role_type != RoleType::MachineToMachine.as_str() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "application.invalid_role_type",
            "Only machine-to-machine roles can be assigned to applications.",
        ));
    }
    for application_id in &body.application_ids {
        super::applications::find(&state, application_id).await?;
    }
    let command = ApplicationCommand::AssignRoles { role_ids: vec![id] };
    assign_to_each::<Application>(&state, caller, &context, &body.application_ids, command).await?;
    Ok(StatusCode::CREATED)
}

/// Take a role from an application.
#[utoipa::path(delete, path = "/api/roles/{id}/applications/{application_id}", tag = "Roles",
    params(("id" = String, Path, description = "Role id."),
           ("application_id" = String, Path, description = "Application id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_application(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, application_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    lockout::check(
        &caller.actor,
        &AccessChange::WithdrawRole {
            application_id: &application_id,
            role_id: &id,
        },
    )?;
    let command = ApplicationCommand::RemoveRole { role_id: id };
    execute::<Application>(&state, caller, &context, &application_id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users holding a role (paginated, with Logto's user search).
#[utoipa::path(get, path = "/api/roles/{id}/users", tag = "Roles",
    params(("id" = String, Path, description = "Role id."),
           ("search" = Option<String>, Query, description = "Logto user search."),
           ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
           ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100).")),
    responses((status = 200, body = Vec<super::users::UserResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Listing<super::users::UserResponse>, ApiError> {
    find(&state, &id).await?;
    let page = listing::required_page(&query)?;
    let filter = projections::users::UserFilter {
        search: listing::search(&query, projections::users::SEARCH_COLUMNS)?,
        exclude_role_id: None,
        role_id: Some(id),
        exclude_organization_id: None,
    };
    let db = state.store.pool().get().await?;
    let (rows, total) = projections::users::list(&db, &filter, page.window()).await?;
    Ok(Listing {
        rows: rows
            .into_iter()
            .map(|row| super::users::UserResponse::from_row(row, false))
            .collect(),
        paging: Some(Paging::new(&state, &uri, &query, page, total)),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserIdsBody {
    pub user_ids: Vec<String>,
}

/// Give a user role to users, atomically.
#[utoipa::path(post, path = "/api/roles/{id}/users", tag = "Roles",
    params(("id" = String, Path, description = "Role id.")),
    request_body = UserIdsBody,
    responses((status = 201), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn assign_users(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UserIdsBody>,
) -> Result<StatusCode, ApiError> {
    let role = find(&state, &id).await?;
    if role.role_type != RoleType::User.as_str() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.invalid_role_type",
            "Can not assign machine to machine role to user.",
        )
        .with_data(json!({ "roleId": id })));
    }
    for user_id in &body.user_ids {
        super::users::find(&state, user_id).await?;
    }
    let command = domain::user::UserCommand::AssignRoles { role_ids: vec![id] };
    assign_to_each::<domain::user::User>(&state, caller, &context, &body.user_ids, command).await?;
    Ok(StatusCode::CREATED)
}

/// Take a role from a user.
#[utoipa::path(delete, path = "/api/roles/{id}/users/{user_id}", tag = "Roles",
    params(("id" = String, Path, description = "Role id."),
           ("user_id" = String, Path, description = "User id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    state
        .store
        .execute::<domain::user::User>(
            &user_id,
            domain::user::UserCommand::RemoveRole { role_id: id },
            &context.metadata(caller.actor),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
