//! Where each outgoing message stands (queued, sent, abandoned) and how often delivery failed:
//! what the mail follower checks before sending, so a message is sent once and retries back off.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::message::MessageEvent;
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: String,
    /// `queued`, `sent` or `abandoned`.
    pub status: String,
    pub usage_type: String,
    pub attempts: i32,
    pub last_attempt_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

static MESSAGES: Rows<MessageRow> = Rows::new("messages", "id");

pub struct Messages;

#[async_trait]
impl StreamFold for Messages {
    type Event = MessageEvent;
    type State = Option<MessageRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "message")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        MESSAGES.load_entities(db, streams).await
    }

    fn fold(state: &mut Self::State, event: &RecordedEvent, decoded: MessageEvent) {
        let at = event.occurred_at_ms();
        match decoded {
            MessageEvent::Queued(message) => {
                *state = Some(MessageRow {
                    id: message.id,
                    status: "queued".to_owned(),
                    usage_type: message.usage_type.as_str().to_owned(),
                    attempts: 0,
                    last_attempt_at: None,
                    expires_at: message.expires_at,
                    created_at: at,
                    updated_at: at,
                });
            }
            MessageEvent::AttemptFailed {
                attempt,
                at: attempted,
                ..
            } => {
                if let Some(row) = state {
                    row.attempts = i32::try_from(attempt).unwrap_or(i32::MAX);
                    row.last_attempt_at = Some(attempted);
                    row.updated_at = at;
                }
            }
            MessageEvent::Sent { .. } => {
                if let Some(row) = state {
                    row.status = "sent".to_owned();
                    row.updated_at = at;
                }
            }
            MessageEvent::Abandoned { .. } => {
                if let Some(row) = state {
                    row.status = "abandoned".to_owned();
                    row.updated_at = at;
                }
            }
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        MESSAGES.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for Messages {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["messages"]
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
) -> Result<Option<MessageRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(m) FROM messages m WHERE id = $1",
        &[&id],
    )
    .await
}
