//! `/api/applications`: OIDC clients, their secrets and machine-to-machine roles (Logto §5).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use domain::application::{
    AppType, Application, ApplicationCommand, ApplicationPatch, DEFAULT_SECRET_NAME, NewApplication,
};
use domain::patch::Patch;
use domain::resource::MANAGEMENT_API_ROLE_ID;
use domain::role::RoleType;
use projections::applications::{self, ApplicationFilter, ApplicationRow, SecretRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::command::execute;
use super::listing::{self, Listing, Page, Paging};
use super::lockout::{self, AccessChange};
use super::roles::{self as role_routes, RoleResponse};
use crate::app::AppState;
use crate::bootstrap::new_secret;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_applications, create_application))
        .routes(routes!(
            get_application,
            update_application,
            delete_application
        ))
        .routes(routes!(merge_custom_data))
        .routes(routes!(list_secrets, add_secret))
        .routes(routes!(rename_secret, delete_secret))
        .routes(routes!(delete_legacy_secret))
        .routes(routes!(list_roles, assign_roles, replace_roles))
        .routes(routes!(remove_role))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcClientMetadata {
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_session_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
}

/// Logto's `customClientMetadata`; unknown keys are dropped, as Logto's schema strips them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomClientMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_allowed_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_ttl_in_days: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_issue_refresh_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_refresh_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_token_exchange: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_device_flow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_allowed_grants: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateApplication {
    pub name: String,
    /// `Native`, `SPA`, `Traditional` or `MachineToMachine`.
    #[serde(rename = "type")]
    pub app_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub oidc_client_metadata: Option<OidcClientMetadata>,
    #[serde(default)]
    pub custom_client_metadata: Option<CustomClientMetadata>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub is_third_party: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateApplication {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Patch<String>,
    #[serde(default)]
    pub oidc_client_metadata: Option<OidcClientMetadata>,
    #[serde(default)]
    pub custom_client_metadata: Option<CustomClientMetadata>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_data: Option<Map<String, Value>>,
    /// Machine-to-machine apps only: grants or withdraws Management API access.
    #[serde(default)]
    pub is_admin: Option<bool>,
    #[serde(default)]
    pub app_level_access_control_enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub app_type: String,
    #[schema(value_type = Object)]
    pub oidc_client_metadata: Value,
    #[schema(value_type = Object)]
    pub custom_client_metadata: Value,
    #[schema(value_type = Option<Object>)]
    pub protected_app_metadata: Option<Value>,
    #[schema(value_type = Object)]
    pub custom_data: Value,
    pub is_third_party: bool,
    pub app_level_access_control_enabled: bool,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
}

impl ApplicationResponse {
    fn from_row(row: ApplicationRow, is_admin: Option<bool>) -> ApplicationResponse {
        ApplicationResponse {
            tenant_id: "default",
            id: row.id,
            name: row.name,
            description: row.description,
            app_type: row.app_type,
            oidc_client_metadata: row.oidc_client_metadata,
            custom_client_metadata: row.custom_client_metadata,
            protected_app_metadata: None,
            custom_data: row.custom_data,
            is_third_party: row.is_third_party,
            app_level_access_control_enabled: row.app_level_access_control_enabled,
            created_at: row.created_at,
            is_admin,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretResponse {
    pub tenant_id: &'static str,
    pub application_id: String,
    pub name: String,
    /// The secret itself, as Logto shows it again on every read (kept sealed at rest).
    pub value: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSecretBody {
    pub name: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameSecretBody {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleIdsBody {
    pub role_ids: Vec<String>,
}

fn parse_type(name: &str) -> Result<AppType, ApiError> {
    match name {
        "SAML" => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "application.saml.use_saml_app_api",
            "Use the SAML application API to manage SAML applications.",
        )),
        other => serde_json::from_value(Value::String(other.to_owned())).map_err(|_| {
            ApiError::invalid_input(
                "body",
                format!(
                    "Error in key path \"type\": `{other}` is not one of Native, SPA, \
                     Traditional, MachineToMachine"
                ),
            )
        }),
    }
}

/// Logto's rule: an http(s) URL (wildcards allowed in the host) or a custom scheme
/// (`com.example.app:/callback`).
fn valid_redirect_uri(uri: &str) -> bool {
    let custom_scheme = {
        let scheme = uri.split(':').next().unwrap_or_default();
        uri.contains(':')
            && scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+_-".contains(c))
            })
            && !matches!(scheme, "http" | "https")
    };
    if custom_scheme {
        return true;
    }
    url::Url::parse(&uri.replace('*', "wildcard"))
        .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .unwrap_or(false)
}

fn check_metadata(metadata: &OidcClientMetadata) -> Result<(), ApiError> {
    for (key, uris) in [
        ("redirectUris", &metadata.redirect_uris),
        (
            "postLogoutRedirectUris",
            &metadata.post_logout_redirect_uris,
        ),
    ] {
        for (index, uri) in uris.iter().enumerate() {
            if !valid_redirect_uri(uri) {
                return Err(ApiError::invalid_input(
                    "body",
                    format!(
                        "Error in key path \"oidcClientMetadata.{key}.{index}\": (custom) Invalid URL"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_custom(custom: &CustomClientMetadata) -> Result<(), ApiError> {
    if custom
        .refresh_token_ttl_in_days
        .is_some_and(|days| !(1..=180).contains(&days))
    {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"customClientMetadata.refreshTokenTtlInDays\": must be 1 to 180",
        ));
    }
    if custom.max_allowed_grants == Some(0) {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"customClientMetadata.maxAllowedGrants\": must be positive",
        ));
    }
    Ok(())
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

fn to_value<T: Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|_| ApiError::internal())
}

pub async fn find(state: &AppState, id: &str) -> Result<ApplicationRow, ApiError> {
    let db = state.store.pool().get().await?;
    applications::by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_exists_with_id("application", id))
}

async fn respond(state: &AppState, id: &str) -> Result<ApplicationResponse, ApiError> {
    let row = find(state, id).await?;
    let db = state.store.pool().get().await?;
    let is_admin = applications::is_admin(&db, id).await?;
    Ok(ApplicationResponse::from_row(row, Some(is_admin)))
}

/// List applications.
#[utoipa::path(get, path = "/api/applications", tag = "Applications",
    params(
        ("types" = Option<Vec<String>>, Query, description = "Filter by type (repeatable)."),
        ("isThirdParty" = Option<bool>, Query, description = "Filter third-party apps."),
        ("excludeRoleId" = Option<String>, Query, description = "Leave out apps holding this role."),
        ("search" = Option<String>, Query, description = "Logto search over id, name, description."),
        ("page" = Option<i64>, Query, description = "1-based page; pagination is optional here."),
        ("page_size" = Option<i64>, Query, description = "Page size, at most 100."),
    ),
    responses((status = 200, body = Vec<ApplicationResponse>)),
    security(("bearer" = [])))]
async fn list_applications(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<ApplicationResponse>, ApiError> {
    let page = listing::page(&query, true)?;
    let mut types = Vec::new();
    for name in query.all("types") {
        types.push(parse_type(name)?.as_str().to_owned());
    }
    let is_third_party = match query.get("isThirdParty") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::invalid_input(
                "query",
                "Error in key path \"isThirdParty\": expected true or false",
            ));
        }
    };
    let filter = ApplicationFilter {
        types,
        is_third_party,
        exclude_role_id: query.get("excludeRoleId").map(str::to_owned),
        search: listing::search(&query, applications::SEARCH_COLUMNS)?,
    };
    let db = state.store.pool().get().await?;
    let (rows, total) = applications::list(&db, &filter, page.map(Page::window)).await?;
    Ok(Listing {
        rows: rows
            .into_iter()
            .map(|row| ApplicationResponse::from_row(row, None))
            .collect(),
        paging: page.map(|page| Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Create an application. Confidential ones get a secret named `Default secret`.
#[utoipa::path(post, path = "/api/applications", tag = "Applications",
    request_body = CreateApplication,
    responses((status = 200, body = ApplicationResponse), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn create_application(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateApplication>,
) -> Result<axum::Json<ApplicationResponse>, ApiError> {
    check_name(&body.name)?;
    let app_type = parse_type(&body.app_type)?;
    let metadata = body.oidc_client_metadata.unwrap_or(OidcClientMetadata {
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        backchannel_logout_session_required: None,
        logo_uri: None,
    });
    check_metadata(&metadata)?;
    let custom = body.custom_client_metadata.unwrap_or_default();
    check_custom(&custom)?;
    let id = ids::standard_id().map_err(|_| ApiError::internal())?;
    let mut unit = Unit::new();
    let default_secret = if app_type.is_confidential() {
        let value = ids::secret().map_err(|_| ApiError::internal())?;
        let secret = new_secret(&state.store, DEFAULT_SECRET_NAME, &value, None)
            .map_err(|_| ApiError::internal())?;
        unit = unit.seal(secret.vault_ref.clone(), value.into_bytes());
        Some(secret)
    } else {
        None
    };
    let unit = unit.then::<Application>(
        &id,
        ApplicationCommand::Create {
            application: NewApplication {
                id: id.clone(),
                name: body.name,
                description: body.description,
                app_type,
                oidc_client_metadata: to_value(&metadata)?,
                custom_client_metadata: to_value(&custom)?,
                custom_data: Value::Object(body.custom_data.unwrap_or_default()),
                is_third_party: body.is_third_party.unwrap_or(false),
            },
            default_secret,
        },
    );
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    let row = find(&state, &id).await?;
    Ok(axum::Json(ApplicationResponse::from_row(row, None)))
}

/// Get an application.
#[utoipa::path(get, path = "/api/applications/{id}", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    responses((status = 200, body = ApplicationResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_application(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ApplicationResponse>, ApiError> {
    Ok(axum::Json(respond(&state, &id).await?))
}

/// Update an application; JSON fields are replaced wholesale.
#[utoipa::path(patch, path = "/api/applications/{id}", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    request_body = UpdateApplication,
    responses((status = 200, body = ApplicationResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn update_application(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateApplication>,
) -> Result<axum::Json<ApplicationResponse>, ApiError> {
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    if let Some(metadata) = &body.oidc_client_metadata {
        check_metadata(metadata)?;
    }
    if let Some(custom) = &body.custom_client_metadata {
        check_custom(custom)?;
    }
    let patch = ApplicationPatch {
        name: body.name,
        description: body.description,
        oidc_client_metadata: body
            .oidc_client_metadata
            .as_ref()
            .map(to_value)
            .transpose()?,
        custom_client_metadata: body
            .custom_client_metadata
            .as_ref()
            .map(to_value)
            .transpose()?,
        custom_data: body.custom_data.map(Value::Object),
        app_level_access_control_enabled: body.app_level_access_control_enabled,
    };
    let mut unit = Unit::new();
    if patch != ApplicationPatch::default() || body.is_admin.is_none() {
        unit = unit.then::<Application>(&id, ApplicationCommand::Update(patch));
    }
    if let Some(is_admin) = body.is_admin {
        if !is_admin {
            lockout::check(
                &caller.actor,
                &AccessChange::WithdrawRole {
                    application_id: &id,
                    role_id: MANAGEMENT_API_ROLE_ID,
                },
            )?;
        }
        let row = find(&state, &id).await?;
        if row.app_type != AppType::MachineToMachine.as_str() {
            return Err(ApiError::bad_request(
                "isAdmin applies to machine-to-machine applications only.",
            ));
        }
        let role_ids = vec![MANAGEMENT_API_ROLE_ID.to_owned()];
        unit = unit.then::<Application>(
            &id,
            if is_admin {
                ApplicationCommand::AssignRoles { role_ids }
            } else {
                ApplicationCommand::RemoveRole {
                    role_id: MANAGEMENT_API_ROLE_ID.to_owned(),
                }
            },
        );
    }
    match state.store.run(unit, &context.metadata(caller.actor)).await {
        // Withdrawing admin access from an app that has none changes nothing.
        Err(crate::store::StoreError::Rejected(domain::Rejection::Application(
            domain::application::ApplicationError::RoleNotAssigned { .. },
        ))) if body.is_admin == Some(false) => {}
        other => {
            other.map_err(|e| ApiError::from(e).about("application", &id))?;
        }
    }
    Ok(axum::Json(respond(&state, &id).await?))
}

/// Delete an application and its secrets.
#[utoipa::path(delete, path = "/api/applications/{id}", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_application(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    lockout::check(&caller.actor, &AccessChange::DeleteApplication { id: &id })?;
    execute::<Application>(&state, caller, &context, &id, ApplicationCommand::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Shallow-merge into `customData`; the body is the partial object itself.
#[utoipa::path(patch, path = "/api/applications/{id}/custom-data", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    request_body(content = Object),
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn merge_custom_data(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(changes): Json<Map<String, Value>>,
) -> Result<axum::Json<Value>, ApiError> {
    let command = ApplicationCommand::MergeCustomData(changes);
    execute::<Application>(&state, caller, &context, &id, command).await?;
    Ok(axum::Json(find(&state, &id).await?.custom_data))
}

async fn secret_response(state: &AppState, row: SecretRow) -> Result<SecretResponse, ApiError> {
    let value = state
        .store
        .open_vault(&row.vault_ref)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            tracing::error!(vault_ref = %row.vault_ref, "secret value missing from the vault");
            ApiError::internal()
        })?;
    Ok(SecretResponse {
        tenant_id: "default",
        application_id: row.application_id,
        name: row.name,
        value,
        created_at: row.created_at,
        expires_at: row.expires_at,
    })
}

/// List an application's secrets, values included.
#[utoipa::path(get, path = "/api/applications/{id}/secrets", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    responses((status = 200, body = Vec<SecretResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_secrets(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<SecretResponse>>, ApiError> {
    find(&state, &id).await?;
    let rows = {
        let db = state.store.pool().get().await?;
        applications::secrets(&db, &id).await?
    };
    let mut secrets = Vec::with_capacity(rows.len());
    for row in rows {
        secrets.push(secret_response(&state, row).await?);
    }
    Ok(axum::Json(secrets))
}

async fn secret_named(state: &AppState, id: &str, name: &str) -> Result<SecretResponse, ApiError> {
    let row = {
        let db = state.store.pool().get().await?;
        applications::secrets(&db, id)
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(ApiError::not_found)?
    };
    secret_response(state, row).await
}

/// Add a named secret, optionally expiring.
#[utoipa::path(post, path = "/api/applications/{id}/secrets", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    request_body = NewSecretBody,
    responses((status = 201, body = SecretResponse), (status = 400), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn add_secret(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<NewSecretBody>,
) -> Result<(StatusCode, axum::Json<SecretResponse>), ApiError> {
    check_name(&body.name)?;
    if body.expires_at.is_some_and(|at| at <= context.now_ms()) {
        return Err(ApiError::bad_request(
            "The expiration time must be in the future.",
        ));
    }
    find(&state, &id).await?;
    let value = ids::secret().map_err(|_| ApiError::internal())?;
    let secret = new_secret(&state.store, &body.name, &value, body.expires_at)
        .map_err(|_| ApiError::internal())?;
    let unit = Unit::new()
        .seal(secret.vault_ref.clone(), value.into_bytes())
        .then::<Application>(&id, ApplicationCommand::AddSecret(secret));
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await
        .map_err(|e| ApiError::from(e).about("application", &id))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(secret_named(&state, &id, &body.name).await?),
    ))
}

/// Rename a secret.
#[utoipa::path(patch, path = "/api/applications/{id}/secrets/{name}", tag = "Applications",
    params(("id" = String, Path, description = "Application id."),
           ("name" = String, Path, description = "Current secret name.")),
    request_body = RenameSecretBody,
    responses((status = 200, body = SecretResponse), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn rename_secret(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, name)): Path<(String, String)>,
    Json(body): Json<RenameSecretBody>,
) -> Result<axum::Json<SecretResponse>, ApiError> {
    check_name(&body.name)?;
    let command = ApplicationCommand::RenameSecret {
        name,
        new_name: body.name.clone(),
    };
    execute::<Application>(&state, caller, &context, &id, command).await?;
    Ok(axum::Json(secret_named(&state, &id, &body.name).await?))
}

/// Delete a secret; its sealed value is destroyed with it.
#[utoipa::path(delete, path = "/api/applications/{id}/secrets/{name}", tag = "Applications",
    params(("id" = String, Path, description = "Application id."),
           ("name" = String, Path, description = "Secret name.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let others = {
        let db = state.store.pool().get().await?;
        let now = context.now_ms();
        applications::secrets(&db, &id)
            .await?
            .iter()
            .filter(|s| s.name != name && s.expires_at.is_none_or(|at| at > now))
            .count()
    };
    lockout::check(
        &caller.actor,
        &AccessChange::DeleteSecret {
            application_id: &id,
            others,
        },
    )?;
    let command = ApplicationCommand::DeleteSecret { name };
    execute::<Application>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Logto's route for retiring a pre-2024 single secret; idledger apps never have one.
#[utoipa::path(delete, path = "/api/applications/{id}/legacy-secret", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    responses((status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn delete_legacy_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "application.no_legacy_secret_found",
        "The application does not have a legacy secret.",
    ))
}

/// Roles held by an application.
#[utoipa::path(get, path = "/api/applications/{id}/roles", tag = "Applications",
    params(("id" = String, Path, description = "Application id."),
           ("page" = Option<i64>, Query, description = "1-based page."),
           ("page_size" = Option<i64>, Query, description = "Page size, at most 100."),
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
        applications::role_ids(&db, &id).await?
    };
    role_routes::list_held(&state, &uri, &query, held).await
}

/// Checks the ids name existing machine-to-machine roles.
async fn check_roles(state: &AppState, role_ids: &[String]) -> Result<(), ApiError> {
    let db = state.store.pool().get().await?;
    let found = projections::roles::by_ids(&db, role_ids).await?;
    for role_id in role_ids {
        let role = found
            .iter()
            .find(|r| &r.id == role_id)
            .ok_or_else(|| ApiError::not_exists_with_id("role", role_id))?;
        if role.role_type != RoleType::MachineToMachine.as_str() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "application.invalid_role_type",
                "Only machine-to-machine roles can be assigned to applications.",
            )
            .with_data(serde_json::json!({ "roleId": role_id })));
        }
    }
    Ok(())
}

/// Assign machine-to-machine roles (already-held ones are ignored).
#[utoipa::path(post, path = "/api/applications/{id}/roles", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    request_body = RoleIdsBody,
    responses((status = 201), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn assign_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RoleIdsBody>,
) -> Result<impl IntoResponse, ApiError> {
    find(&state, &id).await?;
    check_roles(&state, &body.role_ids).await?;
    let command = ApplicationCommand::AssignRoles {
        role_ids: body.role_ids,
    };
    execute::<Application>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::CREATED)
}

/// Replace the set of roles held.
#[utoipa::path(put, path = "/api/applications/{id}/roles", tag = "Applications",
    params(("id" = String, Path, description = "Application id.")),
    request_body = RoleIdsBody,
    responses((status = 200), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn replace_roles(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<RoleIdsBody>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    check_roles(&state, &body.role_ids).await?;
    lockout::check(
        &caller.actor,
        &AccessChange::ReplaceRoles {
            application_id: &id,
            role_ids: &body.role_ids,
        },
    )?;
    let command = ApplicationCommand::ReplaceRoles {
        role_ids: body.role_ids,
    };
    execute::<Application>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::OK)
}

/// Withdraw a role.
#[utoipa::path(delete, path = "/api/applications/{id}/roles/{role_id}", tag = "Applications",
    params(("id" = String, Path, description = "Application id."),
           ("role_id" = String, Path, description = "Role id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn remove_role(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, role_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lockout::check(
        &caller.actor,
        &AccessChange::WithdrawRole {
            application_id: &id,
            role_id: &role_id,
        },
    )?;
    let command = ApplicationCommand::RemoveRole { role_id };
    execute::<Application>(&state, caller, &context, &id, command).await?;
    Ok(StatusCode::NO_CONTENT)
}
