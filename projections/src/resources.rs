//! API resources and their scopes.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::resource::ResourceEvent;
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, fold_streams, single};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRow {
    pub id: String,
    pub name: String,
    pub indicator: String,
    pub access_token_ttl: i64,
    pub is_default: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeRow {
    pub id: String,
    pub resource_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
}

static RESOURCES: Rows<ResourceRow> = Rows::new("resources", "id");
static SCOPES: Rows<ScopeRow> = Rows::new("scopes", "resource_id");

#[derive(Default)]
pub struct State {
    resource: Option<ResourceRow>,
    scopes: Vec<ScopeRow>,
}

pub struct Resources;

#[async_trait]
impl StreamFold for Resources {
    type Event = ResourceEvent;
    type State = State;
    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "resource")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, State>, ProjectionError> {
        let mut resources = single(RESOURCES.load(db, streams).await?);
        let mut scopes = SCOPES.load(db, streams).await?;
        Ok(streams
            .iter()
            .map(|id| {
                let state = State {
                    resource: resources.remove(id),
                    scopes: scopes.remove(id).unwrap_or_default(),
                };
                (id.clone(), state)
            })
            .collect())
    }

    fn fold(state: &mut State, event: &RecordedEvent, decoded: ResourceEvent) {
        let at = event.occurred_at_ms();
        match decoded {
            ResourceEvent::Created(resource) => {
                state.resource = Some(ResourceRow {
                    id: resource.id,
                    name: resource.name,
                    indicator: resource.indicator,
                    access_token_ttl: resource.access_token_ttl,
                    is_default: false,
                    created_at: at,
                });
            }
            ResourceEvent::ScopeAdded(scope) => state.scopes.push(ScopeRow {
                id: scope.id,
                resource_id: event.stream_id.clone(),
                name: scope.name,
                description: scope.description,
                created_at: at,
            }),
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, State>,
    ) -> Result<(), ProjectionError> {
        let (mut resources, mut scopes) = (Vec::new(), Vec::new());
        for state in states.into_values() {
            resources.extend(state.resource);
            scopes.extend(state.scopes);
        }
        RESOURCES.store(db, streams, &resources).await?;
        SCOPES.store(db, streams, &scopes).await
    }
}

#[async_trait]
impl Projection for Resources {
    fn name(&self) -> &'static str {
        "resources"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["resources", "scopes"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

/// The resource a token audience names.
pub async fn by_indicator(
    db: &impl GenericClient,
    indicator: &str,
) -> Result<Option<ResourceRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(r) FROM resources r WHERE indicator = $1",
        &[&indicator],
    )
    .await
}

pub async fn scopes_by_ids(
    db: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<ScopeRow>, ProjectionError> {
    crate::rows::documents(
        db,
        "SELECT to_jsonb(s) FROM scopes s WHERE id = ANY($1) ORDER BY created_at, id",
        &[&ids],
    )
    .await
}

/// A resource's scopes, oldest first.
pub async fn scopes_of(
    db: &impl GenericClient,
    resource_id: &str,
) -> Result<Vec<ScopeRow>, ProjectionError> {
    crate::rows::documents(
        db,
        "SELECT to_jsonb(s) FROM scopes s WHERE resource_id = $1 ORDER BY created_at, id",
        &[&resource_id],
    )
    .await
}
