//! One trip of the browser to a social identity provider and back, within an interaction
//! (Logto's social verification record). The stream is the verification id. What the trip must
//! match on return (state, nonce, PKCE verifier) is sealed in the vault under `session_ref` by
//! the handler; what the provider vouched for (the person, and the tokens) under `result_ref`.
//!
//! Each trip is used once: the return either verifies or fails it, and either way its session
//! is retired, so a replayed callback or a second ID token for the same nonce finds nothing to
//! match. The result is retired when identification takes it.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

#[derive(Debug, Clone, PartialEq)]
pub enum SocialAuthorizationCommand {
    Start {
        interaction_id: String,
        connector_id: String,
        session_ref: String,
    },
    /// The provider's answer passed every check; the result is sealed under `result_ref`.
    Verify { result_ref: String },
    /// The answer failed a check (`reason` is Logto's error code).
    Fail { reason: String },
    /// Identification took the result.
    Consume,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SocialAuthorizationEvent {
    #[serde(rename = "social_authorization.started")]
    #[serde(rename_all = "camelCase")]
    Started {
        interaction_id: String,
        connector_id: String,
        session_ref: String,
    },
    #[serde(rename = "social_authorization.verified")]
    #[serde(rename_all = "camelCase")]
    Verified {
        result_ref: String,
        retired_session_ref: String,
    },
    #[serde(rename = "social_authorization.failed")]
    #[serde(rename_all = "camelCase")]
    Failed {
        reason: String,
        retired_session_ref: String,
    },
    #[serde(rename = "social_authorization.consumed")]
    #[serde(rename_all = "camelCase")]
    Consumed { retired_result_ref: String },
}

impl cqrs_es::DomainEvent for SocialAuthorizationEvent {
    fn event_type(&self) -> String {
        match self {
            SocialAuthorizationEvent::Started { .. } => "social_authorization.started",
            SocialAuthorizationEvent::Verified { .. } => "social_authorization.verified",
            SocialAuthorizationEvent::Failed { .. } => "social_authorization.failed",
            SocialAuthorizationEvent::Consumed { .. } => "social_authorization.consumed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            SocialAuthorizationEvent::Started { .. }
            | SocialAuthorizationEvent::Verified { .. }
            | SocialAuthorizationEvent::Failed { .. }
            | SocialAuthorizationEvent::Consumed { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for SocialAuthorizationEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            SocialAuthorizationEvent::Started { .. } => Vec::new(),
            SocialAuthorizationEvent::Verified {
                retired_session_ref,
                ..
            }
            | SocialAuthorizationEvent::Failed {
                retired_session_ref,
                ..
            } => vec![retired_session_ref.clone()],
            SocialAuthorizationEvent::Consumed { retired_result_ref } => {
                vec![retired_result_ref.clone()]
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocialAuthorizationError {
    #[error("no social authorization was started with this verification id")]
    NotFound,
    #[error("this social authorization was already started")]
    AlreadyStarted,
    #[error("this social authorization has already been used")]
    AlreadyUsed,
    #[error("this social authorization has not been verified")]
    NotVerified,
}

#[derive(Debug, Clone, Default)]
pub enum SocialAuthorization {
    #[default]
    New,
    Started {
        interaction_id: String,
        session_ref: String,
    },
    Verified {
        interaction_id: String,
        result_ref: String,
    },
    /// Failed or consumed.
    Ended { interaction_id: String },
}

impl Aggregate for SocialAuthorization {
    const TYPE: &'static str = "social_authorization";
    type Command = SocialAuthorizationCommand;
    type Event = SocialAuthorizationEvent;
    type Error = SocialAuthorizationError;

    fn decide(
        &self,
        command: SocialAuthorizationCommand,
    ) -> Result<Vec<SocialAuthorizationEvent>, SocialAuthorizationError> {
        use SocialAuthorization as S;
        use SocialAuthorizationCommand as C;
        use SocialAuthorizationError as E;
        Ok(match (self, command) {
            (
                S::New,
                C::Start {
                    interaction_id,
                    connector_id,
                    session_ref,
                },
            ) => vec![SocialAuthorizationEvent::Started {
                interaction_id,
                connector_id,
                session_ref,
            }],
            (S::New, C::Verify { .. } | C::Fail { .. } | C::Consume) => {
                return Err(E::NotFound);
            }
            (S::Started { .. } | S::Verified { .. } | S::Ended { .. }, C::Start { .. }) => {
                return Err(E::AlreadyStarted);
            }
            (S::Started { session_ref, .. }, C::Verify { result_ref }) => {
                vec![SocialAuthorizationEvent::Verified {
                    result_ref,
                    retired_session_ref: session_ref.clone(),
                }]
            }
            (S::Started { session_ref, .. }, C::Fail { reason }) => {
                vec![SocialAuthorizationEvent::Failed {
                    reason,
                    retired_session_ref: session_ref.clone(),
                }]
            }
            (S::Started { .. }, C::Consume) => return Err(E::NotVerified),
            (S::Verified { result_ref, .. }, C::Consume) => {
                vec![SocialAuthorizationEvent::Consumed {
                    retired_result_ref: result_ref.clone(),
                }]
            }
            (S::Verified { .. } | S::Ended { .. }, C::Verify { .. } | C::Fail { .. })
            | (S::Ended { .. }, C::Consume) => return Err(E::AlreadyUsed),
        })
    }

    fn apply(&mut self, event: &SocialAuthorizationEvent) {
        let interaction_id = match self {
            SocialAuthorization::New => String::new(),
            SocialAuthorization::Started { interaction_id, .. }
            | SocialAuthorization::Verified { interaction_id, .. }
            | SocialAuthorization::Ended { interaction_id } => interaction_id.clone(),
        };
        *self = match event {
            SocialAuthorizationEvent::Started {
                interaction_id,
                session_ref,
                ..
            } => SocialAuthorization::Started {
                interaction_id: interaction_id.clone(),
                session_ref: session_ref.clone(),
            },
            SocialAuthorizationEvent::Verified { result_ref, .. } => {
                SocialAuthorization::Verified {
                    interaction_id,
                    result_ref: result_ref.clone(),
                }
            }
            SocialAuthorizationEvent::Failed { .. } | SocialAuthorizationEvent::Consumed { .. } => {
                SocialAuthorization::Ended { interaction_id }
            }
        };
    }

    /// Part of the interaction's journey: its data subject is the interaction's.
    fn data_subject(
        &self,
        _stream_id: &str,
        events: &[SocialAuthorizationEvent],
    ) -> Option<String> {
        let interaction_id = match self {
            SocialAuthorization::New => events.iter().find_map(|event| match event {
                SocialAuthorizationEvent::Started { interaction_id, .. } => {
                    Some(interaction_id.clone())
                }
                SocialAuthorizationEvent::Verified { .. }
                | SocialAuthorizationEvent::Failed { .. }
                | SocialAuthorizationEvent::Consumed { .. } => None,
            })?,
            SocialAuthorization::Started { interaction_id, .. }
            | SocialAuthorization::Verified { interaction_id, .. }
            | SocialAuthorization::Ended { interaction_id } => interaction_id.clone(),
        };
        Some(crate::interaction::subject(&interaction_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn started() -> SocialAuthorizationEvent {
        SocialAuthorizationEvent::Started {
            interaction_id: "i1".into(),
            connector_id: "c1".into(),
            session_ref: "s1".into(),
        }
    }

    #[test]
    fn a_return_is_accepted_once() {
        let verified = SocialAuthorizationEvent::Verified {
            result_ref: "r1".into(),
            retired_session_ref: "s1".into(),
        };
        Given::<SocialAuthorization>::with(())
            .given(vec![started()])
            .when(SocialAuthorizationCommand::Verify {
                result_ref: "r1".into(),
            })
            .then_expect_events(vec![verified.clone()]);
        Given::<SocialAuthorization>::with(())
            .given(vec![started(), verified])
            .when(SocialAuthorizationCommand::Verify {
                result_ref: "r2".into(),
            })
            .then_expect_error(SocialAuthorizationError::AlreadyUsed);
        let failed = SocialAuthorizationEvent::Failed {
            reason: "connector.social_invalid_id_token".into(),
            retired_session_ref: "s1".into(),
        };
        assert_eq!(failed.retired_vault_refs(), vec!["s1".to_owned()]);
        Given::<SocialAuthorization>::with(())
            .given(vec![started(), failed])
            .when(SocialAuthorizationCommand::Verify {
                result_ref: "r2".into(),
            })
            .then_expect_error(SocialAuthorizationError::AlreadyUsed);
    }

    #[test]
    fn only_a_verified_result_is_consumed() {
        Given::<SocialAuthorization>::with(())
            .given(vec![started()])
            .when(SocialAuthorizationCommand::Consume)
            .then_expect_error(SocialAuthorizationError::NotVerified);
        assert_eq!(
            SocialAuthorization::default().data_subject("v1", &[started()]),
            Some("interaction:i1".into())
        );
    }
}
