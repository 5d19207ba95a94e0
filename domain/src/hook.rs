//! Webhooks (Logto's hooks): where to POST which events, signed with the hook's key. The
//! signing key is sealed in the vault under `signing_key_ref` (Logto shows it again on every
//! read) and retired when it is replaced or the hook deleted. Deliveries are their own streams
//! (`hook_delivery.rs`), appended by the webhook follower after the fact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};
use crate::patch::Patch;

/// Logto's `HookConfig`: the endpoint, extra request headers, and the deprecated retry count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewHook {
    pub id: String,
    pub name: String,
    /// Logto's legacy single event, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub events: Vec<String>,
    pub config: HookConfig,
    pub enabled: bool,
    pub signing_key_ref: String,
}

/// Logto's `PATCH /hooks/:id`: the given fields replace the old ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub event: Patch<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<HookConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HookCommand {
    Create(NewHook),
    Update(HookPatch),
    /// The new key is sealed under `vault_ref` in the same unit of work.
    RotateSigningKey {
        vault_ref: String,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum HookEvent {
    #[serde(rename = "hook.created")]
    Created(NewHook),
    #[serde(rename = "hook.updated")]
    Updated(HookPatch),
    #[serde(rename = "hook.signing_key_rotated")]
    #[serde(rename_all = "camelCase")]
    SigningKeyRotated {
        vault_ref: String,
        retired_ref: String,
    },
    #[serde(rename = "hook.deleted")]
    #[serde(rename_all = "camelCase")]
    Deleted { signing_key_ref: String },
}

impl cqrs_es::DomainEvent for HookEvent {
    fn event_type(&self) -> String {
        match self {
            HookEvent::Created(_) => "hook.created",
            HookEvent::Updated(_) => "hook.updated",
            HookEvent::SigningKeyRotated { .. } => "hook.signing_key_rotated",
            HookEvent::Deleted { .. } => "hook.deleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            HookEvent::Created(_)
            | HookEvent::Updated(_)
            | HookEvent::SigningKeyRotated { .. }
            | HookEvent::Deleted { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for HookEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            HookEvent::SigningKeyRotated { retired_ref, .. } => vec![retired_ref.clone()],
            HookEvent::Deleted { signing_key_ref } => vec![signing_key_ref.clone()],
            HookEvent::Created(_) | HookEvent::Updated(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("the hook does not exist")]
    NotFound,
    #[error("the hook already exists")]
    AlreadyExists,
    #[error("the update changes nothing")]
    EmptyUpdate,
}

#[derive(Debug, Clone, Default)]
pub enum Hook {
    #[default]
    New,
    Live {
        signing_key_ref: String,
    },
    Deleted,
}

impl Aggregate for Hook {
    const TYPE: &'static str = "hook";
    type Command = HookCommand;
    type Event = HookEvent;
    type Error = HookError;

    fn decide(&self, command: HookCommand) -> Result<Vec<HookEvent>, HookError> {
        match (self, command) {
            (Hook::New, HookCommand::Create(hook)) => Ok(vec![HookEvent::Created(hook)]),
            (Hook::Live { .. } | Hook::Deleted, HookCommand::Create(_)) => {
                Err(HookError::AlreadyExists)
            }
            (Hook::New | Hook::Deleted, _) => Err(HookError::NotFound),
            (Hook::Live { .. }, HookCommand::Update(patch)) if patch == HookPatch::default() => {
                Err(HookError::EmptyUpdate)
            }
            (Hook::Live { .. }, HookCommand::Update(patch)) => Ok(vec![HookEvent::Updated(patch)]),
            (Hook::Live { signing_key_ref }, HookCommand::RotateSigningKey { vault_ref }) => {
                Ok(vec![HookEvent::SigningKeyRotated {
                    vault_ref,
                    retired_ref: signing_key_ref.clone(),
                }])
            }
            (Hook::Live { signing_key_ref }, HookCommand::Delete) => Ok(vec![HookEvent::Deleted {
                signing_key_ref: signing_key_ref.clone(),
            }]),
        }
    }

    fn apply(&mut self, event: &HookEvent) {
        match event {
            HookEvent::Created(hook) => {
                *self = Hook::Live {
                    signing_key_ref: hook.signing_key_ref.clone(),
                };
            }
            HookEvent::SigningKeyRotated { vault_ref, .. } => {
                if let Hook::Live { signing_key_ref } = self {
                    *signing_key_ref = vault_ref.clone();
                }
            }
            HookEvent::Deleted { .. } => *self = Hook::Deleted,
            HookEvent::Updated(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn created() -> HookEvent {
        HookEvent::Created(NewHook {
            id: "h1".into(),
            name: "hook".into(),
            event: None,
            events: vec!["PostSignIn".into()],
            config: HookConfig {
                url: "https://example.com/hook".into(),
                headers: None,
                retries: None,
            },
            enabled: true,
            signing_key_ref: "k1".into(),
        })
    }

    #[test]
    fn a_rotated_key_retires_the_old_one_and_deletion_the_current_one() {
        let events = Given::<Hook>::with(())
            .given(vec![created()])
            .when(HookCommand::RotateSigningKey {
                vault_ref: "k2".into(),
            })
            .inspect_result()
            .unwrap();
        assert_eq!(events[0].retired_vault_refs(), vec!["k1".to_owned()]);
        Given::<Hook>::with(())
            .given(vec![created(), events[0].clone()])
            .when(HookCommand::Delete)
            .then_expect_events(vec![HookEvent::Deleted {
                signing_key_ref: "k2".into(),
            }]);
        Given::<Hook>::with(())
            .given(vec![
                created(),
                HookEvent::Deleted {
                    signing_key_ref: "k1".into(),
                },
            ])
            .when(HookCommand::Update(HookPatch {
                enabled: Some(false),
                ..HookPatch::default()
            }))
            .then_expect_error(HookError::NotFound);
    }
}
