//! The ID token setting in force: one row holding the latest recorded `IdTokenConfig`.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::id_token_config::{self, IdTokenConfig, IdTokenConfigEvent};
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenConfigRow {
    pub id: String,
    pub config: IdTokenConfig,
    pub updated_at: i64,
}

static ROWS: Rows<IdTokenConfigRow> = Rows::new("id_token_config", "id");

pub struct IdTokenConfigs;

#[async_trait]
impl StreamFold for IdTokenConfigs {
    type Event = IdTokenConfigEvent;
    type State = Option<IdTokenConfigRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "id_token_config")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        ROWS.load_entities(db, streams).await
    }

    fn fold(row: &mut Self::State, event: &RecordedEvent, decoded: IdTokenConfigEvent) {
        match decoded {
            IdTokenConfigEvent::Replaced(config) => {
                *row = Some(IdTokenConfigRow {
                    id: event.stream_id.clone(),
                    config,
                    updated_at: event.occurred_at_ms(),
                });
            }
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        ROWS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for IdTokenConfigs {
    fn name(&self) -> &'static str {
        "id_token_config"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["id_token_config"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

/// The setting in force; `None` before any is recorded (then, as in Logto, the ID token carries
/// no extended claim).
pub async fn current(db: &impl GenericClient) -> Result<Option<IdTokenConfig>, ProjectionError> {
    document(
        db,
        "SELECT config FROM id_token_config WHERE id = $1",
        &[&id_token_config::STREAM_ID],
    )
    .await
}
