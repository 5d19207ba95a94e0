//! The OpenID Connect provider under `/oidc`.

pub mod authorize;
mod claims;
mod client;
mod discovery;
pub mod error;
mod logout;
pub mod params;
mod token;
mod token_exchange;
pub(crate) mod tokens;
mod user_tokens;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub use authorize::{INTERACTION_COOKIE, SESSION_COOKIE, resume_url};
pub use client::SECRET_HASH_KIND;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/oidc/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route(
            "/oidc/.well-known/oauth-authorization-server",
            get(discovery::configuration),
        )
        .route("/oidc/jwks", get(discovery::jwks))
        .route("/oidc/token", post(token::token))
        .route(
            "/oidc/auth",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/oidc/auth/{uid}", get(authorize::resume))
        .route("/oidc/me", get(tokens::userinfo).post(tokens::userinfo))
        .route("/oidc/token/introspection", post(tokens::introspection))
        .route("/oidc/token/revocation", post(tokens::revocation))
        .route(
            "/oidc/session/end",
            get(logout::end_session_get).post(logout::end_session_post),
        )
        .route("/oidc/session/end/confirm", post(logout::confirm))
}
