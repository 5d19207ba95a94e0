//! Folding stretches of the log into projections outside the append path: catching a new
//! projection up at start, and replay's rebuild and check.
//!
//! A refold is a three-stage pipeline so that reading, decoding and projecting overlap: a
//! reader task queries the log through a second connection that imported the folding
//! transaction's snapshot (so it sees exactly the log that transaction sees), a blocking thread
//! decodes the rows into events, and the caller folds them into the projections on its own
//! transaction, in bulk mode (COPY). Bounded channels between the stages keep at most a few
//! chunks in memory.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool, Transaction};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use projections::Projection;
use tokio::sync::mpsc;
use tokio_postgres::{IsolationLevel, Row};

use super::StoreError;
use super::read::{Keys, Raw, SELECT_EVENTS};
use crate::crypto::Keyring;

/// Events per chunk: large enough that per-statement costs vanish, small enough that the
/// chunks in flight stay a few tens of MiB.
const CHUNK: i64 = 5_000;
/// Chunk queries the reader keeps in flight on its connection (pipelined).
const READ_AHEAD: usize = 2;
/// Chunks waiting between two stages: enough slack that a stage that falls behind for a chunk
/// (a COPY flushing, a scheduling hiccup) does not stall the others (from 1: about 4% faster
/// over 1M events, peak RSS of the bench about 20 MiB more).
const QUEUED: usize = 3;

/// The snapshot of a folding transaction, exported for the reader to import. Export it before
/// the transaction writes, while it holds what makes the log stable (the head lock, or a
/// repeatable-read snapshot).
pub struct Snapshot(String);

pub async fn export_snapshot(tx: &Transaction<'_>) -> Result<Snapshot, StoreError> {
    let id: String = tx
        .query_one("SELECT pg_export_snapshot()", &[])
        .await?
        .try_get(0)?;
    // The id is PostgreSQL's own (hex digits and dashes); refuse anything else rather than
    // splice it into SQL.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(StoreError::Internal(format!(
            "unexpected snapshot id {id:?}"
        )));
    }
    Ok(Snapshot(id))
}

/// The part of the log a refold folds: positions `(after, until]` as `snapshot` sees them.
pub struct Stretch<'s> {
    pub snapshot: &'s Snapshot,
    pub after: i64,
    pub until: i64,
}

/// Folds `stretch` of the log (its snapshot exported from `tx`) into `projections` on `tx`,
/// calling `progress` with the last folded position after each chunk. Returns the number of
/// events folded.
pub async fn refold(
    pool: &Pool,
    tx: &Transaction<'_>,
    keyring: &Arc<Keyring>,
    projections: &[&dyn Projection],
    stretch: Stretch<'_>,
    mut progress: impl FnMut(i64) + Send,
) -> Result<u64, StoreError> {
    // The folds' prepared statements look rows up by arrays of ids in tables this refold is
    // filling: a generic plan made while a table was empty would scan it whole once it grew
    // (as the appender found, `store/append.rs`).
    tx.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
        .await?;
    let reader = pool.get().await?;
    let (rows_out, rows_in) = mpsc::channel(QUEUED);
    let (events_out, mut events_in) = mpsc::channel(QUEUED);
    let reading = tokio::spawn(read(
        reader,
        stretch.snapshot.0.clone(),
        stretch.after,
        stretch.until,
        rows_out,
    ));
    let keyring = Arc::clone(keyring);
    let decoding = tokio::task::spawn_blocking(move || decode(&keyring, rows_in, events_out));
    let folded = projections::bulk(async {
        let mut folded = 0;
        while let Some(chunk) = events_in.recv().await {
            let events = chunk?;
            for projection in projections {
                projection.apply(tx, &events).await?;
            }
            if let Some(last) = events.last() {
                progress(last.position);
            }
            folded += u64::try_from(events.len()).unwrap_or(0);
        }
        Ok::<u64, StoreError>(folded)
    })
    .await;
    // On a failure here the stages stop at their next send; wait for them either way so no
    // reader outlives the refold.
    drop(events_in);
    let (read_result, decode_result) = tokio::join!(reading, decoding);
    if let (Err(error), _) | (_, Err(error)) = (read_result, decode_result) {
        return Err(StoreError::Internal(format!(
            "a refold stage failed: {error}"
        )));
    }
    folded
}

/// Stage 1: queries the log chunk by chunk inside the imported snapshot, keeping `READ_AHEAD`
/// queries in flight. Positions are gapless, so chunks are fixed position ranges.
async fn read(
    mut client: Object,
    snapshot: String,
    after: i64,
    until: i64,
    out: mpsc::Sender<Result<Vec<Row>, StoreError>>,
) {
    let result: Result<(), StoreError> = async {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        tx.batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
            .await?;
        let statement = tx
            .prepare(&format!(
                "{SELECT_EVENTS} WHERE e.position > $1 AND e.position <= $2 ORDER BY e.position"
            ))
            .await?;
        let mut in_flight = FuturesOrdered::new();
        let mut next = after;
        loop {
            while in_flight.len() < READ_AHEAD && next < until {
                let (start, end) = (next, next.saturating_add(CHUNK).min(until));
                let (tx, statement) = (&tx, &statement);
                in_flight.push_back(async move { tx.query(statement, &[&start, &end]).await });
                next = end;
            }
            let Some(rows) = in_flight.next().await else {
                break;
            };
            if out.send(Ok(rows?)).await.is_err() {
                // The folding side stopped; it reports why.
                break;
            }
        }
        drop(in_flight);
        tx.rollback().await?;
        Ok(())
    }
    .await;
    if let Err(error) = result {
        // If the folding side is gone it already has an error of its own to report.
        let _ = out.send(Err(error)).await;
    }
}

/// Stage 2, on a blocking thread: rows to events (personal data rejoined, old versions upcast).
fn decode(
    keyring: &Keyring,
    mut rows_in: mpsc::Receiver<Result<Vec<Row>, StoreError>>,
    events_out: mpsc::Sender<Result<Vec<domain::RecordedEvent>, StoreError>>,
) {
    let mut keys = Keys::new(keyring);
    while let Some(chunk) = rows_in.blocking_recv() {
        let events = chunk.and_then(|rows| {
            rows.iter()
                .map(|row| Ok(keys.decode(Raw::from_row(row)?)?))
                .collect::<Result<Vec<_>, StoreError>>()
        });
        let failed = events.is_err();
        if events_out.blocking_send(events).is_err() || failed {
            break;
        }
    }
}

/// What `rebuild` did.
pub struct Rebuilt {
    /// The log position the rebuilt projections now reflect.
    pub head: i64,
    pub folded: u64,
    /// Of the whole rebuild, the time spent building the deferred indexes at the end.
    pub indexing: std::time::Duration,
}

/// Memory for the sorts that build the deferred indexes, for this transaction only: large
/// enough that a few million rows sort in memory.
const INDEX_BUILD_MEMORY: &str = "256MB";

/// `replay rebuild`: empties the tables of `projections` and refolds the whole log into them,
/// on `tx`, which holds the head lock from the start (appends wait; no command commits half-way
/// through) and must be committed by the caller. The indexes the projections defer are dropped
/// first and built again after the refold, in the same transaction, so a failed rebuild rolls
/// back to the old tables with all their indexes.
pub async fn rebuild(
    pool: &Pool,
    tx: &Transaction<'_>,
    keyring: &Arc<Keyring>,
    projections: &[&dyn Projection],
    progress: impl FnMut(i64) + Send,
) -> Result<Rebuilt, StoreError> {
    let head: i64 = tx
        .query_one("SELECT position FROM event_head FOR UPDATE", &[])
        .await?
        .try_get(0)?;
    // Taken under the head lock and before any write: the reader sees exactly the log up to
    // `head`.
    let snapshot = export_snapshot(tx).await?;
    for projection in projections {
        for table in projection.tables() {
            // Table names come from the projection list, never from input.
            tx.batch_execute(&format!("TRUNCATE {table}")).await?;
        }
    }
    let deferred: Vec<&str> = projections
        .iter()
        .flat_map(|p| p.deferred_indexes().iter().copied())
        .collect();
    // Per index: its name, the statement dropping it and the one building it again, from
    // PostgreSQL's own definitions; an index backing a primary key or unique constraint goes
    // and comes back with its constraint.
    let statements: Vec<(String, String, String)> = tx
        .query(
            "SELECT i.indexname, \
               CASE WHEN c.conname IS NULL THEN format('DROP INDEX %I', i.indexname) \
                 ELSE format('ALTER TABLE %I DROP CONSTRAINT %I', i.tablename, c.conname) END, \
               CASE WHEN c.conname IS NULL THEN i.indexdef \
                 ELSE format('ALTER TABLE %I ADD CONSTRAINT %I %s', \
                             i.tablename, c.conname, pg_get_constraintdef(c.oid)) END \
             FROM pg_indexes i \
             LEFT JOIN pg_constraint c ON c.contype IN ('p', 'u', 'x') \
               AND c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass \
             WHERE i.schemaname = current_schema() AND i.indexname = ANY($1)",
            &[&deferred],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    if let Some(missing) = deferred
        .iter()
        .find(|name| !statements.iter().any(|(found, _, _)| found == *name))
    {
        return Err(StoreError::Internal(format!(
            "a projection defers index {missing}, which does not exist"
        )));
    }
    for (_, drop, _) in &statements {
        tx.batch_execute(drop).await?;
    }
    let stretch = Stretch {
        snapshot: &snapshot,
        after: 0,
        until: head,
    };
    let folded = refold(pool, tx, keyring, projections, stretch, progress).await?;
    let indexing = std::time::Instant::now();
    tx.batch_execute(&format!(
        "SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"
    ))
    .await?;
    for (_, _, create) in &statements {
        tx.batch_execute(create).await?;
    }
    let indexing = indexing.elapsed();
    for projection in projections {
        tx.execute(
            "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
            &[&projection.name(), &head],
        )
        .await?;
    }
    Ok(Rebuilt {
        head,
        folded,
        indexing,
    })
}

/// Brings every projection up to the head of the log before the server takes requests: a
/// projection added by an upgrade has no checkpoint yet and folds the whole history once.
///
/// A checkpoint row marks a projection as live: from then on every append runs it in the
/// append's own transaction, so it is at the head by construction and its row is not rewritten
/// per append. The row's position records how far the last refold (this catch-up or `replay
/// rebuild`) went.
pub async fn catch_up(pool: &Pool, keyring: &Arc<Keyring>) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let live: Vec<String> = client
        .query("SELECT name FROM projection_checkpoints", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    drop(client);
    if projections::ALL
        .iter()
        .all(|p| live.iter().any(|name| name == p.name()))
    {
        return Ok(());
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Holding the head stops appends from other nodes while we fold.
    let head: i64 = tx
        .query_one("SELECT position FROM event_head FOR UPDATE", &[])
        .await?
        .try_get(0)?;
    let snapshot = export_snapshot(&tx).await?;
    for projection in projections::ALL {
        // Another node may have caught this projection up while we waited for the head.
        let claimed = tx
            .execute(
                "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING",
                &[&projection.name(), &head],
            )
            .await?;
        if claimed == 1 {
            let stretch = Stretch {
                snapshot: &snapshot,
                after: 0,
                until: head,
            };
            let folded = refold(pool, &tx, keyring, &[*projection], stretch, |_| {}).await?;
            tracing::info!(
                projection = projection.name(),
                folded,
                "projection caught up"
            );
        }
    }
    tx.commit().await?;
    Ok(())
}
