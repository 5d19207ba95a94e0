//! Client authentication at the token endpoint: HTTP Basic or body credentials, checked against
//! the application's secrets by keyed hash (no secret is stored or compared in the clear).
//!
//! What a successful authentication read (the application, which secret matched and until when)
//! is kept for `CACHE_TTL` in a small in-process cache, as the token endpoint keeps resources
//! and granted scopes, so that a token costs no read-model query while its client keeps asking.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::application::AppType;
use projections::applications::{self, ApplicationRow};

use super::error::OidcError;
use super::params::Params;
use crate::app::AppState;

/// Domain of the keyed hash under which client secrets are looked up.
pub const SECRET_HASH_KIND: &str = "client_secret";

/// How long a node reuses what it read about a client, a resource or the scopes an
/// application's roles grant. A change made through *another* node (a deleted or expired
/// secret, a deleted application, a removed role or scope) takes effect here at most this much
/// later; a change made through this node takes effect at once, because every entry also
/// remembers `EventStore::changes` of `CACHED_FROM` and is dropped when that moved. Secret
/// expiry is checked on every use, never cached.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// Stream types whose events change what the caches hold (applications and their secrets and
/// roles, roles and their scopes, resources and their scopes).
pub const CACHED_FROM: &[&str] = &["application", "role", "resource"];

/// Entries a cache keeps at most; when full it starts over (it only saves queries).
const CACHE_ENTRIES: usize = 10_000;

/// A read-model answer cache bounded in age (`CACHE_TTL`) and invalidated by this node's own
/// writes to `CACHED_FROM` streams.
pub struct Cache<K, V> {
    entries: LazyLock<Mutex<HashMap<K, Entry<V>>>>,
}

/// When a value was read, and `EventStore::changes(CACHED_FROM)` just before.
struct Entry<V> {
    read_at: Instant,
    changes: u64,
    value: V,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    pub const fn new() -> Cache<K, V> {
        Cache {
            entries: LazyLock::new(|| Mutex::new(HashMap::new())),
        }
    }

    /// The value read for `key` less than `CACHE_TTL` ago, if this node changed nothing it
    /// depends on since (`changes` is `EventStore::changes(CACHED_FROM)` now).
    pub fn get(&self, key: &K, changes: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|entry| entry.changes == changes && entry.read_at.elapsed() < CACHE_TTL)
            .map(|entry| entry.value.clone())
    }

    /// Keeps `value`, read from the database after `changes` was taken.
    pub fn put(&self, key: K, value: V, changes: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                read_at: Instant::now(),
                changes,
                value,
            },
        );
    }
}

/// What authenticating a client read, as cached: keyed by client id and the keyed hash of the
/// presented secret, so a cached entry only ever vouches for the very secret that matched.
#[derive(Clone)]
struct Known {
    application: ApplicationRow,
    app_type: AppType,
    /// The matching secret's name and expiry; `None` for public clients.
    secret: Option<(String, Option<i64>)>,
}

static CLIENTS: Cache<(String, Option<String>), Known> = Cache::new();

pub struct Client {
    pub application: ApplicationRow,
    pub app_type: AppType,
    /// The application secret that authenticated the client; `None` for public clients.
    pub secret_name: Option<String>,
}

struct Presented {
    client_id: String,
    secret: Option<String>,
    basic: bool,
}

/// RFC 6749 §2.3.1: both halves of Basic credentials are form-encoded.
fn form_decode(part: &str) -> String {
    form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, OidcError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OidcError::invalid_request("invalid authorization header value format");
    let value = value.to_str().map_err(|_| malformed())?;
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return Err(malformed());
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, OidcError> {
    let body_id = params.single("client_id")?;
    let body_secret = params.single("client_secret")?;
    match (basic(headers)?, body_id) {
        (Some((id, _)), Some(body)) if body != id => {
            Err(OidcError::invalid_request("client_id mismatch"))
        }
        (Some((client_id, secret)), _) => Ok(Presented {
            client_id,
            secret: Some(secret),
            basic: true,
        }),
        (None, Some(id)) => Ok(Presented {
            client_id: id.to_owned(),
            secret: body_secret.map(str::to_owned),
            basic: false,
        }),
        (None, None) => Err(OidcError::invalid_request(
            "no client authentication mechanism provided",
        )),
    }
}

/// The client id the request names, for the audit record of a refused request.
pub fn claimed_client_id(headers: &HeaderMap, params: &Params) -> Option<String> {
    presented(headers, params).ok().map(|p| p.client_id)
}

fn app_type(name: &str) -> Option<AppType> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    now_ms: i64,
) -> Result<Client, OidcError> {
    let presented = presented(headers, params)?;
    let hash = presented
        .secret
        .as_deref()
        .map(|secret| state.store.keyring().lookup_hash(SECRET_HASH_KIND, secret));
    let key = (presented.client_id.clone(), hash);
    // Taken before reading, so a change this node commits meanwhile voids what we read.
    let changes = state.store.changes(CACHED_FROM);
    let known = match CLIENTS.get(&key, changes) {
        Some(known) => known,
        None => {
            let known = look_up(state, &presented, key.1.as_deref()).await?;
            CLIENTS.put(key, known.clone(), changes);
            known
        }
    };
    let secret_name = match known.secret {
        Some((_, Some(expires_at))) if expires_at <= now_ms => {
            return Err(OidcError::invalid_request("client secret has expired"));
        }
        Some((name, _)) => Some(name),
        None => None,
    };
    Ok(Client {
        application: known.application,
        app_type: known.app_type,
        secret_name,
    })
}

/// Authenticates against the read models: the application, and for a confidential client the
/// secret whose keyed hash is `hash`.
async fn look_up(
    state: &AppState,
    presented: &Presented,
    hash: Option<&str>,
) -> Result<Known, OidcError> {
    let db = state
        .store
        .pool()
        .get()
        .await
        .map_err(crate::http::error::ApiError::from)?;
    let unknown = || {
        OidcError::new(
            "invalid_client",
            format!("invalid client {}", presented.client_id),
        )
    };
    let application = applications::by_id(&db, &presented.client_id)
        .await?
        .ok_or_else(unknown)?;
    let app_type = app_type(&application.app_type).ok_or_else(unknown)?;
    let failed = || {
        let mut error = OidcError::client_authentication_failed();
        error.challenge = presented.basic;
        error
    };
    let secret = match (app_type.is_confidential(), hash) {
        (true, Some(hash)) => {
            let row = applications::secret_by_hash(&db, hash)
                .await?
                .filter(|row| row.application_id == application.id)
                .ok_or_else(failed)?;
            Some((row.name, row.expires_at))
        }
        (false, None) => None,
        (true, None) | (false, Some(_)) => return Err(failed()),
    };
    Ok(Known {
        application,
        app_type,
        secret,
    })
}
