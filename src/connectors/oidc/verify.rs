//! The ID token's verification: the signature against the provider's JWKS (cached, fetched
//! again when a token names a key the cached set lacks, as after the provider rotated its
//! keys), an algorithm from the allow-list, then every claim check the configuration asks
//! for, each failure with its own reason.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{IdTokenVerification, http};
use crate::connectors::social::SocialError;

/// How long a fetched key set is used before it is fetched again anyway.
const JWKS_TTL: Duration = Duration::from_secs(600);

/// Signature algorithms an ID token may use unless the configuration narrows them. Symmetric
/// ones are not among them: a key set publishes public keys only.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The asymmetric algorithm `name` stands for, if it is one.
pub fn asymmetric(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name)
        .ok()
        .filter(|algorithm| DEFAULT_ALGORITHMS.contains(algorithm))
}

static JWKS: LazyLock<Mutex<HashMap<String, (Instant, JwkSet)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

async fn key_set(uri: &str, fresh: bool) -> Result<JwkSet, SocialError> {
    if !fresh {
        let cached = JWKS.lock().ok().and_then(|cache| cache.get(uri).cloned());
        if let Some((fetched, set)) = cached
            && fetched.elapsed() < JWKS_TTL
        {
            return Ok(set);
        }
    }
    let document = http::get_json(uri).await?;
    let set: JwkSet = serde_json::from_value(document).map_err(|error| {
        SocialError::provider("jwks", format!("{uri} is not a JSON Web Key Set: {error}"))
    })?;
    if let Ok(mut cache) = JWKS.lock() {
        cache.insert(uri.to_owned(), (Instant::now(), set.clone()));
    }
    Ok(set)
}

/// The keys that may have signed a token with `kid` (all of them when it names none).
fn candidates(set: &JwkSet, kid: Option<&str>) -> Vec<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned().into_iter().collect(),
        None => set.keys.clone(),
    }
}

fn invalid(reason: &'static str, message: &str) -> SocialError {
    SocialError::id_token(reason, format!("The ID token is invalid: {message}."))
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims.get(name).and_then(|v| {
        v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
    })
}

/// Verifies `token` for `client_id` at `now_ms`; answers its claims.
pub async fn id_token(
    token: &str,
    client_id: &str,
    config: &IdTokenVerification,
    nonce: Option<&str>,
    now_ms: i64,
) -> Result<Map<String, Value>, SocialError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| invalid("malformed", "it is not a signed JWT"))?;
    let allowed: Vec<Algorithm> = match &config.algorithms {
        Some(names) => names.iter().filter_map(|n| asymmetric(n)).collect(),
        None => DEFAULT_ALGORITHMS.to_vec(),
    };
    if !allowed.contains(&header.alg) {
        return Err(invalid(
            "algorithm",
            &format!("its algorithm {:?} is not allowed", header.alg),
        ));
    }
    let understood = config.crit.clone().unwrap_or_default();
    if let Some(critical) = &header.crit
        && let Some(unknown) = critical.iter().find(|name| !understood.contains_key(*name))
    {
        return Err(invalid(
            "crit",
            &format!("it requires the unsupported header parameter {unknown:?}"),
        ));
    }
    if let Some(expected) = &config.typ {
        let typ = header.typ.as_deref().unwrap_or_default();
        let normalized = |t: &str| t.trim_start_matches("application/").to_ascii_lowercase();
        if normalized(typ) != normalized(expected) {
            return Err(invalid("typ", &format!("its type is {typ:?}")));
        }
    }
    let kid = header.kid.as_deref();
    let mut keys = candidates(&key_set(&config.jwks_uri, false).await?, kid);
    if keys.is_empty() {
        // The provider may have rotated its keys since the set was cached.
        keys = candidates(&key_set(&config.jwks_uri, true).await?, kid);
    }
    if keys.is_empty() {
        return Err(invalid(
            "unknown_kid",
            &format!("no key of the provider's key set has the id {kid:?}"),
        ));
    }
    let mut validation = Validation::new(header.alg);
    // The claims are checked below, against the server's clock and with their own reasons.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut claims: Option<Map<String, Value>> = None;
    for key in keys {
        let Ok(decoding) = DecodingKey::from_jwk(&key) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
        {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or_else(|| invalid("signature", "its signature does not verify"))?;
    check_claims(&claims, client_id, config, nonce, now_ms)?;
    Ok(claims)
}

fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    config: &IdTokenVerification,
    nonce: Option<&str>,
    now_ms: i64,
) -> Result<(), SocialError> {
    let now = now_ms / 1000;
    let tolerance = config
        .clock_tolerance
        .as_ref()
        .and_then(super::Span::seconds)
        .unwrap_or(0);
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if let Some(issuers) = &config.issuer {
        let issuer = text("iss").unwrap_or_default();
        if !issuers.values().contains(&issuer) {
            return Err(invalid(
                "issuer",
                &format!("its issuer {issuer:?} is not the expected one"),
            ));
        }
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&client_id) {
        return Err(invalid("audience", "it was not issued to this client"));
    }
    if audiences.len() > 1 && text("azp").is_some_and(|azp| azp != client_id) {
        return Err(invalid("audience", "it was authorized for another party"));
    }
    let exp = seconds(claims, "exp").ok_or_else(|| invalid("expired", "it has no expiry"))?;
    if now > exp.saturating_add(tolerance) {
        return Err(invalid("expired", "it has expired"));
    }
    if let Some(nbf) = seconds(claims, "nbf")
        && now.saturating_add(tolerance) < nbf
    {
        return Err(invalid("not_yet_valid", "it is not valid yet"));
    }
    if let Some(max_age) = config.max_token_age.as_ref().and_then(super::Span::seconds) {
        let iat =
            seconds(claims, "iat").ok_or_else(|| invalid("max_token_age", "it has no iat"))?;
        if now.saturating_sub(iat) > max_age.saturating_add(tolerance) {
            return Err(invalid("max_token_age", "it is older than allowed"));
        }
    }
    let subject = text("sub").filter(|s| !s.is_empty());
    let subject = subject.ok_or_else(|| invalid("subject", "it names no subject"))?;
    if config.subject.as_deref().is_some_and(|s| s != subject) {
        return Err(invalid("subject", "it names another subject"));
    }
    if let Some(expected) = nonce {
        let matches = text("nonce").is_some_and(|sent| {
            aws_lc_rs::constant_time::verify_slices_are_equal(sent.as_bytes(), expected.as_bytes())
                .is_ok()
        });
        if !matches {
            return Err(invalid("nonce", "its nonce is not this sign-in's"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> IdTokenVerification {
        serde_json::from_value(json!({
            "jwksUri": "https://idp.example/jwks",
            "issuer": ["https://idp.example", "https://other.example"],
            "clockTolerance": "10s",
            "maxTokenAge": 600,
        }))
        .unwrap()
    }

    fn claims(changes: Value) -> Map<String, Value> {
        let mut claims = json!({
            "iss": "https://idp.example", "aud": "client", "sub": "s1",
            "exp": 1_000, "iat": 900, "nonce": "n",
        });
        for (key, value) in changes.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims.as_object().cloned().unwrap()
    }

    fn reason(changes: Value, now_s: i64) -> Option<&'static str> {
        check_claims(
            &claims(changes),
            "client",
            &config(),
            Some("n"),
            now_s * 1000,
        )
        .err()
        .map(|e| e.reason)
    }

    #[test]
    fn each_claim_fails_with_its_own_reason() {
        assert_eq!(reason(json!({}), 950), None);
        assert_eq!(reason(json!({"iss": "https://other.example"}), 950), None);
        assert_eq!(
            reason(json!({"iss": "https://evil.example"}), 950),
            Some("issuer")
        );
        assert_eq!(reason(json!({"aud": "someone"}), 950), Some("audience"));
        assert_eq!(
            reason(json!({"aud": ["client", "x"], "azp": "x"}), 950),
            Some("audience")
        );
        assert_eq!(reason(json!({}), 1_010), None);
        assert_eq!(reason(json!({}), 1_011), Some("expired"));
        assert_eq!(reason(json!({"nonce": "old"}), 950), Some("nonce"));
        assert_eq!(
            reason(json!({"iat": 100, "exp": 2_000}), 950),
            Some("max_token_age")
        );
        assert_eq!(reason(json!({"sub": ""}), 950), Some("subject"));
    }

    #[test]
    fn symmetric_algorithms_are_never_accepted() {
        assert_eq!(asymmetric("RS256"), Some(Algorithm::RS256));
        assert_eq!(asymmetric("HS256"), None);
        assert_eq!(asymmetric("none"), None);
    }
}
