//! Applications, their secrets (hash and vault reference only) and the roles they hold.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::application::ApplicationEvent;
use domain::patch::Patch;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rows::{Rows, StreamFold, document, documents, single};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub app_type: String,
    pub oidc_client_metadata: Value,
    pub custom_client_metadata: Value,
    pub custom_data: Value,
    pub is_third_party: bool,
    pub app_level_access_control_enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRow {
    pub application_id: String,
    pub name: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleLink {
    pub application_id: String,
    pub role_id: String,
    pub created_at: i64,
}

static APPLICATIONS: Rows<ApplicationRow> = Rows::new("applications", "id");
static SECRETS: Rows<SecretRow> = Rows::new("application_secrets", "application_id");
static ROLES: Rows<RoleLink> = Rows::new("applications_roles", "application_id");

#[derive(Default)]
pub struct State {
    application: Option<ApplicationRow>,
    secrets: Vec<SecretRow>,
    roles: Vec<RoleLink>,
}

pub struct Applications;

#[async_trait]
impl StreamFold for Applications {
    type Event = ApplicationEvent;
    type State = State;
    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "application")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, State>, ProjectionError> {
        let mut applications = single(APPLICATIONS.load(db, streams).await?);
        let mut secrets = SECRETS.load(db, streams).await?;
        let mut roles = ROLES.load(db, streams).await?;
        Ok(streams
            .iter()
            .map(|id| {
                let state = State {
                    application: applications.remove(id),
                    secrets: secrets.remove(id).unwrap_or_default(),
                    roles: roles.remove(id).unwrap_or_default(),
                };
                (id.clone(), state)
            })
            .collect())
    }

    fn fold(state: &mut State, event: &RecordedEvent, decoded: ApplicationEvent) {
        let at = event.occurred_at_ms();
        let id = &event.stream_id;
        match decoded {
            ApplicationEvent::Created(app) => {
                state.application = Some(ApplicationRow {
                    id: app.id,
                    name: app.name,
                    description: app.description,
                    app_type: app.app_type.as_str().to_owned(),
                    oidc_client_metadata: app.oidc_client_metadata,
                    custom_client_metadata: app.custom_client_metadata,
                    custom_data: app.custom_data,
                    is_third_party: app.is_third_party,
                    app_level_access_control_enabled: false,
                    created_at: at,
                });
            }
            ApplicationEvent::Updated(patch) => {
                if let Some(row) = &mut state.application {
                    if let Some(name) = patch.name {
                        row.name = name;
                    }
                    match patch.description {
                        Patch::Absent => {}
                        Patch::Null => row.description = None,
                        Patch::Value(description) => row.description = Some(description),
                    }
                    if let Some(metadata) = patch.oidc_client_metadata {
                        row.oidc_client_metadata = metadata;
                    }
                    if let Some(metadata) = patch.custom_client_metadata {
                        row.custom_client_metadata = metadata;
                    }
                    if let Some(data) = patch.custom_data {
                        row.custom_data = data;
                    }
                    if let Some(enabled) = patch.app_level_access_control_enabled {
                        row.app_level_access_control_enabled = enabled;
                    }
                }
            }
            ApplicationEvent::CustomDataMerged { changes } => {
                if let Some(row) = &mut state.application {
                    if !row.custom_data.is_object() {
                        row.custom_data = Value::Object(Default::default());
                    }
                    if let Value::Object(data) = &mut row.custom_data {
                        data.extend(changes);
                    }
                }
            }
            ApplicationEvent::Deleted {} => *state = State::default(),
            ApplicationEvent::SecretAdded(secret) => state.secrets.push(SecretRow {
                application_id: id.clone(),
                name: secret.name,
                lookup_hash: secret.lookup_hash,
                vault_ref: secret.vault_ref,
                created_at: at,
                expires_at: secret.expires_at,
            }),
            ApplicationEvent::SecretRenamed { name, new_name } => {
                for secret in state.secrets.iter_mut().filter(|s| s.name == name) {
                    secret.name = new_name.clone();
                }
            }
            ApplicationEvent::SecretDeleted { name, .. } => {
                state.secrets.retain(|s| s.name != name)
            }
            ApplicationEvent::RolesAssigned { role_ids } => {
                state
                    .roles
                    .extend(role_ids.into_iter().map(|role_id| RoleLink {
                        application_id: id.clone(),
                        role_id,
                        created_at: at,
                    }));
            }
            ApplicationEvent::RoleRemoved { role_id } => {
                state.roles.retain(|r| r.role_id != role_id)
            }
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, State>,
    ) -> Result<(), ProjectionError> {
        let (mut applications, mut secrets, mut roles) = (Vec::new(), Vec::new(), Vec::new());
        for state in states.into_values() {
            applications.extend(state.application);
            secrets.extend(state.secrets);
            roles.extend(state.roles);
        }
        APPLICATIONS.store(db, streams, &applications).await?;
        SECRETS.store(db, streams, &secrets).await?;
        ROLES.store(db, streams, &roles).await
    }
}

#[async_trait]
impl Projection for Applications {
    fn name(&self) -> &'static str {
        "applications"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["applications", "application_secrets", "applications_roles"]
    }

    /// A deleted role leaves every application that held it.
    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        crate::roles::fold_dropping_deleted_roles(self, db, events, "applications_roles").await
    }
}

pub async fn by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<ApplicationRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(a) FROM applications a WHERE id = $1",
        &[&id],
    )
    .await
}

pub async fn secrets(
    db: &impl GenericClient,
    application_id: &str,
) -> Result<Vec<SecretRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(s) FROM application_secrets s WHERE application_id = $1 \
         ORDER BY created_at, name",
        &[&application_id],
    )
    .await
}

pub async fn secret_by_hash(
    db: &impl GenericClient,
    lookup_hash: &str,
) -> Result<Option<SecretRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(s) FROM application_secrets s WHERE lookup_hash = $1",
        &[&lookup_hash],
    )
    .await
}

pub async fn role_ids(
    db: &impl GenericClient,
    application_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(role_id) FROM applications_roles WHERE application_id = $1 \
         ORDER BY created_at, role_id",
        &[&application_id],
    )
    .await
}

/// Names of the scopes of `resource_id` that the application's roles grant.
pub async fn granted_scopes(
    db: &impl GenericClient,
    application_id: &str,
    resource_id: &str,
) -> Result<Vec<String>, ProjectionError> {
    documents(
        db,
        "SELECT DISTINCT to_jsonb(s.name) FROM applications_roles ar \
         JOIN roles_scopes rs ON rs.role_id = ar.role_id \
         JOIN scopes s ON s.id = rs.scope_id \
         WHERE ar.application_id = $1 AND s.resource_id = $2",
        &[&application_id, &resource_id],
    )
    .await
}

#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    pub types: Vec<String>,
    pub is_third_party: Option<bool>,
    pub exclude_role_id: Option<String>,
    pub search: crate::search::Search,
}

pub const SEARCH_COLUMNS: &[&str] = &["id", "name", "description"];

fn filtered(select: &str, filter: &ApplicationFilter) -> crate::Query {
    let mut query = crate::Query::new(select);
    query.push(" WHERE ");
    query.search(&filter.search, SEARCH_COLUMNS);
    if !filter.types.is_empty() {
        let types = query.bind(filter.types.clone());
        query.push(&format!(" AND type = ANY({types})"));
    }
    if let Some(third_party) = filter.is_third_party {
        let flag = query.bind(third_party);
        query.push(&format!(" AND is_third_party = {flag}"));
    }
    if let Some(role_id) = &filter.exclude_role_id {
        let role = query.bind(role_id.clone());
        query.push(&format!(
            " AND NOT EXISTS (SELECT 1 FROM applications_roles ar \
             WHERE ar.application_id = a.id AND ar.role_id = {role})"
        ));
    }
    query
}

/// Applications matching `filter`, newest first, and how many match in all.
pub async fn list(
    db: &impl GenericClient,
    filter: &ApplicationFilter,
    window: Option<crate::Window>,
) -> Result<(Vec<ApplicationRow>, i64), ProjectionError> {
    let mut rows = filtered("SELECT to_jsonb(a) FROM applications a", filter);
    rows.push(" ORDER BY created_at DESC, id DESC");
    if let Some(window) = window {
        let limit = rows.bind(window.limit);
        let offset = rows.bind(window.offset);
        rows.push(&format!(" LIMIT {limit} OFFSET {offset}"));
    }
    let count = filtered("SELECT count(*) FROM applications a", filter);
    Ok((rows.documents(db).await?, count.count(db).await?))
}

/// Whether any of the application's roles grants the Management API.
pub async fn is_admin(
    db: &impl GenericClient,
    application_id: &str,
) -> Result<bool, ProjectionError> {
    Ok(!granted_scopes(
        db,
        application_id,
        domain::resource::MANAGEMENT_API_RESOURCE_ID,
    )
    .await?
    .is_empty())
}
