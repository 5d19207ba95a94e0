//! Client authentication at the token endpoint: HTTP Basic or body credentials, checked against
//! the application's secrets by keyed hash (no secret is stored or compared in the clear).

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::application::AppType;
use projections::applications::{self, ApplicationRow};

use super::error::OidcError;
use super::params::Params;
use crate::app::AppState;

/// Domain of the keyed hash under which client secrets are looked up.
pub const SECRET_HASH_KIND: &str = "client_secret";

pub struct Client {
    pub application: ApplicationRow,
    pub app_type: AppType,
    /// The application secret that authenticated the client; `None` for public clients.
    pub secret_name: Option<String>,
}

struct Presented {
    client_id: String,
    secret: Option<String>,
    basic: bool,
}

/// RFC 6749 §2.3.1: both halves of Basic credentials are form-encoded.
fn form_decode(part: &str) -> String {
    form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, OidcError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OidcError::invalid_request("invalid authorization header value format");
    let value = value.to_str().map_err(|_| malformed())?;
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Err(malformed());
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, OidcError> {
    let body_id = params.single("client_id")?;
    let body_secret = params.single("client_secret")?;
    match (basic(headers)?, body_id) {
        (Some((id, _)), Some(body)) if body != id => {
            Err(OidcError::invalid_request("client_id mismatch"))
        }
        (Some((client_id, secret)), _) => Ok(Presented {
            client_id,
            secret: Some(secret),
            basic: true,
        }),
        (None, Some(id)) => Ok(Presented {
            client_id: id.to_owned(),
            secret: body_secret.map(str::to_owned),
            basic: false,
        }),
        (None, None) => Err(OidcError::invalid_request(
            "no client authentication mechanism provided",
        )),
    }
}

/// The client id the request names, for the audit record of a refused request.
pub fn claimed_client_id(headers: &HeaderMap, params: &Params) -> Option<String> {
    presented(headers, params).ok().map(|p| p.client_id)
}

fn app_type(name: &str) -> Option<AppType> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    now_ms: i64,
) -> Result<Client, OidcError> {
    let presented = presented(headers, params)?;
    let db = state
        .store
        .pool()
        .get()
        .await
        .map_err(crate::http::error::ApiError::from)?;
    let unknown = || {
        OidcError::new(
            "invalid_client",
            format!("invalid client {}", presented.client_id),
        )
    };
    let application = applications::by_id(&db, &presented.client_id)
        .await?
        .ok_or_else(unknown)?;
    let app_type = app_type(&application.app_type).ok_or_else(unknown)?;
    let failed = || {
        let mut error = OidcError::client_authentication_failed();
        error.challenge = presented.basic;
        error
    };
    let secret_name = match (app_type.is_confidential(), &presented.secret) {
        (true, Some(secret)) => {
            let hash = state.store.keyring().lookup_hash(SECRET_HASH_KIND, secret);
            let row = applications::secret_by_hash(&db, &hash)
                .await?
                .filter(|row| row.application_id == application.id)
                .ok_or_else(failed)?;
            if row.expires_at.is_some_and(|at| at <= now_ms) {
                return Err(OidcError::invalid_request("client secret has expired"));
            }
            Some(row.name)
        }
        (false, None) => None,
        (true, None) | (false, Some(_)) => return Err(failed()),
    };
    Ok(Client {
        application,
        app_type,
        secret_name,
    })
}
