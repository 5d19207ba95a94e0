//! Everything that turns a secret into something safe to store: the key-encryption key and its
//! derived keys, per-person data keys, the vault, keyed lookup hashes.

pub mod ids;
pub mod password;
pub mod password_policy;
mod keyring;
pub mod signing;

pub use keyring::{CryptoError, DataKey, Keyring};
