//! Everything that turns a secret into something safe to store: the key-encryption key and its
//! derived keys, per-person data keys, the vault, keyed lookup hashes.

mod keyring;

pub use keyring::{CryptoError, DataKey, Keyring};
