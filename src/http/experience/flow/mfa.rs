//! Second factors in the sign-in experience (Logto's MFA): what an identified user still owes
//! before submission (`status`, the one computation behind `Experience::mfa_pending`),
//! verifying a TOTP code or a backup code, and enrolling new factors, which are added to the
//! user in the submission's own unit of work.
//!
//! Departure from Logto: a factor the user holds is always demanded, whether or not the sign-in
//! experience still lists it, so a configuration change never silently drops a second factor
//! someone enrolled. The sign-in experience's factors and policy decide what users are asked to
//! enrol.

use axum::http::StatusCode;
use domain::Actor;
use domain::interaction::{
    Failed, Interaction, InteractionCommand, InteractionEvent, LockedIdentifier, VerificationKind,
    Verified,
};
use domain::mfa::{MfaFactorKind, NewMfaVerification};
use domain::sign_in_experience::{MfaFactor, MfaPolicy};
use domain::user::{User, UserCommand};
use projections::users::{MfaRow, UserRow};
use serde_json::{Value, json};

use super::{Experience, SENTINEL_HASH_KIND, internal, not_identified};
use crate::crypto::{ids, totp};
use crate::http::error::ApiError;
use crate::http::management::users::mfa::{backup_code_hash, qr_code, totp_secret, totp_vault_ref};
use crate::sentinel;
use crate::store::Unit;

/// What the identified user still owes of second factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaStatus {
    Satisfied,
    /// The user holds these factors; one must be verified in this interaction.
    Verify(Vec<&'static str>),
    /// The policy (or an organization) asks for a factor the user does not hold yet.
    Enrol {
        factors: Vec<&'static str>,
        skippable: bool,
    },
    /// Backup codes are enabled and the user has none.
    BackupCodeRequired,
}

impl MfaStatus {
    /// Logto's refusal for what is owed.
    pub fn error(&self) -> Option<ApiError> {
        match self {
            MfaStatus::Satisfied => None,
            MfaStatus::Verify(factors) => Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "session.mfa.require_mfa_verification",
                    "MFA verification is required to sign in.",
                )
                .with_data(json!({ "availableFactors": factors })),
            ),
            MfaStatus::Enrol { factors, skippable } => {
                let mut data = json!({ "availableFactors": factors });
                if *skippable {
                    data["skippable"] = json!(true);
                }
                Some(
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "user.missing_mfa",
                        "You need to bind MFA before signing-in.",
                    )
                    .with_data(data),
                )
            }
            MfaStatus::BackupCodeRequired => Some(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "session.mfa.backup_code_required",
                "Backup code is required.",
            )),
        }
    }
}

fn invalid_totp() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "session.mfa.invalid_totp_code",
        "Invalid TOTP code.",
    )
}

fn invalid_backup_code() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "session.mfa.invalid_backup_code",
        "Invalid backup code.",
    )
}

fn factor_not_enabled() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "session.mfa.mfa_factor_not_enabled",
        "MFA factor is not enabled.",
    )
}

/// Factors a user can use: a TOTP, and backup codes while some are left.
fn usable(rows: &[MfaRow]) -> Vec<&'static str> {
    let mut factors = Vec::new();
    if rows.iter().any(|r| r.kind == "Totp") {
        factors.push("Totp");
    }
    if rows.iter().any(|r| {
        r.kind == "BackupCode"
            && r.unused_code_hashes
                .as_array()
                .is_some_and(|c| !c.is_empty())
    }) {
        factors.push("BackupCode");
    }
    factors
}

impl Experience<'_> {
    async fn mfa_rows(&self, user_id: &str) -> Result<Vec<MfaRow>, ApiError> {
        let db = self.state.store.pool().get().await?;
        Ok(projections::users::mfa_verifications(&db, user_id).await?)
    }

    /// Whether the user holds a factor that can be verified.
    pub async fn holds_second_factor(&self, user_id: &str) -> Result<bool, ApiError> {
        Ok(!usable(&self.mfa_rows(user_id).await?).is_empty())
    }

    /// Whether a second factor of `user_id` was verified in this interaction.
    pub fn second_factor_verified(&self, user_id: &str) -> bool {
        self.interaction
            .verifications
            .as_object()
            .is_some_and(|records| {
                records.values().any(|record| {
                    matches!(record["kind"].as_str(), Some("Totp" | "BackupCode"))
                        && record["userId"].as_str() == Some(user_id)
                })
            })
    }

    /// Enrolments of this interaction: verification id → record (see `InteractionRow::mfa`).
    fn enrolments(&self) -> Vec<(String, Value)> {
        self.interaction.mfa["enrolments"]
            .as_object()
            .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    fn bound_here(&self, factor: MfaFactorKind) -> bool {
        self.enrolments()
            .iter()
            .any(|(_, e)| e["bound"] == json!(true) && e["factor"] == factor.as_str())
    }

    /// Whether one of the user's organizations requires a second factor and the sign-in
    /// experience lets it (Logto's `isMfaRequiredByUserOrganizations`).
    async fn required_by_organization(&self, user_id: &str) -> Result<bool, ApiError> {
        if !self.config.mfa.organizations_may_require() {
            return Ok(false);
        }
        let db = self.state.store.pool().get().await?;
        let memberships = projections::organizations::memberships(&db, user_id).await?;
        Ok(memberships.iter().any(|m| m.organization.is_mfa_required))
    }

    /// What `user` still owes of second factors in this interaction: the verification of a
    /// factor held, then what the policy asks to enrol (Logto's
    /// `assertUserMandatoryMfaFulfilled`).
    pub async fn mfa_status(&self, user: &UserRow) -> Result<MfaStatus, ApiError> {
        let rows = self.mfa_rows(&user.id).await?;
        let held = usable(&rows);
        if !held.is_empty() && !self.second_factor_verified(&user.id) {
            return Ok(MfaStatus::Verify(held));
        }
        let mfa = &self.config.mfa;
        if mfa.factors.is_empty() {
            return Ok(MfaStatus::Satisfied);
        }
        let by_organization = self.required_by_organization(&user.id).await?;
        let mandatory = mfa.policy == MfaPolicy::Mandatory || by_organization;
        let skipped = self.interaction.mfa["skipped"] == json!(true);
        let registering = self.event()? == InteractionEvent::Register;
        if (mfa.policy == MfaPolicy::NoPrompt && !by_organization)
            || (skipped && !mandatory)
            || (registering && mfa.policy == MfaPolicy::PromptOnlyAtSignIn && !by_organization)
        {
            return Ok(MfaStatus::Satisfied);
        }
        // Only the factors this server can enrol are offered.
        let offered: Vec<&'static str> = mfa
            .factors
            .iter()
            .filter(|f| **f == MfaFactor::Totp)
            .map(|_| "Totp")
            .collect();
        if offered.is_empty() {
            return Ok(MfaStatus::Satisfied);
        }
        let has_totp =
            rows.iter().any(|r| r.kind == "Totp") || self.bound_here(MfaFactorKind::Totp);
        if !has_totp {
            return Ok(MfaStatus::Enrol {
                factors: offered,
                skippable: !mandatory,
            });
        }
        let has_codes = rows.iter().any(|r| r.kind == "BackupCode")
            || self.bound_here(MfaFactorKind::BackupCode);
        if mfa.factors.contains(&MfaFactor::BackupCode) && !has_codes {
            return Ok(MfaStatus::BackupCodeRequired);
        }
        Ok(MfaStatus::Satisfied)
    }

    /// The factors bound in this interaction, as commands on the user, for the submission.
    pub fn bound_factors(&self, user_id: &str) -> Vec<UserCommand> {
        totp_first(self.enrolments())
            .into_iter()
            .filter(|(_, e)| e["bound"] == json!(true) && e["userId"].as_str() == Some(user_id))
            .filter_map(|(id, e)| {
                let factor = match e["factor"].as_str()? {
                    "Totp" => NewMfaVerification::Totp {
                        id,
                        vault_ref: e["vaultRef"].as_str()?.to_owned(),
                    },
                    _ => NewMfaVerification::BackupCode {
                        id,
                        code_hashes: serde_json::from_value(e["codeHashes"].clone()).ok()?,
                    },
                };
                Some(UserCommand::AddMfaVerification(factor))
            })
            .collect()
    }

    /// The sentinel's key for a user's second factors (Logto counts them by user id).
    fn mfa_sentinel_key(&self, user_id: &str) -> String {
        self.state
            .store
            .keyring()
            .lookup_hash(SENTINEL_HASH_KIND, &format!("userId:{user_id}"))
    }

    /// Records that the sentinel locked `identifier`, for the `Identifier.Lockout` webhook. The
    /// refusal stands whether or not its record does.
    pub async fn record_lockout(&mut self, identifier: LockedIdentifier, user_id: Option<String>) {
        let now = self.context.now_ms();
        let recorded = self
            .interaction_command(
                InteractionCommand::RecordLockout {
                    identifier,
                    user_id,
                    now,
                },
                Actor::Anonymous,
            )
            .await;
        if let Err(error) = recorded {
            tracing::warn!(code = error.code, "lockout not recorded");
        }
    }

    /// Counts a failed second factor toward the user's lockout, records it, and answers
    /// `error` (or the lock it tripped).
    async fn mfa_failure(
        &mut self,
        user: &UserRow,
        kind: VerificationKind,
        error: ApiError,
    ) -> Result<String, ApiError> {
        let now = self.context.now_ms();
        let failed = Failed {
            kind,
            identifier: None,
            identifier_key: None,
            user_id: Some(user.id.clone()),
            reason: error.code.to_owned(),
        };
        self.interaction_command(
            InteractionCommand::RecordFailure { failed, now },
            Actor::User(user.id.clone()),
        )
        .await?;
        let key = self.mfa_sentinel_key(&user.id);
        let pool = self.state.store.pool();
        match sentinel::record_failure(pool, &key, &self.config.sentinel_policy, now).await {
            Ok(Some(limited)) => {
                let identifier = LockedIdentifier {
                    kind: "userId".to_owned(),
                    value: user.id.clone(),
                };
                self.record_lockout(identifier, Some(user.id.clone())).await;
                Err(ApiError::verification_blocked(limited))
            }
            Ok(None) => Err(error),
            Err(failure) => {
                tracing::warn!(%failure, "sentinel failure not recorded");
                Err(error)
            }
        }
    }

    /// The identified user, who may go on, for a second-factor step.
    async fn mfa_user(&self) -> Result<UserRow, ApiError> {
        self.guard_open()?;
        if self.interaction.user_id.is_none() {
            return Err(not_identified());
        }
        self.identified_user().await
    }

    /// Records a passed second factor, with its use on the user, in one unit of work: the code
    /// counts once however many requests race with it.
    async fn mfa_passed(
        &mut self,
        user: &UserRow,
        kind: VerificationKind,
        used: UserCommand,
    ) -> Result<String, ApiError> {
        let verification_id = ids::standard_id().map_err(internal)?;
        let unit = Unit::new()
            .then::<User>(user.id.clone(), used)
            .then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::RecordVerified {
                    verified: Verified {
                        verification_id: verification_id.clone(),
                        kind,
                        identifier: None,
                        identifier_key: None,
                        user_id: Some(user.id.clone()),
                        one_time_token_id: None,
                    },
                    now: self.context.now_ms(),
                },
            );
        self.run(unit, Actor::User(user.id.clone())).await?;
        if let Err(error) =
            sentinel::clear(self.state.store.pool(), &self.mfa_sentinel_key(&user.id)).await
        {
            tracing::warn!(%error, "sentinel failures not cleared after a second factor");
        }
        Ok(verification_id)
    }

    /// `POST /api/experience/verification/totp/verify`: a code of the user's TOTP (each time
    /// step once), or, with `verification_id`, of the secret being enrolled.
    pub async fn verify_totp(
        &mut self,
        code: &str,
        verification_id: Option<&str>,
    ) -> Result<String, ApiError> {
        let user = self.mfa_user().await?;
        let now = self.context.now_ms();
        sentinel::check_lockout(
            self.state.store.pool(),
            &self.mfa_sentinel_key(&user.id),
            now,
        )
        .await
        .map_err(ApiError::verification_blocked)?;
        if let Some(verification_id) = verification_id {
            return self.confirm_totp(&user, code, verification_id).await;
        }
        let rows = self.mfa_rows(&user.id).await?;
        let Some(row) = rows.iter().find(|r| r.kind == "Totp") else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "session.mfa.invalid_totp_code",
                "Invalid TOTP code.",
            ));
        };
        let secret = totp_secret(self.state, row).await?;
        let Some(step) = totp::matching_step(&secret, code, now) else {
            return self
                .mfa_failure(&user, VerificationKind::Totp, invalid_totp())
                .await;
        };
        let used = UserCommand::UseTotp {
            id: row.id.clone(),
            step,
        };
        match self.mfa_passed(&user, VerificationKind::Totp, used).await {
            // A code already used is a failed attempt like any wrong one.
            Err(error) if error.code == "session.mfa.invalid_totp_code" => {
                self.mfa_failure(&user, VerificationKind::Totp, error).await
            }
            other => other,
        }
    }

    /// The secret of `user`'s TOTP enrolment `verification_id` in this interaction.
    async fn enrolment_secret(
        &self,
        user: &UserRow,
        verification_id: &str,
    ) -> Result<String, ApiError> {
        let (_, enrolment) = self
            .enrolments()
            .into_iter()
            .find(|(id, e)| {
                id == verification_id
                    && e["factor"] == "Totp"
                    && e["userId"].as_str() == Some(user.id.as_str())
            })
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "session.verification_session_not_found",
                    "The verification was not found.",
                )
            })?;
        self.state
            .store
            .open_vault(enrolment["vaultRef"].as_str().unwrap_or_default())
            .await?
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(internal_missing)
    }

    async fn confirm_totp(
        &mut self,
        user: &UserRow,
        code: &str,
        verification_id: &str,
    ) -> Result<String, ApiError> {
        let secret = self.enrolment_secret(user, verification_id).await?;
        if totp::matching_step(&secret, code, self.context.now_ms()).is_none() {
            return self
                .mfa_failure(user, VerificationKind::Totp, invalid_totp())
                .await;
        }
        let now = self.context.now_ms();
        self.interaction_command(
            InteractionCommand::ConfirmMfaEnrolment {
                verification_id: verification_id.to_owned(),
                now,
            },
            Actor::User(user.id.clone()),
        )
        .await?;
        Ok(verification_id.to_owned())
    }

    /// `POST /api/experience/verification/backup-code/verify`: one of the user's unused codes.
    pub async fn verify_backup_code(&mut self, code: &str) -> Result<String, ApiError> {
        let user = self.mfa_user().await?;
        let now = self.context.now_ms();
        sentinel::check_lockout(
            self.state.store.pool(),
            &self.mfa_sentinel_key(&user.id),
            now,
        )
        .await
        .map_err(ApiError::verification_blocked)?;
        let hash = backup_code_hash(self.state, &user.id, code);
        let rows = self.mfa_rows(&user.id).await?;
        let Some(row) = rows.iter().find(|r| {
            r.kind == "BackupCode"
                && r.unused_code_hashes
                    .as_array()
                    .is_some_and(|codes| codes.iter().any(|c| c.as_str() == Some(hash.as_str())))
        }) else {
            return self
                .mfa_failure(&user, VerificationKind::BackupCode, invalid_backup_code())
                .await;
        };
        let used = UserCommand::UseBackupCode {
            id: row.id.clone(),
            code_hash: hash,
        };
        match self
            .mfa_passed(&user, VerificationKind::BackupCode, used)
            .await
        {
            Err(error) if error.code == "session.mfa.invalid_backup_code" => {
                self.mfa_failure(&user, VerificationKind::BackupCode, error)
                    .await
            }
            other => other,
        }
    }

    /// `POST /api/experience/verification/totp/secret`: a new secret for the identified user,
    /// sealed in the vault until the submission binds it (or never, if it is not bound).
    pub async fn new_totp_secret(&mut self) -> Result<(String, String, String), ApiError> {
        let user = self.mfa_user().await?;
        let verification_id = ids::standard_id().map_err(internal)?;
        let secret = totp::new_secret().map_err(internal)?;
        let vault_ref = totp_vault_ref(&verification_id);
        let unit = Unit::new()
            .seal(vault_ref.clone(), secret.clone().into_bytes())
            .then::<Interaction>(
                self.interaction.id.clone(),
                InteractionCommand::StartMfaEnrolment {
                    user_id: user.id.clone(),
                    factor: NewMfaVerification::Totp {
                        id: verification_id.clone(),
                        vault_ref,
                    },
                    now: self.context.now_ms(),
                },
            );
        self.run(unit, Actor::User(user.id.clone())).await?;
        let qr = qr_code(self.state, &user, &secret)?;
        Ok((verification_id, secret, qr))
    }

    /// What the identified user owes of second factors now (the hosted pages ask for it).
    pub async fn second_factor_owed(&self) -> Result<MfaStatus, ApiError> {
        let user = self.mfa_user().await?;
        self.mfa_status(&user).await
    }

    /// The secret of a TOTP being enrolled here and its QR code, shown again after a wrong
    /// confirmation code.
    pub async fn totp_enrolment(
        &self,
        verification_id: &str,
    ) -> Result<(String, String), ApiError> {
        let user = self.mfa_user().await?;
        let secret = self.enrolment_secret(&user, verification_id).await?;
        let qr = qr_code(self.state, &user, &secret)?;
        Ok((secret, qr))
    }

    /// `POST /api/experience/verification/backup-code/generate`: ten codes, shown once.
    pub async fn new_backup_codes(&mut self) -> Result<(String, Vec<String>), ApiError> {
        let user = self.mfa_user().await?;
        let verification_id = ids::standard_id().map_err(internal)?;
        let codes = totp::new_backup_codes().map_err(internal)?;
        let code_hashes = codes
            .iter()
            .map(|code| backup_code_hash(self.state, &user.id, code))
            .collect();
        let now = self.context.now_ms();
        self.interaction_command(
            InteractionCommand::StartMfaEnrolment {
                user_id: user.id.clone(),
                factor: NewMfaVerification::BackupCode {
                    id: verification_id.clone(),
                    code_hashes,
                },
                now,
            },
            Actor::User(user.id.clone()),
        )
        .await?;
        Ok((verification_id, codes))
    }

    /// `POST /api/experience/profile/mfa`: the enrolment becomes the user's on submission.
    pub async fn bind_mfa(
        &mut self,
        factor: MfaFactorKind,
        verification_id: &str,
    ) -> Result<(), ApiError> {
        let user = self.mfa_user().await?;
        let enabled = match factor {
            MfaFactorKind::Totp => MfaFactor::Totp,
            MfaFactorKind::BackupCode => MfaFactor::BackupCode,
        };
        if !self.config.mfa.factors.contains(&enabled) {
            return Err(factor_not_enabled());
        }
        let rows = self.mfa_rows(&user.id).await?;
        let has_totp = rows.iter().any(|r| r.kind == "Totp");
        match factor {
            MfaFactorKind::Totp if has_totp || self.bound_here(MfaFactorKind::Totp) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "user.totp_already_in_use",
                    "TOTP is already in use.",
                ));
            }
            MfaFactorKind::BackupCode if !has_totp && !self.bound_here(MfaFactorKind::Totp) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "session.mfa.backup_code_can_not_be_alone",
                    "Backup code can not be the only MFA.",
                ));
            }
            MfaFactorKind::Totp | MfaFactorKind::BackupCode => {}
        }
        let now = self.context.now_ms();
        self.interaction_command(
            InteractionCommand::BindMfa {
                verification_id: verification_id.to_owned(),
                now,
            },
            Actor::User(user.id),
        )
        .await
    }

    /// `POST /api/experience/profile/mfa/mfa-skipped`: declines an enrolment the policy offers.
    pub async fn skip_mfa(&mut self) -> Result<(), ApiError> {
        let user = self.mfa_user().await?;
        let by_organization = self.required_by_organization(&user.id).await?;
        if self.config.mfa.policy == MfaPolicy::Mandatory || by_organization {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "session.mfa.mfa_policy_not_user_controlled",
                "MFA policy is not user controlled.",
            ));
        }
        let now = self.context.now_ms();
        self.interaction_command(InteractionCommand::SkipMfa { now }, Actor::User(user.id))
            .await
    }
}

/// Enrolments with the TOTP ones first: the user refuses backup codes as their only factor, and
/// the enrolments come keyed by random verification ids, so in id order the codes could reach
/// the user before the TOTP they back up.
fn totp_first(mut enrolments: Vec<(String, Value)>) -> Vec<(String, Value)> {
    enrolments.sort_by_key(|(_, e)| e["factor"] != "Totp");
    enrolments
}

fn internal_missing() -> ApiError {
    tracing::error!("an enrolment's TOTP secret is missing from the vault");
    ApiError::internal()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::totp_first;

    #[test]
    fn totp_enrolments_reach_the_user_before_backup_codes_whatever_their_ids() {
        let enrolments = vec![
            ("0aaa".to_owned(), json!({"factor": "BackupCode"})),
            ("zzzz".to_owned(), json!({"factor": "Totp"})),
        ];
        let ordered: Vec<String> = totp_first(enrolments)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ordered, ["zzzz", "0aaa"]);
    }
}
