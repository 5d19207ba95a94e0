//! One Account API verification record (Logto's `/api/verifications/*`): a proof, good for ten
//! minutes, that the signed-in person did something only they can. The stream is the record's
//! id; the record belongs to the person who made it and to no one else.
//!
//! Three kinds exist. A **password** record, or an **email code** record once the code mailed
//! to the person's primary email is entered, proves the person's identity: it is presented in
//! the `logto-verification-id` header of a sensitive change (linking or unlinking an identity)
//! and, as in Logto, may be presented again until it expires; each presentation is recorded. A
//! **social** record proves ownership of an upstream identity: started with a trip to the
//! provider, verified by its return, and consumed by the one change that links the identity.
//! Consumption is an event on this stream, so two concurrent links race on its sequence and
//! only one of them appends.
//!
//! What a social trip must match on return (state, nonce, PKCE verifier) and what the provider
//! vouched for (the person, the tokens) are sealed in the vault under `session_ref` and
//! `result_ref`; events only name them, and retire each when it has served.

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// Logto's lifetime of a verification record.
pub const TTL_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordKind {
    Password,
    EmailCode,
    Social,
}

impl RecordKind {
    /// Whether a verified record of this kind proves who the person is.
    fn proves_identity(self) -> bool {
        match self {
            RecordKind::Password | RecordKind::EmailCode => true,
            RecordKind::Social => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum VerificationRecordCommand {
    /// The person's password was checked and is right.
    ProvePassword { user_id: String, expires_at: i64 },
    /// The password was wrong: the record exists only to say so.
    RefusePassword { user_id: String },
    /// A code was mailed to the person's primary email.
    StartEmailCode { user_id: String, expires_at: i64 },
    /// The mailed code was entered right.
    VerifyEmailCode { user_id: String, now: i64 },
    /// A trip to the provider of `connector_id` begins.
    StartSocial {
        user_id: String,
        connector_id: String,
        session_ref: String,
        expires_at: i64,
    },
    /// The provider's return passed every check; the result is sealed under `result_ref`.
    VerifySocial {
        user_id: String,
        result_ref: String,
        now: i64,
    },
    /// The provider's return failed a check (`reason` is Logto's error code).
    FailSocial { user_id: String, reason: String },
    /// Presented in `logto-verification-id` to make the change named `purpose`.
    ProveIdentity {
        user_id: String,
        purpose: String,
        now: i64,
    },
    /// The identity the record proves is being linked: the record is spent.
    Consume { user_id: String, now: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum VerificationRecordEvent {
    #[serde(rename = "verification_record.created")]
    #[serde(rename_all = "camelCase")]
    Created {
        user_id: String,
        kind: RecordKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connector_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_ref: Option<String>,
        verified: bool,
        expires_at: i64,
    },
    #[serde(rename = "verification_record.refused")]
    #[serde(rename_all = "camelCase")]
    Refused { user_id: String, kind: RecordKind },
    #[serde(rename = "verification_record.verified")]
    #[serde(rename_all = "camelCase")]
    Verified {
        result_ref: String,
        retired_session_ref: String,
    },
    #[serde(rename = "verification_record.code_verified")]
    #[serde(rename_all = "camelCase")]
    CodeVerified {},
    #[serde(rename = "verification_record.failed")]
    #[serde(rename_all = "camelCase")]
    Failed {
        reason: String,
        retired_session_ref: String,
    },
    #[serde(rename = "verification_record.used")]
    #[serde(rename_all = "camelCase")]
    Used { purpose: String },
    #[serde(rename = "verification_record.consumed")]
    #[serde(rename_all = "camelCase")]
    Consumed { retired_result_ref: String },
}

impl cqrs_es::DomainEvent for VerificationRecordEvent {
    fn event_type(&self) -> String {
        match self {
            VerificationRecordEvent::Created { .. } => "verification_record.created",
            VerificationRecordEvent::Refused { .. } => "verification_record.refused",
            VerificationRecordEvent::Verified { .. } => "verification_record.verified",
            VerificationRecordEvent::CodeVerified {} => "verification_record.code_verified",
            VerificationRecordEvent::Failed { .. } => "verification_record.failed",
            VerificationRecordEvent::Used { .. } => "verification_record.used",
            VerificationRecordEvent::Consumed { .. } => "verification_record.consumed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            VerificationRecordEvent::Created { .. }
            | VerificationRecordEvent::Refused { .. }
            | VerificationRecordEvent::Verified { .. }
            | VerificationRecordEvent::CodeVerified {}
            | VerificationRecordEvent::Failed { .. }
            | VerificationRecordEvent::Used { .. }
            | VerificationRecordEvent::Consumed { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for VerificationRecordEvent {
    fn retired_vault_refs(&self) -> Vec<String> {
        match self {
            VerificationRecordEvent::Created { .. }
            | VerificationRecordEvent::Refused { .. }
            | VerificationRecordEvent::CodeVerified {}
            | VerificationRecordEvent::Used { .. } => Vec::new(),
            VerificationRecordEvent::Verified {
                retired_session_ref,
                ..
            }
            | VerificationRecordEvent::Failed {
                retired_session_ref,
                ..
            } => vec![retired_session_ref.clone()],
            VerificationRecordEvent::Consumed { retired_result_ref } => {
                vec![retired_result_ref.clone()]
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationRecordError {
    /// Unknown, someone else's, expired, not (or no longer) verified, or spent: one answer for
    /// all, so a caller learns nothing about records that are not theirs.
    #[error("Verification record not found.")]
    NotFound,
    /// What the `logto-verification-id` header names does not prove the caller's identity now.
    #[error("Permission denied, the verification is invalid or expired. Please verify again.")]
    PermissionDenied,
    #[error("a verification record with this id already exists")]
    AlreadyExists,
}

#[derive(Debug, Clone, Default)]
pub enum VerificationRecord {
    #[default]
    New,
    Open {
        user_id: String,
        kind: RecordKind,
        expires_at: i64,
        /// Sealed until the provider's return (social records).
        session_ref: Option<String>,
        /// Sealed from the return until consumption (social records).
        result_ref: Option<String>,
        verified: bool,
    },
    /// Refused, failed or consumed.
    Ended { user_id: String },
}

impl VerificationRecord {
    fn user_id(&self) -> Option<&str> {
        match self {
            VerificationRecord::New => None,
            VerificationRecord::Open { user_id, .. } | VerificationRecord::Ended { user_id } => {
                Some(user_id)
            }
        }
    }
}

impl Aggregate for VerificationRecord {
    const TYPE: &'static str = "verification_record";
    type Command = VerificationRecordCommand;
    type Event = VerificationRecordEvent;
    type Error = VerificationRecordError;

    fn decide(
        &self,
        command: VerificationRecordCommand,
    ) -> Result<Vec<VerificationRecordEvent>, VerificationRecordError> {
        use RecordKind as K;
        use VerificationRecord as S;
        use VerificationRecordCommand as C;
        use VerificationRecordError as E;
        use VerificationRecordEvent as V;
        let owned_by = |caller: &str| self.user_id() == Some(caller);
        Ok(match (self, command) {
            (
                S::New,
                C::ProvePassword {
                    user_id,
                    expires_at,
                },
            ) => vec![V::Created {
                user_id,
                kind: K::Password,
                connector_id: None,
                session_ref: None,
                verified: true,
                expires_at,
            }],
            (S::New, C::RefusePassword { user_id }) => vec![V::Refused {
                user_id,
                kind: K::Password,
            }],
            (
                S::New,
                C::StartSocial {
                    user_id,
                    connector_id,
                    session_ref,
                    expires_at,
                },
            ) => vec![V::Created {
                user_id,
                kind: K::Social,
                connector_id: Some(connector_id),
                session_ref: Some(session_ref),
                verified: false,
                expires_at,
            }],
            (
                S::New,
                C::StartEmailCode {
                    user_id,
                    expires_at,
                },
            ) => vec![V::Created {
                user_id,
                kind: K::EmailCode,
                connector_id: None,
                session_ref: None,
                verified: false,
                expires_at,
            }],
            (
                S::Open { .. } | S::Ended { .. },
                C::ProvePassword { .. }
                | C::RefusePassword { .. }
                | C::StartEmailCode { .. }
                | C::StartSocial { .. },
            ) => return Err(E::AlreadyExists),
            (
                S::Open {
                    kind: K::EmailCode,
                    expires_at,
                    verified: false,
                    ..
                },
                C::VerifyEmailCode { user_id, now },
            ) if owned_by(&user_id) && now < *expires_at => vec![V::CodeVerified {}],
            (
                S::Open {
                    kind: K::Social,
                    expires_at,
                    session_ref: Some(session_ref),
                    verified: false,
                    ..
                },
                C::VerifySocial {
                    user_id,
                    result_ref,
                    now,
                },
            ) if owned_by(&user_id) && now < *expires_at => vec![V::Verified {
                result_ref,
                retired_session_ref: session_ref.clone(),
            }],
            // A failed return ends the trip even past its expiry, so its session is retired.
            (
                S::Open {
                    kind: K::Social,
                    session_ref: Some(session_ref),
                    verified: false,
                    ..
                },
                C::FailSocial { user_id, reason },
            ) if owned_by(&user_id) => vec![V::Failed {
                reason,
                retired_session_ref: session_ref.clone(),
            }],
            (
                S::Open {
                    kind,
                    expires_at,
                    verified: true,
                    ..
                },
                C::ProveIdentity {
                    user_id,
                    purpose,
                    now,
                },
            ) if kind.proves_identity() && owned_by(&user_id) && now < *expires_at => {
                vec![V::Used { purpose }]
            }
            (S::New | S::Open { .. } | S::Ended { .. }, C::ProveIdentity { .. }) => {
                return Err(E::PermissionDenied);
            }
            (
                S::Open {
                    kind: K::Social,
                    expires_at,
                    result_ref: Some(result_ref),
                    verified: true,
                    ..
                },
                C::Consume { user_id, now },
            ) if owned_by(&user_id) && now < *expires_at => vec![V::Consumed {
                retired_result_ref: result_ref.clone(),
            }],
            (
                S::New | S::Open { .. } | S::Ended { .. },
                C::VerifyEmailCode { .. }
                | C::VerifySocial { .. }
                | C::FailSocial { .. }
                | C::Consume { .. },
            ) => return Err(E::NotFound),
        })
    }

    fn apply(&mut self, event: &VerificationRecordEvent) {
        let user_id = self.user_id().unwrap_or_default().to_owned();
        match event {
            VerificationRecordEvent::Created {
                user_id,
                kind,
                session_ref,
                verified,
                expires_at,
                ..
            } => {
                *self = VerificationRecord::Open {
                    user_id: user_id.clone(),
                    kind: *kind,
                    expires_at: *expires_at,
                    session_ref: session_ref.clone(),
                    result_ref: None,
                    verified: *verified,
                };
            }
            VerificationRecordEvent::Verified {
                result_ref: new, ..
            } => {
                if let VerificationRecord::Open {
                    session_ref,
                    result_ref,
                    verified,
                    ..
                } = self
                {
                    *session_ref = None;
                    *result_ref = Some(new.clone());
                    *verified = true;
                }
            }
            VerificationRecordEvent::CodeVerified {} => {
                if let VerificationRecord::Open { verified, .. } = self {
                    *verified = true;
                }
            }
            VerificationRecordEvent::Used { .. } => {}
            VerificationRecordEvent::Refused { user_id, .. } => {
                *self = VerificationRecord::Ended {
                    user_id: user_id.clone(),
                };
            }
            VerificationRecordEvent::Failed { .. } | VerificationRecordEvent::Consumed { .. } => {
                *self = VerificationRecord::Ended { user_id };
            }
        }
    }

    /// The person who made the record: erasing them makes its trail unreadable with theirs.
    fn data_subject(&self, _stream_id: &str, events: &[VerificationRecordEvent]) -> Option<String> {
        if let Some(user_id) = self.user_id() {
            return Some(user_id.to_owned());
        }
        events.iter().find_map(|event| match event {
            VerificationRecordEvent::Created { user_id, .. }
            | VerificationRecordEvent::Refused { user_id, .. } => Some(user_id.clone()),
            VerificationRecordEvent::Verified { .. }
            | VerificationRecordEvent::CodeVerified {}
            | VerificationRecordEvent::Failed { .. }
            | VerificationRecordEvent::Used { .. }
            | VerificationRecordEvent::Consumed { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;
    use VerificationRecordCommand as C;
    use VerificationRecordError as E;
    use VerificationRecordEvent as V;

    const EXPIRES: i64 = 1_000 + TTL_MS;

    fn password() -> V {
        V::Created {
            user_id: "u1".into(),
            kind: RecordKind::Password,
            connector_id: None,
            session_ref: None,
            verified: true,
            expires_at: EXPIRES,
        }
    }

    fn social() -> V {
        V::Created {
            user_id: "u1".into(),
            kind: RecordKind::Social,
            connector_id: Some("c1".into()),
            session_ref: Some("s1".into()),
            verified: false,
            expires_at: EXPIRES,
        }
    }

    fn verified() -> V {
        V::Verified {
            result_ref: "r1".into(),
            retired_session_ref: "s1".into(),
        }
    }

    fn prove(user_id: &str, now: i64) -> C {
        C::ProveIdentity {
            user_id: user_id.into(),
            purpose: "identity_link".into(),
            now,
        }
    }

    #[test]
    fn a_password_record_proves_its_owner_until_it_expires() {
        Given::<VerificationRecord>::with(())
            .given(vec![password()])
            .when(prove("u1", EXPIRES - 1))
            .then_expect_events(vec![V::Used {
                purpose: "identity_link".into(),
            }]);
        // Presented again: still good, as in Logto, until the ten minutes are over.
        Given::<VerificationRecord>::with(())
            .given(vec![
                password(),
                V::Used {
                    purpose: "identity_link".into(),
                },
            ])
            .when(prove("u1", EXPIRES - 1))
            .then_expect_events(vec![V::Used {
                purpose: "identity_link".into(),
            }]);
        for (user_id, now) in [("u1", EXPIRES), ("u2", 2_000)] {
            Given::<VerificationRecord>::with(())
                .given(vec![password()])
                .when(prove(user_id, now))
                .then_expect_error(E::PermissionDenied);
        }
        // Neither a refused password, nor a social record, nor nothing proves anyone.
        let refused = V::Refused {
            user_id: "u1".into(),
            kind: RecordKind::Password,
        };
        for history in [vec![], vec![refused], vec![social(), verified()]] {
            Given::<VerificationRecord>::with(())
                .given(history)
                .when(prove("u1", 2_000))
                .then_expect_error(E::PermissionDenied);
        }
    }

    #[test]
    fn a_social_record_is_verified_once_and_consumed_once_by_its_owner() {
        Given::<VerificationRecord>::with(())
            .given(vec![social()])
            .when(C::VerifySocial {
                user_id: "u1".into(),
                result_ref: "r1".into(),
                now: 2_000,
            })
            .then_expect_events(vec![verified()]);
        assert_eq!(verified().retired_vault_refs(), vec!["s1".to_owned()]);
        for (user_id, now) in [("u2", 2_000), ("u1", EXPIRES)] {
            Given::<VerificationRecord>::with(())
                .given(vec![social()])
                .when(C::VerifySocial {
                    user_id: user_id.into(),
                    result_ref: "r1".into(),
                    now,
                })
                .then_expect_error(E::NotFound);
        }
        // Not before its return, not by someone else, not late, and not twice.
        let consume = |user_id: &str, now: i64| C::Consume {
            user_id: user_id.into(),
            now,
        };
        Given::<VerificationRecord>::with(())
            .given(vec![social()])
            .when(consume("u1", 2_000))
            .then_expect_error(E::NotFound);
        let consumed = V::Consumed {
            retired_result_ref: "r1".into(),
        };
        Given::<VerificationRecord>::with(())
            .given(vec![social(), verified()])
            .when(consume("u1", 2_000))
            .then_expect_events(vec![consumed.clone()]);
        for (history, user_id, now) in [
            (vec![social(), verified()], "u2", 2_000),
            (vec![social(), verified()], "u1", EXPIRES),
            (vec![social(), verified(), consumed], "u1", 2_000),
        ] {
            Given::<VerificationRecord>::with(())
                .given(history)
                .when(consume(user_id, now))
                .then_expect_error(E::NotFound);
        }
    }

    #[test]
    fn an_email_code_record_proves_its_owner_once_the_code_is_entered() {
        let mailed = V::Created {
            user_id: "u1".into(),
            kind: RecordKind::EmailCode,
            connector_id: None,
            session_ref: None,
            verified: false,
            expires_at: EXPIRES,
        };
        Given::<VerificationRecord>::with(())
            .given(vec![mailed.clone()])
            .when(prove("u1", 2_000))
            .then_expect_error(E::PermissionDenied);
        for (user_id, now) in [("u2", 2_000), ("u1", EXPIRES)] {
            Given::<VerificationRecord>::with(())
                .given(vec![mailed.clone()])
                .when(C::VerifyEmailCode {
                    user_id: user_id.into(),
                    now,
                })
                .then_expect_error(E::NotFound);
        }
        Given::<VerificationRecord>::with(())
            .given(vec![mailed.clone()])
            .when(C::VerifyEmailCode {
                user_id: "u1".into(),
                now: 2_000,
            })
            .then_expect_events(vec![V::CodeVerified {}]);
        Given::<VerificationRecord>::with(())
            .given(vec![mailed, V::CodeVerified {}])
            .when(prove("u1", 2_000))
            .then_expect_events(vec![V::Used {
                purpose: "identity_link".into(),
            }]);
    }

    #[test]
    fn a_failed_return_ends_the_trip_and_retires_its_session() {
        let failed = V::Failed {
            reason: "connector.social_invalid_id_token".into(),
            retired_session_ref: "s1".into(),
        };
        Given::<VerificationRecord>::with(())
            .given(vec![social()])
            .when(C::FailSocial {
                user_id: "u1".into(),
                reason: "connector.social_invalid_id_token".into(),
            })
            .then_expect_events(vec![failed.clone()]);
        Given::<VerificationRecord>::with(())
            .given(vec![social(), failed])
            .when(C::VerifySocial {
                user_id: "u1".into(),
                result_ref: "r1".into(),
                now: 2_000,
            })
            .then_expect_error(E::NotFound);
        assert_eq!(
            VerificationRecord::default().data_subject("v1", &[social()]),
            Some("u1".into())
        );
    }
}
