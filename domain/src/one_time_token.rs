//! One-time tokens (magic links): a secret bound to an email that can be used once, before it
//! expires, unless revoked. The value lives sealed in the vault; events carry its keyed hash.
//! The email is personal data, sealed under a data subject derived from it, so erasing the
//! person it belongs to erases it here too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Consumed,
    Revoked,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Consumed => "consumed",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub id: String,
    pub email: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub expires_at: i64,
    /// `{jitOrganizationIds?, interactionEvent?}`, as Logto.
    pub context: Value,
    /// Whose key seals the email (derived from the email by the caller).
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OneTimeTokenCommand {
    Create(NewToken),
    /// Logto's verify: exact email, not expired, not used, not revoked; then consumed.
    Verify { email: String, now: i64 },
    /// Setting a status other than active (revoking, marking consumed or expired).
    SetStatus { status: Status, now: i64 },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OneTimeTokenEvent {
    #[serde(rename = "one_time_token.created")]
    Created(NewToken),
    #[serde(rename = "one_time_token.consumed")]
    Consumed {},
    /// Touched after its expiry while still active: Logto marks it expired on the spot.
    #[serde(rename = "one_time_token.expired")]
    Expired {},
    #[serde(rename = "one_time_token.revoked")]
    Revoked {},
    #[serde(rename = "one_time_token.deleted")]
    #[serde(rename_all = "camelCase")]
    Deleted { vault_ref: String },
}

impl cqrs_es::DomainEvent for OneTimeTokenEvent {
    fn event_type(&self) -> String {
        match self {
            OneTimeTokenEvent::Created(_) => "one_time_token.created",
            OneTimeTokenEvent::Consumed {} => "one_time_token.consumed",
            OneTimeTokenEvent::Expired {} => "one_time_token.expired",
            OneTimeTokenEvent::Revoked {} => "one_time_token.revoked",
            OneTimeTokenEvent::Deleted { .. } => "one_time_token.deleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            OneTimeTokenEvent::Created(_)
            | OneTimeTokenEvent::Consumed {}
            | OneTimeTokenEvent::Expired {}
            | OneTimeTokenEvent::Revoked {}
            | OneTimeTokenEvent::Deleted { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for OneTimeTokenEvent {
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            OneTimeTokenEvent::Created(_) => &["email"],
            OneTimeTokenEvent::Consumed {}
            | OneTimeTokenEvent::Expired {}
            | OneTimeTokenEvent::Revoked {}
            | OneTimeTokenEvent::Deleted { .. } => &[],
        }
    }

    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            OneTimeTokenEvent::Deleted { vault_ref } => vec![vault_ref.clone()],
            OneTimeTokenEvent::Created(_)
            | OneTimeTokenEvent::Consumed {}
            | OneTimeTokenEvent::Expired {}
            | OneTimeTokenEvent::Revoked {} => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneTimeTokenError {
    #[error("the one-time token does not exist")]
    NotFound,
    #[error("the one-time token already exists")]
    AlreadyExists,
    #[error("the email does not match the one-time token")]
    EmailMismatch,
    #[error("the one-time token has been consumed")]
    Consumed,
    #[error("the one-time token has been revoked")]
    Revoked,
    #[error("the one-time token has expired")]
    Expired,
    #[error("a one-time token cannot be made active again")]
    CannotReactivate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub email: String,
    pub vault_ref: String,
    pub expires_at: i64,
    pub status: Status,
    pub subject: String,
}

#[derive(Debug, Clone, Default)]
pub enum OneTimeToken {
    #[default]
    New,
    Live(Box<Live>),
    Deleted,
}

impl Live {
    fn decide(&self, command: OneTimeTokenCommand) -> Result<Vec<OneTimeTokenEvent>, OneTimeTokenError> {
        match command {
            OneTimeTokenCommand::Create(_) => Err(OneTimeTokenError::AlreadyExists),
            OneTimeTokenCommand::Verify { email, now } => {
                if email != self.email {
                    return Err(OneTimeTokenError::EmailMismatch);
                }
                match self.status {
                    // Recording the expiry is the outcome; the caller reports token_expired.
                    Status::Active if now >= self.expires_at => Ok(vec![OneTimeTokenEvent::Expired {}]),
                    Status::Active => Ok(vec![OneTimeTokenEvent::Consumed {}]),
                    Status::Expired => Err(OneTimeTokenError::Expired),
                    Status::Consumed => Err(OneTimeTokenError::Consumed),
                    Status::Revoked => Err(OneTimeTokenError::Revoked),
                }
            }
            OneTimeTokenCommand::SetStatus { status, .. } if status == self.status => Ok(Vec::new()),
            OneTimeTokenCommand::SetStatus { status, .. } => match status {
                Status::Active => Err(OneTimeTokenError::CannotReactivate),
                Status::Consumed => Ok(vec![OneTimeTokenEvent::Consumed {}]),
                Status::Revoked => Ok(vec![OneTimeTokenEvent::Revoked {}]),
                Status::Expired => Ok(vec![OneTimeTokenEvent::Expired {}]),
            },
            OneTimeTokenCommand::Delete => Ok(vec![OneTimeTokenEvent::Deleted {
                vault_ref: self.vault_ref.clone(),
            }]),
        }
    }
}

impl Aggregate for OneTimeToken {
    const TYPE: &'static str = "one_time_token";
    type Command = OneTimeTokenCommand;
    type Event = OneTimeTokenEvent;
    type Error = OneTimeTokenError;

    fn decide(&self, command: OneTimeTokenCommand) -> Result<Vec<OneTimeTokenEvent>, OneTimeTokenError> {
        match (self, command) {
            (OneTimeToken::New, OneTimeTokenCommand::Create(token)) => {
                Ok(vec![OneTimeTokenEvent::Created(token)])
            }
            (OneTimeToken::New | OneTimeToken::Deleted, _) => Err(OneTimeTokenError::NotFound),
            (OneTimeToken::Live(live), command) => live.decide(command),
        }
    }

    fn apply(&mut self, event: &OneTimeTokenEvent) {
        match (&mut *self, event) {
            (OneTimeToken::New, OneTimeTokenEvent::Created(token)) => {
                *self = OneTimeToken::Live(Box::new(Live {
                    email: token.email.clone(),
                    vault_ref: token.vault_ref.clone(),
                    expires_at: token.expires_at,
                    status: Status::Active,
                    subject: token.subject.clone(),
                }));
            }
            (OneTimeToken::Live(live), OneTimeTokenEvent::Consumed {}) => live.status = Status::Consumed,
            (OneTimeToken::Live(live), OneTimeTokenEvent::Expired {}) => live.status = Status::Expired,
            (OneTimeToken::Live(live), OneTimeTokenEvent::Revoked {}) => live.status = Status::Revoked,
            (OneTimeToken::Live(_), OneTimeTokenEvent::Deleted { .. }) => *self = OneTimeToken::Deleted,
            (OneTimeToken::Live(_), OneTimeTokenEvent::Created(_))
            | (OneTimeToken::New | OneTimeToken::Deleted, _) => {}
        }
    }

    fn data_subject(&self, _stream_id: &str, events: &[OneTimeTokenEvent]) -> Option<String> {
        match self {
            OneTimeToken::Live(live) => Some(live.subject.clone()),
            OneTimeToken::New | OneTimeToken::Deleted => events.iter().find_map(|event| match event {
                OneTimeTokenEvent::Created(token) => Some(token.subject.clone()),
                OneTimeTokenEvent::Consumed {}
                | OneTimeTokenEvent::Expired {}
                | OneTimeTokenEvent::Revoked {}
                | OneTimeTokenEvent::Deleted { .. } => None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn created() -> OneTimeTokenEvent {
        OneTimeTokenEvent::Created(NewToken {
            id: "t1".into(),
            email: "ada@example.com".into(),
            lookup_hash: "h".into(),
            vault_ref: "v".into(),
            expires_at: 1_000,
            context: serde_json::json!({}),
            subject: "email:x".into(),
        })
    }

    fn verify(email: &str, now: i64) -> OneTimeTokenCommand {
        OneTimeTokenCommand::Verify {
            email: email.into(),
            now,
        }
    }

    #[test]
    fn a_token_is_consumed_once() {
        Given::<OneTimeToken>::with(())
            .given(vec![created()])
            .when(verify("ada@example.com", 10))
            .then_expect_events(vec![OneTimeTokenEvent::Consumed {}]);
        Given::<OneTimeToken>::with(())
            .given(vec![created(), OneTimeTokenEvent::Consumed {}])
            .when(verify("ada@example.com", 10))
            .then_expect_error(OneTimeTokenError::Consumed);
    }

    #[test]
    fn the_email_must_match_exactly_and_is_checked_first() {
        Given::<OneTimeToken>::with(())
            .given(vec![created(), OneTimeTokenEvent::Revoked {}])
            .when(verify("Ada@example.com", 10))
            .then_expect_error(OneTimeTokenError::EmailMismatch);
    }

    #[test]
    fn touching_an_expired_active_token_marks_it_expired() {
        Given::<OneTimeToken>::with(())
            .given(vec![created()])
            .when(verify("ada@example.com", 1_000))
            .then_expect_events(vec![OneTimeTokenEvent::Expired {}]);
        Given::<OneTimeToken>::with(())
            .given(vec![created(), OneTimeTokenEvent::Expired {}])
            .when(verify("ada@example.com", 2_000))
            .then_expect_error(OneTimeTokenError::Expired);
    }

    #[test]
    fn a_token_cannot_be_reactivated() {
        Given::<OneTimeToken>::with(())
            .given(vec![created(), OneTimeTokenEvent::Revoked {}])
            .when(OneTimeTokenCommand::SetStatus {
                status: Status::Active,
                now: 1,
            })
            .then_expect_error(OneTimeTokenError::CannotReactivate);
    }

    #[test]
    fn deletion_retires_the_sealed_value() {
        let events = Given::<OneTimeToken>::with(())
            .given(vec![created()])
            .when(OneTimeTokenCommand::Delete)
            .inspect_result()
            .unwrap();
        assert_eq!(events[0].retired_vault_refs(), vec!["v".to_owned()]);
    }
}
