//! `/api/hooks` (logto-compat §10): webhooks, their signing keys (sealed in the vault, shown as
//! Logto shows them), a test delivery, and the recent delivery attempts. Deliveries themselves
//! are made from the log by the webhook follower (`crate::webhooks`).

pub mod payload;
mod payload_data;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use domain::hook::{Hook, HookCommand, HookConfig, HookPatch, NewHook};
use domain::patch::Patch;
use projections::hooks::HookRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::listing::{self, Listing, Paging};
use super::logs::LogResponse;
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;
use crate::webhooks::{self, Sent};

/// `executionStats` and `recent-logs` look back this far (Logto: one day).
const RECENT_MS: i64 = 24 * 60 * 60 * 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hooks, create_hook))
        .routes(routes!(get_hook, update_hook, delete_hook))
        .routes(routes!(rotate_signing_key))
        .routes(routes!(test_hook))
        .routes(routes!(recent_logs))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStats {
    pub request_count: i64,
    pub success_count: i64,
}

/// Logto's hook object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub name: String,
    pub event: Option<String>,
    pub events: Vec<String>,
    #[schema(value_type = Object)]
    pub config: Value,
    pub signing_key: String,
    pub enabled: bool,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_stats: Option<ExecutionStats>,
}

async fn respond(
    state: &AppState,
    row: HookRow,
    with_stats: bool,
    now: i64,
) -> Result<HookResponse, ApiError> {
    let signing_key = webhooks::signing_key(&state.store, &row).await?;
    let execution_stats = if with_stats {
        let db = state.store.pool().get().await?;
        let stats = projections::logs::hook_stats(&db, &row.id, now - RECENT_MS).await?;
        Some(ExecutionStats {
            request_count: stats.request_count,
            success_count: stats.success_count,
        })
    } else {
        None
    };
    Ok(HookResponse {
        tenant_id: "default",
        events: serde_json::from_value(row.events).unwrap_or_default(),
        id: row.id,
        name: row.name,
        event: row.event,
        config: row.config,
        signing_key,
        enabled: row.enabled,
        created_at: row.created_at,
        execution_stats,
    })
}

async fn find(state: &AppState, id: &str) -> Result<HookRow, ApiError> {
    let db = state.store.pool().get().await?;
    projections::hooks::by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_exists_with_id("hook", id))
}

fn invalid(key: &str, reason: &str) -> ApiError {
    ApiError::invalid_input("body", format!("Error in key path \"{key}\": {reason}"))
}

/// Logto's `hookEventGuard`; `events` must also be non-empty, and is deduplicated.
fn check_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(invalid(
            "events",
            "Array must contain at least 1 element(s)",
        ));
    }
    let mut unique = Vec::with_capacity(events.len());
    for event in events {
        check_event(&event, "events")?;
        if !unique.contains(&event) {
            unique.push(event);
        }
    }
    Ok(unique)
}

fn check_event(event: &str, key: &str) -> Result<(), ApiError> {
    if payload::EVENTS.contains(&event) {
        Ok(())
    } else {
        Err(invalid(key, "Invalid enum value"))
    }
}

fn check_config(config: &HookConfig) -> Result<(), ApiError> {
    if url::Url::parse(&config.url).is_err() {
        return Err(invalid("config.url", "Invalid url"));
    }
    if config.retries.is_some_and(|r| r > 3) {
        return Err(invalid(
            "config.retries",
            "Number must be less than or equal to 3",
        ));
    }
    Ok(())
}

/// List hooks; optional pagination.
#[utoipa::path(get, path = "/api/hooks", tag = "Hooks",
    params(("includeExecutionStats" = Option<bool>, Query, description = "Add executionStats (last 24 h)."),
           ("page" = Option<i64>, Query, description = "1-based page."),
           ("page_size" = Option<i64>, Query, description = "Page size (at most 100).")),
    responses((status = 200, body = Vec<HookResponse>)),
    security(("bearer" = [])))]
async fn list_hooks(
    State(state): State<AppState>,
    context: RequestContext,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<HookResponse>, ApiError> {
    let page = listing::page(&query, true)?;
    let with_stats = query.get("includeExecutionStats").is_some();
    let all = {
        let db = state.store.pool().get().await?;
        projections::hooks::all(&db).await?
    };
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let shown: Vec<HookRow> = match &page {
        Some(page) => all
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(usize::try_from(page.size).unwrap_or(0))
            .collect(),
        None => all,
    };
    let mut rows = Vec::with_capacity(shown.len());
    for row in shown {
        rows.push(respond(&state, row, with_stats, context.now_ms()).await?);
    }
    Ok(Listing {
        rows,
        paging: page.map(|page| Paging::new(&state, &uri, &query, page, total)),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateHook {
    pub name: String,
    /// Logto's legacy single event.
    pub event: Option<String>,
    pub events: Option<Vec<String>>,
    #[schema(value_type = Object)]
    pub config: HookConfig,
    pub enabled: Option<bool>,
}

/// Create a hook; its signing key is generated.
#[utoipa::path(post, path = "/api/hooks", tag = "Hooks",
    request_body = CreateHook,
    responses((status = 201, body = HookResponse), (status = 400)),
    security(("bearer" = [])))]
async fn create_hook(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateHook>,
) -> Result<(StatusCode, axum::Json<HookResponse>), ApiError> {
    if body.name.is_empty() || body.name.chars().count() > 256 {
        return Err(invalid("name", "must be 1 to 256 characters"));
    }
    let events = body.events.map(check_events).transpose()?;
    if let Some(event) = &body.event {
        check_event(event, "event")?;
    }
    if events.is_none() && body.event.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "hook.missing_events",
            "You need to provide at least one event.",
        ));
    }
    check_config(&body.config)?;
    let id = ids::standard_id().map_err(|_| ApiError::internal())?;
    let signing_key = ids::secret().map_err(|_| ApiError::internal())?;
    let signing_key_ref = format!("hook-signing-key-{id}");
    let unit = Unit::new()
        .seal(signing_key_ref.clone(), signing_key.into_bytes())
        .then::<Hook>(
            &id,
            HookCommand::Create(NewHook {
                id: id.clone(),
                name: body.name,
                event: body.event,
                events: events.unwrap_or_default(),
                config: body.config,
                enabled: body.enabled.unwrap_or(true),
                signing_key_ref,
            }),
        );
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    let row = find(&state, &id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(respond(&state, row, false, context.now_ms()).await?),
    ))
}

/// Get a hook.
#[utoipa::path(get, path = "/api/hooks/{id}", tag = "Hooks",
    params(("id" = String, Path, description = "Hook id."),
           ("includeExecutionStats" = Option<bool>, Query, description = "Add executionStats (last 24 h).")),
    responses((status = 200, body = HookResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_hook(
    State(state): State<AppState>,
    context: RequestContext,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<HookResponse>, ApiError> {
    let row = find(&state, &id).await?;
    let with_stats = query.get("includeExecutionStats").is_some();
    Ok(axum::Json(
        respond(&state, row, with_stats, context.now_ms()).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateHook {
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub event: Patch<String>,
    pub events: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<HookConfig>,
    pub enabled: Option<bool>,
}

/// Update a hook: the given fields replace the old ones.
#[utoipa::path(patch, path = "/api/hooks/{id}", tag = "Hooks",
    params(("id" = String, Path, description = "Hook id.")),
    request_body = UpdateHook,
    responses((status = 200, body = HookResponse), (status = 404)),
    security(("bearer" = [])))]
async fn update_hook(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<UpdateHook>,
) -> Result<axum::Json<HookResponse>, ApiError> {
    let events = body.events.map(check_events).transpose()?;
    if let Patch::Value(event) = &body.event {
        check_event(event, "event")?;
    }
    if let Some(config) = &body.config {
        check_config(config)?;
    }
    find(&state, &id).await?;
    state
        .store
        .execute::<Hook>(
            &id,
            HookCommand::Update(HookPatch {
                name: body.name,
                event: body.event,
                events,
                config: body.config,
                enabled: body.enabled,
            }),
            &context.metadata(caller.actor),
        )
        .await?;
    let row = find(&state, &id).await?;
    Ok(axum::Json(
        respond(&state, row, false, context.now_ms()).await?,
    ))
}

/// Replace a hook's signing key.
#[utoipa::path(patch, path = "/api/hooks/{id}/signing-key", tag = "Hooks",
    params(("id" = String, Path, description = "Hook id.")),
    responses((status = 200, body = HookResponse), (status = 404)),
    security(("bearer" = [])))]
async fn rotate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<axum::Json<HookResponse>, ApiError> {
    find(&state, &id).await?;
    let signing_key = ids::secret().map_err(|_| ApiError::internal())?;
    let vault_ref = format!(
        "hook-signing-key-{id}-{}",
        ids::standard_id().map_err(|_| ApiError::internal())?
    );
    let unit = Unit::new()
        .seal(vault_ref.clone(), signing_key.into_bytes())
        .then::<Hook>(&id, HookCommand::RotateSigningKey { vault_ref });
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    let row = find(&state, &id).await?;
    Ok(axum::Json(
        respond(&state, row, false, context.now_ms()).await?,
    ))
}

/// Delete a hook; its signing key goes with it.
#[utoipa::path(delete, path = "/api/hooks/{id}", tag = "Hooks",
    params(("id" = String, Path, description = "Hook id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_hook(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    find(&state, &id).await?;
    state
        .store
        .execute::<Hook>(&id, HookCommand::Delete, &context.metadata(caller.actor))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TestHook {
    pub events: Vec<String>,
    #[schema(value_type = Object)]
    pub config: HookConfig,
}

/// Logto's `generateHookTestPayload`.
fn test_payload(hook_id: &str, event: &str, now: OffsetDateTime) -> Value {
    let at = now.format(&Rfc3339).unwrap_or_default();
    let ms = domain::unix_ms(now);
    let mut payload = json!({"hookId": hook_id, "event": event, "createdAt": at,
                             "userAgent": "fake-user-agent"});
    let interaction = [
        "PostRegister",
        "PostSignIn",
        "PostResetPassword",
        "PostSignInAdaptiveMfaTriggered",
    ]
    .contains(&event);
    let extra = if interaction {
        json!({
            "sessionId": "fake-session-id", "userIp": "fake-user-ip", "userId": "fake-id",
            "user": {"id": "fake-id", "username": "fake-user",
                     "primaryEmail": "fake-user@fake-service.com", "primaryPhone": "1234567890",
                     "name": "Fake User", "avatar": "https://fake-service.com/avatars/fake-user.png",
                     "customData": {"theme": "light"},
                     "identities": {"google": {"userId": "fake-google-user-id"}},
                     "profile": {}, "applicationId": "fake-application-id", "cimdClientId": null,
                     "isSuspended": false, "lastSignInAt": ms, "createdAt": ms, "updatedAt": ms},
            "application": {"id": "fake-spa-application-id", "type": "SPA",
                            "name": "Fake Application",
                            "description": "Fake application data for testing"},
        })
    } else {
        json!({"path": "/fake-path/:id", "method": "POST", "status": 200,
               "params": {"id": "fake-id"}, "data": {"result": "success"}})
    };
    if let (Value::Object(payload), Value::Object(extra)) = (&mut payload, extra) {
        payload.extend(extra);
    }
    payload
}

/// Send a test payload of each event to `config` (with the hook's signing key).
#[utoipa::path(post, path = "/api/hooks/{id}/test", tag = "Hooks",
    params(("id" = String, Path, description = "Hook id.")),
    request_body = TestHook,
    responses((status = 204), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn test_hook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<TestHook>,
) -> Result<StatusCode, ApiError> {
    let events = check_events(body.events)?;
    check_config(&body.config)?;
    let row = find(&state, &id).await?;
    let key = webhooks::signing_key(&state.store, &row).await?;
    let client = webhooks::client().map_err(|error| {
        tracing::error!(%error, "no HTTP client");
        ApiError::internal()
    })?;
    let config = json!(body.config);
    for event in events {
        let payload = test_payload(&id, &event, OffsetDateTime::now_utc());
        let bytes = serde_json::to_vec(&payload).map_err(|_| ApiError::internal())?;
        match webhooks::send(&client, &config, &key, &bytes).await {
            Sent::Answered { status, .. } if (200..300).contains(&status) => {}
            Sent::Answered { status, body } => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hook.endpoint_responded_with_error",
                    "The endpoint responded with an error.",
                )
                .with_data(json!({"responseStatus": status, "responseBody": body})));
            }
            Sent::Failed(reason) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hook.send_test_payload_failed",
                    format!("Failed to send test payload: {reason}"),
                ));
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The hook's delivery attempts of the last 24 hours (`TriggerHook.*` log entries), newest
/// first.
#[utoipa::path(get, path = "/api/hooks/{id}/recent-logs", tag = "Hooks",
    params(("id" = String, Path, description = "Hook id."),
           ("logKey" = Option<String>, Query, description = "Only this key, e.g. TriggerHook.PostSignIn."),
           ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
           ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100).")),
    responses((status = 200, body = Vec<LogResponse>)),
    security(("bearer" = [])))]
async fn recent_logs(
    State(state): State<AppState>,
    context: RequestContext,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Listing<LogResponse>, ApiError> {
    let page = listing::required_page(&query)?;
    let db = state.store.pool().get().await?;
    let (rows, total) = projections::logs::recent_hook_logs(
        &db,
        &id,
        context.now_ms() - RECENT_MS,
        query.get("logKey"),
        page.window(),
    )
    .await?;
    Ok(Listing {
        rows: rows.into_iter().map(Into::into).collect(),
        paging: Some(Paging::new(&state, &uri, &query, page, total)),
    })
}
