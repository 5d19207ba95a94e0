//! `/api/organizations` (Logto §8): organizations, their members, the organization roles each
//! member holds there, and the roles just-in-time provisioning grants. Relation inserts are
//! checked against the read models first, which is where Logto's foreign keys answer
//! `entity.relation_foreign_key_not_found`.

use std::collections::BTreeSet;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use domain::organization::{
    NewOrganization, Organization, OrganizationCommand, OrganizationError, OrganizationPatch,
};
use domain::patch::Patch;
use domain::role::RoleType;
use projections::organizations::{
    self, MemberFilter, OrganizationRoleRow, OrganizationRow, RoleRef,
};
use projections::search::{Mode, Search, Term};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::command::execute;
use super::listing::{self, Listing, Page, Paging};
use super::organization_roles::OrganizationRoleResponse;
use super::roles::FeaturedUserResponse;
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_organizations, create_organization))
        .routes(routes!(
            get_organization,
            update_organization,
            delete_organization
        ))
        .routes(routes!(list_members, add_members, replace_members))
        .routes(routes!(remove_member))
        .routes(routes!(assign_roles_to_members))
        .routes(routes!(
            list_member_roles,
            assign_member_roles,
            replace_member_roles
        ))
        .routes(routes!(remove_member_role))
        .routes(routes!(list_jit_roles, add_jit_roles, replace_jit_roles))
        .routes(routes!(remove_jit_role))
}

// ---- shapes ------------------------------------------------------------------------------------

/// Logto's organization object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub custom_data: Value,
    pub is_mfa_required: bool,
    #[schema(value_type = Object)]
    pub color: Value,
    #[schema(value_type = Object)]
    pub branding: Value,
    pub custom_css: Option<String>,
    pub created_at: i64,
}

impl From<OrganizationRow> for OrganizationResponse {
    fn from(row: OrganizationRow) -> OrganizationResponse {
        OrganizationResponse {
            tenant_id: "default",
            id: row.id,
            name: row.name,
            description: row.description,
            custom_data: row.custom_data,
            is_mfa_required: row.is_mfa_required,
            color: row.color,
            branding: row.branding,
            custom_css: row.custom_css,
            created_at: row.created_at,
        }
    }
}

/// An organization in the list; with `showFeatured`, also who belongs to it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationWithFeatured {
    #[serde(flatten)]
    pub organization: OrganizationResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub featured_users: Option<Vec<FeaturedUserResponse>>,
}

/// An organization role next to a member or an organization: `{id, name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleRefResponse {
    pub id: String,
    pub name: String,
}

impl From<RoleRef> for RoleRefResponse {
    fn from(role: RoleRef) -> RoleRefResponse {
        RoleRefResponse {
            id: role.id,
            name: role.name,
        }
    }
}

/// A member: Logto's user info fields plus the organization roles held here.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberResponse {
    pub id: String,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_phone: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    #[schema(value_type = Object)]
    pub custom_data: Value,
    #[schema(value_type = Object)]
    pub identities: Value,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[schema(value_type = Object)]
    pub profile: Value,
    pub application_id: Option<String>,
    pub cimd_client_id: Option<String>,
    pub is_suspended: bool,
    pub organization_roles: Vec<RoleRefResponse>,
}

impl From<organizations::Member> for MemberResponse {
    fn from(member: organizations::Member) -> MemberResponse {
        let user = member.user;
        MemberResponse {
            id: user.id,
            username: user.username,
            primary_email: user.primary_email,
            primary_phone: user.primary_phone,
            name: user.name,
            avatar: user.avatar,
            custom_data: user.custom_data,
            identities: user.identities,
            last_sign_in_at: user.last_sign_in_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
            profile: user.profile,
            application_id: user.application_id,
            cimd_client_id: None,
            is_suspended: user.is_suspended,
            organization_roles: member
                .organization_roles
                .into_iter()
                .map(RoleRefResponse::from)
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrganization {
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 256)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub is_mfa_required: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub color: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub branding: Option<Map<String, Value>>,
    #[serde(default)]
    pub custom_css: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganization {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable, max_length = 256)]
    pub description: Patch<String>,
    /// Replaces `customData` wholesale.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub is_mfa_required: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub color: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub branding: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub custom_css: Patch<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserIdsBody {
    /// Non-empty on `POST`.
    pub user_ids: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembersRolesBody {
    #[schema(min_items = 1)]
    pub user_ids: Vec<String>,
    #[schema(min_items = 1)]
    pub organization_role_ids: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRolesBody {
    #[serde(default)]
    pub organization_role_ids: Vec<String>,
    /// Roles by name, resolved to ids.
    #[serde(default)]
    pub organization_role_names: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignedRoles {
    pub organization_role_ids: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleIdsBody {
    /// Non-empty on `POST`.
    pub organization_role_ids: Vec<String>,
}

// ---- validation and lookups shared with `organization_roles` -----------------------------------

fn invalid(key: &str, reason: &str) -> ApiError {
    ApiError::invalid_input("body", format!("Error in key path \"{key}\": {reason}"))
}

pub(super) fn check_length(key: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(invalid(key, &format!("at most {max} characters")));
    }
    Ok(())
}

/// Names are required, 1 to 128 characters.
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(invalid("name", "at least 1 character"));
    }
    check_length("name", name, 128)
}

/// Ids in a body: `z.string().min(1).array()`, and non-empty where Logto says `.nonempty()`.
fn check_ids(key: &str, ids: &[String], nonempty: bool) -> Result<(), ApiError> {
    if nonempty && ids.is_empty() {
        return Err(invalid(key, "at least 1 element"));
    }
    if ids.iter().any(String::is_empty) {
        return Err(invalid(key, "ids must not be empty"));
    }
    Ok(())
}

/// Logto's `q`: a case-insensitive substring of any searchable column (`%` and `_` in it stay
/// wildcards, as in Logto's `ilike`).
pub(super) fn keyword(query: &QueryPairs) -> Search {
    match query.get("q").filter(|q| !q.is_empty()) {
        Some(q) => Search {
            terms: vec![Term {
                field: None,
                mode: Mode::Like,
                values: vec![format!("%{q}%")],
            }],
            all_terms: false,
            case_sensitive: false,
        },
        None => Search::default(),
    }
}

/// What Logto's foreign keys answer for an unknown user, role or organization in a relation.
pub(super) fn relation_not_found() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "entity.relation_foreign_key_not_found",
        "Cannot find one or more foreign keys. Please check the input and try again.",
    )
}

/// What Logto's `UPDATE … RETURNING` answers when no row matched.
pub(super) fn not_exists(entity: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "entity.not_exists",
        format!("The {entity} does not exist."),
    )
}

/// A relation row of a role here: Logto deletes it, or answers `entity.not_found` when there is
/// none.
fn require_listed(roles: &[OrganizationRoleRow], role_id: &str) -> Result<(), ApiError> {
    if roles.iter().any(|role| role.id == role_id) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// The organization or Logto's `findById` 404.
async fn find(state: &AppState, id: &str) -> Result<OrganizationRow, ApiError> {
    let db = state.store.pool().get().await?;
    organizations::by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_exists_with_id("organization", id))
}

async fn exists(state: &AppState, id: &str) -> Result<bool, ApiError> {
    let db = state.store.pool().get().await?;
    Ok(organizations::by_id(&db, id).await?.is_some())
}

/// The organization a relation is inserted into must exist.
async fn relation_target(state: &AppState, id: &str) -> Result<(), ApiError> {
    if exists(state, id).await? {
        Ok(())
    } else {
        Err(relation_not_found())
    }
}

async fn check_users_exist(state: &AppState, user_ids: &[String]) -> Result<(), ApiError> {
    let db = state.store.pool().get().await?;
    let found = organizations::existing_user_ids(&db, user_ids).await?;
    if user_ids.iter().all(|id| found.contains(id)) {
        Ok(())
    } else {
        Err(relation_not_found())
    }
}

/// Checks the roles exist and, when members are to hold them, that they are user roles (Logto's
/// `organization_role_user_relations__role_type` check constraint).
async fn check_roles(
    state: &AppState,
    role_ids: &[String],
    for_members: bool,
) -> Result<(), ApiError> {
    let db = state.store.pool().get().await?;
    let found = organizations::roles_by_ids(&db, role_ids).await?;
    for role_id in role_ids {
        let role = found
            .iter()
            .find(|r| &r.id == role_id)
            .ok_or_else(relation_not_found)?;
        if for_members && role.role_type != RoleType::User.as_str() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "entity.db_constraint_violated",
                "Database constraint violated.",
            ));
        }
    }
    Ok(())
}

async fn is_member(state: &AppState, id: &str, user_id: &str) -> Result<bool, ApiError> {
    let db = state.store.pool().get().await?;
    let members = organizations::member_ids_among(&db, id, &[user_id.to_owned()]).await?;
    Ok(!members.is_empty())
}

/// The domain's refusal of a non-member, answered before the command is even built.
async fn require_membership(state: &AppState, id: &str, user_id: &str) -> Result<(), ApiError> {
    if is_member(state, id, user_id).await? {
        return Ok(());
    }
    Err(domain::Rejection::from(OrganizationError::NotAMember {
        user_id: user_id.to_owned(),
    })
    .into())
}

/// Role ids from a body's ids and names (names resolved), deduplicated, then checked.
async fn member_role_ids(state: &AppState, body: MemberRolesBody) -> Result<Vec<String>, ApiError> {
    check_ids("organizationRoleIds", &body.organization_role_ids, false)?;
    check_ids(
        "organizationRoleNames",
        &body.organization_role_names,
        false,
    )?;
    let mut role_ids = body.organization_role_ids;
    if !body.organization_role_names.is_empty() {
        let db = state.store.pool().get().await?;
        let named = organizations::roles_by_names(&db, &body.organization_role_names).await?;
        let missing: Vec<&str> = body
            .organization_role_names
            .iter()
            .filter(|name| !named.iter().any(|role| &role.name == *name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "organization.role_names_not_found",
                format!("Organization roles {} not found.", missing.join(", ")),
            ));
        }
        // In the order the names were given, so the answer does not depend on the database's.
        role_ids.extend(body.organization_role_names.iter().filter_map(|name| {
            named
                .iter()
                .find(|role| &role.name == name)
                .map(|role| role.id.clone())
        }));
    }
    let role_ids = dedup(role_ids);
    check_roles(state, &role_ids, true).await?;
    Ok(role_ids)
}

fn role_listing(
    state: &AppState,
    uri: &Uri,
    query: &QueryPairs,
    page: Option<Page>,
    (rows, total): (Vec<OrganizationRoleRow>, i64),
) -> Listing<OrganizationRoleResponse> {
    Listing {
        rows: rows
            .into_iter()
            .map(OrganizationRoleResponse::from)
            .collect(),
        paging: page.map(|page| Paging::new(state, uri, query, page, total)),
    }
}

// ---- organizations -----------------------------------------------------------------------------

/// List organizations, newest first; `q` matches id or name.
#[utoipa::path(get, path = "/api/organizations", tag = "Organizations",
    params(
        ("q" = Option<String>, Query, description = "Case-insensitive substring of id or name."),
        ("showFeatured" = Option<bool>, Query, description = "Add usersCount and featuredUsers."),
        ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
        ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100)."),
    ),
    responses((status = 200, body = Vec<OrganizationWithFeatured>), (status = 400)),
    security(("bearer" = [])))]
async fn list_organizations(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<OrganizationWithFeatured>, ApiError> {
    let page = listing::required_page(&query)?;
    let db = state.store.pool().get().await?;
    let (rows, total) = organizations::list(&db, &keyword(&query), page.window()).await?;
    let featured = query.truthy("showFeatured");
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        let (users_count, featured_users) = if featured {
            let (count, users) = organizations::featured_members(&db, &row.id).await?;
            let users = users.into_iter().map(FeaturedUserResponse::from).collect();
            (Some(count), Some(users))
        } else {
            (None, None)
        };
        listed.push(OrganizationWithFeatured {
            organization: row.into(),
            users_count,
            featured_users,
        });
    }
    Ok(Listing {
        rows: listed,
        paging: Some(Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Create an organization.
#[utoipa::path(post, path = "/api/organizations", tag = "Organizations",
    request_body = CreateOrganization,
    responses((status = 201, body = OrganizationResponse), (status = 400)),
    security(("bearer" = [])))]
async fn create_organization(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateOrganization>,
) -> Result<(StatusCode, axum::Json<OrganizationResponse>), ApiError> {
    check_name(&body.name)?;
    if let Some(description) = &body.description {
        check_length("description", description, 256)?;
    }
    let id = ids::short_id().map_err(|_| ApiError::internal())?;
    let command = OrganizationCommand::Create(NewOrganization {
        id: id.clone(),
        name: body.name,
        description: body.description,
        custom_data: body.custom_data.unwrap_or_default(),
        is_mfa_required: body.is_mfa_required.unwrap_or(false),
        color: body.color.unwrap_or_default(),
        branding: body.branding.unwrap_or_default(),
        custom_css: body.custom_css,
    });
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(find(&state, &id).await?.into()),
    ))
}

/// Get an organization.
#[utoipa::path(get, path = "/api/organizations/{id}", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    responses((status = 200, body = OrganizationResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_organization(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<OrganizationResponse>, ApiError> {
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Update an organization; JSON fields are replaced wholesale, `null` clears nullable ones.
#[utoipa::path(patch, path = "/api/organizations/{id}", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    request_body = UpdateOrganization,
    responses((status = 200, body = OrganizationResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn update_organization(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateOrganization>,
) -> Result<axum::Json<OrganizationResponse>, ApiError> {
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    if let Patch::Value(description) = &body.description {
        check_length("description", description, 256)?;
    }
    // Logto updates with `UPDATE … RETURNING`, which reports a missing row as `entity.not_exists`.
    if !exists(&state, &id).await? {
        return Err(not_exists("organization"));
    }
    let command = OrganizationCommand::Update(OrganizationPatch {
        name: body.name,
        description: body.description,
        custom_data: body.custom_data,
        is_mfa_required: body.is_mfa_required,
        color: body.color,
        branding: body.branding,
        custom_css: body.custom_css,
    });
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(axum::Json(find(&state, &id).await?.into()))
}

/// Delete an organization with its memberships, member roles and JIT roles.
#[utoipa::path(delete, path = "/api/organizations/{id}", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_organization(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Logto's `deleteById` reports a missing row as `entity.not_found`.
    if !exists(&state, &id).await? {
        return Err(ApiError::not_found());
    }
    execute::<Organization>(&state, caller, &context, &id, OrganizationCommand::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- members -----------------------------------------------------------------------------------

/// Members of an organization with their organization roles; `q` matches user id, email, phone,
/// username or name.
#[utoipa::path(get, path = "/api/organizations/{id}/users", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("q" = Option<String>, Query, description = "Case-insensitive substring of a user field."),
           ("organizationRoleId" = Option<String>, Query, description = "Only members holding this role here."),
           ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
           ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100).")),
    responses((status = 200, body = Vec<MemberResponse>)),
    security(("bearer" = [])))]
async fn list_members(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Listing<MemberResponse>, ApiError> {
    let page = listing::required_page(&query)?;
    let filter = MemberFilter {
        search: keyword(&query),
        organization_role_id: query.get("organizationRoleId").map(str::to_owned),
    };
    let db = state.store.pool().get().await?;
    let (rows, total) = organizations::members(&db, &id, &filter, page.window()).await?;
    Ok(Listing {
        rows: rows.into_iter().map(MemberResponse::from).collect(),
        paging: Some(Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Add users to an organization; members already in are left as they are.
#[utoipa::path(post, path = "/api/organizations/{id}/users", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    request_body = UserIdsBody,
    responses((status = 201, body = Object), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn add_members(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UserIdsBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    check_ids("userIds", &body.user_ids, true)?;
    relation_target(&state, &id).await?;
    check_users_exist(&state, &body.user_ids).await?;
    let command = OrganizationCommand::AddMembers {
        user_ids: body.user_ids.clone(),
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    // Logto echoes the ids as sent.
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "userIds": body.user_ids })),
    ))
}

/// Make exactly these users the members; those who leave lose their roles here.
#[utoipa::path(put, path = "/api/organizations/{id}/users", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    request_body = UserIdsBody,
    responses((status = 204), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn replace_members(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UserIdsBody>,
) -> Result<StatusCode, ApiError> {
    check_ids("userIds", &body.user_ids, false)?;
    relation_target(&state, &id).await?;
    let user_ids = dedup(body.user_ids);
    check_users_exist(&state, &user_ids).await?;
    let command = OrganizationCommand::ReplaceMembers { user_ids };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member, with the roles they hold here.
#[utoipa::path(delete, path = "/api/organizations/{id}/users/{user_id}", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("user_id" = String, Path, description = "User id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !is_member(&state, &id, &user_id).await? {
        return Err(ApiError::not_found());
    }
    let command = OrganizationCommand::RemoveMember { user_id };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give organization roles to several members at once, atomically.
#[utoipa::path(post, path = "/api/organizations/{id}/users/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    request_body = MembersRolesBody,
    responses((status = 201), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn assign_roles_to_members(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<MembersRolesBody>,
) -> Result<StatusCode, ApiError> {
    check_ids("userIds", &body.user_ids, true)?;
    check_ids("organizationRoleIds", &body.organization_role_ids, true)?;
    let user_ids = dedup(body.user_ids);
    let role_ids = dedup(body.organization_role_ids);
    // A member-role row references the membership in Logto, so a non-member is a missing key.
    {
        let db = state.store.pool().get().await?;
        let members = organizations::member_ids_among(&db, &id, &user_ids).await?;
        if user_ids.iter().any(|user_id| !members.contains(user_id)) {
            return Err(relation_not_found());
        }
    }
    check_roles(&state, &role_ids, true).await?;
    let unit = user_ids.into_iter().fold(Unit::new(), |unit, user_id| {
        unit.then::<Organization>(
            &id,
            OrganizationCommand::AssignMemberRoles {
                user_id,
                organization_role_ids: role_ids.clone(),
            },
        )
    });
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await
        .map_err(|e| ApiError::from(e).about("organization", &id))?;
    Ok(StatusCode::CREATED)
}

// ---- a member's roles --------------------------------------------------------------------------

/// The organization roles a member holds here, by name (paginated only when asked).
#[utoipa::path(get, path = "/api/organizations/{id}/users/{user_id}/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("user_id" = String, Path, description = "User id."),
           ("page" = Option<i64>, Query, description = "1-based page; with page_size, turns pagination on."),
           ("page_size" = Option<i64>, Query, description = "Page size (at most 100).")),
    responses((status = 200, body = Vec<OrganizationRoleResponse>), (status = 422)),
    security(("bearer" = [])))]
async fn list_member_roles(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path((id, user_id)): Path<(String, String)>,
    query: QueryPairs,
) -> Result<Listing<OrganizationRoleResponse>, ApiError> {
    require_membership(&state, &id, &user_id).await?;
    let page = listing::page(&query, true)?;
    let db = state.store.pool().get().await?;
    let roles = organizations::member_roles(&db, &id, &user_id, page.map(Page::window)).await?;
    Ok(role_listing(&state, &uri, &query, page, roles))
}

/// Give organization roles (by id or name) to a member; roles already held are ignored.
#[utoipa::path(post, path = "/api/organizations/{id}/users/{user_id}/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("user_id" = String, Path, description = "User id.")),
    request_body = MemberRolesBody,
    responses((status = 201, body = AssignedRoles), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn assign_member_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, user_id)): Path<(String, String)>,
    Json(body): Json<MemberRolesBody>,
) -> Result<(StatusCode, axum::Json<AssignedRoles>), ApiError> {
    require_membership(&state, &id, &user_id).await?;
    let role_ids = member_role_ids(&state, body).await?;
    let command = OrganizationCommand::AssignMemberRoles {
        user_id,
        organization_role_ids: role_ids.clone(),
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AssignedRoles {
            organization_role_ids: role_ids,
        }),
    ))
}

/// Make a member hold exactly these organization roles (by id or name).
#[utoipa::path(put, path = "/api/organizations/{id}/users/{user_id}/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("user_id" = String, Path, description = "User id.")),
    request_body = MemberRolesBody,
    responses((status = 204), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn replace_member_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, user_id)): Path<(String, String)>,
    Json(body): Json<MemberRolesBody>,
) -> Result<StatusCode, ApiError> {
    require_membership(&state, &id, &user_id).await?;
    let role_ids = member_role_ids(&state, body).await?;
    let command = OrganizationCommand::ReplaceMemberRoles {
        user_id,
        organization_role_ids: role_ids,
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take an organization role from a member.
#[utoipa::path(delete, path = "/api/organizations/{id}/users/{user_id}/roles/{organization_role_id}",
    tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("user_id" = String, Path, description = "User id."),
           ("organization_role_id" = String, Path, description = "Organization role id.")),
    responses((status = 204), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn remove_member_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, user_id, organization_role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    require_membership(&state, &id, &user_id).await?;
    let (held, _) = {
        let db = state.store.pool().get().await?;
        organizations::member_roles(&db, &id, &user_id, None).await?
    };
    require_listed(&held, &organization_role_id)?;
    let command = OrganizationCommand::RemoveMemberRole {
        user_id,
        organization_role_id,
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- just-in-time roles ------------------------------------------------------------------------

/// The organization roles just-in-time provisioning grants here (paginated only when asked).
#[utoipa::path(get, path = "/api/organizations/{id}/jit/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("page" = Option<i64>, Query, description = "1-based page; with page_size, turns pagination on."),
           ("page_size" = Option<i64>, Query, description = "Page size (at most 100).")),
    responses((status = 200, body = Vec<OrganizationRoleResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_jit_roles(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Listing<OrganizationRoleResponse>, ApiError> {
    find(&state, &id).await?;
    let page = listing::page(&query, true)?;
    let db = state.store.pool().get().await?;
    let roles = organizations::jit_roles(&db, &id, page.map(Page::window)).await?;
    Ok(role_listing(&state, &uri, &query, page, roles))
}

/// Add just-in-time roles; roles already granted are ignored.
#[utoipa::path(post, path = "/api/organizations/{id}/jit/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    request_body = RoleIdsBody,
    responses((status = 201), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn add_jit_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RoleIdsBody>,
) -> Result<StatusCode, ApiError> {
    check_ids("organizationRoleIds", &body.organization_role_ids, true)?;
    relation_target(&state, &id).await?;
    check_roles(&state, &body.organization_role_ids, false).await?;
    let command = OrganizationCommand::AddJitRoles {
        organization_role_ids: body.organization_role_ids,
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::CREATED)
}

/// Make exactly these the just-in-time roles.
#[utoipa::path(put, path = "/api/organizations/{id}/jit/roles", tag = "Organizations",
    params(("id" = String, Path, description = "Organization id.")),
    request_body = RoleIdsBody,
    responses((status = 204), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn replace_jit_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RoleIdsBody>,
) -> Result<StatusCode, ApiError> {
    check_ids("organizationRoleIds", &body.organization_role_ids, false)?;
    relation_target(&state, &id).await?;
    let role_ids = dedup(body.organization_role_ids);
    check_roles(&state, &role_ids, false).await?;
    let command = OrganizationCommand::ReplaceJitRoles {
        organization_role_ids: role_ids,
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a just-in-time role.
#[utoipa::path(delete, path = "/api/organizations/{id}/jit/roles/{organization_role_id}",
    tag = "Organizations",
    params(("id" = String, Path, description = "Organization id."),
           ("organization_role_id" = String, Path, description = "Organization role id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_jit_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, organization_role_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (granted, _) = {
        let db = state.store.pool().get().await?;
        organizations::jit_roles(&db, &id, None).await?
    };
    require_listed(&granted, &organization_role_id)?;
    let command = OrganizationCommand::RemoveJitRole {
        organization_role_id,
    };
    execute::<Organization>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}
