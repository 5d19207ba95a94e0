//! What the console keeps between requests, all of it in the operator's browser and none of it
//! readable there: the sign-in attempt (PKCE verifier, state) and the signed-in session (the
//! operator's Management API access token). Both are AES-256-GCM sealed under the vault key,
//! each kind with its own associated data so one can never be passed off as the other.

use aws_lc_rs::{constant_time, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, Keyring, ids};

pub const SESSION_COOKIE: &str = "idledger_console";
pub const SIGN_IN_COOKIE: &str = "idledger_console_sign_in";
pub const LANG_COOKIE: &str = "idledger_console_lang";

const SESSION_AAD: &str = "console session";
const SIGN_IN_AAD: &str = "console sign-in";

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The operator's access token for the Management API (`scope` contains `all`).
    pub token: String,
    /// Seconds since the epoch after which the token is refused: the session ends with it.
    pub expires_at: i64,
    pub user_id: String,
    pub display_name: String,
    /// Every form carries it back; a cross-site form cannot know it.
    pub csrf: String,
}

impl Session {
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        constant_time::verify_slices_are_equal(self.csrf.as_bytes(), submitted.as_bytes()).is_ok()
    }
}

/// A sign-in on its way through `/oidc/auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignIn {
    pub verifier: String,
    pub state: String,
    /// The console page to return to (always a `/console` path).
    pub next: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the cookie is not one this server sealed")]
    Unreadable,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

fn seal<T: Serialize>(keyring: &Keyring, aad: &str, value: &T) -> Result<String, SessionError> {
    let plain = serde_json::to_vec(value).map_err(|_| SessionError::Unreadable)?;
    Ok(URL_SAFE_NO_PAD.encode(keyring.seal_vault(aad, &plain)?))
}

fn open<T: DeserializeOwned>(
    keyring: &Keyring,
    aad: &str,
    cookie: &str,
) -> Result<T, SessionError> {
    let sealed = URL_SAFE_NO_PAD
        .decode(cookie)
        .map_err(|_| SessionError::Unreadable)?;
    let plain = keyring
        .open_vault(aad, &sealed)
        .map_err(|_| SessionError::Unreadable)?;
    serde_json::from_slice(&plain).map_err(|_| SessionError::Unreadable)
}

pub fn seal_session(keyring: &Keyring, session: &Session) -> Result<String, SessionError> {
    seal(keyring, SESSION_AAD, session)
}

/// The session a cookie stands for, if it is ours and its token still lives at `now_s`.
pub fn open_session(keyring: &Keyring, cookie: &str, now_s: i64) -> Option<Session> {
    open::<Session>(keyring, SESSION_AAD, cookie)
        .ok()
        .filter(|session| session.expires_at > now_s)
}

pub fn seal_sign_in(keyring: &Keyring, sign_in: &SignIn) -> Result<String, SessionError> {
    seal(keyring, SIGN_IN_AAD, sign_in)
}

pub fn open_sign_in(keyring: &Keyring, cookie: &str) -> Option<SignIn> {
    open(keyring, SIGN_IN_AAD, cookie).ok()
}

/// A fresh random value for PKCE verifiers (43 to 128 characters), states and CSRF tokens.
pub fn random_token() -> Result<String, SessionError> {
    Ok(format!("{}{}", ids::secret()?, ids::secret()?))
}

/// RFC 7636 S256.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Where to go after signing in: only a console path, so the parameter cannot send the
/// operator elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/console" || path.starts_with("/console/"))
                && !path.contains("//")
                && !path.contains('\\') =>
        {
            path.to_owned()
        }
        _ => "/console/users".to_owned(),
    }
}

/// The subject of a JWT we were just handed by our own token endpoint over loopback (so not
/// verified again here; the Management API verifies it on every call).
pub fn jwt_subject(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Claims>(&bytes).ok().map(|c| c.sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::from_kek(&[7u8; 32]).unwrap()
    }

    fn session() -> Session {
        Session {
            token: "header.payload.signature".to_owned(),
            expires_at: 2_000,
            user_id: "u1".to_owned(),
            display_name: "Ada".to_owned(),
            csrf: "c".repeat(43),
        }
    }

    #[test]
    fn a_sealed_session_opens_until_its_token_expires() {
        let keyring = keyring();
        let cookie = seal_session(&keyring, &session()).unwrap();
        assert!(
            !cookie.contains("header.payload"),
            "the token is not in the clear"
        );
        assert_eq!(open_session(&keyring, &cookie, 1_999), Some(session()));
        assert_eq!(open_session(&keyring, &cookie, 2_000), None);
    }

    #[test]
    fn a_sign_in_cookie_is_no_session_and_altered_bytes_open_nothing() {
        let keyring = keyring();
        let sign_in = SignIn {
            verifier: "v".to_owned(),
            state: "s".to_owned(),
            next: "/console".to_owned(),
        };
        let cookie = seal_sign_in(&keyring, &sign_in).unwrap();
        assert_eq!(open_sign_in(&keyring, &cookie), Some(sign_in));
        assert_eq!(open_session(&keyring, &cookie, 0), None);
        let mut altered = cookie.into_bytes();
        altered[5] ^= 1;
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(open_sign_in(&keyring, &altered), None);
        let other = Keyring::from_kek(&[8u8; 32]).unwrap();
        let cookie = seal_session(&keyring, &session()).unwrap();
        assert_eq!(open_session(&other, &cookie, 0), None);
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/console/users/u1")), "/console/users/u1");
        assert_eq!(safe_next(Some("/console")), "/console");
        for bad in [
            "https://evil.example/console",
            "//evil.example/console",
            "/console//evil.example",
            "/consoleevil",
            "/console/\\evil",
            "/api/users",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/users", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/users");
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        let session = session();
        assert!(session.csrf_matches(&"c".repeat(43)));
        assert!(!session.csrf_matches(&"c".repeat(42)));
        assert!(!session.csrf_matches(""));
    }

    #[test]
    fn the_subject_comes_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"u42","scope":"all"}"#);
        assert_eq!(
            jwt_subject(&format!("h.{payload}.s")).as_deref(),
            Some("u42")
        );
        assert_eq!(jwt_subject("opaque"), None);
    }
}
