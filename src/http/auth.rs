//! Management API authentication, as Logto's `koaAuth`: a Bearer JWT from our own issuer, for
//! the Management API audience, carrying the `all` scope. The caller becomes the actor of every
//! event the request appends.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use domain::Actor;
use domain::resource::{MANAGEMENT_API_INDICATOR, MANAGEMENT_API_SCOPE};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::app::AppState;

/// The authenticated Management API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub subject: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    scope: String,
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "auth.unauthorized",
        "Unauthorized. Please check credentials and its scope.",
    )
}

pub fn validation(issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::ES384);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.leeway = 0;
    validation
}

async fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.authorization_header_missing",
                "Authorization header is missing.",
            )
        })?
        .to_str()
        .map_err(|_| unauthorized())?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.authorization_token_type_not_supported",
                "Authorization type is not supported.",
            )
            .with_data(json!({ "supportedTypes": ["Bearer"] }))
        })?
        .trim();
    let claims: Claims = state
        .keys
        .verify(token, &validation(&state.issuer, MANAGEMENT_API_INDICATOR))
        .await
        .map_err(|error| {
            tracing::info!(%error, "management token refused");
            unauthorized()
        })?;
    let subject = claims.sub.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "auth.jwt_sub_missing",
            "Missing `sub` in JWT.",
        )
    })?;
    if !claims.scope.split(' ').any(|s| s == MANAGEMENT_API_SCOPE) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.forbidden",
            "Forbidden. Please check your user roles and permissions.",
        ));
    }
    let actor = if claims.client_id.as_deref() == Some(subject.as_str()) {
        Actor::App(subject.clone())
    } else {
        Actor::Admin(subject.clone())
    };
    Ok(Caller { actor, subject })
}

/// Guards every Management API route: unauthenticated requests never reach a handler.
pub async fn require_management(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let caller = authenticate(&state, &parts).await?;
    parts.extensions.insert(caller);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Absent only if a route escaped `require_management`: fail closed.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}
