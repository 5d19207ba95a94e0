//! Applications, their secrets (hash and vault reference only) and the roles they hold.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::application::ApplicationEvent;
use domain::patch::Patch;
use domain::role::RoleEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rows::{Rows, StreamFold, document, documents, fold_streams, single};
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
    const STREAM_TYPE: &'static str = "application";

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

    /// A deleted role leaves every application that held it, so the batch is folded in segments
    /// split at each `role.deleted`, with the removal applied in between.
    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut rest = events;
        while let Some(split) = rest.iter().position(|e| e.event_type == "role.deleted") {
            fold_streams(self, db, &rest[..split]).await?;
            let deleted = &rest[split];
            if let RoleEvent::Deleted {} =
                domain::decode::<RoleEvent>(&deleted.event_type, &deleted.payload)?
            {
                let statement = db
                    .prepare_cached("DELETE FROM applications_roles WHERE role_id = $1")
                    .await?;
                db.execute(&statement, &[&deleted.stream_id]).await?;
            }
            rest = &rest[split + 1..];
        }
        fold_streams(self, db, rest).await
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
