//! Passwords: argon2id for everything we hash; verification of the digests Logto imports
//! (Argon2i/d/id PHC strings, bcrypt, unsalted MD5/SHA-1/SHA-256 hex, Logto's `Legacy` recipe),
//! so a successful sign-in can re-encode them as argon2id. Hashing is CPU-heavy: callers run it
//! on the blocking pool.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use aws_lc_rs::{constant_time, digest, pbkdf2};
use domain::user::{Password, PasswordAlgorithm};
use md5::Digest;
use serde_json::Value;

use super::keyring::{hex, random_bytes};

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password digest is not valid for {0}")]
    BadDigest(&'static str),
    #[error("legacy hash algorithm {0:?} is not supported")]
    UnsupportedLegacy(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A fresh argon2id PHC string for `password`.
pub fn hash(password: &str) -> Result<Password, PasswordError> {
    let salt = random_bytes::<16>().map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let digest = hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(Password {
        password_digest: digest.to_string(),
        password_algorithm: PasswordAlgorithm::Argon2id,
    })
}

/// Whether an imported digest is acceptable for its algorithm (checked when it is set, so a
/// broken import fails loudly instead of at the user's first sign-in).
pub fn validate(password: &Password) -> Result<(), PasswordError> {
    let digest = password.password_digest.as_str();
    let hex_of = |len: usize, name| {
        if digest.len() == len && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(PasswordError::BadDigest(name))
        }
    };
    match password.password_algorithm {
        PasswordAlgorithm::Argon2i | PasswordAlgorithm::Argon2id | PasswordAlgorithm::Argon2d => {
            argon2::PasswordHash::new(digest)
                .map(|_| ())
                .map_err(|_| PasswordError::BadDigest("Argon2"))
        }
        PasswordAlgorithm::Bcrypt => {
            if digest.starts_with("$2") && digest.len() == 60 {
                Ok(())
            } else {
                Err(PasswordError::BadDigest("Bcrypt"))
            }
        }
        PasswordAlgorithm::Md5 => hex_of(32, "MD5"),
        PasswordAlgorithm::Sha1 => hex_of(40, "SHA1"),
        PasswordAlgorithm::Sha256 => hex_of(64, "SHA256"),
        PasswordAlgorithm::Legacy => Legacy::parse(digest).map(|_| ()),
    }
}

fn equal_hex(computed: &[u8], expected: &str) -> bool {
    constant_time::verify_slices_are_equal(
        hex(computed).as_bytes(),
        expected.to_ascii_lowercase().as_bytes(),
    )
    .is_ok()
}

/// Checks `password` against a stored digest of any supported algorithm.
pub fn verify(password: &str, stored: &Password) -> Result<bool, PasswordError> {
    let digest = stored.password_digest.as_str();
    Ok(match stored.password_algorithm {
        PasswordAlgorithm::Argon2i | PasswordAlgorithm::Argon2id | PasswordAlgorithm::Argon2d => {
            Argon2::default()
                .verify_password(password.as_bytes(), digest)
                .is_ok()
        }
        PasswordAlgorithm::Bcrypt => bcrypt::verify(password, digest).unwrap_or(false),
        PasswordAlgorithm::Md5 => equal_hex(&md5::Md5::digest(password.as_bytes()), digest),
        PasswordAlgorithm::Sha1 => equal_hex(
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes()).as_ref(),
            digest,
        ),
        PasswordAlgorithm::Sha256 => equal_hex(
            digest::digest(&digest::SHA256, password.as_bytes()).as_ref(),
            digest,
        ),
        PasswordAlgorithm::Legacy => Legacy::parse(digest)?.verify(password)?,
    })
}

/// Whether a verified digest should be re-encoded with our parameters.
pub fn needs_rehash(stored: &Password) -> bool {
    stored.password_algorithm != PasswordAlgorithm::Argon2id
        || !stored
            .password_digest
            .contains(&format!("m={MEMORY_KIB},t={PASSES},p={LANES}"))
}

/// Logto's `Legacy` digest: `["<algorithm>", ["<arg>", …, "@", …], "<expected hex>"]`, where
/// `@` stands for the password and the arguments are concatenated before hashing; or
/// `["pbkdf2", ["<salt>", "<iterations>", "<keylen>", "<digest>"], "<expected hex>"]`.
struct Legacy {
    algorithm: String,
    args: Vec<String>,
    expected: String,
}

impl Legacy {
    fn parse(digest: &str) -> Result<Legacy, PasswordError> {
        let bad = || PasswordError::BadDigest("Legacy");
        let value: Value = serde_json::from_str(digest).map_err(|_| bad())?;
        let [
            Value::String(algorithm),
            Value::Array(args),
            Value::String(expected),
        ] = value.as_array().map(Vec::as_slice).ok_or_else(bad)?
        else {
            return Err(bad());
        };
        let args = args
            .iter()
            .map(|a| a.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        let legacy = Legacy {
            algorithm: algorithm.to_ascii_lowercase(),
            args,
            expected: expected.clone(),
        };
        match legacy.algorithm.as_str() {
            "md5" | "sha1" | "sha256" | "sha512" => Ok(legacy),
            "pbkdf2" | "pbkdf2sync" if legacy.args.len() == 4 => Ok(legacy),
            other => Err(PasswordError::UnsupportedLegacy(other.to_owned())),
        }
    }

    fn verify(&self, password: &str) -> Result<bool, PasswordError> {
        let joined: String = self
            .args
            .iter()
            .map(|a| if a == "@" { password } else { a.as_str() })
            .collect();
        let computed = match self.algorithm.as_str() {
            "md5" => md5::Md5::digest(joined.as_bytes()).to_vec(),
            "sha1" => digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, joined.as_bytes())
                .as_ref()
                .to_vec(),
            "sha256" => digest::digest(&digest::SHA256, joined.as_bytes())
                .as_ref()
                .to_vec(),
            "sha512" => digest::digest(&digest::SHA512, joined.as_bytes())
                .as_ref()
                .to_vec(),
            _ => return self.verify_pbkdf2(password),
        };
        Ok(equal_hex(&computed, &self.expected))
    }

    fn verify_pbkdf2(&self, password: &str) -> Result<bool, PasswordError> {
        let bad = || PasswordError::BadDigest("Legacy pbkdf2");
        let salt = self.args[0].strip_prefix("hex:").map_or_else(
            || Ok(self.args[0].as_bytes().to_vec()),
            |h| decode_hex(h).ok_or_else(bad),
        )?;
        let iterations: u32 = self.args[1].parse().map_err(|_| bad())?;
        let length: usize = self.args[2].parse().map_err(|_| bad())?;
        let algorithm = match self.args[3].to_ascii_lowercase().as_str() {
            "sha1" => pbkdf2::PBKDF2_HMAC_SHA1,
            "sha256" => pbkdf2::PBKDF2_HMAC_SHA256,
            "sha512" => pbkdf2::PBKDF2_HMAC_SHA512,
            other => return Err(PasswordError::UnsupportedLegacy(format!("pbkdf2/{other}"))),
        };
        let iterations = std::num::NonZeroU32::new(iterations).ok_or_else(bad)?;
        let mut out = vec![0u8; length.min(1024)];
        pbkdf2::derive(algorithm, iterations, &salt, password.as_bytes(), &mut out);
        Ok(equal_hex(&out, &self.expected))
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A strong random password (server-generated initial or reset password): 20 characters of
/// `[A-Za-z0-9]`, about 119 bits.
pub fn generate() -> Result<String, PasswordError> {
    let mut password = String::new();
    while password.len() < 20 {
        password
            .push_str(&super::ids::secret().map_err(|e| PasswordError::Hashing(e.to_string()))?);
    }
    password.truncate(20);
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(algorithm: PasswordAlgorithm, digest: &str) -> Password {
        Password {
            password_digest: digest.to_owned(),
            password_algorithm: algorithm,
        }
    }

    #[test]
    fn argon2id_round_trip_with_our_parameters() {
        let hashed = hash("correct horse").unwrap();
        assert!(
            hashed
                .password_digest
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        assert!(verify("correct horse", &hashed).unwrap());
        assert!(!verify("wrong", &hashed).unwrap());
        assert!(!needs_rehash(&hashed));
    }

    #[test]
    fn imported_fast_digests_verify_and_ask_for_rehash() {
        let cases = [
            (PasswordAlgorithm::Md5, "5f4dcc3b5aa765d61d8327deb882cf99"),
            (
                PasswordAlgorithm::Sha1,
                "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
            ),
            (
                PasswordAlgorithm::Sha256,
                "5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8",
            ),
        ];
        for (algorithm, digest) in cases {
            let imported = stored(algorithm, digest);
            validate(&imported).unwrap();
            assert!(verify("password", &imported).unwrap(), "{algorithm:?}");
            assert!(!verify("Password", &imported).unwrap());
            assert!(needs_rehash(&imported));
        }
    }

    #[test]
    fn bcrypt_and_argon2i_imports_verify() {
        let bcrypted = bcrypt::hash("s3cret", 4).unwrap();
        assert!(verify("s3cret", &stored(PasswordAlgorithm::Bcrypt, &bcrypted)).unwrap());
        let argon2i = "$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQxMjM0$Mnc2sGOYZJ0+Aw3Oyom/p3RmK2snBKyKmuH3mIk5DTs";
        let imported = stored(PasswordAlgorithm::Argon2i, argon2i);
        validate(&imported).unwrap();
        assert!(!verify("not it", &imported).unwrap());
    }

    #[test]
    fn legacy_recipes() {
        // md5("salt" + password)
        let salted = r#"["md5", ["salt", "@"], "a3e8a15e0e6d0f62c5b6e4b8d1fb0b73"]"#;
        let computed = hex(&md5::Md5::digest(b"saltpassword"));
        let salted = salted.replace("a3e8a15e0e6d0f62c5b6e4b8d1fb0b73", &computed);
        assert!(verify("password", &stored(PasswordAlgorithm::Legacy, &salted)).unwrap());
        assert!(matches!(
            validate(&stored(
                PasswordAlgorithm::Legacy,
                r#"["whirlpool", ["@"], "00"]"#
            )),
            Err(PasswordError::UnsupportedLegacy(_))
        ));
        assert!(validate(&stored(PasswordAlgorithm::Legacy, "not json")).is_err());
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
