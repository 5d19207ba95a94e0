//! A user's upstream identities (`identities.<target> = {userId, details}`): view, link by an
//! admin, remove.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::user::{User, UserCommand};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{UserResponse, execute, find};
use crate::app::AppState;
use crate::connectors::social::{self, SocialSession};
use crate::connectors::token_vault;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_identity, put_identity, delete_identity))
        .routes(routes!(link_identity))
        .routes(routes!(all_identities))
        .routes(routes!(get_sso_identity))
}

fn not_linked() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user.identity_not_exist",
        "The social identity has not been registered yet.",
    )
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityResponse {
    #[schema(value_type = Object)]
    pub identity: Value,
    /// Only with `includeTokenSecret`, when the connector stores tokens: the stored token
    /// set without its tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub token_secret: Option<Value>,
}

/// One upstream identity of the user.
#[utoipa::path(get, path = "/api/users/{id}/identities/{target}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("target" = String, Path, description = "Connector target, e.g. github."),
           ("includeTokenSecret" = Option<bool>, Query, description = "Add the stored upstream token set, desensitized.")),
    responses((status = 200, body = IdentityResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_identity(
    State(state): State<AppState>,
    query: QueryPairs,
    Path((id, target)): Path<(String, String)>,
) -> Result<axum::Json<IdentityResponse>, ApiError> {
    let user = find(&state, &id).await?;
    let identity = user
        .identities
        .get(&target)
        .cloned()
        .ok_or_else(not_linked)?;
    let token_secret = if query.truthy("includeTokenSecret") {
        let db = state.store.pool().get().await?;
        projections::token_sets::of_user_and_target(&db, &id, &target)
            .await?
            .map(|row| token_vault::desensitized(&row))
    } else {
        None
    };
    Ok(axum::Json(IdentityResponse {
        identity,
        token_secret,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBody {
    /// The user's id at the identity provider.
    pub user_id: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Map<String, Value>>,
}

/// Link (or replace) an upstream identity; 201 when the target is new, 200 when replaced.
/// Answers the whole identities map.
#[utoipa::path(put, path = "/api/users/{id}/identities/{target}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("target" = String, Path, description = "Connector target.")),
    request_body = IdentityBody,
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn put_identity(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, target)): Path<(String, String)>,
    Json(body): Json<IdentityBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    if body.user_id.is_empty() {
        return Err(ApiError::invalid_input(
            "body",
            "Error in key path \"userId\": must not be empty",
        ));
    }
    let existed = find(&state, &id).await?.identities.get(&target).is_some();
    execute(
        &state,
        &caller,
        &context,
        &id,
        UserCommand::LinkIdentity {
            target,
            user_id: body.user_id,
            details: body.details.map(Value::Object),
        },
    )
    .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(find(&state, &id).await?.identities)))
}

/// Remove an upstream identity (and its stored tokens); answers the user.
#[utoipa::path(delete, path = "/api/users/{id}/identities/{target}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("target" = String, Path, description = "Connector target.")),
    responses((status = 200, body = UserResponse), (status = 404)),
    security(("bearer" = [])))]
async fn delete_identity(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, target)): Path<(String, String)>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    find(&state, &id).await?;
    // Unlike the Account API, Logto lets an administrator remove even the last way in: the
    // Console warns (the seed's advice), the API does not refuse.
    state
        .store
        .run(
            token_vault::unlink(&id, &target),
            &context.metadata(caller.actor),
        )
        .await?;
    super::respond(&state, &id).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkBody {
    /// The social connector's id.
    pub connector_id: String,
    /// What the provider returned (`code`, `redirectUri`; `state`, `nonce` and `codeVerifier`
    /// when the authorization request had them).
    #[schema(value_type = Object)]
    pub connector_data: Map<String, Value>,
}

/// Link an identity by running the social connector on what the provider returned; answers
/// the whole identities map.
#[utoipa::path(post, path = "/api/users/{id}/identities", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    request_body = LinkBody,
    responses((status = 200, body = Object), (status = 401), (status = 404), (status = 422)),
    security(("bearer" = [])))]
async fn link_identity(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    Json(body): Json<LinkBody>,
) -> Result<axum::Json<Value>, ApiError> {
    find(&state, &id).await?;
    let connector = social::connector(&state.store, &body.connector_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "session.invalid_connector_id",
                "Unable to find available connector with the given id.",
            )
        })?;
    let text = |key: &str| {
        body.connector_data
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // The administrator holds what the browser's trip would have kept: the checks it names
    // are made, those it does not are not.
    let session = SocialSession {
        connector_id: body.connector_id.clone(),
        state: text("state"),
        nonce: text("nonce"),
        redirect_uri: text("redirectUri"),
        code_verifier: Some(text("codeVerifier")).filter(|v| !v.is_empty()),
    };
    let (social_user, tokens) = connector
        .social
        .user_info(
            &connector.config,
            &session,
            &body.connector_data,
            context.now_ms(),
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, connector_id = %body.connector_id, "identity not linked");
            ApiError::from(error)
        })?;
    let owner = {
        let db = state.store.pool().get().await?;
        projections::users::identity_owner(&db, &connector.target, &social_user.id).await?
    };
    if owner.is_some_and(|owner| owner != id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.identity_already_in_use",
            "The social identity has been linked to an existing account.",
        ));
    }
    let mut unit = Unit::new().then::<User>(
        id.clone(),
        UserCommand::LinkIdentity {
            target: connector.target.clone(),
            user_id: social_user.id.clone(),
            details: Some(social_user.details()),
        },
    );
    if connector.row.enable_token_storage {
        unit = token_vault::store(unit, &id, &connector.target, &connector.row.id, &tokens)
            .map_err(|_| ApiError::internal())?;
    }
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok(axum::Json(find(&state, &id).await?.identities))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllIdentities {
    #[schema(value_type = Vec<Object>)]
    pub social_identities: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub sso_identities: Vec<Value>,
}

/// Every identity of the user, social and enterprise SSO; with `includeTokenSecret`, each
/// social identity's stored token set, desensitized.
#[utoipa::path(get, path = "/api/users/{id}/all-identities", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("includeTokenSecret" = Option<bool>, Query, description = "Add the stored upstream token sets, desensitized.")),
    responses((status = 200, body = AllIdentities), (status = 404)),
    security(("bearer" = [])))]
async fn all_identities(
    State(state): State<AppState>,
    query: QueryPairs,
    Path(id): Path<String>,
) -> Result<axum::Json<AllIdentities>, ApiError> {
    let user = find(&state, &id).await?;
    let token_sets = if query.truthy("includeTokenSecret") {
        let db = state.store.pool().get().await?;
        projections::token_sets::of_user(&db, &id).await?
    } else {
        Vec::new()
    };
    let social_identities = user
        .identities
        .as_object()
        .map(|identities| {
            identities
                .iter()
                .map(|(target, identity)| {
                    let mut entry = json!({ "target": target, "identity": identity });
                    if let Some(row) = token_sets.iter().find(|row| row.target == *target) {
                        entry["tokenSecret"] = token_vault::desensitized(row);
                    }
                    entry
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(axum::Json(AllIdentities {
        social_identities,
        sso_identities: Vec::new(),
    }))
}

/// An enterprise SSO identity (read-only).
#[utoipa::path(get, path = "/api/users/{id}/sso-identities/{sso_connector_id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("sso_connector_id" = String, Path, description = "SSO connector id.")),
    responses((status = 404)),
    security(("bearer" = [])))]
async fn get_sso_identity(
    State(state): State<AppState>,
    Path((id, _connector)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    find(&state, &id).await?;
    // Enterprise SSO connectors are not part of idledger, so no user has such an identity.
    Err(ApiError::not_found())
}
