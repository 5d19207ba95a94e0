//! Discovery (OpenID Connect Discovery 1.0 and RFC 8414) and the public keys.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::OidcError;
use crate::app::AppState;

/// The provider metadata (OpenID Connect Discovery 1.0, RFC 8414): what this provider
/// implements, in Logto's vocabulary.
pub async fn configuration(State(state): State<AppState>) -> Result<Json<Value>, OidcError> {
    let issuer = &state.issuer;
    let algorithm = state.keys.current().await?.signing_algorithm();
    Ok(Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/me"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        "revocation_endpoint": format!("{issuer}/token/revocation"),
        "introspection_endpoint": format!("{issuer}/token/introspection"),
        "authorization_response_iss_parameter_supported": true,
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "claims_supported": [
            "sub", "name", "family_name", "given_name", "middle_name", "nickname",
            "preferred_username", "profile", "picture", "website", "gender", "birthdate",
            "zoneinfo", "locale", "updated_at", "username", "created_at", "email",
            "email_verified", "phone_number", "phone_number_verified", "address",
            "custom_data", "identities", "sso_identities", "roles", "organizations",
            "organization_data", "organization_roles", "sid", "auth_time", "iss"
        ],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ],
        "id_token_signing_alg_values_supported": [algorithm],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "response_modes_supported": ["form_post", "fragment", "query"],
        "response_types_supported": ["code"],
        "scopes_supported": crate::http::oidc::authorize::KNOWN_SCOPES,
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "ui_locales_supported": ["en", "ja"],
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
