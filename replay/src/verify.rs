//! `replay verify`: walks the hash chain from the first event to the head, in position chunks
//! inside one snapshot, and checks every checkpoint's signature and hash. Prints each finding
//! (the first is where the log stopped being what was written) and fails when there is any.
//! Needs no key: it hashes the stored bytes, sealed personal data included.

use std::collections::BTreeMap;

use idledger::app::Environment;
use idledger::audit::{self, Finding, SELECT_STORED, StoredRow, Walk};

use crate::ReplayError;

const CHUNK: i64 = 5_000;

pub async fn run(environment: &Environment) -> Result<(), ReplayError> {
    let mut client = environment.pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let head = tx
        .query_one("SELECT position, hash, chain_from FROM event_head", &[])
        .await?;
    let (head_position, head_hash, chain_from): (i64, Option<Vec<u8>>, i64) =
        (head.try_get(0)?, head.try_get(1)?, head.try_get(2)?);

    let keys = audit::public_keys(&*tx).await.map_err(audit_error)?;
    let mut signed = BTreeMap::new();
    let mut findings = Vec::new();
    let checkpoints = audit::list(&*tx, i64::MAX).await.map_err(audit_error)?;
    for checkpoint in &checkpoints {
        let verifies = keys
            .get(&checkpoint.key_id)
            .is_some_and(|key| audit::signature_verifies(checkpoint, key));
        if verifies {
            signed.insert(checkpoint.position, checkpoint.hash.clone());
        } else {
            findings.push(Finding::BadSignature {
                position: checkpoint.position,
            });
        }
    }

    let mut walk = Walk::new(chain_from, signed);
    let select = tx
        .prepare(&format!(
            "{SELECT_STORED} WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .await?;
    let mut after = 0_i64;
    loop {
        let rows = tx.query(&select, &[&after, &CHUNK]).await?;
        let rows = rows
            .iter()
            .map(StoredRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = rows.last() else { break };
        after = last.position;
        walk.chunk(&rows);
    }
    walk.finish(head_position, head_hash.as_deref());
    findings.extend(walk.findings.iter().cloned());
    findings.sort_by_key(Finding::position);
    tx.commit().await?;

    if chain_from > 1 {
        println!(
            "positions 1..{} predate the hash chain (appended before migration 0026)",
            chain_from - 1
        );
    }
    if findings.is_empty() {
        println!(
            "verified: {} events, head at position {head_position}, {} signed checkpoint(s)",
            walk.events,
            checkpoints.len()
        );
        return Ok(());
    }
    for finding in &findings {
        println!("{finding}");
    }
    Err(ReplayError::Tampered(findings))
}

pub async fn checkpoint(environment: &Environment) -> Result<(), ReplayError> {
    let (checkpoint, created) = audit::record(&environment.pool, &environment.keyring, "replay")
        .await
        .map_err(audit_error)?;
    let hash: String = checkpoint.hash.iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "{} checkpoint at position {}: {hash} (key {}, by {})",
        if created { "recorded" } else { "existing" },
        checkpoint.position,
        checkpoint.key_id,
        checkpoint.recorded_by
    );
    Ok(())
}

fn audit_error(error: audit::AuditError) -> ReplayError {
    ReplayError::Audit(error.to_string())
}
