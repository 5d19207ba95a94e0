//! What every stored event carries besides its payload: who, from where, when, which request.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Payload;

/// Who caused an event. Logto distinguishes apps from users in `ctx.auth`; we add the admin
/// console operator and the server itself (bootstrap, key generation, expiry sweeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Actor {
    User(String),
    App(String),
    Admin(String),
    System,
    /// An unauthenticated caller, e.g. someone typing a password on the sign-in page.
    Anonymous,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::App(_) => "app",
            Actor::Admin(_) => "admin",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User(id) | Actor::App(id) | Actor::Admin(id) => Some(id),
            Actor::System | Actor::Anonymous => None,
        }
    }

    pub fn from_parts(kind: &str, id: Option<String>) -> Option<Actor> {
        Some(match (kind, id) {
            ("user", Some(id)) => Actor::User(id),
            ("app", Some(id)) => Actor::App(id),
            ("admin", Some(id)) => Actor::Admin(id),
            ("system", _) => Actor::System,
            ("anonymous", _) => Actor::Anonymous,
            _ => return None,
        })
    }
}

/// The context of the request that produced an event. Built by the HTTP layer, never by the
/// domain: the domain only sees commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub occurred_at: OffsetDateTime,
}

impl Metadata {
    /// For work the server does on its own (bootstrap, migrations of state, sweeps).
    pub fn system(occurred_at: OffsetDateTime) -> Metadata {
        Metadata {
            actor: Actor::System,
            ip: None,
            user_agent: None,
            request_id: None,
            occurred_at,
        }
    }
}

/// An event as read back from the log: upcast to the current version, with its personal data
/// decrypted (or absent when the data subject was erased).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream_id: String,
    pub stream_type: String,
    pub sequence: i32,
    pub event_type: String,
    pub event_version: i32,
    pub payload: Payload,
    pub metadata: Metadata,
    /// True when the personal part of this event could not be decrypted because its data key
    /// was destroyed (erasure). Personal fields are then absent from `payload`.
    pub erased: bool,
}

impl RecordedEvent {
    /// The occurred-at instant as Logto serializes timestamps: milliseconds since the epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        unix_ms(self.metadata.occurred_at)
    }
}

pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
