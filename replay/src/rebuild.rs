//! `replay rebuild`: empty read models and refold them from the whole log, in one transaction
//! that holds the append lock, so no command commits half-way through.

use idledger::app::Environment;
use idledger::store::{Stretch, refold};
use projections::Projection;

use crate::ReplayError;
use crate::progress::bar;

pub fn select(names: &[String]) -> Result<Vec<&'static dyn Projection>, ReplayError> {
    if names.is_empty() {
        return Ok(projections::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            projections::ALL
                .iter()
                .copied()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = projections::ALL.iter().map(|p| p.name()).collect();
                    ReplayError::UnknownProjection(name.clone(), known.join(", "))
                })
        })
        .collect()
}

pub async fn run(environment: &Environment, names: &[String]) -> Result<(), ReplayError> {
    let chosen = select(names)?;
    let mut client = environment.pool.get().await?;
    let tx = client.transaction().await?;
    let head: i64 = tx
        .query_one("SELECT position FROM event_head FOR UPDATE", &[])
        .await?
        .try_get(0)?;
    // Taken under the head lock and before any write: the reader sees exactly the log up to
    // `head`.
    let snapshot = idledger::store::export_snapshot(&tx).await?;
    for projection in &chosen {
        for table in projection.tables() {
            // Table names come from the projection list, never from input.
            tx.batch_execute(&format!("TRUNCATE {table}")).await?;
        }
    }
    let progress = bar(u64::try_from(head).unwrap_or(0), "rebuild");
    let started = std::time::Instant::now();
    let stretch = Stretch {
        snapshot: &snapshot,
        after: 0,
        until: head,
    };
    let folded = refold(
        &environment.pool,
        &tx,
        &environment.keyring,
        &chosen,
        stretch,
        |at| progress.set_position(u64::try_from(at).unwrap_or(0)),
    )
    .await?;
    for projection in &chosen {
        tx.execute(
            "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
            &[&projection.name(), &head],
        )
        .await?;
    }
    tx.commit().await?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} projection(s) from {folded} events in {seconds:.2} s ({:.0} events/s)",
        chosen.len(),
        folded as f64 / seconds.max(1e-9)
    );
    Ok(())
}
