//! Magic links in the sign-in experience (logto-compat §4): a one-time token redeemed as a
//! first factor, the registration of the person it invites (whatever the sign-in mode), and
//! the organizations its context provisions when the interaction is submitted.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use domain::Actor;
use domain::interaction::{
    Failed, Identifier, IdentifierType, Interaction, InteractionCommand, InteractionEvent,
    VerificationKind, Verified,
};
use domain::one_time_token::Device;
use domain::organization::{Organization, OrganizationCommand};
use domain::user::{NewUser, User, UserCommand};
use projections::one_time_tokens::OneTimeTokenRow;
use projections::users::UserRow;
use serde_json::{Map, Value};

use super::super::rules;
use super::{Experience, held, identity_conflict, internal, lost, not_for_forgot_password};
use crate::crypto::ids;
use crate::http::error::ApiError;
use crate::http::management::one_time_tokens::{self, Redemption};
use crate::http::oidc::resume_url;
use crate::store::Unit;

fn email_in_use() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "user.email_already_in_use",
        "This email is associated with an existing account.",
    )
}

fn token_withdrawn() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "session.verification_failed",
        "The verification was not successful. Restart the verification flow and try again.",
    )
}

impl Experience<'_> {
    /// The browser following a link, as a token's device binding compares it: the address in
    /// the form the server prints addresses, the user agent as sent.
    fn device(&self) -> Device {
        Device {
            ip: self.context.ip.as_deref().map(|ip| {
                ip.parse::<std::net::IpAddr>()
                    .map_or_else(|_| ip.to_owned(), |ip| ip.to_string())
            }),
            user_agent: self.context.user_agent.clone(),
        }
    }

    /// `POST /api/experience/verification/one-time-token/verify`: Logto's verify algorithm
    /// (shared with the Management API), plus the token's interaction event and device
    /// binding, with the consumption and this interaction's record of it in one unit of work.
    /// A token naming an existing account (emails compared case-insensitively) proves that
    /// user; otherwise it proves only the email, which registration then takes.
    ///
    /// `follow_account` is the hosted page's variant, where the link decides the flow as the
    /// seed describes: the interaction event becomes `SignIn` for an email with an account and
    /// `Register` otherwise, switched in the same unit of work, so a closed registration opens
    /// only for a token that verifies (the Experience API reaches the same state with a
    /// verification followed by `PUT /api/experience/interaction-event`).
    pub async fn verify_one_time_token(
        &mut self,
        token: &str,
        email: &str,
        follow_account: bool,
    ) -> Result<String, ApiError> {
        self.guard_open()?;
        let user_id = self
            .find_user(IdentifierType::Email, email)
            .await?
            .map(|user| user.id);
        let current = self.event()?;
        let event = match (follow_account, &user_id) {
            (false, _) => current,
            (true, Some(_)) => InteractionEvent::SignIn,
            (true, None) => InteractionEvent::Register,
        };
        if event != current {
            if current == InteractionEvent::ForgotPassword {
                return Err(not_for_forgot_password(StatusCode::BAD_REQUEST));
            }
            // Registration is the token's to open; a sign-in keeps the mode's gate.
            rules::guard_event_invited(&self.config, event, true)?;
        }
        let actor = user_id.clone().map_or(Actor::Anonymous, Actor::User);
        let identifier = Identifier {
            kind: IdentifierType::Email,
            value: email.to_owned(),
        };
        let identifier_key = self.identifier_key(&identifier);
        let verification_id = ids::standard_id().map_err(internal)?;
        let interaction_id = self.interaction.id.clone();
        let now = self.context.now_ms();
        let verified = Verified {
            verification_id: verification_id.clone(),
            kind: VerificationKind::OneTimeToken,
            identifier: Some(identifier.clone()),
            identifier_key: identifier_key.clone(),
            user_id: user_id.clone(),
            one_time_token_id: None,
        };
        let redemption = Redemption {
            interaction_event: event,
            device: self.device(),
        };
        let record = |row: &OneTimeTokenRow, mut unit: Unit| {
            if event != current {
                unit = unit.then::<Interaction>(
                    interaction_id.clone(),
                    InteractionCommand::SetEvent { event, now },
                );
            }
            unit.then::<Interaction>(
                interaction_id.clone(),
                InteractionCommand::RecordVerified {
                    verified: Verified {
                        one_time_token_id: Some(row.id.clone()),
                        ..verified
                    },
                    now,
                },
            )
        };
        let redeemed = one_time_tokens::verify(
            self.state,
            self.context,
            actor.clone(),
            token,
            email,
            Some(redemption),
            record,
        )
        .await;
        if let Err(error) = redeemed {
            let failed = Failed {
                kind: VerificationKind::OneTimeToken,
                identifier: Some(identifier),
                identifier_key,
                user_id,
                reason: error.code.to_owned(),
            };
            // The refusal stands whether or not its record does.
            if let Err(unrecorded) = self
                .interaction_command(InteractionCommand::RecordFailure { failed, now }, actor)
                .await
            {
                tracing::warn!(
                    code = unrecorded.code,
                    "one-time token failure not recorded"
                );
            }
            return Err(error);
        }
        self.reload().await?;
        Ok(verification_id)
    }

    async fn reload(&mut self) -> Result<(), ApiError> {
        let db = self.state.store.pool().get().await?;
        self.interaction = projections::interactions::by_id(&db, &self.interaction.id)
            .await?
            .ok_or_else(lost)?;
        Ok(())
    }

    /// Whether this interaction holds a verified one-time token: an invitation, which lets it
    /// register even where the sign-in mode closes registration (Logto's exception).
    pub fn one_time_token_verified(&self) -> bool {
        self.interaction
            .verifications
            .as_object()
            .is_some_and(|records| {
                records
                    .values()
                    .any(|record| record["kind"] == VerificationKind::OneTimeToken.as_str())
            })
    }

    /// The tokens this interaction's one-time-token verifications consumed (those still
    /// existing: a token deleted since proves nothing more).
    async fn consumed_tokens(&self, only: Option<&str>) -> Result<Vec<OneTimeTokenRow>, ApiError> {
        let ids: Vec<String> = self
            .interaction
            .verifications
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(id, _)| only.is_none_or(|only| only == id.as_str()))
            .filter_map(|(_, record)| record["oneTimeTokenId"].as_str().map(str::to_owned))
            .collect();
        let db = self.state.store.pool().get().await?;
        let mut tokens = Vec::with_capacity(ids.len());
        for id in ids {
            tokens.extend(projections::one_time_tokens::by_id(&db, &id).await?);
        }
        Ok(tokens)
    }

    /// What the sign-up configuration still demands of the identified user, in Logto's order
    /// (the hosted pages ask for it before submitting).
    pub async fn missing_profile(&self) -> Result<Vec<&'static str>, ApiError> {
        let user = self.identified_user().await?;
        Ok(rules::missing_profile(&self.config, held(&user)))
    }

    /// `/switch-account`'s "stay": the browser's session (of `user_id`) stands in for the
    /// sign-in the link would have made, and the token is left unused. The answer is where the
    /// browser resumes the authorization.
    pub async fn keep_session(
        &mut self,
        user_id: &str,
        session_id: &str,
    ) -> Result<String, ApiError> {
        let now = self.context.now_ms();
        self.interaction_command(
            InteractionCommand::ContinueSession {
                user_id: user_id.to_owned(),
                session_id: session_id.to_owned(),
                now,
            },
            Actor::User(user_id.to_owned()),
        )
        .await?;
        Ok(resume_url(self.state, &self.interaction.id))
    }

    /// Identification of a `Register` interaction with a one-time token: creates the user
    /// with the token's email as primary email, in the same unit of work as the interaction's
    /// record of it. The sign-up profile the configuration demands is checked at submission,
    /// when the person has had the chance to add it.
    pub(super) async fn register_with_token(
        &mut self,
        verification_id: &str,
    ) -> Result<(), ApiError> {
        if self.interaction.user_id.is_some() {
            return Err(identity_conflict());
        }
        let (_, proven) = self.verification(verification_id)?;
        let token = self
            .consumed_tokens(Some(verification_id))
            .await?
            .pop()
            .ok_or_else(token_withdrawn)?;
        if proven.is_some()
            || self
                .find_user(IdentifierType::Email, &token.email)
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
                    primary_email: Some(token.email),
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

    /// Adds to `unit` (the submission) the memberships the consumed tokens invite `user` to:
    /// each existing organization of a token's `context.jitOrganizationIds`, with that
    /// organization's just-in-time roles; unknown ids are skipped and memberships and roles
    /// already held are kept, as in Logto. Only a token for the user's own email counts, so a
    /// link verified in this interaction cannot enrol whoever signs in with something else.
    pub(super) async fn provision_organizations(
        &self,
        user: &UserRow,
        mut unit: Unit,
    ) -> Result<Unit, ApiError> {
        let Some(email) = user.primary_email.as_deref() else {
            return Ok(unit);
        };
        let tokens = self.consumed_tokens(None).await?;
        let db = self.state.store.pool().get().await?;
        let mut seen = BTreeSet::new();
        for token in tokens
            .iter()
            .filter(|t| t.email.eq_ignore_ascii_case(email))
        {
            let organization_ids = token.context["jitOrganizationIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            for organization_id in organization_ids {
                if !seen.insert(organization_id.to_owned())
                    || projections::organizations::by_id(&db, organization_id)
                        .await?
                        .is_none()
                {
                    continue;
                }
                let (roles, _) =
                    projections::organizations::jit_roles(&db, organization_id, None).await?;
                unit = unit.then::<Organization>(
                    organization_id,
                    OrganizationCommand::AddMembers {
                        user_ids: vec![user.id.clone()],
                    },
                );
                if !roles.is_empty() {
                    unit = unit.then::<Organization>(
                        organization_id,
                        OrganizationCommand::AssignMemberRoles {
                            user_id: user.id.clone(),
                            organization_role_ids: roles.into_iter().map(|r| r.id).collect(),
                        },
                    );
                }
            }
        }
        Ok(unit)
    }
}
