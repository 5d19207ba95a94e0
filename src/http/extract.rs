//! Extractors that turn a request into domain inputs: a JSON body with Logto-style validation
//! errors, the raw query string, and the request context every event records.

use std::net::SocketAddr;
use std::sync::Arc;

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

/// Deepest JSON nesting accepted; real bodies are a few levels deep.
const MAX_JSON_DEPTH: usize = 32;
/// Largest number magnitude accepted: PostgreSQL keeps JSON numbers exactly, and a value near
/// `f64::MAX` could not be read back into a float.
const MAX_JSON_NUMBER: f64 = 1e300;

/// Why a syntactically valid JSON value cannot be stored, if it cannot.
fn unstorable(value: &serde_json::Value, depth: usize) -> Option<&'static str> {
    use serde_json::Value;
    if depth > MAX_JSON_DEPTH {
        return Some("The JSON body is nested too deeply.");
    }
    match value {
        // PostgreSQL text cannot hold U+0000.
        Value::String(s) if s.contains('\0') => {
            Some("Strings must not contain the NUL character (U+0000).")
        }
        Value::Number(n)
            if n.as_f64()
                .is_none_or(|f| !f.is_finite() || f.abs() > MAX_JSON_NUMBER) =>
        {
            Some("Numbers must be finite and below 1e300 in magnitude.")
        }
        Value::Array(items) => items.iter().find_map(|v| unstorable(v, depth + 1)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some("Keys must not contain the NUL character (U+0000).")
            } else {
                unstorable(v, depth + 1)
            }
        }),
        Value::String(_) | Value::Number(_) | Value::Null | Value::Bool(_) => None,
    }
}

/// Parses a request body: JSON syntax, an object (every body of Logto's API is one; serde
/// would also fill a struct from an array, by position), then what PostgreSQL can store, then
/// the shape of `T` (naming the offending key path, as Logto's validation does).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::invalid_input("body", error.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::invalid_input(
            "body",
            "The request body must be a JSON object.",
        ));
    }
    if let Some(reason) = unstorable(&value, 0) {
        return Err(ApiError::invalid_input("body", reason));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let details = if path == "." {
            inner.to_string()
        } else {
            format!("Error in key path \"{path}\": {inner}")
        };
        ApiError::invalid_input("body", details)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn bodies_postgresql_cannot_store_are_refused() {
        for body in [
            r#"{"a": "x\u0000y"}"#,
            r#"{"a\u0000": 1}"#,
            r#"{"a": 1.7976931348623157e308}"#,
            &format!("{{\"a\": {}1{}}}", "[".repeat(40), "]".repeat(40)),
        ] {
            assert_eq!(
                parse_json::<Value>(body.as_bytes()).unwrap_err().code,
                "guard.invalid_input",
                "{body}"
            );
        }
        assert!(parse_json::<Value>(br#"{"a": [1, 2.5, "ok"]}"#).is_ok());
    }

    #[test]
    fn a_body_must_be_an_object() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            name: Option<String>,
        }
        for body in ["[]", r#"["x"]"#, "null", "5", r#""text""#] {
            assert_eq!(
                parse_json::<Body>(body.as_bytes()).unwrap_err().code,
                "guard.invalid_input",
                "{body}"
            );
        }
        assert!(parse_json::<Body>(b"{}").unwrap().name.is_none());
    }

    #[test]
    fn shape_errors_name_the_key_path() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            name: String,
        }
        assert_eq!(parse_json::<Body>(br#"{"name": "ok"}"#).unwrap().name, "ok");
        let error = parse_json::<Body>(br#"{"name": 5}"#).unwrap_err();
        assert!(
            error
                .details
                .unwrap()
                .starts_with("Error in key path \"name\"")
        );
    }
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

/// Where a request's client IP may come from besides the peer address.
#[derive(Clone)]
pub struct TrustProxy {
    /// `X-Forwarded-For` is honoured (the node is behind a proxy that sets it).
    pub forwarded_for: bool,
    /// The key this process's own console sends with `x-idledger-relay`, so that what it
    /// relays over loopback on an operator's behalf is recorded with the operator's IP. It is
    /// drawn at start and never leaves the process: no one else can relay.
    pub relay_key: Arc<str>,
}

/// The headers the console relays its operator's address with.
pub const RELAY_KEY_HEADER: &str = "x-idledger-relay";
pub const RELAY_IP_HEADER: &str = "x-idledger-client-ip";

/// The operator's IP relayed by this process's console, when the request carries the key.
fn relayed_ip(headers: &HeaderMap, key: &str) -> Option<String> {
    let sent = headers.get(RELAY_KEY_HEADER)?.as_bytes();
    aws_lc_rs::constant_time::verify_slices_are_equal(sent, key.as_bytes()).ok()?;
    let ip: std::net::IpAddr = headers.get(RELAY_IP_HEADER)?.to_str().ok()?.parse().ok()?;
    Some(ip.to_string())
}

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
        let trust = TrustProxy::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let relayed = peer
            .filter(std::net::IpAddr::is_loopback)
            .and_then(|_| relayed_ip(&parts.headers, &trust.relay_key));
        let peer = peer.map(|ip| ip.to_string());
        let ip = if let Some(relayed) = relayed {
            Some(relayed)
        } else if trust.forwarded_for {
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

#[cfg(test)]
mod relay_tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{RELAY_IP_HEADER, RELAY_KEY_HEADER, relayed_ip};

    fn headers(key: &str, ip: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RELAY_KEY_HEADER, HeaderValue::from_str(key).unwrap());
        headers.insert(RELAY_IP_HEADER, HeaderValue::from_str(ip).unwrap());
        headers
    }

    #[test]
    fn only_the_processs_own_key_relays_an_address() {
        let key = "k3y-of-this-process";
        assert_eq!(
            relayed_ip(&headers(key, "203.0.113.7"), key).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(relayed_ip(&headers("guess", "203.0.113.7"), key), None);
        assert_eq!(relayed_ip(&headers("", "203.0.113.7"), key), None);
        assert_eq!(relayed_ip(&HeaderMap::new(), key), None);
    }

    #[test]
    fn a_relayed_value_must_be_an_address() {
        let key = "k3y";
        assert_eq!(relayed_ip(&headers(key, "not an ip"), key), None);
        assert_eq!(
            relayed_ip(&headers(key, "2001:db8::1"), key).as_deref(),
            Some("2001:db8::1")
        );
    }
}
