//! `replay verify`: walks the hash chain from the first event to the head, in position chunks
//! inside one snapshot, and checks every checkpoint's signature and hash. Prints each finding
//! (the first is where the log stopped being what was written) and fails when there is any.
//! Needs no key: it hashes the stored bytes, sealed personal data included.
//!
//! The checkpoint key lives in the database it vouches for, so `--trusted-key` lets an auditor
//! judge the checkpoints by the public keys they kept (`replay checkpoint-key`) instead.

use std::collections::BTreeMap;
use std::path::PathBuf;

use idledger::app::Environment;
use idledger::audit::{self, Finding, SELECT_STORED, StoredRow, Walk};

use crate::ReplayError;

const CHUNK: i64 = 5_000;

#[derive(clap::Args)]
pub struct Args {
    /// A PEM file of checkpoint public keys kept outside the database (as printed by
    /// `replay checkpoint-key`; repeatable). Every checkpoint must then be signed by one of
    /// them, and at least one must exist.
    #[arg(long = "trusted-key", value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
}

/// The keys of every `--trusted-key` file; `None` when none was given.
fn pinned(args: &Args) -> Result<Option<Vec<Vec<u8>>>, ReplayError> {
    if args.trusted_keys.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for path in &args.trusted_keys {
        let unusable = |e: &dyn std::fmt::Display| {
            ReplayError::Usage(format!("--trusted-key {}: {e}", path.display()))
        };
        let text = std::fs::read_to_string(path).map_err(|e| unusable(&e))?;
        let found = audit::pinned_keys(&text).map_err(|e| unusable(&e))?;
        keys.extend(found);
    }
    Ok(Some(keys))
}

pub async fn run(environment: &Environment, args: &Args) -> Result<(), ReplayError> {
    let pinned = pinned(args)?;
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
        match audit::judge(checkpoint, &keys, pinned.as_deref()) {
            None => {
                signed.insert(checkpoint.position, checkpoint.hash.clone());
            }
            Some(finding) => findings.push(finding),
        }
    }
    let newest_trusted = signed.keys().next_back().copied();
    if pinned.is_some() && newest_trusted.is_none() {
        findings.push(Finding::NoPinnedCheckpoint {
            position: head_position,
        });
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
        if let (Some(_), Some(position)) = (&pinned, newest_trusted) {
            // A key cannot prove that later events were not cut off: the auditor compares
            // this with the newest checkpoint they saw.
            println!("newest checkpoint signed by a trusted key: position {position}");
        }
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

/// `replay checkpoint-key`: every checkpoint key's public half, as PEM, for an auditor to keep
/// and pass back to `verify --trusted-key`.
pub async fn checkpoint_key(environment: &Environment) -> Result<(), ReplayError> {
    let client = environment.pool.get().await?;
    let keys = audit::public_keys(&**client).await.map_err(audit_error)?;
    if keys.is_empty() {
        return Err(ReplayError::NotFound(
            "no checkpoint key yet: one is made with the first checkpoint (`replay checkpoint`)"
                .into(),
        ));
    }
    for (id, public_key) in &keys {
        print!(
            "# idledger checkpoint key {id}\n{}",
            audit::public_key_pem(public_key)
        );
    }
    Ok(())
}

fn audit_error(error: audit::AuditError) -> ReplayError {
    ReplayError::Audit(error.to_string())
}
