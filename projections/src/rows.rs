//! Generic reading and writing of read-model rows as JSON documents, so folds work on plain Rust
//! structs: load the rows owned by the touched keys, fold in memory, write them back. One
//! statement each way whatever the number of rows, which is what makes replay fast.
//!
//! Inside `bulk` (replay), inserts go through `COPY ... FROM STDIN` instead of
//! `jsonb_populate_recordset` (PostgreSQL then parses no JSON document per batch). Both paths
//! must store identical rows (`replay check` compares live rows, written by INSERT, with
//! refolded ones, written by COPY), so COPY is used only for values whose text form is exactly
//! what `jsonb_populate_recordset` would give the column's input function; any other row set
//! falls back to INSERT.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};

use deadpool_postgres::Transaction;
use futures_util::SinkExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::ProjectionError;
use copy_text::{CopyError, RowWriter};
use domain::CodecError;

mod copy_text;

tokio::task_local! {
    /// Set by `bulk` for the folds of one refold: the COPYs still running.
    static BULK: Pending;
}

/// COPYs handed to the connection that nobody has seen complete yet. Each is awaited by
/// `bulk` before it returns; meanwhile the folds go on computing the next rows, so the client's
/// work overlaps PostgreSQL's ingestion instead of alternating with it.
#[derive(Default)]
struct Pending(Mutex<Vec<JoinHandle<Result<u64, tokio_postgres::Error>>>>);

impl Pending {
    fn push(&self, copy: JoinHandle<Result<u64, tokio_postgres::Error>>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(copy);
    }

    fn take(&self) -> Vec<JoinHandle<Result<u64, tokio_postgres::Error>>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs `folds` (writing on `db`) with large inserts written by COPY (see the module
/// documentation), and returns once every COPY is confirmed. Replay wraps its refold in this;
/// the append path never does.
pub async fn bulk<T, E, F>(folds: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: From<ProjectionError>,
{
    BULK.scope(Pending::default(), async {
        let outcome = folds.await;
        let mut failure = None;
        for copy in BULK.with(Pending::take) {
            let confirmed = match copy.await {
                Ok(result) => result.map(|_| ()).map_err(ProjectionError::from),
                Err(stopped) => Err(ProjectionError::Unfinished(stopped.to_string())),
            };
            if let Err(error) = confirmed {
                failure.get_or_insert(error);
            }
        }
        // A failed COPY aborts the transaction, so it also explains any later failure.
        match failure {
            Some(error) => Err(error.into()),
            None => outcome,
        }
    })
    .await
}

/// The rows of `table` grouped by the value of their `owner` column (the primary key for an
/// entity table, the parent id for a child table).
pub struct Rows<R> {
    table: &'static str,
    owner: &'static str,
    row: PhantomData<fn() -> R>,
}

impl<R: Serialize + DeserializeOwned> Rows<R> {
    pub const fn new(table: &'static str, owner: &'static str) -> Rows<R> {
        Rows {
            table,
            owner,
            row: PhantomData,
        }
    }

    pub async fn load(
        &self,
        db: &Transaction<'_>,
        owners: &[String],
    ) -> Result<HashMap<String, Vec<R>>, ProjectionError> {
        let mut grouped: HashMap<String, Vec<R>> = HashMap::new();
        if owners.is_empty() {
            return Ok(grouped);
        }
        let sql = format!(
            "SELECT {owner}, to_jsonb(t) FROM {table} t WHERE {owner} = ANY($1)",
            owner = self.owner,
            table = self.table
        );
        let statement = db.prepare_cached(&sql).await?;
        for row in db.query(&statement, &[&owners]).await? {
            let owner: String = row.try_get(0)?;
            let document: Value = row.try_get(1)?;
            grouped
                .entry(owner)
                .or_default()
                .push(serde_json::from_value(document)?);
        }
        Ok(grouped)
    }

    /// The state of an entity fold (one row per stream, `None` while there is none): the row
    /// each of `owners` has.
    pub async fn load_entities(
        &self,
        db: &Transaction<'_>,
        owners: &[String],
    ) -> Result<HashMap<String, Option<R>>, ProjectionError> {
        let mut rows = single(self.load(db, owners).await?);
        Ok(owners
            .iter()
            .map(|owner| (owner.clone(), rows.remove(owner)))
            .collect())
    }

    /// Writes an entity fold's states back: `owners`' rows become the entities `states` hold
    /// (`None`: removed, or never created).
    pub async fn store_entities(
        &self,
        db: &Transaction<'_>,
        owners: &[String],
        states: HashMap<String, Option<R>>,
    ) -> Result<(), ProjectionError> {
        let rows: Vec<R> = states.into_values().flatten().collect();
        self.store(db, owners, &rows).await
    }

    /// Replaces every row owned by `owners` with `rows`.
    pub async fn store(
        &self,
        db: &Transaction<'_>,
        owners: &[String],
        rows: &[R],
    ) -> Result<(), ProjectionError> {
        self.delete(db, owners).await?;
        self.insert(db, rows).await
    }

    /// Deletes every row owned by `owners`; how many there were.
    pub async fn delete(
        &self,
        db: &Transaction<'_>,
        owners: &[String],
    ) -> Result<u64, ProjectionError> {
        if owners.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "DELETE FROM {table} WHERE {owner} = ANY($1)",
            owner = self.owner,
            table = self.table
        );
        let statement = db.prepare_cached(&sql).await?;
        Ok(db.execute(&statement, &[&owners]).await?)
    }

    /// Appends rows (for append-only tables such as logs).
    pub async fn insert(&self, db: &Transaction<'_>, rows: &[R]) -> Result<(), ProjectionError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Every bulk insert goes through COPY, however small, so that `replay check` compares
        // COPY's rows with INSERT's for every table.
        if BULK.try_with(|_| ()).is_ok() && self.copy(db, rows).await? {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1)",
            table = self.table
        );
        let statement = db.prepare_cached(&sql).await?;
        let documents = serde_json::to_value(rows)?;
        db.execute(&statement, &[&documents]).await?;
        Ok(())
    }

    /// Writes `rows` with COPY in text format; `false` (nothing written) when a value has no
    /// text form equal to what the INSERT path would store.
    async fn copy(&self, db: &Transaction<'_>, rows: &[R]) -> Result<bool, ProjectionError> {
        // The table's columns in order, with their types; the same statement resolves to the
        // scratch tables of `replay check` through its search path.
        let shape = db
            .prepare_cached(&format!("SELECT * FROM {} LIMIT 0", self.table))
            .await?;
        let columns = shape.columns();
        let mut text = Vec::new();
        let mut writer = RowWriter::new(columns);
        for (index, row) in rows.iter().enumerate() {
            match writer.write(&mut text, row) {
                Ok(()) => {}
                Err(CopyError::Unsupported) => return Ok(false),
                Err(CopyError::Serialize(message)) => {
                    return Err(<serde_json::Error as serde::ser::Error>::custom(message).into());
                }
            }
            if index == 0 {
                // Sized on the first line, with a margin, so that growing it rarely copies it.
                text.reserve((text.len() + text.len() / 2) * (rows.len() - 1));
            }
        }
        let names: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\"", c.name().replace('"', "\"\"")))
            .collect();
        let statement = db
            .prepare_cached(&format!(
                "COPY {} ({}) FROM STDIN",
                self.table,
                names.join(", ")
            ))
            .await?;
        // Returns once PostgreSQL is ready for this COPY's data, which (statements run in order
        // on the connection) is after the previous COPY completed.
        let sink = db.copy_in(&statement).await?;
        let copy = tokio::spawn(async move {
            let mut sink = std::pin::pin!(sink);
            sink.send(bytes::Bytes::from(text)).await?;
            sink.as_mut().finish().await
        });
        // Statements the folds send next queue behind the COPY on the connection, so they see
        // its rows; `bulk` awaits its confirmation.
        let mut copy = Some(copy);
        let _ = BULK.try_with(|pending| copy.take().map(|copy| pending.push(copy)));
        if let Some(copy) = copy {
            copy.await
                .map_err(|stopped| ProjectionError::Unfinished(stopped.to_string()))??;
        }
        Ok(true)
    }
}

/// A projection keeping some state per stream of one aggregate type: it loads the state of the
/// streams a batch touches, folds the batch in memory and writes the states back.
#[async_trait::async_trait]
pub trait StreamFold: Sync {
    type Event: Send;
    type State: Default + Send;

    /// The key of the state `event` changes and the event decoded, if this fold cares about
    /// it. Most folds key by stream id and read only their own stream type (`own_stream`);
    /// some also fold facts from other streams into the same rows.
    fn route(event: &domain::RecordedEvent) -> Result<Option<(String, Self::Event)>, CodecError>;

    /// Whether `event`, the first of a batch routed to `key`, begins what `key` names, so that
    /// nothing can be stored for it yet: its rows are then neither loaded nor deleted (on a big
    /// table those lookups were most of a creation's cost). The default never says so.
    fn begins(_key: &str, _event: &domain::RecordedEvent) -> bool {
        false
    }

    /// The stored state of `streams` (the keys a batch touches that it does not begin).
    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError>;

    /// Pure: the new state of one stream after one of its events.
    fn fold(state: &mut Self::State, event: &domain::RecordedEvent, decoded: Self::Event);

    /// Writes `states` (every key the batch touched), replacing what `streams` (the keys
    /// `load` was asked for) had stored.
    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError>;
}

pub async fn fold_streams<F: StreamFold>(
    projection: &F,
    db: &Transaction<'_>,
    events: &[domain::RecordedEvent],
) -> Result<(), ProjectionError> {
    let mut routed = Vec::new();
    for event in events {
        if let Some((key, decoded)) = F::route(event)? {
            routed.push((key, event, decoded));
        }
    }
    if routed.is_empty() {
        return Ok(());
    }
    // The keys with stored state to load and replace: those whose first event here does not
    // begin them.
    let mut seen = HashSet::new();
    let mut keys: Vec<String> = Vec::new();
    for (key, event, _) in &routed {
        if seen.insert(key.as_str()) && !F::begins(key, event) {
            keys.push(key.clone());
        }
    }
    keys.sort_unstable();
    let mut states = projection.load(db, &keys).await?;
    for (key, event, decoded) in routed {
        F::fold(states.entry(key).or_default(), event, decoded);
    }
    projection.store(db, &keys, states).await
}

/// `begins` for a fold keyed by the id of its own streams: a committed event with sequence 1
/// is its stream's first (the log's unique key refuses a second one).
pub fn begins_own_stream(key: &str, event: &domain::RecordedEvent, stream_type: &str) -> bool {
    event.sequence == 1 && event.stream_type == stream_type && event.stream_id == key
}

/// Takes the single row each owner has in an entity table.
pub fn single<R>(grouped: HashMap<String, Vec<R>>) -> HashMap<String, R> {
    grouped
        .into_iter()
        .filter_map(|(owner, mut rows)| rows.pop().map(|row| (owner, row)))
        .collect()
}

/// Runs a query whose first column is a JSON document and decodes each into `T`.
pub async fn documents<T: DeserializeOwned>(
    db: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<T>, ProjectionError> {
    let statement = db.prepare_cached(sql).await?;
    db.query(&statement, params)
        .await?
        .iter()
        .map(|row| Ok(serde_json::from_value(row.try_get::<_, Value>(0)?)?))
        .collect()
}

pub async fn document<T: DeserializeOwned>(
    db: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<T>, ProjectionError> {
    Ok(documents(db, sql, params).await?.into_iter().next())
}

/// A SQL text with its parameters, built up piece by piece for list queries whose filters vary.
#[derive(Default)]
pub struct Query {
    pub text: String,
    params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
}

impl Query {
    pub fn new(text: &str) -> Query {
        Query {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter and returns its placeholder (`$n`).
    pub fn bind(
        &mut self,
        value: impl tokio_postgres::types::ToSql + Sync + Send + 'static,
    ) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends a search condition, binding its values.
    pub fn search(&mut self, search: &crate::search::Search, columns: &[&str]) {
        self.indexed_search(search, columns, &crate::search::Indexes::NONE);
    }

    /// Appends a search condition shaped for the table's indexes, binding its values.
    pub fn indexed_search(
        &mut self,
        search: &crate::search::Search,
        columns: &[&str],
        indexes: &crate::search::Indexes<'_>,
    ) {
        let (condition, values) = search.indexed_condition(columns, indexes, self.params.len() + 1);
        for value in values {
            self.params.push(Box::new(value));
        }
        self.text.push_str(&condition);
    }

    fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect()
    }

    pub async fn documents<T: DeserializeOwned>(
        &self,
        db: &impl deadpool_postgres::GenericClient,
    ) -> Result<Vec<T>, ProjectionError> {
        db.query(self.text.as_str(), &self.params())
            .await?
            .iter()
            .map(|row| Ok(serde_json::from_value(row.try_get::<_, Value>(0)?)?))
            .collect()
    }

    pub async fn rows(
        &self,
        db: &impl deadpool_postgres::GenericClient,
    ) -> Result<Vec<tokio_postgres::Row>, ProjectionError> {
        Ok(db.query(self.text.as_str(), &self.params()).await?)
    }

    pub async fn count(
        &self,
        db: &impl deadpool_postgres::GenericClient,
    ) -> Result<i64, ProjectionError> {
        Ok(db
            .query_one(self.text.as_str(), &self.params())
            .await?
            .try_get(0)?)
    }
}

/// A list request against a read model: where-clause filters come from the caller, paging here.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub limit: i64,
    pub offset: i64,
}

/// `route` for a fold of one aggregate type keyed by stream id.
pub fn own_stream<E: domain::Event>(
    event: &domain::RecordedEvent,
    stream_type: &str,
) -> Result<Option<(String, E)>, CodecError> {
    if event.stream_type != stream_type {
        return Ok(None);
    }
    Ok(Some((
        event.stream_id.clone(),
        domain::decode(&event.event_type, &event.payload)?,
    )))
}
