//! Extractors that turn a request into domain inputs: a JSON body with Logto-style validation
//! errors, the raw query string, and the request context every event records.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use domain::{Actor, Metadata};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::error::ApiError;
use crate::telemetry::RequestId;

/// A JSON body. An empty body reads as `{}` (Logto's body parser does the same), and a body
/// that does not match `T` is a 400 `guard.invalid_input` naming the offending key path.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    "guard.invalid_input",
                    "The request body is invalid.",
                )
                .with_details(rejection.body_text())
            })?;
        parse_json(if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        })
        .map(Json)
    }
}

/// PostgreSQL text cannot hold U+0000, so no JSON string may carry one into the log.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
            false
        }
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Escaped NULs are the only way one gets in: raw control bytes are invalid JSON.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|error| ApiError::invalid_input("body", error.to_string()))?;
        if has_nul(&value) {
            return Err(ApiError::invalid_input(
                "body",
                "Strings must not contain the NUL character (U+0000).",
            ));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let details = if inner.is_syntax() || inner.is_eof() || path == "." {
            inner.to_string()
        } else {
            format!("Error in key path \"{path}\": {inner}")
        };
        ApiError::invalid_input("body", details)
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::invalid_input("body", error.to_string()))?;
    Ok(value)
}

/// The query string as ordered pairs; Logto's search syntax repeats keys, which typed query
/// extractors would drop.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(QueryPairs(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Logto's "truthy" query values: `true`, `1`, `yes`, any case.
    pub fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            ["true", "1", "yes"]
                .iter()
                .any(|t| v.eq_ignore_ascii_case(t))
        })
    }
}

/// Whether the client IP may be taken from `X-Forwarded-For`.
#[derive(Clone, Copy)]
pub struct TrustProxy(pub bool);

/// Who is calling from where, in which request, at what time: everything an event's metadata
/// needs except the actor, which authentication decides.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub now: OffsetDateTime,
}

impl RequestContext {
    pub fn metadata(&self, actor: Actor) -> Metadata {
        Metadata {
            actor,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
            occurred_at: self.now,
        }
    }

    pub fn now_ms(&self) -> i64 {
        domain::unix_ms(self.now)
    }
}

fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

impl<S> FromRequestParts<S> for RequestContext
where
    S: Send + Sync,
    TrustProxy: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let TrustProxy(trust) = TrustProxy::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let ip = if trust {
            forwarded_for(&parts.headers).or(peer)
        } else {
            peer
        };
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(1024).collect());
        Ok(RequestContext {
            ip,
            user_agent,
            request_id: parts.extensions.get::<RequestId>().map(|id| id.0.clone()),
            now: OffsetDateTime::now_utc(),
        })
    }
}
