//! The event store: the only code that appends to the log. A unit of work (commands on one or
//! more streams) is decided on the caller's task: load each touched stream, fold, decide, encode,
//! seal personal data and secrets. The node's appender (`append.rs`) then commits it with the
//! other units that arrived meanwhile, in one transaction that takes the next gapless positions,
//! runs every projection over the new events and commits (group commit); the caller is answered
//! after that commit.

mod append;
pub mod chain;
pub mod personal;
pub mod read;
mod refold;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use domain::{Aggregate, Metadata, RecordedEvent, Rejection};
use tokio_postgres::error::SqlState;

use crate::crypto::{CryptoError, Keyring};
use append::{Appender, Prepared, PreparedEvent};
use read::{Keys, Raw, SELECT_EVENTS};

pub use refold::{Rebuilt, Snapshot, Stretch, catch_up, export_snapshot, rebuild, refold};

/// How often a unit is retried when another writer appended to one of its streams first.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A read model refused the new state (duplicate email, value too long, ...): nothing was
    /// appended. Carries the constraint name, or the SQL state when the constraint has none.
    #[error("read-model constraint {0} violated")]
    Constraint(String),
    #[error("stream {stream_id} kept changing under us; gave up after {attempts} attempts")]
    Conflict { stream_id: String, attempts: u32 },
    #[error("the personal data of {0} was erased; nothing personal can be recorded for it")]
    SubjectErased(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("event store failure: {0}")]
    Internal(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        classify(&error)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> StoreError {
        StoreError::Unavailable(error.to_string())
    }
}

impl From<CryptoError> for StoreError {
    fn from(error: CryptoError) -> StoreError {
        StoreError::Internal(error.to_string())
    }
}

impl From<domain::CodecError> for StoreError {
    fn from(error: domain::CodecError) -> StoreError {
        StoreError::Internal(error.to_string())
    }
}

impl From<read::ReadError> for StoreError {
    fn from(error: read::ReadError) -> StoreError {
        match error {
            read::ReadError::Database(db) => classify(&db),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl From<projections::ProjectionError> for StoreError {
    fn from(error: projections::ProjectionError) -> StoreError {
        match error {
            projections::ProjectionError::Database(db) => classify(&db),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// Sorts database failures into what the caller can act on: a lost race (retry), a read-model
/// constraint (the command is refused), an outage (503), or a bug.
fn classify(error: &tokio_postgres::Error) -> StoreError {
    let Some(code) = error.code() else {
        return StoreError::Unavailable(error.to_string());
    };
    let constraint = error
        .as_db_error()
        .and_then(|db| db.constraint())
        .map(str::to_owned);
    match code {
        c if *c == SqlState::UNIQUE_VIOLATION
            && constraint.as_deref() == Some("events_stream_sequence") =>
        {
            StoreError::Conflict {
                stream_id: String::new(),
                attempts: 0,
            }
        }
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            StoreError::Conflict {
                stream_id: String::new(),
                attempts: 0,
            }
        }
        c if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::CHECK_VIOLATION
            || *c == SqlState::FOREIGN_KEY_VIOLATION
            || *c == SqlState::NOT_NULL_VIOLATION
            || *c == SqlState::EXCLUSION_VIOLATION =>
        {
            StoreError::Constraint(constraint.unwrap_or_else(|| code.code().to_owned()))
        }
        c if *c == SqlState::STRING_DATA_RIGHT_TRUNCATION => {
            StoreError::Constraint("value_too_long".to_owned())
        }
        // Other data exceptions (e.g. text PostgreSQL cannot store) are the input's fault.
        c if c.code().starts_with("22") => StoreError::Constraint("invalid_data".to_owned()),
        c if c.code().starts_with("08")
            || c.code().starts_with("57P")
            || *c == SqlState::CANNOT_CONNECT_NOW
            || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreError::Unavailable(describe(error))
        }
        _ => StoreError::Internal(describe(error)),
    }
}

/// tokio-postgres prints server errors as just "db error"; the server's message is the useful
/// part.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} ({}): {}",
            db.message(),
            db.code().code(),
            db.detail().unwrap_or("")
        ),
        None => error.to_string(),
    }
}

/// What a unit of work appended, in position order, as the projections saw them.
#[derive(Debug, Default)]
pub struct Committed {
    pub events: Vec<RecordedEvent>,
}

impl Committed {
    pub fn last_position(&self) -> Option<i64> {
        self.events.last().map(|e| e.position)
    }
}

/// One stream's part of a unit of work, its aggregate type erased so several aggregates can
/// share one unit.
trait Step: Send + Sync {
    fn stream_type(&self) -> &'static str;

    fn stream_id(&self) -> &str;

    /// Whether the caller just named this stream with a fresh random id (see `Unit::then_fresh`).
    fn fresh(&self) -> bool;

    /// Folds the stream's recorded history, then the events this unit decided for the same
    /// stream in earlier steps, and decides the command. Pure.
    fn decide(
        &self,
        history: &[RecordedEvent],
        earlier: &[&domain::Encoded],
    ) -> Result<Decided, StoreError>;
}

struct Typed<A: Aggregate> {
    stream_id: String,
    command: A::Command,
    fresh: bool,
}

/// New events of one stream, encoded, before they get sequences and positions.
struct Decided {
    subject: Option<String>,
    events: Vec<domain::Encoded>,
    retired_vault_refs: Vec<String>,
    /// The data keys these events destroy (an erasure).
    erased_subjects: Vec<String>,
}

impl<A> Step for Typed<A>
where
    A: Aggregate,
    A::Command: Clone + Sync,
{
    fn stream_type(&self) -> &'static str {
        A::TYPE
    }

    fn stream_id(&self) -> &str {
        &self.stream_id
    }

    fn fresh(&self) -> bool {
        self.fresh
    }

    fn decide(
        &self,
        history: &[RecordedEvent],
        earlier: &[&domain::Encoded],
    ) -> Result<Decided, StoreError> {
        let mut state = A::default();
        for recorded in history {
            state.apply(&domain::decode::<A::Event>(
                &recorded.event_type,
                &recorded.payload,
            )?);
        }
        for encoded in earlier {
            state.apply(&domain::decode::<A::Event>(
                &encoded.event_type,
                &encoded.payload,
            )?);
        }
        let events = state
            .decide(self.command.clone())
            .map_err(|error| StoreError::Rejected(error.into()))?;
        let subject = state.data_subject(&self.stream_id, &events);
        let erased_subjects = state.erased_subjects(&self.stream_id, &events);
        let retired_vault_refs = events
            .iter()
            .flat_map(domain::Event::retired_vault_refs)
            .collect();
        Ok(Decided {
            subject,
            events: events
                .iter()
                .map(domain::encode)
                .collect::<Result<_, _>>()?,
            retired_vault_refs,
            erased_subjects,
        })
    }
}

/// Makes sure `keys` holds the subject's data key: unwrapped from `data_keys`, or new (then
/// also returned wrapped, for the appender to store with the unit).
async fn data_key(
    client: &Object,
    keyring: &Keyring,
    keys: &mut Keys<'_>,
    subject: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    if keys.holds(subject) {
        return Ok(None);
    }
    let select = client
        .prepare_cached("SELECT wrapped_key FROM data_keys WHERE subject_id = $1")
        .await?;
    match client.query_opt(&select, &[&subject]).await? {
        Some(row) => match row.try_get::<_, Option<Vec<u8>>>(0)? {
            Some(wrapped) => {
                keys.unwrap_into(subject, &wrapped)?;
                Ok(None)
            }
            None => Err(StoreError::SubjectErased(subject.to_owned())),
        },
        None => {
            let (key, wrapped) = keyring.new_data_key(subject)?;
            keys.insert(subject.to_owned(), key);
            Ok(Some(wrapped))
        }
    }
}

/// A unit of work: commands on one or more streams, decided and appended atomically, plus the
/// secrets their events refer to.
#[derive(Default)]
pub struct Unit {
    steps: Vec<Box<dyn Step>>,
    seals: Vec<(String, Vec<u8>)>,
}

impl Unit {
    pub fn new() -> Unit {
        Unit::default()
    }

    pub fn then<A>(mut self, stream_id: impl Into<String>, command: A::Command) -> Unit
    where
        A: Aggregate,
        A::Command: Clone + Sync,
    {
        self.steps.push(Box::new(Typed::<A> {
            stream_id: stream_id.into(),
            command,
            fresh: false,
        }));
        self
    }

    /// Like `then`, for a stream the caller has just named with a fresh random id (a token
    /// exchange's audit stream): the first attempt decides on the empty state without reading
    /// the log. Should the stream exist after all, the append is refused by the unique
    /// `(stream_type, stream_id, sequence)` key like any lost race, and the retry reads it.
    pub fn then_fresh<A>(mut self, stream_id: impl Into<String>, command: A::Command) -> Unit
    where
        A: Aggregate,
        A::Command: Clone + Sync,
    {
        self.steps.push(Box::new(Typed::<A> {
            stream_id: stream_id.into(),
            command,
            fresh: true,
        }));
        self
    }

    /// Seals `plaintext` into the vault under `vault_ref`, in the same transaction as the
    /// events that refer to it.
    pub fn seal(mut self, vault_ref: impl Into<String>, plaintext: impl Into<Vec<u8>>) -> Unit {
        self.seals.push((vault_ref.into(), plaintext.into()));
        self
    }
}

#[derive(Clone)]
pub struct EventStore {
    pool: Pool,
    keyring: Arc<Keyring>,
    appender: Arc<Appender>,
    /// Units this node committed, by stream type they touched (see `changes`).
    committed: Arc<Mutex<HashMap<&'static str, u64>>>,
}

impl EventStore {
    pub fn new(pool: Pool, keyring: Arc<Keyring>) -> EventStore {
        EventStore {
            appender: Arc::new(Appender::new(pool.clone())),
            pool,
            keyring,
            committed: Arc::default(),
        }
    }

    /// How many units touching any of `stream_types` this node has committed so far. A cache of
    /// read models built from those streams compares it with the value it read before filling
    /// an entry, so it never serves this node's own earlier view after this node changed them
    /// (other nodes' changes reach it within the cache's TTL).
    pub fn changes(&self, stream_types: &[&str]) -> u64 {
        let committed = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stream_types
            .iter()
            .filter_map(|stream_type| committed.get(stream_type))
            .sum()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub async fn execute<A>(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: &Metadata,
    ) -> Result<Committed, StoreError>
    where
        A: Aggregate,
        A::Command: Clone + Sync,
    {
        self.run(Unit::new().then::<A>(stream_id, command), metadata)
            .await
    }

    pub async fn run(&self, unit: Unit, metadata: &Metadata) -> Result<Committed, StoreError> {
        let metadata = at_storage_precision(metadata);
        let mut attempt = 1;
        loop {
            match self.attempt(&unit, &metadata, attempt).await {
                Err(StoreError::Conflict { .. }) if attempt < MAX_ATTEMPTS => {
                    metrics::counter!("idledger_store_conflicts_total").increment(1);
                    // Spread the retries of writers that collided so they do not collide again.
                    let jitter = rand::random_range(0..(2u64 << attempt));
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                    attempt += 1;
                }
                Err(StoreError::Conflict { .. }) => {
                    let stream_id = unit
                        .steps
                        .first()
                        .map(|s| s.stream_id().to_owned())
                        .unwrap_or_default();
                    return Err(StoreError::Conflict {
                        stream_id,
                        attempts: attempt,
                    });
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        unit: &Unit,
        metadata: &Metadata,
        attempt: u32,
    ) -> Result<Committed, StoreError> {
        let Some(prepared) = self.prepare(unit, metadata, attempt).await? else {
            return Ok(Committed::default());
        };
        let committed = self.appender.append(prepared).await?;
        // Counted before the caller answers, so its next request sees the change.
        let mut counts = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for step in &unit.steps {
            *counts.entry(step.stream_type()).or_default() += 1;
        }
        Ok(committed)
    }

    /// Loads the unit's streams, decides every step and encodes (and seals) the new events, on
    /// the caller's task and a pool connection of its own, so that many units prepare in
    /// parallel while the appender commits. `None` when the unit decides no event.
    ///
    /// The streams are read outside any transaction, as they were read without locks before:
    /// the unique `(stream_type, stream_id, sequence)` key refuses the append if another writer
    /// got there first, and the unit is then decided again (optimistic concurrency).
    async fn prepare(
        &self,
        unit: &Unit,
        metadata: &Metadata,
        attempt: u32,
    ) -> Result<Option<Prepared>, StoreError> {
        let client = self.pool.get().await?;
        let mut streams: Vec<(&'static str, &str)> = Vec::new();
        for step in &unit.steps {
            let stream = (step.stream_type(), step.stream_id());
            if !streams.contains(&stream) {
                streams.push(stream);
            }
        }
        // Streams only fresh steps name are not read on the first attempt (`Unit::then_fresh`).
        let unread = |stream: &(&'static str, &str)| {
            attempt == 1
                && unit
                    .steps
                    .iter()
                    .filter(|step| (step.stream_type(), step.stream_id()) == *stream)
                    .all(|step| step.fresh())
        };
        let select = client
            .prepare_cached(&format!(
                "{SELECT_EVENTS} WHERE e.stream_type = $1 AND e.stream_id = $2 ORDER BY e.sequence"
            ))
            .await?;
        // Polled together, the loads go out in one pipeline on the connection.
        let loaded = futures::future::try_join_all(streams.iter().map(|stream| {
            let (client, select) = (&client, &select);
            let skip = unread(stream);
            let (stream_type, stream_id) = stream;
            async move {
                if skip {
                    return Ok(Vec::new());
                }
                client.query(select, &[stream_type, stream_id]).await
            }
        }))
        .await?;
        let mut keys = Keys::new(&self.keyring);
        let mut histories = Vec::with_capacity(loaded.len());
        for rows in &loaded {
            let mut history = Vec::with_capacity(rows.len());
            for row in rows {
                history.push(keys.decode(Raw::from_row(row)?)?);
            }
            histories.push(history);
        }

        // Per step, in order: the index of its stream, its first new sequence, its decision.
        let mut decided: Vec<(usize, i32, Decided)> = Vec::with_capacity(unit.steps.len());
        for step in &unit.steps {
            let stream = (step.stream_type(), step.stream_id());
            let index = streams.iter().position(|s| *s == stream).unwrap_or(0);
            let history = histories.get(index).map_or(&[][..], Vec::as_slice);
            let earlier: Vec<&domain::Encoded> = decided
                .iter()
                .filter(|(other, _, _)| *other == index)
                .flat_map(|(_, _, decision)| decision.events.iter())
                .collect();
            let next = history.last().map_or(0, |e| e.sequence)
                + i32::try_from(earlier.len()).unwrap_or(i32::MAX)
                + 1;
            let decision = step.decide(history, &earlier)?;
            decided.push((index, next, decision));
        }
        if decided
            .iter()
            .all(|(_, _, decision)| decision.events.is_empty())
        {
            return Ok(None);
        }

        let mut new_keys = Vec::new();
        for (index, _, decision) in &decided {
            let Some(subject) = &decision.subject else {
                continue;
            };
            if decision.events.is_empty() {
                continue;
            }
            // A fresh stream that is its own data subject (a user just given a random id) has
            // no key yet either: one is made without asking. Should it exist after all, the
            // key's insert conflicts like a lost race and the retry reads it.
            let fresh_subject = streams
                .get(*index)
                .is_some_and(|stream| unread(stream) && stream.1 == subject.as_str());
            let wrapped = if fresh_subject && !keys.holds(subject) {
                let (key, wrapped) = self.keyring.new_data_key(subject)?;
                keys.insert(subject.clone(), key);
                Some(wrapped)
            } else {
                data_key(&client, &self.keyring, &mut keys, subject).await?
            };
            if let Some(wrapped) = wrapped {
                new_keys.push((subject.clone(), wrapped));
            }
        }
        // Not held while the unit waits for its batch.
        drop(client);

        let mut events = Vec::new();
        let mut retired = Vec::new();
        let mut shredded = Vec::new();
        for (index, first_sequence, decision) in decided {
            shredded.extend(decision.erased_subjects.iter().cloned());
            let (stream_type, stream_id) = streams.get(index).copied().unwrap_or(("", ""));
            retired.extend(decision.retired_vault_refs);
            let key = decision.subject.as_deref().and_then(|s| keys.key(s));
            for (offset, event) in decision.events.into_iter().enumerate() {
                let sequence = first_sequence + i32::try_from(offset).unwrap_or(i32::MAX);
                if key.is_none() && !event.personal_fields.is_empty() {
                    return Err(StoreError::Internal(format!(
                        "{} names personal fields but its stream has no data subject",
                        event.event_type
                    )));
                }
                let aad = personal::aad(stream_id, sequence, &event.event_type);
                let split = personal::split(
                    event.payload.clone(),
                    event.personal_fields,
                    personal::Request {
                        ip: metadata.ip.as_deref(),
                        user_agent: metadata.user_agent.as_deref(),
                    },
                    key,
                    &aad,
                )?;
                events.push(PreparedEvent {
                    stream_id: stream_id.to_owned(),
                    stream_type,
                    sequence,
                    event_type: event.event_type,
                    version: event.version,
                    payload: event.payload,
                    stored: split.payload,
                    personal: split.personal,
                    subject: decision.subject.clone(),
                    ip: split.ip,
                    user_agent: split.user_agent,
                });
            }
        }
        let seals = unit
            .seals
            .iter()
            .map(|(vault_ref, plaintext)| {
                Ok((
                    vault_ref.clone(),
                    self.keyring.seal_vault(vault_ref, plaintext)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(Prepared {
            metadata: metadata.clone(),
            events,
            new_keys,
            seals,
            retired,
            shredded,
        }))
    }

    /// The streams of `stream_type` with events sealed under any of `subjects`: what destroying
    /// those keys makes unreadable (an erasure names them, so the read models can forget what
    /// they copied in the clear).
    pub async fn streams_sealed_for(
        &self,
        stream_type: &str,
        subjects: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT DISTINCT stream_id FROM events \
                 WHERE subject_id = ANY($1) AND stream_type = $2 ORDER BY stream_id",
            )
            .await?;
        let rows = client.query(&statement, &[&subjects, &stream_type]).await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(StoreError::from))
            .collect()
    }

    /// The subject to seal under for `base`, a subject that outlives the people it concerns (a
    /// mail address): its current key generation (see `generation`). Generations are destroyed
    /// in order, so the first one still whole is current; they are probed by primary key, a
    /// window at a time, rather than by scanning `data_keys` for destroyed keys.
    pub async fn current_generation(&self, base: &str) -> Result<String, StoreError> {
        const WINDOW: i64 = 8;
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT count(*) FROM data_keys \
                 WHERE subject_id = ANY($1) AND wrapped_key IS NULL",
            )
            .await?;
        let mut destroyed = 0;
        loop {
            let window: Vec<String> = (destroyed..destroyed + WINDOW)
                .map(|n| generation(base, n))
                .collect();
            let found: i64 = client.query_one(&statement, &[&window]).await?.try_get(0)?;
            destroyed += found;
            if found < WINDOW {
                return Ok(generation(base, destroyed));
            }
        }
    }

    /// Reads a vault entry back (app secrets are shown again by the Management API).
    pub async fn open_vault(&self, vault_ref: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT sealed FROM vault WHERE ref = $1")
            .await?;
        let Some(row) = client.query_opt(&statement, &[&vault_ref]).await? else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.try_get(0)?;
        Ok(Some(self.keyring.open_vault(vault_ref, &sealed)?))
    }
}

/// Generation `destroyed` of `base`: `base` itself until its key is destroyed, then `base#1`,
/// `base#2`, ... An erased key stays destroyed for good (what was sealed under it must stay
/// unreadable), so whoever uses the address next needs a subject, and a key, of their own.
fn generation(base: &str, destroyed: i64) -> String {
    match destroyed {
        0 => base.to_owned(),
        n => format!("{base}#{n}"),
    }
}

/// PostgreSQL keeps microseconds; the projections of the live append must see the same instant
/// that replay will read back, or `replay check` would find millisecond drifts.
fn at_storage_precision(metadata: &Metadata) -> Metadata {
    let mut metadata = metadata.clone();
    let micros = metadata.occurred_at.microsecond();
    metadata.occurred_at = metadata
        .occurred_at
        .replace_microsecond(micros)
        .unwrap_or(metadata.occurred_at);
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_a_new_generation_per_destroyed_key() {
        assert_eq!(generation("email:h", 0), "email:h");
        assert_eq!(generation("email:h", 1), "email:h#1");
        assert_eq!(generation("email:h", 2), "email:h#2");
    }
}
