//! Verification codes (Logto's passcodes): six digits mailed to prove control of an address.
//! One stream per scope (an interaction, or a recipient of the Management API's codes); a new
//! code replaces whatever code the scope had. The log holds a keyed hash of the code and of the
//! recipient, never either in the clear.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};
use crate::message::UsageType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCode {
    /// The verification id the client quotes back, also the id of the message carrying it.
    pub code_id: String,
    pub recipient_hash: String,
    pub code_hash: String,
    pub usage_type: UsageType,
    pub expires_at: i64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VerificationCodeCommand {
    Issue(IssuedCode),
    /// `code_id` is the verification id when the client has one (Experience API); the
    /// Management API verifies by recipient alone.
    Verify {
        code_id: Option<String>,
        recipient_hash: String,
        code_hash: String,
        now: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum VerificationCodeEvent {
    #[serde(rename = "verification_code.sent")]
    Sent(IssuedCode),
    /// A wrong code was tried; Logto's `tryCount`.
    #[serde(rename = "verification_code.attempt_failed")]
    #[serde(rename_all = "camelCase")]
    AttemptFailed { code_id: String },
    #[serde(rename = "verification_code.verified")]
    #[serde(rename_all = "camelCase")]
    Verified { code_id: String },
}

impl cqrs_es::DomainEvent for VerificationCodeEvent {
    fn event_type(&self) -> String {
        match self {
            VerificationCodeEvent::Sent(_) => "verification_code.sent",
            VerificationCodeEvent::AttemptFailed { .. } => "verification_code.attempt_failed",
            VerificationCodeEvent::Verified { .. } => "verification_code.verified",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            VerificationCodeEvent::Sent(_)
            | VerificationCodeEvent::AttemptFailed { .. }
            | VerificationCodeEvent::Verified { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for VerificationCodeEvent {}

/// Logto's `verification_code.*` failures, in the order it checks them. A wrong code is not an
/// error here: it is recorded (`AttemptFailed`) so that the tries are counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationCodeError {
    #[error("Verification code not found. Please send verification code first.")]
    NotFound,
    #[error("Email mismatch. Please request a new verification code.")]
    EmailMismatch,
    #[error("Verification code has expired. Please request a new verification code.")]
    Expired,
    #[error(
        "Verification code retries limitation exceeded. Please request a new verification code."
    )]
    ExceedMaxTry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCode {
    pub code: IssuedCode,
    pub attempts: u32,
}

/// The scope's current code, until it is verified or replaced.
#[derive(Debug, Clone, Default)]
pub struct VerificationCode {
    pub current: Option<LiveCode>,
}

impl Aggregate for VerificationCode {
    const TYPE: &'static str = "verification_code";
    type Command = VerificationCodeCommand;
    type Event = VerificationCodeEvent;
    type Error = VerificationCodeError;

    fn decide(
        &self,
        command: VerificationCodeCommand,
    ) -> Result<Vec<VerificationCodeEvent>, VerificationCodeError> {
        use VerificationCodeError as E;
        match command {
            VerificationCodeCommand::Issue(code) => Ok(vec![VerificationCodeEvent::Sent(code)]),
            VerificationCodeCommand::Verify {
                code_id,
                recipient_hash,
                code_hash,
                now,
            } => {
                let live = self
                    .current
                    .as_ref()
                    .filter(|live| code_id.as_ref().is_none_or(|id| *id == live.code.code_id))
                    .ok_or(E::NotFound)?;
                if live.code.recipient_hash != recipient_hash {
                    return Err(E::EmailMismatch);
                }
                if now >= live.code.expires_at {
                    return Err(E::Expired);
                }
                if live.attempts >= live.code.max_attempts {
                    return Err(E::ExceedMaxTry);
                }
                let code_id = live.code.code_id.clone();
                Ok(vec![if live.code.code_hash == code_hash {
                    VerificationCodeEvent::Verified { code_id }
                } else {
                    VerificationCodeEvent::AttemptFailed { code_id }
                }])
            }
        }
    }

    fn apply(&mut self, event: &VerificationCodeEvent) {
        match event {
            VerificationCodeEvent::Sent(code) => {
                self.current = Some(LiveCode {
                    code: code.clone(),
                    attempts: 0,
                });
            }
            VerificationCodeEvent::AttemptFailed { .. } => {
                if let Some(live) = &mut self.current {
                    live.attempts = live.attempts.saturating_add(1);
                }
            }
            VerificationCodeEvent::Verified { .. } => self.current = None,
        }
    }

    /// An interaction's codes are sealed under the interaction's key (the request's IP and user
    /// agent are the visitor's), which erasing the user it identified destroys. The Management
    /// API's and verification records' scopes carry no visitor.
    fn data_subject(&self, stream_id: &str, _events: &[VerificationCodeEvent]) -> Option<String> {
        stream_id
            .strip_prefix("interaction:")
            .map(crate::interaction::subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    #[test]
    fn an_interactions_codes_are_sealed_under_the_interactions_key_only() {
        let code = VerificationCode::default();
        assert_eq!(
            code.data_subject("interaction:i1", &[]),
            Some(crate::interaction::subject("i1"))
        );
        assert_eq!(code.data_subject("management:abc", &[]), None);
    }

    fn sent(id: &str, max_attempts: u32) -> VerificationCodeEvent {
        VerificationCodeEvent::Sent(IssuedCode {
            code_id: id.into(),
            recipient_hash: "r".into(),
            code_hash: format!("h-{id}"),
            usage_type: UsageType::SignIn,
            expires_at: 1_000,
            max_attempts,
        })
    }

    fn verify(id: Option<&str>, recipient: &str, hash: &str, now: i64) -> VerificationCodeCommand {
        VerificationCodeCommand::Verify {
            code_id: id.map(str::to_owned),
            recipient_hash: recipient.into(),
            code_hash: hash.into(),
            now,
        }
    }

    #[test]
    fn checks_come_in_logtos_order() {
        Given::<VerificationCode>::with(())
            .given(vec![])
            .when(verify(None, "r", "h-c1", 1))
            .then_expect_error(VerificationCodeError::NotFound);
        Given::<VerificationCode>::with(())
            .given(vec![sent("c1", 3)])
            .when(verify(Some("c1"), "other", "h-c1", 2_000))
            .then_expect_error(VerificationCodeError::EmailMismatch);
        Given::<VerificationCode>::with(())
            .given(vec![sent("c1", 3)])
            .when(verify(Some("c1"), "r", "h-c1", 1_000))
            .then_expect_error(VerificationCodeError::Expired);
        Given::<VerificationCode>::with(())
            .given(vec![
                sent("c1", 1),
                VerificationCodeEvent::AttemptFailed {
                    code_id: "c1".into(),
                },
            ])
            .when(verify(Some("c1"), "r", "h-c1", 1))
            .then_expect_error(VerificationCodeError::ExceedMaxTry);
    }

    #[test]
    fn a_wrong_code_counts_a_try_and_a_right_one_consumes_it() {
        Given::<VerificationCode>::with(())
            .given(vec![sent("c1", 3)])
            .when(verify(None, "r", "wrong", 1))
            .then_expect_events(vec![VerificationCodeEvent::AttemptFailed {
                code_id: "c1".into(),
            }]);
        Given::<VerificationCode>::with(())
            .given(vec![
                sent("c1", 3),
                VerificationCodeEvent::Verified {
                    code_id: "c1".into(),
                },
            ])
            .when(verify(None, "r", "h-c1", 1))
            .then_expect_error(VerificationCodeError::NotFound);
    }

    #[test]
    fn a_new_code_replaces_the_old_one() {
        Given::<VerificationCode>::with(())
            .given(vec![sent("c1", 3), sent("c2", 3)])
            .when(verify(Some("c1"), "r", "h-c1", 1))
            .then_expect_error(VerificationCodeError::NotFound);
        Given::<VerificationCode>::with(())
            .given(vec![sent("c1", 3), sent("c2", 3)])
            .when(verify(Some("c2"), "r", "h-c2", 1))
            .then_expect_events(vec![VerificationCodeEvent::Verified {
                code_id: "c2".into(),
            }]);
    }
}
