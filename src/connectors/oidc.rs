//! Logto's standard OIDC social connector (factory `oidc`, logto-compat §6): the authorization
//! code flow against any OpenID provider, with a random nonce per request, PKCE S256 when the
//! provider's discovery document offers it, the three secret-based client authentications at
//! the token endpoint, and the ID token verified against the provider's JWKS (`verify.rs`).
//!
//! Outbound calls use one reqwest client on rustls with aws-lc-rs, with timeouts and a size
//! limit on every answer, and never follow redirects (a redirected token request would carry
//! the client's credentials elsewhere).

mod http;
mod verify;

use async_trait::async_trait;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use domain::connector::ConnectorType;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::social::{SocialError, SocialFactory, SocialSession, SocialUser, TokenSet};
use super::{Factory, InvalidConfig};
use crate::crypto::ids;

pub const FACTORY_ID: &str = "oidc";

/// How long a `client_secret_jwt` assertion is valid.
const ASSERTION_TTL_S: i64 = 300;

pub struct Oidc;

// The variants spell the OIDC registry's `token_endpoint_auth_method` values.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthMethod {
    ClientSecretBasic,
    #[default]
    ClientSecretPost,
    ClientSecretJwt,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
enum JwtAlgorithm {
    #[default]
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    fn jose(self) -> jsonwebtoken::Algorithm {
        match self {
            JwtAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            JwtAlgorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            JwtAlgorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(one) => vec![one.as_str()],
            OneOrMany::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// A duration as jose takes it: seconds, or a string like `30s`, `5 min`, `1h`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Span {
    Seconds(f64),
    Text(String),
}

impl Span {
    fn seconds(&self) -> Option<i64> {
        match self {
            Span::Seconds(s) if s.is_finite() && *s >= 0.0 => {
                #[allow(clippy::cast_possible_truncation)]
                let whole = s.floor() as i64;
                Some(whole)
            }
            Span::Seconds(_) => None,
            Span::Text(text) => parse_span(text),
        }
    }
}

fn parse_span(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit_seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => return None,
    };
    let seconds = number * unit_seconds;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let whole = seconds.floor() as i64;
    Some(whole)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdTokenVerification {
    jwks_uri: String,
    #[serde(default)]
    issuer: Option<OneOrMany>,
    /// jose's option; the audience is always the client id, as in Logto.
    #[serde(default, rename = "audience")]
    _audience: Option<OneOrMany>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    clock_tolerance: Option<Span>,
    /// The critical header parameters this verifier understands (jose's `crit`).
    #[serde(default)]
    crit: Option<Map<String, Value>>,
    #[serde(default)]
    max_token_age: Option<Span>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthRequestOptions {
    #[serde(default)]
    response_mode: Option<String>,
    #[serde(default)]
    display: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
    #[serde(default)]
    ui_locales: Option<String>,
    #[serde(default)]
    id_token_hint: Option<String>,
    #[serde(default)]
    login_hint: Option<String>,
    #[serde(default)]
    acr_values: Option<String>,
}

impl AuthRequestOptions {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("response_mode", &self.response_mode),
            ("display", &self.display),
            ("prompt", &self.prompt),
            ("max_age", &self.max_age),
            ("ui_locales", &self.ui_locales),
            ("id_token_hint", &self.id_token_hint),
            ("login_hint", &self.login_hint),
            ("acr_values", &self.acr_values),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OidcConfig {
    client_id: String,
    client_secret: String,
    scope: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default, rename = "responseType")]
    _response_type: Option<ResponseType>,
    #[serde(default, rename = "grantType")]
    _grant_type: Option<GrantType>,
    #[serde(default)]
    token_endpoint_auth_method: AuthMethod,
    #[serde(default)]
    client_secret_jwt_signing_algorithm: JwtAlgorithm,
    id_token_verification_config: IdTokenVerification,
    #[serde(default)]
    auth_request_optional_config: Option<AuthRequestOptions>,
    #[serde(default)]
    custom_config: Option<Map<String, Value>>,
    #[serde(default)]
    accept_string_typed_boolean_claims: bool,
    #[serde(default)]
    trust_unverified_email: bool,
}

/// Only the authorization code flow exists; the keys are accepted for Logto's shape.
#[derive(Debug, Clone, Copy, Deserialize)]
enum ResponseType {
    #[serde(rename = "code")]
    Code,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
}

fn invalid(path: &str, problem: impl std::fmt::Display) -> InvalidConfig {
    InvalidConfig(format!("Error in key path \"{path}\": {problem}"))
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

fn parse(config: &Value) -> Result<OidcConfig, InvalidConfig> {
    let parsed: OidcConfig = serde_path_to_error::deserialize(config.clone())
        .map_err(|error| invalid(&error.path().to_string(), error.inner()))?;
    for (path, value) in [
        ("clientId", &parsed.client_id),
        ("clientSecret", &parsed.client_secret),
        ("scope", &parsed.scope),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(path, "Required"));
        }
    }
    for (path, value) in [
        ("authorizationEndpoint", &parsed.authorization_endpoint),
        ("tokenEndpoint", &parsed.token_endpoint),
        (
            "idTokenVerificationConfig.jwksUri",
            &parsed.id_token_verification_config.jwks_uri,
        ),
    ] {
        if !is_http_url(value) {
            return Err(invalid(path, "Invalid url"));
        }
    }
    let verification = &parsed.id_token_verification_config;
    if let Some(algorithms) = &verification.algorithms {
        if algorithms.is_empty() {
            return Err(invalid(
                "idTokenVerificationConfig.algorithms",
                "must name at least one algorithm",
            ));
        }
        for (index, name) in algorithms.iter().enumerate() {
            if verify::asymmetric(name).is_none() {
                return Err(invalid(
                    &format!("idTokenVerificationConfig.algorithms.{index}"),
                    format!("unsupported algorithm {name:?}"),
                ));
            }
        }
    }
    if verification
        .clock_tolerance
        .as_ref()
        .is_some_and(|span| span.seconds().is_none())
    {
        return Err(invalid(
            "idTokenVerificationConfig.clockTolerance",
            "Invalid duration",
        ));
    }
    if verification
        .max_token_age
        .as_ref()
        .is_some_and(|span| span.seconds().is_none())
    {
        return Err(invalid(
            "idTokenVerificationConfig.maxTokenAge",
            "Invalid duration",
        ));
    }
    if let Some(custom) = &parsed.custom_config {
        for (key, value) in custom {
            if !value.is_string() {
                return Err(invalid(&format!("customConfig.{key}"), "Expected string"));
            }
        }
    }
    Ok(parsed)
}

fn parse_for_use(config: &Value) -> Result<OidcConfig, SocialError> {
    parse(config).map_err(|InvalidConfig(details)| SocialError::config(details))
}

/// `openid` joins whatever scopes the configuration asks for (space or `+` separated).
fn scope_with_openid(scope: &str) -> String {
    let mut scopes: Vec<&str> = scope.split([' ', '+']).filter(|s| !s.is_empty()).collect();
    if !scopes.contains(&"openid") {
        scopes.insert(0, "openid");
    }
    scopes.join(" ")
}

fn custom_pairs(config: &OidcConfig) -> Vec<(String, String)> {
    config
        .custom_config
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect()
}

/// 64 characters from the CSPRNG: a nonce, or a PKCE verifier (RFC 7636 wants 43 to 128).
fn random_token() -> Result<String, SocialError> {
    let draw = || ids::secret().map_err(|error| SocialError::provider("random", error.to_string()));
    Ok(format!("{}{}", draw()?, draw()?))
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// RFC 6749 §2.3.1: both halves of Basic credentials are form-encoded first.
fn basic_credentials(client_id: &str, secret: &str) -> String {
    let encode = |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

/// RFC 7523 client assertion signed with the client secret (`client_secret_jwt`).
fn client_assertion(config: &OidcConfig, now_ms: i64) -> Result<String, SocialError> {
    let now = now_ms / 1000;
    let claims = json!({
        "iss": config.client_id,
        "sub": config.client_id,
        "aud": config.token_endpoint,
        "jti": ids::standard_id().map_err(|e| SocialError::provider("random", e.to_string()))?,
        "iat": now,
        "exp": now + ASSERTION_TTL_S,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(config.client_secret_jwt_signing_algorithm.jose()),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(config.client_secret.as_bytes()),
    )
    .map_err(|error| SocialError::config(format!("cannot sign the client assertion: {error}")))
}

/// A token endpoint request: its form and its `Authorization` header, if any.
type TokenRequest = (Vec<(String, String)>, Option<String>);

/// The token endpoint's form and `Authorization` header for `grant`, authenticated as the
/// configuration says.
fn token_request(
    config: &OidcConfig,
    grant: Vec<(String, String)>,
    now_ms: i64,
) -> Result<TokenRequest, SocialError> {
    let mut form = grant;
    form.extend(custom_pairs(config));
    let authorization = match config.token_endpoint_auth_method {
        AuthMethod::ClientSecretBasic => {
            Some(basic_credentials(&config.client_id, &config.client_secret))
        }
        AuthMethod::ClientSecretPost => {
            form.push(("client_id".into(), config.client_id.clone()));
            form.push(("client_secret".into(), config.client_secret.clone()));
            None
        }
        AuthMethod::ClientSecretJwt => {
            form.push(("client_id".into(), config.client_id.clone()));
            form.push((
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion".into(), client_assertion(config, now_ms)?));
            None
        }
    };
    Ok((form, authorization))
}

/// The token endpoint's successful answer.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenResponse {
    fn token_set(self, now_ms: i64, previous_refresh: Option<&str>) -> TokenSet {
        let expires_in = match &self.expires_in {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        TokenSet {
            access_token: self.access_token,
            refresh_token: self
                .refresh_token
                .or_else(|| previous_refresh.map(str::to_owned)),
            id_token: self.id_token,
            token_type: self.token_type.unwrap_or_else(|| "Bearer".to_owned()),
            scope: self.scope,
            expires_at: expires_in.map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
        }
    }
}

async fn call_token_endpoint(
    config: &OidcConfig,
    grant: Vec<(String, String)>,
    now_ms: i64,
) -> Result<TokenResponse, SocialError> {
    let (form, authorization) = token_request(config, grant, now_ms)?;
    let (status, body) = http::post_form(&config.token_endpoint, &form, authorization).await?;
    if !status.is_success() {
        let described = serde_json::from_slice::<Value>(&body)
            .ok()
            .map(|error| {
                let code = error["error"].as_str().unwrap_or("error").to_owned();
                match error["error_description"].as_str() {
                    Some(description) => format!("{code}: {description}"),
                    None => code,
                }
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(SocialError::auth_code(format!(
            "The token endpoint refused the request ({described})."
        )));
    }
    serde_json::from_slice(&body).map_err(|error| {
        SocialError::provider(
            "token_response",
            format!("The token endpoint's answer is not a token response: {error}"),
        )
    })
}

fn claim_is_true(value: Option<&Value>, accept_strings: bool) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if accept_strings => s == "true",
        _ => false,
    }
}

/// Logto's user info from the ID token's claims.
fn social_user(config: &OidcConfig, claims: Map<String, Value>) -> SocialUser {
    let text = |key: &str| {
        claims
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let lenient = config.accept_string_typed_boolean_claims;
    let email = text("email").filter(|_| {
        config.trust_unverified_email || claim_is_true(claims.get("email_verified"), lenient)
    });
    // Logto's phones are digits only.
    let phone = text("phone_number")
        .filter(|_| claim_is_true(claims.get("phone_number_verified"), lenient))
        .map(|phone| {
            phone
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|digits| !digits.is_empty());
    SocialUser {
        id: text("sub").unwrap_or_default(),
        name: text("name"),
        avatar: text("picture"),
        email,
        phone,
        raw_data: claims,
    }
}

#[async_trait]
impl SocialFactory for Oidc {
    async fn authorization_uri(
        &self,
        connector_id: &str,
        config: &Value,
        state: &str,
        redirect_uri: &str,
    ) -> Result<(String, SocialSession), SocialError> {
        let config = parse_for_use(config)?;
        let mut url = url::Url::parse(&config.authorization_endpoint)
            .map_err(|e| SocialError::config(format!("authorizationEndpoint: {e}")))?;
        let nonce = random_token()?;
        let issuer = config
            .id_token_verification_config
            .issuer
            .as_ref()
            .and_then(|issuer| issuer.values().first().map(|s| (*s).to_owned()));
        let code_verifier = match issuer {
            Some(issuer) if http::supports_pkce(&issuer).await => Some(random_token()?),
            Some(_) | None => None,
        };
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &config.client_id)
                .append_pair("scope", &scope_with_openid(&config.scope))
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .append_pair("nonce", &nonce);
            if let Some(verifier) = &code_verifier {
                query
                    .append_pair("code_challenge", &pkce_challenge(verifier))
                    .append_pair("code_challenge_method", "S256");
            }
            for (name, value) in config
                .auth_request_optional_config
                .clone()
                .unwrap_or_default()
                .pairs()
            {
                query.append_pair(name, value);
            }
            for (name, value) in custom_pairs(&config) {
                query.append_pair(&name, &value);
            }
        }
        Ok((
            url.into(),
            SocialSession {
                connector_id: connector_id.to_owned(),
                state: state.to_owned(),
                nonce,
                redirect_uri: redirect_uri.to_owned(),
                code_verifier,
            },
        ))
    }

    async fn user_info(
        &self,
        config: &Value,
        session: &SocialSession,
        data: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<(SocialUser, TokenSet), SocialError> {
        let config = parse_for_use(config)?;
        let text = |key: &str| data.get(key).and_then(Value::as_str);
        if let Some(error) = text("error") {
            let description = text("error_description").unwrap_or_default();
            return Err(SocialError::authorization(
                "provider_error",
                format!("The provider refused the sign-in ({error}: {description})."),
            ));
        }
        let state_matches = text("state").is_some_and(|state| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                state.as_bytes(),
                session.state.as_bytes(),
            )
            .is_ok()
        });
        // An administrator's link (`POST /api/users/:id/identities`) has no trip to match.
        if !session.state.is_empty() && !state_matches {
            return Err(SocialError::authorization(
                "state",
                "The state returned by the provider does not match this sign-in.",
            ));
        }
        let code = text("code").filter(|c| !c.is_empty()).ok_or_else(|| {
            SocialError::authorization("code", "The provider returned no authorization code.")
        })?;
        let redirect_uri = text("redirectUri").unwrap_or(&session.redirect_uri);
        let mut grant = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("redirect_uri".to_owned(), redirect_uri.to_owned()),
        ];
        if let Some(verifier) = &session.code_verifier {
            grant.push(("code_verifier".to_owned(), verifier.clone()));
        }
        let response = call_token_endpoint(&config, grant, now_ms).await?;
        let id_token = response.id_token.clone().ok_or_else(|| {
            SocialError::id_token("missing", "The token response carries no ID token.")
        })?;
        let claims = verify::id_token(
            &id_token,
            &config.client_id,
            &config.id_token_verification_config,
            Some(session.nonce.as_str()).filter(|nonce| !nonce.is_empty()),
            now_ms,
        )
        .await?;
        let user = social_user(&config, claims);
        Ok((user, response.token_set(now_ms, None)))
    }

    async fn refresh(
        &self,
        config: &Value,
        refresh_token: &str,
        now_ms: i64,
    ) -> Result<TokenSet, SocialError> {
        let config = parse_for_use(config)?;
        let grant = vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), refresh_token.to_owned()),
        ];
        let response = call_token_endpoint(&config, grant, now_ms).await?;
        Ok(response.token_set(now_ms, Some(refresh_token)))
    }
}

fn readme() -> &'static str {
    "# OIDC connector\n\nSign in with any OpenID Connect provider through the authorization code \
     flow. Configure the provider's `authorizationEndpoint`, `tokenEndpoint`, the client's \
     `clientId` and `clientSecret`, the `scope` (`openid` is always added) and \
     `idTokenVerificationConfig.jwksUri`; set `idTokenVerificationConfig.issuer` to have the \
     issuer checked and PKCE used when the provider offers it."
}

fn form_items() -> Value {
    let text = |key: &str, label: &str, required: bool| json!({"key": key, "label": label, "type": "Text", "required": required});
    json!([
        text("authorizationEndpoint", "Authorization Endpoint", true),
        text("tokenEndpoint", "Token Endpoint", true),
        {"key": "tokenEndpointAuthMethod", "label": "Token Endpoint Auth Method",
         "type": "Select", "required": false, "defaultValue": "client_secret_post",
         "selectItems": [
            {"value": "client_secret_basic", "title": "client_secret_basic"},
            {"value": "client_secret_post", "title": "client_secret_post"},
            {"value": "client_secret_jwt", "title": "client_secret_jwt"}]},
        {"key": "clientSecretJwtSigningAlgorithm", "label": "Client Secret JWT Signing Algorithm",
         "type": "Select", "required": false, "defaultValue": "HS256",
         "selectItems": [{"value": "HS256", "title": "HS256"}, {"value": "HS384", "title": "HS384"},
                         {"value": "HS512", "title": "HS512"}]},
        text("clientId", "Client ID", true),
        text("clientSecret", "Client Secret", true),
        text("scope", "Scope", true),
        {"key": "idTokenVerificationConfig", "label": "ID Token Verification Config",
         "type": "Json", "required": true, "defaultValue": {"jwksUri": ""}},
        {"key": "authRequestOptionalConfig", "label": "Auth Request Optional Config",
         "type": "Json", "required": false},
        {"key": "customConfig", "label": "Custom Config", "type": "Json", "required": false},
        {"key": "acceptStringTypedBooleanClaims", "label": "Accept string-typed boolean claims",
         "type": "Switch", "required": false, "defaultValue": false},
        {"key": "trustUnverifiedEmail", "label": "Trust unverified email",
         "type": "Switch", "required": false, "defaultValue": false},
    ])
}

impl Factory for Oidc {
    fn id(&self) -> &'static str {
        FACTORY_ID
    }

    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Social
    }

    fn metadata(&self) -> Value {
        json!({
            "id": FACTORY_ID,
            "target": "oidc",
            "platform": "Universal",
            "name": {"en": "OIDC"},
            "logo": "./logo.svg",
            "logoDark": null,
            "description": {
                "en": "OpenID Connect (OIDC) is an authentication protocol built on top of OAuth 2.0.",
            },
            "readme": readme(),
            "formItems": form_items(),
            "isStandard": true,
            "isTokenStorageSupported": true,
        })
    }

    fn secret_pointers(&self) -> &'static [&'static str] {
        &["/clientSecret"]
    }

    fn validate(&self, config: &Value) -> Result<(), InvalidConfig> {
        parse(config).map(|_| ())
    }

    fn social(&self) -> Option<&dyn SocialFactory> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "clientId": "client",
            "clientSecret": "secret",
            "scope": "profile email",
            "authorizationEndpoint": "https://idp.example/auth?tenant=a",
            "tokenEndpoint": "https://idp.example/token",
            "idTokenVerificationConfig": {"jwksUri": "https://idp.example/jwks"},
        })
    }

    #[test]
    fn logtos_shape_validates_and_mistakes_name_their_key() {
        let config = parse(&valid()).unwrap();
        assert_eq!(
            config.token_endpoint_auth_method,
            AuthMethod::ClientSecretPost
        );
        let mut broken = valid();
        broken["tokenEndpointAuthMethod"] = json!("private_key_jwt");
        assert!(
            parse(&broken)
                .unwrap_err()
                .0
                .contains("tokenEndpointAuthMethod")
        );
        let mut broken = valid();
        broken["idTokenVerificationConfig"] = json!({});
        assert!(parse(&broken).unwrap_err().0.contains("jwksUri"));
        let mut broken = valid();
        broken["idTokenVerificationConfig"]["algorithms"] = json!(["HS256"]);
        assert!(parse(&broken).unwrap_err().0.contains("algorithms.0"));
        let mut broken = valid();
        broken["customConfig"] = json!({"audience": 3});
        assert!(
            parse(&broken)
                .unwrap_err()
                .0
                .contains("customConfig.audience")
        );
    }

    #[test]
    fn openid_is_always_asked_for() {
        assert_eq!(scope_with_openid("profile+email"), "openid profile email");
        assert_eq!(scope_with_openid("email openid"), "email openid");
    }

    #[test]
    fn durations_read_like_jose() {
        assert_eq!(parse_span("30s"), Some(30));
        assert_eq!(parse_span("5 min"), Some(300));
        assert_eq!(parse_span("1h"), Some(3_600));
        assert_eq!(parse_span("2 fortnights"), None);
        assert_eq!(Span::Seconds(12.5).seconds(), Some(12));
    }

    #[test]
    fn emails_need_the_providers_word_unless_trusted() {
        let mut config = parse(&valid()).unwrap();
        let claims = |verified: Value| {
            json!({"sub": "s", "email": "a@example.com", "email_verified": verified,
                   "phone_number": "+81 90-1234-5678", "phone_number_verified": true})
            .as_object()
            .cloned()
            .unwrap()
        };
        assert_eq!(social_user(&config, claims(json!(false))).email, None);
        assert_eq!(social_user(&config, claims(json!("true"))).email, None);
        assert_eq!(
            social_user(&config, claims(json!(true))).phone.as_deref(),
            Some("819012345678")
        );
        config.accept_string_typed_boolean_claims = true;
        assert!(social_user(&config, claims(json!("true"))).email.is_some());
        config.accept_string_typed_boolean_claims = false;
        config.trust_unverified_email = true;
        assert!(social_user(&config, claims(json!(false))).email.is_some());
    }

    #[test]
    fn every_auth_method_authenticates_its_way() {
        let mut config = parse(&valid()).unwrap();
        let grant = || vec![("grant_type".to_owned(), "authorization_code".to_owned())];
        let (form, header) = token_request(&config, grant(), 0).unwrap();
        assert!(header.is_none());
        assert!(form.contains(&("client_secret".into(), "secret".into())));
        config.token_endpoint_auth_method = AuthMethod::ClientSecretBasic;
        let (form, header) = token_request(&config, grant(), 0).unwrap();
        assert_eq!(header.as_deref(), Some("Basic Y2xpZW50OnNlY3JldA=="));
        assert!(!form.iter().any(|(k, _)| k == "client_secret"));
        config.token_endpoint_auth_method = AuthMethod::ClientSecretJwt;
        config.client_secret_jwt_signing_algorithm = JwtAlgorithm::HS512;
        let (form, _) = token_request(&config, grant(), 1_000_000).unwrap();
        let assertion = &form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS512);
        validation.set_audience(&["https://idp.example/token"]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(
            assertion,
            &jsonwebtoken::DecodingKey::from_secret(b"secret"),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "client");
    }
}
