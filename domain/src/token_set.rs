//! The token vault of a social identity (Logto's federated token set, `enableTokenStorage`):
//! the provider's access and refresh tokens for one user and one connector target, sealed in
//! the vault by the handler. One stream per user and target (`<userId>/<target>`). Events say
//! that a set was stored, refreshed or erased and carry what is not secret (scope, type,
//! expiry); the tokens themselves never enter the log, and each change retires the vault entry
//! it replaces in the same transaction.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// What is known of a token set without opening it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenMetadata {
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    pub has_refresh_token: bool,
}

/// Why stored tokens were erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// The connector's `enableTokenStorage` was turned off.
    StorageDisabled,
    /// The identity was unlinked from the user.
    IdentityUnlinked,
    UserDeleted,
    ConnectorDeleted,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenSetCommand {
    /// A sign-in (or link) brought a new set: it replaces whatever was stored.
    Store {
        user_id: String,
        target: String,
        connector_id: String,
        vault_ref: String,
        metadata: TokenMetadata,
    },
    /// A refresh brought a new set computed from the stored `replaces`: it is recorded only if
    /// that set is still the stored one.
    Refresh {
        replaces: String,
        vault_ref: String,
        metadata: TokenMetadata,
    },
    Erase {
        reason: ErasureReason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TokenSetEvent {
    #[serde(rename = "token_set.stored")]
    #[serde(rename_all = "camelCase")]
    Stored {
        user_id: String,
        target: String,
        connector_id: String,
        vault_ref: String,
        #[serde(flatten)]
        metadata: TokenMetadata,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retired_vault_ref: Option<String>,
    },
    #[serde(rename = "token_set.refreshed")]
    #[serde(rename_all = "camelCase")]
    Refreshed {
        vault_ref: String,
        #[serde(flatten)]
        metadata: TokenMetadata,
        retired_vault_ref: String,
    },
    #[serde(rename = "token_set.erased")]
    #[serde(rename_all = "camelCase")]
    Erased {
        retired_vault_ref: String,
        reason: ErasureReason,
    },
}

impl cqrs_es::DomainEvent for TokenSetEvent {
    fn event_type(&self) -> String {
        match self {
            TokenSetEvent::Stored { .. } => "token_set.stored",
            TokenSetEvent::Refreshed { .. } => "token_set.refreshed",
            TokenSetEvent::Erased { .. } => "token_set.erased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            TokenSetEvent::Stored { .. }
            | TokenSetEvent::Refreshed { .. }
            | TokenSetEvent::Erased { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for TokenSetEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            TokenSetEvent::Stored {
                retired_vault_ref, ..
            } => retired_vault_ref.iter().cloned().collect(),
            TokenSetEvent::Refreshed {
                retired_vault_ref, ..
            }
            | TokenSetEvent::Erased {
                retired_vault_ref, ..
            } => vec![retired_vault_ref.clone()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenSetError {
    #[error("no token set is stored")]
    NotStored,
    #[error("the token set was replaced meanwhile")]
    Replaced,
}

#[derive(Debug, Clone, Default)]
pub enum TokenSet {
    #[default]
    Empty,
    Stored {
        vault_ref: String,
    },
}

impl Aggregate for TokenSet {
    const TYPE: &'static str = "token_set";
    type Command = TokenSetCommand;
    type Event = TokenSetEvent;
    type Error = TokenSetError;

    fn decide(&self, command: TokenSetCommand) -> Result<Vec<TokenSetEvent>, TokenSetError> {
        let stored = match self {
            TokenSet::Empty => None,
            TokenSet::Stored { vault_ref } => Some(vault_ref),
        };
        Ok(match command {
            TokenSetCommand::Store {
                user_id,
                target,
                connector_id,
                vault_ref,
                metadata,
            } => vec![TokenSetEvent::Stored {
                user_id,
                target,
                connector_id,
                vault_ref,
                metadata,
                retired_vault_ref: stored.cloned(),
            }],
            TokenSetCommand::Refresh {
                replaces,
                vault_ref,
                metadata,
            } => match stored {
                None => return Err(TokenSetError::NotStored),
                Some(current) if *current != replaces => return Err(TokenSetError::Replaced),
                Some(current) => vec![TokenSetEvent::Refreshed {
                    vault_ref,
                    metadata,
                    retired_vault_ref: current.clone(),
                }],
            },
            TokenSetCommand::Erase { reason } => match stored {
                // Erasing nothing is nothing to record: disabling storage sweeps every user.
                None => Vec::new(),
                Some(current) => vec![TokenSetEvent::Erased {
                    retired_vault_ref: current.clone(),
                    reason,
                }],
            },
        })
    }

    fn apply(&mut self, event: &TokenSetEvent) {
        match event {
            TokenSetEvent::Stored { vault_ref, .. }
            | TokenSetEvent::Refreshed { vault_ref, .. } => {
                *self = TokenSet::Stored {
                    vault_ref: vault_ref.clone(),
                };
            }
            TokenSetEvent::Erased { .. } => *self = TokenSet::Empty,
        }
    }

    /// The tokens are the user's: their events (and the request's IP and user agent) are
    /// sealed under the user's key.
    fn data_subject(&self, stream_id: &str, _events: &[TokenSetEvent]) -> Option<String> {
        stream_id.split_once('/').map(|(user, _)| user.to_owned())
    }
}

/// The stream of `user_id`'s tokens from `target`.
pub fn stream_id(user_id: &str, target: &str) -> String {
    format!("{user_id}/{target}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn metadata() -> TokenMetadata {
        TokenMetadata {
            token_type: "Bearer".into(),
            scope: Some("openid".into()),
            expires_at: Some(1_000),
            has_refresh_token: true,
        }
    }

    fn stored(vault_ref: &str) -> TokenSetEvent {
        TokenSetEvent::Stored {
            user_id: "u1".into(),
            target: "acme".into(),
            connector_id: "c1".into(),
            vault_ref: vault_ref.into(),
            metadata: metadata(),
            retired_vault_ref: None,
        }
    }

    #[test]
    fn a_new_set_retires_the_old_one() {
        let events = Given::<TokenSet>::with(())
            .given(vec![stored("v1")])
            .when(TokenSetCommand::Store {
                user_id: "u1".into(),
                target: "acme".into(),
                connector_id: "c1".into(),
                vault_ref: "v2".into(),
                metadata: metadata(),
            })
            .inspect_result()
            .unwrap();
        assert_eq!(events[0].retired_vault_refs(), vec!["v1".to_owned()]);
    }

    #[test]
    fn a_refresh_replaces_only_the_set_it_started_from() {
        Given::<TokenSet>::with(())
            .given(vec![stored("v1"), stored("v2")])
            .when(TokenSetCommand::Refresh {
                replaces: "v1".into(),
                vault_ref: "v3".into(),
                metadata: metadata(),
            })
            .then_expect_error(TokenSetError::Replaced);
        Given::<TokenSet>::with(())
            .given(vec![])
            .when(TokenSetCommand::Refresh {
                replaces: "v1".into(),
                vault_ref: "v3".into(),
                metadata: metadata(),
            })
            .then_expect_error(TokenSetError::NotStored);
    }

    #[test]
    fn erasing_retires_the_tokens_once() {
        let erased = TokenSetEvent::Erased {
            retired_vault_ref: "v1".into(),
            reason: ErasureReason::StorageDisabled,
        };
        Given::<TokenSet>::with(())
            .given(vec![stored("v1")])
            .when(TokenSetCommand::Erase {
                reason: ErasureReason::StorageDisabled,
            })
            .then_expect_events(vec![erased.clone()]);
        Given::<TokenSet>::with(())
            .given(vec![stored("v1"), erased])
            .when(TokenSetCommand::Erase {
                reason: ErasureReason::StorageDisabled,
            })
            .then_expect_events(vec![]);
        assert_eq!(
            TokenSet::default().data_subject("u1/acme", &[]),
            Some("u1".into())
        );
    }
}
