//! Applications (OIDC clients) and their secrets and machine-to-machine roles.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};
use crate::patch::Patch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppType {
    Native,
    #[serde(rename = "SPA")]
    Spa,
    Traditional,
    MachineToMachine,
}

impl AppType {
    /// Confidential clients authenticate with secrets; public ones (SPA, Native) cannot hold any.
    pub fn is_confidential(self) -> bool {
        matches!(self, AppType::Traditional | AppType::MachineToMachine)
    }

    /// Logto lets only apps that sign users in be third-party apps.
    fn may_be_third_party(self) -> bool {
        !matches!(self, AppType::MachineToMachine)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Native => "Native",
            AppType::Spa => "SPA",
            AppType::Traditional => "Traditional",
            AppType::MachineToMachine => "MachineToMachine",
        }
    }
}

/// The name Logto gives the secret created with every confidential application.
pub const DEFAULT_SECRET_NAME: &str = "Default secret";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewApplication {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub app_type: AppType,
    pub oidc_client_metadata: Value,
    pub custom_client_metadata: Value,
    pub custom_data: Value,
    pub is_third_party: bool,
}

/// A secret as the log knows it: its name, the keyed hash it is looked up by, and the vault entry
/// holding its encrypted value. The value itself never enters an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSecret {
    pub name: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub description: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_client_metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_client_metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_level_access_control_enabled: Option<bool>,
}

impl ApplicationPatch {
    fn is_empty(&self) -> bool {
        self == &ApplicationPatch::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApplicationCommand {
    Create {
        application: NewApplication,
        default_secret: Option<NewSecret>,
    },
    Update(ApplicationPatch),
    /// Shallow merge into `customData` (Logto's `PATCH /applications/:id/custom-data`).
    MergeCustomData(serde_json::Map<String, Value>),
    Delete,
    AddSecret(NewSecret),
    RenameSecret {
        name: String,
        new_name: String,
    },
    DeleteSecret {
        name: String,
    },
    /// Adds roles; ones already held are ignored (`POST /applications/:id/roles`).
    AssignRoles {
        role_ids: Vec<String>,
    },
    /// Makes the held set exactly `role_ids` (`PUT /applications/:id/roles`).
    ReplaceRoles {
        role_ids: Vec<String>,
    },
    RemoveRole {
        role_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ApplicationEvent {
    #[serde(rename = "application.created")]
    Created(NewApplication),
    #[serde(rename = "application.updated")]
    Updated(ApplicationPatch),
    #[serde(rename = "application.custom_data_merged")]
    CustomDataMerged {
        changes: serde_json::Map<String, Value>,
    },
    #[serde(rename = "application.deleted")]
    Deleted {},
    #[serde(rename = "application.secret_added")]
    SecretAdded(NewSecret),
    #[serde(rename = "application.secret_renamed")]
    #[serde(rename_all = "camelCase")]
    SecretRenamed { name: String, new_name: String },
    #[serde(rename = "application.secret_deleted")]
    #[serde(rename_all = "camelCase")]
    SecretDeleted { name: String, vault_ref: String },
    #[serde(rename = "application.roles_assigned")]
    #[serde(rename_all = "camelCase")]
    RolesAssigned { role_ids: Vec<String> },
    #[serde(rename = "application.role_removed")]
    #[serde(rename_all = "camelCase")]
    RoleRemoved { role_id: String },
}

impl cqrs_es::DomainEvent for ApplicationEvent {
    fn event_type(&self) -> String {
        match self {
            ApplicationEvent::Created(_) => "application.created",
            ApplicationEvent::Updated(_) => "application.updated",
            ApplicationEvent::CustomDataMerged { .. } => "application.custom_data_merged",
            ApplicationEvent::Deleted {} => "application.deleted",
            ApplicationEvent::SecretAdded(_) => "application.secret_added",
            ApplicationEvent::SecretRenamed { .. } => "application.secret_renamed",
            ApplicationEvent::SecretDeleted { .. } => "application.secret_deleted",
            ApplicationEvent::RolesAssigned { .. } => "application.roles_assigned",
            ApplicationEvent::RoleRemoved { .. } => "application.role_removed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            ApplicationEvent::Created(_)
            | ApplicationEvent::Updated(_)
            | ApplicationEvent::CustomDataMerged { .. }
            | ApplicationEvent::Deleted {}
            | ApplicationEvent::SecretAdded(_)
            | ApplicationEvent::SecretRenamed { .. }
            | ApplicationEvent::SecretDeleted { .. }
            | ApplicationEvent::RolesAssigned { .. }
            | ApplicationEvent::RoleRemoved { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for ApplicationEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            ApplicationEvent::SecretDeleted { vault_ref, .. } => vec![vault_ref.clone()],
            ApplicationEvent::Created(_)
            | ApplicationEvent::Updated(_)
            | ApplicationEvent::CustomDataMerged { .. }
            | ApplicationEvent::Deleted {}
            | ApplicationEvent::SecretAdded(_)
            | ApplicationEvent::SecretRenamed { .. }
            | ApplicationEvent::RolesAssigned { .. }
            | ApplicationEvent::RoleRemoved { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplicationError {
    #[error("the application does not exist")]
    NotFound,
    #[error("the application already exists")]
    AlreadyExists,
    #[error("only Traditional, SPA and Native applications can be third-party applications")]
    InvalidThirdPartyType,
    #[error("third-party applications cannot enable token exchange")]
    ThirdPartyTokenExchange,
    #[error("device flow is only available to Native applications")]
    DeviceFlowNativeOnly,
    #[error("device flow cannot be changed after the application is created")]
    DeviceFlowNotChangeable,
    #[error("{app_type} applications cannot hold secrets")]
    SecretsNotSupported { app_type: &'static str },
    #[error("a secret named {name:?} already exists")]
    SecretNameExists { name: String },
    #[error("no secret named {name:?}")]
    SecretNotFound { name: String },
    #[error("the role {role_id} is not assigned to this application")]
    RoleNotAssigned { role_id: String },
    #[error("the update changes nothing")]
    EmptyUpdate,
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    app_type: Option<AppType>,
    is_third_party: bool,
    device_flow: bool,
    /// Secret name → vault entry holding its value.
    secrets: BTreeMap<String, String>,
    roles: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub enum Application {
    #[default]
    New,
    Live(Live),
    Deleted,
}

fn flag(metadata: &Value, key: &str) -> bool {
    metadata.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn check_client_metadata(
    app_type: AppType,
    is_third_party: bool,
    custom: &Value,
) -> Result<(), ApplicationError> {
    if is_third_party && flag(custom, "allowTokenExchange") {
        return Err(ApplicationError::ThirdPartyTokenExchange);
    }
    if flag(custom, "isDeviceFlow") && app_type != AppType::Native {
        return Err(ApplicationError::DeviceFlowNativeOnly);
    }
    Ok(())
}

impl Live {
    fn decide(
        &self,
        command: ApplicationCommand,
    ) -> Result<Vec<ApplicationEvent>, ApplicationError> {
        let app_type = self.app_type.unwrap_or(AppType::Native);
        match command {
            ApplicationCommand::Create { .. } => Err(ApplicationError::AlreadyExists),
            ApplicationCommand::Update(patch) => {
                if patch.is_empty() {
                    return Err(ApplicationError::EmptyUpdate);
                }
                if let Some(custom) = &patch.custom_client_metadata {
                    if flag(custom, "isDeviceFlow") != self.device_flow {
                        return Err(ApplicationError::DeviceFlowNotChangeable);
                    }
                    check_client_metadata(app_type, self.is_third_party, custom)?;
                }
                Ok(vec![ApplicationEvent::Updated(patch)])
            }
            ApplicationCommand::MergeCustomData(changes) => {
                Ok(vec![ApplicationEvent::CustomDataMerged { changes }])
            }
            ApplicationCommand::Delete => {
                // Secrets go first, each retiring its vault entry, so nothing of them outlives
                // the application.
                let mut events: Vec<ApplicationEvent> = self
                    .secrets
                    .iter()
                    .map(|(name, vault_ref)| ApplicationEvent::SecretDeleted {
                        name: name.clone(),
                        vault_ref: vault_ref.clone(),
                    })
                    .collect();
                events.push(ApplicationEvent::Deleted {});
                Ok(events)
            }
            ApplicationCommand::AddSecret(secret) => {
                if !app_type.is_confidential() {
                    return Err(ApplicationError::SecretsNotSupported {
                        app_type: app_type.as_str(),
                    });
                }
                if self.secrets.contains_key(&secret.name) {
                    return Err(ApplicationError::SecretNameExists { name: secret.name });
                }
                Ok(vec![ApplicationEvent::SecretAdded(secret)])
            }
            ApplicationCommand::RenameSecret { name, new_name } => {
                if !self.secrets.contains_key(&name) {
                    return Err(ApplicationError::SecretNotFound { name });
                }
                if name == new_name {
                    return Ok(Vec::new());
                }
                if self.secrets.contains_key(&new_name) {
                    return Err(ApplicationError::SecretNameExists { name: new_name });
                }
                Ok(vec![ApplicationEvent::SecretRenamed { name, new_name }])
            }
            ApplicationCommand::DeleteSecret { name } => match self.secrets.get(&name) {
                Some(vault_ref) => Ok(vec![ApplicationEvent::SecretDeleted {
                    vault_ref: vault_ref.clone(),
                    name,
                }]),
                None => Err(ApplicationError::SecretNotFound { name }),
            },
            ApplicationCommand::AssignRoles { role_ids } => {
                let added = self.not_held(role_ids);
                Ok(if added.is_empty() {
                    Vec::new()
                } else {
                    vec![ApplicationEvent::RolesAssigned { role_ids: added }]
                })
            }
            ApplicationCommand::ReplaceRoles { role_ids } => {
                let wanted: BTreeSet<String> = role_ids.iter().cloned().collect();
                let mut events: Vec<ApplicationEvent> = self
                    .roles
                    .difference(&wanted)
                    .map(|role_id| ApplicationEvent::RoleRemoved {
                        role_id: role_id.clone(),
                    })
                    .collect();
                let added = self.not_held(role_ids);
                if !added.is_empty() {
                    events.push(ApplicationEvent::RolesAssigned { role_ids: added });
                }
                Ok(events)
            }
            ApplicationCommand::RemoveRole { role_id } => {
                if self.roles.contains(&role_id) {
                    Ok(vec![ApplicationEvent::RoleRemoved { role_id }])
                } else {
                    Err(ApplicationError::RoleNotAssigned { role_id })
                }
            }
        }
    }

    /// The ids not yet held, deduplicated, in request order.
    fn not_held(&self, role_ids: Vec<String>) -> Vec<String> {
        let mut seen = BTreeSet::new();
        role_ids
            .into_iter()
            .filter(|id| !self.roles.contains(id) && seen.insert(id.clone()))
            .collect()
    }
}

impl Aggregate for Application {
    const TYPE: &'static str = "application";
    type Command = ApplicationCommand;
    type Event = ApplicationEvent;
    type Error = ApplicationError;

    fn decide(
        &self,
        command: ApplicationCommand,
    ) -> Result<Vec<ApplicationEvent>, ApplicationError> {
        match self {
            Application::New => match command {
                ApplicationCommand::Create {
                    application,
                    default_secret,
                } => {
                    if application.is_third_party && !application.app_type.may_be_third_party() {
                        return Err(ApplicationError::InvalidThirdPartyType);
                    }
                    check_client_metadata(
                        application.app_type,
                        application.is_third_party,
                        &application.custom_client_metadata,
                    )?;
                    let confidential = application.app_type.is_confidential();
                    let app_type = application.app_type.as_str();
                    let mut events = vec![ApplicationEvent::Created(application)];
                    match (default_secret, confidential) {
                        (Some(secret), true) => events.push(ApplicationEvent::SecretAdded(secret)),
                        (None, _) => {}
                        (Some(_), false) => {
                            return Err(ApplicationError::SecretsNotSupported { app_type });
                        }
                    }
                    Ok(events)
                }
                ApplicationCommand::Update(_)
                | ApplicationCommand::MergeCustomData(_)
                | ApplicationCommand::Delete
                | ApplicationCommand::AddSecret(_)
                | ApplicationCommand::RenameSecret { .. }
                | ApplicationCommand::DeleteSecret { .. }
                | ApplicationCommand::AssignRoles { .. }
                | ApplicationCommand::ReplaceRoles { .. }
                | ApplicationCommand::RemoveRole { .. } => Err(ApplicationError::NotFound),
            },
            Application::Live(live) => live.decide(command),
            Application::Deleted => Err(ApplicationError::NotFound),
        }
    }

    fn apply(&mut self, event: &ApplicationEvent) {
        match (self, event) {
            (this @ Application::New, ApplicationEvent::Created(app)) => {
                *this = Application::Live(Live {
                    app_type: Some(app.app_type),
                    is_third_party: app.is_third_party,
                    device_flow: flag(&app.custom_client_metadata, "isDeviceFlow"),
                    ..Live::default()
                });
            }
            (this @ Application::Live(_), ApplicationEvent::Deleted {}) => {
                *this = Application::Deleted;
            }
            (Application::Live(live), event) => live.apply(event),
            (Application::New | Application::Deleted, _) => {}
        }
    }
}

impl Live {
    fn apply(&mut self, event: &ApplicationEvent) {
        match event {
            ApplicationEvent::SecretAdded(secret) => {
                self.secrets
                    .insert(secret.name.clone(), secret.vault_ref.clone());
            }
            ApplicationEvent::SecretRenamed { name, new_name } => {
                if let Some(vault_ref) = self.secrets.remove(name) {
                    self.secrets.insert(new_name.clone(), vault_ref);
                }
            }
            ApplicationEvent::SecretDeleted { name, .. } => {
                self.secrets.remove(name);
            }
            ApplicationEvent::RolesAssigned { role_ids } => {
                self.roles.extend(role_ids.iter().cloned());
            }
            ApplicationEvent::RoleRemoved { role_id } => {
                self.roles.remove(role_id);
            }
            ApplicationEvent::Created(_)
            | ApplicationEvent::Updated(_)
            | ApplicationEvent::CustomDataMerged { .. }
            | ApplicationEvent::Deleted {} => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;
    use serde_json::json;

    fn new_app(app_type: AppType) -> NewApplication {
        NewApplication {
            id: "app1".into(),
            name: "Billing".into(),
            description: None,
            app_type,
            oidc_client_metadata: json!({"redirectUris": [], "postLogoutRedirectUris": []}),
            custom_client_metadata: json!({}),
            custom_data: json!({}),
            is_third_party: false,
        }
    }

    fn secret(name: &str) -> NewSecret {
        NewSecret {
            name: name.into(),
            lookup_hash: format!("hash-{name}"),
            vault_ref: format!("vault-{name}"),
            expires_at: None,
        }
    }

    fn created(app_type: AppType) -> Vec<ApplicationEvent> {
        vec![ApplicationEvent::Created(new_app(app_type))]
    }

    #[test]
    fn a_machine_to_machine_app_is_created_with_its_default_secret() {
        Given::<Application>::with(())
            .given_no_previous_events()
            .when(ApplicationCommand::Create {
                application: new_app(AppType::MachineToMachine),
                default_secret: Some(secret(DEFAULT_SECRET_NAME)),
            })
            .then_expect_events(vec![
                ApplicationEvent::Created(new_app(AppType::MachineToMachine)),
                ApplicationEvent::SecretAdded(secret(DEFAULT_SECRET_NAME)),
            ]);
    }

    #[test]
    fn a_public_client_cannot_hold_a_secret() {
        Given::<Application>::with(())
            .given(created(AppType::Spa))
            .when(ApplicationCommand::AddSecret(secret("ci")))
            .then_expect_error(ApplicationError::SecretsNotSupported { app_type: "SPA" });
    }

    #[test]
    fn a_machine_to_machine_app_cannot_be_third_party() {
        let mut app = new_app(AppType::MachineToMachine);
        app.is_third_party = true;
        Given::<Application>::with(())
            .given_no_previous_events()
            .when(ApplicationCommand::Create {
                application: app,
                default_secret: None,
            })
            .then_expect_error(ApplicationError::InvalidThirdPartyType);
    }

    #[test]
    fn device_flow_is_native_only_and_fixed_at_creation() {
        let mut app = new_app(AppType::Spa);
        app.custom_client_metadata = json!({"isDeviceFlow": true});
        Given::<Application>::with(())
            .given_no_previous_events()
            .when(ApplicationCommand::Create {
                application: app,
                default_secret: None,
            })
            .then_expect_error(ApplicationError::DeviceFlowNativeOnly);

        Given::<Application>::with(())
            .given(created(AppType::Native))
            .when(ApplicationCommand::Update(ApplicationPatch {
                custom_client_metadata: Some(json!({"isDeviceFlow": true})),
                ..ApplicationPatch::default()
            }))
            .then_expect_error(ApplicationError::DeviceFlowNotChangeable);
    }

    #[test]
    fn secret_names_are_unique_per_application() {
        Given::<Application>::with(())
            .given(created(AppType::Traditional))
            .and(vec![ApplicationEvent::SecretAdded(secret("ci"))])
            .when(ApplicationCommand::AddSecret(secret("ci")))
            .then_expect_error(ApplicationError::SecretNameExists { name: "ci".into() });
    }

    #[test]
    fn renaming_onto_an_existing_name_is_refused() {
        Given::<Application>::with(())
            .given(created(AppType::Traditional))
            .and(vec![
                ApplicationEvent::SecretAdded(secret("a")),
                ApplicationEvent::SecretAdded(secret("b")),
            ])
            .when(ApplicationCommand::RenameSecret {
                name: "a".into(),
                new_name: "b".into(),
            })
            .then_expect_error(ApplicationError::SecretNameExists { name: "b".into() });
    }

    #[test]
    fn deleting_a_secret_retires_its_vault_entry() {
        let events = Given::<Application>::with(())
            .given(created(AppType::Traditional))
            .and(vec![ApplicationEvent::SecretAdded(secret("ci"))])
            .when(ApplicationCommand::DeleteSecret { name: "ci".into() })
            .inspect_result()
            .unwrap();
        assert_eq!(events[0].retired_vault_refs(), vec!["vault-ci".to_owned()]);
    }

    #[test]
    fn deleting_an_application_deletes_its_secrets_first() {
        Given::<Application>::with(())
            .given(created(AppType::MachineToMachine))
            .and(vec![ApplicationEvent::SecretAdded(secret("ci"))])
            .when(ApplicationCommand::Delete)
            .then_expect_events(vec![
                ApplicationEvent::SecretDeleted {
                    name: "ci".into(),
                    vault_ref: "vault-ci".into(),
                },
                ApplicationEvent::Deleted {},
            ]);
    }

    #[test]
    fn a_deleted_application_accepts_no_command() {
        Given::<Application>::with(())
            .given(created(AppType::Traditional))
            .and(vec![ApplicationEvent::Deleted {}])
            .when(ApplicationCommand::Delete)
            .then_expect_error(ApplicationError::NotFound);
    }

    #[test]
    fn assigning_roles_ignores_those_already_held() {
        Given::<Application>::with(())
            .given(created(AppType::MachineToMachine))
            .and(vec![ApplicationEvent::RolesAssigned {
                role_ids: vec!["r1".into()],
            }])
            .when(ApplicationCommand::AssignRoles {
                role_ids: vec!["r1".into(), "r2".into(), "r2".into()],
            })
            .then_expect_events(vec![ApplicationEvent::RolesAssigned {
                role_ids: vec!["r2".into()],
            }]);
    }

    #[test]
    fn replacing_roles_removes_the_rest() {
        Given::<Application>::with(())
            .given(created(AppType::MachineToMachine))
            .and(vec![ApplicationEvent::RolesAssigned {
                role_ids: vec!["r1".into(), "r2".into()],
            }])
            .when(ApplicationCommand::ReplaceRoles {
                role_ids: vec!["r2".into(), "r3".into()],
            })
            .then_expect_events(vec![
                ApplicationEvent::RoleRemoved {
                    role_id: "r1".into(),
                },
                ApplicationEvent::RolesAssigned {
                    role_ids: vec!["r3".into()],
                },
            ]);
    }

    #[test]
    fn an_empty_update_is_refused() {
        Given::<Application>::with(())
            .given(created(AppType::Spa))
            .when(ApplicationCommand::Update(ApplicationPatch::default()))
            .then_expect_error(ApplicationError::EmptyUpdate);
    }

    #[test]
    fn events_round_trip_through_the_codec() {
        let event = ApplicationEvent::SecretRenamed {
            name: "a".into(),
            new_name: "b".into(),
        };
        let encoded = crate::encode(&event).unwrap();
        assert_eq!(encoded.event_type, "application.secret_renamed");
        assert_eq!(encoded.version, 1);
        assert_eq!(encoded.payload, json!({"name": "a", "newName": "b"}));
        let decoded: ApplicationEvent =
            crate::decode(&encoded.event_type, &encoded.payload).unwrap();
        assert_eq!(decoded, event);
        let deleted = crate::encode(&ApplicationEvent::Deleted {}).unwrap();
        let back: ApplicationEvent = crate::decode(&deleted.event_type, &deleted.payload).unwrap();
        assert_eq!(back, ApplicationEvent::Deleted {});
    }
}
