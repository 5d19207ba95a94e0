//! Social sign-in in the sign-in experience (logto-compat §6, §7): sending the browser to the
//! provider, checking its return, and what the verified social identity then does: sign in
//! its user (syncing the profile when the connector says so), link itself to the account of
//! its verified email when automatic account linking is on, or register a new user.
//!
//! Each trip to the provider is a `social_authorization` stream: what the return must match is
//! sealed under the interaction until the return, and what the provider vouched for until the
//! identification takes it (see `domain::social_authorization`).

use axum::http::StatusCode;
use domain::Actor;
use domain::interaction::{
    Failed, IdentifierType, Interaction, InteractionCommand, InteractionEvent, VerificationKind,
    Verified,
};
use domain::social_authorization::{SocialAuthorization, SocialAuthorizationCommand};
use domain::user::{NewUser, User, UserCommand, UserPatch};
use projections::users::UserRow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Experience, Identification, identity_conflict, internal, suspended};
use crate::connectors::social::{self, SocialConnector, SocialSession, SocialUser, TokenSet};
use crate::connectors::token_vault;
use crate::crypto::ids;
use crate::http::error::ApiError;
use crate::store::Unit;

fn session_ref(interaction_id: &str, verification_id: &str) -> String {
    format!("interaction/{interaction_id}/social/{verification_id}/session")
}

fn result_ref(interaction_id: &str, verification_id: &str) -> String {
    format!("interaction/{interaction_id}/social/{verification_id}/result")
}

/// What the provider vouched for, sealed until identification.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SocialResult {
    connector_id: String,
    target: String,
    user: SocialUser,
    tokens: TokenSet,
}

pub fn invalid_connector() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "session.invalid_connector_id",
        "Unable to find available connector with the given id.",
    )
}

fn session_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "session.verification_session_not_found",
        "The verification session was not found. Please restart the verification flow.",
    )
}

pub fn identity_not_exist() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user.identity_not_exist",
        "The social identity has not been registered yet.",
    )
}

pub fn identity_in_use() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "user.identity_already_in_use",
        "The social identity has been linked to an existing account.",
    )
}

fn method_not_enabled(register: bool) -> ApiError {
    let (code, message) = if register {
        (
            "user.sign_up_method_not_enabled",
            "This sign-up method is not enabled.",
        )
    } else {
        (
            "user.sign_in_method_not_enabled",
            "This sign-in method is not enabled.",
        )
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// The social connector `id`, or Logto's refusal.
pub async fn connector(
    state: &crate::app::AppState,
    id: &str,
) -> Result<SocialConnector, ApiError> {
    social::connector(&state.store, id)
        .await?
        .ok_or_else(invalid_connector)
}

/// The profile a social sign-in copies into the user: name and avatar, when the provider has
/// them and they differ.
fn synced_profile(user: &UserRow, social: &SocialUser) -> Option<UserPatch> {
    use domain::patch::Patch;
    let mut patch = UserPatch::default();
    if let Some(name) = &social.name
        && user.name.as_ref() != Some(name)
    {
        patch.name = Patch::Value(name.clone());
    }
    if let Some(avatar) = &social.avatar
        && user.avatar.as_ref() != Some(avatar)
    {
        patch.avatar = Patch::Value(avatar.clone());
    }
    (patch != UserPatch::default()).then_some(patch)
}

impl Experience<'_> {
    /// `POST /api/experience/verification/social/:connectorId/authorization-uri`: where to send
    /// the browser, and the verification id its return will quote. Without a `state` of the
    /// caller's (the hosted pages), the state is the verification id and a random part, so
    /// the callback finds its trip from the state alone.
    pub async fn social_authorization_uri(
        &mut self,
        connector_id: &str,
        state: Option<&str>,
        redirect_uri: &str,
    ) -> Result<(String, String), ApiError> {
        self.guard_open()?;
        let verification_id = ids::standard_id().map_err(internal)?;
        let state = match state {
            Some(state) => state.to_owned(),
            None => format!("{verification_id}.{}", ids::secret().map_err(internal)?),
        };
        if state.is_empty() || url::Url::parse(redirect_uri).is_err() {
            return Err(ApiError::invalid_input(
                "body",
                "Error in key path \"redirectUri\": Invalid url",
            ));
        }
        let connector = connector(self.state, connector_id).await?;
        let (uri, session) = connector
            .social
            .authorization_uri(connector_id, &connector.config, &state, redirect_uri)
            .await
            .map_err(|error| {
                tracing::warn!(%error, connector_id, "social authorization URI not built");
                ApiError::from(error)
            })?;
        let sealed_session = session_ref(&self.interaction.id, &verification_id);
        let unit = Unit::new()
            .then::<SocialAuthorization>(
                verification_id.clone(),
                SocialAuthorizationCommand::Start {
                    interaction_id: self.interaction.id.clone(),
                    connector_id: connector_id.to_owned(),
                    session_ref: sealed_session.clone(),
                },
            )
            .seal(
                sealed_session,
                serde_json::to_vec(&session).map_err(internal)?,
            );
        self.run(unit, Actor::Anonymous).await?;
        Ok((verification_id, uri))
    }

    /// `POST /api/experience/verification/social/:connectorId/verify`: the provider's return
    /// (`connectorData`) checked against this trip, once. A failure ends the trip and is
    /// recorded on the interaction; a success proves the identity's user, if it has one.
    pub async fn verify_social(
        &mut self,
        connector_id: &str,
        verification_id: &str,
        data: &Map<String, Value>,
    ) -> Result<String, ApiError> {
        self.guard_open()?;
        let sealed = self
            .state
            .store
            .open_vault(&session_ref(&self.interaction.id, verification_id))
            .await?
            .ok_or_else(session_not_found)?;
        let session: SocialSession = serde_json::from_slice(&sealed).map_err(internal)?;
        if session.connector_id != connector_id {
            return Err(invalid_connector());
        }
        let connector = connector(self.state, connector_id).await?;
        let now = self.context.now_ms();
        let answer = connector
            .social
            .user_info(&connector.config, &session, data, now)
            .await;
        let (user, tokens) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(
                    connector_id,
                    code = error.code,
                    reason = error.reason,
                    message = %error.message,
                    "social sign-in refused"
                );
                let unit = Unit::new()
                    .then::<SocialAuthorization>(
                        verification_id.to_owned(),
                        SocialAuthorizationCommand::Fail {
                            reason: error.code.to_owned(),
                        },
                    )
                    .then::<Interaction>(
                        self.interaction.id.clone(),
                        InteractionCommand::RecordFailure {
                            failed: Failed {
                                kind: VerificationKind::Social,
                                identifier: None,
                                identifier_key: None,
                                user_id: None,
                                reason: error.code.to_owned(),
                            },
                            now,
                        },
                    );
                if let Err(unrecorded) = self.run(unit, Actor::Anonymous).await {
                    tracing::warn!(code = unrecorded.code, "social failure not recorded");
                }
                return Err(error.into());
            }
        };
        let owner = {
            let db = self.state.store.pool().get().await?;
            projections::users::identity_owner(&db, &connector.target, &user.id).await?
        };
        let result = SocialResult {
            connector_id: connector_id.to_owned(),
            target: connector.target.clone(),
            user,
            tokens,
        };
        let sealed_result = result_ref(&self.interaction.id, verification_id);
        let unit = Unit::new()
            .then::<SocialAuthorization>(
                verification_id.to_owned(),
                SocialAuthorizationCommand::Verify {
                    result_ref: sealed_result.clone(),
                },
            )
            .then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::RecordVerified {
                    verified: Verified {
                        verification_id: verification_id.to_owned(),
                        kind: VerificationKind::Social,
                        identifier: None,
                        identifier_key: None,
                        user_id: owner.clone(),
                        one_time_token_id: None,
                    },
                    now,
                },
            )
            .seal(
                sealed_result,
                serde_json::to_vec(&result).map_err(internal)?,
            );
        let actor = owner.map_or(Actor::Anonymous, Actor::User);
        self.run(unit, actor).await?;
        Ok(verification_id.to_owned())
    }

    async fn social_result(
        &self,
        verification_id: &str,
    ) -> Result<(SocialResult, SocialConnector), ApiError> {
        let sealed = self
            .state
            .store
            .open_vault(&result_ref(&self.interaction.id, verification_id))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "session.verification_failed",
                    "The verification was not successful. Restart the verification flow and \
                     try again.",
                )
            })?;
        let result: SocialResult = serde_json::from_slice(&sealed).map_err(internal)?;
        let connector = connector(self.state, &result.connector_id).await?;
        Ok((result, connector))
    }

    /// Whether the sign-in experience offers this connector's button.
    fn guard_social_enabled(&self, target: &str, register: bool) -> Result<(), ApiError> {
        if self
            .config
            .social_sign_in_connector_targets
            .iter()
            .any(|t| t == target)
        {
            return Ok(());
        }
        Err(method_not_enabled(register))
    }

    /// The user a verified email names, when automatic account linking is on.
    async fn linkable_user(&self, social: &SocialUser) -> Result<Option<UserRow>, ApiError> {
        if self.config.social_sign_in.automatic_account_linking != Some(true) {
            return Ok(None);
        }
        let Some(email) = &social.email else {
            return Ok(None);
        };
        self.find_user(IdentifierType::Email, email).await
    }

    /// The steps every social sign-in of `user` takes with it: the identity's details (and,
    /// with `syncProfile`, name and avatar) brought up to date, the token set stored when the
    /// connector keeps tokens, and the result consumed.
    fn social_sign_in_unit(
        &self,
        mut unit: Unit,
        verification_id: &str,
        user_id: &str,
        sync_from: Option<&UserRow>,
        result: &SocialResult,
        connector: &SocialConnector,
    ) -> Result<Unit, ApiError> {
        unit = unit.then::<User>(
            user_id.to_owned(),
            UserCommand::LinkIdentity {
                target: result.target.clone(),
                user_id: result.user.id.clone(),
                details: Some(result.user.details()),
            },
        );
        if let Some(user) = sync_from
            && let Some(patch) = synced_profile(user, &result.user)
        {
            unit = unit.then::<User>(user_id.to_owned(), UserCommand::Update(patch));
        }
        if connector.row.enable_token_storage {
            unit = token_vault::store(
                unit,
                user_id,
                &result.target,
                &connector.row.id,
                &result.tokens,
            )
            .map_err(internal)?;
        }
        Ok(unit.then::<SocialAuthorization>(
            verification_id.to_owned(),
            SocialAuthorizationCommand::Consume,
        ))
    }

    /// Identification with a social verification (`POST /api/experience/identification`).
    pub(super) async fn identify_social(
        &mut self,
        verification_id: &str,
        proven: Option<String>,
    ) -> Result<Identification, ApiError> {
        let event = self.event()?;
        if event == InteractionEvent::ForgotPassword {
            return Err(super::not_for_forgot_password(StatusCode::BAD_REQUEST));
        }
        let register = event == InteractionEvent::Register;
        let (result, connector) = self.social_result(verification_id).await?;
        self.guard_social_enabled(&result.target, register)?;
        super::rules::guard_event(&self.config, event)?;
        let owner = {
            let db = self.state.store.pool().get().await?;
            projections::users::identity_owner(&db, &result.target, &result.user.id).await?
        };
        let now = self.context.now_ms();
        match (owner.or(proven), register) {
            (Some(_), true) => Err(identity_in_use()),
            (Some(user_id), false) => {
                let user = self.user(&user_id).await?.ok_or_else(identity_not_exist)?;
                self.sign_in_socially(verification_id, user, &result, &connector, false)
                    .await
            }
            (None, false) => {
                let Some(user) = self.linkable_user(&result.user).await? else {
                    return Err(identity_not_exist());
                };
                self.sign_in_socially(verification_id, user, &result, &connector, true)
                    .await
            }
            (None, true) => {
                if self.interaction.user_id.is_some() {
                    return Err(identity_conflict());
                }
                let user_id = ids::short_id().map_err(internal)?;
                let email = match &result.user.email {
                    Some(email) => self
                        .find_user(IdentifierType::Email, email)
                        .await?
                        .is_none()
                        .then(|| email.clone()),
                    None => None,
                };
                let phone = match &result.user.phone {
                    Some(phone) => self
                        .find_user(IdentifierType::Phone, phone)
                        .await?
                        .is_none()
                        .then(|| phone.clone()),
                    None => None,
                };
                let role_ids = {
                    let db = self.state.store.pool().get().await?;
                    projections::roles::default_user_role_ids(&db).await?
                };
                let unit = Unit::new().then::<User>(
                    user_id.clone(),
                    UserCommand::Create(NewUser {
                        id: user_id.clone(),
                        username: None,
                        primary_email: email,
                        primary_phone: phone,
                        name: result.user.name.clone(),
                        avatar: result.user.avatar.clone(),
                        custom_data: Map::new(),
                        profile: Map::new(),
                        password_digest: None,
                        password_algorithm: None,
                        role_ids,
                    }),
                );
                // Name and avatar came with the creation: nothing to sync.
                let unit = self.social_sign_in_unit(
                    unit,
                    verification_id,
                    &user_id,
                    None,
                    &result,
                    &connector,
                )?;
                let unit = unit.then::<Interaction>(
                    self.interaction.id.clone(),
                    InteractionCommand::Register {
                        user_id: user_id.clone(),
                        now,
                    },
                );
                self.run(unit, Actor::User(user_id)).await?;
                Ok(Identification::Created)
            }
        }
    }

    /// Signs `user` in with a social verification; `linking` when the identity is new to them
    /// (automatic account linking), which the interaction records as the verification now
    /// proving that user.
    async fn sign_in_socially(
        &mut self,
        verification_id: &str,
        user: UserRow,
        result: &SocialResult,
        connector: &SocialConnector,
        linking: bool,
    ) -> Result<Identification, ApiError> {
        if user.is_suspended {
            return Err(suspended());
        }
        match &self.interaction.user_id {
            Some(current) if *current != user.id => return Err(identity_conflict()),
            Some(_) | None => {}
        }
        let now = self.context.now_ms();
        let mut unit = Unit::new();
        if linking {
            unit = unit.then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::RecordVerified {
                    verified: Verified {
                        verification_id: verification_id.to_owned(),
                        kind: VerificationKind::Social,
                        identifier: None,
                        identifier_key: None,
                        user_id: Some(user.id.clone()),
                        one_time_token_id: None,
                    },
                    now,
                },
            );
        }
        let sync_from = connector.row.sync_profile.then_some(&user);
        unit = self.social_sign_in_unit(
            unit,
            verification_id,
            &user.id,
            sync_from,
            result,
            connector,
        )?;
        if self.interaction.user_id.is_none() {
            unit = unit.then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::Identify {
                    verification_id: verification_id.to_owned(),
                    user_id: user.id.clone(),
                    now,
                },
            );
        }
        self.run(unit, Actor::User(user.id)).await?;
        Ok(Identification::Existing)
    }

    /// The hosted pages' social sign-in: sign in the identity's user, or (when the identity is
    /// new and registration is open) register one, then submit. Answers where to resume.
    pub async fn complete_social(&mut self, verification_id: &str) -> Result<String, ApiError> {
        self.set_event(InteractionEvent::SignIn, true).await?;
        match self.identify(Some(verification_id)).await {
            Ok(_) => {}
            Err(error) if error.code == "user.identity_not_exist" => {
                if super::rules::guard_event(&self.config, InteractionEvent::Register).is_err() {
                    return Err(error);
                }
                self.set_event(InteractionEvent::Register, true).await?;
                self.identify(Some(verification_id)).await?;
            }
            Err(error) => return Err(error),
        }
        self.submit().await
    }
}
