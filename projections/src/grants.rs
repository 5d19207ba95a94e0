//! Grants and the state of every token issued under them (by keyed hash): what the token,
//! userinfo, introspection and revocation endpoints look up.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::grant::{GrantEvent, HashedToken, Issued};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rows::{Rows, StreamFold, document, documents, fold_streams, single};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub scopes: Value,
    pub resources: Value,
    pub auth_time: i64,
    /// The authorization request's nonce, echoed in the ID token the code is exchanged for.
    pub nonce: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
}

/// `kind` is `code`, `access` or `refresh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRow {
    pub hash: String,
    pub kind: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scopes: Value,
    pub resource: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    pub revoked: bool,
}

static GRANTS: Rows<GrantRow> = Rows::new("grants", "id");
static TOKENS: Rows<TokenRow> = Rows::new("oidc_tokens", "grant_id");

#[derive(Default)]
pub struct State {
    grant: Option<GrantRow>,
    tokens: Vec<TokenRow>,
}

impl State {
    fn token(
        &self,
        kind: &str,
        hashed: &HashedToken,
        scopes: &[String],
        resource: Option<String>,
        at: i64,
    ) -> Option<TokenRow> {
        let grant = self.grant.as_ref()?;
        Some(TokenRow {
            hash: hashed.hash.clone(),
            kind: kind.to_owned(),
            grant_id: grant.id.clone(),
            client_id: grant.client_id.clone(),
            user_id: grant.user_id.clone(),
            scopes: json!(scopes),
            resource,
            created_at: at,
            expires_at: hashed.expires_at,
            consumed_at: None,
            revoked: false,
        })
    }

    fn record_issue(&mut self, issued: Issued, at: i64) {
        if let Some(access) = &issued.opaque_access_token
            && let Some(row) = self.token(
                "access",
                access,
                &issued.scopes,
                issued.resource.clone(),
                at,
            )
        {
            self.tokens.push(row);
        }
        if let Some(refresh) = &issued.refresh_token {
            // The grant's scopes, not this exchange's: a refresh may later ask for any of them.
            let scopes: Vec<String> = self
                .grant
                .as_ref()
                .and_then(|g| serde_json::from_value(g.scopes.clone()).ok())
                .unwrap_or_default();
            for old in self
                .tokens
                .iter_mut()
                .filter(|t| t.kind == "refresh" && t.consumed_at.is_none())
            {
                old.consumed_at = Some(at);
            }
            if let Some(row) = self.token("refresh", refresh, &scopes, None, at) {
                self.tokens.push(row);
            }
        }
    }
}

/// The grant and its tokens after one event. Pure.
fn fold(state: &mut State, event: &RecordedEvent, decoded: GrantEvent) {
    let at = event.occurred_at_ms();
    if let Some(grant) = &mut state.grant {
        grant.updated_at = at;
    }
    match decoded {
        GrantEvent::CodeIssued {
            authorization,
            code,
        } => {
            state.grant = Some(GrantRow {
                id: event.stream_id.clone(),
                client_id: authorization.client_id,
                user_id: authorization.user_id,
                session_id: authorization.session_id,
                scopes: json!(authorization.scopes),
                resources: json!(authorization.resources),
                auth_time: authorization.auth_time,
                nonce: code.nonce.clone(),
                created_at: at,
                updated_at: at,
                revoked_at: None,
                revoke_reason: None,
            });
            let scopes: Vec<String> = state
                .grant
                .as_ref()
                .and_then(|g| serde_json::from_value(g.scopes.clone()).ok())
                .unwrap_or_default();
            let hashed = HashedToken {
                hash: code.hash,
                expires_at: code.expires_at,
            };
            if let Some(row) = state.token("code", &hashed, &scopes, None, at) {
                state.tokens.push(row);
            }
        }
        GrantEvent::CodeRedeemed {
            code_hash,
            issued,
            at: redeemed_at,
        } => {
            for code in state.tokens.iter_mut().filter(|t| t.hash == code_hash) {
                code.consumed_at = Some(redeemed_at);
            }
            state.record_issue(issued, at);
        }
        GrantEvent::Refreshed { issued, .. } => state.record_issue(issued, at),
        GrantEvent::Exchanged {
            authorization,
            issued,
            at: exchanged_at,
        } => {
            // No sign-in, hence no session: the exchange itself is the authentication.
            state.grant = Some(GrantRow {
                id: event.stream_id.clone(),
                client_id: authorization.client_id,
                user_id: authorization.user_id,
                session_id: authorization.session_id,
                scopes: json!(authorization.scopes),
                resources: json!(authorization.resources),
                auth_time: exchanged_at,
                nonce: None,
                created_at: at,
                updated_at: at,
                revoked_at: None,
                revoke_reason: None,
            });
            state.record_issue(issued, at);
        }
        GrantEvent::CodeReused { .. } | GrantEvent::RefreshReused { .. } => {}
        GrantEvent::Revoked { reason } => {
            if let Some(grant) = &mut state.grant {
                grant.revoked_at = Some(at);
                grant.revoke_reason = Some(reason);
            }
            for token in &mut state.tokens {
                token.revoked = true;
            }
        }
    }
}

pub struct Grants;

#[async_trait]
impl StreamFold for Grants {
    type Event = GrantEvent;
    type State = State;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "grant")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, State>, ProjectionError> {
        let mut grants = single(GRANTS.load(db, streams).await?);
        let mut tokens = TOKENS.load(db, streams).await?;
        Ok(streams
            .iter()
            .map(|id| {
                let state = State {
                    grant: grants.remove(id),
                    tokens: tokens.remove(id).unwrap_or_default(),
                };
                (id.clone(), state)
            })
            .collect())
    }

    fn fold(state: &mut State, event: &RecordedEvent, decoded: GrantEvent) {
        fold(state, event, decoded);
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, State>,
    ) -> Result<(), ProjectionError> {
        let (mut grants, mut tokens) = (Vec::new(), Vec::new());
        for state in states.into_values() {
            grants.extend(state.grant);
            tokens.extend(state.tokens);
        }
        GRANTS.store(db, streams, &grants).await?;
        TOKENS.store(db, streams, &tokens).await
    }
}

#[async_trait]
impl Projection for Grants {
    fn name(&self) -> &'static str {
        "grants"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["grants", "oidc_tokens"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

pub async fn token(
    db: &impl GenericClient,
    hash: &str,
) -> Result<Option<TokenRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(t) FROM oidc_tokens t WHERE hash = $1",
        &[&hash],
    )
    .await
}

/// A token and the user it was issued to.
#[derive(Debug, Clone, Deserialize)]
pub struct HeldToken {
    pub token: TokenRow,
    /// `None` once the user is deleted.
    pub user: Option<crate::users::UserRow>,
}

/// The token whose hash is `first` or `second` (each hash domain gives a token a different
/// hash, and the caller may not know which kind it was shown; pass one twice for one kind) and
/// its user, in one round trip: userinfo and introspection need both on every request. Two
/// primary-key equalities, not `= ANY($1)` with `LIMIT`: the generic plan of that guesses ten
/// matches and prefers a sequential scan stopping at the first.
pub async fn held_token(
    db: &impl GenericClient,
    first: &str,
    second: &str,
) -> Result<Option<HeldToken>, ProjectionError> {
    document(
        db,
        "SELECT jsonb_build_object('token', to_jsonb(t), 'user', to_jsonb(u)) \
         FROM oidc_tokens t LEFT JOIN users u ON u.id = t.user_id \
         WHERE t.hash = $1 OR t.hash = $2",
        &[&first, &second],
    )
    .await
}

pub async fn by_id(db: &impl GenericClient, id: &str) -> Result<Option<GrantRow>, ProjectionError> {
    document(db, "SELECT to_jsonb(g) FROM grants g WHERE id = $1", &[&id]).await
}

/// A user's grants not revoked, newest first.
pub async fn active_of_user(
    db: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<GrantRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(g) FROM grants g WHERE user_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC, id",
        &[&user_id],
    )
    .await
}

/// Grants issued from one browser session, not revoked.
pub async fn active_of_session(
    db: &impl GenericClient,
    session_id: &str,
) -> Result<Vec<GrantRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(g) FROM grants g WHERE session_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at, id",
        &[&session_id],
    )
    .await
}
