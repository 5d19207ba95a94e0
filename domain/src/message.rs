//! Outgoing messages (emails): one stream per message. A handler queues a message in the same
//! unit of work as whatever it is about (a verification code); the mail follower delivers it
//! after the commit and records the outcome here, so delivery survives restarts and each message
//! is handed to the SMTP server once (the follower checks this stream before sending).
//!
//! A message carrying a verification code does not carry the code: the handler seals it in the
//! vault under `code_ref`, and the message's final event (sent or abandoned) retires it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};

/// Logto's email template types (`TemplateType`): which template of the connector renders the
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UsageType {
    SignIn,
    Register,
    ForgotPassword,
    Generic,
    OrganizationInvitation,
    UserPermissionValidation,
    BindNewIdentifier,
    MfaVerification,
    BindMfa,
}

impl UsageType {
    pub const ALL: [UsageType; 9] = [
        UsageType::SignIn,
        UsageType::Register,
        UsageType::ForgotPassword,
        UsageType::Generic,
        UsageType::OrganizationInvitation,
        UsageType::UserPermissionValidation,
        UsageType::BindNewIdentifier,
        UsageType::MfaVerification,
        UsageType::BindMfa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageType::SignIn => "SignIn",
            UsageType::Register => "Register",
            UsageType::ForgotPassword => "ForgotPassword",
            UsageType::Generic => "Generic",
            UsageType::OrganizationInvitation => "OrganizationInvitation",
            UsageType::UserPermissionValidation => "UserPermissionValidation",
            UsageType::BindNewIdentifier => "BindNewIdentifier",
            UsageType::MfaVerification => "MfaVerification",
            UsageType::BindMfa => "BindMfa",
        }
    }

    pub fn parse(text: &str) -> Option<UsageType> {
        UsageType::ALL
            .into_iter()
            .find(|usage| usage.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    pub id: String,
    /// The recipient's address. Personal: blank once the address's key is destroyed.
    #[serde(default)]
    pub to: String,
    pub usage_type: UsageType,
    /// The recipient's preferred languages (the authorization request's `ui_locales`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
    /// What the template may show besides the code: `application`, `user`, `link`...
    #[serde(default)]
    pub context: Value,
    /// The vault entry holding the verification code, if the message carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_ref: Option<String>,
    /// Past this instant the message is worthless (its code expired) and is not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Whose personal data the message holds (a user, an interaction, or the message itself).
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MessageCommand {
    Queue(NewMessage),
    RecordAttemptFailed { reason: String, at: i64 },
    RecordSent { at: i64 },
    Abandon { reason: String, at: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum MessageEvent {
    #[serde(rename = "message.queued")]
    Queued(NewMessage),
    /// A delivery attempt failed in a way worth retrying (server down, 4xx reply).
    #[serde(rename = "message.attempt_failed")]
    AttemptFailed {
        attempt: u32,
        #[serde(default)]
        reason: String,
        at: i64,
    },
    #[serde(rename = "message.sent")]
    #[serde(rename_all = "camelCase")]
    Sent {
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_ref: Option<String>,
    },
    /// Given up: expired before it could be sent, or refused for good (5xx reply, no template).
    #[serde(rename = "message.abandoned")]
    #[serde(rename_all = "camelCase")]
    Abandoned {
        #[serde(default)]
        reason: String,
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_ref: Option<String>,
    },
}

impl cqrs_es::DomainEvent for MessageEvent {
    fn event_type(&self) -> String {
        match self {
            MessageEvent::Queued(_) => "message.queued",
            MessageEvent::AttemptFailed { .. } => "message.attempt_failed",
            MessageEvent::Sent { .. } => "message.sent",
            MessageEvent::Abandoned { .. } => "message.abandoned",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            MessageEvent::Queued(_)
            | MessageEvent::AttemptFailed { .. }
            | MessageEvent::Sent { .. }
            | MessageEvent::Abandoned { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for MessageEvent {
    /// The address and the template context are personal; so are failure reasons, which SMTP
    /// servers like to write the recipient's address into.
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            MessageEvent::Queued(_) => &["to", "context"],
            MessageEvent::AttemptFailed { .. } | MessageEvent::Abandoned { .. } => &["reason"],
            MessageEvent::Sent { .. } => &[],
        }
    }

    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            MessageEvent::Sent { code_ref, .. } | MessageEvent::Abandoned { code_ref, .. } => {
                code_ref.iter().cloned().collect()
            }
            MessageEvent::Queued(_) | MessageEvent::AttemptFailed { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message does not exist")]
    NotFound,
    #[error("the message was already queued")]
    AlreadyQueued,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub subject: String,
    pub code_ref: Option<String>,
    pub attempts: u32,
}

#[derive(Debug, Clone, Default)]
pub enum Message {
    #[default]
    New,
    Pending(Pending),
    /// Sent or abandoned: nothing more happens to it.
    Done {
        subject: String,
    },
}

impl Aggregate for Message {
    const TYPE: &'static str = "message";
    type Command = MessageCommand;
    type Event = MessageEvent;
    type Error = MessageError;

    /// Outcomes reported for a finished message change nothing: a second node or a replayed
    /// batch may report what is already recorded.
    fn decide(&self, command: MessageCommand) -> Result<Vec<MessageEvent>, MessageError> {
        match (self, command) {
            (Message::New, MessageCommand::Queue(message)) => {
                Ok(vec![MessageEvent::Queued(message)])
            }
            (Message::Pending(_) | Message::Done { .. }, MessageCommand::Queue(_)) => {
                Err(MessageError::AlreadyQueued)
            }
            (Message::New, _) => Err(MessageError::NotFound),
            (Message::Done { .. }, _) => Ok(Vec::new()),
            (Message::Pending(pending), MessageCommand::RecordAttemptFailed { reason, at }) => {
                Ok(vec![MessageEvent::AttemptFailed {
                    attempt: pending.attempts.saturating_add(1),
                    reason,
                    at,
                }])
            }
            (Message::Pending(pending), MessageCommand::RecordSent { at }) => {
                Ok(vec![MessageEvent::Sent {
                    at,
                    code_ref: pending.code_ref.clone(),
                }])
            }
            (Message::Pending(pending), MessageCommand::Abandon { reason, at }) => {
                Ok(vec![MessageEvent::Abandoned {
                    reason,
                    at,
                    code_ref: pending.code_ref.clone(),
                }])
            }
        }
    }

    fn apply(&mut self, event: &MessageEvent) {
        match (&mut *self, event) {
            (Message::New, MessageEvent::Queued(message)) => {
                *self = Message::Pending(Pending {
                    subject: message.subject.clone(),
                    code_ref: message.code_ref.clone(),
                    attempts: 0,
                });
            }
            (Message::Pending(pending), MessageEvent::AttemptFailed { attempt, .. }) => {
                pending.attempts = *attempt;
            }
            (
                Message::Pending(pending),
                MessageEvent::Sent { .. } | MessageEvent::Abandoned { .. },
            ) => {
                let subject = pending.subject.clone();
                *self = Message::Done { subject };
            }
            (Message::Pending(_) | Message::Done { .. }, MessageEvent::Queued(_))
            | (Message::New | Message::Done { .. }, _) => {}
        }
    }

    fn data_subject(&self, _stream_id: &str, events: &[MessageEvent]) -> Option<String> {
        match self {
            Message::Pending(Pending { subject, .. }) | Message::Done { subject } => {
                Some(subject.clone())
            }
            Message::New => events.iter().find_map(|event| match event {
                MessageEvent::Queued(message) => Some(message.subject.clone()),
                MessageEvent::AttemptFailed { .. }
                | MessageEvent::Sent { .. }
                | MessageEvent::Abandoned { .. } => None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;
    use serde_json::json;

    fn queued() -> MessageEvent {
        MessageEvent::Queued(NewMessage {
            id: "m1".into(),
            to: "ada@example.com".into(),
            usage_type: UsageType::SignIn,
            ui_locales: None,
            context: json!({}),
            code_ref: Some("message/m1/code".into()),
            expires_at: Some(600_000),
            subject: "message:m1".into(),
        })
    }

    /// Erasing the person an address belongs to destroys the address's key.
    #[test]
    fn every_event_decodes_without_its_personal_fields() {
        crate::spec::assert_decodes_without_personal_fields(&[
            queued(),
            MessageEvent::AttemptFailed {
                attempt: 1,
                reason: "refused for ada@example.com".into(),
                at: 2,
            },
            MessageEvent::Sent {
                at: 3,
                code_ref: None,
            },
            MessageEvent::Abandoned {
                reason: "recipient erased".into(),
                at: 4,
                code_ref: None,
            },
        ]);
    }

    #[test]
    fn sending_retires_the_code_and_a_second_report_changes_nothing() {
        let sent = MessageEvent::Sent {
            at: 5,
            code_ref: Some("message/m1/code".into()),
        };
        assert_eq!(
            sent.retired_vault_refs(),
            vec!["message/m1/code".to_owned()]
        );
        Given::<Message>::with(())
            .given(vec![queued()])
            .when(MessageCommand::RecordSent { at: 5 })
            .then_expect_events(vec![sent.clone()]);
        Given::<Message>::with(())
            .given(vec![queued(), sent])
            .when(MessageCommand::RecordSent { at: 9 })
            .then_expect_events(vec![]);
    }

    #[test]
    fn failed_attempts_are_counted() {
        Given::<Message>::with(())
            .given(vec![
                queued(),
                MessageEvent::AttemptFailed {
                    attempt: 1,
                    reason: "421".into(),
                    at: 1,
                },
            ])
            .when(MessageCommand::RecordAttemptFailed {
                reason: "down".into(),
                at: 2,
            })
            .then_expect_events(vec![MessageEvent::AttemptFailed {
                attempt: 2,
                reason: "down".into(),
                at: 2,
            }]);
    }

    #[test]
    fn the_recipient_is_sealed_under_the_named_subject() {
        assert_eq!(
            Message::default().data_subject("m1", &[queued()]),
            Some("message:m1".into())
        );
        assert_eq!(queued().personal_fields(), &["to", "context"]);
    }

    #[test]
    fn usage_types_round_trip() {
        for usage in UsageType::ALL {
            assert_eq!(UsageType::parse(usage.as_str()), Some(usage));
        }
        assert_eq!(UsageType::parse("Nope"), None);
    }
}
