//! Token signing keys: generation (EC P-384, ES384, as Logto), the public JWKS, and the key set
//! every node loads from the database (so all nodes sign and verify with the same keys).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::{CryptoError, Keyring};
use crate::store::StoreError;

/// A key set older than this is reloaded, so a rotation on another node reaches this one.
const MAX_AGE: Duration = Duration::from_secs(5);
/// Tokens whose signatures a node remembers having checked; past this many it forgets them all
/// (memory stays bounded; a forgotten token is simply checked again).
const REMEMBERED: usize = 4_096;

pub struct GeneratedKey {
    pub kid: String,
    pub algorithm: &'static str,
    pub public_jwk: Value,
    pub private_pkcs8: Vec<u8>,
}

pub fn generate_es384() -> Result<GeneratedKey, CryptoError> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
        .map_err(|_| CryptoError::Random)?;
    let pkcs8 = pair.to_pkcs8v1().map_err(|_| CryptoError::Random)?;
    // Uncompressed SEC1 point: 0x04 || X (48 bytes) || Y (48 bytes).
    let point = pair.public_key().as_ref();
    let (x, y) = point
        .get(1..)
        .map(|xy| xy.split_at(xy.len() / 2))
        .ok_or(CryptoError::Random)?;
    let kid = super::ids::standard_id()?;
    Ok(GeneratedKey {
        public_jwk: json!({
            "kty": "EC",
            "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": kid,
            "alg": "ES384",
            "use": "sig",
        }),
        kid,
        algorithm: "ES384",
        private_pkcs8: pkcs8.as_ref().to_vec(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token header: {0}")]
    Header(String),
    #[error("no key with id {0:?}")]
    UnknownKey(Option<String>),
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys as loaded at one moment: the newest signs, all verify.
pub struct KeySet {
    signer: Option<(String, Algorithm, EncodingKey)>,
    verifiers: HashMap<String, Verifier>,
    jwks: Value,
    loaded_at: Instant,
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "ES384" => Some(Algorithm::ES384),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

impl KeySet {
    /// A set of one freshly generated key, which signs and verifies: for tests and fuzzing,
    /// which have no database to load keys from.
    pub fn of_one(key: &GeneratedKey) -> Result<KeySet, TokenError> {
        let coordinate = |name: &str| key.public_jwk[name].as_str().unwrap_or_default();
        let verifier = DecodingKey::from_ec_components(coordinate("x"), coordinate("y"))
            .map_err(|e| TokenError::Invalid(format!("public key: {e}")))?;
        Ok(KeySet {
            signer: Some((
                key.kid.clone(),
                Algorithm::ES384,
                EncodingKey::from_ec_der(&key.private_pkcs8),
            )),
            verifiers: HashMap::from([(
                key.kid.clone(),
                Verifier {
                    algorithm: Algorithm::ES384,
                    key: verifier,
                },
            )]),
            jwks: json!({ "keys": [key.public_jwk] }),
            loaded_at: Instant::now(),
        })
    }

    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    pub fn signing_algorithm(&self) -> &'static str {
        match self.signer.as_ref().map(|(_, alg, _)| alg) {
            Some(Algorithm::ES256) => "ES256",
            _ => "ES384",
        }
    }

    /// Signs `claims` with the current key; `typ` is the JOSE type (`at+jwt` for access tokens).
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, TokenError> {
        let (kid, algorithm, key) = self
            .signer
            .as_ref()
            .ok_or_else(|| TokenError::Signing("no signing key".into()))?;
        let mut header = Header::new(*algorithm);
        header.kid = Some(kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Verifies a JWT against this set's keys: header, key id, algorithm, signature, then the
    /// claims `validation` asks for.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, TokenError> {
        let (claims, _) = self.verify_signed(token, validation)?;
        serde_json::from_value(claims).map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// `verify`, with the claims as JSON and the id of the key that signed them.
    fn verify_signed(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<(Value, String), TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Header(e.to_string()))?;
        let (kid, verifier) = header
            .kid
            .as_ref()
            .and_then(|kid| self.verifiers.get_key_value(kid))
            .ok_or(TokenError::UnknownKey(header.kid.clone()))?;
        if header.alg != verifier.algorithm {
            return Err(TokenError::Invalid(
                "algorithm does not match the key".into(),
            ));
        }
        let mut validation = validation.clone();
        validation.algorithms = vec![verifier.algorithm];
        jsonwebtoken::decode::<Value>(token, &verifier.key, &validation)
            .map(|data| (data.claims, kid.clone()))
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// A token this node verified: what it was checked against and what it said.
struct Verified {
    kid: String,
    validation: Validation,
    claims: Value,
    /// The last second (since the epoch) in which its `exp` still passes `validation`.
    valid_through: u64,
}

impl Verified {
    /// The claims, if a token verified under `validation` by a key still in `set` passes again
    /// at `now`. Only `exp` can change its verdict: the signature, the key id (a part of the
    /// remembered token) and every other claim are what they were; `nbf` only opens.
    fn recall(&self, set: &KeySet, validation: &Validation, now: u64) -> Option<&Value> {
        (self.validation == *validation
            && set.verifiers.contains_key(&self.kid)
            && now <= self.valid_through)
            .then_some(&self.claims)
    }
}

/// SHA-256 of the whole token (header, claims and signature): the memory's key.
fn fingerprint(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut fingerprint = [0; 32];
    fingerprint.copy_from_slice(digest.as_ref());
    fingerprint
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The node's view of the key set, reloaded from the database when stale or when a token names
/// a key it does not know.
pub struct SigningKeys {
    pool: Pool,
    keyring: Arc<Keyring>,
    current: RwLock<Arc<KeySet>>,
    /// Tokens already verified here, by `fingerprint`: an ES384 signature check was ≈ 40% of
    /// the server's CPU per Management API request, and callers reuse one token for many.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

impl SigningKeys {
    pub async fn load(pool: Pool, keyring: Arc<Keyring>) -> Result<SigningKeys, StoreError> {
        let set = load(&pool, &keyring).await?;
        Ok(SigningKeys {
            pool,
            keyring,
            current: RwLock::new(Arc::new(set)),
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub async fn current(&self) -> Result<Arc<KeySet>, StoreError> {
        let set = self.current.read().await.clone();
        if set.loaded_at.elapsed() < MAX_AGE {
            return Ok(set);
        }
        self.reload().await
    }

    pub async fn reload(&self) -> Result<Arc<KeySet>, StoreError> {
        let fresh = Arc::new(load(&self.pool, &self.keyring).await?);
        *self.current.write().await = fresh.clone();
        Ok(fresh)
    }

    /// Verifies a JWT signed by one of our keys, reloading once if its key is unknown here (it
    /// may have been rotated in on another node).
    ///
    /// A token verified here before under the same `validation` is not checked again while its
    /// key is still in the set and its `exp` still passes (a rotated-out key or an expiry ends
    /// that like any other check would).
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        validation: &Validation,
    ) -> Result<T, TokenError> {
        let set = self
            .current()
            .await
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let fingerprint = fingerprint(token);
        let recalled = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fingerprint)
            .and_then(|verified| verified.recall(&set, validation, now()).cloned());
        let claims = match recalled {
            Some(claims) => claims,
            None => {
                let (claims, kid) = match set.verify_signed(token, validation) {
                    Err(TokenError::UnknownKey(kid))
                        if set.loaded_at.elapsed() > Duration::from_secs(1) =>
                    {
                        let fresh = self
                            .reload()
                            .await
                            .map_err(|_| TokenError::UnknownKey(kid))?;
                        fresh.verify_signed(token, validation)
                    }
                    other => other,
                }?;
                self.remember(fingerprint, kid, validation, &claims);
                claims
            }
        };
        serde_json::from_value(claims).map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Keeps a verified token's verdict, if it has an `exp` to end it.
    fn remember(
        &self,
        fingerprint: [u8; 32],
        kid: String,
        validation: &Validation,
        claims: &Value,
    ) {
        let Some(exp) = claims["exp"].as_u64().filter(|_| validation.validate_exp) else {
            return;
        };
        // `exp` passes while `exp - reject_tokens_expiring_in_less_than` is after now (the
        // leeway, which only lengthens that, is left to a full check).
        let Some(valid_through) = exp
            .checked_sub(validation.reject_tokens_expiring_in_less_than)
            .and_then(|end| end.checked_sub(1))
        else {
            return;
        };
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(
            fingerprint,
            Verified {
                kid,
                validation: validation.clone(),
                claims: claims.clone(),
                valid_through,
            },
        );
    }
}

async fn load(pool: &Pool, keyring: &Keyring) -> Result<KeySet, StoreError> {
    let client = pool.get().await?;
    let rows = projections::signing_keys::all(&client).await?;
    let mut verifiers = HashMap::new();
    let mut jwks = Vec::new();
    let mut signer = None;
    for row in &rows {
        let Some(algorithm) = algorithm(&row.algorithm) else {
            continue;
        };
        let coordinate = |name: &str| row.public_jwk[name].as_str().unwrap_or_default().to_owned();
        let key = DecodingKey::from_ec_components(&coordinate("x"), &coordinate("y"))
            .map_err(|e| StoreError::Internal(format!("public key {}: {e}", row.kid)))?;
        verifiers.insert(row.kid.clone(), Verifier { algorithm, key });
        jwks.push(row.public_jwk.clone());
        if signer.is_none() {
            let sealed = client
                .query_opt("SELECT sealed FROM vault WHERE ref = $1", &[&row.vault_ref])
                .await?
                .ok_or_else(|| StoreError::Internal(format!("private key {} missing", row.kid)))?;
            let pkcs8 = keyring.open_vault(&row.vault_ref, &sealed.try_get::<_, Vec<u8>>(0)?)?;
            signer = Some((row.kid.clone(), algorithm, EncodingKey::from_ec_der(&pkcs8)));
        }
    }
    Ok(KeySet {
        signer,
        verifiers,
        jwks: json!({ "keys": jwks }),
        loaded_at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_tokens_its_public_jwk_verifies() {
        let key = generate_es384().unwrap();
        let set = KeySet::of_one(&key).unwrap();
        let token = set
            .sign(
                &json!({"sub": "s", "aud": "a", "exp": 4_000_000_000u64}),
                "at+jwt",
            )
            .unwrap();
        let mut validation = Validation::new(Algorithm::ES384);
        validation.set_audience(&["a"]);
        let claims: Value = set.verify(&token, &validation).unwrap();
        assert_eq!(claims["sub"], "s");
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(set.verify::<Value>(&tampered, &validation).is_err());
    }

    #[test]
    fn a_remembered_verdict_holds_only_for_the_same_checks_a_known_key_and_until_exp() {
        let key = generate_es384().unwrap();
        let set = KeySet::of_one(&key).unwrap();
        let mut validation = Validation::new(Algorithm::ES384);
        validation.set_audience(&["a"]);
        let verified = Verified {
            kid: key.kid.clone(),
            validation: validation.clone(),
            claims: json!({"sub": "s"}),
            valid_through: 1_000,
        };
        assert_eq!(
            verified.recall(&set, &validation, 1_000),
            Some(&json!({"sub": "s"}))
        );
        assert_eq!(verified.recall(&set, &validation, 1_001), None);
        let mut other_audience = validation.clone();
        other_audience.set_audience(&["b"]);
        assert_eq!(verified.recall(&set, &other_audience, 10), None);
        let rotated = KeySet::of_one(&generate_es384().unwrap()).unwrap();
        assert_eq!(verified.recall(&rotated, &validation, 10), None);
    }
}
