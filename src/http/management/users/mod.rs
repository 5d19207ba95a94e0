//! `/api/users` (Logto §2): users, their profile and suspension. Sub-resources live in the
//! sibling files: password, identities, roles, personal access tokens, organizations.

mod erasure;
mod history;
mod identities;
pub mod mfa;
mod organizations;
mod password;
mod roles;
pub(crate) mod sessions;
pub mod tokens;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use domain::patch::Patch;
use domain::user::{NewUser, User, UserCommand, UserPatch};
use projections::users::{self, UserFilter, UserRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::listing::{self, Listing, Paging};
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(get_custom_data, merge_custom_data))
        .routes(routes!(merge_profile))
        .routes(routes!(set_suspended))
        .merge(password::routes())
        .merge(identities::routes())
        .merge(roles::routes())
        .merge(tokens::routes())
        .merge(mfa::routes())
        .merge(organizations::routes())
        .merge(sessions::routes())
        .merge(history::routes())
        .merge(erasure::routes())
}

/// Logto's user object ("UserProfileResponse").
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
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
    pub has_password: bool,
    /// Only with `includeSsoIdentities`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub sso_identities: Option<Vec<Value>>,
    /// Only with `includePasswordHash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_digest: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_algorithm: Option<Option<String>>,
    /// Only in the answer to a request that asked the server to generate a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_password: Option<String>,
}

impl UserResponse {
    pub fn from_row(row: UserRow, include_hash: bool) -> UserResponse {
        UserResponse {
            has_password: row.password_digest.is_some(),
            password_digest: include_hash.then(|| row.password_digest.clone()),
            password_algorithm: include_hash.then(|| row.password_algorithm.clone()),
            id: row.id,
            username: row.username,
            primary_email: row.primary_email,
            primary_phone: row.primary_phone,
            name: row.name,
            avatar: row.avatar,
            custom_data: row.custom_data,
            identities: row.identities,
            last_sign_in_at: row.last_sign_in_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            profile: row.profile,
            application_id: row.application_id,
            cimd_client_id: None,
            is_suspended: row.is_suspended,
            sso_identities: None,
            generated_password: None,
        }
    }
}

/// The user or Logto's 404 (a raw lookup in Logto, hence `entity.not_found`).
pub async fn find(state: &AppState, id: &str) -> Result<UserRow, ApiError> {
    let db = state.store.pool().get().await?;
    users::by_id(&db, id).await?.ok_or_else(ApiError::not_found)
}

pub async fn respond(state: &AppState, id: &str) -> Result<axum::Json<UserResponse>, ApiError> {
    Ok(axum::Json(UserResponse::from_row(
        find(state, id).await?,
        false,
    )))
}

/// Runs one command on a user's stream as the caller.
pub async fn execute(
    state: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: &str,
    command: UserCommand,
) -> Result<(), ApiError> {
    state
        .store
        .execute::<User>(id, command, &context.metadata(caller.actor.clone()))
        .await?;
    Ok(())
}

// ---- validation of Logto's user fields -------------------------------------------------------

fn invalid(key: &str, reason: &str) -> ApiError {
    ApiError::invalid_input("body", format!("Error in key path \"{key}\": {reason}"))
}

fn check_email(email: &str) -> Result<(), ApiError> {
    // Logto: ^\S+@\S+\.\S+$
    let valid = !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain
                    .rsplit_once('.')
                    .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
        });
    if valid {
        Ok(())
    } else {
        Err(invalid("primaryEmail", "Invalid email"))
    }
}

fn check_username(username: &str) -> Result<(), ApiError> {
    // Logto: ^[A-Z_a-z]\w*$
    let mut chars = username.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(invalid("username", "Invalid username"))
    }
}

/// Logto stores phone numbers as E.164 digits without `+`, trunk prefix removed.
pub fn normalize_phone(phone: &str) -> Result<String, ApiError> {
    if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("primaryPhone", "Invalid phone number"));
    }
    let parsed = phonenumber::parse(None, format!("+{phone}"))
        .ok()
        .filter(phonenumber::is_valid)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user.invalid_phone",
                "Invalid phone number.",
            )
        })?;
    Ok(parsed
        .format()
        .mode(phonenumber::Mode::E164)
        .to_string()
        .trim_start_matches('+')
        .to_owned())
}

fn check_avatar(avatar: &str) -> Result<(), ApiError> {
    if avatar.is_empty() || url::Url::parse(avatar).is_ok() {
        Ok(())
    } else {
        Err(invalid("avatar", "Invalid url"))
    }
}

fn check_length(key: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(invalid(key, &format!("at most {max} characters")));
    }
    Ok(())
}

const PROFILE_STRINGS: &[&str] = &[
    "familyName",
    "givenName",
    "middleName",
    "nickname",
    "preferredUsername",
    "profile",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
];
const ADDRESS_STRINGS: &[&str] = &[
    "formatted",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
];

/// Logto's OIDC-claims profile: known keys only, strings, and an `address` object.
fn check_profile(profile: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in profile {
        let path = format!("profile.{key}");
        match (key.as_str(), value) {
            (key, Value::String(_)) if PROFILE_STRINGS.contains(&key) => {}
            ("address", Value::Object(address)) => {
                for (part, value) in address {
                    if !ADDRESS_STRINGS.contains(&part.as_str()) || !value.is_string() {
                        return Err(invalid(
                            &format!("{path}.{part}"),
                            "Unrecognized key or not a string",
                        ));
                    }
                }
            }
            _ => return Err(invalid(&path, "Unrecognized key or wrong type")),
        }
    }
    Ok(())
}

/// An identifier as a PATCH may give it: a value (checked), `""` or `null` (cleared).
fn identifier(
    patch: &Patch<String>,
    check: impl Fn(&str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    match patch {
        Patch::Value(value) if !value.is_empty() => check(value),
        Patch::Value(_) | Patch::Null | Patch::Absent => Ok(()),
    }
}

// ---- routes ------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    pub primary_email: Option<String>,
    /// Digits only.
    pub primary_phone: Option<String>,
    pub username: Option<String>,
    /// A plain password to hash (argon2id).
    pub password: Option<String>,
    /// An imported digest, with `passwordAlgorithm`.
    pub password_digest: Option<String>,
    #[schema(value_type = Option<String>)]
    pub password_algorithm: Option<domain::user::PasswordAlgorithm>,
    /// idledger: generate a strong random password, returned once as `generatedPassword`.
    pub generate_password: Option<bool>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub profile: Option<Map<String, Value>>,
}

/// List users, newest first, with Logto's search.
#[utoipa::path(get, path = "/api/users", tag = "Users",
    params(
        ("search" = Option<String>, Query, description = "Match id, primary email, primary phone, username and name (caller supplies % wildcards)."),
        ("search.<field>" = Option<String>, Query, description = "Match one field; repeatable in exact mode."),
        ("mode" = Option<String>, Query, description = "like (default), exact, similar_to, posix; also mode.<field>."),
        ("joint" = Option<String>, Query, description = "or (default) / and."),
        ("isCaseSensitive" = Option<bool>, Query, description = "Default false."),
        ("excludeRoleId" = Option<String>, Query, description = "Leave out holders of this role."),
        ("excludeOrganizationId" = Option<String>, Query, description = "Leave out members of this organization."),
        ("includePasswordHash" = Option<bool>, Query, description = "Add passwordDigest and passwordAlgorithm."),
        ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
        ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100)."),
    ),
    responses((status = 200, body = Vec<UserResponse>)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<UserResponse>, ApiError> {
    let page = listing::page(&query, false)?.unwrap_or(listing::Page {
        number: 1,
        size: 20,
    });
    if query.get("excludeRoleId").is_some() && query.get("excludeOrganizationId").is_some() {
        return Err(ApiError::bad_request(
            "`excludeRoleId` and `excludeOrganizationId` cannot be used together.",
        ));
    }
    let filter = UserFilter {
        search: listing::search(&query, users::SEARCH_COLUMNS)?,
        exclude_role_id: query.get("excludeRoleId").map(str::to_owned),
        role_id: None,
        exclude_organization_id: query.get("excludeOrganizationId").map(str::to_owned),
    };
    let include_hash = query.truthy("includePasswordHash");
    let db = state.store.pool().get().await?;
    let (rows, total) = users::list(
        &db,
        &filter,
        projections::Window {
            limit: page.size,
            offset: page.offset(),
        },
    )
    .await?;
    Ok(Listing {
        rows: rows
            .into_iter()
            .map(|row| UserResponse::from_row(row, include_hash))
            .collect(),
        paging: Some(Paging {
            page,
            total,
            endpoint: state.endpoint.clone(),
            path: uri.path().to_owned(),
            query: query.0.clone(),
        }),
    })
}

/// Create a user. Every field is optional, as in Logto.
#[utoipa::path(post, path = "/api/users", tag = "Users",
    request_body = CreateUser,
    responses((status = 200, body = UserResponse), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateUser>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    if let Some(email) = &body.primary_email {
        check_email(email)?;
        check_length("primaryEmail", email, 128)?;
    }
    if let Some(username) = &body.username {
        check_username(username)?;
        check_length("username", username, 128)?;
    }
    let primary_phone = body
        .primary_phone
        .as_deref()
        .map(normalize_phone)
        .transpose()?;
    if let Some(name) = &body.name {
        check_length("name", name, 128)?;
    }
    if let Some(avatar) = &body.avatar {
        check_avatar(avatar)?;
    }
    let (password, generated) = password::initial(&body).await?;
    let profile = body.profile.unwrap_or_default();
    check_profile(&profile)?;
    let id = ids::short_id().map_err(|_| ApiError::internal())?;
    let role_ids = {
        let db = state.store.pool().get().await?;
        projections::roles::default_user_role_ids(&db).await?
    };
    // The id was just drawn at random: the first attempt need not read its (empty) stream.
    let create = UserCommand::Create(NewUser {
        id: id.clone(),
        username: body.username,
        primary_email: body.primary_email,
        primary_phone,
        name: body.name,
        avatar: body.avatar.filter(|a| !a.is_empty()),
        custom_data: body.custom_data.unwrap_or_default(),
        profile,
        password_digest: password.as_ref().map(|p| p.password_digest.clone()),
        password_algorithm: password.map(|p| p.password_algorithm),
        role_ids,
    });
    state
        .store
        .run(
            Unit::new().then_fresh::<User>(id.as_str(), create),
            &context.metadata(caller.actor.clone()),
        )
        .await?;
    let mut response = UserResponse::from_row(find(&state, &id).await?, false);
    response.generated_password = generated;
    Ok(axum::Json(response))
}

/// Get a user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("includeSsoIdentities" = Option<bool>, Query, description = "Add ssoIdentities."),
           ("includePasswordHash" = Option<bool>, Query, description = "Add passwordDigest and passwordAlgorithm."),
           ("asOf" = Option<String>, Query, description = "idledger: the user as it was at this moment (milliseconds since the epoch or RFC 3339, to the millisecond), folded from the log; also for a deleted user, as of a moment it existed.")),
    responses((status = 200, body = UserResponse), (status = 400), (status = 404), (status = 410)),
    security(("bearer" = [])))]
async fn get_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let row = match query.get("asOf") {
        Some(as_of) => history::as_of(&state, &id, as_of).await?,
        None => find(&state, &id).await?,
    };
    let mut response = UserResponse::from_row(row, query.truthy("includePasswordHash"));
    if query.truthy("includeSsoIdentities") {
        // No enterprise SSO connector exists here, so no user has an SSO identity.
        response.sso_identities = Some(Vec::new());
    }
    Ok(axum::Json(response))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUser {
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub username: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub primary_email: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub primary_phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub avatar: Patch<String>,
    /// Replaces `customData` wholesale.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
    /// Replaces `profile` wholesale.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub profile: Option<Map<String, Value>>,
}

/// Update a user; `customData` and `profile` are replaced, identifiers set or cleared.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = UpdateUser,
    responses((status = 200, body = UserResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateUser>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    identifier(&body.username, |u| {
        check_username(u)?;
        check_length("username", u, 128)
    })?;
    identifier(&body.primary_email, |e| {
        check_email(e)?;
        check_length("primaryEmail", e, 128)
    })?;
    identifier(&body.avatar, check_avatar)?;
    if let Patch::Value(name) = &body.name {
        check_length("name", name, 128)?;
    }
    let primary_phone = match body.primary_phone {
        Patch::Value(phone) if !phone.is_empty() => Patch::Value(normalize_phone(&phone)?),
        other => other,
    };
    if let Some(profile) = &body.profile {
        check_profile(profile)?;
    }
    find(&state, &id).await?;
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::Update(UserPatch {
            username: body.username,
            primary_email: body.primary_email,
            primary_phone,
            name: body.name,
            avatar: body.avatar,
            custom_data: body.custom_data,
            profile: body.profile,
        }),
    )
    .await?;
    respond(&state, &id).await
}

/// Delete a user. Irreversible; the event history stays (erasure is a separate operation).
#[utoipa::path(delete, path = "/api/users/{id}", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 204), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    depart(
        &state,
        caller,
        &context,
        &id,
        Unit::new(),
        UserCommand::Delete,
        "user deleted",
    )
    .await
}

/// Deletion and erasure: the user's command, with their tokens and sessions, in one unit of
/// work (after `unit`, what else the caller's command takes along). Nobody removes themselves.
async fn depart(
    state: &AppState,
    caller: Caller,
    context: &RequestContext,
    id: &str,
    unit: Unit,
    command: UserCommand,
    reason: &str,
) -> Result<StatusCode, ApiError> {
    if caller.subject == id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "user.cannot_delete_self",
            "You cannot delete yourself.",
        ));
    }
    // Tokens and sessions go with the user, in the same unit of work.
    let unit = {
        let db = state.store.pool().get().await?;
        let unit = unit.then::<User>(id, command);
        // Stored social tokens go with the user too.
        let unit = crate::connectors::token_vault::erase_for_user(
            &db,
            unit,
            id,
            domain::token_set::ErasureReason::UserDeleted,
        )
        .await?;
        sessions::sign_out_everywhere(&db, unit, id, context.now_ms(), reason).await?
    };
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's custom data.
#[utoipa::path(get, path = "/api/users/{id}/custom-data", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn get_custom_data(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(find(&state, &id).await?.custom_data))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomDataBody {
    #[schema(value_type = Object)]
    pub custom_data: Map<String, Value>,
}

/// Shallow-merge into a user's custom data.
#[utoipa::path(patch, path = "/api/users/{id}/custom-data", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = CustomDataBody,
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn merge_custom_data(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<CustomDataBody>,
) -> Result<axum::Json<Value>, ApiError> {
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::MergeCustomData(body.custom_data),
    )
    .await?;
    Ok(axum::Json(find(&state, &id).await?.custom_data))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileBody {
    #[schema(value_type = Object)]
    pub profile: Map<String, Value>,
}

/// Shallow-merge into a user's OIDC profile claims.
#[utoipa::path(patch, path = "/api/users/{id}/profile", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = ProfileBody,
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn merge_profile(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<ProfileBody>,
) -> Result<axum::Json<Value>, ApiError> {
    check_profile(&body.profile)?;
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::MergeProfile(body.profile),
    )
    .await?;
    Ok(axum::Json(find(&state, &id).await?.profile))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuspensionBody {
    pub is_suspended: bool,
}

/// Suspend or reactivate a user.
#[utoipa::path(patch, path = "/api/users/{id}/is-suspended", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = SuspensionBody,
    responses((status = 200, body = UserResponse), (status = 404)),
    security(("bearer" = [])))]
async fn set_suspended(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<SuspensionBody>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let mut unit = Unit::new().then::<User>(&id, UserCommand::SetSuspended(body.is_suspended));
    if body.is_suspended {
        // Logto signs a suspended user out everywhere: sessions end, tokens die.
        let db = state.store.pool().get().await?;
        unit = sessions::sign_out_everywhere(&db, unit, &id, context.now_ms(), "user suspended")
            .await?;
    }
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    respond(&state, &id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_e164_digits_and_trunk_prefixes_vanish() {
        assert_eq!(normalize_phone("610412345678").unwrap(), "61412345678");
        assert_eq!(normalize_phone("61412345678").unwrap(), "61412345678");
        assert_eq!(normalize_phone("14155552671").unwrap(), "14155552671");
        assert_eq!(
            normalize_phone("999").unwrap_err().code,
            "user.invalid_phone"
        );
        assert_eq!(
            normalize_phone("+1415").unwrap_err().code,
            "guard.invalid_input"
        );
    }

    #[test]
    fn logto_identifier_rules() {
        assert!(check_email("a@b.co").is_ok());
        assert!(check_email("a b@c.d").is_err());
        assert!(check_email("a@b").is_err());
        assert!(check_username("_ada9").is_ok());
        assert!(check_username("9ada").is_err());
        assert!(check_username("ada-lovelace").is_err());
    }
}
