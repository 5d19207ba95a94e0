//! Background consumers of the log (mail delivery, webhooks): each reads the events after its
//! checkpoint in position order, handles them, then advances the checkpoint. Delivery is
//! at-least-once: a crash between handling and checkpointing replays the batch, so handlers are
//! idempotent (an idempotency key per message). Only one node runs a given follower at a time
//! (a session-level advisory lock), so several nodes never work the same batch concurrently.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use domain::RecordedEvent;
use tokio::sync::watch;

use crate::crypto::Keyring;
use crate::store::read::{Keys, Raw, SELECT_EVENTS};

/// How often an idle follower looks for new events (several nodes append; a local signal
/// would miss the others' events).
const POLL: Duration = Duration::from_millis(250);
/// How long to wait before retrying after the database or a handler failed.
const BACKOFF: Duration = Duration::from_secs(1);
const BATCH: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("database: {0}")]
    Database(String),
    #[error("handler: {0}")]
    Handler(String),
}

impl From<tokio_postgres::Error> for FollowError {
    fn from(error: tokio_postgres::Error) -> FollowError {
        FollowError::Database(error.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for FollowError {
    fn from(error: deadpool_postgres::PoolError) -> FollowError {
        FollowError::Database(error.to_string())
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The follower's name: its checkpoint row and its lock.
    fn name(&self) -> &'static str;

    /// Whether the handler cares about events of this stream type and event type; others are
    /// skipped without decoding.
    fn wants(&self, stream_type: &str, event_type: &str) -> bool;

    /// Handles a batch in position order. An error leaves the checkpoint where it was, so the
    /// batch comes again after a pause.
    async fn handle(&self, events: &[RecordedEvent]) -> Result<(), FollowError>;
}

/// Stable 64-bit key of a follower's advisory lock.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("idledger follower {name}").bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Runs `handler` until `stop` turns true.
pub async fn run(
    pool: Pool,
    keyring: std::sync::Arc<Keyring>,
    handler: impl Handler,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let pause = match follow(&pool, &keyring, &handler, &mut stop).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(follower = handler.name(), %error, "follower paused");
                BACKOFF
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Holds the follower's lock on one connection and works until stopped or failing.
async fn follow(
    pool: &Pool,
    keyring: &Keyring,
    handler: &impl Handler,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), FollowError> {
    let client = pool.get().await?;
    let key = lock_key(handler.name());
    // Another node holds it: stay idle, try again later.
    loop {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await?
            .try_get(0)?;
        if locked {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL * 8) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
    let worked = work(&client, keyring, handler, stop, key).await;
    if worked.is_err() {
        // The session holds the follower's lock: closing it releases the lock, where returning
        // it to the pool would leave the lock with an idle connection and no node could follow.
        drop(deadpool_postgres::Object::take(client));
    }
    worked
}

/// Handles batches while this session holds the follower's lock.
async fn work(
    client: &deadpool_postgres::Object,
    keyring: &Keyring,
    handler: &impl Handler,
    stop: &mut watch::Receiver<bool>,
    key: i64,
) -> Result<(), FollowError> {
    client
        .execute(
            "INSERT INTO follower_checkpoints (name, position) VALUES ($1, \
             (SELECT position FROM event_head)) ON CONFLICT (name) DO NOTHING",
            &[&handler.name()],
        )
        .await?;
    let select = client
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE e.position > $1 ORDER BY e.position LIMIT $2"
        ))
        .await?;
    let mut keys = Keys::new(keyring);
    loop {
        if *stop.borrow() {
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await?;
            return Ok(());
        }
        let checkpoint: i64 = client
            .query_one(
                "SELECT position FROM follower_checkpoints WHERE name = $1",
                &[&handler.name()],
            )
            .await?
            .try_get(0)?;
        let rows = client.query(&select, &[&checkpoint, &BATCH]).await?;
        let Some(last) = rows
            .last()
            .map(|row| row.try_get::<_, i64>(0))
            .transpose()?
        else {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let mut wanted = Vec::new();
        for row in &rows {
            let raw = Raw::from_row(row)?;
            if handler.wants(&raw.stream_type, &raw.event_type) {
                wanted.push(
                    keys.decode(raw)
                        .map_err(|e| FollowError::Database(e.to_string()))?,
                );
            }
        }
        if !wanted.is_empty() {
            handler.handle(&wanted).await?;
        }
        client
            .execute(
                "UPDATE follower_checkpoints SET position = $2 WHERE name = $1",
                &[&handler.name(), &last],
            )
            .await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("mail"), lock_key("mail"));
        assert_ne!(lock_key("mail"), lock_key("webhooks"));
    }
}
