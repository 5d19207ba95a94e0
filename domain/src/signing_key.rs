//! The OIDC signing key set: one stream holding the keys tokens are signed with. The private
//! halves live sealed in the vault; events carry only the public key and the vault reference.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

/// The single stream of the key set.
pub const STREAM_ID: &str = "oidc-private-keys";
/// Logto keeps the current key and the previous one, so tokens signed just before a rotation
/// still verify; a rotation retires anything older.
pub const KEYS_KEPT: usize = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSigningKey {
    pub kid: String,
    /// JWA name, e.g. `ES384`.
    pub algorithm: String,
    pub public_jwk: Value,
    pub vault_ref: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SigningKeyCommand {
    /// Generates the first key; does nothing when the set already has one (several nodes may
    /// start at once).
    Initialize(NewSigningKey),
    Rotate(NewSigningKey),
    Delete {
        kid: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SigningKeyEvent {
    #[serde(rename = "signing_key.generated")]
    Generated(NewSigningKey),
    #[serde(rename = "signing_key.retired")]
    #[serde(rename_all = "camelCase")]
    Retired { kid: String, vault_ref: String },
}

impl cqrs_es::DomainEvent for SigningKeyEvent {
    fn event_type(&self) -> String {
        match self {
            SigningKeyEvent::Generated(_) => "signing_key.generated",
            SigningKeyEvent::Retired { .. } => "signing_key.retired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            SigningKeyEvent::Generated(_) | SigningKeyEvent::Retired { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for SigningKeyEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            SigningKeyEvent::Retired { vault_ref, .. } => vec![vault_ref.clone()],
            SigningKeyEvent::Generated(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("no signing key with id {kid}")]
    NotFound { kid: String },
    #[error("the current signing key cannot be deleted; rotate first")]
    CurrentKey,
}

/// Key ids and vault references, oldest first.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    keys: Vec<(String, String)>,
}

impl SigningKeys {
    fn retire_beyond(&self, kept: usize) -> Vec<SigningKeyEvent> {
        let excess = self.keys.len().saturating_sub(kept);
        self.keys[..excess]
            .iter()
            .map(|(kid, vault_ref)| SigningKeyEvent::Retired {
                kid: kid.clone(),
                vault_ref: vault_ref.clone(),
            })
            .collect()
    }
}

impl Aggregate for SigningKeys {
    const TYPE: &'static str = "signing_key";
    type Command = SigningKeyCommand;
    type Event = SigningKeyEvent;
    type Error = SigningKeyError;

    fn decide(&self, command: SigningKeyCommand) -> Result<Vec<SigningKeyEvent>, SigningKeyError> {
        match command {
            SigningKeyCommand::Initialize(key) => Ok(if self.keys.is_empty() {
                vec![SigningKeyEvent::Generated(key)]
            } else {
                Vec::new()
            }),
            SigningKeyCommand::Rotate(key) => {
                // The new key joins, so only KEYS_KEPT - 1 of the existing ones may stay.
                let mut events = self.retire_beyond(KEYS_KEPT - 1);
                events.push(SigningKeyEvent::Generated(key));
                Ok(events)
            }
            SigningKeyCommand::Delete { kid } => {
                match self.keys.iter().position(|(k, _)| *k == kid) {
                    None => Err(SigningKeyError::NotFound { kid }),
                    Some(index) if index + 1 == self.keys.len() => Err(SigningKeyError::CurrentKey),
                    Some(index) => Ok(vec![SigningKeyEvent::Retired {
                        kid,
                        vault_ref: self.keys[index].1.clone(),
                    }]),
                }
            }
        }
    }

    fn apply(&mut self, event: &SigningKeyEvent) {
        match event {
            SigningKeyEvent::Generated(key) => {
                self.keys.push((key.kid.clone(), key.vault_ref.clone()));
            }
            SigningKeyEvent::Retired { kid, .. } => self.keys.retain(|(k, _)| k != kid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn key(kid: &str) -> NewSigningKey {
        NewSigningKey {
            kid: kid.into(),
            algorithm: "ES384".into(),
            public_jwk: serde_json::json!({"kid": kid}),
            vault_ref: format!("vault-{kid}"),
        }
    }

    #[test]
    fn initializing_twice_generates_once() {
        Given::<SigningKeys>::with(())
            .given(vec![SigningKeyEvent::Generated(key("a"))])
            .when(SigningKeyCommand::Initialize(key("b")))
            .then_expect_events(vec![]);
    }

    #[test]
    fn rotation_keeps_the_current_and_the_previous_key() {
        Given::<SigningKeys>::with(())
            .given(vec![
                SigningKeyEvent::Generated(key("a")),
                SigningKeyEvent::Generated(key("b")),
            ])
            .when(SigningKeyCommand::Rotate(key("c")))
            .then_expect_events(vec![
                SigningKeyEvent::Retired {
                    kid: "a".into(),
                    vault_ref: "vault-a".into(),
                },
                SigningKeyEvent::Generated(key("c")),
            ]);
    }

    #[test]
    fn the_current_key_cannot_be_deleted_but_the_previous_can() {
        let given = vec![
            SigningKeyEvent::Generated(key("a")),
            SigningKeyEvent::Generated(key("b")),
        ];
        Given::<SigningKeys>::with(())
            .given(given.clone())
            .when(SigningKeyCommand::Delete { kid: "b".into() })
            .then_expect_error(SigningKeyError::CurrentKey);
        Given::<SigningKeys>::with(())
            .given(given)
            .when(SigningKeyCommand::Delete { kid: "a".into() })
            .then_expect_events(vec![SigningKeyEvent::Retired {
                kid: "a".into(),
                vault_ref: "vault-a".into(),
            }]);
    }
}
