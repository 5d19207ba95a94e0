//! IBM Cloud App ID's management routes for user profiles, under
//! `/management/v4/{tenantId}/...` with the Management API token, in App ID's JSON shapes, so
//! App ID's documented calls work against idledger with its host and token: search by exact
//! email (`users?query=` and `Users?query=`, and Cloud Directory's SCIM
//! `cloud_directory/Users?query=`), a profile as App ID shows it (`users/{id}/profile`: get,
//! set the custom attributes, delete), and `users/export` / `users/import` (`transfer.rs`).
//!
//! App ID's profile maps onto Logto's user: `name` → `name`, `email` → `primaryEmail`,
//! `picture` → `avatar`, `attributes` → `customData`, each identity's `provider` / `id` /
//! `idpUserInfo` → the identity target / `userId` / `details`, `roles` → the names of the roles
//! held. The tenant id is idledger's, `default`.

mod transfer;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use domain::user::{User, UserCommand, UserPatch};
use projections::transfer::{self as read, Cursor, TravellingUser};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::sessions;
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;
use crate::transfer::{Identity, Record};

/// idledger serves one tenant, under Logto's name for it.
const TENANT_ID: &str = "default";
const LIST_DEFAULT_COUNT: i64 = 20;
const LIST_MAX_COUNT: i64 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_users))
        // App ID's own documentation spells the collection both ways.
        .route("/management/v4/{tenant_id}/Users", get(search_users))
        .routes(routes!(cloud_directory_users))
        .routes(routes!(get_profile, put_profile, delete_profile))
        .merge(transfer::routes())
}

fn check_tenant(tenant_id: &str) -> Result<(), ApiError> {
    if tenant_id == TENANT_ID {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "entity.not_found",
        format!(
            "There is no tenant {tenant_id:?} here; this instance's tenant id is `{TENANT_ID}`."
        ),
    ))
}

/// A role as App ID exports it: its name, or an object naming it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoleName {
    Name(String),
    Object { name: String },
}

impl RoleName {
    fn into_name(self) -> String {
        match self {
            RoleName::Name(name) | RoleName::Object { name } => name,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppIdIdentity {
    pub provider: String,
    /// The provider's id of the person.
    pub id: String,
    /// The provider's raw user info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_user_info: Option<Value>,
    /// Provider fields some App ID exports put beside `provider` and `id` rather than in
    /// `idpUserInfo` (its Facebook example does); taken as the user info when that is absent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A user profile in App ID's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppIdProfile {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default)]
    pub identities: Vec<AppIdIdentity>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub roles: Vec<RoleName>,
}

impl From<Record> for AppIdProfile {
    fn from(record: Record) -> AppIdProfile {
        AppIdProfile {
            id: record.id,
            name: record.name,
            email: record.primary_email,
            picture: record.avatar,
            identities: record
                .identities
                .into_iter()
                .map(|(provider, identity)| AppIdIdentity {
                    provider,
                    id: identity.user_id,
                    idp_user_info: identity.details,
                    other: Map::new(),
                })
                .collect(),
            attributes: record.custom_data,
            roles: record.roles.into_iter().map(RoleName::Name).collect(),
        }
    }
}

impl From<TravellingUser> for AppIdProfile {
    fn from(user: TravellingUser) -> AppIdProfile {
        AppIdProfile::from(Record::from_travelling(user))
    }
}

impl AppIdProfile {
    /// The user to import; `index` locates it in the request for errors.
    fn into_record(self, index: usize) -> Result<Record, ApiError> {
        let mut identities = std::collections::BTreeMap::new();
        for identity in self.identities {
            let details = identity
                .idp_user_info
                .or_else(|| (!identity.other.is_empty()).then_some(Value::Object(identity.other)));
            let provider = identity.provider;
            if identities.contains_key(&provider) {
                return Err(ApiError::invalid_input(
                    "body",
                    format!(
                        "Error in key path \"users.{index}.identities\": two identities from \
                         {provider}; a user has at most one per provider"
                    ),
                ));
            }
            identities.insert(
                provider,
                Identity {
                    user_id: identity.id,
                    details,
                },
            );
        }
        Ok(Record {
            id: self.id,
            name: self.name,
            primary_email: self.email,
            avatar: self.picture,
            custom_data: self.attributes,
            identities,
            roles: self.roles.into_iter().map(RoleName::into_name).collect(),
            ..Record::default()
        })
    }
}

/// App ID's list envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub items_per_page: usize,
    pub total_results: i64,
    /// The options the request gave.
    pub request_options: Map<String, Value>,
    pub users: Vec<AppIdProfile>,
}

/// `startIndex` (0-based) and `count` of a paged request, also noted in `options`.
pub(super) fn window(
    query: &QueryPairs,
    default_count: i64,
    max_count: i64,
    options: &mut Map<String, Value>,
) -> Result<(i64, i64), ApiError> {
    let mut number = |key: &str, min: i64, max: i64, default: i64| -> Result<i64, ApiError> {
        let Some(text) = query.get(key) else {
            return Ok(default);
        };
        let value = text
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_input(
                    "query",
                    format!("Error in key path \"{key}\": expected an integer from {min} to {max}"),
                )
            })?;
        options.insert(key.to_owned(), json!(value));
        Ok(value)
    };
    let start = number("startIndex", 0, i64::MAX, 0)?;
    let count = number("count", 1, max_count, default_count)?;
    Ok((start, count))
}

/// Users matching App ID's `query` (an exact email, case ignored, as App ID's console searches),
/// or every user in pages of `count` from `startIndex`.
async fn search(
    state: &AppState,
    query: &QueryPairs,
) -> Result<(Vec<TravellingUser>, i64, Map<String, Value>), ApiError> {
    let mut options = Map::new();
    let db = state.store.pool().get().await?;
    match query.get("query").or_else(|| query.get("email")) {
        Some("") => Err(ApiError::invalid_input(
            "query",
            "Error in key path \"query\": Search value cannot be empty.",
        )),
        Some(email) => {
            options.insert("query".into(), json!(email));
            let found = read::by_email(&db, email).await?;
            let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
            Ok((found, total, options))
        }
        None => {
            let (start, count) = window(query, LIST_DEFAULT_COUNT, LIST_MAX_COUNT, &mut options)?;
            let users = read::page(&db, &Cursor::Index(start), count).await?;
            Ok((users, read::count(&db).await?, options))
        }
    }
}

/// Search users by exact email (`query`), or list them (`startIndex`, `count`).
#[utoipa::path(get, path = "/management/v4/{tenant_id}/users", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`."),
           ("query" = Option<String>, Query, description = "An email; matched exactly, case ignored."),
           ("startIndex" = Option<i64>, Query, description = "0-based index of the first user (without `query`)."),
           ("count" = Option<i64>, Query, description = "Users per page, at most 100 (default 20).")),
    responses((status = 200, body = Object,
        description = "`{ itemsPerPage, totalResults, requestOptions, users: [profile] }`")),
    security(("bearer" = [])))]
async fn search_users(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<UserList>, ApiError> {
    check_tenant(&tenant_id)?;
    let (users, total_results, request_options) = search(&state, &query).await?;
    Ok(axum::Json(UserList {
        items_per_page: users.len(),
        total_results,
        request_options,
        users: users.into_iter().map(AppIdProfile::from).collect(),
    }))
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A user as Cloud Directory's SCIM API shows it.
fn scim_user(user: &TravellingUser) -> Value {
    let row = &user.user;
    let emails: Vec<Value> = row
        .primary_email
        .iter()
        .map(|email| json!({ "value": email, "primary": true }))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": row.id,
        "userName": row.username.as_ref().or(row.primary_email.as_ref()),
        "displayName": row.name,
        "emails": emails,
        "active": !row.is_suspended,
        "meta": {
            "resourceType": "User",
            "created": rfc3339(row.created_at),
            "lastModified": rfc3339(row.updated_at),
        },
    })
}

/// Cloud Directory's user search (SCIM 2.0 list response). idledger has one directory: every
/// user is in it, under the same id as its profile.
#[utoipa::path(get, path = "/management/v4/{tenant_id}/cloud_directory/Users", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`."),
           ("query" = Option<String>, Query, description = "An email; matched exactly, case ignored."),
           ("startIndex" = Option<i64>, Query, description = "0-based index of the first user (without `query`)."),
           ("count" = Option<i64>, Query, description = "Users per page, at most 100 (default 20).")),
    responses((status = 200, body = Object,
        description = "`{ schemas, totalResults, itemsPerPage, startIndex, Resources: [SCIM user] }`")),
    security(("bearer" = [])))]
async fn cloud_directory_users(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<Value>, ApiError> {
    check_tenant(&tenant_id)?;
    let (users, total, options) = search(&state, &query).await?;
    let start = options
        .get("startIndex")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Ok(axum::Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "itemsPerPage": users.len(),
        // SCIM counts from 1.
        "startIndex": start + 1,
        "Resources": users.iter().map(scim_user).collect::<Vec<_>>(),
    })))
}

async fn profile(state: &AppState, id: &str) -> Result<AppIdProfile, ApiError> {
    let db = state.store.pool().get().await?;
    read::by_id(&db, id)
        .await?
        .map(AppIdProfile::from)
        .ok_or_else(ApiError::not_found)
}

/// A user's full profile: name, email, picture, identities (provider, provider's id, raw user
/// info), custom attributes and role names.
#[utoipa::path(get, path = "/management/v4/{tenant_id}/users/{id}/profile", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`."),
           ("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn get_profile(
    State(state): State<AppState>,
    Path((tenant_id, id)): Path<(String, String)>,
) -> Result<axum::Json<AppIdProfile>, ApiError> {
    check_tenant(&tenant_id)?;
    Ok(axum::Json(profile(&state, &id).await?))
}

#[derive(Debug, Deserialize)]
struct AttributesBody {
    attributes: Map<String, Value>,
}

/// Set a user's custom attributes (Logto's `customData`), replacing them wholesale as App ID
/// does. Recorded as `user.updated` with the caller as actor; `/api/users/{id}/history` shows
/// the attributes before and after.
#[utoipa::path(put, path = "/management/v4/{tenant_id}/users/{id}/profile", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`."),
           ("id" = String, Path, description = "User id.")),
    request_body(content = Object, description = "`{ attributes: { ... } }`"),
    responses((status = 200, body = Object), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn put_profile(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((tenant_id, id)): Path<(String, String)>,
    Json(body): Json<AttributesBody>,
) -> Result<axum::Json<AppIdProfile>, ApiError> {
    check_tenant(&tenant_id)?;
    profile(&state, &id).await?;
    state
        .store
        .execute::<User>(
            &id,
            UserCommand::Update(UserPatch {
                custom_data: Some(body.attributes),
                ..UserPatch::default()
            }),
            &context.metadata(caller.actor),
        )
        .await?;
    Ok(axum::Json(profile(&state, &id).await?))
}

/// Delete a user's profile, i.e. the user: signed out everywhere, then deleted. The history
/// stays in the log.
#[utoipa::path(delete, path = "/management/v4/{tenant_id}/users/{id}/profile", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`."),
           ("id" = String, Path, description = "User id.")),
    responses((status = 204), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn delete_profile(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((tenant_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_tenant(&tenant_id)?;
    if caller.subject == id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "user.cannot_delete_self",
            "You cannot delete yourself.",
        ));
    }
    profile(&state, &id).await?;
    let unit = {
        let db = state.store.pool().get().await?;
        let unit = Unit::new().then::<User>(&id, UserCommand::Delete);
        sessions::sign_out_everywhere(&db, unit, &id, context.now_ms(), "user deleted").await?
    };
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
