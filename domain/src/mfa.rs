//! A user's second factors (Logto's `mfaVerifications`): one TOTP authenticator and one set of
//! ten backup codes, each single use. The user aggregate (`user.rs`) holds them; this file is
//! their vocabulary and their rules, so the user's decide only delegates.
//!
//! Nothing secret is ever in an event: the TOTP secret is sealed in the vault under `vault_ref`
//! (retired when the factor or the user is deleted), backup codes are keyed hashes. Replays are
//! refused here, in the pure core: a TOTP code's time step must be later than the last one used,
//! and a backup code's hash must be among the unused ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The factors users can hold (Logto's `MfaFactor` values for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MfaFactorKind {
    Totp,
    BackupCode,
}

impl MfaFactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaFactorKind::Totp => "Totp",
            MfaFactorKind::BackupCode => "BackupCode",
        }
    }
}

/// A factor as it is added to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum NewMfaVerification {
    /// The base32 secret is in the vault under `vault_ref`.
    Totp { id: String, vault_ref: String },
    /// Keyed hashes of the ten codes.
    BackupCode {
        id: String,
        code_hashes: Vec<String>,
    },
}

impl NewMfaVerification {
    pub fn id(&self) -> &str {
        match self {
            NewMfaVerification::Totp { id, .. } | NewMfaVerification::BackupCode { id, .. } => id,
        }
    }

    pub fn kind(&self) -> MfaFactorKind {
        match self {
            NewMfaVerification::Totp { .. } => MfaFactorKind::Totp,
            NewMfaVerification::BackupCode { .. } => MfaFactorKind::BackupCode,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    #[error("the user already has a TOTP factor")]
    TotpAlreadyInUse,
    #[error("the user already has unused backup codes")]
    BackupCodeAlreadyInUse,
    #[error("backup codes cannot be the only second factor")]
    BackupCodeCannotBeAlone,
    #[error("no MFA verification {0}")]
    NotFound(String),
    #[error("this TOTP code was already used")]
    TotpCodeReused,
    #[error("the backup code is not valid")]
    BackupCodeInvalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Factor {
    Totp {
        vault_ref: String,
        /// The latest time step a code was accepted for.
        last_step: Option<i64>,
    },
    BackupCode {
        unused: BTreeSet<String>,
    },
}

/// The factors one user holds, by verification id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MfaVerifications {
    factors: BTreeMap<String, Factor>,
}

impl MfaVerifications {
    fn has_totp(&self) -> bool {
        self.factors
            .values()
            .any(|f| matches!(f, Factor::Totp { .. }))
    }

    fn has_unused_codes(&self) -> bool {
        self.factors
            .values()
            .any(|f| matches!(f, Factor::BackupCode { unused } if !unused.is_empty()))
    }

    /// Logto's rules: one TOTP; one set of backup codes with codes left, and only beside
    /// another factor.
    pub fn check_add(&self, new: &NewMfaVerification) -> Result<(), MfaError> {
        match new {
            NewMfaVerification::Totp { .. } if self.has_totp() => Err(MfaError::TotpAlreadyInUse),
            NewMfaVerification::Totp { .. } => Ok(()),
            NewMfaVerification::BackupCode { .. } if self.has_unused_codes() => {
                Err(MfaError::BackupCodeAlreadyInUse)
            }
            NewMfaVerification::BackupCode { .. } if !self.has_totp() => {
                Err(MfaError::BackupCodeCannotBeAlone)
            }
            NewMfaVerification::BackupCode { .. } => Ok(()),
        }
    }

    /// The vault entry a deletion retires, if the factor exists.
    pub fn check_delete(&self, id: &str) -> Result<Option<String>, MfaError> {
        match self.factors.get(id) {
            Some(Factor::Totp { vault_ref, .. }) => Ok(Some(vault_ref.clone())),
            Some(Factor::BackupCode { .. }) => Ok(None),
            None => Err(MfaError::NotFound(id.to_owned())),
        }
    }

    /// A TOTP code of time step `step` is accepted once, and never one older than the last.
    pub fn check_totp(&self, id: &str, step: i64) -> Result<(), MfaError> {
        match self.factors.get(id) {
            Some(Factor::Totp { last_step, .. }) if last_step.is_some_and(|last| step <= last) => {
                Err(MfaError::TotpCodeReused)
            }
            Some(Factor::Totp { .. }) => Ok(()),
            Some(Factor::BackupCode { .. }) | None => Err(MfaError::NotFound(id.to_owned())),
        }
    }

    /// A backup code is accepted once.
    pub fn check_backup_code(&self, id: &str, code_hash: &str) -> Result<(), MfaError> {
        match self.factors.get(id) {
            Some(Factor::BackupCode { unused }) if unused.contains(code_hash) => Ok(()),
            Some(Factor::BackupCode { .. }) => Err(MfaError::BackupCodeInvalid),
            Some(Factor::Totp { .. }) | None => Err(MfaError::NotFound(id.to_owned())),
        }
    }

    /// Every TOTP vault entry, with its factor id (retired with the user).
    pub fn vault_refs(&self) -> Vec<(String, String)> {
        self.factors
            .iter()
            .filter_map(|(id, factor)| match factor {
                Factor::Totp { vault_ref, .. } => Some((id.clone(), vault_ref.clone())),
                Factor::BackupCode { .. } => None,
            })
            .collect()
    }

    pub fn added(&mut self, new: &NewMfaVerification) {
        let factor = match new {
            NewMfaVerification::Totp { vault_ref, .. } => Factor::Totp {
                vault_ref: vault_ref.clone(),
                last_step: None,
            },
            NewMfaVerification::BackupCode { code_hashes, .. } => Factor::BackupCode {
                unused: code_hashes.iter().cloned().collect(),
            },
        };
        self.factors.insert(new.id().to_owned(), factor);
    }

    pub fn deleted(&mut self, id: &str) {
        self.factors.remove(id);
    }

    pub fn totp_used(&mut self, id: &str, step: i64) {
        if let Some(Factor::Totp { last_step, .. }) = self.factors.get_mut(id) {
            *last_step = Some(step);
        }
    }

    pub fn backup_code_used(&mut self, id: &str, code_hash: &str) {
        if let Some(Factor::BackupCode { unused }) = self.factors.get_mut(id) {
            unused.remove(code_hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> NewMfaVerification {
        NewMfaVerification::Totp {
            id: "t".into(),
            vault_ref: "v".into(),
        }
    }

    fn codes() -> NewMfaVerification {
        NewMfaVerification::BackupCode {
            id: "b".into(),
            code_hashes: vec!["h1".into(), "h2".into()],
        }
    }

    #[test]
    fn backup_codes_need_a_totp_beside_them_and_totp_is_single() {
        let mut held = MfaVerifications::default();
        assert_eq!(
            held.check_add(&codes()),
            Err(MfaError::BackupCodeCannotBeAlone)
        );
        held.added(&totp());
        assert_eq!(held.check_add(&totp()), Err(MfaError::TotpAlreadyInUse));
        assert_eq!(held.check_add(&codes()), Ok(()));
        held.added(&codes());
        assert_eq!(
            held.check_add(&codes()),
            Err(MfaError::BackupCodeAlreadyInUse)
        );
    }

    #[test]
    fn codes_and_steps_are_single_use() {
        let mut held = MfaVerifications::default();
        held.added(&totp());
        held.added(&codes());
        assert_eq!(held.check_totp("t", 10), Ok(()));
        held.totp_used("t", 10);
        assert_eq!(held.check_totp("t", 10), Err(MfaError::TotpCodeReused));
        assert_eq!(held.check_totp("t", 9), Err(MfaError::TotpCodeReused));
        assert_eq!(held.check_totp("t", 11), Ok(()));
        assert_eq!(held.check_backup_code("b", "h1"), Ok(()));
        held.backup_code_used("b", "h1");
        assert_eq!(
            held.check_backup_code("b", "h1"),
            Err(MfaError::BackupCodeInvalid)
        );
        held.backup_code_used("b", "h2");
        // All used: a new set may be added.
        assert_eq!(held.check_add(&codes()), Ok(()));
        assert_eq!(held.check_delete("t"), Ok(Some("v".into())));
        assert_eq!(held.check_delete("x"), Err(MfaError::NotFound("x".into())));
    }
}
