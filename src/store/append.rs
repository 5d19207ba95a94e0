//! Group commit. Units of work arrive already decided and encoded (`EventStore::run` does that
//! on the caller's task and connection, in parallel); the node's appender writes them in
//! batches: one transaction takes the `event_head` lock once, appends every unit's events with
//! consecutive positions in one statement, runs every projection once over the whole batch, and
//! commits with one WAL flush. Each caller gets its own unit's outcome only after that commit.
//!
//! A batch that fails (a read-model constraint, a lost sequence race, a data key another writer
//! created first) is redone unit by unit, each in its own savepoint, so only the failing units
//! are refused and their rolled-back position allocations leave no gap.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use deadpool_postgres::{Object, Pool, Transaction};
use domain::{Metadata, RecordedEvent};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Committed, StoreError, chain};

/// Units waiting for the appender; callers beyond this wait to enqueue (back-pressure).
const QUEUE: usize = 4_096;
/// Upper bounds of one batch: enough to amortise the lock, the round trips and the flush over
/// many units, small enough that one batch's statements stay cheap to plan and to redo.
const MAX_UNITS: usize = 512;
const MAX_EVENTS: usize = 8_192;

/// One new event as it will be stored, with the full payload the projections fold.
pub(super) struct PreparedEvent {
    pub stream_id: String,
    pub stream_type: &'static str,
    pub sequence: i32,
    pub event_type: String,
    pub version: i32,
    /// The payload with its personal fields, as the projections and the caller see it.
    pub payload: Value,
    /// The payload as stored: personal fields moved into `personal`.
    pub stored: Value,
    pub personal: Option<Vec<u8>>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A decided unit of work, ready to append: everything but positions is known.
pub(super) struct Prepared {
    pub metadata: Metadata,
    pub events: Vec<PreparedEvent>,
    /// Data keys created for subjects that had none: (subject, wrapped key).
    pub new_keys: Vec<(String, Vec<u8>)>,
    /// Vault entries to insert: (ref, sealed value).
    pub seals: Vec<(String, Vec<u8>)>,
    /// Vault entries the events retire.
    pub retired: Vec<String>,
    /// People whose data keys the events destroy (erasure).
    pub shredded: Vec<String>,
}

type Reply = oneshot::Sender<Result<Committed, StoreError>>;

/// The node's appender: a queue and the task that drains it, started on first use so that
/// building an `EventStore` needs no runtime, and started again if the runtime it ran on ended.
pub(super) struct Appender {
    pool: Pool,
    queue: Mutex<Option<mpsc::Sender<(Prepared, Reply)>>>,
}

impl Appender {
    pub(super) fn new(pool: Pool) -> Appender {
        Appender {
            pool,
            queue: Mutex::new(None),
        }
    }

    /// Appends `unit` with the next batch and returns what it committed.
    pub(super) async fn append(&self, unit: Prepared) -> Result<Committed, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.queue().send((unit, reply)).await.is_err() {
            return Err(StoreError::Unavailable("the appender stopped".to_owned()));
        }
        answer.await.map_err(|_| {
            StoreError::Unavailable(
                "the appender stopped before answering; the unit may have been committed"
                    .to_owned(),
            )
        })?
    }

    fn queue(&self) -> mpsc::Sender<(Prepared, Reply)> {
        // A panic elsewhere while holding this lock leaves the slot consistent: take it over.
        let mut slot = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = slot.as_ref().filter(|queue| !queue.is_closed()) {
            return queue.clone();
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(serve(self.pool.clone(), receiver));
        *slot = Some(sender.clone());
        sender
    }
}

/// Takes whatever is queued (up to the batch bounds) as one batch, commits it, answers, repeats.
/// Batches form by themselves: units that arrive while one commits make up the next. (A second
/// appender task whose batch waits for the head lock while this one commits was measured: it
/// made batches smaller and PostgreSQL's work per event larger, for less throughput.)
async fn serve(pool: Pool, mut queue: mpsc::Receiver<(Prepared, Reply)>) {
    let mut connection = None;
    while let Some(first) = queue.recv().await {
        let mut events = first.0.events.len();
        let mut batch = vec![first];
        while batch.len() < MAX_UNITS && events < MAX_EVENTS {
            let Ok(next) = queue.try_recv() else { break };
            events += next.0.events.len();
            batch.push(next);
        }
        let (units, replies): (Vec<Prepared>, Vec<Reply>) = batch.into_iter().unzip();
        let outcomes = commit(&pool, &mut connection, &units).await;
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that went away (request cancelled) no longer needs its answer; its unit
            // is committed or not like any other.
            let _ = reply.send(outcome);
        }
    }
}

fn conflict() -> StoreError {
    StoreError::Conflict {
        stream_id: String::new(),
        attempts: 0,
    }
}

/// The appender keeps one connection for itself, so a batch never queues behind callers for a
/// pool slot; it takes a new one when the old one broke.
async fn connection<'c>(
    pool: &Pool,
    slot: &'c mut Option<Object>,
) -> Result<&'c mut Object, StoreError> {
    if slot.as_ref().is_some_and(|client| client.is_closed()) {
        *slot = None;
    }
    if slot.is_none() {
        let client = pool.get().await?;
        // The projections' statements are prepared once and run with arrays of ids: a plan
        // made generic while a table was small (a new server, a rebuild) kept scanning the whole
        // table once it had grown. Planning each run for its parameters costs far less.
        client
            .batch_execute("SET plan_cache_mode = force_custom_plan")
            .await?;
        *slot = Some(client);
    }
    slot.as_mut()
        .ok_or_else(|| StoreError::Internal("no appender connection".to_owned()))
}

/// Commits a batch; one outcome per unit, in order.
async fn commit(
    pool: &Pool,
    slot: &mut Option<Object>,
    units: &[Prepared],
) -> Vec<Result<Committed, StoreError>> {
    let mut outcomes: Vec<Option<Result<Committed, StoreError>>> =
        units.iter().map(|_| None).collect();
    // Two units of one batch writing the same stream sequence cannot both commit: the later
    // one is refused (and retried by its caller) without costing the batch a failed attempt.
    let mut chosen = Vec::new();
    {
        let mut claimed = HashSet::new();
        for (index, unit) in units.iter().enumerate() {
            let claims: Vec<_> = unit
                .events
                .iter()
                .map(|e| (e.stream_type, e.stream_id.as_str(), e.sequence))
                .collect();
            if claims.iter().any(|claim| claimed.contains(claim)) {
                outcomes[index] = Some(Err(conflict()));
            } else {
                claimed.extend(claims);
                chosen.push(index);
            }
        }
    }
    let selected: Vec<&Prepared> = chosen.iter().map(|&index| &units[index]).collect();
    let results = match connection(pool, slot).await {
        Ok(client) => match together(client, &selected).await {
            Ok(committed) => committed.into_iter().map(Ok).collect(),
            Err(Failed::Writing(error)) if selected.len() == 1 => vec![Err(error)],
            // Some unit of the batch failed before the commit; find which, alone.
            Err(Failed::Writing(_)) => match connection(pool, slot).await {
                Ok(client) => one_by_one(client, &selected).await,
                Err(error) => selected.iter().map(|_| Err(told_to_each(&error))).collect(),
            },
            // The commit itself failed (connection lost, server shutting down): whether it
            // took effect is unknown, so nothing is redone and every unit reports the failure,
            // as a single unit's failed commit always did.
            Err(Failed::Committing(error)) => {
                selected.iter().map(|_| Err(told_to_each(&error))).collect()
            }
        },
        Err(error) => selected.iter().map(|_| Err(told_to_each(&error))).collect(),
    };
    for (index, result) in chosen.into_iter().zip(results) {
        outcomes[index] = Some(result);
    }
    let batch_events: usize = units.iter().map(|u| u.events.len()).sum();
    metrics::counter!("idledger_store_batches_total").increment(1);
    metrics::histogram!("idledger_store_batch_units").record(units.len() as f64);
    metrics::histogram!("idledger_store_batch_events").record(batch_events as f64);
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| {
                Err(StoreError::Internal(
                    "a unit of the batch got no outcome".to_owned(),
                ))
            })
        })
        .collect()
}

/// Why a batch did not commit.
enum Failed {
    /// A statement before the commit failed; nothing took effect.
    Writing(StoreError),
    /// The commit failed; it may or may not have taken effect.
    Committing(StoreError),
}

/// The whole batch in one transaction.
async fn together(client: &mut Object, units: &[&Prepared]) -> Result<Vec<Committed>, Failed> {
    let tx = client
        .transaction()
        .await
        .map_err(|error| Failed::Writing(error.into()))?;
    match write(&tx, units).await {
        Ok(committed) => {
            tx.commit()
                .await
                .map_err(|error| Failed::Committing(error.into()))?;
            count(&committed);
            Ok(committed)
        }
        Err(error) => {
            // The error is what the callers need; a failed rollback shows on the next use.
            let _ = tx.rollback().await;
            Err(Failed::Writing(error))
        }
    }
}

/// The batch again, each unit in its own savepoint: failing units are rolled back alone (their
/// position allocation with them), the others commit together.
async fn one_by_one(
    client: &mut Object,
    units: &[&Prepared],
) -> Vec<Result<Committed, StoreError>> {
    let mut results = Vec::with_capacity(units.len());
    let outcome: Result<(), StoreError> = async {
        let mut tx = client.transaction().await?;
        for unit in units {
            let savepoint = tx.savepoint("unit").await?;
            match write(&savepoint, &[unit]).await {
                Ok(mut committed) => {
                    savepoint.commit().await?;
                    results.push(committed.pop().ok_or_else(|| {
                        StoreError::Internal("a written unit has no outcome".to_owned())
                    }));
                }
                Err(error) => {
                    savepoint.rollback().await?;
                    results.push(Err(error));
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            for committed in results.iter().flatten() {
                count(std::slice::from_ref(committed));
            }
            results
        }
        // Nothing of this batch committed: every unit gets the failure, except those already
        // refused for their own reason.
        Err(error) => units
            .iter()
            .enumerate()
            .map(|(index, _)| match results.get_mut(index) {
                Some(Err(own)) => Err(std::mem::replace(own, conflict())),
                Some(Ok(_)) | None => Err(told_to_each(&error)),
            })
            .collect(),
    }
}

/// A failure of the whole batch, as each of its units is told it.
fn told_to_each(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        StoreError::Constraint(name) => StoreError::Constraint(name.clone()),
        StoreError::Conflict { .. } => conflict(),
        other => StoreError::Internal(other.to_string()),
    }
}

fn count(committed: &[Committed]) {
    let events: usize = committed.iter().map(|c| c.events.len()).sum();
    metrics::counter!("idledger_events_appended_total")
        .increment(u64::try_from(events).unwrap_or(0));
}

/// Appends the units' events under the head lock, stores their data keys and vault entries, and
/// folds every projection over all of their events.
async fn write(tx: &Transaction<'_>, units: &[&Prepared]) -> Result<Vec<Committed>, StoreError> {
    let total: usize = units.iter().map(|u| u.events.len()).sum();
    let base = insert_events(tx, units, total).await?;

    let (subjects, wrapped): (Vec<&str>, Vec<&[u8]>) = units
        .iter()
        .flat_map(|u| u.new_keys.iter())
        .map(|(subject, key)| (subject.as_str(), key.as_slice()))
        .unzip();
    if !subjects.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO data_keys (subject_id, wrapped_key) \
                 SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (subject_id) DO NOTHING RETURNING subject_id",
            )
            .await?;
        // A concurrent first write for the same person won: its key must seal this unit's
        // personal data, so the unit is decided again (and finds that key).
        if tx.query(&insert, &[&subjects, &wrapped]).await?.len() != subjects.len() {
            return Err(conflict());
        }
    }
    let (refs, sealed): (Vec<&str>, Vec<&[u8]>) = units
        .iter()
        .flat_map(|u| u.seals.iter())
        .map(|(vault_ref, value)| (vault_ref.as_str(), value.as_slice()))
        .unzip();
    if !refs.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO vault (ref, sealed) SELECT * FROM unnest($1::text[], $2::bytea[])",
            )
            .await?;
        tx.execute(&insert, &[&refs, &sealed]).await?;
    }
    let retired: Vec<&str> = units
        .iter()
        .flat_map(|u| u.retired.iter().map(String::as_str))
        .collect();
    if !retired.is_empty() {
        let delete = tx
            .prepare_cached("DELETE FROM vault WHERE ref = ANY($1)")
            .await?;
        tx.execute(&delete, &[&retired]).await?;
    }
    let shredded: Vec<&str> = units
        .iter()
        .flat_map(|u| u.shredded.iter().map(String::as_str))
        .collect();
    if !shredded.is_empty() {
        // A person with no key yet gets a destroyed one, so nothing personal can be sealed for
        // them later either (`StoreError::SubjectErased`).
        let destroy = tx
            .prepare_cached(
                "INSERT INTO data_keys (subject_id, wrapped_key, destroyed_at) \
                 SELECT unnest($1::text[]), NULL, now() \
                 ON CONFLICT (subject_id) DO UPDATE \
                 SET wrapped_key = NULL, destroyed_at = coalesce(data_keys.destroyed_at, now())",
            )
            .await?;
        tx.execute(&destroy, &[&shredded]).await?;
    }

    let mut events = Vec::with_capacity(total);
    for unit in units {
        for event in &unit.events {
            let offset = i64::try_from(events.len()).unwrap_or(i64::MAX);
            events.push(RecordedEvent {
                position: base + 1 + offset,
                stream_id: event.stream_id.clone(),
                stream_type: event.stream_type.to_owned(),
                sequence: event.sequence,
                event_type: event.event_type.clone(),
                event_version: event.version,
                payload: domain::Payload::from_value(&event.payload),
                metadata: unit.metadata.clone(),
                erased: false,
            });
        }
    }
    // Folds do not depend on how the log is chunked (see `projections::Projection::apply`), so
    // one pass over the batch leaves the read models as one pass per unit would.
    for projection in projections::ALL {
        projection.apply(tx, &events).await?;
    }
    let mut events = events.into_iter();
    Ok(units
        .iter()
        .map(|unit| Committed {
            events: events.by_ref().take(unit.events.len()).collect(),
        })
        .collect())
}

/// Moves the head past the batch and inserts every event of the batch, each with its chain
/// hash; returns the head before the batch (the first event takes the position after it).
///
/// Two statements, because the hashes need the positions and the previous hash, which only the
/// locked head knows: the first takes the head lock (held until commit, so no other appender can
/// chain in between), the second inserts and records the new head hash.
async fn insert_events(
    tx: &Transaction<'_>,
    units: &[&Prepared],
    total: usize,
) -> Result<i64, StoreError> {
    let count = i64::try_from(total).unwrap_or(i64::MAX);
    let lock = tx
        .prepare_cached(
            "UPDATE event_head SET position = position + $1 \
             RETURNING position - $1 AS base, hash",
        )
        .await?;
    let head = tx.query_one(&lock, &[&count]).await?;
    let base: i64 = head.try_get(0)?;
    let previous: Option<Vec<u8>> = head.try_get(1)?;
    let mut columns = Columns::with_capacity(total);
    for unit in units {
        for event in &unit.events {
            columns.push(event, &unit.metadata);
        }
    }
    columns.chain(base, previous.as_deref().unwrap_or(&chain::GENESIS));
    let statement = tx
        .prepare_cached(
            "WITH appended AS ( \
               INSERT INTO events (position, stream_id, stream_type, sequence, event_type, \
                 event_version, payload, personal, subject_id, actor_kind, actor_id, ip, \
                 user_agent, request_id, occurred_at, hash) \
               SELECT $1 + e.ord, e.stream_id, e.stream_type, e.sequence, e.event_type, \
                 e.event_version, e.payload, e.personal, e.subject_id, e.actor_kind, e.actor_id, \
                 e.ip, e.user_agent, e.request_id, e.occurred_at, e.hash \
               FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::int[], \
                 $7::jsonb[], $8::bytea[], $9::text[], $10::text[], $11::text[], $12::text[], \
                 $13::text[], $14::text[], $15::timestamptz[], $16::bytea[]) \
                 WITH ORDINALITY AS e(stream_id, stream_type, sequence, event_type, \
                   event_version, payload, personal, subject_id, actor_kind, actor_id, ip, \
                   user_agent, request_id, occurred_at, hash, ord)) \
             UPDATE event_head SET hash = $17",
        )
        .await?;
    let last: Option<&[u8]> = columns.hash.last().map(Vec::as_slice);
    tx.execute(
        &statement,
        &[
            &base,
            &columns.stream_id,
            &columns.stream_type,
            &columns.sequence,
            &columns.event_type,
            &columns.version,
            &columns.payload,
            &columns.personal,
            &columns.subject,
            &columns.actor_kind,
            &columns.actor_id,
            &columns.ip,
            &columns.user_agent,
            &columns.request_id,
            &columns.occurred_at,
            &columns.hash,
            &last,
        ],
    )
    .await?;
    Ok(base)
}

/// The batch's events column by column, as the `unnest` of the insert takes them.
struct Columns<'a> {
    stream_id: Vec<&'a str>,
    stream_type: Vec<&'a str>,
    sequence: Vec<i32>,
    event_type: Vec<&'a str>,
    version: Vec<i32>,
    payload: Vec<&'a Value>,
    personal: Vec<Option<&'a [u8]>>,
    subject: Vec<Option<&'a str>>,
    actor_kind: Vec<&'a str>,
    actor_id: Vec<Option<&'a str>>,
    ip: Vec<Option<&'a str>>,
    user_agent: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    occurred_at: Vec<time::OffsetDateTime>,
    /// Filled by `chain` once the positions are known.
    hash: Vec<Vec<u8>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Columns<'a> {
        Columns {
            stream_id: Vec::with_capacity(n),
            stream_type: Vec::with_capacity(n),
            sequence: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            personal: Vec::with_capacity(n),
            subject: Vec::with_capacity(n),
            actor_kind: Vec::with_capacity(n),
            actor_id: Vec::with_capacity(n),
            ip: Vec::with_capacity(n),
            user_agent: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            occurred_at: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, event: &'a PreparedEvent, metadata: &'a Metadata) {
        self.stream_id.push(&event.stream_id);
        self.stream_type.push(event.stream_type);
        self.sequence.push(event.sequence);
        self.event_type.push(&event.event_type);
        self.version.push(event.version);
        self.payload.push(&event.stored);
        self.personal.push(event.personal.as_deref());
        self.subject.push(event.subject.as_deref());
        self.actor_kind.push(metadata.actor.kind());
        self.actor_id.push(metadata.actor.id());
        self.ip.push(event.ip.as_deref());
        self.user_agent.push(event.user_agent.as_deref());
        self.request_id.push(metadata.request_id.as_deref());
        self.occurred_at.push(metadata.occurred_at);
    }

    /// Hashes every event in order, the first after `previous` at position `base + 1`.
    fn chain(&mut self, base: i64, previous: &[u8]) {
        let mut previous = previous.to_vec();
        for index in 0..self.stream_id.len() {
            let offset = i64::try_from(index).unwrap_or(i64::MAX);
            let hash = chain::link(
                &previous,
                &chain::Content {
                    position: base + 1 + offset,
                    stream_type: self.stream_type[index],
                    stream_id: self.stream_id[index],
                    sequence: self.sequence[index],
                    event_type: self.event_type[index],
                    event_version: self.version[index],
                    payload: self.payload[index],
                    personal: self.personal[index],
                    subject_id: self.subject[index],
                    actor_kind: self.actor_kind[index],
                    actor_id: self.actor_id[index],
                    ip: self.ip[index],
                    user_agent: self.user_agent[index],
                    request_id: self.request_id[index],
                    occurred_at: self.occurred_at[index],
                },
            );
            previous = hash.to_vec();
            self.hash.push(hash.to_vec());
        }
    }
}
