//! Identifiers and secrets in Logto's formats, from the system CSPRNG.

use super::CryptoError;
use super::keyring::random_bytes;

const LOWER_ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Uniform characters of `alphabet` by rejection sampling (no modulo bias).
fn random_string(len: usize, alphabet: &[u8]) -> Result<String, CryptoError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes::<64>()? {
            if usize::from(byte) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

/// Logto's "standard id": 21 characters `[0-9a-z]` (applications, roles, logs, tokens).
pub fn standard_id() -> Result<String, CryptoError> {
    random_string(21, LOWER_ALNUM)
}

/// Logto's "short id": 12 characters `[0-9a-z]` (users, connectors, organizations).
pub fn short_id() -> Result<String, CryptoError> {
    random_string(12, LOWER_ALNUM)
}

/// Logto's "standard secret": 32 characters `[0-9A-Za-z]` (app secrets, one-time tokens).
pub fn secret() -> Result<String, CryptoError> {
    random_string(32, ALNUM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_logto() {
        let id = standard_id().unwrap();
        assert_eq!(id.len(), 21);
        assert!(id.bytes().all(|b| LOWER_ALNUM.contains(&b)));
        assert_eq!(short_id().unwrap().len(), 12);
        let secret = secret().unwrap();
        assert_eq!(secret.len(), 32);
        assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(secret, super::secret().unwrap());
    }
}
