//! Connector factories (Logto's connector packages): what each one is, how its configuration is
//! checked, which of its fields are secrets, and what it can do (send email, sign in). A new
//! factory is one file here and one line in `FACTORIES`.
//!
//! Secrets never reach the log or a read model: `split` takes a configuration's secret fields
//! out before it is recorded, the handler seals them in the vault, and `reassemble` puts them
//! back for the API (which returns configurations whole, as Logto does) and for sending.

pub mod oidc;
pub mod smtp;
pub mod social;
pub mod template;
pub mod token_vault;

use async_trait::async_trait;
use domain::connector::{ConnectorType, RecordedConfig};
use domain::message::UsageType;
use projections::connectors::{self, ConnectorRow};
use serde_json::{Map, Value};

use crate::crypto::{CryptoError, ids};
use crate::store::{EventStore, StoreError};

/// Every factory this server offers.
pub static FACTORIES: &[&dyn Factory] = &[&smtp::Smtp, &oidc::Oidc];

pub fn factory(id: &str) -> Option<&'static dyn Factory> {
    FACTORIES.iter().copied().find(|factory| factory.id() == id)
}

/// What is wrong with a configuration, as a line naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

#[async_trait]
pub trait Factory: Sync {
    /// Logto's factory id (`connectorId` of a connector).
    fn id(&self) -> &'static str;

    fn connector_type(&self) -> ConnectorType;

    /// Logto's connector metadata (`id`, `target`, `platform`, `name`, `description`, `logo`,
    /// `logoDark`, `readme`, `configTemplate`/`formItems`, `isStandard`, ...).
    fn metadata(&self) -> Value;

    /// Standard connectors (Logto's OIDC and OAuth 2.0 ones) may have their metadata overridden
    /// and several instances.
    fn is_standard(&self) -> bool {
        self.metadata()
            .get("isStandard")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn is_token_storage_supported(&self) -> bool {
        self.metadata()
            .get("isTokenStorageSupported")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// JSON pointers of the configuration fields that are secrets.
    fn secret_pointers(&self) -> &'static [&'static str];

    fn validate(&self, config: &Value) -> Result<(), InvalidConfig>;

    /// The factory's email sending, if it sends email.
    fn email(&self) -> Option<&dyn EmailFactory> {
        None
    }

    /// The factory's social sign-in, if it signs people in.
    fn social(&self) -> Option<&dyn social::SocialFactory> {
        None
    }
}

/// One email, ready for a template.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The idempotency key: also the `Message-ID`.
    pub message_id: String,
    pub to: String,
    pub usage_type: UsageType,
    pub ui_locales: Option<String>,
    /// The template's variables (`code`, `locale`, `application`, `user`...).
    pub payload: Map<String, Value>,
}

/// Why a message was not sent. `transient` failures (server unreachable, timeouts, 4xx replies)
/// are worth retrying; others (5xx replies, no template) are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub transient: bool,
    pub reason: String,
    pub template_not_found: bool,
}

impl SendError {
    pub fn permanent(error: impl std::fmt::Display) -> SendError {
        SendError {
            transient: false,
            reason: error.to_string(),
            template_not_found: false,
        }
    }

    pub fn transient(reason: impl Into<String>) -> SendError {
        SendError {
            transient: true,
            reason: reason.into(),
            template_not_found: false,
        }
    }

    pub fn template_not_found() -> SendError {
        SendError {
            transient: false,
            reason: "Unable to find correct template in connector config.".to_owned(),
            template_not_found: true,
        }
    }

    /// The error and its causes, which carry the server's reply or the network's complaint.
    pub fn from_smtp(error: lettre::transport::smtp::Error) -> SendError {
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            source = cause.source();
        }
        SendError {
            transient: !error.is_permanent(),
            reason,
            template_not_found: false,
        }
    }
}

#[async_trait]
pub trait EmailFactory: Sync {
    async fn send(&self, config: &Value, mail: &Mail) -> Result<(), SendError>;
}

/// A configuration with its secret fields taken out, and those fields by pointer.
pub struct Split {
    pub public: Value,
    pub secrets: Map<String, Value>,
}

fn parent_and_key(pointer: &str) -> Option<(&str, &str)> {
    let (parent, key) = pointer.rsplit_once('/')?;
    Some((parent, key))
}

pub fn split(config: &Value, pointers: &[&str]) -> Split {
    let mut public = config.clone();
    let mut secrets = Map::new();
    for pointer in pointers {
        let Some((parent, key)) = parent_and_key(pointer) else {
            continue;
        };
        let taken = public
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .and_then(|object| object.remove(key));
        if let Some(value) = taken {
            secrets.insert((*pointer).to_owned(), value);
        }
    }
    Split { public, secrets }
}

/// Puts secret fields back where `split` took them from.
pub fn reassemble(public: &Value, secrets: &Map<String, Value>) -> Value {
    let mut config = public.clone();
    for (pointer, value) in secrets {
        let Some((parent, key)) = parent_and_key(pointer) else {
            continue;
        };
        if let Some(object) = config.pointer_mut(parent).and_then(Value::as_object_mut) {
            object.insert(key.to_owned(), value.clone());
        }
    }
    config
}

/// Secret fields to seal into the vault, under their reference.
pub struct Sealed {
    pub vault_ref: String,
    pub plaintext: Vec<u8>,
}

/// A configuration ready to record, and its secrets to seal with it, if it has any. Each
/// version of a configuration gets its own vault entry, so an update seals the new one and
/// retires the old one in one transaction.
pub fn prepare_config(
    factory: &dyn Factory,
    connector_id: &str,
    config: &Value,
) -> Result<(RecordedConfig, Option<Sealed>), CryptoError> {
    let Split { public, secrets } = split(config, factory.secret_pointers());
    if secrets.is_empty() {
        return Ok((
            RecordedConfig {
                config: public,
                secret_paths: Vec::new(),
                secrets_ref: None,
            },
            None,
        ));
    }
    let vault_ref = format!("connector/{connector_id}/secrets/{}", ids::standard_id()?);
    let plaintext = Value::Object(secrets.clone()).to_string().into_bytes();
    Ok((
        RecordedConfig {
            config: public,
            secret_paths: secrets.keys().cloned().collect(),
            secrets_ref: Some(vault_ref.clone()),
        },
        Some(Sealed {
            vault_ref,
            plaintext,
        }),
    ))
}

/// A connector's whole configuration, secrets back in place.
pub async fn full_config(store: &EventStore, row: &ConnectorRow) -> Result<Value, StoreError> {
    let Some(vault_ref) = &row.secrets_ref else {
        return Ok(row.config.clone());
    };
    let sealed = store.open_vault(vault_ref).await?.ok_or_else(|| {
        StoreError::Internal(format!(
            "connector secrets {vault_ref} missing from the vault"
        ))
    })?;
    let secrets: Map<String, Value> = serde_json::from_slice(&sealed)
        .map_err(|e| StoreError::Internal(format!("connector secrets {vault_ref}: {e}")))?;
    Ok(reassemble(&row.config, &secrets))
}

/// The Email connector, if one is configured, with its factory and whole configuration.
pub async fn email_connector(
    store: &EventStore,
) -> Result<Option<(&'static dyn EmailFactory, ConnectorRow, Value)>, StoreError> {
    let row = {
        let db = store.pool().get().await?;
        connectors::of_type(&db, ConnectorType::Email.as_str())
            .await?
            .into_iter()
            .next()
    };
    let Some(row) = row else { return Ok(None) };
    let Some(sender) = factory(&row.connector_id).and_then(|f| f.email()) else {
        return Ok(None);
    };
    let config = full_config(store, &row).await?;
    Ok(Some((sender, row, config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_come_out_and_go_back() {
        let config = json!({"host": "h", "auth": {"user": "u", "pass": "p"}, "tls": {}});
        let Split { public, secrets } = split(&config, smtp::Smtp.secret_pointers());
        assert_eq!(
            public,
            json!({"host": "h", "auth": {"user": "u"}, "tls": {}})
        );
        assert_eq!(secrets.get("/auth/pass"), Some(&json!("p")));
        assert_eq!(reassemble(&public, &secrets), config);
    }

    #[test]
    fn every_factory_is_found_by_its_id() {
        for factory in FACTORIES {
            assert_eq!(
                super::factory(factory.id()).map(|f| f.id()),
                Some(factory.id())
            );
            assert_eq!(factory.metadata()["id"], factory.id());
        }
    }
}
