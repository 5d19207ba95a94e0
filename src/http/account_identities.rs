//! The Account API's token vault route (logto-compat §6, `enableTokenStorage`):
//! `GET /api/my-account/identities/:target/access-token` hands the signed-in person the
//! provider's access token stored for their identity from `target`, refreshed first with the
//! stored refresh token when it has expired. The refresh is recorded like any change of the
//! set (`token_set.refreshed`), the tokens sealed anew.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use domain::Actor;
use projections::token_sets::{self, TokenSetRow};
use serde::Serialize;

use crate::app::AppState;
use crate::connectors::{social, token_vault};
use crate::http::account::account_holder;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::store::Unit;

/// A token this close to its expiry is refreshed rather than handed out.
const EXPIRY_MARGIN_MS: i64 = 30_000;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/my-account/identities/{target}/access-token",
        get(access_token),
    )
}

#[derive(Serialize)]
struct AccessTokenResponse {
    access_token: String,
    token_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// Seconds since the epoch, as OAuth clients count.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user.token_secret_not_found",
        "No token set is stored for this identity.",
    )
}

async fn access_token(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Path(target): Path<String>,
) -> Result<axum::Json<AccessTokenResponse>, ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    if user.identities.get(&target).is_none() {
        return Err(crate::http::experience::flow::identity_not_exist());
    }
    let row = {
        let db = state.store.pool().get().await?;
        token_sets::of_user_and_target(&db, &user.id, &target)
            .await?
            .ok_or_else(not_found)?
    };
    let tokens = live_tokens(&state, &context, &row).await?;
    Ok(axum::Json(AccessTokenResponse {
        access_token: tokens.access_token,
        token_type: tokens.token_type,
        scope: tokens.scope,
        expires_at: tokens.expires_at.map(|ms| ms / 1000),
    }))
}

/// The stored set, refreshed first when its access token has expired (or is about to).
async fn live_tokens(
    state: &AppState,
    context: &RequestContext,
    row: &TokenSetRow,
) -> Result<social::TokenSet, ApiError> {
    let sealed = state
        .store
        .open_vault(&row.vault_ref)
        .await?
        .ok_or_else(not_found)?;
    let tokens: social::TokenSet = serde_json::from_slice(&sealed).map_err(|error| {
        tracing::error!(%error, "stored token set unreadable");
        ApiError::internal()
    })?;
    let now = context.now_ms();
    let fresh = tokens
        .expires_at
        .is_none_or(|expires_at| expires_at > now + EXPIRY_MARGIN_MS);
    if fresh {
        return Ok(tokens);
    }
    let Some(refresh_token) = tokens.refresh_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "connector.social_access_token_invalid",
            "The stored access token has expired and there is no refresh token to renew it.",
        ));
    };
    let connector = social::connector(&state.store, &row.connector_id)
        .await?
        .ok_or_else(crate::http::experience::flow::invalid_connector)?;
    let refreshed = connector
        .social
        .refresh(&connector.config, refresh_token, now)
        .await
        .map_err(|error| {
            tracing::warn!(%error, target = %row.target, "stored token set not refreshed");
            ApiError::from(error)
        })?;
    let unit = token_vault::refreshed(Unit::new(), row, &refreshed).map_err(|error| {
        tracing::error!(%error, "refreshed token set not sealed");
        ApiError::internal()
    })?;
    state
        .store
        .run(unit, &context.metadata(Actor::User(row.user_id.clone())))
        .await?;
    Ok(refreshed)
}
