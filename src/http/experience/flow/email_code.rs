//! Email verification codes in the sign-in experience (logto-compat §7): sending a code for the
//! interaction's event, checking it, and what a verified email then does: sign in its user,
//! register a new one, or identify the account whose password is being reset.
//!
//! The verified address waits for registration sealed in the vault (as a new password identity
//! does), since the interaction's read model keeps no identifier.

use axum::http::StatusCode;
use domain::Actor;
use domain::interaction::{
    Failed, Identifier, IdentifierType, Interaction, InteractionCommand, InteractionEvent,
    VerificationKind, Verified,
};
use domain::message::UsageType;
use domain::sign_in_experience::{SignInExperience, SignInIdentifier, SignUpIdentifier};
use domain::user::{NewUser, User, UserCommand};
use serde_json::{Map, Value, json};

use super::{
    Checked, Experience, SENTINEL_HASH_KIND, check_password, check_policy, hash, identity_conflict,
    internal, stored_password, suspended, user_not_exist, verification_failed,
};
use crate::crypto::ids;
use crate::crypto::password_policy::UserInfo;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::sentinel;
use crate::store::Unit;

fn verified_email_ref(interaction_id: &str, verification_id: &str) -> String {
    format!("interaction/{interaction_id}/verified-email/{verification_id}")
}

fn method_not_enabled(sign_up: bool) -> ApiError {
    if sign_up {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.sign_up_method_not_enabled",
            "This sign-up method is not enabled.",
        )
    } else {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.sign_in_method_not_enabled",
            "This sign-in method is not enabled.",
        )
    }
}

/// Whether a sign-in method takes an email with a verification code.
pub fn code_sign_in_enabled(config: &SignInExperience) -> bool {
    config
        .sign_in
        .methods
        .iter()
        .any(|m| m.identifier == SignInIdentifier::Email && m.verification_code)
}

/// Whether the sign-up configuration registers people by email.
pub fn email_sign_up_enabled(config: &SignInExperience) -> bool {
    config
        .sign_up
        .identifiers
        .contains(&SignInIdentifier::Email)
        || config
            .sign_up
            .secondary_identifiers
            .iter()
            .flatten()
            .any(|s| {
                matches!(
                    s.identifier,
                    SignUpIdentifier::Email | SignUpIdentifier::EmailOrPhone
                )
            })
}

fn email_in_use() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "user.email_already_in_use",
        "This email is associated with an existing account.",
    )
}

impl Experience<'_> {
    /// `POST /api/experience/verification/verification-code`: mails a code for `event` (the
    /// template type) to `email`. The answer is the verification id the check quotes back.
    pub async fn send_email_code(
        &mut self,
        email: &str,
        event: InteractionEvent,
    ) -> Result<String, ApiError> {
        self.guard_open()?;
        let email = codes::email(email, "identifier.value")?;
        let verification_id = ids::standard_id().map_err(internal)?;
        let request = self.interaction.request().ok();
        let mut context = Map::new();
        {
            let db = self.state.store.pool().get().await?;
            if let Some(app) =
                projections::applications::by_id(&db, &self.interaction.client_id).await?
            {
                context.insert(
                    "application".into(),
                    json!({"id": app.id, "name": app.name}),
                );
            }
        }
        if let Some(user) = self.find_user(IdentifierType::Email, &email).await? {
            context.insert(
                "user".into(),
                json!({
                    "id": user.id, "name": user.name, "username": user.username,
                    "avatar": user.avatar, "primaryEmail": user.primary_email,
                    "primaryPhone": user.primary_phone,
                }),
            );
        }
        let usage_type = match event {
            InteractionEvent::SignIn => UsageType::SignIn,
            InteractionEvent::Register => UsageType::Register,
            InteractionEvent::ForgotPassword => UsageType::ForgotPassword,
        };
        codes::send(
            self.state,
            self.context,
            Actor::Anonymous,
            codes::Send {
                scope: codes::interaction_scope(&self.interaction.id),
                code_id: verification_id.clone(),
                email: &email,
                usage_type,
                ui_locales: request.and_then(|r| r.ui_locales),
                context: Value::Object(context),
            },
        )
        .await?;
        Ok(verification_id)
    }

    /// `POST /api/experience/verification/verification-code/verify`: the sentinel's lock
    /// first, then the code. A verified email proves its account, if it has one.
    pub async fn verify_email_code(
        &mut self,
        email: &str,
        verification_id: &str,
        code: &str,
    ) -> Result<String, ApiError> {
        self.guard_open()?;
        let email = codes::email(email, "identifier.value")?;
        let pool = self.state.store.pool();
        let now = self.context.now_ms();
        let key = self
            .state
            .store
            .keyring()
            .lookup_hash(SENTINEL_HASH_KIND, &email.to_lowercase());
        sentinel::check_lockout(pool, &key, now)
            .await
            .map_err(ApiError::verification_blocked)?;
        let identifier = Identifier {
            kind: IdentifierType::Email,
            value: email.clone(),
        };
        let identifier_key = self.identifier_key(&identifier);
        let user = self.find_user(IdentifierType::Email, &email).await?;
        let checked = codes::verify(
            self.state,
            self.context,
            Actor::Anonymous,
            &codes::interaction_scope(&self.interaction.id),
            Some(verification_id),
            &email,
            code,
        )
        .await;
        if let Err(error) = checked {
            let failed = Failed {
                kind: VerificationKind::EmailVerificationCode,
                identifier: Some(identifier),
                identifier_key,
                user_id: user.map(|u| u.id),
                reason: error.code.to_owned(),
            };
            if let Err(unrecorded) = self
                .interaction_command(
                    InteractionCommand::RecordFailure { failed, now },
                    Actor::Anonymous,
                )
                .await
            {
                tracing::warn!(code = unrecorded.code, "code failure not recorded");
            }
            if error.code == "verification_code.code_mismatch" {
                match sentinel::record_failure(pool, &key, &self.config.sentinel_policy, now).await
                {
                    Ok(Some(limited)) => return Err(ApiError::verification_blocked(limited)),
                    Ok(None) => {}
                    Err(failure) => tracing::warn!(%failure, "sentinel failure not recorded"),
                }
            }
            return Err(error);
        }
        if let Err(error) = sentinel::clear(pool, &key).await {
            tracing::warn!(%error, "sentinel failures not cleared after a verification");
        }
        let actor = user
            .as_ref()
            .map_or(Actor::Anonymous, |u| Actor::User(u.id.clone()));
        let unit = Unit::new()
            .then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::RecordVerified {
                    verified: Verified {
                        verification_id: verification_id.to_owned(),
                        kind: VerificationKind::EmailVerificationCode,
                        identifier: Some(identifier),
                        identifier_key,
                        user_id: user.map(|u| u.id),
                        one_time_token_id: None,
                    },
                    now,
                },
            )
            .seal(
                verified_email_ref(&self.interaction.id, verification_id),
                email.into_bytes(),
            );
        self.run(unit, actor).await?;
        Ok(verification_id.to_owned())
    }

    /// Sign-in with a verified email needs a sign-in method that takes one with a code.
    pub(super) fn guard_code_sign_in(&self, kind: VerificationKind) -> Result<(), ApiError> {
        if kind == VerificationKind::EmailVerificationCode && !code_sign_in_enabled(&self.config) {
            return Err(method_not_enabled(false));
        }
        Ok(())
    }

    /// Identification of a `Register` interaction with a verified email: creates the user with
    /// it as primary email, in the same unit of work as the interaction's record of it. The
    /// rest of the sign-up profile (a password, say) is checked at submission, after
    /// `POST /api/experience/profile` had the chance to add it.
    pub(super) async fn register_with_email_code(
        &mut self,
        verification_id: &str,
    ) -> Result<(), ApiError> {
        super::rules::guard_event(&self.config, InteractionEvent::Register)?;
        if !email_sign_up_enabled(&self.config) {
            return Err(method_not_enabled(true));
        }
        if self.interaction.user_id.is_some() {
            return Err(identity_conflict());
        }
        let (_, proven) = self.verification(verification_id)?;
        let sealed = self
            .state
            .store
            .open_vault(&verified_email_ref(&self.interaction.id, verification_id))
            .await?
            .ok_or_else(verification_failed)?;
        let email = String::from_utf8(sealed).map_err(internal)?;
        if proven.is_some()
            || self
                .find_user(IdentifierType::Email, &email)
                .await?
                .is_some()
        {
            return Err(email_in_use());
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
                    username: None,
                    primary_email: Some(email),
                    primary_phone: None,
                    name: None,
                    avatar: None,
                    custom_data: Map::new(),
                    profile: Map::new(),
                    password_digest: None,
                    password_algorithm: None,
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

    /// Identification of a `ForgotPassword` interaction: only an email (or phone) code proves
    /// the account whose password is reset.
    pub(super) async fn identify_for_reset(
        &mut self,
        verification_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let verification_id = verification_id
            .ok_or_else(|| ApiError::invalid_input("body", "verificationId is missing"))?;
        let (kind, proven) = self.verification(verification_id)?;
        if !matches!(
            kind,
            VerificationKind::EmailVerificationCode | VerificationKind::PhoneVerificationCode
        ) {
            return Err(super::not_for_forgot_password(StatusCode::BAD_REQUEST));
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

    /// `PUT /api/experience/profile/password`: the new password of the account a
    /// `ForgotPassword` interaction identified, under the password policy and unlike the old
    /// one. idledger sets it at once (as it does every profile field).
    pub async fn reset_password(&mut self, password: String) -> Result<(), ApiError> {
        if self.event()? != InteractionEvent::ForgotPassword {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "session.invalid_interaction_type",
                "The interaction is not a password reset.",
            ));
        }
        let user = self.identified_user().await?;
        check_policy(
            &self.config,
            &password,
            UserInfo {
                name: user.name.as_deref(),
                username: user.username.as_deref(),
                email: user.primary_email.as_deref(),
                phone_number: user.primary_phone.as_deref(),
            },
        )?;
        if let Some(stored) = stored_password(&user)
            && let Checked::Match { .. } = check_password(Some(stored), password.clone()).await?
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "user.same_password",
                "New password cannot be the same as your old password.",
            ));
        }
        let unit = Unit::new().then::<User>(
            user.id.clone(),
            UserCommand::SetPassword(hash(password).await?),
        );
        self.run(unit, Actor::User(user.id)).await
    }
}
