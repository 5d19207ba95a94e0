//! Browser sign-in sessions (`GET /api/users/:id/sessions`, the session cookie's lookup).

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::session::SessionEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rows::{Rows, StreamFold, document, documents, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    /// The keyed hash of the session cookie.
    pub id: String,
    pub user_id: String,
    pub auth_time: i64,
    /// Client ids authorized from this session, in order.
    pub clients: Value,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

static SESSIONS: Rows<SessionRow> = Rows::new("sessions", "id");

fn fold(row: &mut Option<SessionRow>, event: &RecordedEvent, decoded: SessionEvent) {
    let at = event.occurred_at_ms();
    if let SessionEvent::Started {
        user_id,
        auth_time,
        expires_at,
        ..
    } = &decoded
    {
        *row = Some(SessionRow {
            id: event.stream_id.clone(),
            user_id: user_id.clone(),
            auth_time: *auth_time,
            clients: json!([]),
            expires_at: *expires_at,
            created_at: at,
            updated_at: at,
            ended_at: None,
            end_reason: None,
        });
        return;
    }
    let Some(row) = row else { return };
    row.updated_at = at;
    match decoded {
        SessionEvent::Started { .. } => {}
        SessionEvent::Reauthenticated { auth_time, .. } => row.auth_time = auth_time,
        SessionEvent::ClientAdded { client_id, .. } => {
            if let Value::Array(clients) = &mut row.clients {
                clients.push(json!(client_id));
            }
        }
        SessionEvent::Ended { reason } => {
            row.ended_at = Some(at);
            row.end_reason = Some(reason);
        }
    }
}

pub struct Sessions;

#[async_trait]
impl StreamFold for Sessions {
    type Event = SessionEvent;
    type State = Option<SessionRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "session")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Option<SessionRow>>, ProjectionError> {
        SESSIONS.load_entities(db, streams).await
    }

    fn fold(state: &mut Option<SessionRow>, event: &RecordedEvent, decoded: SessionEvent) {
        fold(state, event, decoded);
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Option<SessionRow>>,
    ) -> Result<(), ProjectionError> {
        SESSIONS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for Sessions {
    fn name(&self) -> &'static str {
        "sessions"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sessions"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

pub async fn by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<SessionRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(s) FROM sessions s WHERE id = $1",
        &[&id],
    )
    .await
}

/// A user's sessions still open at `now`, newest first.
pub async fn active_of_user(
    db: &impl GenericClient,
    user_id: &str,
    now: i64,
) -> Result<Vec<SessionRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(s) FROM sessions s WHERE user_id = $1 AND ended_at IS NULL \
         AND expires_at > $2 ORDER BY created_at DESC, id",
        &[&user_id, &now],
    )
    .await
}
