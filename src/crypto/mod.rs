//! Everything that turns a secret into something safe to store: the key-encryption key and its
//! derived keys, per-person data keys, the vault, keyed lookup hashes.

pub mod ids;
mod keyring;
pub mod password;
pub mod password_policy;
pub mod signing;
pub mod totp;

pub use keyring::{CryptoError, DataKey, Keyring};
