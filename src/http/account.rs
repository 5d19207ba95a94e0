//! A minimal Account API (`/api/my-account`, where Logto serves its own): people read their
//! own profile and write their own custom data, authenticated by an opaque access token from
//! our token endpoint (the userinfo token, as Logto's Account API takes it).
//!
//! Custom data is where applications keep things like a person's plan or role, so users may
//! write only the keys the tenant's custom data policy declares user-writable
//! (`/api/configs/custom-data-policy`), each value checked against its key's JSON Schema. Any
//! other key, `role` included, is refused with 403 and the attempt is recorded (who, which
//! keys, from where), so it shows in `/api/logs` and the user's history. The decision is the
//! user aggregate's (`UserCommand::MergeOwnCustomData`), not this handler's.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, patch};
use domain::Actor;
use domain::user::{User, UserCommand, UserEvent};
use projections::grants::TokenRow;
use projections::users::UserRow;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::http::management::custom_data_policy::compile;
use crate::http::management::users::UserResponse;
use crate::http::oidc::tokens::live_access_token;

/// Outside the Management API's authentication: the end user's access token is the credential.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/my-account", get(my_account))
        .route("/api/my-account/custom-data", patch(merge_custom_data))
}

pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth.unauthorized",
        "Unauthorized. Please check credentials and its scope.",
    )
}

/// The user whose live opaque access token the request bears.
pub(crate) async fn account_holder(
    state: &AppState,
    context: &RequestContext,
    headers: &HeaderMap,
) -> Result<UserRow, ApiError> {
    Ok(account_token(state, context, headers).await?.1)
}

/// The live opaque access token the request bears (its scopes decide what it may change), with
/// its user.
pub(crate) async fn account_token(
    state: &AppState,
    context: &RequestContext,
    headers: &HeaderMap,
) -> Result<(TokenRow, UserRow), ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.authorization_header_missing",
                "Authorization header is missing.",
            )
        })?
        .to_str()
        .map_err(|_| unauthorized())?;
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.authorization_token_type_not_supported",
                "Authorization type is not supported.",
            )
            .with_data(json!({ "supportedTypes": ["Bearer"] }))
        })?
        .trim();
    let db = state.store.pool().get().await?;
    live_access_token(state, &db, token, context.now_ms())
        .await?
        .ok_or_else(unauthorized)
}

/// `GET /api/my-account`: the caller's own user object, custom data included.
async fn my_account(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    Ok(axum::Json(UserResponse::from_row(user, false)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomDataBody {
    custom_data: Map<String, Value>,
}

/// 400 naming the first value of `changes` its key's schema refuses, if any.
fn check_values(
    policy: &domain::custom_data_policy::Policy,
    changes: &Map<String, Value>,
) -> Result<(), ApiError> {
    for (key, value) in changes {
        let Some(schema) = policy
            .user_writable
            .get(key)
            .and_then(|p| p.schema.as_ref())
        else {
            continue;
        };
        // The schema compiled when the policy was set; failing now is the server's fault.
        let validator = compile(key, schema).map_err(|error| {
            tracing::error!(key, details = ?error.details, "stored custom data schema does not compile");
            ApiError::internal()
        })?;
        if let Err(error) = validator.validate(value) {
            let reason = error.to_string();
            return Err(ApiError::invalid_input(
                "body",
                format!("Error in key path \"customData.{key}\": {reason}"),
            )
            .with_data(json!({ "key": key, "reason": reason })));
        }
    }
    Ok(())
}

/// `PATCH /api/my-account/custom-data`: shallow-merges `customData` into the caller's own, for
/// user-writable keys only; answers the merged custom data.
async fn merge_custom_data(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<CustomDataBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    let policy = {
        let db = state.store.pool().get().await?;
        projections::custom_data_policy::current(&db).await?
    };
    let writable: BTreeSet<String> = policy.user_writable.keys().cloned().collect();
    // A change naming a read-only key is refused (and recorded) below whatever its values; only
    // a change the user may make is worth checking against the schemas.
    if body.custom_data.keys().all(|key| writable.contains(key)) {
        check_values(&policy, &body.custom_data)?;
    }
    let committed = state
        .store
        .execute::<User>(
            &user.id,
            UserCommand::MergeOwnCustomData {
                custom_data: body.custom_data,
                writable,
            },
            &context.metadata(Actor::User(user.id.clone())),
        )
        .await?;
    for event in &committed.events {
        if let Ok(UserEvent::CustomDataChangeRefused { keys, .. }) =
            domain::decode::<UserEvent>(&event.event_type, &event.payload)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "user.custom_data_key_not_writable",
                format!(
                    "You may not change these custom data keys: {}. Only an administrator can.",
                    keys.join(", ")
                ),
            )
            .with_data(json!({ "keys": keys })));
        }
    }
    let db = state.store.pool().get().await?;
    let user = projections::users::by_id(&db, &user.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(user.custom_data))
}
