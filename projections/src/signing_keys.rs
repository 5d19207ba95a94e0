//! The OIDC signing key set: public keys for the JWKS, vault references for the private halves.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::signing_key::SigningKeyEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rows::{Rows, StreamFold, documents, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub public_jwk: Value,
    pub vault_ref: String,
    pub stream_id: String,
    /// Position of the generating event: orders keys oldest to newest.
    pub generation: i64,
    pub created_at: i64,
}

static KEYS: Rows<SigningKeyRow> = Rows::new("signing_keys", "stream_id");

pub struct SigningKeys;

#[async_trait]
impl StreamFold for SigningKeys {
    type Event = SigningKeyEvent;
    type State = Vec<SigningKeyRow>;
    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "signing_key")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Vec<SigningKeyRow>>, ProjectionError> {
        KEYS.load(db, streams).await
    }

    fn fold(keys: &mut Vec<SigningKeyRow>, event: &RecordedEvent, decoded: SigningKeyEvent) {
        match decoded {
            SigningKeyEvent::Generated(key) => keys.push(SigningKeyRow {
                kid: key.kid,
                algorithm: key.algorithm,
                public_jwk: key.public_jwk,
                vault_ref: key.vault_ref,
                stream_id: event.stream_id.clone(),
                generation: event.position,
                created_at: event.occurred_at_ms(),
            }),
            SigningKeyEvent::Retired { kid, .. } => keys.retain(|k| k.kid != kid),
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Vec<SigningKeyRow>>,
    ) -> Result<(), ProjectionError> {
        let rows: Vec<SigningKeyRow> = states.into_values().flatten().collect();
        KEYS.store(db, streams, &rows).await
    }
}

#[async_trait]
impl Projection for SigningKeys {
    fn name(&self) -> &'static str {
        "signing_keys"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["signing_keys"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

/// Every key, newest (the one that signs) first.
pub async fn all(db: &impl GenericClient) -> Result<Vec<SigningKeyRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(k) FROM signing_keys k ORDER BY generation DESC",
        &[],
    )
    .await
}
