//! The grants that issue tokens about a user: `authorization_code` and `refresh_token`. The
//! grant stream decides (single-use codes, rotation with reuse detection); this module mints
//! the tokens and answers in RFC 6749's shape.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::grant::{Grant, GrantCommand, GrantError, GrantEvent, HashedToken, Issued};
use domain::{Actor, Rejection};
use projections::grants::{self, GrantRow};
use serde_json::{Map, Value, json};

use super::authorize::{CODE_HASH_KIND, KNOWN_SCOPES};
use super::claims::{self, Audience, Subject};
use super::client::Client;
use super::error::OidcError;
use super::params::Params;
use super::token::AccessClaims;
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::store::StoreError;

pub const ACCESS_HASH_KIND: &str = "access_token";
pub const REFRESH_HASH_KIND: &str = "refresh_token";
pub(super) const OPAQUE_ACCESS_TTL_S: i64 = 3_600;
const DEFAULT_ID_TOKEN_TTL_S: i64 = 3_600;
const DEFAULT_REFRESH_TTL_DAYS: i64 = 14;

fn invalid_grant(description: impl Into<String>) -> OidcError {
    OidcError::new("invalid_grant", description)
}

pub(super) fn random_token() -> Result<String, OidcError> {
    let a = ids::secret().map_err(|_| OidcError::server_error())?;
    let b = ids::secret().map_err(|_| OidcError::server_error())?;
    Ok(format!("{a}{b}"))
}

/// PKCE S256 (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// `at_hash` for ES384: the left half of the token's SHA-384, base64url.
fn at_hash(access_token: &str) -> String {
    let full = digest::digest(&digest::SHA384, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&full.as_ref()[..24])
}

fn scopes_of(grant: &GrantRow) -> Vec<String> {
    serde_json::from_value(grant.scopes.clone()).unwrap_or_default()
}

fn resources_of(grant: &GrantRow) -> Vec<String> {
    serde_json::from_value(grant.resources.clone()).unwrap_or_default()
}

/// Tokens ready to hand out, and their record for the grant stream.
struct Minted {
    body: Map<String, Value>,
    issued: Issued,
}

struct MintRequest<'a> {
    grant: &'a GrantRow,
    subject: &'a Subject,
    client: &'a Client,
    /// The `resource` asked for at the token endpoint, if any: then the access token is a JWT
    /// for it, otherwise an opaque token for userinfo.
    resource: Option<String>,
    nonce: Option<String>,
}

async fn mint(
    state: &AppState,
    context: &RequestContext,
    request: MintRequest<'_>,
) -> Result<Minted, OidcError> {
    let now_s = context.now.unix_timestamp();
    let now_ms = context.now_ms();
    let granted = scopes_of(request.grant);
    let oidc_scopes: Vec<String> = granted
        .iter()
        .filter(|s| KNOWN_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect();
    let keys = state.keys.current().await?;
    let keyring = state.store.keyring();
    let token_id = ids::standard_id().map_err(|_| OidcError::server_error())?;
    let mut body = Map::new();
    let (access_token, access_scope, expires_in, opaque) = match &request.resource {
        Some(indicator) => {
            let db = state.store.pool().get().await.map_err(ApiError::from)?;
            let resource = projections::resources::by_indicator(&db, indicator)
                .await?
                .ok_or_else(|| {
                    OidcError::new(
                        "invalid_target",
                        "resource indicator is missing, or unknown",
                    )
                })?;
            let allowed =
                projections::users::granted_scopes(&db, &request.subject.user.id, &resource.id)
                    .await?;
            let scope: Vec<&str> = granted
                .iter()
                .filter(|s| allowed.contains(s))
                .map(String::as_str)
                .collect();
            let scope = scope.join(" ");
            let token = AccessClaims {
                jti: &token_id,
                sub: &request.subject.user.id,
                iat: now_s,
                exp: now_s + resource.access_token_ttl,
                scope: &scope,
                client_id: &request.client.application.id,
                iss: &state.issuer,
                aud: indicator,
            }
            .sign(&keys)?;
            (token, scope, resource.access_token_ttl, None)
        }
        None => {
            let token = random_token()?;
            let hashed = HashedToken {
                hash: keyring.lookup_hash(ACCESS_HASH_KIND, &token),
                expires_at: now_ms + OPAQUE_ACCESS_TTL_S * 1000,
            };
            (
                token,
                oidc_scopes.join(" "),
                OPAQUE_ACCESS_TTL_S,
                Some(hashed),
            )
        }
    };
    let custom = &request.client.application.custom_client_metadata;
    let refresh_token = if granted.iter().any(|s| s == "offline_access") {
        let days = custom["refreshTokenTtlInDays"]
            .as_i64()
            .unwrap_or(DEFAULT_REFRESH_TTL_DAYS);
        let token = random_token()?;
        body.insert("refresh_token".into(), json!(token));
        Some(HashedToken {
            hash: keyring.lookup_hash(REFRESH_HASH_KIND, &token),
            expires_at: now_ms + days * 86_400_000,
        })
    } else {
        None
    };
    let wants_id_token = oidc_scopes.iter().any(|s| s == "openid");
    if wants_id_token {
        let ttl = custom["idTokenTtl"]
            .as_i64()
            .unwrap_or(DEFAULT_ID_TOKEN_TTL_S);
        let db = state.store.pool().get().await.map_err(ApiError::from)?;
        let enabled = claims::id_token_claims(&db).await?;
        let mut id_claims =
            claims::claims(request.subject, &oidc_scopes, Audience::IdToken(&enabled));
        id_claims.insert("iss".into(), json!(state.issuer));
        id_claims.insert("aud".into(), json!(request.client.application.id));
        id_claims.insert("iat".into(), json!(now_s));
        id_claims.insert("exp".into(), json!(now_s + ttl));
        id_claims.insert("auth_time".into(), json!(request.grant.auth_time / 1000));
        id_claims.insert("sid".into(), json!(request.grant.session_id));
        id_claims.insert("at_hash".into(), json!(at_hash(&access_token)));
        if let Some(nonce) = &request.nonce {
            id_claims.insert("nonce".into(), json!(nonce));
        }
        let id_token = keys
            .sign(&Value::Object(id_claims), "JWT")
            .map_err(|_| OidcError::server_error())?;
        body.insert("id_token".into(), json!(id_token));
    }
    body.insert("access_token".into(), json!(access_token));
    body.insert("expires_in".into(), json!(expires_in));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("scope".into(), json!(access_scope));
    let mut token_types = vec!["AccessToken"];
    if wants_id_token {
        token_types.push("IdToken");
    }
    if refresh_token.is_some() {
        token_types.push("RefreshToken");
    }
    Ok(Minted {
        body,
        issued: Issued {
            access_token_id: token_id,
            opaque_access_token: opaque,
            access_expires_at: (now_s + expires_in) * 1000,
            refresh_token,
            id_token: wants_id_token,
            scopes: access_scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            resource: request.resource,
        },
    })
}

/// The grant, its user (who must still be allowed to sign in) and the token row behind a
/// presented code or refresh token.
async fn find(
    state: &AppState,
    kind: &str,
    hash_kind: &str,
    presented: &str,
) -> Result<(GrantRow, Subject), OidcError> {
    let hash = state.store.keyring().lookup_hash(hash_kind, presented);
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let token = grants::token(&db, &hash)
        .await?
        .filter(|t| t.kind == kind)
        .ok_or_else(|| invalid_grant("grant request is invalid"))?;
    let grant = grants::by_id(&db, &token.grant_id)
        .await?
        .ok_or_else(|| invalid_grant("grant request is invalid"))?;
    let subject = claims::load(&db, &grant.user_id)
        .await?
        .ok_or_else(|| invalid_grant("grant request is invalid"))?;
    if subject.user.is_suspended {
        return Err(invalid_grant("user is suspended"));
    }
    Ok((grant, subject))
}

fn requested_resource(params: &Params, grant: &GrantRow) -> Result<Option<String>, OidcError> {
    let Some(resource) = params.single("resource")? else {
        return Ok(None);
    };
    if !resources_of(grant).iter().any(|r| r == resource) {
        return Err(OidcError::new(
            "invalid_target",
            "resource indicator is missing, or unknown",
        ));
    }
    Ok(Some(resource.to_owned()))
}

fn grant_error(error: StoreError) -> OidcError {
    match error {
        StoreError::Rejected(Rejection::Grant(GrantError::PkceFailed)) => {
            invalid_grant("PKCE verification failed")
        }
        StoreError::Rejected(Rejection::Grant(GrantError::RefreshJustRotated)) => {
            invalid_grant("refresh token was just rotated")
        }
        StoreError::Rejected(Rejection::Grant(_)) => invalid_grant("grant request is invalid"),
        other => other.into(),
    }
}

/// Runs the grant command and turns a detected reuse (recorded, grant revoked) into a refusal.
async fn commit(
    state: &AppState,
    context: &RequestContext,
    grant: &GrantRow,
    command: GrantCommand,
) -> Result<(), OidcError> {
    let committed = state
        .store
        .execute::<Grant>(
            &grant.id,
            command,
            &context.metadata(Actor::App(grant.client_id.clone())),
        )
        .await
        .map_err(grant_error)?;
    let reused = committed.events.iter().any(|event| {
        matches!(
            domain::decode::<GrantEvent>(&event.event_type, &event.payload),
            Ok(GrantEvent::CodeReused { .. } | GrantEvent::RefreshReused { .. })
        )
    });
    if reused {
        return Err(invalid_grant("grant request is invalid"));
    }
    Ok(())
}

pub async fn authorization_code(
    state: &AppState,
    context: &RequestContext,
    params: &Params,
    client: &Client,
) -> Result<Value, OidcError> {
    let code = params
        .single("code")?
        .ok_or_else(|| OidcError::invalid_request("missing required parameter 'code'"))?;
    let redirect_uri = params
        .single("redirect_uri")?
        .ok_or_else(|| OidcError::invalid_request("missing required parameter 'redirect_uri'"))?;
    let verifier = params.single("code_verifier")?;
    let (grant, subject) = find(state, "code", CODE_HASH_KIND, code).await?;
    let resource = requested_resource(params, &grant)?;
    let minted = mint(
        state,
        context,
        MintRequest {
            grant: &grant,
            subject: &subject,
            client,
            resource,
            nonce: grant.nonce.clone(),
        },
    )
    .await?;
    commit(
        state,
        context,
        &grant,
        GrantCommand::RedeemCode {
            code_hash: state.store.keyring().lookup_hash(CODE_HASH_KIND, code),
            client_id: client.application.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            verifier_challenge: verifier.map(s256),
            now: context.now_ms(),
            issued: minted.issued,
        },
    )
    .await?;
    Ok(Value::Object(minted.body))
}

pub async fn refresh_token(
    state: &AppState,
    context: &RequestContext,
    params: &Params,
    client: &Client,
) -> Result<Value, OidcError> {
    let presented = params
        .single("refresh_token")?
        .ok_or_else(|| OidcError::invalid_request("missing required parameter 'refresh_token'"))?;
    let (grant, subject) = find(state, "refresh", REFRESH_HASH_KIND, presented).await?;
    let resource = requested_resource(params, &grant)?;
    let minted = mint(
        state,
        context,
        MintRequest {
            grant: &grant,
            subject: &subject,
            client,
            resource,
            nonce: None,
        },
    )
    .await?;
    commit(
        state,
        context,
        &grant,
        GrantCommand::Refresh {
            refresh_hash: state
                .store
                .keyring()
                .lookup_hash(REFRESH_HASH_KIND, presented),
            client_id: client.application.id.clone(),
            now: context.now_ms(),
            issued: minted.issued,
        },
    )
    .await?;
    Ok(Value::Object(minted.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector computed independently with Python's hashlib and base64.
    #[test]
    fn pkce_s256_is_unpadded_base64url_of_sha256() {
        assert_eq!(
            s256("dBjftJeZ4CVP-1mB3gO_wqW-e2rN2wIfxIBfKGvB47w"),
            "K-KVQ_oN2sSHRfuABgOLrqaJbf_Uqkfm5KHoPeZtrD0"
        );
    }
}
