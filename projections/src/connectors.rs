//! Connectors, with their configurations as recorded (secret fields taken out).

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::connector::ConnectorEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rows::{Rows, StreamFold, document, documents, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorRow {
    pub id: String,
    pub connector_id: String,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub config: Value,
    pub secret_paths: Vec<String>,
    pub secrets_ref: Option<String>,
    pub metadata: Value,
    pub sync_profile: bool,
    pub enable_token_storage: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

static CONNECTORS: Rows<ConnectorRow> = Rows::new("connectors", "id");

pub struct Connectors;

#[async_trait]
impl StreamFold for Connectors {
    type Event = ConnectorEvent;
    type State = Option<ConnectorRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "connector")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        CONNECTORS.load_entities(db, streams).await
    }

    fn fold(state: &mut Self::State, event: &RecordedEvent, decoded: ConnectorEvent) {
        let at = event.occurred_at_ms();
        match decoded {
            ConnectorEvent::Created(connector) => {
                *state = Some(ConnectorRow {
                    id: connector.id,
                    connector_id: connector.connector_id,
                    connector_type: connector.connector_type.as_str().to_owned(),
                    config: connector.config.config,
                    secret_paths: connector.config.secret_paths,
                    secrets_ref: connector.config.secrets_ref,
                    metadata: connector.metadata,
                    sync_profile: connector.sync_profile,
                    enable_token_storage: connector.enable_token_storage,
                    created_at: at,
                    updated_at: at,
                });
            }
            ConnectorEvent::Updated { patch, .. } => {
                if let Some(row) = state {
                    if let Some(config) = patch.config {
                        row.config = config.config;
                        row.secret_paths = config.secret_paths;
                        row.secrets_ref = config.secrets_ref;
                    }
                    if let Some(metadata) = patch.metadata {
                        row.metadata = metadata;
                    }
                    if let Some(sync_profile) = patch.sync_profile {
                        row.sync_profile = sync_profile;
                    }
                    if let Some(enable) = patch.enable_token_storage {
                        row.enable_token_storage = enable;
                    }
                    row.updated_at = at;
                }
            }
            ConnectorEvent::Deleted { .. } => *state = None,
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        CONNECTORS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for Connectors {
    fn name(&self) -> &'static str {
        "connectors"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["connectors"]
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
) -> Result<Option<ConnectorRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(c) FROM connectors c WHERE id = $1",
        &[&id],
    )
    .await
}

/// Every connector, oldest first (Logto lists them in creation order).
pub async fn all(db: &impl GenericClient) -> Result<Vec<ConnectorRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(c) FROM connectors c ORDER BY created_at, id",
        &[],
    )
    .await
}

/// Connectors of one type (`Email`, `Sms`, `Social`), oldest first.
pub async fn of_type(
    db: &impl GenericClient,
    connector_type: &str,
) -> Result<Vec<ConnectorRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(c) FROM connectors c WHERE type = $1 ORDER BY created_at, id",
        &[&connector_type],
    )
    .await
}
