//! Folding stretches of the log into projections outside the append path: catching a new
//! projection up at start, and replay's rebuild and check.

use deadpool_postgres::{Pool, Transaction};
use projections::Projection;

use super::StoreError;
use super::read::{Keys, Raw, SELECT_EVENTS};
use crate::crypto::Keyring;

/// Events per round trip when refolding; large enough that per-statement costs vanish.
const CHUNK: i64 = 5_000;

/// Folds the events with positions in `(after, until]` into `projections`, chunk by chunk,
/// calling `progress` with the last folded position. Returns the number of events folded.
pub async fn refold(
    tx: &Transaction<'_>,
    keyring: &Keyring,
    projections: &[&dyn Projection],
    after: i64,
    until: i64,
    mut progress: impl FnMut(i64) + Send,
) -> Result<u64, StoreError> {
    let statement = tx
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE e.position > $1 AND e.position <= $2 \
             ORDER BY e.position LIMIT $3"
        ))
        .await?;
    let mut keys = Keys::new(keyring);
    let mut cursor = after;
    let mut folded = 0;
    while cursor < until {
        let rows = tx.query(&statement, &[&cursor, &until, &CHUNK]).await?;
        if rows.is_empty() {
            break;
        }
        let events = rows
            .iter()
            .map(|row| Ok(keys.decode(Raw::from_row(row)?)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        for projection in projections {
            projection.apply(tx, &events).await?;
        }
        cursor = events.last().map_or(until, |e| e.position);
        folded += u64::try_from(events.len()).unwrap_or(0);
        progress(cursor);
    }
    Ok(folded)
}

/// Brings every projection up to the head of the log before the server takes requests: a
/// projection added by an upgrade starts at zero and folds the whole history once.
pub async fn catch_up(pool: &Pool, keyring: &Keyring) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Holding the head stops appends from other nodes while we fold.
    let head: i64 = tx
        .query_one("SELECT position FROM event_head FOR UPDATE", &[])
        .await?
        .try_get(0)?;
    for projection in projections::ALL {
        let row = tx
            .query_one(
                "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
                 ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING position",
                &[&projection.name()],
            )
            .await?;
        let checkpoint: i64 = row.try_get(0)?;
        if checkpoint < head {
            let folded = refold(&tx, keyring, &[*projection], checkpoint, head, |_| {}).await?;
            tracing::info!(
                projection = projection.name(),
                folded,
                "projection caught up"
            );
            tx.execute(
                "UPDATE projection_checkpoints SET position = $1 WHERE name = $2",
                &[&head, &projection.name()],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
