//! Evidence about the log itself: signed checkpoints of the hash chain's head, and the walk that
//! `replay verify` runs over the chain (`store/chain.rs` defines the hashes).
//!
//! A checkpoint says "at position N the head hash was H", signed with an Ed25519 key whose
//! private half is sealed in the vault's way (under the key-encryption key). The chain alone
//! proves a row was changed unless the attacker rewrote every later hash too; a checkpoint signed
//! before the rewrite proves that as well, and a checkpoint copied out of the database proves it
//! even against someone who holds the database and the key-encryption key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;

use crate::crypto::{CryptoError, Keyring};
use crate::store::chain::{self, Content};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the log has no chained event yet: there is no head to sign")]
    NothingToSign,
    #[error("the checkpoint key: {0}")]
    Key(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A signed statement about the chain's head.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub position: i64,
    pub hash: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
    pub recorded_by: String,
    pub recorded_at: OffsetDateTime,
}

/// Who records the periodic checkpoints.
pub const SCHEDULE: &str = "schedule";

/// The bytes a checkpoint signs.
fn statement(position: i64, hash: &[u8]) -> Vec<u8> {
    let mut message = b"idledger-checkpoint-v1\0".to_vec();
    message.extend_from_slice(&position.to_be_bytes());
    message.extend_from_slice(hash);
    message
}

fn key_id(public_key: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key);
    digest.as_ref()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn vault_ref(key_id: &str) -> String {
    format!("chain-key/{key_id}")
}

/// The newest checkpoint key, made on first use. Two nodes making one at once both succeed; each
/// checkpoint names the key that signed it.
async fn signing_key(
    client: &impl GenericClient,
    keyring: &Keyring,
) -> Result<(String, Ed25519KeyPair), AuditError> {
    let newest = client
        .query_opt(
            "SELECT id, sealed_key FROM chain_keys ORDER BY created_at DESC, id LIMIT 1",
            &[],
        )
        .await?;
    if let Some(row) = newest {
        let id: String = row.try_get(0)?;
        let sealed: Vec<u8> = row.try_get(1)?;
        let pkcs8 = keyring.open_vault(&vault_ref(&id), &sealed)?;
        let pair =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| AuditError::Key(e.to_string()))?;
        return Ok((id, pair));
    }
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|e| AuditError::Key(e.to_string()))?;
    let pair =
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| AuditError::Key(e.to_string()))?;
    let public = pair.public_key().as_ref().to_vec();
    let id = key_id(&public);
    let sealed = keyring.seal_vault(&vault_ref(&id), pkcs8.as_ref())?;
    client
        .execute(
            "INSERT INTO chain_keys (id, public_key, sealed_key) VALUES ($1, $2, $3)",
            &[&id, &public, &sealed],
        )
        .await?;
    Ok((id, pair))
}

const CHECKPOINT_COLUMNS: &str = "position, hash, key_id, signature, recorded_by, recorded_at";

fn checkpoint(row: &tokio_postgres::Row) -> Result<Checkpoint, tokio_postgres::Error> {
    Ok(Checkpoint {
        position: row.try_get(0)?,
        hash: row.try_get(1)?,
        key_id: row.try_get(2)?,
        signature: row.try_get(3)?,
        recorded_by: row.try_get(4)?,
        recorded_at: row.try_get(5)?,
    })
}

/// Signs the current head. A head already signed is not signed twice: its checkpoint is
/// returned with `false`.
pub async fn record(
    pool: &Pool,
    keyring: &Keyring,
    recorded_by: &str,
) -> Result<(Checkpoint, bool), AuditError> {
    let client = pool.get().await?;
    // The head row changes position and hash together, so one read is a consistent pair.
    let head = client
        .query_one("SELECT position, hash FROM event_head", &[])
        .await?;
    let position: i64 = head.try_get(0)?;
    let hash: Vec<u8> = head
        .try_get::<_, Option<Vec<u8>>>(1)?
        .ok_or(AuditError::NothingToSign)?;
    let existing = client
        .query_opt(
            &format!("SELECT {CHECKPOINT_COLUMNS} FROM chain_checkpoints WHERE position = $1"),
            &[&position],
        )
        .await?;
    if let Some(row) = existing {
        return Ok((checkpoint(&row)?, false));
    }
    let (key_id, pair) = signing_key(&**client, keyring).await?;
    let signature = pair.sign(&statement(position, &hash)).as_ref().to_vec();
    let inserted = client
        .query_opt(
            &format!(
                "INSERT INTO chain_checkpoints (position, hash, key_id, signature, recorded_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (position) DO NOTHING \
                 RETURNING {CHECKPOINT_COLUMNS}"
            ),
            &[&position, &hash, &key_id, &signature, &recorded_by],
        )
        .await?;
    match inserted {
        Some(row) => Ok((checkpoint(&row)?, true)),
        // Another node signed the same head a moment ago.
        None => {
            let row = client
                .query_one(
                    &format!(
                        "SELECT {CHECKPOINT_COLUMNS} FROM chain_checkpoints WHERE position = $1"
                    ),
                    &[&position],
                )
                .await?;
            Ok((checkpoint(&row)?, false))
        }
    }
}

/// Every checkpoint, newest first, at most `limit`.
pub async fn list(client: &impl GenericClient, limit: i64) -> Result<Vec<Checkpoint>, AuditError> {
    let rows = client
        .query(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM chain_checkpoints ORDER BY position DESC LIMIT $1"
            ),
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(checkpoint).collect::<Result<_, _>>()?)
}

/// An Ed25519 SubjectPublicKeyInfo (RFC 8410) is this fixed DER prefix and the raw 32-byte key,
/// so the PEM form needs no ASN.1 library.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// A checkpoint key's public half as a PEM `PUBLIC KEY` block (what `openssl pkey -pubin`
/// reads), for an auditor to keep outside the database.
pub fn public_key_pem(public_key: &[u8]) -> String {
    use base64::Engine;
    let der = [ED25519_SPKI_PREFIX.as_slice(), public_key].concat();
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    format!("{PEM_BEGIN}\n{encoded}\n{PEM_END}\n")
}

/// Every Ed25519 public key in PEM text (one or more `PUBLIC KEY` blocks; text outside the
/// blocks, such as `replay checkpoint-key`'s comment lines, is ignored).
pub fn pinned_keys(pem: &str) -> Result<Vec<Vec<u8>>, AuditError> {
    use base64::Engine;
    let mut keys = Vec::new();
    let mut block: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match (&mut block, line) {
            (None, PEM_BEGIN) => block = Some(String::new()),
            (None, _) => {}
            (Some(body), PEM_END) => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .map_err(|e| AuditError::Key(format!("a PUBLIC KEY block: {e}")))?;
                let raw = der
                    .strip_prefix(ED25519_SPKI_PREFIX.as_slice())
                    .filter(|raw| raw.len() == 32)
                    .ok_or_else(|| {
                        AuditError::Key("a PUBLIC KEY block is not an Ed25519 key".into())
                    })?;
                keys.push(raw.to_vec());
                block = None;
            }
            (Some(body), _) => body.push_str(line),
        }
    }
    if block.is_some() {
        return Err(AuditError::Key("a PUBLIC KEY block is not closed".into()));
    }
    if keys.is_empty() {
        return Err(AuditError::Key("no PUBLIC KEY block found".into()));
    }
    Ok(keys)
}

/// What a checkpoint's signature is worth. Without `pinned` keys, it must verify under the key
/// the database names; with them, under one of those, because whoever can rewrite the database
/// can also replace its key and sign again.
pub fn judge(
    checkpoint: &Checkpoint,
    stored_keys: &BTreeMap<String, Vec<u8>>,
    pinned: Option<&[Vec<u8>]>,
) -> Option<Finding> {
    let stored_verifies = stored_keys
        .get(&checkpoint.key_id)
        .is_some_and(|key| signature_verifies(checkpoint, key));
    match pinned {
        Some(pinned) if pinned.iter().any(|key| signature_verifies(checkpoint, key)) => None,
        Some(_) if stored_verifies => Some(Finding::Unpinned {
            position: checkpoint.position,
            key_id: checkpoint.key_id.clone(),
        }),
        None if stored_verifies => None,
        Some(_) | None => Some(Finding::BadSignature {
            position: checkpoint.position,
        }),
    }
}

/// Every checkpoint key's public half, by id.
pub async fn public_keys(
    client: &impl GenericClient,
) -> Result<BTreeMap<String, Vec<u8>>, AuditError> {
    let rows = client
        .query("SELECT id, public_key FROM chain_keys", &[])
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Records a checkpoint every `interval` while the head moves, until `stop` turns true. Every
/// node may run it: a head is signed once.
pub async fn schedule(
    pool: Pool,
    keyring: std::sync::Arc<Keyring>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; a start is no reason to sign.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match record(&pool, &keyring, SCHEDULE).await {
            Ok((checkpoint, true)) => {
                tracing::info!(position = checkpoint.position, "chain checkpoint recorded");
            }
            Ok((_, false)) | Err(AuditError::NothingToSign) => {}
            Err(error) => tracing::warn!(%error, "cannot record a chain checkpoint"),
        }
    }
}

/// One stored event as `verify` reads it: every hashed column plus the stored hash.
pub struct StoredRow {
    pub position: i64,
    pub stream_type: String,
    pub stream_id: String,
    pub sequence: i32,
    pub event_type: String,
    pub event_version: i32,
    pub payload: serde_json::Value,
    pub personal: Option<Vec<u8>>,
    pub subject_id: Option<String>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub hash: Option<Vec<u8>>,
}

/// The columns `StoredRow::from_row` expects, in order.
pub const SELECT_STORED: &str = "SELECT position, stream_type, stream_id, sequence, event_type, \
     event_version, payload, personal, subject_id, actor_kind, actor_id, ip, user_agent, \
     request_id, occurred_at, hash FROM events";

impl StoredRow {
    pub fn from_row(row: &tokio_postgres::Row) -> Result<StoredRow, tokio_postgres::Error> {
        Ok(StoredRow {
            position: row.try_get(0)?,
            stream_type: row.try_get(1)?,
            stream_id: row.try_get(2)?,
            sequence: row.try_get(3)?,
            event_type: row.try_get(4)?,
            event_version: row.try_get(5)?,
            payload: row.try_get(6)?,
            personal: row.try_get(7)?,
            subject_id: row.try_get(8)?,
            actor_kind: row.try_get(9)?,
            actor_id: row.try_get(10)?,
            ip: row.try_get(11)?,
            user_agent: row.try_get(12)?,
            request_id: row.try_get(13)?,
            occurred_at: row.try_get(14)?,
            hash: row.try_get(15)?,
        })
    }

    /// The hash this row should carry if it sits at `position` after `previous`.
    pub fn link_at(&self, previous: &[u8], position: i64) -> [u8; 32] {
        chain::link(
            previous,
            &Content {
                position,
                stream_type: &self.stream_type,
                stream_id: &self.stream_id,
                sequence: self.sequence,
                event_type: &self.event_type,
                event_version: self.event_version,
                payload: &self.payload,
                personal: self.personal.as_deref(),
                subject_id: self.subject_id.as_deref(),
                actor_kind: &self.actor_kind,
                actor_id: self.actor_id.as_deref(),
                ip: self.ip.as_deref(),
                user_agent: self.user_agent.as_deref(),
                request_id: self.request_id.as_deref(),
                occurred_at: self.occurred_at,
            },
        )
    }
}

/// What `verify` found wrong, at the position it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Positions `from..=to` are absent: events were deleted.
    Missing { from: i64, to: i64 },
    /// The row's stored bytes no longer produce its hash.
    Altered { position: i64 },
    /// The row is intact but was recorded at `belongs_at`: events were reordered.
    Moved { position: i64, belongs_at: i64 },
    /// The row does not chain from the row before it, which was itself moved or is missing.
    Unlinked { position: i64 },
    /// A row after the chain's start has no hash.
    Unhashed { position: i64 },
    /// A checkpoint's signature does not verify (or its key is unknown).
    BadSignature { position: i64 },
    /// The log's hash at a signed checkpoint differs from the signed one.
    CheckpointMismatch { position: i64 },
    /// A checkpoint verifies under the database's key `key_id` but under no key the auditor
    /// pinned: the key (and the signature) may have been replaced with the log.
    Unpinned { position: i64, key_id: String },
    /// Keys were pinned but no checkpoint up to the head (`position`) is signed by one: they
    /// were all re-signed (see `Unpinned`) or deleted, since a key is made with the first
    /// checkpoint and so one signed by it existed.
    NoPinnedCheckpoint { position: i64 },
    /// The head row disagrees with the last event (its position or hash).
    Head { position: i64 },
}

impl Finding {
    pub fn position(&self) -> i64 {
        match self {
            Finding::Missing { from, .. } => *from,
            Finding::Altered { position }
            | Finding::Moved { position, .. }
            | Finding::Unlinked { position }
            | Finding::Unhashed { position }
            | Finding::BadSignature { position }
            | Finding::CheckpointMismatch { position }
            | Finding::Unpinned { position, .. }
            | Finding::NoPinnedCheckpoint { position }
            | Finding::Head { position } => *position,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Missing { from, to } if from == to => {
                write!(f, "position {from}: event missing (deleted)")
            }
            Finding::Missing { from, to } => {
                write!(f, "position {from}: events {from}..={to} missing (deleted)")
            }
            Finding::Altered { position } => write!(
                f,
                "position {position}: stored bytes do not match the event's hash (altered)"
            ),
            Finding::Moved {
                position,
                belongs_at,
            } => write!(
                f,
                "position {position}: the event recorded at position {belongs_at} (reordered)"
            ),
            Finding::Unlinked { position } => write!(
                f,
                "position {position}: does not chain from the event before it (moved or deleted)"
            ),
            Finding::Unhashed { position } => {
                write!(f, "position {position}: no hash on a chained event")
            }
            Finding::BadSignature { position } => {
                write!(
                    f,
                    "position {position}: checkpoint signature does not verify"
                )
            }
            Finding::CheckpointMismatch { position } => write!(
                f,
                "position {position}: the log's hash differs from the signed checkpoint"
            ),
            Finding::Unpinned { position, key_id } => write!(
                f,
                "position {position}: checkpoint not signed by a trusted key (signed by key {key_id} of the database)"
            ),
            Finding::NoPinnedCheckpoint { position } => write!(
                f,
                "position {position}: no checkpoint up to the head is signed by a trusted key"
            ),
            Finding::Head { position } => write!(
                f,
                "position {position}: the head does not match the last event (events after it deleted?)"
            ),
        }
    }
}

/// The chain walk, fed rows in position order, one chunk at a time. Each row is checked against
/// its predecessor's *stored* hash, so one altered row is reported alone and the walk carries
/// on: a deletion shows as the gap (and the next row, which chained from the deleted one).
pub struct Walk {
    chain_from: i64,
    expected: i64,
    previous: Option<Vec<u8>>,
    /// The row before was moved or is missing, so the next one cannot chain from it.
    broken_before: bool,
    checkpoints: BTreeMap<i64, Vec<u8>>,
    pub findings: Vec<Finding>,
    pub events: u64,
}

impl Walk {
    /// `checkpoints`: the signed (position, hash) pairs whose signatures already verified.
    pub fn new(chain_from: i64, checkpoints: BTreeMap<i64, Vec<u8>>) -> Walk {
        Walk {
            chain_from,
            expected: 1,
            previous: None,
            broken_before: false,
            checkpoints,
            findings: Vec::new(),
            events: 0,
        }
    }

    /// Checks one chunk of consecutive rows (ordered by position).
    pub fn chunk(&mut self, rows: &[StoredRow]) {
        for (index, row) in rows.iter().enumerate() {
            self.events += 1;
            let gap = row.position > self.expected;
            if gap {
                self.findings.push(Finding::Missing {
                    from: self.expected,
                    to: row.position - 1,
                });
            }
            let broken_before = std::mem::replace(&mut self.broken_before, false) || gap;
            self.expected = row.position + 1;
            if row.position < self.chain_from {
                continue;
            }
            let Some(stored) = &row.hash else {
                self.findings.push(Finding::Unhashed {
                    position: row.position,
                });
                self.previous = None;
                continue;
            };
            let previous = self.previous.as_deref().unwrap_or(&chain::GENESIS);
            if row.link_at(previous, row.position).as_slice() != stored.as_slice() {
                self.findings.push(match moved_from(rows, index, previous) {
                    Some(belongs_at) => {
                        self.broken_before = true;
                        Finding::Moved {
                            position: row.position,
                            belongs_at,
                        }
                    }
                    None if broken_before => Finding::Unlinked {
                        position: row.position,
                    },
                    None => Finding::Altered {
                        position: row.position,
                    },
                });
            }
            if let Some(signed) = self.checkpoints.get(&row.position)
                && signed != stored
            {
                self.findings.push(Finding::CheckpointMismatch {
                    position: row.position,
                });
            }
            self.previous = Some(stored.clone());
        }
    }

    /// Ends the walk against the head row: its position and hash must be the last event's, and
    /// no checkpoint may lie beyond it.
    pub fn finish(&mut self, head_position: i64, head_hash: Option<&[u8]>) {
        let last = self.expected - 1;
        if head_position > last {
            self.findings.push(Finding::Missing {
                from: last + 1,
                to: head_position,
            });
        } else if head_position >= self.chain_from && head_hash != self.previous.as_deref() {
            self.findings.push(Finding::Head {
                position: head_position,
            });
        }
        for position in self.checkpoints.keys().filter(|p| **p > last) {
            self.findings.push(Finding::CheckpointMismatch {
                position: *position,
            });
        }
        self.findings.sort_by_key(Finding::position);
    }
}

/// Whether the row at `index`, intact, was recorded at another position of this chunk: its
/// stored hash is what it would have after some other row of the chunk (or after `previous`).
/// Only rows that already failed are tried, so an intact log costs nothing here.
fn moved_from(rows: &[StoredRow], index: usize, previous: &[u8]) -> Option<i64> {
    let row = rows.get(index)?;
    let stored = row.hash.as_deref()?;
    let first = rows.first()?.position;
    if row.link_at(previous, first).as_slice() == stored && first != row.position {
        return Some(first);
    }
    rows.iter()
        .filter_map(|other| Some((other.position + 1, other.hash.as_deref()?)))
        .find(|(at, hash)| *at != row.position && row.link_at(hash, *at).as_slice() == stored)
        .map(|(at, _)| at)
}

/// Whether a checkpoint's signature verifies under the named key.
pub fn signature_verifies(checkpoint: &Checkpoint, public_key: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(
            &statement(checkpoint.position, &checkpoint.hash),
            &checkpoint.signature,
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(position: i64, stream_id: &str) -> StoredRow {
        StoredRow {
            position,
            stream_type: "user".into(),
            stream_id: stream_id.into(),
            sequence: 1,
            event_type: "user.created".into(),
            event_version: 1,
            payload: json!({"id": stream_id}),
            personal: Some(vec![1, 2, 3]),
            subject_id: Some(stream_id.into()),
            actor_kind: "admin".into(),
            actor_id: Some("app".into()),
            ip: None,
            user_agent: None,
            request_id: Some("r".into()),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            hash: None,
        }
    }

    /// Five events chained as the appender chains them.
    fn log() -> Vec<StoredRow> {
        let mut previous = chain::GENESIS.to_vec();
        (1..=5)
            .map(|position| {
                let mut row = row(position, &format!("u{position}"));
                let hash = row.link_at(&previous, position);
                previous = hash.to_vec();
                row.hash = Some(hash.to_vec());
                row
            })
            .collect()
    }

    fn walk(rows: &[StoredRow], head: i64) -> Vec<Finding> {
        let mut walk = Walk::new(1, BTreeMap::new());
        walk.chunk(rows);
        let head_hash = rows.last().and_then(|r| r.hash.clone());
        walk.finish(head, head_hash.as_deref());
        walk.findings
    }

    #[test]
    fn an_intact_log_has_no_findings() {
        assert_eq!(walk(&log(), 5), vec![]);
    }

    #[test]
    fn an_altered_byte_is_named_alone() {
        let mut rows = log();
        if let Some(personal) = &mut rows[2].personal {
            personal[0] ^= 1;
        }
        assert_eq!(walk(&rows, 5), vec![Finding::Altered { position: 3 }]);
    }

    #[test]
    fn a_deleted_event_is_a_gap() {
        let mut rows = log();
        rows.remove(1);
        assert_eq!(
            walk(&rows, 5),
            vec![
                Finding::Missing { from: 2, to: 2 },
                Finding::Unlinked { position: 3 }
            ]
        );
    }

    #[test]
    fn deleting_the_last_events_shows_at_the_head() {
        let mut rows = log();
        rows.truncate(3);
        assert_eq!(walk(&rows, 5), vec![Finding::Missing { from: 4, to: 5 }]);
    }

    #[test]
    fn swapped_events_are_named_as_reordered() {
        let mut rows = log();
        rows.swap(1, 3);
        rows[1].position = 2;
        rows[3].position = 4;
        assert_eq!(
            walk(&rows, 5),
            vec![
                Finding::Moved {
                    position: 2,
                    belongs_at: 4
                },
                Finding::Unlinked { position: 3 },
                Finding::Moved {
                    position: 4,
                    belongs_at: 2
                },
                Finding::Unlinked { position: 5 },
            ]
        );
    }

    #[test]
    fn a_checkpoint_pins_the_hash_even_when_the_chain_was_rewritten() {
        let rows = log();
        let mut signed = BTreeMap::new();
        signed.insert(3, vec![0; 32]);
        let mut walk = Walk::new(1, signed);
        walk.chunk(&rows);
        walk.finish(5, rows[4].hash.as_deref());
        assert_eq!(
            walk.findings,
            vec![Finding::CheckpointMismatch { position: 3 }]
        );
    }

    fn signed_by(pair: &Ed25519KeyPair, position: i64) -> Checkpoint {
        Checkpoint {
            position,
            hash: vec![7; 32],
            key_id: key_id(pair.public_key().as_ref()),
            signature: pair.sign(&statement(position, &[7; 32])).as_ref().to_vec(),
            recorded_by: SCHEDULE.into(),
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn new_pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn a_public_key_survives_its_pem_form_among_other_text() {
        let (a, b) = (new_pair(), new_pair());
        let text = format!(
            "# key one\n{}\n# key two\n{}",
            public_key_pem(a.public_key().as_ref()),
            public_key_pem(b.public_key().as_ref())
        );
        assert_eq!(
            pinned_keys(&text).unwrap(),
            vec![
                a.public_key().as_ref().to_vec(),
                b.public_key().as_ref().to_vec()
            ]
        );
        // `openssl genpkey -algorithm ed25519 | openssl pkey -pubout` writes this prefix too.
        assert!(public_key_pem(&[0; 32]).contains("MCowBQYDK2VwAyEA"));
        let openssl = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAARtsdax6rw6EtnpKoJ+cjwUkRCcbi+XlXsgVlxKTExI=\n\
            -----END PUBLIC KEY-----\n";
        assert_eq!(pinned_keys(openssl).unwrap()[0].len(), 32);
    }

    #[test]
    fn pem_text_without_an_ed25519_key_is_refused() {
        for text in [
            "",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(pinned_keys(text), Err(AuditError::Key(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_pinned_key_alone_vouches_for_a_checkpoint() {
        let (auditors, replaced) = (new_pair(), new_pair());
        let stored: BTreeMap<String, Vec<u8>> = [&auditors, &replaced]
            .iter()
            .map(|pair| {
                let public = pair.public_key().as_ref().to_vec();
                (key_id(&public), public)
            })
            .collect();
        let pinned = vec![auditors.public_key().as_ref().to_vec()];
        let original = signed_by(&auditors, 3);
        let resigned = signed_by(&replaced, 5);

        assert_eq!(judge(&original, &stored, None), None);
        assert_eq!(judge(&resigned, &stored, None), None);
        assert_eq!(judge(&original, &stored, Some(&pinned)), None);
        assert_eq!(
            judge(&resigned, &stored, Some(&pinned)),
            Some(Finding::Unpinned {
                position: 5,
                key_id: key_id(replaced.public_key().as_ref())
            })
        );
        // The database lost the key row: the pinned key still vouches.
        assert_eq!(judge(&original, &BTreeMap::new(), Some(&pinned)), None);
        let mut forged = original.clone();
        forged.signature[0] ^= 1;
        for pins in [None, Some(pinned.as_slice())] {
            assert_eq!(
                judge(&forged, &stored, pins),
                Some(Finding::BadSignature { position: 3 })
            );
        }
    }

    #[test]
    fn signatures_verify_only_for_what_was_signed() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut checkpoint = Checkpoint {
            position: 9,
            hash: vec![7; 32],
            key_id: key_id(pair.public_key().as_ref()),
            signature: Vec::new(),
            recorded_by: SCHEDULE.into(),
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        };
        checkpoint.signature = pair.sign(&statement(9, &[7; 32])).as_ref().to_vec();
        assert!(signature_verifies(&checkpoint, pair.public_key().as_ref()));
        checkpoint.position = 10;
        assert!(!signature_verifies(&checkpoint, pair.public_key().as_ref()));
    }
}
