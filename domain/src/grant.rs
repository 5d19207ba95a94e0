//! A grant: one user's authorization of one client from one sign-in, and the life of the tokens
//! issued under it (authorization code, opaque access tokens, rotating refresh tokens). Tokens
//! appear only as keyed hashes. Single use is a matter of the stream: two redemptions of one
//! code race on the same stream, and the loser finds the code already redeemed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, Event};

/// A consumed refresh token presented again within this many milliseconds of its rotation is a
/// network retry, refused without punishment; later it is theft and revokes the grant.
pub const REFRESH_REUSE_LEEWAY_MS: i64 = 3_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub auth_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Code {
    pub hash: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashedToken {
    pub hash: String,
    pub expires_at: i64,
}

/// What one exchange issues. The access token is either opaque (then its hash is kept for
/// userinfo and introspection) or a JWT for a resource (only its id is kept, for audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    pub access_token_id: String,
    pub opaque_access_token: Option<HashedToken>,
    pub access_expires_at: i64,
    /// A new refresh token; `None` keeps the current one (no rotation) or issues none.
    pub refresh_token: Option<HashedToken>,
    pub id_token: bool,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GrantCommand {
    IssueCode {
        authorization: Authorization,
        code: Code,
    },
    RedeemCode {
        code_hash: String,
        client_id: String,
        redirect_uri: String,
        /// S256 of the presented `code_verifier`, computed at the edge.
        verifier_challenge: Option<String>,
        now: i64,
        issued: Issued,
    },
    Refresh {
        refresh_hash: String,
        client_id: String,
        now: i64,
        issued: Issued,
    },
    Revoke {
        reason: String,
    },
    /// Token exchange (RFC 8693): an opaque access token issued at once, without a code or a
    /// sign-in; the grant exists so the token can be looked up, introspected and revoked.
    Exchange {
        authorization: Authorization,
        issued: Issued,
        now: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GrantEvent {
    #[serde(rename = "grant.code_issued")]
    CodeIssued {
        authorization: Authorization,
        code: Code,
    },
    /// `at` is when the exchange happened: the fold needs it to judge later reuse.
    #[serde(rename = "grant.code_redeemed")]
    #[serde(rename_all = "camelCase")]
    CodeRedeemed {
        code_hash: String,
        issued: Issued,
        at: i64,
    },
    /// The code was presented a second time: everything it issued is revoked with the grant.
    #[serde(rename = "grant.code_reused")]
    #[serde(rename_all = "camelCase")]
    CodeReused { code_hash: String },
    #[serde(rename = "grant.refreshed")]
    #[serde(rename_all = "camelCase")]
    Refreshed {
        refresh_hash: String,
        issued: Issued,
        at: i64,
    },
    #[serde(rename = "grant.refresh_reused")]
    #[serde(rename_all = "camelCase")]
    RefreshReused { refresh_hash: String },
    #[serde(rename = "grant.revoked")]
    Revoked { reason: String },
    #[serde(rename = "grant.exchanged")]
    Exchanged {
        authorization: Authorization,
        issued: Issued,
        at: i64,
    },
}

impl cqrs_es::DomainEvent for GrantEvent {
    fn event_type(&self) -> String {
        match self {
            GrantEvent::CodeIssued { .. } => "grant.code_issued",
            GrantEvent::CodeRedeemed { .. } => "grant.code_redeemed",
            GrantEvent::CodeReused { .. } => "grant.code_reused",
            GrantEvent::Refreshed { .. } => "grant.refreshed",
            GrantEvent::RefreshReused { .. } => "grant.refresh_reused",
            GrantEvent::Revoked { .. } => "grant.revoked",
            GrantEvent::Exchanged { .. } => "grant.exchanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            GrantEvent::CodeIssued { .. }
            | GrantEvent::CodeRedeemed { .. }
            | GrantEvent::CodeReused { .. }
            | GrantEvent::Refreshed { .. }
            | GrantEvent::RefreshReused { .. }
            | GrantEvent::Revoked { .. }
            | GrantEvent::Exchanged { .. } => "1",
        }
        .to_owned()
    }
}

impl Event for GrantEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant request is invalid")]
    NotFound,
    #[error("the grant has been revoked")]
    Revoked,
    #[error("authorization code is invalid")]
    CodeMismatch,
    #[error("authorization code has expired")]
    CodeExpired,
    #[error("the code was issued to another client")]
    ClientMismatch,
    #[error("redirect_uri does not match the authorization request")]
    RedirectMismatch,
    #[error("PKCE verification failed")]
    PkceFailed,
    #[error("refresh token is invalid")]
    RefreshUnknown,
    #[error("refresh token has expired")]
    RefreshExpired,
    #[error("refresh token was just rotated; use the new one")]
    RefreshJustRotated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub authorization: Authorization,
    /// `None` for a grant made by token exchange, which no code can redeem.
    pub code: Option<Code>,
    pub code_redeemed: bool,
    pub refresh: Option<HashedToken>,
    /// Rotated-out refresh token hashes and when they were consumed.
    pub consumed_refreshes: BTreeMap<String, i64>,
    pub revoked: bool,
    /// Time of the last exchange, the moment a rotation consumed the previous refresh token.
    pub last_exchange: i64,
}

#[derive(Debug, Clone, Default)]
pub enum Grant {
    #[default]
    New,
    Live(Box<Live>),
}

impl Live {
    fn decide(&self, command: GrantCommand) -> Result<Vec<GrantEvent>, GrantError> {
        match command {
            GrantCommand::IssueCode { .. } | GrantCommand::Exchange { .. } => {
                Err(GrantError::NotFound)
            }
            GrantCommand::Revoke { .. } if self.revoked => Ok(Vec::new()),
            GrantCommand::Revoke { reason } => Ok(vec![GrantEvent::Revoked { reason }]),
            _ if self.revoked => Err(GrantError::Revoked),
            GrantCommand::RedeemCode {
                code_hash,
                client_id,
                redirect_uri,
                verifier_challenge,
                now,
                issued,
            } => {
                let Some(code) = self.code.as_ref().filter(|code| code.hash == code_hash) else {
                    return Err(GrantError::CodeMismatch);
                };
                if client_id != self.authorization.client_id {
                    return Err(GrantError::ClientMismatch);
                }
                if self.code_redeemed {
                    return Ok(vec![
                        GrantEvent::CodeReused { code_hash },
                        GrantEvent::Revoked {
                            reason: "authorization code reused".into(),
                        },
                    ]);
                }
                if now >= code.expires_at {
                    return Err(GrantError::CodeExpired);
                }
                if redirect_uri != code.redirect_uri {
                    return Err(GrantError::RedirectMismatch);
                }
                match (&code.code_challenge, &verifier_challenge) {
                    (Some(expected), Some(presented)) if expected == presented => {}
                    (None, None) => {}
                    (Some(_), _) | (None, Some(_)) => return Err(GrantError::PkceFailed),
                }
                Ok(vec![GrantEvent::CodeRedeemed {
                    code_hash,
                    issued,
                    at: now,
                }])
            }
            GrantCommand::Refresh {
                refresh_hash,
                client_id,
                now,
                issued,
            } => {
                if client_id != self.authorization.client_id {
                    return Err(GrantError::ClientMismatch);
                }
                match &self.refresh {
                    Some(current) if current.hash == refresh_hash => {
                        if now >= current.expires_at {
                            return Err(GrantError::RefreshExpired);
                        }
                        Ok(vec![GrantEvent::Refreshed {
                            refresh_hash,
                            issued,
                            at: now,
                        }])
                    }
                    _ => match self.consumed_refreshes.get(&refresh_hash) {
                        Some(consumed_at) if now - consumed_at < REFRESH_REUSE_LEEWAY_MS => {
                            Err(GrantError::RefreshJustRotated)
                        }
                        Some(_) => Ok(vec![
                            GrantEvent::RefreshReused { refresh_hash },
                            GrantEvent::Revoked {
                                reason: "refresh token reused".into(),
                            },
                        ]),
                        None => Err(GrantError::RefreshUnknown),
                    },
                }
            }
        }
    }

    fn issue(&mut self, issued: &Issued, at: i64) {
        if let Some(new_refresh) = &issued.refresh_token
            && let Some(old) = self.refresh.replace(new_refresh.clone())
        {
            self.consumed_refreshes.insert(old.hash, at);
        }
        self.last_exchange = at;
    }
}

impl Aggregate for Grant {
    const TYPE: &'static str = "grant";
    type Command = GrantCommand;
    type Event = GrantEvent;
    type Error = GrantError;

    fn decide(&self, command: GrantCommand) -> Result<Vec<GrantEvent>, GrantError> {
        match (self, command) {
            (
                Grant::New,
                GrantCommand::IssueCode {
                    authorization,
                    code,
                },
            ) => Ok(vec![GrantEvent::CodeIssued {
                authorization,
                code,
            }]),
            (
                Grant::New,
                GrantCommand::Exchange {
                    authorization,
                    issued,
                    now,
                },
            ) => Ok(vec![GrantEvent::Exchanged {
                authorization,
                issued,
                at: now,
            }]),
            (Grant::New, _) => Err(GrantError::NotFound),
            (Grant::Live(live), command) => live.decide(command),
        }
    }

    fn apply(&mut self, event: &GrantEvent) {
        match (&mut *self, event) {
            (
                Grant::New,
                GrantEvent::CodeIssued {
                    authorization,
                    code,
                },
            ) => {
                *self = Grant::Live(Box::new(Live {
                    authorization: authorization.clone(),
                    code: Some(code.clone()),
                    code_redeemed: false,
                    refresh: None,
                    consumed_refreshes: BTreeMap::new(),
                    revoked: false,
                    last_exchange: 0,
                }));
            }
            (
                Grant::New,
                GrantEvent::Exchanged {
                    authorization,
                    issued,
                    at,
                },
            ) => {
                let mut live = Live {
                    authorization: authorization.clone(),
                    code: None,
                    code_redeemed: false,
                    refresh: None,
                    consumed_refreshes: BTreeMap::new(),
                    revoked: false,
                    last_exchange: 0,
                };
                live.issue(issued, *at);
                *self = Grant::Live(Box::new(live));
            }
            (Grant::Live(live), GrantEvent::CodeRedeemed { issued, at, .. }) => {
                live.code_redeemed = true;
                live.issue(issued, *at);
            }
            (Grant::Live(live), GrantEvent::Refreshed { issued, at, .. }) => {
                live.issue(issued, *at);
            }
            (Grant::Live(live), GrantEvent::Revoked { .. }) => live.revoked = true,
            (Grant::Live(_), GrantEvent::CodeIssued { .. })
            | (Grant::Live(_), GrantEvent::Exchanged { .. })
            | (Grant::Live(_), GrantEvent::CodeReused { .. })
            | (Grant::Live(_), GrantEvent::RefreshReused { .. })
            | (Grant::New, _) => {}
        }
    }

    /// A grant is its user's.
    fn data_subject(&self, _stream_id: &str, events: &[GrantEvent]) -> Option<String> {
        match self {
            Grant::Live(live) => Some(live.authorization.user_id.clone()),
            Grant::New => events.iter().find_map(|event| match event {
                GrantEvent::CodeIssued { authorization, .. }
                | GrantEvent::Exchanged { authorization, .. } => {
                    Some(authorization.user_id.clone())
                }
                GrantEvent::CodeRedeemed { .. }
                | GrantEvent::CodeReused { .. }
                | GrantEvent::Refreshed { .. }
                | GrantEvent::RefreshReused { .. }
                | GrantEvent::Revoked { .. } => None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Given;

    fn issued_code() -> GrantEvent {
        GrantEvent::CodeIssued {
            authorization: Authorization {
                client_id: "app".into(),
                user_id: "u1".into(),
                session_id: "s1".into(),
                scopes: vec!["openid".into(), "offline_access".into()],
                resources: vec![],
                auth_time: 0,
            },
            code: Code {
                hash: "code".into(),
                redirect_uri: "https://app.example/cb".into(),
                code_challenge: Some("challenge".into()),
                nonce: None,
                expires_at: 60_000,
            },
        }
    }

    fn tokens(refresh: &str) -> Issued {
        Issued {
            access_token_id: "jti".into(),
            opaque_access_token: None,
            access_expires_at: 3_600_000,
            refresh_token: Some(HashedToken {
                hash: refresh.into(),
                expires_at: 1_000_000_000,
            }),
            id_token: true,
            scopes: vec!["openid".into()],
            resource: None,
        }
    }

    fn redeem(now: i64, challenge: Option<&str>) -> GrantCommand {
        GrantCommand::RedeemCode {
            code_hash: "code".into(),
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            verifier_challenge: challenge.map(str::to_owned),
            now,
            issued: tokens("r1"),
        }
    }

    fn redeemed() -> GrantEvent {
        GrantEvent::CodeRedeemed {
            code_hash: "code".into(),
            issued: tokens("r1"),
            at: 1_000,
        }
    }

    fn refresh(hash: &str, now: i64) -> GrantCommand {
        GrantCommand::Refresh {
            refresh_hash: hash.into(),
            client_id: "app".into(),
            now,
            issued: tokens("r2"),
        }
    }

    #[test]
    fn a_code_redeems_once_with_the_right_verifier() {
        Given::<Grant>::with(())
            .given(vec![issued_code()])
            .when(redeem(1_000, Some("wrong")))
            .then_expect_error(GrantError::PkceFailed);
        Given::<Grant>::with(())
            .given(vec![issued_code()])
            .when(redeem(1_000, None))
            .then_expect_error(GrantError::PkceFailed);
        Given::<Grant>::with(())
            .given(vec![issued_code()])
            .when(redeem(60_000, Some("challenge")))
            .then_expect_error(GrantError::CodeExpired);
        Given::<Grant>::with(())
            .given(vec![issued_code()])
            .when(redeem(1_000, Some("challenge")))
            .then_expect_events(vec![redeemed()]);
    }

    #[test]
    fn a_reused_code_revokes_the_grant() {
        Given::<Grant>::with(())
            .given(vec![issued_code(), redeemed()])
            .when(redeem(2_000, Some("challenge")))
            .then_expect_events(vec![
                GrantEvent::CodeReused {
                    code_hash: "code".into(),
                },
                GrantEvent::Revoked {
                    reason: "authorization code reused".into(),
                },
            ]);
        Given::<Grant>::with(())
            .given(vec![
                issued_code(),
                redeemed(),
                GrantEvent::Revoked { reason: "x".into() },
            ])
            .when(refresh("r1", 2_000))
            .then_expect_error(GrantError::Revoked);
    }

    #[test]
    fn refresh_rotation_tolerates_a_quick_retry_but_punishes_late_reuse() {
        let rotated = GrantEvent::Refreshed {
            refresh_hash: "r1".into(),
            issued: tokens("r2"),
            at: 10_000,
        };
        Given::<Grant>::with(())
            .given(vec![issued_code(), redeemed()])
            .when(refresh("r1", 10_000))
            .then_expect_events(vec![rotated.clone()]);
        Given::<Grant>::with(())
            .given(vec![issued_code(), redeemed(), rotated.clone()])
            .when(refresh("r1", 10_000 + REFRESH_REUSE_LEEWAY_MS - 1))
            .then_expect_error(GrantError::RefreshJustRotated);
        Given::<Grant>::with(())
            .given(vec![issued_code(), redeemed(), rotated])
            .when(refresh("r1", 10_000 + REFRESH_REUSE_LEEWAY_MS))
            .then_expect_events(vec![
                GrantEvent::RefreshReused {
                    refresh_hash: "r1".into(),
                },
                GrantEvent::Revoked {
                    reason: "refresh token reused".into(),
                },
            ]);
        Given::<Grant>::with(())
            .given(vec![issued_code(), redeemed()])
            .when(refresh("nope", 10_000))
            .then_expect_error(GrantError::RefreshUnknown);
    }

    #[test]
    fn revoking_twice_records_once() {
        Given::<Grant>::with(())
            .given(vec![
                issued_code(),
                GrantEvent::Revoked {
                    reason: "logout".into(),
                },
            ])
            .when(GrantCommand::Revoke {
                reason: "again".into(),
            })
            .then_expect_events(vec![]);
    }

    fn exchanged() -> GrantEvent {
        let GrantEvent::CodeIssued { authorization, .. } = issued_code() else {
            unreachable!("issued_code issues a code")
        };
        GrantEvent::Exchanged {
            authorization,
            issued: tokens("r1"),
            at: 5,
        }
    }

    #[test]
    fn a_grant_made_by_token_exchange_has_no_code_to_redeem_and_is_made_once() {
        let GrantEvent::Exchanged {
            authorization,
            issued,
            at,
        } = exchanged()
        else {
            unreachable!("exchanged is an exchange")
        };
        Given::<Grant>::with(())
            .given_no_previous_events()
            .when(GrantCommand::Exchange {
                authorization,
                issued,
                now: at,
            })
            .then_expect_events(vec![exchanged()]);
        Given::<Grant>::with(())
            .given(vec![exchanged()])
            .when(redeem(10, Some("challenge")))
            .then_expect_error(GrantError::CodeMismatch);
        Given::<Grant>::with(())
            .given(vec![exchanged()])
            .when(GrantCommand::Revoke {
                reason: "user suspended".into(),
            })
            .then_expect_events(vec![GrantEvent::Revoked {
                reason: "user suspended".into(),
            }]);
        assert_eq!(
            Grant::default().data_subject("g", &[exchanged()]),
            Some("u1".into())
        );
    }
}
