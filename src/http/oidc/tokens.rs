//! Endpoints about issued opaque tokens: userinfo (RFC OIDC Core §5.3), introspection
//! (RFC 7662) and revocation (RFC 7009). JWT access tokens are self-contained: Logto refuses
//! to introspect or revoke them, and so do we.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Actor;
use domain::grant::{Grant, GrantCommand};
use projections::grants::TokenRow;
use projections::users::UserRow;
use serde_json::{Value, json};

use super::claims::{self, Audience};
use super::client;
use super::error::OidcError;
use super::params::Params;
use super::user_tokens::{ACCESS_HASH_KIND, REFRESH_HASH_KIND};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;

/// A token that parses as a JWS (three base64url parts) is a structured token.
fn is_jwt(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok()
}

/// The live row behind an opaque token of one of `kinds` (one or two), with its user: not revoked, not
/// expired, not consumed, the user still there and allowed in. One query, on the connection
/// the caller may go on using.
async fn live_token(
    state: &AppState,
    db: &impl deadpool_postgres::GenericClient,
    token: &str,
    kinds: &[(&str, &str)],
    now_ms: i64,
) -> Result<Option<(TokenRow, UserRow)>, ApiError> {
    let keyring = state.store.keyring();
    let hashes: Vec<String> = kinds
        .iter()
        .map(|(_, hash_kind)| keyring.lookup_hash(hash_kind, token))
        .collect();
    let (Some(first), Some(second)) = (hashes.first(), hashes.last()) else {
        return Ok(None);
    };
    let Some(held) = projections::grants::held_token(db, first, second).await? else {
        return Ok(None);
    };
    let row = held.token;
    // The kind the hash was taken for must be the kind of the row it found.
    let kind_matches = kinds
        .iter()
        .zip(&hashes)
        .any(|((kind, _), hash)| *hash == row.hash && row.kind == *kind);
    if !kind_matches || row.revoked || row.consumed_at.is_some() || row.expires_at <= now_ms {
        return Ok(None);
    }
    Ok(held
        .user
        .filter(|user| !user.is_suspended)
        .map(|user| (row, user)))
}

/// The live opaque access token presented by an end user, with its user: what userinfo accepts,
/// and what the Account API (`/api/my-account`) authenticates by, as Logto's does.
pub(crate) async fn live_access_token(
    state: &AppState,
    db: &impl deadpool_postgres::GenericClient,
    token: &str,
    now_ms: i64,
) -> Result<Option<(TokenRow, UserRow)>, ApiError> {
    live_token(state, db, token, &[("access", ACCESS_HASH_KIND)], now_ms).await
}

fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "Bearer realm=\"userinfo\", error=\"{error}\", error_description=\"{description}\""
    )) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET|POST /oidc/me`.
pub async fn userinfo(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let from_body = Params::from_body(&headers, &body)
        .ok()
        .and_then(|p| p.single("access_token").ok().flatten().map(str::to_owned));
    // RFC 6750 §2: a client must not use more than one method to send the token.
    if from_header.is_some() && from_body.is_some() {
        return bearer_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "access token must only be provided using one mechanism",
        );
    }
    let Some(token) = from_header.or(from_body) else {
        return bearer_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no access token provided",
        );
    };
    let answer = async {
        let db = state.store.pool().get().await?;
        let Some((row, user)) = live_token(
            &state,
            &db,
            &token,
            &[("access", ACCESS_HASH_KIND)],
            context.now_ms(),
        )
        .await?
        else {
            return Ok(None);
        };
        let scopes: Vec<String> = serde_json::from_value(row.scopes).unwrap_or_default();
        let subject = claims::subject(&db, user, Some(&scopes)).await?;
        Ok::<_, ApiError>(Some(claims::claims(&subject, &scopes, Audience::UserInfo)))
    }
    .await;
    match answer {
        Ok(Some(claims)) => axum::Json(Value::Object(claims)).into_response(),
        Ok(None) => bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "invalid token provided",
        ),
        Err(error) => OidcError::from(error).into_response(),
    }
}

async fn authenticated_token(
    state: &AppState,
    context: &RequestContext,
    headers: &HeaderMap,
    body: &Bytes,
    endpoint: &str,
) -> Result<(client::Client, String), OidcError> {
    let params = Params::from_body(headers, body)?;
    let client = client::authenticate(state, headers, &params, context.now_ms()).await?;
    let token = params
        .single("token")?
        .ok_or_else(|| OidcError::invalid_request("missing required parameter 'token'"))?
        .to_owned();
    if is_jwt(&token) {
        let verb = if endpoint == "revocation" {
            "revoked"
        } else {
            "introspected"
        };
        return Err(OidcError::new(
            "unsupported_token_type",
            format!("Structured JWT Tokens cannot be {verb} via the {endpoint}_endpoint"),
        ));
    }
    Ok((client, token))
}

/// `POST /oidc/token/introspection`.
pub async fn introspection(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OidcError> {
    let (client, token) =
        authenticated_token(&state, &context, &headers, &body, "introspection").await?;
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let row = live_token(
        &state,
        &db,
        &token,
        &[("access", ACCESS_HASH_KIND), ("refresh", REFRESH_HASH_KIND)],
        context.now_ms(),
    )
    .await?
    .map(|(row, _)| row)
    // A client learns only about its own tokens.
    .filter(|row| row.client_id == client.application.id);
    drop(db);
    let Some(row) = row else {
        return Ok(axum::Json(json!({ "active": false })).into_response());
    };
    let scopes: Vec<String> = serde_json::from_value(row.scopes.clone()).unwrap_or_default();
    Ok(axum::Json(json!({
        "active": true,
        "client_id": row.client_id,
        "exp": row.expires_at / 1000,
        "iat": row.created_at / 1000,
        "iss": state.issuer,
        "scope": scopes.join(" "),
        "sub": row.user_id,
        "token_type": if row.kind == "access" { "Bearer" } else { "refresh_token" },
    }))
    .into_response())
}

/// `POST /oidc/token/revocation`: revoking any token of a grant revokes the grant, so the
/// sibling access and refresh tokens die with it.
pub async fn revocation(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OidcError> {
    let (client, token) =
        authenticated_token(&state, &context, &headers, &body, "revocation").await?;
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let row = live_token(
        &state,
        &db,
        &token,
        &[("access", ACCESS_HASH_KIND), ("refresh", REFRESH_HASH_KIND)],
        context.now_ms(),
    )
    .await?
    .map(|(row, _)| row);
    // The store takes its own connection for the revocation.
    drop(db);
    if let Some(row) = row.filter(|row| row.client_id == client.application.id) {
        state
            .store
            .execute::<Grant>(
                &row.grant_id,
                GrantCommand::Revoke {
                    reason: format!("{} token revoked by the client", row.kind),
                },
                &context.metadata(Actor::App(client.application.id.clone())),
            )
            .await?;
    }
    // RFC 7009 §2.2: unknown and already invalid tokens are answered the same.
    Ok(StatusCode::OK.into_response())
}
