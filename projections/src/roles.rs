//! Global roles and the resource scopes each holds.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::patch::Patch;
use domain::role::RoleEvent;
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, StreamFold, document, documents, fold_streams, single};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub role_type: String,
    pub is_default: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleScopeRow {
    pub role_id: String,
    pub scope_id: String,
    pub created_at: i64,
}

static ROLES: Rows<RoleRow> = Rows::new("roles", "id");
static ROLE_SCOPES: Rows<RoleScopeRow> = Rows::new("roles_scopes", "role_id");

#[derive(Default)]
pub struct State {
    role: Option<RoleRow>,
    scopes: Vec<RoleScopeRow>,
}

pub struct Roles;

#[async_trait]
impl StreamFold for Roles {
    type Event = RoleEvent;
    type State = State;
    const STREAM_TYPE: &'static str = "role";

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, State>, ProjectionError> {
        let mut roles = single(ROLES.load(db, streams).await?);
        let mut scopes = ROLE_SCOPES.load(db, streams).await?;
        Ok(streams
            .iter()
            .map(|id| {
                let state = State {
                    role: roles.remove(id),
                    scopes: scopes.remove(id).unwrap_or_default(),
                };
                (id.clone(), state)
            })
            .collect())
    }

    fn fold(state: &mut State, event: &RecordedEvent, decoded: RoleEvent) {
        let at = event.occurred_at_ms();
        let link = |scope_id: String| RoleScopeRow {
            role_id: event.stream_id.clone(),
            scope_id,
            created_at: at,
        };
        match decoded {
            RoleEvent::Created(role) => {
                state.scopes = role.scope_ids.into_iter().map(link).collect();
                state.role = Some(RoleRow {
                    id: role.id,
                    name: role.name,
                    description: role.description,
                    role_type: role.role_type.as_str().to_owned(),
                    is_default: role.is_default,
                    created_at: at,
                });
            }
            RoleEvent::Updated(patch) => {
                if let Some(row) = &mut state.role {
                    if let Some(name) = patch.name {
                        row.name = name;
                    }
                    if let Some(description) = patch.description {
                        row.description = description;
                    }
                    match patch.is_default {
                        Patch::Value(is_default) => row.is_default = is_default,
                        Patch::Null => row.is_default = false,
                        Patch::Absent => {}
                    }
                }
            }
            RoleEvent::Deleted {} => {
                state.role = None;
                state.scopes.clear();
            }
            RoleEvent::ScopesAdded { scope_ids } => {
                state.scopes.extend(scope_ids.into_iter().map(link));
            }
            RoleEvent::ScopeRemoved { scope_id } => state.scopes.retain(|s| s.scope_id != scope_id),
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, State>,
    ) -> Result<(), ProjectionError> {
        let (mut roles, mut scopes) = (Vec::new(), Vec::new());
        for state in states.into_values() {
            roles.extend(state.role);
            scopes.extend(state.scopes);
        }
        ROLES.store(db, streams, &roles).await?;
        ROLE_SCOPES.store(db, streams, &scopes).await
    }
}

#[async_trait]
impl Projection for Roles {
    fn name(&self) -> &'static str {
        "roles"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["roles", "roles_scopes"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

pub async fn by_id(db: &impl GenericClient, id: &str) -> Result<Option<RoleRow>, ProjectionError> {
    document(db, "SELECT to_jsonb(r) FROM roles r WHERE id = $1", &[&id]).await
}

pub async fn by_ids(
    db: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<RoleRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(r) FROM roles r WHERE id = ANY($1)",
        &[&ids],
    )
    .await
}
