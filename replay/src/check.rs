//! `replay check`: refold the whole log into a scratch schema, inside one repeatable-read
//! snapshot, and compare every read-model table with its live twin row by row.

use idledger::app::Environment;
use idledger::store::{Stretch, refold};
use serde_json::Value;

use crate::ReplayError;
use crate::progress::bar;

/// Rows shown per table and direction when tables differ.
const SHOWN: i64 = 20;

pub async fn run(environment: &Environment) -> Result<(), ReplayError> {
    // A fresh connection: statements prepared under the scratch search path must not be
    // cached on a connection the live path reuses.
    let mut client = environment.pool.get().await?;
    client.statement_cache.clear();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let head: i64 = tx
        .query_one("SELECT position FROM event_head", &[])
        .await?
        .try_get(0)?;
    // The reader of the refold imports this very snapshot: the rebuilt tables and the live
    // ones are compared against the same log.
    let snapshot = idledger::store::export_snapshot(&tx).await?;
    let scratch = format!("replay_check_{}", std::process::id());
    tx.batch_execute(&format!("CREATE SCHEMA {scratch}"))
        .await?;
    let tables: Vec<&str> = projections::ALL
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    for table in &tables {
        tx.batch_execute(&format!(
            "CREATE TABLE {scratch}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .await?;
    }
    tx.batch_execute(&format!("SET LOCAL search_path = {scratch}, public"))
        .await?;
    let progress = bar(u64::try_from(head).unwrap_or(0), "check");
    let stretch = Stretch {
        snapshot: &snapshot,
        after: 0,
        until: head,
    };
    let folded = refold(
        &environment.pool,
        &tx,
        &environment.keyring,
        projections::ALL,
        stretch,
        |at| progress.set_position(u64::try_from(at).unwrap_or(0)),
    )
    .await?;
    progress.finish_and_clear();
    let mut differences = 0;
    for table in &tables {
        let columns = compared_columns(&tx, table).await?;
        for (label, left, right) in [
            (
                "only live",
                format!("public.{table}"),
                format!("{scratch}.{table}"),
            ),
            (
                "only rebuilt",
                format!("{scratch}.{table}"),
                format!("public.{table}"),
            ),
        ] {
            let rows = tx
                .query(
                    &format!(
                        "SELECT to_jsonb(d) FROM (SELECT {columns} FROM {left} EXCEPT ALL \
                         SELECT {columns} FROM {right}) d LIMIT {SHOWN}"
                    ),
                    &[],
                )
                .await?;
            let count: i64 = tx
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT {columns} FROM {left} EXCEPT ALL \
                         SELECT {columns} FROM {right}) d"
                    ),
                    &[],
                )
                .await?
                .try_get(0)?;
            if count > 0 {
                differences += usize::try_from(count).unwrap_or(usize::MAX);
                println!("{table}: {count} row(s) {label}");
                for row in rows {
                    let row: Value = row.try_get(0)?;
                    println!("  {row}");
                }
            }
        }
    }
    tx.rollback().await?;
    if differences > 0 {
        return Err(ReplayError::Differences(differences));
    }
    println!(
        "check passed: {} table(s) of {} projection(s) match a refold of {folded} events",
        tables.len(),
        projections::ALL.len()
    );
    Ok(())
}

/// The select list comparing a table's rows: every column, a `json` one as `jsonb` (json has no
/// equality, and its text keeps the writer's spacing and key order, which `jsonb` does not).
async fn compared_columns(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<String, ReplayError> {
    let columns: Vec<String> = tx
        .query(
            "SELECT CASE WHEN atttypid = 'json'::regtype \
                 THEN format('%I::jsonb AS %I', attname, attname) ELSE format('%I', attname) END \
             FROM pg_attribute WHERE attrelid = format('public.%I', $1::text)::regclass \
               AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(columns.join(", "))
}
