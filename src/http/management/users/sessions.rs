//! A user's browser sessions and application grants: list, inspect, end, revoke. Suspending or
//! deleting a user ends all of them in the same unit of work.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use deadpool_postgres::GenericClient;
use domain::grant::{Grant, GrantCommand};
use domain::session::{Session, SessionCommand};
use projections::grants::GrantRow;
use projections::sessions::SessionRow;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::find;
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(get_session, end_session))
        .routes(routes!(list_grants))
        .routes(routes!(revoke_grant))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// The session's id (a keyed hash of its cookie; the cookie itself is never stored).
    pub id: String,
    pub user_id: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// Applications authorized from this session.
    #[schema(value_type = Vec<String>)]
    pub application_ids: Value,
}

impl From<SessionRow> for SessionResponse {
    fn from(row: SessionRow) -> SessionResponse {
        SessionResponse {
            id: row.id,
            user_id: row.user_id,
            auth_time: row.auth_time,
            created_at: row.created_at,
            expires_at: row.expires_at,
            application_ids: row.clients,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantResponse {
    pub id: String,
    pub application_id: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Value,
    #[schema(value_type = Vec<String>)]
    pub resources: Value,
    pub auth_time: i64,
    pub created_at: i64,
}

impl From<GrantRow> for GrantResponse {
    fn from(row: GrantRow) -> GrantResponse {
        GrantResponse {
            id: row.id,
            application_id: row.client_id,
            scopes: row.scopes,
            resources: row.resources,
            auth_time: row.auth_time,
            created_at: row.created_at,
        }
    }
}

/// Adds to `unit` the end of every live session and the revocation of every live grant of
/// the user: what suspension and deletion must take with them.
pub async fn sign_out_everywhere(
    db: &impl GenericClient,
    unit: Unit,
    user_id: &str,
    now: i64,
    reason: &str,
) -> Result<Unit, ApiError> {
    let mut unit = unit;
    for session in projections::sessions::active_of_user(db, user_id, now).await? {
        unit = unit.then::<Session>(
            &session.id,
            SessionCommand::End {
                reason: reason.to_owned(),
            },
        );
    }
    for grant in projections::grants::active_of_user(db, user_id).await? {
        unit = unit.then::<Grant>(
            &grant.id,
            GrantCommand::Revoke {
                reason: reason.to_owned(),
            },
        );
    }
    Ok(unit)
}

/// The user's open sessions, newest first.
#[utoipa::path(get, path = "/api/users/{id}/sessions", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Vec<SessionResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_sessions(
    State(state): State<AppState>,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<SessionResponse>>, ApiError> {
    find(&state, &id).await?;
    let db = state.store.pool().get().await?;
    let sessions = projections::sessions::active_of_user(&db, &id, context.now_ms()).await?;
    Ok(axum::Json(sessions.into_iter().map(Into::into).collect()))
}

async fn session_of(
    state: &AppState,
    user_id: &str,
    session_id: &str,
) -> Result<SessionRow, ApiError> {
    let db = state.store.pool().get().await?;
    projections::sessions::by_id(&db, session_id)
        .await?
        .filter(|s| s.user_id == user_id && s.ended_at.is_none())
        .ok_or_else(ApiError::not_found)
}

/// One open session of the user.
#[utoipa::path(get, path = "/api/users/{id}/sessions/{session_id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("session_id" = String, Path, description = "Session id.")),
    responses((status = 200, body = SessionResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_session(
    State(state): State<AppState>,
    Path((id, session_id)): Path<(String, String)>,
) -> Result<axum::Json<SessionResponse>, ApiError> {
    Ok(axum::Json(
        session_of(&state, &id, &session_id).await?.into(),
    ))
}

/// End a session (signs that browser out) and revoke the grants it gave.
#[utoipa::path(delete, path = "/api/users/{id}/sessions/{session_id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("session_id" = String, Path, description = "Session id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    session_of(&state, &id, &session_id).await?;
    let grants = {
        let db = state.store.pool().get().await?;
        projections::grants::active_of_session(&db, &session_id).await?
    };
    let mut unit = Unit::new().then::<Session>(
        &session_id,
        SessionCommand::End {
            reason: "ended by an administrator".into(),
        },
    );
    for grant in grants {
        unit = unit.then::<Grant>(
            &grant.id,
            GrantCommand::Revoke {
                reason: "session ended by an administrator".into(),
            },
        );
    }
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The applications the user has authorized (grants not revoked), newest first.
#[utoipa::path(get, path = "/api/users/{id}/grants", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Vec<GrantResponse>), (status = 404)),
    security(("bearer" = [])))]
async fn list_grants(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<GrantResponse>>, ApiError> {
    find(&state, &id).await?;
    let db = state.store.pool().get().await?;
    let grants = projections::grants::active_of_user(&db, &id).await?;
    Ok(axum::Json(grants.into_iter().map(Into::into).collect()))
}

/// Revoke a grant: every token issued under it stops working.
#[utoipa::path(delete, path = "/api/users/{id}/grants/{grant_id}", tag = "Users",
    params(("id" = String, Path, description = "User id."),
           ("grant_id" = String, Path, description = "Grant id.")),
    responses((status = 204), (status = 404)),
    security(("bearer" = [])))]
async fn revoke_grant(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, grant_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let grant = {
        let db = state.store.pool().get().await?;
        projections::grants::by_id(&db, &grant_id).await?
    };
    if !grant.is_some_and(|g| g.user_id == id && g.revoked_at.is_none()) {
        return Err(ApiError::not_found());
    }
    state
        .store
        .execute::<Grant>(
            &grant_id,
            GrantCommand::Revoke {
                reason: "revoked by an administrator".into(),
            },
            &context.metadata(caller.actor),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
