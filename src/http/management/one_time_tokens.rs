//! `/api/one-time-tokens` (logto-compat §4): magic-link tokens bound to an email, usable once.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use domain::interaction::InteractionEvent;
use domain::one_time_token::{
    Device, NewToken, OneTimeToken, OneTimeTokenCommand, OneTimeTokenError, OneTimeTokenEvent,
    Status,
};
use projections::one_time_tokens::{self, OneTimeTokenRow, TokenFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::listing::{self, Listing, Page, Paging};
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::{StoreError, Unit};

/// Keyed-hash domain of one-time token values.
pub const TOKEN_HASH_KIND: &str = "one_time_token";
const DEFAULT_EXPIRES_IN_S: i64 = 600;
/// Tokens one email may be sent per window: enough for retries, too few to flood an inbox.
const CREATIONS_PER_EMAIL: u32 = 5;
const CREATION_WINDOW_S: i64 = 600;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(verify_token))
        .routes(routes!(get_token, delete_token))
        .routes(routes!(set_status))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeTokenResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub email: String,
    /// The token itself, shown on every read as Logto does (sealed at rest).
    pub token: String,
    #[schema(value_type = Object)]
    pub context: Value,
    /// `active`, `consumed`, `revoked` or `expired` (an active token past its expiry reads as
    /// expired).
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
}

async fn respond(
    state: &AppState,
    row: OneTimeTokenRow,
    now: i64,
) -> Result<OneTimeTokenResponse, ApiError> {
    let token = state
        .store
        .open_vault(&row.vault_ref)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            tracing::error!(vault_ref = %row.vault_ref, "one-time token missing from the vault");
            ApiError::internal()
        })?;
    let status = if row.status == "active" && row.expires_at <= now {
        "expired".to_owned()
    } else {
        row.status
    };
    Ok(OneTimeTokenResponse {
        tenant_id: "default",
        id: row.id,
        email: row.email,
        token,
        context: row.context,
        status,
        created_at: row.created_at,
        expires_at: row.expires_at,
    })
}

async fn find(state: &AppState, id: &str) -> Result<OneTimeTokenRow, ApiError> {
    let db = state.store.pool().get().await?;
    one_time_tokens::by_id(&db, id)
        .await?
        .ok_or_else(|| ApiError::not_exists_with_id("one-time token", id))
}

/// The data subject sealing what is sent to an address (one-time tokens, mail): derived from
/// the address (a keyed hash), so erasing the person who owns it can find and destroy its key.
/// Whoever uses an erased address next gets its next key generation.
pub async fn email_subject(state: &AppState, email: &str) -> Result<String, ApiError> {
    let base = format!(
        "email:{}",
        state
            .store
            .keyring()
            .lookup_hash("email subject", &email.to_lowercase())
    );
    Ok(state.store.current_generation(&base).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenContext {
    pub jit_organization_ids: Option<Vec<String>>,
    /// `SignIn`, `Register` or `ForgotPassword`.
    pub interaction_event: Option<String>,
    /// idledger's extension: only a browser with this IP address and/or user agent (those of
    /// whoever asked for the link) may follow it; the sign-in experience refuses others with
    /// `one_time_token.device_mismatch`.
    pub device_binding: Option<DeviceBindingBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceBindingBody {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The longest user agent a binding keeps (browsers send a few hundred characters).
const MAX_USER_AGENT_CHARS: usize = 1024;

fn device_binding(body: DeviceBindingBody) -> Result<Device, ApiError> {
    let invalid = |details: &str| {
        ApiError::invalid_input(
            "body",
            format!("Error in key path \"context.deviceBinding\": {details}"),
        )
    };
    // Stored in the form the server prints a peer's address, so equal addresses compare equal.
    let ip = body
        .ip
        .map(|ip| {
            ip.trim()
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.to_string())
                .map_err(|_| invalid("ip must be an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let user_agent = body.user_agent.filter(|ua| !ua.is_empty());
    if user_agent
        .as_ref()
        .is_some_and(|ua| ua.chars().count() > MAX_USER_AGENT_CHARS)
    {
        return Err(invalid("userAgent is too long"));
    }
    if ip.is_none() && user_agent.is_none() {
        return Err(invalid("name an ip, a userAgent or both"));
    }
    Ok(Device { ip, user_agent })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenBody {
    pub email: String,
    /// Seconds, at least 1; 600 by default.
    pub expires_in: Option<i64>,
    pub context: Option<TokenContext>,
}

/// The context as stored in the token's event, and its device binding, which is sealed apart.
fn context_value(context: Option<TokenContext>) -> Result<(Value, Option<Device>), ApiError> {
    let mut value = Map::new();
    let Some(context) = context else {
        return Ok((Value::Object(value), None));
    };
    if let Some(ids) = context.jit_organization_ids {
        value.insert("jitOrganizationIds".into(), json!(ids));
    }
    if let Some(event) = context.interaction_event {
        if !matches!(event.as_str(), "SignIn" | "Register" | "ForgotPassword") {
            return Err(ApiError::invalid_input(
                "body",
                "Error in key path \"context.interactionEvent\": expected SignIn, Register or ForgotPassword",
            ));
        }
        value.insert("interactionEvent".into(), json!(event));
    }
    let binding = context.device_binding.map(device_binding).transpose()?;
    Ok((Value::Object(value), binding))
}

/// Create a one-time token for an email.
#[utoipa::path(post, path = "/api/one-time-tokens", tag = "One-time tokens",
    request_body = CreateTokenBody,
    responses((status = 201, body = OneTimeTokenResponse), (status = 400), (status = 429)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateTokenBody>,
) -> Result<(StatusCode, axum::Json<OneTimeTokenResponse>), ApiError> {
    if body.email.is_empty() || body.email.chars().count() > 128 {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"email\": must be 1 to 128 characters",
        ));
    }
    let expires_in = body.expires_in.unwrap_or(DEFAULT_EXPIRES_IN_S);
    if expires_in < 1 {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"expiresIn\": must be at least 1",
        ));
    }
    let (token_context, device_binding) = context_value(body.context)?;
    let now = context.now_ms();
    let rate_key = state
        .store
        .keyring()
        .lookup_hash("one-time token email", &body.email.to_lowercase());
    crate::sentinel::hit(
        state.store.pool(),
        "one-time-token-email",
        &rate_key,
        CREATIONS_PER_EMAIL,
        CREATION_WINDOW_S,
        now,
    )
    .await
    .map_err(ApiError::rate_limited)?;
    let id = ids::standard_id().map_err(|_| ApiError::internal())?;
    let value = ids::secret().map_err(|_| ApiError::internal())?;
    let vault_ref = format!("one-time-token-{id}");
    let stale = {
        let db = state.store.pool().get().await?;
        one_time_tokens::stale_of_email(&db, &body.email, now).await?
    };
    let mut unit = Unit::new().seal(vault_ref.clone(), value.as_bytes().to_vec());
    // Logto marks the email's expired-but-active tokens expired when it creates a new one.
    for old in stale {
        unit = unit.then::<OneTimeToken>(
            &old.id,
            OneTimeTokenCommand::SetStatus {
                status: Status::Expired,
                now,
            },
        );
    }
    unit = unit.then::<OneTimeToken>(
        &id,
        OneTimeTokenCommand::Create(NewToken {
            id: id.clone(),
            subject: email_subject(&state, &body.email).await?,
            email: body.email,
            lookup_hash: state.store.keyring().lookup_hash(TOKEN_HASH_KIND, &value),
            vault_ref,
            expires_at: now + expires_in * 1000,
            context: token_context,
            device_binding,
        }),
    );
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    let row = find(&state, &id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(respond(&state, row, now).await?),
    ))
}

/// List one-time tokens, newest first.
#[utoipa::path(get, path = "/api/one-time-tokens", tag = "One-time tokens",
    params(
        ("email" = Option<String>, Query, description = "Tokens of this email (exact)."),
        ("status" = Option<String>, Query, description = "Stored status: active, consumed, revoked, expired."),
        ("page" = Option<i64>, Query, description = "1-based page; pagination is optional here."),
        ("page_size" = Option<i64>, Query, description = "Page size, at most 100."),
    ),
    responses((status = 200, body = Vec<OneTimeTokenResponse>), (status = 400)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    context: RequestContext,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<OneTimeTokenResponse>, ApiError> {
    let page = listing::page(&query, true)?;
    if let Some(status) = query.get("status")
        && !matches!(status, "active" | "consumed" | "revoked" | "expired")
    {
        return Err(ApiError::invalid_input(
            "query",
            "Error in key path \"status\": expected active, consumed, revoked or expired",
        ));
    }
    let filter = TokenFilter {
        email: query.get("email").map(str::to_owned),
        status: query.get("status").map(str::to_owned),
    };
    let (rows, total) = {
        let db = state.store.pool().get().await?;
        one_time_tokens::list(&db, &filter, page.map(Page::window)).await?
    };
    let mut tokens = Vec::with_capacity(rows.len());
    for row in rows {
        tokens.push(respond(&state, row, context.now_ms()).await?);
    }
    Ok(Listing {
        rows: tokens,
        paging: page.map(|page| Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Get one token.
#[utoipa::path(get, path = "/api/one-time-tokens/{id}", tag = "One-time tokens",
    params(("id" = String, Path, description = "Token id.")),
    responses((status = 200, body = OneTimeTokenResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_token(
    State(state): State<AppState>,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<axum::Json<OneTimeTokenResponse>, ApiError> {
    let row = find(&state, &id).await?;
    Ok(axum::Json(respond(&state, row, context.now_ms()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyBody {
    pub token: String,
    pub email: String,
}

fn expired() -> ApiError {
    domain::Rejection::from(OneTimeTokenError::Expired).into()
}

fn not_found() -> ApiError {
    // Logto's message repeats the token; a secret has no business in an error body.
    ApiError::new(
        StatusCode::NOT_FOUND,
        "one_time_token.token_not_found",
        "Token not found.",
    )
}

/// What the sign-in experience asks of a token beyond the Management API's verify (Logto's
/// step 5, and idledger's device binding).
pub struct Redemption {
    /// The interaction's event, which the token's `context.interactionEvent` must allow.
    pub interaction_event: InteractionEvent,
    /// The browser following the link, which the token's `context.deviceBinding` must allow.
    pub device: Device,
}

/// Runs Logto's verify algorithm (shared with the sign-in experience): exact email, not
/// expired (an expired active token is marked so), not consumed, not revoked; then consumed.
/// Of concurrent verifications of one token exactly one wins: they race on its stream.
///
/// The experience passes a `redemption` and, through `record`, what it records with the
/// consumption (its verification), so both happen in one unit of work or neither does; a
/// token it finds expired is then marked so on its own, without that record.
pub async fn verify(
    state: &AppState,
    context: &RequestContext,
    actor: domain::Actor,
    token: &str,
    email: &str,
    redemption: Option<Redemption>,
    record: impl FnOnce(&OneTimeTokenRow, Unit) -> Unit,
) -> Result<OneTimeTokenRow, ApiError> {
    let row = {
        let db = state.store.pool().get().await?;
        one_time_tokens::by_hash(
            &db,
            &state.store.keyring().lookup_hash(TOKEN_HASH_KIND, token),
        )
        .await?
        .ok_or_else(not_found)?
    };
    let now = context.now_ms();
    let metadata = context.metadata(actor);
    let plain = || OneTimeTokenCommand::Verify {
        email: email.to_owned(),
        now,
    };
    let redeeming = redemption.is_some();
    let command = match redemption {
        None => plain(),
        Some(redemption) => OneTimeTokenCommand::Redeem {
            email: email.to_owned(),
            now,
            interaction_event: redemption.interaction_event,
            device: redemption.device,
        },
    };
    let unit = record(&row, Unit::new().then::<OneTimeToken>(&row.id, command));
    let committed = match state.store.run(unit, &metadata).await {
        Err(StoreError::Rejected(domain::Rejection::OneTimeToken(OneTimeTokenError::Expired)))
            if redeeming =>
        {
            // At the same instant the plain verify reaches the same expiry, and marks it.
            state
                .store
                .execute::<OneTimeToken>(&row.id, plain(), &metadata)
                .await?;
            return Err(expired());
        }
        result => result?,
    };
    let expired_now = committed.events.iter().any(|event| {
        matches!(
            domain::decode::<OneTimeTokenEvent>(&event.event_type, &event.payload),
            Ok(OneTimeTokenEvent::Expired {})
        )
    });
    if expired_now {
        return Err(expired());
    }
    find(state, &row.id).await
}

/// Verify (and consume) a token for an email.
#[utoipa::path(post, path = "/api/one-time-tokens/verify", tag = "One-time tokens",
    request_body = VerifyBody,
    responses((status = 200, body = OneTimeTokenResponse), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn verify_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<VerifyBody>,
) -> Result<axum::Json<OneTimeTokenResponse>, ApiError> {
    let row = verify(
        &state,
        &context,
        caller.actor,
        &body.token,
        &body.email,
        None,
        |_, unit| unit,
    )
    .await?;
    Ok(axum::Json(respond(&state, row, context.now_ms()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusBody {
    /// `consumed`, `revoked` or `expired`; `active` is refused.
    pub status: String,
}

/// Change a token's status (revoke it, typically); it can never become active again.
#[utoipa::path(put, path = "/api/one-time-tokens/{id}/status", tag = "One-time tokens",
    params(("id" = String, Path, description = "Token id.")),
    request_body = StatusBody,
    responses((status = 200, body = OneTimeTokenResponse), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<StatusBody>,
) -> Result<axum::Json<OneTimeTokenResponse>, ApiError> {
    let status = match body.status.as_str() {
        "active" => Status::Active,
        "consumed" => Status::Consumed,
        "revoked" => Status::Revoked,
        "expired" => Status::Expired,
        _ => {
            return Err(ApiError::invalid_input(
                "body",
                "Error in key path \"status\": expected active, consumed, revoked or expired",
            ));
        }
    };
    find(&state, &id).await?;
    let result = state
        .store
        .execute::<OneTimeToken>(
            &id,
            OneTimeTokenCommand::SetStatus {
                status,
                now: context.now_ms(),
            },
            &context.metadata(caller.actor),
        )
        .await;
    result.map_err(|e| ApiError::from(e).about("one-time token", &id))?;
    let row = find(&state, &id).await?;
    Ok(axum::Json(respond(&state, row, context.now_ms()).await?))
}

/// Delete a token; its sealed value is destroyed.
#[utoipa::path(delete, path = "/api/one-time-tokens/{id}", tag = "One-time tokens",
    params(("id" = String, Path, description = "Token id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .execute::<OneTimeToken>(
            &id,
            OneTimeTokenCommand::Delete,
            &context.metadata(caller.actor),
        )
        .await
        .map_err(|e| match e {
            StoreError::Rejected(domain::Rejection::OneTimeToken(OneTimeTokenError::NotFound)) => {
                ApiError::not_found()
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
