//! Calls to the provider: one client for the process (rustls on aws-lc-rs, webpki roots),
//! bounded in time and size, and the discovery document cached per issuer.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::connectors::social::SocialError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents, key sets and token responses are small; anything larger is refused.
const MAX_BODY: usize = 1024 * 1024;
/// How long a discovery answer (or its failure) is trusted before it is asked again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3_600);
const DISCOVERY_FAILURE_TTL: Duration = Duration::from_secs(60);

fn client() -> Result<&'static reqwest::Client, SocialError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // The provider's endpoints are where discovery says they are; no redirect is followed.
            crate::outbound::client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("idledger/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|error| SocialError::provider("client", format!("HTTP client: {error}")))
}

fn unreachable(url: &str, error: &reqwest::Error) -> SocialError {
    let what = if error.is_timeout() {
        "did not answer in time"
    } else {
        "could not be reached"
    };
    tracing::warn!(%url, %error, "identity provider call failed");
    SocialError::provider("unreachable", format!("{url} {what}."))
}

async fn body(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, SocialError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(url, &e))? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(SocialError::provider(
                "too_large",
                format!("{url} answered more than {MAX_BODY} bytes."),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A JSON document (`GET`, 200 only).
pub async fn get_json(url: &str) -> Result<Value, SocialError> {
    let response = client()?
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let status = response.status();
    let bytes = body(url, response).await?;
    if status != StatusCode::OK {
        return Err(SocialError::provider(
            "http_status",
            format!("{url} answered HTTP {status}."),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        SocialError::provider("not_json", format!("{url} did not answer JSON: {error}"))
    })
}

/// A form post (the token endpoint): the status and the body, whatever they are.
pub async fn post_form(
    url: &str,
    form: &[(String, String)],
    authorization: Option<String>,
) -> Result<(StatusCode, Vec<u8>), SocialError> {
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let mut request = client()?
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(encoded);
    if let Some(authorization) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, authorization);
    }
    let response = request.send().await.map_err(|e| unreachable(url, &e))?;
    let status = response.status();
    Ok((status, body(url, response).await?))
}

static DISCOVERY: LazyLock<Mutex<HashMap<String, (Instant, bool)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether the issuer's discovery document offers PKCE with S256. A provider whose document
/// cannot be read is asked again a minute later; meanwhile sign-ins go on without PKCE, as
/// they would with a provider that has no discovery.
pub async fn supports_pkce(issuer: &str) -> bool {
    let cached = DISCOVERY
        .lock()
        .ok()
        .and_then(|cache| cache.get(issuer).copied());
    if let Some((until, supported)) = cached
        && until > Instant::now()
    {
        return supported;
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let (supported, ttl) = match get_json(&url).await {
        Ok(document) => (
            document["code_challenge_methods_supported"]
                .as_array()
                .is_some_and(|methods| methods.iter().any(|m| m == "S256")),
            DISCOVERY_TTL,
        ),
        Err(error) => {
            tracing::warn!(%issuer, %error, "discovery unavailable; no PKCE for now");
            (false, DISCOVERY_FAILURE_TTL)
        }
    };
    if let Ok(mut cache) = DISCOVERY.lock() {
        cache.insert(issuer.to_owned(), (Instant::now() + ttl, supported));
    }
    supported
}
