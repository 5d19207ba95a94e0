//! The Management API cannot be used to lock the Management API out: the seeded
//! "Logto Management API access" role and its `all` scope stay (Logto likewise refuses to delete
//! its Management API resource), and a machine-to-machine caller cannot delete itself, withdraw
//! that role from itself or delete its own last secret (as `user.cannot_delete_self` keeps a user
//! from deleting themselves). Otherwise one request — a mistaken script, a generated test case —
//! leaves the bootstrap app, often the only administrator, unable to get another token.

use axum::http::StatusCode;
use domain::Actor;
use domain::resource::{MANAGEMENT_API_ROLE_ID, MANAGEMENT_API_SCOPE_ID};

use crate::http::error::ApiError;

/// A change that can take Management API access away.
pub enum AccessChange<'a> {
    DeleteApplication {
        id: &'a str,
    },
    WithdrawRole {
        application_id: &'a str,
        role_id: &'a str,
    },
    /// The application's roles become exactly `role_ids`.
    ReplaceRoles {
        application_id: &'a str,
        role_ids: &'a [String],
    },
    /// `others` unexpired secrets of the application would remain.
    DeleteSecret {
        application_id: &'a str,
        others: usize,
    },
    DeleteRole {
        id: &'a str,
    },
    RemoveScope {
        role_id: &'a str,
        scope_id: &'a str,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lockout {
    #[error("The Management API access role and its `all` scope cannot be removed.")]
    ManagementRole,
    #[error("An application cannot delete itself through its own token.")]
    DeleteSelf,
    #[error("An application cannot withdraw its own Management API access.")]
    WithdrawOwnAccess,
    #[error("An application cannot delete its own last secret.")]
    LastOwnSecret,
}

/// Refuses `change` when it would lock the Management API out, as seen from `caller`.
pub fn check(caller: &Actor, change: &AccessChange<'_>) -> Result<(), Lockout> {
    let is_caller = |id: &str| matches!(caller, Actor::App(app) if app == id);
    match *change {
        AccessChange::DeleteRole { id } if id == MANAGEMENT_API_ROLE_ID => {
            Err(Lockout::ManagementRole)
        }
        AccessChange::RemoveScope { role_id, scope_id }
            if role_id == MANAGEMENT_API_ROLE_ID && scope_id == MANAGEMENT_API_SCOPE_ID =>
        {
            Err(Lockout::ManagementRole)
        }
        AccessChange::DeleteApplication { id } if is_caller(id) => Err(Lockout::DeleteSelf),
        AccessChange::WithdrawRole {
            application_id,
            role_id,
        } if is_caller(application_id) && role_id == MANAGEMENT_API_ROLE_ID => {
            Err(Lockout::WithdrawOwnAccess)
        }
        AccessChange::ReplaceRoles {
            application_id,
            role_ids,
        } if is_caller(application_id) && !role_ids.iter().any(|r| r == MANAGEMENT_API_ROLE_ID) => {
            Err(Lockout::WithdrawOwnAccess)
        }
        AccessChange::DeleteSecret {
            application_id,
            others: 0,
        } if is_caller(application_id) => Err(Lockout::LastOwnSecret),
        _ => Ok(()),
    }
}

impl From<Lockout> for ApiError {
    fn from(lockout: Lockout) -> ApiError {
        let code = match lockout {
            Lockout::ManagementRole => "role.management_api_access_protected",
            Lockout::DeleteSelf => "application.cannot_delete_self",
            Lockout::WithdrawOwnAccess => "application.cannot_withdraw_own_management_access",
            Lockout::LastOwnSecret => "application.cannot_delete_own_last_secret",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, lockout.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str) -> Actor {
        Actor::App(id.to_owned())
    }

    #[test]
    fn the_management_role_and_its_scope_stay_whoever_asks() {
        for caller in [app("a"), Actor::Admin("u".to_owned())] {
            let role = AccessChange::DeleteRole {
                id: MANAGEMENT_API_ROLE_ID,
            };
            assert_eq!(check(&caller, &role), Err(Lockout::ManagementRole));
            let scope = AccessChange::RemoveScope {
                role_id: MANAGEMENT_API_ROLE_ID,
                scope_id: MANAGEMENT_API_SCOPE_ID,
            };
            assert_eq!(check(&caller, &scope), Err(Lockout::ManagementRole));
        }
        let other_role = AccessChange::DeleteRole { id: "r1" };
        assert_eq!(check(&app("a"), &other_role), Ok(()));
        let other_scope = AccessChange::RemoveScope {
            role_id: MANAGEMENT_API_ROLE_ID,
            scope_id: "s1",
        };
        assert_eq!(check(&app("a"), &other_scope), Ok(()));
    }

    #[test]
    fn an_app_cannot_take_its_own_access_away() {
        let caller = app("a");
        let refused = [
            (
                AccessChange::DeleteApplication { id: "a" },
                Lockout::DeleteSelf,
            ),
            (
                AccessChange::WithdrawRole {
                    application_id: "a",
                    role_id: MANAGEMENT_API_ROLE_ID,
                },
                Lockout::WithdrawOwnAccess,
            ),
            (
                AccessChange::ReplaceRoles {
                    application_id: "a",
                    role_ids: &["r1".to_owned()],
                },
                Lockout::WithdrawOwnAccess,
            ),
            (
                AccessChange::DeleteSecret {
                    application_id: "a",
                    others: 0,
                },
                Lockout::LastOwnSecret,
            ),
        ];
        for (change, lockout) in refused {
            assert_eq!(check(&caller, &change), Err(lockout));
        }
    }

    #[test]
    fn others_and_harmless_changes_pass() {
        let kept = [MANAGEMENT_API_ROLE_ID.to_owned(), "r1".to_owned()];
        let allowed = [
            AccessChange::DeleteApplication { id: "b" },
            AccessChange::WithdrawRole {
                application_id: "a",
                role_id: "r1",
            },
            AccessChange::WithdrawRole {
                application_id: "b",
                role_id: MANAGEMENT_API_ROLE_ID,
            },
            AccessChange::ReplaceRoles {
                application_id: "a",
                role_ids: &kept,
            },
            AccessChange::ReplaceRoles {
                application_id: "b",
                role_ids: &[],
            },
            AccessChange::DeleteSecret {
                application_id: "a",
                others: 1,
            },
            AccessChange::DeleteSecret {
                application_id: "b",
                others: 0,
            },
        ];
        for change in &allowed {
            assert_eq!(check(&app("a"), change), Ok(()));
        }
        // An administrator's user token is not an application's own access.
        let admin = Actor::Admin("a".to_owned());
        assert_eq!(
            check(&admin, &AccessChange::DeleteApplication { id: "a" }),
            Ok(())
        );
    }
}
