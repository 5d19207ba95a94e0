//! Connectors: the configured integrations with message providers (an SMTP server) and identity
//! providers, in Logto's sense. One stream per connector. The configuration is recorded without
//! its secrets: those are sealed in the vault under `secrets_ref` by the handler, and each
//! change that replaces or drops them retires the old vault entry in the same transaction.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

/// Logto's connector types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectorType {
    Email,
    Sms,
    Social,
}

impl ConnectorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::Email => "Email",
            ConnectorType::Sms => "Sms",
            ConnectorType::Social => "Social",
        }
    }

    /// Email and SMS connectors deliver passcodes; a tenant has one of each at most.
    pub fn is_passwordless(self) -> bool {
        match self {
            ConnectorType::Email | ConnectorType::Sms => true,
            ConnectorType::Social => false,
        }
    }
}

/// A configuration as recorded: the factory's JSON with every secret field taken out, the JSON
/// pointers those fields had, and the vault entry holding their values (none when the
/// configuration has no secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedConfig {
    pub config: Value,
    #[serde(default)]
    pub secret_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewConnector {
    pub id: String,
    /// The factory (`simple-mail-transfer-protocol`, `oidc`, ...).
    pub connector_id: String,
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    #[serde(flatten)]
    pub config: RecordedConfig,
    /// Overrides of the factory's metadata (`target`, `name`, `logo`, `logoDark`).
    pub metadata: Value,
    pub sync_profile: bool,
    pub enable_token_storage: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RecordedConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_profile: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_token_storage: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorCommand {
    Create(NewConnector),
    Update(ConnectorPatch),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ConnectorEvent {
    #[serde(rename = "connector.created")]
    Created(NewConnector),
    #[serde(rename = "connector.updated")]
    #[serde(rename_all = "camelCase")]
    Updated {
        #[serde(flatten)]
        patch: ConnectorPatch,
        /// The vault entry of the configuration this update replaced.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retired_secrets_ref: Option<String>,
    },
    #[serde(rename = "connector.deleted")]
    #[serde(rename_all = "camelCase")]
    Deleted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retired_secrets_ref: Option<String>,
    },
}

impl cqrs_es::DomainEvent for ConnectorEvent {
    fn event_type(&self) -> String {
        match self {
            ConnectorEvent::Created(_) => "connector.created",
            ConnectorEvent::Updated { .. } => "connector.updated",
            ConnectorEvent::Deleted { .. } => "connector.deleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            ConnectorEvent::Created(_)
            | ConnectorEvent::Updated { .. }
            | ConnectorEvent::Deleted { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for ConnectorEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            ConnectorEvent::Created(_) => Vec::new(),
            ConnectorEvent::Updated {
                retired_secrets_ref,
                ..
            }
            | ConnectorEvent::Deleted {
                retired_secrets_ref,
            } => retired_secrets_ref.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("the connector does not exist")]
    NotFound,
    #[error("a connector with this id already exists")]
    AlreadyExists,
}

#[derive(Debug, Clone, Default)]
pub enum Connector {
    #[default]
    New,
    Live {
        secrets_ref: Option<String>,
    },
    Deleted,
}

impl Aggregate for Connector {
    const TYPE: &'static str = "connector";
    type Command = ConnectorCommand;
    type Event = ConnectorEvent;
    type Error = ConnectorError;

    fn decide(&self, command: ConnectorCommand) -> Result<Vec<ConnectorEvent>, ConnectorError> {
        match (self, command) {
            (Connector::New, ConnectorCommand::Create(connector)) => {
                Ok(vec![ConnectorEvent::Created(connector)])
            }
            // A deleted connector's id stays taken: its history names it.
            (Connector::Live { .. } | Connector::Deleted, ConnectorCommand::Create(_)) => {
                Err(ConnectorError::AlreadyExists)
            }
            (
                Connector::New | Connector::Deleted,
                ConnectorCommand::Update(_) | ConnectorCommand::Delete,
            ) => Err(ConnectorError::NotFound),
            (Connector::Live { .. }, ConnectorCommand::Update(patch))
                if patch == ConnectorPatch::default() =>
            {
                Ok(Vec::new())
            }
            (Connector::Live { secrets_ref }, ConnectorCommand::Update(patch)) => {
                let replaced = patch
                    .config
                    .as_ref()
                    .is_some_and(|config| config.secrets_ref != *secrets_ref);
                Ok(vec![ConnectorEvent::Updated {
                    patch,
                    retired_secrets_ref: secrets_ref.clone().filter(|_| replaced),
                }])
            }
            (Connector::Live { secrets_ref }, ConnectorCommand::Delete) => {
                Ok(vec![ConnectorEvent::Deleted {
                    retired_secrets_ref: secrets_ref.clone(),
                }])
            }
        }
    }

    fn apply(&mut self, event: &ConnectorEvent) {
        match (self, event) {
            (this @ Connector::New, ConnectorEvent::Created(connector)) => {
                *this = Connector::Live {
                    secrets_ref: connector.config.secrets_ref.clone(),
                };
            }
            (Connector::Live { secrets_ref }, ConnectorEvent::Updated { patch, .. }) => {
                if let Some(config) = &patch.config {
                    secrets_ref.clone_from(&config.secrets_ref);
                }
            }
            (this @ Connector::Live { .. }, ConnectorEvent::Deleted { .. }) => {
                *this = Connector::Deleted;
            }
            (Connector::Live { .. } | Connector::Deleted, ConnectorEvent::Created(_))
            | (Connector::New | Connector::Deleted, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;
    use serde_json::json;

    fn config(secrets_ref: Option<&str>) -> RecordedConfig {
        RecordedConfig {
            config: json!({"host": "smtp.example", "auth": {"user": "u"}}),
            secret_paths: vec!["/auth/pass".into()],
            secrets_ref: secrets_ref.map(str::to_owned),
        }
    }

    fn created() -> ConnectorEvent {
        ConnectorEvent::Created(NewConnector {
            id: "c1".into(),
            connector_id: "simple-mail-transfer-protocol".into(),
            connector_type: ConnectorType::Email,
            config: config(Some("v1")),
            metadata: json!({}),
            sync_profile: false,
            enable_token_storage: false,
        })
    }

    #[test]
    fn a_new_configuration_retires_the_old_secrets() {
        Given::<Connector>::with(())
            .given(vec![created()])
            .when(ConnectorCommand::Update(ConnectorPatch {
                config: Some(config(Some("v2"))),
                ..ConnectorPatch::default()
            }))
            .then_expect_events(vec![ConnectorEvent::Updated {
                patch: ConnectorPatch {
                    config: Some(config(Some("v2"))),
                    ..ConnectorPatch::default()
                },
                retired_secrets_ref: Some("v1".into()),
            }]);
    }

    #[test]
    fn a_metadata_change_keeps_the_secrets() {
        let patch = ConnectorPatch {
            metadata: Some(json!({"name": {"en": "Mail"}})),
            ..ConnectorPatch::default()
        };
        Given::<Connector>::with(())
            .given(vec![created()])
            .when(ConnectorCommand::Update(patch.clone()))
            .then_expect_events(vec![ConnectorEvent::Updated {
                patch,
                retired_secrets_ref: None,
            }]);
    }

    #[test]
    fn deleting_retires_the_secrets_and_frees_nothing_twice() {
        let deleted = ConnectorEvent::Deleted {
            retired_secrets_ref: Some("v1".into()),
        };
        assert_eq!(deleted.retired_vault_refs(), vec!["v1".to_owned()]);
        Given::<Connector>::with(())
            .given(vec![created()])
            .when(ConnectorCommand::Delete)
            .then_expect_events(vec![deleted.clone()]);
        Given::<Connector>::with(())
            .given(vec![created(), deleted])
            .when(ConnectorCommand::Delete)
            .then_expect_error(ConnectorError::NotFound);
    }
}
