//! The key-encryption key (KEK) and the keys derived from it. Every at-rest protection hangs off
//! one 32-byte KEK held outside the database (`IDLEDGER_KEK` or a 0600 file), so a dump of the
//! database alone reveals no secret and no personal data.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the key-encryption key must be 32 bytes, base64-encoded")]
    BadKek,
    #[error("ciphertext failed authentication (wrong key or altered bytes)")]
    Tampered,
    #[error("the system random generator failed")]
    Random,
}

/// A person's data key: personal fields of their events are sealed with it, and destroying its
/// wrapped copy in `data_keys` makes them unreadable everywhere (crypto-shredding).
pub struct DataKey(RandomizedNonceKey);

impl DataKey {
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.0, aad, sealed)
    }
}

pub struct Keyring {
    /// Wraps data keys; the subject id is the associated data so a wrapped key cannot be moved
    /// to another person.
    wrap: RandomizedNonceKey,
    /// Seals vault entries (app secrets, signing keys, values Logto shows again later).
    vault: RandomizedNonceKey,
    /// Keyed hash for looking secrets up without storing them (client secrets, tokens, codes).
    lookup: hmac::Key,
}

fn seal(key: &RandomizedNonceKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut in_out = plaintext.to_vec();
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::Random)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
    sealed.extend_from_slice(nonce.as_ref());
    sealed.extend_from_slice(&in_out);
    Ok(sealed)
}

fn open(key: &RandomizedNonceKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Tampered);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Tampered)?;
    let mut in_out = ciphertext.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::Tampered)?
        .len();
    in_out.truncate(plain_len);
    Ok(in_out)
}

fn aes_key(bytes: &[u8]) -> Result<RandomizedNonceKey, CryptoError> {
    RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::BadKek)
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &hkdf::Prk, purpose: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let info = [purpose.as_bytes()];
    let mut out = [0u8; KEY_LEN];
    prk.expand(&info, Len(KEY_LEN))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| CryptoError::BadKek)?;
    Ok(out)
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    rand::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

impl Keyring {
    pub fn from_kek(kek: &[u8]) -> Result<Keyring, CryptoError> {
        if kek.len() != KEY_LEN {
            return Err(CryptoError::BadKek);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"idledger kek v1").extract(kek);
        Ok(Keyring {
            wrap: aes_key(&derive(&prk, "data-key wrap")?)?,
            vault: aes_key(&derive(&prk, "vault")?)?,
            lookup: hmac::Key::new(hmac::HMAC_SHA256, &derive(&prk, "lookup hash")?),
        })
    }

    pub fn from_base64(encoded: &str) -> Result<Keyring, CryptoError> {
        let kek = STANDARD
            .decode(encoded.trim())
            .map_err(|_| CryptoError::BadKek)?;
        Keyring::from_kek(&kek)
    }

    pub fn generate_kek_base64() -> Result<String, CryptoError> {
        Ok(STANDARD.encode(random_bytes::<KEY_LEN>()?))
    }

    /// A fresh data key for `subject`, and its wrapped form to store in `data_keys`.
    pub fn new_data_key(&self, subject: &str) -> Result<(DataKey, Vec<u8>), CryptoError> {
        let raw = random_bytes::<KEY_LEN>()?;
        let wrapped = seal(&self.wrap, subject.as_bytes(), &raw)?;
        Ok((DataKey(aes_key(&raw)?), wrapped))
    }

    pub fn unwrap_data_key(&self, subject: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let raw = open(&self.wrap, subject.as_bytes(), wrapped)?;
        Ok(DataKey(aes_key(&raw)?))
    }

    pub fn seal_vault(&self, vault_ref: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.vault, vault_ref.as_bytes(), plaintext)
    }

    pub fn open_vault(&self, vault_ref: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.vault, vault_ref.as_bytes(), sealed)
    }

    /// HMAC-SHA256 of a secret, hex-encoded, domain-separated by `kind` so a token of one kind
    /// never matches a lookup of another.
    pub fn lookup_hash(&self, kind: &str, secret: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.lookup);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(secret.as_bytes());
        hex(ctx.sign().as_ref())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::from_kek(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_data_key_only_unwraps_for_its_subject() {
        let ring = keyring();
        let (key, wrapped) = ring.new_data_key("user-a").unwrap();
        let sealed = key.seal(b"aad", b"ada@example.com").unwrap();
        let again = ring.unwrap_data_key("user-a", &wrapped).unwrap();
        assert_eq!(again.open(b"aad", &sealed).unwrap(), b"ada@example.com");
        assert!(ring.unwrap_data_key("user-b", &wrapped).is_err());
        assert!(again.open(b"other aad", &sealed).is_err());
    }

    #[test]
    fn a_flipped_byte_fails_authentication() {
        let ring = keyring();
        let mut sealed = ring.seal_vault("ref", b"secret").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            ring.open_vault("ref", &sealed),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn lookup_hashes_are_keyed_and_domain_separated() {
        let a = keyring().lookup_hash("client_secret", "s3cret");
        assert_eq!(a, keyring().lookup_hash("client_secret", "s3cret"));
        assert_ne!(a, keyring().lookup_hash("refresh_token", "s3cret"));
        let other = Keyring::from_kek(&[8u8; 32]).unwrap();
        assert_ne!(a, other.lookup_hash("client_secret", "s3cret"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_kek_of_the_wrong_length_is_refused() {
        assert!(matches!(
            Keyring::from_kek(&[1u8; 16]),
            Err(CryptoError::BadKek)
        ));
        assert!(Keyring::from_base64("not base64!").is_err());
    }
}
