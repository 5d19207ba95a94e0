//! The custom data policy in force: one row holding the latest recorded policy.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::custom_data_policy::{self, CustomDataPolicyEvent, Policy};
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomDataPolicyRow {
    pub id: String,
    pub policy: Policy,
    pub updated_at: i64,
}

static ROWS: Rows<CustomDataPolicyRow> = Rows::new("custom_data_policy", "id");

pub struct CustomDataPolicies;

#[async_trait]
impl StreamFold for CustomDataPolicies {
    type Event = CustomDataPolicyEvent;
    type State = Option<CustomDataPolicyRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "custom_data_policy")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        ROWS.load_entities(db, streams).await
    }

    fn fold(row: &mut Self::State, event: &RecordedEvent, decoded: CustomDataPolicyEvent) {
        match decoded {
            CustomDataPolicyEvent::Replaced(policy) => {
                *row = Some(CustomDataPolicyRow {
                    id: event.stream_id.clone(),
                    policy,
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
impl Projection for CustomDataPolicies {
    fn name(&self) -> &'static str {
        "custom_data_policy"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["custom_data_policy"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

/// The policy in force; before any is recorded, the empty one (users write no key).
pub async fn current(db: &impl GenericClient) -> Result<Policy, ProjectionError> {
    Ok(document(
        db,
        "SELECT policy FROM custom_data_policy WHERE id = $1",
        &[&custom_data_policy::STREAM_ID],
    )
    .await?
    .unwrap_or_default())
}
