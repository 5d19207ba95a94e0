//! `replay rebuild`: empty read models and refold them from the whole log, in one transaction
//! that holds the append lock, so no command commits half-way through (`store::rebuild`).

use idledger::app::Environment;
use idledger::store::rebuild;
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
    // The bar's length only: appends committing before the rebuild takes the head lock may
    // add a few events.
    let head: i64 = tx
        .query_one("SELECT position FROM event_head", &[])
        .await?
        .try_get(0)?;
    let progress = bar(u64::try_from(head).unwrap_or(0), "rebuild");
    let started = std::time::Instant::now();
    let rebuilt = rebuild(
        &environment.pool,
        &tx,
        &environment.keyring,
        &chosen,
        |at| progress.set_position(u64::try_from(at).unwrap_or(0)),
    )
    .await?;
    tx.commit().await?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} projection(s) from {} events in {seconds:.2} s ({:.0} events/s; indexes built in {:.2} s)",
        chosen.len(),
        rebuilt.folded,
        rebuilt.folded as f64 / seconds.max(1e-9),
        rebuilt.indexing.as_secs_f64()
    );
    Ok(())
}
