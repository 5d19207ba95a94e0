//! Second-factor secrets: TOTP (RFC 6238 over RFC 4226: HMAC-SHA-1, 30-second steps, six
//! digits, what every authenticator app defaults to), its base32 secrets (RFC 4648, as otpauth
//! URIs carry them), and backup codes (Logto's: ten codes of ten hex digits). Randomness comes
//! from the CSPRNG, HMAC from aws-lc-rs, the one crypto provider.

use aws_lc_rs::{constant_time, hmac};

use super::CryptoError;
use super::keyring::random_bytes;

/// RFC 6238's time step.
pub const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
/// Codes of the previous and the next step are accepted too (clock drift, a code typed as it
/// changed), as Logto's otplib `window: 1`.
const WINDOW: i64 = 1;
/// 160-bit secrets (RFC 4226's recommendation), 32 base32 characters, as otplib makes them.
const SECRET_BYTES: usize = 20;
pub const BACKUP_CODE_COUNT: usize = 10;
const BACKUP_CODE_LENGTH: usize = 10;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 with no padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (upper or lower case, `=` padding and spaces ignored); `None` if a character
/// is not base32.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| *c != '=' && *c != ' ') {
        let c = u8::try_from(c.to_ascii_uppercase()).ok()?;
        let value = u32::try_from(BASE32.iter().position(|b| *b == c)?).ok()?;
        buffer = ((buffer << 5) | value) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Logto's `validateTotpSecret`: 16 to 32 characters of (padded) base32.
pub fn valid_secret(secret: &str) -> bool {
    let length = secret.len();
    let unpadded = secret.trim_end_matches('=');
    (16..=32).contains(&length)
        && unpadded
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        && base32_decode(secret).is_some()
}

pub fn new_secret() -> Result<String, CryptoError> {
    Ok(base32_encode(&random_bytes::<SECRET_BYTES>()?))
}

/// The time step of a moment (Unix milliseconds).
pub fn step_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000).div_euclid(STEP_SECONDS)
}

/// The code of `step` for the raw secret (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let digest = tag.as_ref();
    let offset = usize::from(digest.last().copied().unwrap_or(0) & 0x0f);
    let word = digest
        .get(offset..offset + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]));
    format!("{:06}", word % 10u32.pow(DIGITS))
}

/// The step within the window around `now_ms` whose code `code` is, if any. Every candidate is
/// compared in constant time.
pub fn matching_step(secret_base32: &str, code: &str, now_ms: i64) -> Option<i64> {
    let secret = base32_decode(secret_base32)?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now_ms);
    let mut found = None;
    for step in current - WINDOW..=current + WINDOW {
        let expected = code_at(&secret, step);
        if constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok() {
            found = found.or(Some(step));
        }
    }
    found
}

/// The otpauth URI authenticator apps read from the QR code (Key Uri Format, as otplib's
/// `keyuri` writes it).
pub fn key_uri(issuer: &str, account: &str, secret: &str) -> String {
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    // A path segment: spaces are %20 there, never `+`.
    let label = format!("{}:{}", encode(issuer), encode(account)).replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={secret}&period={STEP_SECONDS}&digits={DIGITS}\
         &algorithm=SHA1&issuer={}",
        encode(issuer)
    )
}

/// Ten fresh backup codes of ten lowercase hex digits.
pub fn new_backup_codes() -> Result<Vec<String>, CryptoError> {
    (0..BACKUP_CODE_COUNT)
        .map(|_| {
            let bytes = random_bytes::<{ BACKUP_CODE_LENGTH / 2 }>()?;
            Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect()
}

/// Logto's `validateBackupCodes`: exactly ten codes of ten hex digits.
pub fn valid_backup_codes(codes: &[String]) -> bool {
    codes.len() == BACKUP_CODE_COUNT
        && codes
            .iter()
            .all(|c| c.len() == BACKUP_CODE_LENGTH && c.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// How a backup code is compared: lowercase, without surrounding blanks.
pub fn normalize_backup_code(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_truncated_to_six_digits() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890"; the RFC lists eight digits,
        // the last six of which are the six-digit code.
        let seed = b"12345678901234567890";
        for (seconds, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(seed, step_at(seconds * 1000)), eight[2..]);
        }
    }

    #[test]
    fn base32_round_trips_and_secrets_are_valid() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZ1"), None);
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 32);
        assert!(valid_secret(&secret));
        assert!(!valid_secret("invalid-totp-secret"));
        assert!(!valid_secret("ABC"));
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        let secret = new_secret().unwrap();
        let raw = base32_decode(&secret).unwrap();
        let now = 1_700_000_000_000;
        let step = step_at(now);
        for offset in [-1, 0, 1] {
            let code = code_at(&raw, step + offset);
            assert_eq!(matching_step(&secret, &code, now), Some(step + offset));
        }
        let far = code_at(&raw, step + 2);
        if far != code_at(&raw, step) {
            assert_eq!(matching_step(&secret, &far, now), None);
        }
        assert_eq!(matching_step(&secret, "12a456", now), None);
    }

    #[test]
    fn backup_codes_have_logtos_shape() {
        let codes = new_backup_codes().unwrap();
        assert!(valid_backup_codes(&codes));
        assert!(!valid_backup_codes(&codes[1..]));
        assert!(!valid_backup_codes(&vec![String::from("short"); 10]));
    }

    #[test]
    fn key_uris_escape_the_label() {
        assert_eq!(
            key_uri("id.example", "Ada Lovelace", "ABC"),
            "otpauth://totp/id.example:Ada%20Lovelace?secret=ABC&period=30&digits=6\
             &algorithm=SHA1&issuer=id.example"
        );
    }
}
