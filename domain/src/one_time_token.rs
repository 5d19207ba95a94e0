//! One-time tokens (magic links): a secret bound to an email that can be used once, before it
//! expires, unless revoked. The value lives sealed in the vault; events carry its keyed hash.
//! The email is personal data, sealed under a data subject derived from it, so erasing the
//! person it belongs to erases it here too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, Event};
use crate::interaction::InteractionEvent;

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
    /// Personal: blank once the address's key is destroyed (erasure).
    #[serde(default)]
    pub email: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub expires_at: i64,
    /// `{jitOrganizationIds?, interactionEvent?}`, as Logto.
    pub context: Value,
    /// Whose key seals the email (derived from the email by the caller).
    pub subject: String,
    /// The device the link may be used from (`context.deviceBinding`, idledger's extension),
    /// kept out of `context` because an IP address and a user agent are personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_binding: Option<Device>,
}

/// A browser as the server sees it. As a token's binding, each part that is set must match the
/// device redeeming the token: a link intercepted on its way to the person who asked for it is
/// useless elsewhere (the seed's "device/browser binding").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Device {
    fn admits(&self, device: &Device) -> bool {
        let matches =
            |bound: &Option<String>, seen: &Option<String>| bound.is_none() || bound == seen;
        matches(&self.ip, &device.ip) && matches(&self.user_agent, &device.user_agent)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OneTimeTokenCommand {
    Create(NewToken),
    /// Logto's verify: exact email, not expired, not used, not revoked; then consumed.
    Verify {
        email: String,
        now: i64,
    },
    /// The sign-in experience's verify: Logto's checks, then the context's interaction event
    /// and device binding. An expired token is refused without being marked: the caller's unit
    /// also records a verification, so it marks the expiry with `Verify` on its own.
    Redeem {
        email: String,
        now: i64,
        interaction_event: InteractionEvent,
        device: Device,
    },
    /// Setting a status other than active (revoking, marking consumed or expired).
    SetStatus {
        status: Status,
        now: i64,
    },
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
            OneTimeTokenEvent::Created(_) => &["email", "deviceBinding"],
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
    #[error("the one-time token is not for this interaction event")]
    InteractionEventMismatch,
    #[error("the one-time token is bound to another device (IP address or user agent)")]
    DeviceMismatch,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub email: String,
    pub vault_ref: String,
    pub expires_at: i64,
    pub status: Status,
    pub subject: String,
    /// `context.interactionEvent`: the only event the experience may redeem the token in.
    pub interaction_event: Option<InteractionEvent>,
    pub device_binding: Option<Device>,
}

#[derive(Debug, Clone, Default)]
pub enum OneTimeToken {
    #[default]
    New,
    Live(Box<Live>),
    Deleted,
}

impl Live {
    fn decide(
        &self,
        command: OneTimeTokenCommand,
    ) -> Result<Vec<OneTimeTokenEvent>, OneTimeTokenError> {
        match command {
            OneTimeTokenCommand::Create(_) => Err(OneTimeTokenError::AlreadyExists),
            OneTimeTokenCommand::Verify { email, now } => {
                if email != self.email {
                    return Err(OneTimeTokenError::EmailMismatch);
                }
                match self.status {
                    // Recording the expiry is the outcome; the caller reports token_expired.
                    Status::Active if now >= self.expires_at => {
                        Ok(vec![OneTimeTokenEvent::Expired {}])
                    }
                    Status::Active => Ok(vec![OneTimeTokenEvent::Consumed {}]),
                    Status::Expired => Err(OneTimeTokenError::Expired),
                    Status::Consumed => Err(OneTimeTokenError::Consumed),
                    Status::Revoked => Err(OneTimeTokenError::Revoked),
                }
            }
            OneTimeTokenCommand::Redeem {
                email,
                now,
                interaction_event,
                device,
            } => {
                if email != self.email {
                    return Err(OneTimeTokenError::EmailMismatch);
                }
                match self.status {
                    Status::Active if now >= self.expires_at => Err(OneTimeTokenError::Expired),
                    Status::Active => Ok(()),
                    Status::Expired => Err(OneTimeTokenError::Expired),
                    Status::Consumed => Err(OneTimeTokenError::Consumed),
                    Status::Revoked => Err(OneTimeTokenError::Revoked),
                }?;
                // Refused without consuming, so the person can still use the link as meant.
                if self
                    .interaction_event
                    .is_some_and(|expected| expected != interaction_event)
                {
                    return Err(OneTimeTokenError::InteractionEventMismatch);
                }
                if self
                    .device_binding
                    .as_ref()
                    .is_some_and(|binding| !binding.admits(&device))
                {
                    return Err(OneTimeTokenError::DeviceMismatch);
                }
                Ok(vec![OneTimeTokenEvent::Consumed {}])
            }
            OneTimeTokenCommand::SetStatus { status, .. } if status == self.status => {
                Ok(Vec::new())
            }
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

    fn decide(
        &self,
        command: OneTimeTokenCommand,
    ) -> Result<Vec<OneTimeTokenEvent>, OneTimeTokenError> {
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
                    // A context that names no known event restricts nothing (Logto validates
                    // it at creation, so only hand-made events could hold one).
                    interaction_event: token
                        .context
                        .get("interactionEvent")
                        .and_then(|event| serde_json::from_value(event.clone()).ok()),
                    device_binding: token.device_binding.clone(),
                }));
            }
            (OneTimeToken::Live(live), OneTimeTokenEvent::Consumed {}) => {
                live.status = Status::Consumed
            }
            (OneTimeToken::Live(live), OneTimeTokenEvent::Expired {}) => {
                live.status = Status::Expired
            }
            (OneTimeToken::Live(live), OneTimeTokenEvent::Revoked {}) => {
                live.status = Status::Revoked
            }
            (OneTimeToken::Live(_), OneTimeTokenEvent::Deleted { .. }) => {
                *self = OneTimeToken::Deleted
            }
            (OneTimeToken::Live(_), OneTimeTokenEvent::Created(_))
            | (OneTimeToken::New | OneTimeToken::Deleted, _) => {}
        }
    }

    fn data_subject(&self, _stream_id: &str, events: &[OneTimeTokenEvent]) -> Option<String> {
        match self {
            OneTimeToken::Live(live) => Some(live.subject.clone()),
            OneTimeToken::New | OneTimeToken::Deleted => {
                events.iter().find_map(|event| match event {
                    OneTimeTokenEvent::Created(token) => Some(token.subject.clone()),
                    OneTimeTokenEvent::Consumed {}
                    | OneTimeTokenEvent::Expired {}
                    | OneTimeTokenEvent::Revoked {}
                    | OneTimeTokenEvent::Deleted { .. } => None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn created() -> OneTimeTokenEvent {
        created_with(serde_json::json!({}), None)
    }

    fn created_with(
        context: serde_json::Value,
        device_binding: Option<Device>,
    ) -> OneTimeTokenEvent {
        OneTimeTokenEvent::Created(NewToken {
            id: "t1".into(),
            email: "ada@example.com".into(),
            lookup_hash: "h".into(),
            vault_ref: "v".into(),
            expires_at: 1_000,
            context,
            subject: "email:x".into(),
            device_binding,
        })
    }

    fn device(ip: &str, user_agent: &str) -> Device {
        Device {
            ip: Some(ip.into()),
            user_agent: Some(user_agent.into()),
        }
    }

    /// Erasing the person an address belongs to destroys the address's key.
    #[test]
    fn every_event_decodes_without_its_personal_fields() {
        crate::spec::assert_decodes_without_personal_fields(&[
            created_with(serde_json::json!({}), Some(device("192.0.2.1", "ua"))),
            OneTimeTokenEvent::Consumed {},
            OneTimeTokenEvent::Expired {},
            OneTimeTokenEvent::Revoked {},
            OneTimeTokenEvent::Deleted {
                vault_ref: "v".into(),
            },
        ]);
    }

    fn redeem(event: InteractionEvent, now: i64, from: Device) -> OneTimeTokenCommand {
        OneTimeTokenCommand::Redeem {
            email: "ada@example.com".into(),
            now,
            interaction_event: event,
            device: from,
        }
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

    #[test]
    fn redeeming_checks_the_context_event_after_the_status_and_leaves_the_token_active() {
        let for_registration =
            created_with(serde_json::json!({"interactionEvent": "Register"}), None);
        Given::<OneTimeToken>::with(())
            .given(vec![for_registration.clone()])
            .when(redeem(InteractionEvent::SignIn, 10, Device::default()))
            .then_expect_error(OneTimeTokenError::InteractionEventMismatch);
        Given::<OneTimeToken>::with(())
            .given(vec![
                for_registration.clone(),
                OneTimeTokenEvent::Revoked {},
            ])
            .when(redeem(InteractionEvent::SignIn, 10, Device::default()))
            .then_expect_error(OneTimeTokenError::Revoked);
        Given::<OneTimeToken>::with(())
            .given(vec![for_registration])
            .when(redeem(InteractionEvent::Register, 10, Device::default()))
            .then_expect_events(vec![OneTimeTokenEvent::Consumed {}]);
    }

    #[test]
    fn an_expired_token_is_refused_unmarked_when_redeemed() {
        Given::<OneTimeToken>::with(())
            .given(vec![created()])
            .when(redeem(InteractionEvent::SignIn, 1_000, Device::default()))
            .then_expect_error(OneTimeTokenError::Expired);
    }

    #[test]
    fn a_bound_token_is_redeemed_only_from_its_device() {
        let bound = created_with(
            serde_json::json!({}),
            Some(Device {
                ip: Some("203.0.113.7".into()),
                user_agent: None,
            }),
        );
        Given::<OneTimeToken>::with(())
            .given(vec![bound.clone()])
            .when(redeem(
                InteractionEvent::SignIn,
                10,
                device("198.51.100.1", "Firefox"),
            ))
            .then_expect_error(OneTimeTokenError::DeviceMismatch);
        Given::<OneTimeToken>::with(())
            .given(vec![bound])
            .when(redeem(
                InteractionEvent::SignIn,
                10,
                device("203.0.113.7", "Firefox"),
            ))
            .then_expect_events(vec![OneTimeTokenEvent::Consumed {}]);
        let fully_bound =
            created_with(serde_json::json!({}), Some(device("203.0.113.7", "Safari")));
        Given::<OneTimeToken>::with(())
            .given(vec![fully_bound])
            .when(redeem(
                InteractionEvent::SignIn,
                10,
                device("203.0.113.7", "Firefox"),
            ))
            .then_expect_error(OneTimeTokenError::DeviceMismatch);
    }

    #[test]
    fn the_binding_is_personal_data() {
        assert!(created().personal_fields().contains(&"deviceBinding"));
    }
}
