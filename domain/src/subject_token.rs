//! Subject tokens (Logto's `POST /api/subject-tokens`): a short-lived secret a trusted backend
//! obtains for one user and hands to an application, which exchanges it once at the token
//! endpoint (RFC 8693) for an access token about that user (impersonation).
//!
//! The stream is named by the token's keyed hash, so presenting the token names the stream to
//! consume and no read model is needed; the value itself is never stored. Single use is a matter
//! of the stream: concurrent exchanges race on it and every loser finds the token consumed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

/// Lifetime of a subject token, as Logto (`subjectTokenExpiresIn`).
pub const TTL_S: i64 = 600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubjectToken {
    pub user_id: String,
    /// The creator's free-form JSON object, kept as Logto keeps it. Personal: it is about the
    /// user and may say anything.
    #[serde(default)]
    pub context: Value,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubjectTokenCommand {
    Issue(NewSubjectToken),
    /// The token was presented at the token endpoint by `application_id` at `now`.
    Consume {
        application_id: String,
        now: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SubjectTokenEvent {
    #[serde(rename = "subject_token.issued")]
    Issued(NewSubjectToken),
    /// `user_id` repeats the issued one so the exchange learns whose token it consumed from
    /// the very event that consumed it.
    #[serde(rename = "subject_token.consumed")]
    #[serde(rename_all = "camelCase")]
    Consumed {
        user_id: String,
        application_id: String,
    },
}

impl cqrs_es::DomainEvent for SubjectTokenEvent {
    fn event_type(&self) -> String {
        match self {
            SubjectTokenEvent::Issued(_) => "subject_token.issued",
            SubjectTokenEvent::Consumed { .. } => "subject_token.consumed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            SubjectTokenEvent::Issued(_) | SubjectTokenEvent::Consumed { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for SubjectTokenEvent {
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            SubjectTokenEvent::Issued(_) => &["context"],
            SubjectTokenEvent::Consumed { .. } => &[],
        }
    }
}

/// Why a subject token cannot be issued or exchanged; the texts are Logto's `invalid_grant`
/// descriptions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectTokenError {
    #[error("subject token already exists")]
    AlreadyIssued,
    #[error("subject token not found")]
    Unknown,
    #[error("subject token is expired")]
    Expired,
    #[error("subject token is already consumed")]
    Consumed,
}

#[derive(Debug, Clone, Default)]
pub enum SubjectToken {
    #[default]
    New,
    Issued {
        user_id: String,
        expires_at: i64,
        consumed: bool,
    },
}

impl Aggregate for SubjectToken {
    const TYPE: &'static str = "subject_token";
    type Command = SubjectTokenCommand;
    type Event = SubjectTokenEvent;
    type Error = SubjectTokenError;

    fn decide(
        &self,
        command: SubjectTokenCommand,
    ) -> Result<Vec<SubjectTokenEvent>, SubjectTokenError> {
        match (self, command) {
            (SubjectToken::New, SubjectTokenCommand::Issue(token)) => {
                Ok(vec![SubjectTokenEvent::Issued(token)])
            }
            (SubjectToken::Issued { .. }, SubjectTokenCommand::Issue(_)) => {
                Err(SubjectTokenError::AlreadyIssued)
            }
            (SubjectToken::New, SubjectTokenCommand::Consume { .. }) => {
                Err(SubjectTokenError::Unknown)
            }
            (
                SubjectToken::Issued {
                    user_id,
                    expires_at,
                    consumed,
                },
                SubjectTokenCommand::Consume {
                    application_id,
                    now,
                },
            ) => {
                // Logto's order: expiry first, then consumption.
                if now >= *expires_at {
                    Err(SubjectTokenError::Expired)
                } else if *consumed {
                    Err(SubjectTokenError::Consumed)
                } else {
                    Ok(vec![SubjectTokenEvent::Consumed {
                        user_id: user_id.clone(),
                        application_id,
                    }])
                }
            }
        }
    }

    fn apply(&mut self, event: &SubjectTokenEvent) {
        match event {
            SubjectTokenEvent::Issued(token) => {
                *self = SubjectToken::Issued {
                    user_id: token.user_id.clone(),
                    expires_at: token.expires_at,
                    consumed: false,
                };
            }
            SubjectTokenEvent::Consumed { .. } => {
                if let SubjectToken::Issued { consumed, .. } = self {
                    *consumed = true;
                }
            }
        }
    }

    /// The user the token stands for: its context and the request's origin are theirs.
    fn data_subject(&self, _stream_id: &str, events: &[SubjectTokenEvent]) -> Option<String> {
        match self {
            SubjectToken::Issued { user_id, .. } => Some(user_id.clone()),
            SubjectToken::New => events.first().map(|event| match event {
                SubjectTokenEvent::Issued(token) => token.user_id.clone(),
                SubjectTokenEvent::Consumed { user_id, .. } => user_id.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn issued() -> SubjectTokenEvent {
        SubjectTokenEvent::Issued(NewSubjectToken {
            user_id: "u1".into(),
            context: serde_json::json!({"reason": "support"}),
            expires_at: 1_000,
        })
    }

    fn consume(now: i64) -> SubjectTokenCommand {
        SubjectTokenCommand::Consume {
            application_id: "app".into(),
            now,
        }
    }

    fn consumed() -> SubjectTokenEvent {
        SubjectTokenEvent::Consumed {
            user_id: "u1".into(),
            application_id: "app".into(),
        }
    }

    #[test]
    fn a_subject_token_is_consumed_once() {
        Given::<SubjectToken>::with(())
            .given(vec![issued()])
            .when(consume(999))
            .then_expect_events(vec![consumed()]);
        Given::<SubjectToken>::with(())
            .given(vec![issued(), consumed()])
            .when(consume(999))
            .then_expect_error(SubjectTokenError::Consumed);
    }

    #[test]
    fn an_expired_token_is_refused_even_if_unused() {
        Given::<SubjectToken>::with(())
            .given(vec![issued()])
            .when(consume(1_000))
            .then_expect_error(SubjectTokenError::Expired);
    }

    #[test]
    fn an_unknown_token_is_refused() {
        Given::<SubjectToken>::with(())
            .given_no_previous_events()
            .when(consume(1))
            .then_expect_error(SubjectTokenError::Unknown);
    }

    #[test]
    fn a_token_is_issued_once() {
        Given::<SubjectToken>::with(())
            .given(vec![issued()])
            .when(SubjectTokenCommand::Issue(NewSubjectToken {
                user_id: "u2".into(),
                context: serde_json::json!({}),
                expires_at: 5,
            }))
            .then_expect_error(SubjectTokenError::AlreadyIssued);
    }

    #[test]
    fn the_user_is_the_data_subject() {
        assert_eq!(
            SubjectToken::default().data_subject("h", &[issued()]),
            Some("u1".into())
        );
    }

    #[test]
    fn every_event_decodes_without_its_personal_fields() {
        crate::spec::assert_decodes_without_personal_fields(&[issued(), consumed()]);
    }
}
