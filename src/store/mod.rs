//! The event store: the only code that appends to the log. One unit of work = one transaction
//! that loads each touched stream, decides, appends with the next gapless positions, seals the
//! unit's secrets into the vault, runs every projection over the new events and commits.

pub mod personal;
pub mod read;
mod refold;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use domain::{Aggregate, Metadata, RecordedEvent, Rejection};
use tokio_postgres::error::SqlState;

use crate::crypto::{CryptoError, Keyring};
use read::{Keys, Raw, SELECT_EVENTS};

pub use refold::{catch_up, refold};

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
/// share one transaction.
#[async_trait]
trait Step: Send + Sync {
    fn stream_id(&self) -> &str;

    async fn stage(
        &self,
        tx: &Transaction<'_>,
        keyring: &Keyring,
        keys: &mut Keys<'_>,
    ) -> Result<Staged, StoreError>;
}

struct Typed<A: Aggregate> {
    stream_id: String,
    command: A::Command,
}

/// New events of one stream, encoded, before they get positions.
struct Staged {
    stream_id: String,
    stream_type: &'static str,
    subject: Option<String>,
    first_sequence: i32,
    events: Vec<domain::Encoded>,
    retired_vault_refs: Vec<String>,
}

#[async_trait]
impl<A> Step for Typed<A>
where
    A: Aggregate,
    A::Command: Clone + Sync,
{
    fn stream_id(&self) -> &str {
        &self.stream_id
    }

    async fn stage(
        &self,
        tx: &Transaction<'_>,
        keyring: &Keyring,
        keys: &mut Keys<'_>,
    ) -> Result<Staged, StoreError> {
        let statement = tx
            .prepare_cached(&format!(
                "{SELECT_EVENTS} WHERE e.stream_type = $1 AND e.stream_id = $2 ORDER BY e.sequence"
            ))
            .await?;
        let rows = tx.query(&statement, &[&A::TYPE, &self.stream_id]).await?;
        let mut state = A::default();
        let mut last_sequence = 0;
        for row in &rows {
            let recorded = keys.decode(Raw::from_row(row)?)?;
            last_sequence = recorded.sequence;
            state.apply(&domain::decode::<A::Event>(
                &recorded.event_type,
                &recorded.payload,
            )?);
        }
        let events = state
            .decide(self.command.clone())
            .map_err(|error| StoreError::Rejected(error.into()))?;
        let subject = state.data_subject(&self.stream_id, &events);
        if let (Some(subject), false) = (&subject, events.is_empty()) {
            ensure_data_key(tx, keyring, keys, subject).await?;
        }
        let retired_vault_refs = events
            .iter()
            .flat_map(domain::Event::retired_vault_refs)
            .collect();
        Ok(Staged {
            stream_id: self.stream_id.clone(),
            stream_type: A::TYPE,
            subject,
            first_sequence: last_sequence + 1,
            events: events
                .iter()
                .map(domain::encode)
                .collect::<Result<_, _>>()?,
            retired_vault_refs,
        })
    }
}

/// Makes sure the subject has a data key and that `keys` holds it unwrapped.
async fn ensure_data_key(
    tx: &Transaction<'_>,
    keyring: &Keyring,
    keys: &mut Keys<'_>,
    subject: &str,
) -> Result<(), StoreError> {
    if keys.holds(subject) {
        return Ok(());
    }
    let select = tx
        .prepare_cached("SELECT wrapped_key FROM data_keys WHERE subject_id = $1")
        .await?;
    let wrapped: Option<Option<Vec<u8>>> = match tx.query_opt(&select, &[&subject]).await? {
        Some(row) => Some(row.try_get(0)?),
        None => {
            let (key, wrapped) = keyring.new_data_key(subject)?;
            // A concurrent first write for the same person waits here and then finds the
            // winner's key with the select below.
            let insert = tx
                .prepare_cached(
                    "INSERT INTO data_keys (subject_id, wrapped_key) VALUES ($1, $2) \
                     ON CONFLICT (subject_id) DO NOTHING",
                )
                .await?;
            if tx.execute(&insert, &[&subject, &wrapped]).await? == 1 {
                keys.insert(subject.to_owned(), key);
                return Ok(());
            }
            tx.query_opt(&select, &[&subject])
                .await?
                .map(|row| row.try_get(0))
                .transpose()?
        }
    };
    match wrapped {
        Some(Some(wrapped)) => keys.unwrap_into(subject, &wrapped)?,
        Some(None) | None => return Err(StoreError::SubjectErased(subject.to_owned())),
    }
    Ok(())
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
}

impl EventStore {
    pub fn new(pool: Pool, keyring: Arc<Keyring>) -> EventStore {
        EventStore { pool, keyring }
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
            match self.attempt(&unit, &metadata).await {
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

    async fn attempt(&self, unit: &Unit, metadata: &Metadata) -> Result<Committed, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut keys = Keys::new(&self.keyring);
        let mut committed = Committed::default();
        let mut retired = Vec::new();
        for step in &unit.steps {
            let staged = step.stage(&tx, &self.keyring, &mut keys).await?;
            retired.extend(staged.retired_vault_refs.iter().cloned());
            committed
                .events
                .extend(append(&tx, &keys, staged, metadata).await?);
        }
        if committed.events.is_empty() {
            tx.rollback().await?;
            return Ok(committed);
        }
        self.update_vault(&tx, &unit.seals, &retired).await?;
        for projection in projections::ALL {
            projection.apply(&tx, &committed.events).await?;
        }
        let checkpoint = tx
            .prepare_cached("UPDATE projection_checkpoints SET position = $1")
            .await?;
        tx.execute(&checkpoint, &[&committed.last_position()])
            .await?;
        tx.commit().await?;
        metrics::counter!("idledger_events_appended_total")
            .increment(u64::try_from(committed.events.len()).unwrap_or(0));
        Ok(committed)
    }

    async fn update_vault(
        &self,
        tx: &Transaction<'_>,
        seals: &[(String, Vec<u8>)],
        retired: &[String],
    ) -> Result<(), StoreError> {
        if !seals.is_empty() {
            let insert = tx
                .prepare_cached("INSERT INTO vault (ref, sealed) VALUES ($1, $2)")
                .await?;
            for (vault_ref, plaintext) in seals {
                let sealed = self.keyring.seal_vault(vault_ref, plaintext)?;
                tx.execute(&insert, &[vault_ref, &sealed]).await?;
            }
        }
        if !retired.is_empty() {
            let delete = tx
                .prepare_cached("DELETE FROM vault WHERE ref = ANY($1)")
                .await?;
            tx.execute(&delete, &[&retired]).await?;
        }
        Ok(())
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

/// Inserts one stream's staged events under the head lock and returns them as recorded.
async fn append(
    tx: &Transaction<'_>,
    keys: &Keys<'_>,
    staged: Staged,
    metadata: &Metadata,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if staged.events.is_empty() {
        return Ok(Vec::new());
    }
    let key = staged.subject.as_deref().and_then(|s| keys.key(s));
    let count = i64::try_from(staged.events.len()).unwrap_or(i64::MAX);
    let (mut sequences, mut types, mut versions, mut payloads, mut sealed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ip, mut user_agent) = (None, None);
    for (offset, event) in staged.events.iter().enumerate() {
        let sequence = staged.first_sequence + i32::try_from(offset).unwrap_or(i32::MAX);
        let aad = personal::aad(&staged.stream_id, sequence, &event.event_type);
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
        if key.is_none() && !event.personal_fields.is_empty() {
            return Err(StoreError::Internal(format!(
                "{} names personal fields but its stream has no data subject",
                event.event_type
            )));
        }
        (ip, user_agent) = (split.ip, split.user_agent);
        sequences.push(sequence);
        types.push(event.event_type.clone());
        versions.push(event.version);
        payloads.push(split.payload);
        sealed.push(split.personal);
    }
    let statement = tx
        .prepare_cached(
            "WITH head AS ( \
               UPDATE event_head SET position = position + $1 RETURNING position - $1 AS base) \
             INSERT INTO events (position, stream_id, stream_type, sequence, event_type, \
               event_version, payload, personal, subject_id, actor_kind, actor_id, ip, \
               user_agent, request_id, occurred_at) \
             SELECT head.base + e.ord, $2, $3, e.sequence, e.event_type, e.event_version, \
               e.payload, e.personal, $4, $5, $6, $7, $8, $9, $10 \
             FROM head, unnest($11::int[], $12::text[], $13::int[], $14::jsonb[], $15::bytea[]) \
               WITH ORDINALITY AS e(sequence, event_type, event_version, payload, personal, ord) \
             RETURNING position, sequence",
        )
        .await?;
    let actor = &metadata.actor;
    let rows = tx
        .query(
            &statement,
            &[
                &count,
                &staged.stream_id,
                &staged.stream_type,
                &staged.subject,
                &actor.kind(),
                &actor.id(),
                &ip,
                &user_agent,
                &metadata.request_id,
                &metadata.occurred_at,
                &sequences,
                &types,
                &versions,
                &payloads,
                &sealed,
            ],
        )
        .await?;
    let mut positions = std::collections::HashMap::new();
    for row in rows {
        positions.insert(row.try_get::<_, i32>(1)?, row.try_get::<_, i64>(0)?);
    }
    staged
        .events
        .into_iter()
        .zip(sequences)
        .map(|(event, sequence)| {
            let position = positions.get(&sequence).copied().ok_or_else(|| {
                StoreError::Internal(format!("no position returned for sequence {sequence}"))
            })?;
            Ok(RecordedEvent {
                position,
                stream_id: staged.stream_id.clone(),
                stream_type: staged.stream_type.to_owned(),
                sequence,
                event_type: event.event_type,
                event_version: event.version,
                payload: event.payload,
                metadata: metadata.clone(),
                erased: false,
            })
        })
        .collect()
}
