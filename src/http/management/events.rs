//! `/api/events` (idledger): the log itself, for integrations that follow it. Events come in
//! position order after a cursor; positions are gapless and become visible in commit order, so
//! a consumer that continues from the last position it got misses nothing. `wait` long-polls.

use std::time::Duration;

use axum::extract::State;
use domain::Actor;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::history::{self, Logged};
use crate::http::error::ApiError;
use crate::http::extract::QueryPairs;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
const MAX_WAIT_SECONDS: i64 = 30;
/// A long poll answers by then even when asked to wait 30 s: every request is cut off at 30 s
/// (`http::REQUEST_TIMEOUT`), and the last second is left for reading the events.
const LONGEST_WAIT: Duration = Duration::from_secs(29);
/// How often a waiting request looks at the head of the log. Every node appends, so a local
/// signal would miss the others' events; the head is one row, and no connection is held in
/// between.
const POLL: Duration = Duration::from_millis(100);
/// Payload fields never sent: a password digest is a secret to crack offline, and nothing
/// downstream needs it (the users API shows it only when asked by name).
const WITHHELD: &[&str] = &["passwordDigest"];

/// Who caused an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActorResponse {
    /// `user`, `app`, `admin`, `system` or `anonymous`.
    pub kind: &'static str,
    pub id: Option<String>,
}

impl From<&Actor> for ActorResponse {
    fn from(actor: &Actor) -> ActorResponse {
        ActorResponse {
            kind: actor.kind(),
            id: actor.id().map(str::to_owned),
        }
    }
}

/// One event of the log with its metadata.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    /// Gapless, commit-ordered; the cursor for `after`.
    pub position: i64,
    pub stream_type: String,
    pub stream_id: String,
    pub sequence: i32,
    /// Stored event type, e.g. `user.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: i32,
    /// The person whose personal data the event carries, if any.
    pub subject_id: Option<String>,
    pub actor: ActorResponse,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// When it happened, in milliseconds since the epoch.
    pub created_at: i64,
    /// The event's data at its current version, personal fields included; a password digest
    /// reads `"[withheld]"`.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// The subject's personal data was erased: its personal fields, IP and user agent are gone.
    pub erased: bool,
}

impl From<Logged> for EventResponse {
    fn from(logged: Logged) -> EventResponse {
        let event = logged.event;
        let mut payload = event.payload.to_value();
        if let Value::Object(fields) = &mut payload {
            for name in WITHHELD {
                if let Some(value) = fields.get_mut(*name)
                    && !value.is_null()
                {
                    *value = Value::String("[withheld]".to_owned());
                }
            }
        }
        EventResponse {
            created_at: domain::unix_ms(event.metadata.occurred_at),
            position: event.position,
            stream_type: event.stream_type,
            stream_id: event.stream_id,
            sequence: event.sequence,
            event_type: event.event_type,
            version: event.event_version,
            subject_id: logged.subject_id,
            actor: ActorResponse::from(&event.metadata.actor),
            ip: event.metadata.ip,
            user_agent: event.metadata.user_agent,
            request_id: event.metadata.request_id,
            payload,
            erased: event.erased,
        }
    }
}

fn number(query: &QueryPairs, key: &str, range: (i64, i64), default: i64) -> Result<i64, ApiError> {
    let Some(text) = query.get(key) else {
        return Ok(default);
    };
    text.parse::<i64>()
        .ok()
        .filter(|n| (range.0..=range.1).contains(n))
        .ok_or_else(|| {
            ApiError::invalid_input(
                "query",
                format!(
                    "Error in key path \"{key}\": expected an integer from {} to {}",
                    range.0, range.1
                ),
            )
        })
}

/// Events after a position, oldest first; optionally waits for the first one.
#[utoipa::path(get, path = "/api/events", tag = "Events",
    params(
        ("after" = Option<i64>, Query, description = "Return events after this position (default 0: from the start). Continue with the last position received."),
        ("limit" = Option<i64>, Query, description = "At most this many events (1 to 1000, default 100)."),
        ("wait" = Option<i64>, Query, description = "Seconds (0 to 30, default 0) to wait for an event after `after` when there is none yet; the answer comes as soon as one is committed, and after 29 s at the latest (then empty)."),
    ),
    responses((status = 200, body = Vec<EventResponse>), (status = 400)),
    security(("bearer" = [])))]
async fn list_events(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<axum::Json<Vec<EventResponse>>, ApiError> {
    let after = number(&query, "after", (0, i64::MAX), 0)?;
    let limit = number(&query, "limit", (1, MAX_LIMIT), DEFAULT_LIMIT)?;
    let wait = number(&query, "wait", (0, MAX_WAIT_SECONDS), 0)?;
    let wait = Duration::from_secs(u64::try_from(wait).unwrap_or(0)).min(LONGEST_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        let db = state.store.pool().get().await?;
        if history::head(&db).await? > after {
            let events = history::after(&db, state.store.keyring(), after, limit).await?;
            return Ok(axum::Json(
                events.into_iter().map(EventResponse::from).collect(),
            ));
        }
        // Idle waiting holds no connection.
        drop(db);
        let now = Instant::now();
        if now >= deadline {
            return Ok(axum::Json(Vec::new()));
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}
