//! The token endpoint. Every call is recorded before the answer leaves: refusals and
//! client-credentials grants as `exchange.*` events, user-token exchanges as their grant's
//! `grant.code_redeemed` / `grant.refreshed`. The activity log shows all of them as Logto's
//! `ExchangeTokenBy.*` entries (and a grant's revocation as `RevokeToken`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::application::AppType;
use domain::exchange::{Exchange, ExchangeCommand, GrantType, Issued, Refused};
use domain::{Actor, Metadata};
use projections::resources::ResourceRow;
use projections::{applications, resources};
use serde::Serialize;
use serde_json::json;

use super::client::{self, CACHED_FROM, Cache, Client};
use super::error::OidcError;
use super::params::Params;
use super::token_exchange;
use super::user_tokens;
use crate::app::AppState;
use crate::crypto::ids;
use crate::crypto::signing::KeySet;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::store::Unit;

/// Claims of a JWT access token (RFC 9068, as Logto issues them).
#[derive(Serialize)]
pub(super) struct AccessClaims<'a> {
    pub jti: &'a str,
    pub sub: &'a str,
    pub iat: i64,
    pub exp: i64,
    pub scope: &'a str,
    pub client_id: &'a str,
    pub iss: &'a str,
    pub aud: &'a str,
}

impl AccessClaims<'_> {
    /// The claims as a JWT access token (`typ` `at+jwt`) signed with the current key.
    pub(super) fn sign(&self, keys: &KeySet) -> Result<String, OidcError> {
        keys.sign(self, "at+jwt").map_err(|error| {
            tracing::error!(%error, "signing an access token failed");
            OidcError::server_error()
        })
    }
}

/// A successful exchange: the answer, and for machine-to-machine tokens the audit record (user
/// grants are recorded on their grant stream instead).
struct Granted {
    body: serde_json::Value,
    issued: Option<Issued>,
}

fn grant_type(name: Option<&str>) -> GrantType {
    match name {
        Some("client_credentials") => GrantType::ClientCredentials,
        Some("authorization_code") => GrantType::AuthorizationCode,
        Some("refresh_token") => GrantType::RefreshToken,
        Some(token_exchange::GRANT_TYPE) => GrantType::TokenExchange,
        Some(_) | None => GrantType::Unknown,
    }
}

pub async fn token(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::from_body(&headers, &body);
    let outcome = match &params {
        Ok(params) => exchange(&state, &context, &headers, params).await,
        Err(_) => Err(OidcError::invalid_request(
            "the request body could not be read",
        )),
    };
    let grant = params
        .as_ref()
        .ok()
        .and_then(|p| p.single("grant_type").ok().flatten())
        .map(str::to_owned);
    let client_id = params
        .as_ref()
        .ok()
        .and_then(|p| client::claimed_client_id(&headers, p));
    let actor = client_id.clone().map_or(Actor::Anonymous, Actor::App);
    let metadata = context.metadata(actor);
    match outcome {
        Ok(granted) => {
            let recorded = match granted.issued {
                Some(issued) => {
                    record(&state, &metadata, ExchangeCommand::RecordIssued(issued)).await
                }
                None => Ok(()),
            };
            match recorded {
                Ok(()) => no_store(axum::Json(granted.body).into_response()),
                Err(error) => error.into_response(),
            }
        }
        Err(error) => {
            let refused = Refused {
                grant_type: grant_type(grant.as_deref()),
                application_id: client_id,
                user_id: None,
                error: error.error.to_owned(),
                error_description: error.description.clone(),
            };
            if let Err(failure) =
                record(&state, &metadata, ExchangeCommand::RecordRefused(refused)).await
            {
                tracing::warn!(?failure, "could not record a refused token request");
            }
            error.into_response()
        }
    }
}

async fn record(
    state: &AppState,
    metadata: &Metadata,
    command: ExchangeCommand,
) -> Result<(), OidcError> {
    let id = ids::standard_id().map_err(|_| OidcError::server_error())?;
    // A fresh random stream: nothing to read before appending to it.
    let unit = Unit::new().then_fresh::<Exchange>(format!("exchange-{id}"), command);
    state.store.run(unit, metadata).await?;
    Ok(())
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn exchange(
    state: &AppState,
    context: &RequestContext,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Granted, OidcError> {
    let grant = params
        .single("grant_type")?
        .ok_or_else(|| OidcError::invalid_request("missing required parameter 'grant_type'"))?;
    let client = client::authenticate(state, headers, params, context.now_ms()).await?;
    match grant_type(Some(grant)) {
        GrantType::ClientCredentials => client_credentials(state, context, params, client).await,
        GrantType::AuthorizationCode => {
            let body = user_tokens::authorization_code(state, context, params, &client).await?;
            Ok(Granted { body, issued: None })
        }
        GrantType::RefreshToken => {
            let body = user_tokens::refresh_token(state, context, params, &client).await?;
            Ok(Granted { body, issued: None })
        }
        GrantType::TokenExchange => {
            let (body, issued) =
                token_exchange::token_exchange(state, context, params, &client).await?;
            Ok(Granted {
                body,
                issued: Some(issued),
            })
        }
        GrantType::Unknown => Err(OidcError::new(
            "unsupported_grant_type",
            "unsupported grant_type requested",
        )),
    }
}

/// Resources by indicator, as `client::CACHE_TTL` allows (unknown indicators included).
static RESOURCES: Cache<String, Option<ResourceRow>> = Cache::new();
/// Scopes an application's roles grant on a resource, by (application id, resource id).
static GRANTED: Cache<(String, String), Vec<String>> = Cache::new();

/// The resource `indicator` names and the scopes the application's roles grant on it, from the
/// caches when they are fresh, else from the read models (one connection for both queries).
async fn resource_and_scopes(
    state: &AppState,
    indicator: &str,
    application_id: &str,
) -> Result<(Option<ResourceRow>, Vec<String>), OidcError> {
    // Taken before reading, so a change this node commits meanwhile voids what we read.
    let changes = state.store.changes(CACHED_FROM);
    let cached_resource = RESOURCES.get(&indicator.to_owned(), changes);
    let cached_scopes = match &cached_resource {
        Some(Some(resource)) => {
            GRANTED.get(&(application_id.to_owned(), resource.id.clone()), changes)
        }
        Some(None) | None => None,
    };
    if let (Some(resource), Some(scopes)) = (&cached_resource, &cached_scopes) {
        return Ok((resource.clone(), scopes.clone()));
    }
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let resource = match cached_resource {
        Some(resource) => resource,
        None => {
            let resource = resources::by_indicator(&db, indicator).await?;
            RESOURCES.put(indicator.to_owned(), resource.clone(), changes);
            resource
        }
    };
    let Some(resource) = resource else {
        return Ok((None, Vec::new()));
    };
    let scopes = match cached_scopes {
        Some(scopes) => scopes,
        None => {
            let scopes = applications::granted_scopes(&db, application_id, &resource.id).await?;
            GRANTED.put(
                (application_id.to_owned(), resource.id.clone()),
                scopes.clone(),
                changes,
            );
            scopes
        }
    };
    Ok((Some(resource), scopes))
}

async fn client_credentials(
    state: &AppState,
    context: &RequestContext,
    params: &Params,
    client: Client,
) -> Result<Granted, OidcError> {
    if client.app_type != AppType::MachineToMachine {
        return Err(OidcError::new(
            "unauthorized_client",
            "requested grant type is not allowed for this client",
        ));
    }
    // Logto splits comma-separated indicators into repeated parameters.
    let indicators: Vec<&str> = params
        .all("resource")
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    let indicator = match indicators.as_slice() {
        [] => {
            return Err(OidcError::new(
                "invalid_target",
                "both `resource` and `organization_id` are not provided",
            ));
        }
        [one] => *one,
        [_, _, ..] => {
            return Err(OidcError::new(
                "invalid_target",
                "only a single resource indicator value must be requested",
            ));
        }
    };
    let (resource, granted) = resource_and_scopes(state, indicator, &client.application.id).await?;
    let resource = resource.ok_or_else(|| {
        OidcError::new(
            "invalid_target",
            "resource indicator is missing, or unknown",
        )
    })?;
    // Requested scopes the app's roles do not grant are dropped silently, as Logto does.
    let mut scopes: Vec<&str> = Vec::new();
    for scope in params.single("scope")?.unwrap_or_default().split(' ') {
        if granted.iter().any(|g| g == scope) && !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let scope = scopes.join(" ");
    let token_id = ids::standard_id().map_err(|_| OidcError::server_error())?;
    let issued_at = context.now.unix_timestamp();
    let expires_in = resource.access_token_ttl;
    let keys = state.keys.current().await?;
    let access_token = AccessClaims {
        jti: &token_id,
        sub: &client.application.id,
        iat: issued_at,
        exp: issued_at + expires_in,
        scope: &scope,
        client_id: &client.application.id,
        iss: &state.issuer,
        aud: indicator,
    }
    .sign(&keys)?;
    Ok(Granted {
        body: json!({
            "access_token": access_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "scope": scope,
        }),
        issued: Some(Issued {
            grant_type: GrantType::ClientCredentials,
            application_id: client.application.id,
            secret_name: client.secret_name,
            user_id: None,
            audience: Some(indicator.to_owned()),
            scope,
            token_types: vec!["AccessToken".to_owned()],
            token_id,
            expires_at: (issued_at + expires_in) * 1000,
        }),
    })
}
