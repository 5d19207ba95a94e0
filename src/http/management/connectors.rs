//! `/api/connector-factories` and `/api/connectors` (logto-compat §6): the factories this server
//! offers, the connectors configured from them, and a test send from an unsaved configuration.
//!
//! A configuration's secrets are sealed in the vault (see `crate::connectors`); the responses
//! carry the configuration whole, as Logto's do.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::connector::{Connector, ConnectorCommand, ConnectorPatch, ConnectorType, NewConnector};
use domain::message::UsageType;
use projections::connectors::{self, ConnectorRow};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::connectors::{FACTORIES, Factory, Mail, factory, full_config, prepare_config};
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::{StoreError, Unit};

/// How often a creation is retried when another one replaced the Email connector meanwhile.
const REPLACE_ATTEMPTS: u32 = 4;
/// How long a test send may take before it is reported as failed.
const TEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_factories))
        .routes(routes!(get_factory))
        .routes(routes!(list_connectors, create_connector))
        .routes(routes!(get_connector, update_connector, delete_connector))
        .routes(routes!(test_connector))
}

fn factory_document(factory: &dyn Factory) -> Value {
    let mut document = Map::new();
    document.insert("type".into(), json!(factory.connector_type().as_str()));
    if let Value::Object(metadata) = factory.metadata() {
        document.extend(metadata);
    }
    document.insert("isDemo".into(), json!(false));
    Value::Object(document)
}

/// The factory's metadata with the connector's own overrides (standard connectors only).
fn effective_metadata(factory: &dyn Factory, row: &ConnectorRow) -> Map<String, Value> {
    let mut metadata = match factory.metadata() {
        Value::Object(metadata) => metadata,
        _ => Map::new(),
    };
    if let Value::Object(overrides) = &row.metadata {
        for (key, value) in overrides {
            if !value.is_null() {
                metadata.insert(key.clone(), value.clone());
            }
        }
    }
    metadata
}

fn target_of(row: &ConnectorRow) -> Option<String> {
    let factory = factory(&row.connector_id)?;
    effective_metadata(factory, row)
        .get("target")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Logto's connector response: the factory's metadata spread, then the connector's fields.
async fn document(state: &AppState, row: &ConnectorRow) -> Result<Value, ApiError> {
    let factory = factory(&row.connector_id).ok_or_else(|| {
        tracing::error!(connector_id = %row.connector_id, "connector of an unknown factory");
        ApiError::internal()
    })?;
    let config = full_config(&state.store, row).await?;
    let mut document = Map::new();
    document.insert("type".into(), json!(row.connector_type));
    document.extend(effective_metadata(factory, row));
    document.insert("id".into(), json!(row.id));
    document.insert("connectorId".into(), json!(row.connector_id));
    document.insert("syncProfile".into(), json!(row.sync_profile));
    document.insert("enableTokenStorage".into(), json!(row.enable_token_storage));
    document.insert("config".into(), config);
    document.insert("metadata".into(), row.metadata.clone());
    document.insert("isDemo".into(), json!(false));
    Ok(Value::Object(document))
}

async fn find(state: &AppState, id: &str) -> Result<ConnectorRow, ApiError> {
    let db = state.store.pool().get().await?;
    connectors::by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_exists_with_id("connector", id))
}

/// List the connector factories.
#[utoipa::path(get, path = "/api/connector-factories", tag = "Connector factories",
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
async fn list_factories() -> axum::Json<Vec<Value>> {
    axum::Json(FACTORIES.iter().map(|f| factory_document(*f)).collect())
}

/// Get a connector factory.
#[utoipa::path(get, path = "/api/connector-factories/{id}", tag = "Connector factories",
    params(("id" = String, Path, description = "The factory id.")),
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn get_factory(Path(id): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    factory(&id)
        .map(|f| axum::Json(factory_document(f)))
        .ok_or_else(ApiError::not_found)
}

/// List connectors, optionally of one target.
#[utoipa::path(get, path = "/api/connectors", tag = "Connectors",
    params(("target" = Option<String>, Query, description = "Only connectors of this target.")),
    responses((status = 200, body = Vec<Object>)),
    security(("bearer" = [])))]
async fn list_connectors(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<axum::Json<Vec<Value>>, ApiError> {
    let rows = {
        let db = state.store.pool().get().await?;
        connectors::all(&db).await?
    };
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(target) = query.get("target")
            && target_of(&row).as_deref() != Some(target)
        {
            continue;
        }
        listed.push(document(&state, &row).await?);
    }
    Ok(axum::Json(listed))
}

/// Get a connector.
#[utoipa::path(get, path = "/api/connectors/{id}", tag = "Connectors",
    params(("id" = String, Path, description = "The connector id.")),
    responses((status = 200, body = Object), (status = 404)),
    security(("bearer" = [])))]
async fn get_connector(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let row = find(&state, &id).await?;
    Ok(axum::Json(document(&state, &row).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateConnectorBody {
    /// The factory id, e.g. `simple-mail-transfer-protocol`.
    pub connector_id: String,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub sync_profile: Option<bool>,
    pub enable_token_storage: Option<bool>,
    /// A connector id of the caller's choosing.
    pub id: Option<String>,
}

fn check_config(factory: &dyn Factory, config: &Value) -> Result<(), ApiError> {
    factory
        .validate(config)
        .map_err(|invalid| ApiError::invalid_connector_config(invalid.0))
}

/// Logto's rules on `metadata`, `syncProfile` and `enableTokenStorage` for a factory.
fn check_options(
    factory: &dyn Factory,
    metadata: Option<&Value>,
    sync_profile: Option<bool>,
    enable_token_storage: Option<bool>,
) -> Result<(), ApiError> {
    if let Some(metadata) = metadata {
        if !factory.is_standard() {
            return Err(ApiError::connector(
                StatusCode::BAD_REQUEST,
                "connector.cannot_overwrite_metadata_for_non_standard_connector",
                "This connector's 'metadata' cannot be overwritten.",
            ));
        }
        if !metadata.is_object() {
            return Err(ApiError::connector(
                StatusCode::BAD_REQUEST,
                "connector.invalid_metadata",
                "The connector's metadata is invalid.",
            ));
        }
    }
    if sync_profile == Some(true) && factory.connector_type() != ConnectorType::Social {
        return Err(ApiError::connector(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connector.invalid_type_for_syncing_profile",
            "You can only sync user profile with social connectors.",
        ));
    }
    if enable_token_storage == Some(true) && !factory.is_token_storage_supported() {
        return Err(ApiError::connector(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connector.token_storage_not_supported",
            "Token storage is not supported for this connector.",
        ));
    }
    Ok(())
}

/// Refusals that depend on the connectors already there (social ones), and the passwordless
/// connector a new one replaces.
fn check_existing(
    factory: &dyn Factory,
    target: Option<&str>,
    existing: &[ConnectorRow],
) -> Result<Vec<String>, ApiError> {
    let kind = factory.connector_type();
    if kind.is_passwordless() {
        return Ok(existing
            .iter()
            .filter(|row| row.connector_type == kind.as_str())
            .map(|row| row.id.clone())
            .collect());
    }
    if !factory.is_standard() && existing.iter().any(|row| row.connector_id == factory.id()) {
        return Err(ApiError::connector(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connector.multiple_instances_not_supported",
            "Can not create multiple instance with picked connector.",
        ));
    }
    let platform = factory.metadata().get("platform").cloned();
    let clash = existing.iter().any(|row| {
        let Some(other) = super::connectors::factory(&row.connector_id) else {
            return false;
        };
        let same_platform = other.metadata().get("platform").cloned() == platform;
        factory.is_standard()
            && same_platform
            && target.is_some()
            && target_of(row).as_deref() == target
    });
    if clash {
        return Err(ApiError::connector(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connector.multiple_target_with_same_platform",
            "You can not have multiple social connectors that have same target and platform.",
        ));
    }
    Ok(Vec::new())
}

/// Create a connector. An Email (or SMS) connector replaces the one there was.
#[utoipa::path(post, path = "/api/connectors", tag = "Connectors",
    request_body = CreateConnectorBody,
    responses((status = 200, body = Object), (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn create_connector(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateConnectorBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let factory = factory(&body.connector_id).ok_or_else(|| {
        ApiError::connector(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connector.not_found_with_connector_id",
            "Can not find connector with given standard connector id.",
        )
    })?;
    check_options(
        factory,
        body.metadata.as_ref(),
        body.sync_profile,
        body.enable_token_storage,
    )?;
    let target = body
        .metadata
        .as_ref()
        .and_then(|m| m.get("target"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if factory.is_standard() && target.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::connector(
            StatusCode::BAD_REQUEST,
            "connector.should_specify_target",
            "You should specify `target`.",
        ));
    }
    let config = body.config.clone().unwrap_or_else(|| json!({}));
    if body.config.is_some() {
        check_config(factory, &config)?;
    }
    let id = match &body.id {
        Some(id) if id.is_empty() || id.chars().count() > 128 => {
            return Err(ApiError::invalid_input(
                "body",
                "Error in key path \"id\": must be 1 to 128 characters",
            ));
        }
        Some(id) => id.clone(),
        None => ids::short_id().map_err(|_| ApiError::internal())?,
    };
    let metadata = context.metadata(caller.actor.clone());
    let mut attempt = 1;
    loop {
        let existing = {
            let db = state.store.pool().get().await?;
            connectors::all(&db).await?
        };
        let replaced = check_existing(factory, target.as_deref(), &existing)?;
        let (recorded, sealed) =
            prepare_config(factory, &id, &config).map_err(|_| ApiError::internal())?;
        let mut unit = Unit::new();
        for old in &replaced {
            unit = unit.then::<Connector>(old.clone(), ConnectorCommand::Delete);
        }
        unit = unit.then::<Connector>(
            id.clone(),
            ConnectorCommand::Create(NewConnector {
                id: id.clone(),
                connector_id: factory.id().to_owned(),
                connector_type: factory.connector_type(),
                config: recorded,
                metadata: body.metadata.clone().unwrap_or_else(|| json!({})),
                sync_profile: body.sync_profile.unwrap_or(false),
                enable_token_storage: body.enable_token_storage.unwrap_or(false),
            }),
        );
        if let Some(sealed) = sealed {
            unit = unit.seal(sealed.vault_ref, sealed.plaintext);
        }
        match state.store.run(unit, &metadata).await {
            // Another request replaced the Email connector between our read and our write.
            Err(StoreError::Constraint(name))
                if name == "connectors__passwordless_type" && attempt < REPLACE_ATTEMPTS => {}
            Err(StoreError::Rejected(domain::Rejection::Connector(
                domain::connector::ConnectorError::NotFound,
            ))) if attempt < REPLACE_ATTEMPTS => {}
            other => {
                other?;
                break;
            }
        }
        attempt += 1;
    }
    let row = find(&state, &id).await?;
    Ok(axum::Json(document(&state, &row).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConnectorBody {
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub sync_profile: Option<bool>,
    pub enable_token_storage: Option<bool>,
}

/// Update a connector: `config` and `metadata` are replaced whole.
#[utoipa::path(patch, path = "/api/connectors/{id}", tag = "Connectors",
    params(("id" = String, Path, description = "The connector id.")),
    request_body = UpdateConnectorBody,
    responses((status = 200, body = Object), (status = 400), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn update_connector(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateConnectorBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let row = find(&state, &id).await?;
    let factory = factory(&row.connector_id).ok_or_else(ApiError::internal)?;
    check_options(
        factory,
        body.metadata.as_ref(),
        body.sync_profile,
        body.enable_token_storage,
    )?;
    if let Some(metadata) = &body.metadata {
        let new_target = metadata.get("target").and_then(Value::as_str);
        if new_target.is_some_and(|target| Some(target) != target_of(&row).as_deref()) {
            return Err(ApiError::connector(
                StatusCode::BAD_REQUEST,
                "connector.can_not_modify_target",
                "The connector 'target' cannot be modified.",
            ));
        }
    }
    let mut unit = Unit::new();
    let config = match &body.config {
        Some(config) => {
            check_config(factory, config)?;
            let (recorded, sealed) =
                prepare_config(factory, &id, config).map_err(|_| ApiError::internal())?;
            if let Some(sealed) = sealed {
                unit = unit.seal(sealed.vault_ref, sealed.plaintext);
            }
            Some(recorded)
        }
        None => None,
    };
    // Turning token storage off erases every token set stored through this connector's
    // target, in the same unit of work (the events record that, never the tokens).
    let disabling = row.enable_token_storage && body.enable_token_storage == Some(false);
    if disabling && let Some(target) = target_of(&row) {
        let db = state.store.pool().get().await?;
        unit = crate::connectors::token_vault::erase_for_target(
            &db,
            unit,
            &target,
            domain::token_set::ErasureReason::StorageDisabled,
        )
        .await?;
    }
    let unit = unit.then::<Connector>(
        id.clone(),
        ConnectorCommand::Update(ConnectorPatch {
            config,
            metadata: body.metadata,
            sync_profile: body.sync_profile,
            enable_token_storage: body.enable_token_storage,
        }),
    );
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await
        .map_err(|error| ApiError::from(error).about("connector", &id))?;
    let row = find(&state, &id).await?;
    Ok(axum::Json(document(&state, &row).await?))
}

/// Delete a connector.
#[utoipa::path(delete, path = "/api/connectors/{id}", tag = "Connectors",
    params(("id" = String, Path, description = "The connector id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_connector(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&state, &id).await?;
    guard_password_expiration(&state, &row).await?;
    let mut unit = Unit::new();
    // Tokens kept through this connector go with it.
    if row.enable_token_storage
        && let Some(target) = target_of(&row)
    {
        let db = state.store.pool().get().await?;
        unit = crate::connectors::token_vault::erase_for_target(
            &db,
            unit,
            &target,
            domain::token_set::ErasureReason::ConnectorDeleted,
        )
        .await?;
    }
    let unit = unit.then::<Connector>(id.clone(), ConnectorCommand::Delete);
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await
        .map_err(|error| ApiError::from(error).about("connector", &id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Logto keeps a way to reset an expired password: the last connector a forgot-password
/// method relies on cannot go while passwords expire.
async fn guard_password_expiration(state: &AppState, row: &ConnectorRow) -> Result<(), ApiError> {
    use domain::sign_in_experience::ForgotPasswordMethod;
    let db = state.store.pool().get().await?;
    let experience = projections::sign_in_experience::current(&db).await?;
    if !experience.password_expiration.enabled {
        return Ok(());
    }
    let remaining = connectors::all(&db).await?;
    let has = |kind: &str| {
        remaining
            .iter()
            .any(|other| other.id != row.id && other.connector_type == kind)
    };
    let methods = experience.forgot_password_methods.unwrap_or_default();
    let still_possible = methods.iter().any(|method| match method {
        ForgotPasswordMethod::EmailVerificationCode => has("Email"),
        ForgotPasswordMethod::PhoneVerificationCode => has("Sms"),
    });
    if still_possible {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "sign_in_experiences.password_expiration_requires_forgot_password",
        "Password expiration requires at least one forgot password method with a valid \
         connector.",
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestConnectorBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The configuration to test; it is not saved.
    #[schema(value_type = Object)]
    pub config: Value,
    pub locale: Option<String>,
}

/// Send the `Generic` template with code `000000` from an unsaved configuration.
#[utoipa::path(post, path = "/api/connectors/{factoryId}/test", tag = "Connectors",
    params(("factoryId" = String, Path, description = "The factory id.")),
    request_body = TestConnectorBody,
    responses((status = 204), (status = 400)),
    security(("bearer" = [])))]
async fn test_connector(
    Path(factory_id): Path<String>,
    Json(body): Json<TestConnectorBody>,
) -> Result<StatusCode, ApiError> {
    let factory = factory(&factory_id).ok_or_else(|| {
        ApiError::connector(
            StatusCode::BAD_REQUEST,
            "connector.not_found",
            "Can not find any available connector for type: .",
        )
    })?;
    let Some(sender) = factory.email() else {
        return Err(ApiError::connector(
            StatusCode::BAD_REQUEST,
            "connector.unexpected_type",
            "The connector's type doesn't match.",
        ));
    };
    let Some(email) = body.email.filter(|e| !e.is_empty()) else {
        let details = if body.phone.is_some() {
            "Error in key path \"email\": an Email connector sends to an email"
        } else {
            "Error in key path \"email\": Required"
        };
        return Err(ApiError::invalid_input("body", details));
    };
    check_config(factory, &body.config)?;
    let mut payload = Map::new();
    payload.insert("code".into(), json!("000000"));
    if let Some(locale) = &body.locale {
        payload.insert("locale".into(), json!(locale));
    }
    let mail = Mail {
        message_id: ids::standard_id().map_err(|_| ApiError::internal())?,
        to: email,
        usage_type: UsageType::Generic,
        ui_locales: body.locale,
        payload,
    };
    // Inside the server's request timeout, so a silent server is a connector error, not a 503.
    let sent = tokio::time::timeout(TEST_DEADLINE, sender.send(&body.config, &mail))
        .await
        .unwrap_or_else(|_| {
            Err(crate::connectors::SendError::transient(format!(
                "no answer from the server within {} s",
                TEST_DEADLINE.as_secs()
            )))
        });
    match sent {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) if error.template_not_found => Err(ApiError::template_not_found()),
        Err(error) => Err(ApiError::connector_general(&error.reason)),
    }
}
