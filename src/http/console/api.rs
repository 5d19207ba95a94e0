//! The console's only way to read or change anything: the public Management API over HTTP on
//! this node's own listening address, with the operator's access token. The console therefore
//! does exactly what an operator's script can, and every change it makes is recorded with the
//! operator as the actor and the console request's id and user agent.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ConsoleError;
use crate::http::extract::{RELAY_IP_HEADER, RELAY_KEY_HEADER};
use crate::telemetry::REQUEST_ID_HEADER;

/// One client for every console request; `None` if it could not be built (then every call
/// fails as unreachable rather than falling back to a client outside `outbound`).
fn client() -> Result<&'static reqwest::Client, ConsoleError> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::outbound::client_builder()
                .timeout(Duration::from_secs(25))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| ConsoleError::Unreachable("no HTTP client".to_owned()))
}

/// Logto's error shape.
#[derive(Deserialize)]
struct ApiErrorBody {
    code: String,
    message: String,
    /// What exactly was wrong, when the API says (`guard.invalid_input`).
    details: Option<String>,
}

pub struct Api {
    base: String,
    token: String,
    user_agent: Option<String>,
    request_id: Option<String>,
    /// The operator's IP and this process's relay key, so the API records where the operator
    /// is rather than the loopback address the console calls from.
    relay: Option<(String, Arc<str>)>,
}

/// One page of a list and the `Total-Number` header.
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: u64,
}

impl Api {
    pub fn new(
        base: &str,
        token: &str,
        user_agent: Option<String>,
        request_id: Option<String>,
    ) -> Api {
        Api {
            base: base.to_owned(),
            token: token.to_owned(),
            user_agent,
            request_id,
            relay: None,
        }
    }

    /// Calls made on behalf of the operator at `ip`, relayed with this process's `key`.
    pub fn relaying(mut self, ip: Option<String>, key: Arc<str>) -> Api {
        self.relay = ip.map(|ip| (ip, key));
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ConsoleError> {
        let mut request = client()?
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(agent) = &self.user_agent {
            request = request.header(reqwest::header::USER_AGENT, agent);
        }
        if let Some(id) = &self.request_id {
            request = request.header(REQUEST_ID_HEADER, id);
        }
        if let Some((ip, key)) = &self.relay {
            request = request
                .header(RELAY_IP_HEADER, ip)
                .header(RELAY_KEY_HEADER, key.as_ref());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ConsoleError::Unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ConsoleError::SignedOut);
        }
        let body = response.bytes().await.unwrap_or_default();
        let (code, message) = serde_json::from_slice::<ApiErrorBody>(&body)
            .map(|e| match e.details {
                Some(details) => (e.code, format!("{} {details}", e.message)),
                None => (e.code, e.message),
            })
            .unwrap_or_else(|_| ("unknown".to_owned(), String::from_utf8_lossy(&body).into()));
        Err(ConsoleError::Api {
            status,
            code,
            message,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConsoleError> {
        let response = self.call(Method::GET, path, None).await?;
        decode(response).await
    }

    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Listed<T>, ConsoleError> {
        let response = self.call(Method::GET, path, None).await?;
        let total = response
            .headers()
            .get("total-number")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let items: Vec<T> = decode(response).await?;
        Ok(Listed { items, total })
    }

    /// A change; the answer's body, if it has one that decodes as `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<T>, ConsoleError> {
        let response = self.call(method, path, body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ConsoleError::Unreachable(e.to_string()))?;
        Ok(serde_json::from_slice(&bytes).ok())
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ConsoleError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ConsoleError::Unreachable(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ConsoleError::Unexpected(e.to_string()))
}

/// The token endpoint's answer to the console's authorization-code exchange.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    #[serde(default)]
    pub scope: String,
}

/// Redeems the authorization code at our own token endpoint (a public client: PKCE, no secret).
pub async fn redeem_code(base: &str, form: &[(&str, &str)]) -> Result<TokenResponse, ConsoleError> {
    let response = client()?
        .post(format!("{base}/oidc/token"))
        .form(form)
        .send()
        .await
        .map_err(|e| ConsoleError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(ConsoleError::SignInFailed(body));
    }
    decode(response).await
}
