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
    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "role")
    }

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

#[derive(Debug, Clone, Default)]
pub struct RoleFilter {
    pub role_type: Option<String>,
    /// Only these roles (e.g. those an application holds); `None` for all.
    pub among: Option<Vec<String>>,
    pub exclude_application_id: Option<String>,
    pub search: crate::search::Search,
}

pub const SEARCH_COLUMNS: &[&str] = &["id", "name", "description"];

fn filtered(select: &str, filter: &RoleFilter) -> crate::Query {
    let mut query = crate::Query::new(select);
    query.push(" WHERE ");
    query.search(&filter.search, SEARCH_COLUMNS);
    if let Some(role_type) = &filter.role_type {
        let p = query.bind(role_type.clone());
        query.push(&format!(" AND type = {p}"));
    }
    if let Some(ids) = &filter.among {
        let p = query.bind(ids.clone());
        query.push(&format!(" AND id = ANY({p})"));
    }
    if let Some(application_id) = &filter.exclude_application_id {
        let p = query.bind(application_id.clone());
        query.push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM applications_roles ar \
             WHERE ar.role_id = r.id AND ar.application_id = {p})"
        ));
    }
    query
}

/// Roles matching `filter`, newest first, and how many match in all.
pub async fn list(
    db: &impl GenericClient,
    filter: &RoleFilter,
    window: Option<crate::Window>,
) -> Result<(Vec<RoleRow>, i64), ProjectionError> {
    let mut rows = filtered("SELECT to_jsonb(r) FROM roles r", filter);
    rows.push(" ORDER BY created_at DESC, id DESC");
    if let Some(window) = window {
        let limit = rows.bind(window.limit);
        let offset = rows.bind(window.offset);
        rows.push(&format!(" LIMIT {limit} OFFSET {offset}"));
    }
    let count = filtered("SELECT count(*) FROM roles r", filter);
    Ok((rows.documents(db).await?, count.count(db).await?))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturedApplication {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub app_type: String,
}

/// How many applications hold the role, and the three most recently assigned.
pub async fn applications_of(
    db: &impl GenericClient,
    role_id: &str,
) -> Result<(i64, Vec<FeaturedApplication>), ProjectionError> {
    let count: i64 = db
        .query_one(
            "SELECT count(*) FROM applications_roles WHERE role_id = $1",
            &[&role_id],
        )
        .await?
        .try_get(0)?;
    let featured = documents(
        db,
        "SELECT jsonb_build_object('id', a.id, 'name', a.name, 'type', a.type) \
         FROM applications_roles ar JOIN applications a ON a.id = ar.application_id \
         WHERE ar.role_id = $1 ORDER BY ar.created_at DESC, a.id LIMIT 3",
        &[&role_id],
    )
    .await?;
    Ok((count, featured))
}

/// Ids of the applications holding the role.
pub async fn application_ids(
    db: &impl GenericClient,
    role_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(application_id) FROM applications_roles WHERE role_id = $1 \
         ORDER BY created_at DESC, application_id",
        &[&role_id],
    )
    .await
}

/// Ids of the scopes the role holds.
pub async fn scope_ids(
    db: &impl GenericClient,
    role_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(scope_id) FROM roles_scopes WHERE role_id = $1 ORDER BY created_at, scope_id",
        &[&role_id],
    )
    .await
}

/// Folds `events` for a projection that links its entities to roles in `link_table`: the batch
/// is folded in segments split at each `role.deleted`, and the deleted role is unlinked from
/// every entity in between, so the result is the same however the log is chunked.
pub(crate) async fn fold_dropping_deleted_roles<F: crate::StreamFold>(
    projection: &F,
    db: &Transaction<'_>,
    events: &[RecordedEvent],
    link_table: &str,
) -> Result<(), ProjectionError> {
    let mut rest = events;
    while let Some(split) = rest
        .iter()
        .position(|e| e.stream_type == "role" && e.event_type == "role.deleted")
    {
        crate::fold_streams(projection, db, &rest[..split]).await?;
        let statement = db
            .prepare_cached(&format!("DELETE FROM {link_table} WHERE role_id = $1"))
            .await?;
        db.execute(&statement, &[&rest[split].stream_id]).await?;
        rest = &rest[split + 1..];
    }
    crate::fold_streams(projection, db, rest).await
}

/// Roles every new user receives (`isDefault` user roles).
pub async fn default_user_role_ids(
    db: &impl GenericClient,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(id) FROM roles WHERE is_default AND type = 'User' ORDER BY created_at, id",
        &[],
    )
    .await
}
