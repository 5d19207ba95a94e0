//! Turning stored rows back into events: personal data rejoined (or marked erased), old versions
//! upcast. Shared by the store (loading a stream to decide) and by replay (folding the whole log).

use std::collections::HashMap;

use domain::upcast::{StoredForm, upcast};
use domain::{Actor, Metadata, Payload, RecordedEvent};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type, accepts};

use super::personal;
use crate::crypto::{CryptoError, DataKey, Keyring};

/// The columns every reader selects, in the order `Raw::from_row` expects; `wrapped_key` comes
/// from a left join on `data_keys`.
pub const SELECT_EVENTS: &str = "SELECT e.position, e.stream_id, e.stream_type, e.sequence, \
     e.event_type, e.event_version, e.payload, e.personal, e.subject_id, e.actor_kind, \
     e.actor_id, e.ip, e.user_agent, e.request_id, e.occurred_at, k.wrapped_key \
     FROM events e LEFT JOIN data_keys k ON k.subject_id = e.subject_id";

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("event at position {position} has an unknown actor kind {kind:?}")]
    Actor { position: i64, kind: String },
    #[error("personal data of the event at position {position}: {source}")]
    Personal { position: i64, source: CryptoError },
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// One row of `events` (plus its subject's wrapped key) as stored.
pub struct Raw {
    pub position: i64,
    pub stream_id: String,
    pub stream_type: String,
    pub sequence: i32,
    pub event_type: String,
    pub event_version: i32,
    pub payload: Payload,
    pub personal: Option<Vec<u8>>,
    pub subject_id: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub wrapped_key: Option<Vec<u8>>,
}

impl Raw {
    pub fn from_row(row: &Row) -> Result<Raw, tokio_postgres::Error> {
        Ok(Raw {
            position: row.try_get(0)?,
            stream_id: row.try_get(1)?,
            stream_type: row.try_get(2)?,
            sequence: row.try_get(3)?,
            event_type: row.try_get(4)?,
            event_version: row.try_get(5)?,
            payload: row.try_get::<_, StoredPayload>(6)?.0,
            personal: row.try_get(7)?,
            subject_id: row.try_get(8)?,
            actor_kind: row.try_get(9)?,
            actor_id: row.try_get(10)?,
            ip: row.try_get(11)?,
            user_agent: row.try_get(12)?,
            request_id: row.try_get(13)?,
            occurred_at: row.try_get(14)?,
            wrapped_key: row.try_get(15)?,
        })
    }
}

/// A `jsonb` or `json` column as a `Payload`: its text, no tree built of it.
struct StoredPayload(Payload);

impl<'a> FromSql<'a> for StoredPayload {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<StoredPayload, Box<dyn std::error::Error + Sync + Send>> {
        // jsonb's binary form is a version byte (1) before the text; json's is the text.
        let text = match (ty, raw.split_first()) {
            (&Type::JSONB, Some((1, text))) => text,
            (&Type::JSONB, _) => return Err("unsupported jsonb version".into()),
            _ => raw,
        };
        Ok(StoredPayload(Payload::stored(
            std::str::from_utf8(text)?.to_owned(),
        )))
    }

    accepts!(JSON, JSONB);
}

/// Unwrapped data keys by subject, so a long read unwraps each person's key once.
pub struct Keys<'k> {
    keyring: &'k Keyring,
    unwrapped: HashMap<String, DataKey>,
}

impl<'k> Keys<'k> {
    pub fn new(keyring: &'k Keyring) -> Keys<'k> {
        Keys {
            keyring,
            unwrapped: HashMap::new(),
        }
    }

    /// Seeds the cache with a key the caller just created.
    pub fn insert(&mut self, subject: String, key: DataKey) {
        self.unwrapped.insert(subject, key);
    }

    pub fn holds(&self, subject: &str) -> bool {
        self.unwrapped.contains_key(subject)
    }

    pub fn key(&self, subject: &str) -> Option<&DataKey> {
        self.unwrapped.get(subject)
    }

    pub fn unwrap_into(&mut self, subject: &str, wrapped: &[u8]) -> Result<(), CryptoError> {
        let key = self.keyring.unwrap_data_key(subject, wrapped)?;
        self.unwrapped.insert(subject.to_owned(), key);
        Ok(())
    }

    fn get(
        &mut self,
        subject: &str,
        wrapped: Option<&[u8]>,
    ) -> Result<Option<&DataKey>, CryptoError> {
        if !self.holds(subject) {
            let Some(wrapped) = wrapped else {
                return Ok(None);
            };
            self.unwrap_into(subject, wrapped)?;
        }
        Ok(self.key(subject))
    }

    pub fn decode(&mut self, raw: Raw) -> Result<RecordedEvent, ReadError> {
        let position = raw.position;
        let key = match &raw.subject_id {
            Some(subject) => self
                .get(subject, raw.wrapped_key.as_deref())
                .map_err(|source| ReadError::Personal { position, source })?,
            None => None,
        };
        // Only a sealed part is bound to the event's identity; most events have none.
        let aad = match raw.personal {
            Some(_) => personal::aad(&raw.stream_id, raw.sequence, &raw.event_type),
            None => Vec::new(),
        };
        let joined = personal::join(
            raw.payload,
            raw.personal.as_deref(),
            key,
            &aad,
            raw.ip,
            raw.user_agent,
        )
        .map_err(|source| ReadError::Personal { position, source })?;
        let actor = Actor::from_parts(&raw.actor_kind, raw.actor_id).ok_or(ReadError::Actor {
            position,
            kind: raw.actor_kind,
        })?;
        let current = upcast(StoredForm {
            stream_type: raw.stream_type,
            event_type: raw.event_type,
            version: raw.event_version,
            payload: joined.payload,
        });
        Ok(RecordedEvent {
            position,
            stream_id: raw.stream_id,
            stream_type: current.stream_type,
            sequence: raw.sequence,
            event_type: current.event_type,
            event_version: current.version,
            payload: current.payload,
            metadata: Metadata {
                actor,
                ip: joined.ip,
                user_agent: joined.user_agent,
                request_id: raw.request_id,
                occurred_at: raw.occurred_at,
            },
            erased: joined.erased,
        })
    }
}
