//! The steps of a sign-in experience, shared by the Experience API and the hosted pages: each
//! step checks the sign-in experience's rules, does the non-deterministic work (lookups,
//! hashing, ids, clock) and records the outcome on the interaction's stream.

use axum::http::StatusCode;
use domain::interaction::{
    Failed, Identifier, IdentifierType, Interaction, InteractionCommand, InteractionError,
    InteractionEvent, VerificationKind, Verified,
};
use domain::patch::Patch;
use domain::sign_in_experience::SignInExperience;
use domain::user::{NewUser, Password, User, UserCommand, UserPatch};
use domain::{Actor, Rejection};
use projections::interactions::InteractionRow;
use projections::users::{self, UserRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::rules::{self, Held};
use crate::app::AppState;
use crate::crypto::ids;
use crate::crypto::password::{self, PasswordError};
use crate::crypto::password_policy::{self, UserInfo};
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::http::oidc::resume_url;
use crate::sentinel;
use crate::store::Unit;

mod email_code;
mod mfa;
mod one_time_token;
mod social;

pub use mfa::MfaStatus;

pub use email_code::{code_sign_in_enabled, email_sign_up_enabled};
pub use social::{identity_in_use, identity_not_exist, invalid_connector};

/// Verified against when the identifier names nobody (or nobody with a password), so an unknown
/// account costs the same argon2id work as a wrong password and timing tells them apart no
/// better than the answer does. No password produces this digest.
const DECOY_DIGEST: &str = "$argon2id$v=19$m=19456,t=2,p=1$aWRsZWRnZXItZGVjb3ktc2FsdC0wMDAx$\
                            zQlkyxa0jkTSR22faA0bFLNIuIPju1WdpmelpYsF9HI";

/// Keyed-hash domain of identifiers in the sentinel's tables.
pub(crate) const SENTINEL_HASH_KIND: &str = "sentinel";
/// Keyed-hash domain of client addresses in the sentinel's rate counters.
const SIGN_IN_IP_HASH_KIND: &str = "sign-in ip";
const IDENTIFIER_KEY_KIND: &str = "interaction identifier";

/// The keyed hash an interaction event keeps in the clear beside a typed identifier (which is
/// sealed), so an erasure finds the interactions where one of the person's identifiers was
/// typed, also those that named no account (`management::users::erasure`). Case folded, like
/// the sentinel's tally.
pub(crate) fn identifier_key(
    keyring: &crate::crypto::Keyring,
    kind: IdentifierType,
    value: &str,
) -> String {
    keyring.lookup_hash(
        IDENTIFIER_KEY_KIND,
        &format!("{}:{}", kind_name(kind), value.to_lowercase()),
    )
}

pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "session.invalid_credentials",
        "Incorrect account or password. Please check your input.",
    )
}

fn suspended() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "user.suspended",
        "This account is suspended.",
    )
}

fn user_not_exist() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user.user_not_exist",
        "User with the verified identifier does not exist.",
    )
}

fn verification_failed() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "session.verification_failed",
        "The verification was not successful. Restart the verification flow and try again.",
    )
}

fn not_identified() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "session.identifier_not_found",
        "User identifier not found. Please go back and sign in again.",
    )
}

fn not_for_forgot_password(status: StatusCode) -> ApiError {
    ApiError::new(
        status,
        "session.not_supported_for_forgot_password",
        "This operation is not supported for forgot password.",
    )
}

fn lost() -> ApiError {
    Rejection::from(InteractionError::NotFound).into()
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "experience step failed");
    ApiError::internal()
}

/// How a new username-and-password identity waits, sealed in the vault, between its
/// verification and the identification that creates the user: the interaction's events carry
/// no password digest.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingIdentity {
    username: String,
    password: Password,
}

fn pending_identity_ref(interaction_id: &str, verification_id: &str) -> String {
    format!("interaction/{interaction_id}/new-password-identity/{verification_id}")
}

/// What identification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identification {
    /// A sign-in identified an existing user.
    Existing,
    /// A registration created the user.
    Created,
}

/// A profile field the Experience API can fill in for the identified user.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ProfileUpdate {
    Username { value: String },
    Password { value: String },
}

/// One request's view of one interaction: the read model of the interaction, the sign-in
/// experience in force, and who is asking from where.
pub struct Experience<'a> {
    state: &'a AppState,
    context: &'a RequestContext,
    pub interaction: InteractionRow,
    pub config: SignInExperience,
}

impl<'a> Experience<'a> {
    /// The live interaction `id` names: not expired, not completed.
    pub async fn load(
        state: &'a AppState,
        context: &'a RequestContext,
        id: Option<&str>,
    ) -> Result<Experience<'a>, ApiError> {
        let id = id.ok_or_else(lost)?;
        let db = state.store.pool().get().await?;
        let interaction = projections::interactions::by_id(&db, id)
            .await?
            .filter(|i| !i.completed && i.expires_at > context.now_ms())
            .ok_or_else(lost)?;
        let config = projections::sign_in_experience::current(&db).await?;
        Ok(Experience {
            state,
            context,
            interaction,
            config,
        })
    }

    pub fn id(&self) -> &str {
        &self.interaction.id
    }

    /// Refuses verifications once the interaction is submitted: the store would refuse to
    /// record their outcome, and a password check whose failure goes unrecorded would be a
    /// guess the sentinel never counts.
    fn guard_open(&self) -> Result<(), ApiError> {
        if self.interaction.submitted {
            return Err(Rejection::from(InteractionError::Finished).into());
        }
        Ok(())
    }

    pub fn event(&self) -> Result<InteractionEvent, ApiError> {
        serde_json::from_value(Value::String(self.interaction.event.clone())).map_err(internal)
    }

    /// Appends `unit` as `actor`, then reads the interaction back for the next step.
    async fn run(&mut self, unit: Unit, actor: Actor) -> Result<(), ApiError> {
        self.state
            .store
            .run(unit, &self.context.metadata(actor))
            .await?;
        let db = self.state.store.pool().get().await?;
        self.interaction = projections::interactions::by_id(&db, &self.interaction.id)
            .await?
            .ok_or_else(lost)?;
        Ok(())
    }

    async fn interaction_command(
        &mut self,
        command: InteractionCommand,
        actor: Actor,
    ) -> Result<(), ApiError> {
        let unit = Unit::new().then::<Interaction>(self.interaction.id.clone(), command);
        self.run(unit, actor).await
    }

    fn identifier_key(&self, identifier: &Identifier) -> Option<String> {
        Some(identifier_key(
            self.state.store.keyring(),
            identifier.kind,
            &identifier.value,
        ))
    }

    async fn user(&self, id: &str) -> Result<Option<UserRow>, ApiError> {
        let db = self.state.store.pool().get().await?;
        Ok(users::by_id(&db, id).await?)
    }

    async fn find_user(
        &self,
        kind: IdentifierType,
        value: &str,
    ) -> Result<Option<UserRow>, ApiError> {
        let db = self.state.store.pool().get().await?;
        Ok(
            users::by_identifier(&db, kind, value, self.config.username_policy.case_sensitive)
                .await?,
        )
    }

    /// `PUT /api/experience` (`switching == false`: a fresh start may take any allowed event)
    /// and `PUT /api/experience/interaction-event` (`switching == true`: forgot-password never
    /// trades places with the other two, as in Logto).
    pub async fn set_event(
        &mut self,
        event: InteractionEvent,
        switching: bool,
    ) -> Result<(), ApiError> {
        rules::guard_event_invited(&self.config, event, self.one_time_token_verified())?;
        let current = self.event()?;
        let forgot = InteractionEvent::ForgotPassword;
        if switching && ((event == forgot) != (current == forgot)) {
            return Err(not_for_forgot_password(StatusCode::BAD_REQUEST));
        }
        if event == current {
            return Ok(());
        }
        let now = self.context.now_ms();
        self.interaction_command(
            InteractionCommand::SetEvent { event, now },
            Actor::Anonymous,
        )
        .await
    }

    /// `POST /api/experience/verification/password`: the sentinel's lock first, then the
    /// password of the user the identifier names. Unknown identifiers and wrong passwords get
    /// the same answer after the same work; a suspended account is only revealed to whoever
    /// knows its password.
    pub async fn verify_password(
        &mut self,
        kind: IdentifierType,
        value: &str,
        plain: String,
    ) -> Result<String, ApiError> {
        self.guard_open()?;
        if plain.is_empty() {
            return Err(ApiError::invalid_input(
                "body",
                "Error in key path \"password\": must not be empty",
            ));
        }
        rules::guard_password_sign_in(&self.config, kind)?;
        let normalized = rules::normalize(kind, value);
        let shown = normalized.clone().unwrap_or_else(|| value.to_owned());
        let pool = self.state.store.pool();
        let now = self.context.now_ms();
        // Case folded so that variants of one identifier share one tally: stricter for
        // case-sensitive usernames, exactly right for emails.
        let key = self
            .state
            .store
            .keyring()
            .lookup_hash(SENTINEL_HASH_KIND, &shown.to_lowercase());
        // Per address as well as per identifier: one address guessing across many accounts
        // never trips a lockout.
        if let Some(ip) = &self.context.ip {
            let ip_key = self
                .state
                .store
                .keyring()
                .lookup_hash(SIGN_IN_IP_HASH_KIND, ip);
            sentinel::hit_rate(pool, "sign-in-ip", &ip_key, self.state.sign_in_rate, now)
                .await
                .map_err(ApiError::rate_limited)?;
        }
        sentinel::check_lockout(pool, &key, now)
            .await
            .map_err(ApiError::verification_blocked)?;
        let user = match &normalized {
            Some(value) => self.find_user(kind, value).await?,
            None => None,
        };
        let stored = user.as_ref().and_then(stored_password);
        let checked = check_password(stored, plain).await?;
        let identifier = Identifier {
            kind,
            value: shown.clone(),
        };
        let identifier_key = self.identifier_key(&identifier);
        let (reason, error) = match (&user, checked) {
            (Some(user), Checked::Match { .. }) if user.is_suspended => {
                ("user.suspended", suspended())
            }
            (Some(user), Checked::Match { rehashed }) => {
                let verification_id = ids::standard_id().map_err(internal)?;
                let mut unit = Unit::new().then::<Interaction>(
                    self.interaction.id.clone(),
                    InteractionCommand::RecordVerified {
                        verified: Verified {
                            verification_id: verification_id.clone(),
                            kind: VerificationKind::Password,
                            identifier: Some(identifier),
                            identifier_key,
                            user_id: Some(user.id.clone()),
                            one_time_token_id: None,
                        },
                        now,
                    },
                );
                if let Some(rehashed) = rehashed {
                    unit =
                        unit.then::<User>(user.id.clone(), UserCommand::RehashPassword(rehashed));
                }
                self.run(unit, Actor::User(user.id.clone())).await?;
                if let Err(error) = sentinel::clear(pool, &key).await {
                    tracing::warn!(%error, "sentinel failures not cleared after a sign-in");
                }
                return Ok(verification_id);
            }
            (Some(_) | None, Checked::Mismatch) | (None, Checked::Match { .. }) => {
                ("session.invalid_credentials", invalid_credentials())
            }
        };
        self.interaction_command(
            InteractionCommand::RecordFailure {
                failed: Failed {
                    kind: VerificationKind::Password,
                    identifier: Some(identifier),
                    identifier_key,
                    user_id: user.map(|u| u.id),
                    reason: reason.to_owned(),
                },
                now,
            },
            Actor::Anonymous,
        )
        .await?;
        match sentinel::record_failure(pool, &key, &self.config.sentinel_policy, now).await {
            Ok(Some(limited)) => {
                let identifier = domain::interaction::LockedIdentifier {
                    kind: kind_name(kind).to_owned(),
                    value: shown,
                };
                self.record_lockout(identifier, None).await;
                Err(ApiError::verification_blocked(limited))
            }
            Ok(None) => Err(error),
            Err(failure) => {
                tracing::warn!(%failure, "sentinel failure not recorded");
                Err(error)
            }
        }
    }

    /// `POST /api/experience/verification/new-password-identity`: a username nobody has and a
    /// password the policy accepts, held until identification creates the user.
    pub async fn new_password_identity(
        &mut self,
        username: String,
        plain: String,
    ) -> Result<String, ApiError> {
        self.guard_open()?;
        rules::guard_username_sign_up(&self.config)?;
        rules::check_username(&self.config.username_policy, &username)?;
        if self
            .find_user(IdentifierType::Username, &username)
            .await?
            .is_some()
        {
            return Err(username_in_use());
        }
        check_policy(
            &self.config,
            &plain,
            UserInfo {
                username: Some(&username),
                ..UserInfo::default()
            },
        )?;
        let digest = hash(plain).await?;
        let verification_id = ids::standard_id().map_err(internal)?;
        let identifier = Identifier {
            kind: IdentifierType::Username,
            value: username.clone(),
        };
        let identifier_key = self.identifier_key(&identifier);
        let pending = serde_json::to_vec(&PendingIdentity {
            username: username.clone(),
            password: digest,
        })
        .map_err(internal)?;
        let unit = Unit::new()
            .then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::RecordVerified {
                    verified: Verified {
                        verification_id: verification_id.clone(),
                        kind: VerificationKind::NewPasswordIdentity,
                        identifier: Some(identifier),
                        identifier_key,
                        user_id: None,
                        one_time_token_id: None,
                    },
                    now: self.context.now_ms(),
                },
            )
            .seal(
                pending_identity_ref(&self.interaction.id, &verification_id),
                pending,
            );
        self.run(unit, Actor::Anonymous).await?;
        Ok(verification_id)
    }

    /// The verification `id` recorded in this interaction: its kind and the user it proves.
    fn verification(&self, id: &str) -> Result<(VerificationKind, Option<String>), ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Recorded {
            kind: VerificationKind,
            user_id: Option<String>,
        }
        let recorded = self.interaction.verifications.get(id).ok_or_else(|| {
            ApiError::from(Rejection::from(InteractionError::VerificationNotFound(
                id.to_owned(),
            )))
        })?;
        let recorded: Recorded = serde_json::from_value(recorded.clone()).map_err(internal)?;
        Ok((recorded.kind, recorded.user_id))
    }

    /// Whether a social identity was verified in this interaction.
    fn verified_socially(&self) -> bool {
        self.interaction
            .verifications
            .as_object()
            .is_some_and(|recorded| {
                recorded
                    .values()
                    .any(|v| v["kind"] == VerificationKind::Social.as_str())
            })
    }

    /// `POST /api/experience/identification`.
    pub async fn identify(
        &mut self,
        verification_id: Option<&str>,
    ) -> Result<Identification, ApiError> {
        if let Some(id) = verification_id
            && let Ok((VerificationKind::Social, proven)) = self.verification(id)
        {
            return self.identify_social(id, proven).await;
        }
        match self.event()? {
            InteractionEvent::Register => {
                self.register(verification_id).await?;
                Ok(Identification::Created)
            }
            InteractionEvent::SignIn => {
                let verification_id = verification_id
                    .ok_or_else(|| ApiError::invalid_input("body", "verificationId is missing"))?;
                self.sign_in(verification_id).await?;
                Ok(Identification::Existing)
            }
            InteractionEvent::ForgotPassword => {
                self.identify_for_reset(verification_id).await?;
                Ok(Identification::Existing)
            }
        }
    }

    async fn sign_in(&mut self, verification_id: &str) -> Result<(), ApiError> {
        rules::guard_event(&self.config, InteractionEvent::SignIn)?;
        let (kind, proven) = self.verification(verification_id)?;
        self.guard_code_sign_in(kind)?;
        if kind.is_second_factor() || kind == VerificationKind::NewPasswordIdentity {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user.sign_in_method_not_enabled",
                "This sign-in method is not enabled.",
            ));
        }
        let user_id = proven.ok_or_else(user_not_exist)?;
        let user = self.user(&user_id).await?.ok_or_else(user_not_exist)?;
        if user.is_suspended {
            return Err(suspended());
        }
        match &self.interaction.user_id {
            Some(current) if *current == user.id => return Ok(()),
            Some(_) => return Err(identity_conflict()),
            None => {}
        }
        let now = self.context.now_ms();
        self.interaction_command(
            InteractionCommand::Identify {
                verification_id: verification_id.to_owned(),
                user_id: user.id.clone(),
                now,
            },
            Actor::User(user.id),
        )
        .await
    }

    /// Creates the user of a new username-and-password identity, in the same unit of work as
    /// the interaction's record of it.
    async fn register(&mut self, verification_id: Option<&str>) -> Result<(), ApiError> {
        if let Some(id) = verification_id
            && self
                .verification(id)
                .is_ok_and(|(kind, _)| kind == VerificationKind::OneTimeToken)
        {
            return self.register_with_token(id).await;
        }
        if let Some(id) = verification_id
            && self
                .verification(id)
                .is_ok_and(|(kind, _)| kind == VerificationKind::EmailVerificationCode)
        {
            return self.register_with_email_code(id).await;
        }
        rules::guard_event(&self.config, InteractionEvent::Register)?;
        if self.interaction.user_id.is_some() {
            return Err(identity_conflict());
        }
        // Without a verification the profile alone would have to make the user, and profile
        // fields are only taken for an identified user here.
        let Some(verification_id) = verification_id else {
            rules::guard_profile(&self.config, Held::default())?;
            return Err(verification_failed());
        };
        let (kind, _) = self.verification(verification_id)?;
        if kind != VerificationKind::NewPasswordIdentity {
            return Err(verification_failed());
        }
        let sealed = self
            .state
            .store
            .open_vault(&pending_identity_ref(&self.interaction.id, verification_id))
            .await?
            .ok_or_else(verification_failed)?;
        let pending: PendingIdentity = serde_json::from_slice(&sealed).map_err(internal)?;
        rules::guard_profile(
            &self.config,
            Held {
                username: true,
                password: true,
                ..Held::default()
            },
        )?;
        if self
            .find_user(IdentifierType::Username, &pending.username)
            .await?
            .is_some()
        {
            return Err(username_in_use());
        }
        let role_ids = {
            let db = self.state.store.pool().get().await?;
            projections::roles::default_user_role_ids(&db).await?
        };
        let user_id = ids::short_id().map_err(internal)?;
        let unit = Unit::new()
            .then::<User>(
                user_id.clone(),
                UserCommand::Create(NewUser {
                    id: user_id.clone(),
                    username: Some(pending.username),
                    primary_email: None,
                    primary_phone: None,
                    name: None,
                    avatar: None,
                    custom_data: Map::new(),
                    profile: Map::new(),
                    password_digest: Some(pending.password.password_digest),
                    password_algorithm: Some(pending.password.password_algorithm),
                    role_ids,
                }),
            )
            .then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::Register {
                    user_id: user_id.clone(),
                    now: self.context.now_ms(),
                },
            );
        self.run(unit, Actor::User(user_id)).await
    }

    /// The identified user, who must still exist and may sign in.
    async fn identified_user(&self) -> Result<UserRow, ApiError> {
        let user_id = self
            .interaction
            .user_id
            .as_deref()
            .ok_or_else(not_identified)?;
        let user = self.user(user_id).await?.ok_or_else(user_not_exist)?;
        if user.is_suspended {
            return Err(suspended());
        }
        Ok(user)
    }

    /// What `user` owes of second factors in this interaction (`flow/mfa.rs`): the single MFA
    /// check point, which every first factor (password, email code, social, one-time token)
    /// reaches through `submit` or `set_profile`.
    pub async fn mfa_pending(&self, user: &UserRow) -> Result<MfaStatus, ApiError> {
        self.mfa_status(user).await
    }

    /// Refuses while a second factor the user holds is not verified here.
    async fn guard_mfa(&self, user: &UserRow) -> Result<(), ApiError> {
        match self.mfa_pending(user).await? {
            status @ MfaStatus::Verify(_) => Err(status
                .error()
                .unwrap_or_else(|| Rejection::from(InteractionError::MfaPending).into())),
            MfaStatus::Satisfied | MfaStatus::Enrol { .. } | MfaStatus::BackupCodeRequired => {
                Ok(())
            }
        }
    }

    /// `POST /api/experience/profile`: fills a missing profile field of the identified user.
    /// Logto keeps it in the interaction until submit; idledger writes it to the user at once,
    /// since a user must be identified for it anyway.
    pub async fn set_profile(&mut self, update: ProfileUpdate) -> Result<(), ApiError> {
        let event = self.event()?;
        if event == InteractionEvent::ForgotPassword {
            return Err(not_for_forgot_password(StatusCode::BAD_REQUEST));
        }
        let user = self.identified_user().await?;
        if event == InteractionEvent::SignIn {
            self.guard_mfa(&user).await?;
        }
        let command = match update {
            ProfileUpdate::Username { value } => {
                if user.username.is_some() {
                    return Err(exists_in_profile(
                        "user.username_exists_in_profile",
                        "Username already exists in your profile.",
                    ));
                }
                rules::check_username(&self.config.username_policy, &value)?;
                if self
                    .find_user(IdentifierType::Username, &value)
                    .await?
                    .is_some()
                {
                    return Err(username_in_use());
                }
                UserCommand::Update(UserPatch {
                    username: Patch::Value(value),
                    ..UserPatch::default()
                })
            }
            ProfileUpdate::Password { value } => {
                if user.password_digest.is_some() {
                    return Err(exists_in_profile(
                        "user.password_exists_in_profile",
                        "Password already exists in your profile.",
                    ));
                }
                check_policy(
                    &self.config,
                    &value,
                    UserInfo {
                        name: user.name.as_deref(),
                        username: user.username.as_deref(),
                        email: user.primary_email.as_deref(),
                        phone_number: user.primary_phone.as_deref(),
                    },
                )?;
                UserCommand::SetPassword(hash(value).await?)
            }
        };
        let unit = Unit::new().then::<User>(user.id.clone(), command);
        self.run(unit, Actor::User(user.id)).await
    }

    /// `POST /api/experience/submit`: the identified user may sign in and has the profile the
    /// sign-up configuration demands; the answer is where the browser resumes the authorization.
    pub async fn submit(&mut self) -> Result<String, ApiError> {
        if self.event()? == InteractionEvent::ForgotPassword {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user.new_password_required_in_profile",
                "You need to set a new password.",
            ));
        }
        let user = self.identified_user().await?;
        // Logto's order: the second factor held, the profile, then what the policy asks to
        // enrol.
        self.guard_mfa(&user).await?;
        let waived = self.config.social_sign_in.skip_required_identifiers == Some(true)
            && self.verified_socially();
        let held = if waived {
            held(&user).waiving_identifiers()
        } else {
            held(&user)
        };
        rules::guard_profile(&self.config, held)?;
        if let Some(owed) = self.mfa_pending(&user).await?.error() {
            return Err(owed);
        }
        // The domain checks again that a user holding a factor verified one here.
        let mfa_pending = self.holds_second_factor(&user.id).await?;
        let now = self.context.now_ms();
        let mut unit = Unit::new();
        for bound in self.bound_factors(&user.id) {
            unit = unit.then::<User>(user.id.clone(), bound);
        }
        let unit = unit.then::<Interaction>(
            self.interaction.id.clone(),
            InteractionCommand::Submit { mfa_pending, now },
        );
        // A magic link's organizations are joined with the submission, or not at all.
        let unit = self.provision_organizations(&user, unit).await?;
        self.run(unit, Actor::User(user.id)).await?;
        Ok(resume_url(self.state, &self.interaction.id))
    }

    /// `GET /api/experience/interaction`: the interaction without anything secret or personal.
    pub fn sanitized(&self) -> Value {
        let records: Vec<Value> = self
            .interaction
            .verifications
            .as_object()
            .into_iter()
            .flatten()
            .map(|(id, recorded)| json!({ "id": id, "type": recorded["kind"], "verified": true }))
            .collect();
        json!({
            "interactionEvent": self.interaction.event,
            "userId": self.interaction.user_id,
            "profile": {},
            "mfa": {},
            "verificationRecords": records,
            "captcha": { "verified": false, "skipped": false },
        })
    }
}

/// An identifier kind as Logto names it in `Identifier.Lockout`.
fn kind_name(kind: IdentifierType) -> &'static str {
    match kind {
        IdentifierType::Username => "username",
        IdentifierType::Email => "email",
        IdentifierType::Phone => "phone",
    }
}

fn identity_conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "session.identity_conflict",
        "This sign-in has already identified a different user.",
    )
}

fn username_in_use() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "user.username_already_in_use",
        "This username is already in use.",
    )
}

fn exists_in_profile(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_owned())
}

fn held(user: &UserRow) -> Held {
    let has_identity = user.identities.as_object().is_some_and(|i| !i.is_empty());
    Held {
        username: user.username.is_some(),
        email: user.primary_email.is_some(),
        phone: user.primary_phone.is_some(),
        password: user.password_digest.is_some() || has_identity,
    }
}

pub(crate) fn stored_password(user: &UserRow) -> Option<Password> {
    let digest = user.password_digest.clone()?;
    let algorithm = serde_json::from_value(Value::String(user.password_algorithm.clone()?)).ok()?;
    Some(Password {
        password_digest: digest,
        password_algorithm: algorithm,
    })
}

/// Logto's `password.rejected`, with the policy's issues as its data.
fn check_policy(
    config: &SignInExperience,
    plain: &str,
    user: UserInfo<'_>,
) -> Result<(), ApiError> {
    let issues =
        password_policy::check(&config.password_policy, plain, Some(&user)).map_err(internal)?;
    if issues.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "password.rejected",
        "Password rejected. Please check if your password meets the requirements.",
    )
    .with_data(json!({ "issues": issues })))
}

pub(crate) enum Checked {
    Mismatch,
    /// The password is right; `rehashed` re-encodes an imported digest as argon2id.
    Match {
        rehashed: Option<Password>,
    },
}

/// Verifies on the blocking pool (argon2id takes tens of milliseconds by design), against the
/// decoy when there is no digest to verify.
pub(crate) async fn check_password(
    stored: Option<Password>,
    plain: String,
) -> Result<Checked, ApiError> {
    tokio::task::spawn_blocking(move || {
        let Some(stored) = stored else {
            let decoy = Password {
                password_digest: DECOY_DIGEST.to_owned(),
                password_algorithm: domain::user::PasswordAlgorithm::Argon2id,
            };
            password::verify(&plain, &decoy)?;
            return Ok(Checked::Mismatch);
        };
        if !password::verify(&plain, &stored)? {
            return Ok(Checked::Mismatch);
        }
        let rehashed = if password::needs_rehash(&stored) {
            Some(password::hash(&plain)?)
        } else {
            None
        };
        Ok::<_, PasswordError>(Checked::Match { rehashed })
    })
    .await
    .map_err(internal)?
    .map_err(internal)
}

async fn hash(plain: String) -> Result<Password, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(internal)?
        .map_err(internal)
}
