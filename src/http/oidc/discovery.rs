//! Discovery (OpenID Connect Discovery 1.0 and RFC 8414) and the public keys.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::OidcError;
use crate::app::AppState;

/// What this provider supports today; grows as grants and endpoints land.
pub async fn configuration(State(state): State<AppState>) -> Result<Json<Value>, OidcError> {
    let issuer = &state.issuer;
    let algorithm = state.keys.current().await?.signing_algorithm();
    Ok(Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "token_endpoint": format!("{issuer}/token"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": [algorithm],
        "scopes_supported": ["openid"],
        "subject_types_supported": ["public"],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "code_challenge_methods_supported": ["S256"],
    })))
}

pub async fn jwks(State(state): State<AppState>) -> Result<Response, OidcError> {
    let keys = state.keys.current().await?;
    let mut response = Json(keys.jwks().clone()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json; charset=utf-8"),
    );
    Ok(response)
}
