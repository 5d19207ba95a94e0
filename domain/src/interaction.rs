//! A sign-in interaction: one authorization request's journey through the hosted pages or the
//! Experience API until it yields a signed-in user (or is abandoned). Every step is an event,
//! so `/api/logs` can show each attempt (Logto's `Interaction.*` keys).
//!
//! The interaction is its own data subject (`interaction:<id>`): what a visitor typed and where
//! from is sealed under a key that erasing the user it identified also destroys.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};
use crate::mfa::{MfaFactorKind, NewMfaVerification};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InteractionEvent {
    SignIn,
    Register,
    ForgotPassword,
}

impl InteractionEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionEvent::SignIn => "SignIn",
            InteractionEvent::Register => "Register",
            InteractionEvent::ForgotPassword => "ForgotPassword",
        }
    }
}

/// The validated authorization request the interaction will answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// `query` or `form_post`.
    pub response_mode: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub resources: Vec<String>,
    pub prompts: Vec<String>,
    pub ui_locales: Option<String>,
    pub organization_id: Option<String>,
    pub max_age: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentifierType {
    #[serde(rename = "username")]
    Username,
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "phone")]
    Phone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    pub value: String,
}

/// Logto's verification types (`Interaction.<event>.Verification.<type>.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationKind {
    Password,
    EmailVerificationCode,
    PhoneVerificationCode,
    OneTimeToken,
    Social,
    Totp,
    BackupCode,
    NewPasswordIdentity,
}

impl VerificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationKind::Password => "Password",
            VerificationKind::EmailVerificationCode => "EmailVerificationCode",
            VerificationKind::PhoneVerificationCode => "PhoneVerificationCode",
            VerificationKind::OneTimeToken => "OneTimeToken",
            VerificationKind::Social => "Social",
            VerificationKind::Totp => "Totp",
            VerificationKind::BackupCode => "BackupCode",
            VerificationKind::NewPasswordIdentity => "NewPasswordIdentity",
        }
    }

    /// Second factors: verifying one completes a sign-in, never starts one.
    pub fn is_second_factor(self) -> bool {
        matches!(self, VerificationKind::Totp | VerificationKind::BackupCode)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub verification_id: String,
    pub kind: VerificationKind,
    pub identifier: Option<Identifier>,
    /// The keyed hash of `identifier` (never the identifier itself, which is sealed): kept in
    /// the clear so an erasure finds an interaction that named no account by the person's
    /// identifiers. Absent from events recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_key: Option<String>,
    /// The existing user the verification proves, if any (a verified email of a new person
    /// proves none).
    pub user_id: Option<String>,
    /// The one-time token a `OneTimeToken` verification consumed: registration takes its email,
    /// and submission its organizations (`context.jitOrganizationIds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_token_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub kind: VerificationKind,
    pub identifier: Option<Identifier>,
    /// The keyed hash of `identifier` (never the identifier itself, which is sealed): kept in
    /// the clear so an erasure finds an interaction that named no account by the person's
    /// identifiers. Absent from events recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_key: Option<String>,
    pub user_id: Option<String>,
    /// Logto's error code, e.g. `session.invalid_credentials`.
    pub reason: String,
}

/// An identifier the sentinel locked: as typed (`username`, `email`, `phone`), or the user id
/// (`userId`) for second factors, as Logto reports them in `Identifier.Lockout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedIdentifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InteractionCommand {
    Start {
        request: AuthorizationRequest,
        event: InteractionEvent,
        expires_at: i64,
    },
    SetEvent {
        event: InteractionEvent,
        now: i64,
    },
    RecordVerified {
        verified: Verified,
        now: i64,
    },
    RecordFailure {
        failed: Failed,
        now: i64,
    },
    /// Sign-in: the verification names an existing user, who may sign in (checked at the edge:
    /// exists, not suspended, not locked out).
    Identify {
        verification_id: String,
        user_id: String,
        now: i64,
    },
    /// Registration: the user was created in the same unit of work.
    Register {
        user_id: String,
        now: i64,
    },
    /// Ends the user's part; `mfa_pending` is true when the user has a second factor that no
    /// verification of this interaction has passed yet.
    Submit {
        mfa_pending: bool,
        now: i64,
    },
    /// The browser's session already proves who the user is: an interaction opened only to
    /// ask for consent (a third-party application not yet authorized) skips the sign-in.
    ContinueSession {
        user_id: String,
        session_id: String,
        now: i64,
    },
    /// The user granted the application what the request asks for.
    Consent {
        now: i64,
    },
    /// The user refused; the interaction ends without a grant.
    DenyConsent {
        now: i64,
    },
    /// A second factor is being set up for the identified user: a new TOTP secret (sealed in
    /// the vault) or new backup codes (keyed hashes). The factor's id is the verification id.
    StartMfaEnrolment {
        user_id: String,
        factor: NewMfaVerification,
        now: i64,
    },
    /// A code of the new TOTP secret was checked at the edge.
    ConfirmMfaEnrolment {
        verification_id: String,
        now: i64,
    },
    /// The enrolment is to be added to the user on submission.
    BindMfa {
        verification_id: String,
        now: i64,
    },
    /// The user declined an optional MFA enrolment (checked against the policy at the edge).
    SkipMfa {
        now: i64,
    },
    /// The sentinel locked an identifier after this interaction's failed verification.
    RecordLockout {
        identifier: LockedIdentifier,
        user_id: Option<String>,
        now: i64,
    },
    /// A verification code was not sent: its recipient had too many already.
    RecordMessageRateLimited {
        recipient: String,
        now: i64,
    },
    /// The authorization endpoint turned the result into a grant. `consent_required` (decided
    /// at the edge: a third-party application without a covering grant) demands a recorded
    /// consent first.
    Complete {
        grant_id: String,
        session_id: String,
        consent_required: bool,
        now: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InteractionEventRecord {
    #[serde(rename = "interaction.started")]
    #[serde(rename_all = "camelCase")]
    Started {
        request: Box<AuthorizationRequest>,
        event: InteractionEvent,
        expires_at: i64,
    },
    #[serde(rename = "interaction.event_changed")]
    EventChanged { event: InteractionEvent },
    #[serde(rename = "interaction.verified")]
    Verified(Verified),
    #[serde(rename = "interaction.verification_failed")]
    VerificationFailed(Failed),
    #[serde(rename = "interaction.identified")]
    #[serde(rename_all = "camelCase")]
    Identified {
        user_id: String,
        verification_id: String,
    },
    #[serde(rename = "interaction.user_registered")]
    #[serde(rename_all = "camelCase")]
    UserRegistered { user_id: String },
    #[serde(rename = "interaction.submitted")]
    #[serde(rename_all = "camelCase")]
    Submitted {
        user_id: String,
        event: InteractionEvent,
        application_id: String,
    },
    #[serde(rename = "interaction.completed")]
    #[serde(rename_all = "camelCase")]
    Completed {
        grant_id: String,
        session_id: String,
        user_id: String,
    },
    /// The user of an existing session (by the keyed hash of its cookie) stands in for a
    /// sign-in.
    #[serde(rename = "interaction.session_continued")]
    #[serde(rename_all = "camelCase")]
    SessionContinued { user_id: String, session_id: String },
    /// What the user consented to: the request's scopes and resources, repeated so the log
    /// alone shows what was granted.
    #[serde(rename = "interaction.consented")]
    Consented {
        scopes: Vec<String>,
        resources: Vec<String>,
    },
    #[serde(rename = "interaction.consent_denied")]
    ConsentDenied {},
    #[serde(rename = "interaction.mfa_enrolment_started")]
    #[serde(rename_all = "camelCase")]
    MfaEnrolmentStarted {
        user_id: String,
        factor: NewMfaVerification,
    },
    #[serde(rename = "interaction.mfa_enrolment_confirmed")]
    #[serde(rename_all = "camelCase")]
    MfaEnrolmentConfirmed { verification_id: String },
    #[serde(rename = "interaction.mfa_bound")]
    #[serde(rename_all = "camelCase")]
    MfaBound {
        verification_id: String,
        factor: MfaFactorKind,
    },
    #[serde(rename = "interaction.mfa_skipped")]
    MfaSkipped {},
    #[serde(rename = "interaction.identifier_locked")]
    #[serde(rename_all = "camelCase")]
    IdentifierLocked {
        // Personal, like every typed identifier: blank once the interaction's key is
        // destroyed (the erasure of the person who signed in through it).
        #[serde(default)]
        identifier: LockedIdentifier,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    #[serde(rename = "interaction.message_rate_limited")]
    MessageRateLimited {
        #[serde(default)]
        recipient: String,
    },
}

impl cqrs_es::DomainEvent for InteractionEventRecord {
    fn event_type(&self) -> String {
        match self {
            InteractionEventRecord::Started { .. } => "interaction.started",
            InteractionEventRecord::EventChanged { .. } => "interaction.event_changed",
            InteractionEventRecord::Verified(_) => "interaction.verified",
            InteractionEventRecord::VerificationFailed(_) => "interaction.verification_failed",
            InteractionEventRecord::Identified { .. } => "interaction.identified",
            InteractionEventRecord::UserRegistered { .. } => "interaction.user_registered",
            InteractionEventRecord::Submitted { .. } => "interaction.submitted",
            InteractionEventRecord::Completed { .. } => "interaction.completed",
            InteractionEventRecord::SessionContinued { .. } => "interaction.session_continued",
            InteractionEventRecord::Consented { .. } => "interaction.consented",
            InteractionEventRecord::ConsentDenied {} => "interaction.consent_denied",
            InteractionEventRecord::MfaEnrolmentStarted { .. } => {
                "interaction.mfa_enrolment_started"
            }
            InteractionEventRecord::MfaEnrolmentConfirmed { .. } => {
                "interaction.mfa_enrolment_confirmed"
            }
            InteractionEventRecord::MfaBound { .. } => "interaction.mfa_bound",
            InteractionEventRecord::MfaSkipped {} => "interaction.mfa_skipped",
            InteractionEventRecord::IdentifierLocked { .. } => "interaction.identifier_locked",
            InteractionEventRecord::MessageRateLimited { .. } => "interaction.message_rate_limited",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            InteractionEventRecord::Started { .. }
            | InteractionEventRecord::EventChanged { .. }
            | InteractionEventRecord::Verified(_)
            | InteractionEventRecord::VerificationFailed(_)
            | InteractionEventRecord::Identified { .. }
            | InteractionEventRecord::UserRegistered { .. }
            | InteractionEventRecord::Submitted { .. }
            | InteractionEventRecord::Completed { .. }
            | InteractionEventRecord::SessionContinued { .. }
            | InteractionEventRecord::Consented { .. }
            | InteractionEventRecord::ConsentDenied {}
            | InteractionEventRecord::MfaEnrolmentStarted { .. }
            | InteractionEventRecord::MfaEnrolmentConfirmed { .. }
            | InteractionEventRecord::MfaBound { .. }
            | InteractionEventRecord::MfaSkipped {}
            | InteractionEventRecord::IdentifierLocked { .. }
            | InteractionEventRecord::MessageRateLimited { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for InteractionEventRecord {
    /// What the visitor typed (identifiers) is personal data.
    fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            InteractionEventRecord::Verified(_)
            | InteractionEventRecord::VerificationFailed(_)
            | InteractionEventRecord::IdentifierLocked { .. } => &["identifier"],
            InteractionEventRecord::MessageRateLimited { .. } => &["recipient"],
            InteractionEventRecord::Started { .. }
            | InteractionEventRecord::EventChanged { .. }
            | InteractionEventRecord::Identified { .. }
            | InteractionEventRecord::UserRegistered { .. }
            | InteractionEventRecord::Submitted { .. }
            | InteractionEventRecord::Completed { .. }
            | InteractionEventRecord::SessionContinued { .. }
            | InteractionEventRecord::Consented { .. }
            | InteractionEventRecord::ConsentDenied {}
            | InteractionEventRecord::MfaEnrolmentStarted { .. }
            | InteractionEventRecord::MfaEnrolmentConfirmed { .. }
            | InteractionEventRecord::MfaBound { .. }
            | InteractionEventRecord::MfaSkipped {} => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {
    #[error("the interaction does not exist")]
    NotFound,
    #[error("the interaction has already started")]
    AlreadyStarted,
    #[error("the interaction has expired")]
    Expired,
    #[error("the interaction is already finished")]
    Finished,
    #[error("verification {0} was not passed in this interaction")]
    VerificationNotFound(String),
    #[error("the verification does not identify an existing user")]
    UserNotIdentified,
    #[error("registration needs the Register interaction event")]
    NotRegistering,
    #[error("no user is identified yet")]
    NotIdentified,
    #[error("the second factor has not been verified")]
    MfaPending,
    #[error("the interaction has not been submitted")]
    NotSubmitted,
    #[error("the user has not consented to this application")]
    ConsentRequired,
    #[error("the new second factor has not been verified with a code")]
    MfaEnrolmentUnconfirmed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub request: AuthorizationRequest,
    pub event: InteractionEvent,
    pub expires_at: i64,
    /// Verification id → the user it proves, if any.
    pub verifications: BTreeMap<String, (VerificationKind, Option<String>)>,
    pub user_id: Option<String>,
    pub submitted: bool,
    pub completed: bool,
    pub consented: bool,
    /// Second factors being set up: verification id → (factor, user, confirmed).
    pub mfa_enrolments: BTreeMap<String, (MfaFactorKind, String, bool)>,
    pub mfa_bound: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub enum Interaction {
    #[default]
    New,
    Live(Box<Live>),
}

impl Live {
    fn decide(
        &self,
        command: InteractionCommand,
    ) -> Result<Vec<InteractionEventRecord>, InteractionError> {
        use InteractionEventRecord as E;
        if self.completed {
            return Err(InteractionError::Finished);
        }
        let now = match &command {
            InteractionCommand::Start { .. } => return Err(InteractionError::AlreadyStarted),
            InteractionCommand::SetEvent { now, .. }
            | InteractionCommand::RecordVerified { now, .. }
            | InteractionCommand::RecordFailure { now, .. }
            | InteractionCommand::Identify { now, .. }
            | InteractionCommand::Register { now, .. }
            | InteractionCommand::Submit { now, .. }
            | InteractionCommand::ContinueSession { now, .. }
            | InteractionCommand::Consent { now }
            | InteractionCommand::DenyConsent { now }
            | InteractionCommand::Complete { now, .. }
            | InteractionCommand::StartMfaEnrolment { now, .. }
            | InteractionCommand::ConfirmMfaEnrolment { now, .. }
            | InteractionCommand::BindMfa { now, .. }
            | InteractionCommand::SkipMfa { now }
            | InteractionCommand::RecordLockout { now, .. }
            | InteractionCommand::RecordMessageRateLimited { now, .. } => *now,
        };
        if now >= self.expires_at {
            return Err(InteractionError::Expired);
        }
        let submitted_only = matches!(
            command,
            InteractionCommand::Complete { .. }
                | InteractionCommand::Consent { .. }
                | InteractionCommand::DenyConsent { .. }
        );
        if self.submitted && !submitted_only {
            return Err(InteractionError::Finished);
        }
        if submitted_only && !self.submitted {
            return Err(InteractionError::NotSubmitted);
        }
        Ok(match command {
            InteractionCommand::Start { .. } => return Err(InteractionError::AlreadyStarted),
            InteractionCommand::SetEvent { event, .. } if event == self.event => Vec::new(),
            InteractionCommand::SetEvent { event, .. } => vec![E::EventChanged { event }],
            InteractionCommand::RecordVerified { verified, .. } => vec![E::Verified(verified)],
            InteractionCommand::RecordFailure { failed, .. } => vec![E::VerificationFailed(failed)],
            InteractionCommand::Identify {
                verification_id,
                user_id,
                ..
            } => match self.verifications.get(&verification_id) {
                None => return Err(InteractionError::VerificationNotFound(verification_id)),
                Some((_, proven)) if proven.as_deref() != Some(user_id.as_str()) => {
                    return Err(InteractionError::UserNotIdentified);
                }
                Some(_) => vec![E::Identified {
                    user_id,
                    verification_id,
                }],
            },
            InteractionCommand::Register { user_id, .. } => {
                if self.event != InteractionEvent::Register {
                    return Err(InteractionError::NotRegistering);
                }
                vec![E::UserRegistered { user_id }]
            }
            InteractionCommand::Submit { mfa_pending, .. } => {
                let user_id = self
                    .user_id
                    .clone()
                    .ok_or(InteractionError::NotIdentified)?;
                let second_factor_passed = self.verifications.values().any(|(kind, proven)| {
                    kind.is_second_factor() && proven.as_ref() == Some(&user_id)
                });
                if mfa_pending && !second_factor_passed {
                    return Err(InteractionError::MfaPending);
                }
                vec![E::Submitted {
                    user_id,
                    event: self.event,
                    application_id: self.request.client_id.clone(),
                }]
            }
            InteractionCommand::ContinueSession {
                user_id,
                session_id,
                ..
            } => {
                // Only a journey nobody has signed into yet can be taken over by a session.
                if self.user_id.is_some() || !self.verifications.is_empty() {
                    return Err(InteractionError::AlreadyStarted);
                }
                vec![E::SessionContinued {
                    user_id,
                    session_id,
                }]
            }
            InteractionCommand::Consent { .. } if self.consented => Vec::new(),
            InteractionCommand::Consent { .. } => vec![E::Consented {
                scopes: self.request.scopes.clone(),
                resources: self.request.resources.clone(),
            }],
            InteractionCommand::DenyConsent { .. } => vec![E::ConsentDenied {}],
            InteractionCommand::Complete {
                grant_id,
                session_id,
                consent_required,
                ..
            } => {
                if consent_required && !self.consented {
                    return Err(InteractionError::ConsentRequired);
                }
                vec![E::Completed {
                    grant_id,
                    session_id,
                    user_id: self.user_id.clone().unwrap_or_default(),
                }]
            }
            InteractionCommand::StartMfaEnrolment {
                user_id, factor, ..
            } => {
                if self.user_id.as_deref() != Some(user_id.as_str()) {
                    return Err(InteractionError::NotIdentified);
                }
                vec![E::MfaEnrolmentStarted { user_id, factor }]
            }
            InteractionCommand::ConfirmMfaEnrolment {
                verification_id, ..
            } => match self.mfa_enrolments.get(&verification_id) {
                Some((MfaFactorKind::Totp, _, false)) => {
                    vec![E::MfaEnrolmentConfirmed { verification_id }]
                }
                Some((MfaFactorKind::Totp, _, true)) => Vec::new(),
                Some((MfaFactorKind::BackupCode, _, _)) | None => {
                    return Err(InteractionError::VerificationNotFound(verification_id));
                }
            },
            InteractionCommand::BindMfa {
                verification_id, ..
            } => match self.mfa_enrolments.get(&verification_id) {
                Some((_, user_id, _)) if self.user_id.as_ref() != Some(user_id) => {
                    return Err(InteractionError::UserNotIdentified);
                }
                Some((MfaFactorKind::Totp, _, false)) => {
                    return Err(InteractionError::MfaEnrolmentUnconfirmed);
                }
                Some(_) if self.mfa_bound.contains(&verification_id) => Vec::new(),
                Some((factor, _, _)) => vec![E::MfaBound {
                    verification_id,
                    factor: *factor,
                }],
                None => return Err(InteractionError::VerificationNotFound(verification_id)),
            },
            InteractionCommand::SkipMfa { .. } => vec![E::MfaSkipped {}],
            InteractionCommand::RecordLockout {
                identifier,
                user_id,
                ..
            } => vec![E::IdentifierLocked {
                identifier,
                user_id,
            }],
            InteractionCommand::RecordMessageRateLimited { recipient, .. } => {
                vec![E::MessageRateLimited { recipient }]
            }
        })
    }

    fn apply(&mut self, event: &InteractionEventRecord) {
        match event {
            InteractionEventRecord::Started { .. }
            | InteractionEventRecord::VerificationFailed(_) => {}
            InteractionEventRecord::EventChanged { event } => self.event = *event,
            InteractionEventRecord::Verified(verified) => {
                self.verifications.insert(
                    verified.verification_id.clone(),
                    (verified.kind, verified.user_id.clone()),
                );
            }
            InteractionEventRecord::Identified { user_id, .. }
            | InteractionEventRecord::UserRegistered { user_id } => {
                self.user_id = Some(user_id.clone());
            }
            InteractionEventRecord::Submitted { .. } => self.submitted = true,
            InteractionEventRecord::Completed { .. } | InteractionEventRecord::ConsentDenied {} => {
                self.completed = true;
            }
            InteractionEventRecord::SessionContinued { user_id, .. } => {
                self.user_id = Some(user_id.clone());
                self.submitted = true;
            }
            InteractionEventRecord::Consented { .. } => self.consented = true,
            InteractionEventRecord::MfaEnrolmentStarted { user_id, factor } => {
                self.mfa_enrolments.insert(
                    factor.id().to_owned(),
                    (factor.kind(), user_id.clone(), false),
                );
            }
            InteractionEventRecord::MfaEnrolmentConfirmed { verification_id } => {
                if let Some(enrolment) = self.mfa_enrolments.get_mut(verification_id) {
                    enrolment.2 = true;
                }
            }
            InteractionEventRecord::MfaBound {
                verification_id, ..
            } => {
                self.mfa_bound.insert(verification_id.clone());
            }
            InteractionEventRecord::MfaSkipped {}
            | InteractionEventRecord::IdentifierLocked { .. }
            | InteractionEventRecord::MessageRateLimited { .. } => {}
        }
    }
}

impl Aggregate for Interaction {
    const TYPE: &'static str = "interaction";
    type Command = InteractionCommand;
    type Event = InteractionEventRecord;
    type Error = InteractionError;

    fn decide(
        &self,
        command: InteractionCommand,
    ) -> Result<Vec<InteractionEventRecord>, InteractionError> {
        match (self, command) {
            (
                Interaction::New,
                InteractionCommand::Start {
                    request,
                    event,
                    expires_at,
                },
            ) => Ok(vec![InteractionEventRecord::Started {
                request: Box::new(request),
                event,
                expires_at,
            }]),
            (Interaction::New, _) => Err(InteractionError::NotFound),
            (Interaction::Live(live), command) => live.decide(command),
        }
    }

    fn apply(&mut self, event: &InteractionEventRecord) {
        match (self, event) {
            (
                this @ Interaction::New,
                InteractionEventRecord::Started {
                    request,
                    event,
                    expires_at,
                },
            ) => {
                *this = Interaction::Live(Box::new(Live {
                    request: request.as_ref().clone(),
                    event: *event,
                    expires_at: *expires_at,
                    verifications: BTreeMap::new(),
                    user_id: None,
                    submitted: false,
                    completed: false,
                    consented: false,
                    mfa_enrolments: BTreeMap::new(),
                    mfa_bound: BTreeSet::new(),
                }));
            }
            (Interaction::Live(live), event) => live.apply(event),
            (Interaction::New, _) => {}
        }
    }

    /// A visitor is nobody yet: the interaction keys its own personal data, and erasing the
    /// user it identified destroys that key too.
    fn data_subject(&self, stream_id: &str, _events: &[InteractionEventRecord]) -> Option<String> {
        Some(subject(stream_id))
    }
}

/// The data subject of an interaction's events.
pub fn subject(interaction_id: &str) -> String {
    format!("interaction:{interaction_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn started() -> InteractionEventRecord {
        InteractionEventRecord::Started {
            request: Box::new(AuthorizationRequest {
                client_id: "app".into(),
                redirect_uri: "https://app.example/cb".into(),
                response_mode: "query".into(),
                scopes: vec!["openid".into()],
                state: Some("s".into()),
                nonce: None,
                code_challenge: None,
                resources: vec![],
                prompts: vec!["consent".into()],
                ui_locales: None,
                organization_id: None,
                max_age: None,
            }),
            event: InteractionEvent::SignIn,
            expires_at: 1_000,
        }
    }

    fn verified(id: &str, kind: VerificationKind, user: Option<&str>) -> InteractionEventRecord {
        InteractionEventRecord::Verified(Verified {
            verification_id: id.into(),
            kind,
            identifier: None,
            identifier_key: None,
            user_id: user.map(str::to_owned),
            one_time_token_id: None,
        })
    }

    fn identified() -> InteractionEventRecord {
        InteractionEventRecord::Identified {
            user_id: "u1".into(),
            verification_id: "v1".into(),
        }
    }

    /// Erasing the person who signed in through an interaction destroys the interaction's key:
    /// every event with a typed identifier must still decode.
    #[test]
    fn every_event_decodes_without_its_personal_fields() {
        let typed = Some(Identifier {
            kind: IdentifierType::Email,
            value: "ada@example.com".into(),
        });
        crate::spec::assert_decodes_without_personal_fields(&[
            started(),
            InteractionEventRecord::Verified(Verified {
                verification_id: "v1".into(),
                kind: VerificationKind::EmailVerificationCode,
                identifier: typed.clone(),
                identifier_key: Some("k".into()),
                user_id: Some("u1".into()),
                one_time_token_id: None,
            }),
            InteractionEventRecord::VerificationFailed(Failed {
                kind: VerificationKind::Password,
                identifier: typed,
                identifier_key: Some("k".into()),
                user_id: Some("u1".into()),
                reason: "session.invalid_credentials".into(),
            }),
            InteractionEventRecord::IdentifierLocked {
                identifier: LockedIdentifier {
                    kind: "email".into(),
                    value: "ada@example.com".into(),
                },
                user_id: None,
            },
            InteractionEventRecord::MessageRateLimited {
                recipient: "ada@example.com".into(),
            },
            identified(),
        ]);
    }

    #[test]
    fn identification_needs_a_verification_of_that_very_user() {
        Given::<Interaction>::with(())
            .given(vec![
                started(),
                verified("v1", VerificationKind::Password, Some("u1")),
            ])
            .when(InteractionCommand::Identify {
                verification_id: "v1".into(),
                user_id: "u2".into(),
                now: 10,
            })
            .then_expect_error(InteractionError::UserNotIdentified);
        Given::<Interaction>::with(())
            .given(vec![started()])
            .when(InteractionCommand::Identify {
                verification_id: "v9".into(),
                user_id: "u1".into(),
                now: 10,
            })
            .then_expect_error(InteractionError::VerificationNotFound("v9".into()));
    }

    #[test]
    fn no_first_factor_bypasses_a_pending_second_factor() {
        let given = vec![
            started(),
            verified("v1", VerificationKind::OneTimeToken, Some("u1")),
            identified(),
        ];
        Given::<Interaction>::with(())
            .given(given.clone())
            .when(InteractionCommand::Submit {
                mfa_pending: true,
                now: 10,
            })
            .then_expect_error(InteractionError::MfaPending);
        let mut with_totp = given;
        with_totp.push(verified("v2", VerificationKind::Totp, Some("u1")));
        Given::<Interaction>::with(())
            .given(with_totp)
            .when(InteractionCommand::Submit {
                mfa_pending: true,
                now: 10,
            })
            .then_expect_events(vec![InteractionEventRecord::Submitted {
                user_id: "u1".into(),
                event: InteractionEvent::SignIn,
                application_id: "app".into(),
            }]);
    }

    #[test]
    fn an_expired_or_finished_interaction_accepts_nothing() {
        Given::<Interaction>::with(())
            .given(vec![started()])
            .when(InteractionCommand::SetEvent {
                event: InteractionEvent::Register,
                now: 1_000,
            })
            .then_expect_error(InteractionError::Expired);
        let done = vec![
            started(),
            verified("v1", VerificationKind::Password, Some("u1")),
            identified(),
            InteractionEventRecord::Submitted {
                user_id: "u1".into(),
                event: InteractionEvent::SignIn,
                application_id: "app".into(),
            },
            InteractionEventRecord::Completed {
                grant_id: "g".into(),
                session_id: "s".into(),
                user_id: "u1".into(),
            },
        ];
        Given::<Interaction>::with(())
            .given(done)
            .when(InteractionCommand::Complete {
                grant_id: "g2".into(),
                session_id: "s".into(),
                consent_required: false,
                now: 10,
            })
            .then_expect_error(InteractionError::Finished);
    }

    #[test]
    fn registration_needs_the_register_event() {
        Given::<Interaction>::with(())
            .given(vec![started()])
            .when(InteractionCommand::Register {
                user_id: "u1".into(),
                now: 10,
            })
            .then_expect_error(InteractionError::NotRegistering);
    }

    fn complete(consent_required: bool) -> InteractionCommand {
        InteractionCommand::Complete {
            grant_id: "g".into(),
            session_id: "s".into(),
            consent_required,
            now: 10,
        }
    }

    #[test]
    fn a_third_party_grant_needs_the_users_consent_first() {
        let continued = InteractionEventRecord::SessionContinued {
            user_id: "u1".into(),
            session_id: "s".into(),
        };
        Given::<Interaction>::with(())
            .given(vec![started(), continued.clone()])
            .when(complete(true))
            .then_expect_error(InteractionError::ConsentRequired);
        Given::<Interaction>::with(())
            .given(vec![started(), continued.clone()])
            .when(InteractionCommand::Consent { now: 10 })
            .then_expect_events(vec![InteractionEventRecord::Consented {
                scopes: vec!["openid".into()],
                resources: vec![],
            }]);
        let consented = InteractionEventRecord::Consented {
            scopes: vec!["openid".into()],
            resources: vec![],
        };
        Given::<Interaction>::with(())
            .given(vec![started(), continued.clone(), consented])
            .when(complete(true))
            .then_expect_events(vec![InteractionEventRecord::Completed {
                grant_id: "g".into(),
                session_id: "s".into(),
                user_id: "u1".into(),
            }]);
        // Consent is asked of a signed-in user only, and a refusal ends the journey.
        Given::<Interaction>::with(())
            .given(vec![started()])
            .when(InteractionCommand::Consent { now: 10 })
            .then_expect_error(InteractionError::NotSubmitted);
        Given::<Interaction>::with(())
            .given(vec![
                started(),
                continued,
                InteractionEventRecord::ConsentDenied {},
            ])
            .when(complete(false))
            .then_expect_error(InteractionError::Finished);
    }

    #[test]
    fn a_session_cannot_take_over_a_journey_someone_signed_into() {
        Given::<Interaction>::with(())
            .given(vec![
                started(),
                verified("v1", VerificationKind::Password, Some("u2")),
            ])
            .when(InteractionCommand::ContinueSession {
                user_id: "u1".into(),
                session_id: "s".into(),
                now: 10,
            })
            .then_expect_error(InteractionError::AlreadyStarted);
    }

    #[test]
    fn a_new_totp_secret_is_bound_only_after_a_code_confirmed_it() {
        let given = vec![
            started(),
            verified("v1", VerificationKind::Password, Some("u1")),
            identified(),
            InteractionEventRecord::MfaEnrolmentStarted {
                user_id: "u1".into(),
                factor: NewMfaVerification::Totp {
                    id: "t1".into(),
                    vault_ref: "vr".into(),
                },
            },
        ];
        let bind = InteractionCommand::BindMfa {
            verification_id: "t1".into(),
            now: 10,
        };
        Given::<Interaction>::with(())
            .given(given.clone())
            .when(bind.clone())
            .then_expect_error(InteractionError::MfaEnrolmentUnconfirmed);
        let mut confirmed = given;
        confirmed.push(InteractionEventRecord::MfaEnrolmentConfirmed {
            verification_id: "t1".into(),
        });
        Given::<Interaction>::with(())
            .given(confirmed)
            .when(bind)
            .then_expect_events(vec![InteractionEventRecord::MfaBound {
                verification_id: "t1".into(),
                factor: MfaFactorKind::Totp,
            }]);
        // Nobody identified: nothing to enrol.
        Given::<Interaction>::with(())
            .given(vec![started()])
            .when(InteractionCommand::StartMfaEnrolment {
                user_id: "u1".into(),
                factor: NewMfaVerification::BackupCode {
                    id: "b1".into(),
                    code_hashes: vec![],
                },
                now: 10,
            })
            .then_expect_error(InteractionError::NotIdentified);
    }

    #[test]
    fn the_interaction_is_its_own_data_subject() {
        assert_eq!(
            Interaction::default().data_subject("i1", &[]),
            Some("interaction:i1".into())
        );
    }
}
