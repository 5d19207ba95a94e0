//! The token exchange grant (RFC 8693) as Logto offers it: an application whose
//! `customClientMetadata.allowTokenExchange` is set presents a subject token
//! (`POST /api/subject-tokens`, single use) or a user's personal access token and receives an
//! access token about that user: a JWT for the `resource` asked for, or without one an opaque
//! token for userinfo, held by a grant of its own (`grant.exchanged`) so that introspection,
//! revocation and the user's suspension reach it like any other.
//!
//! A subject token is consumed on its own stream before anything is issued, so of concurrent
//! exchanges of one token exactly one commits the consumption and the others are refused. It is
//! spent by that first presentation even if the exchange then fails (a suspended user, a scope
//! nobody may have): a presented impersonation token is never good twice.

use domain::Rejection;
use domain::exchange::{GrantType, Issued};
use domain::grant::{self, Authorization, Grant, GrantCommand, HashedToken};
use domain::subject_token::{SubjectToken, SubjectTokenCommand, SubjectTokenEvent};
use projections::resources::ResourceRow;
use serde_json::{Value, json};

use super::authorize::KNOWN_SCOPES;
use super::claims;
use super::client::Client;
use super::error::OidcError;
use super::params::Params;
use super::token::AccessClaims;
use super::user_tokens::{ACCESS_HASH_KIND, OPAQUE_ACCESS_TTL_S, random_token};
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::http::management::subject_tokens;
use crate::http::management::users::tokens as personal_access_tokens;
use crate::store::StoreError;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// What Logto calls the type of its subject tokens (and of what it issues).
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const PERSONAL_ACCESS_TOKEN_TYPE: &str = "urn:logto:token-type:personal_access_token";

fn invalid_grant(description: impl Into<String>) -> OidcError {
    OidcError::new("invalid_grant", description)
}

/// Logto adds the grant to a client's grant types only when its metadata opts in (third-party
/// applications cannot opt in: the Management API refuses the flag for them).
pub fn allowed(client: &Client) -> bool {
    client.application.custom_client_metadata["allowTokenExchange"].as_bool() == Some(true)
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, OidcError> {
    params
        .single(name)?
        .ok_or_else(|| OidcError::invalid_request(format!("missing required parameter '{name}'")))
}

/// Consumes the subject token and returns the user it stood for.
async fn consume(
    state: &AppState,
    context: &RequestContext,
    client: &Client,
    presented: &str,
) -> Result<String, OidcError> {
    let stream = state
        .store
        .keyring()
        .lookup_hash(subject_tokens::TOKEN_HASH_KIND, presented);
    let metadata = context.metadata(domain::Actor::App(client.application.id.clone()));
    let committed = state
        .store
        .execute::<SubjectToken>(
            &stream,
            SubjectTokenCommand::Consume {
                application_id: client.application.id.clone(),
                now: context.now_ms(),
            },
            &metadata,
        )
        .await
        .map_err(|error| match error {
            StoreError::Rejected(Rejection::SubjectToken(refusal)) => {
                invalid_grant(refusal.to_string())
            }
            other => other.into(),
        })?;
    committed
        .events
        .iter()
        .find_map(|event| {
            match domain::decode::<SubjectTokenEvent>(&event.event_type, &event.payload) {
                Ok(SubjectTokenEvent::Consumed { user_id, .. }) => Some(user_id),
                Ok(SubjectTokenEvent::Issued(_)) | Err(_) => None,
            }
        })
        .ok_or_else(OidcError::server_error)
}

/// The holder of an unexpired personal access token (used as often as its holder likes).
async fn personal_access_token_holder(
    state: &AppState,
    context: &RequestContext,
    presented: &str,
) -> Result<String, OidcError> {
    let hash = state
        .store
        .keyring()
        .lookup_hash(personal_access_tokens::TOKEN_HASH_KIND, presented);
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let token = projections::users::token_by_hash(&db, &hash)
        .await?
        .ok_or_else(|| invalid_grant("subject token not found"))?;
    if token.expires_at.is_some_and(|at| at <= context.now_ms()) {
        return Err(invalid_grant("subject token is expired"));
    }
    Ok(token.user_id)
}

async fn resource(state: &AppState, indicator: &str) -> Result<ResourceRow, OidcError> {
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    projections::resources::by_indicator(&db, indicator)
        .await?
        .ok_or_else(|| {
            OidcError::new(
                "invalid_target",
                "resource indicator is missing, or unknown",
            )
        })
}

/// The requested scopes among `granted`, in the order asked, once each.
fn issued_scopes<'a>(requested: &'a str, granted: &[&str]) -> Vec<&'a str> {
    let mut scopes: Vec<&str> = Vec::new();
    for scope in requested.split(' ') {
        if granted.contains(&scope) && !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes
}

/// An access token ready to hand out.
struct Minted {
    access_token: String,
    token_id: String,
    scope: String,
    expires_in: i64,
}

/// A JWT for `resource` with the requested scopes the user's roles grant on it.
async fn jwt(
    state: &AppState,
    context: &RequestContext,
    client: &Client,
    user_id: &str,
    resource: &ResourceRow,
    requested: &str,
) -> Result<Minted, OidcError> {
    let granted = {
        let db = state.store.pool().get().await.map_err(ApiError::from)?;
        projections::users::granted_scopes(&db, user_id, &resource.id).await?
    };
    let granted: Vec<&str> = granted.iter().map(String::as_str).collect();
    let scope = issued_scopes(requested, &granted).join(" ");
    let token_id = ids::standard_id().map_err(|_| OidcError::server_error())?;
    let issued_at = context.now.unix_timestamp();
    let expires_in = resource.access_token_ttl;
    let keys = state.keys.current().await?;
    let access_token = AccessClaims {
        jti: &token_id,
        sub: user_id,
        iat: issued_at,
        exp: issued_at + expires_in,
        scope: &scope,
        client_id: &client.application.id,
        iss: &state.issuer,
        aud: &resource.indicator,
    }
    .sign(&keys)?;
    Ok(Minted {
        access_token,
        token_id,
        scope,
        expires_in,
    })
}

/// An opaque access token for userinfo with the requested OpenID Connect scopes, on a grant
/// of its own. Logto issues neither an ID token nor a refresh token here.
async fn opaque(
    state: &AppState,
    context: &RequestContext,
    client: &Client,
    user_id: &str,
    requested: &str,
) -> Result<Minted, OidcError> {
    let scopes = issued_scopes(requested, KNOWN_SCOPES);
    let access_token = random_token()?;
    let token_id = ids::standard_id().map_err(|_| OidcError::server_error())?;
    let grant_id = ids::standard_id().map_err(|_| OidcError::server_error())?;
    let now = context.now_ms();
    let expires_at = now + OPAQUE_ACCESS_TTL_S * 1000;
    let scopes: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
    let command = GrantCommand::Exchange {
        authorization: Authorization {
            client_id: client.application.id.clone(),
            user_id: user_id.to_owned(),
            // No sign-in, so no session.
            session_id: String::new(),
            scopes: scopes.clone(),
            resources: Vec::new(),
            auth_time: now,
        },
        issued: grant::Issued {
            access_token_id: token_id.clone(),
            opaque_access_token: Some(HashedToken {
                hash: state
                    .store
                    .keyring()
                    .lookup_hash(ACCESS_HASH_KIND, &access_token),
                expires_at,
            }),
            access_expires_at: expires_at,
            refresh_token: None,
            id_token: false,
            scopes: scopes.clone(),
            resource: None,
        },
        now,
    };
    let metadata = context.metadata(domain::Actor::App(client.application.id.clone()));
    state
        .store
        .run(
            crate::store::Unit::new().then_fresh::<Grant>(grant_id, command),
            &metadata,
        )
        .await?;
    Ok(Minted {
        access_token,
        token_id,
        scope: scopes.join(" "),
        expires_in: OPAQUE_ACCESS_TTL_S,
    })
}

pub async fn token_exchange(
    state: &AppState,
    context: &RequestContext,
    params: &Params,
    client: &Client,
) -> Result<(Value, Issued), OidcError> {
    if !allowed(client) {
        return Err(OidcError::new(
            "unauthorized_client",
            "requested grant type is not allowed for this client",
        ));
    }
    let presented = required(params, "subject_token")?;
    let token_type = required(params, "subject_token_type")?;
    if params.single("organization_id")?.is_some() {
        return Err(OidcError::invalid_request(
            "organization tokens are not issued by token exchange",
        ));
    }
    // Checked before the subject token is spent on a request that cannot succeed.
    let resource = match params.single("resource")? {
        Some(indicator) => Some(resource(state, indicator).await?),
        None => None,
    };
    let user_id = match token_type {
        ACCESS_TOKEN_TYPE => consume(state, context, client, presented).await?,
        PERSONAL_ACCESS_TOKEN_TYPE => {
            personal_access_token_holder(state, context, presented).await?
        }
        _ => return Err(invalid_grant("unsupported subject token type")),
    };
    let subject = {
        let db = state.store.pool().get().await.map_err(ApiError::from)?;
        claims::load(&db, &user_id)
            .await?
            .ok_or_else(|| invalid_grant("subject token invalid (referenced account not found)"))?
    };
    if subject.user.is_suspended {
        return Err(invalid_grant("user is suspended"));
    }
    let requested = params.single("scope")?.unwrap_or_default();
    let minted = match &resource {
        Some(resource) => jwt(state, context, client, &user_id, resource, requested).await?,
        None => opaque(state, context, client, &user_id, requested).await?,
    };
    let body = json!({
        "access_token": minted.access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": minted.expires_in,
        "scope": minted.scope,
    });
    let issued = Issued {
        grant_type: GrantType::TokenExchange,
        application_id: client.application.id.clone(),
        secret_name: client.secret_name.clone(),
        user_id: Some(user_id),
        audience: resource.map(|resource| resource.indicator),
        scope: minted.scope,
        token_types: vec!["AccessToken".to_owned()],
        token_id: minted.token_id,
        expires_at: context.now_ms() + minted.expires_in * 1000,
    };
    Ok((body, issued))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requested_scopes_that_may_be_granted_are_issued_once_each() {
        let granted = ["read", "write"];
        assert_eq!(
            issued_scopes("write admin read write", &granted),
            ["write", "read"]
        );
        assert!(issued_scopes("", &granted).is_empty());
        assert_eq!(
            issued_scopes("openid all profile", KNOWN_SCOPES),
            ["openid", "profile"]
        );
    }
}
