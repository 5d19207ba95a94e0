//! The OIDC boundary's error: RFC 6749 `{error, error_description}`, plus Logto's `code` and
//! `message` so Logto clients read it like every other error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::error::ApiError;

#[derive(Debug)]
pub struct OidcError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// RFC 6749 §5.2: a client that tried HTTP Basic and failed gets 401 with a challenge.
    pub challenge: bool,
}

impl OidcError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OidcError {
        OidcError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            challenge: false,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> OidcError {
        OidcError::new("invalid_request", description)
    }

    pub fn client_authentication_failed() -> OidcError {
        OidcError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed".into(),
            challenge: true,
        }
    }

    pub fn server_error() -> OidcError {
        OidcError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "an unexpected error occurred".into(),
            challenge: false,
        }
    }
}

impl From<ApiError> for OidcError {
    fn from(error: ApiError) -> OidcError {
        if error.status == StatusCode::SERVICE_UNAVAILABLE {
            return OidcError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: error.message,
                challenge: false,
            };
        }
        OidcError::server_error()
    }
}

impl From<crate::store::StoreError> for OidcError {
    fn from(error: crate::store::StoreError) -> OidcError {
        ApiError::from(error).into()
    }
}

impl From<projections::ProjectionError> for OidcError {
    fn from(error: projections::ProjectionError) -> OidcError {
        ApiError::from(error).into()
    }
}

impl IntoResponse for OidcError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": self.description,
            "code": format!("oidc.{}", self.error),
            "message": self.description,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"idledger\""),
            );
        }
        response
    }
}
