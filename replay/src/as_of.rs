//! `replay rebuild-as-of <moment> --schema <name>`: every read model as it stood at a past
//! moment, folded from the log into tables of a separate schema that analysts can query (and
//! join with the live tables in `public`).
//!
//! The approach of `replay check`: tables created `LIKE` the live ones in their own schema, the
//! schema first on the search path, and the store's `refold` over the log as one snapshot sees
//! it; here the refold stops at the moment and the schema is kept.
//!
//! The moment cuts the log at the first event that occurred after it: positions are
//! commit-ordered and an event's time is taken before its commit, so nothing after that event
//! was visible at the moment, and the fold is a state the live read models went through.

use idledger::app::Environment;
use idledger::history;
use idledger::store::{Stretch, refold};
use tokio_postgres::IsolationLevel;

use crate::ReplayError;
use crate::progress::bar;
use crate::scan::rfc3339;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The moment: milliseconds since the epoch or RFC 3339 (to the millisecond).
    moment: String,
    /// The schema to create and fill (lowercase letters, digits and `_`).
    #[arg(long)]
    schema: String,
    /// Drop the schema first if it exists, with everything in it.
    #[arg(long)]
    replace: bool,
}

/// A schema name safe to splice into SQL, and not one the server or PostgreSQL owns.
fn check_schema(name: &str) -> Result<(), ReplayError> {
    let mut chars = name.chars();
    let well_formed = name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_formed || name == "public" || name == "information_schema" || name.starts_with("pg_") {
        return Err(ReplayError::Usage(format!(
            "{name:?} cannot be the schema: use lowercase letters, digits and `_`, not public, \
             information_schema or pg_*"
        )));
    }
    Ok(())
}

pub async fn run(environment: &Environment, args: &Args) -> Result<(), ReplayError> {
    check_schema(&args.schema)?;
    let schema = &args.schema;
    let at = history::parse_instant(&args.moment).ok_or_else(|| {
        ReplayError::Usage(format!(
            "{:?} is not a moment: give milliseconds since the epoch or an RFC 3339 date-time",
            args.moment
        ))
    })?;
    let bound = history::end_of_millisecond(at);
    let mut client = environment.pool.get().await?;
    // Statements prepared under the schema's search path must not be cached on a connection
    // the pool hands out again.
    client.statement_cache.clear();
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let head: i64 = tx
        .query_one("SELECT position FROM event_head", &[])
        .await?
        .try_get(0)?;
    let later: Option<i64> = tx
        .query_one(
            "SELECT min(position) FROM events WHERE occurred_at >= $1",
            &[&bound],
        )
        .await?
        .try_get(0)?;
    let until = later.map_or(head, |first_after| first_after - 1).min(head);
    // Taken before anything is written: the reader folds exactly the log this snapshot sees.
    let snapshot = idledger::store::export_snapshot(&tx).await?;
    if args.replace {
        tx.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
    }
    tx.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
    let tables: Vec<&str> = projections::ALL
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    for table in &tables {
        tx.batch_execute(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .await?;
    }
    tx.batch_execute(&format!("SET LOCAL search_path = {schema}, public"))
        .await?;
    let progress = bar(u64::try_from(until).unwrap_or(0), "as of");
    let stretch = Stretch {
        snapshot: &snapshot,
        after: 0,
        until,
    };
    let folded = refold(
        &environment.pool,
        &tx,
        &environment.keyring,
        projections::ALL,
        stretch,
        |position| progress.set_position(u64::try_from(position).unwrap_or(0)),
    )
    .await?;
    progress.finish_and_clear();
    let described = format!(
        "idledger read models as of {} (ms {}): events 1 to {until} of {head}",
        rfc3339(at),
        domain::unix_ms(at)
    );
    tx.batch_execute(&format!(
        "COMMENT ON SCHEMA {schema} IS '{}'",
        described.replace('\'', "''")
    ))
    .await?;
    tx.commit().await?;
    client.statement_cache.clear();
    println!(
        "{} table(s) of {} projection(s) in schema {schema}: {described} ({folded} folded)",
        tables.len(),
        projections::ALL.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers_of_our_own() {
        assert!(check_schema("as_of_2024_05_01").is_ok());
        assert!(check_schema("_scratch").is_ok());
        for bad in ["public", "pg_temp", "Users", "a-b", "a;drop", "", "1st"] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
