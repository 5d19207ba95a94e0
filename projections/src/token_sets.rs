//! Stored provider token sets of social identities (the token vault): who holds one from which
//! target, and what is known of it without opening it.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::token_set::{TokenMetadata, TokenSetEvent};
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, documents, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSetRow {
    pub stream_id: String,
    pub user_id: String,
    pub target: String,
    pub connector_id: String,
    pub vault_ref: String,
    pub token_type: String,
    pub scope: Option<String>,
    pub expires_at: Option<i64>,
    pub has_refresh_token: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TokenSetRow {
    fn set_metadata(&mut self, metadata: TokenMetadata) {
        self.token_type = metadata.token_type;
        self.scope = metadata.scope;
        self.expires_at = metadata.expires_at;
        self.has_refresh_token = metadata.has_refresh_token;
    }
}

static TOKEN_SETS: Rows<TokenSetRow> = Rows::new("token_sets", "stream_id");

pub struct TokenSets;

#[async_trait]
impl StreamFold for TokenSets {
    type Event = TokenSetEvent;
    type State = Option<TokenSetRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "token_set")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        TOKEN_SETS.load_entities(db, streams).await
    }

    fn fold(state: &mut Self::State, event: &RecordedEvent, decoded: TokenSetEvent) {
        let at = event.occurred_at_ms();
        match decoded {
            TokenSetEvent::Stored {
                user_id,
                target,
                connector_id,
                vault_ref,
                metadata,
                ..
            } => {
                let created_at = state.as_ref().map_or(at, |row| row.created_at);
                let mut row = TokenSetRow {
                    stream_id: event.stream_id.clone(),
                    user_id,
                    target,
                    connector_id,
                    vault_ref,
                    token_type: String::new(),
                    scope: None,
                    expires_at: None,
                    has_refresh_token: false,
                    created_at,
                    updated_at: at,
                };
                row.set_metadata(metadata);
                *state = Some(row);
            }
            TokenSetEvent::Refreshed {
                vault_ref,
                metadata,
                ..
            } => {
                if let Some(row) = state {
                    row.vault_ref = vault_ref;
                    row.set_metadata(metadata);
                    row.updated_at = at;
                }
            }
            TokenSetEvent::Erased { .. } => *state = None,
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        TOKEN_SETS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for TokenSets {
    fn name(&self) -> &'static str {
        "token_sets"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["token_sets"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

pub async fn of_user_and_target(
    db: &impl GenericClient,
    user_id: &str,
    target: &str,
) -> Result<Option<TokenSetRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(t) FROM token_sets t WHERE user_id = $1 AND target = $2",
        &[&user_id, &target],
    )
    .await
}

pub async fn of_user(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<TokenSetRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(t) FROM token_sets t WHERE user_id = $1 ORDER BY target",
        &[&user_id],
    )
    .await
}

pub async fn of_target(
    db: &impl GenericClient,
    target: &str,
) -> Result<Vec<TokenSetRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(t) FROM token_sets t WHERE target = $1 ORDER BY user_id",
        &[&target],
    )
    .await
}
