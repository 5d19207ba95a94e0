//! `/api/audit/checkpoints` (idledger): signed checkpoints of the log's hash chain. Recording one
//! on demand pins the chain's current head, so any later rewrite of the log (even one that
//! recomputes every hash) fails `replay verify`; the server also records one periodically
//! (`IDLEDGER_CHECKPOINT_INTERVAL`). Who asked is recorded with the checkpoint.

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::{self, Checkpoint};
use crate::http::auth::Caller;
use crate::http::error::ApiError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(record_checkpoint, list_checkpoints))
}

/// How many checkpoints the list shows, newest first.
const LISTED: i64 = 100;

/// A signed statement "the chain's head hash was `hash` at `position`".
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointResponse {
    pub position: i64,
    /// SHA-256 chain hash of the event at `position`, hex.
    pub hash: String,
    /// The Ed25519 key that signed (`replay verify` checks it).
    pub key_id: String,
    /// Ed25519 signature, base64.
    pub signature: String,
    /// `schedule`, `replay`, or the Management API caller as `<kind>:<id>`.
    pub recorded_by: String,
    /// Milliseconds since the epoch.
    pub recorded_at: i64,
}

impl From<Checkpoint> for CheckpointResponse {
    fn from(checkpoint: Checkpoint) -> CheckpointResponse {
        CheckpointResponse {
            position: checkpoint.position,
            hash: checkpoint.hash.iter().map(|b| format!("{b:02x}")).collect(),
            key_id: checkpoint.key_id,
            signature: STANDARD.encode(&checkpoint.signature),
            recorded_by: checkpoint.recorded_by,
            recorded_at: domain::unix_ms(checkpoint.recorded_at),
        }
    }
}

/// Signs the chain's current head: 201 with a new checkpoint, or 200 with the existing one when
/// the head was already signed.
#[utoipa::path(post, path = "/api/audit/checkpoints", tag = "Audit",
    responses((status = 201, body = CheckpointResponse), (status = 200, body = CheckpointResponse),
        (status = 409, description = "The log has no chained event yet.")),
    security(("bearer" = [])))]
async fn record_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, axum::Json<CheckpointResponse>), ApiError> {
    let recorded_by = match caller.actor.id() {
        Some(id) => format!("{}:{id}", caller.actor.kind()),
        None => caller.actor.kind().to_owned(),
    };
    let (checkpoint, created) =
        audit::record(state.store.pool(), state.store.keyring(), &recorded_by).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(checkpoint.into())))
}

/// The latest checkpoints, newest first.
#[utoipa::path(get, path = "/api/audit/checkpoints", tag = "Audit",
    responses((status = 200, body = Vec<CheckpointResponse>)),
    security(("bearer" = [])))]
async fn list_checkpoints(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<CheckpointResponse>>, ApiError> {
    let db = state.store.pool().get().await?;
    let checkpoints = audit::list(&**db, LISTED).await?;
    Ok(axum::Json(
        checkpoints.into_iter().map(Into::into).collect(),
    ))
}
