//! The hash chain that makes the log tamper-evident. Each event's hash is SHA-256 over the
//! previous event's hash and the event's canonical content *as stored*: the plain payload and the
//! sealed personal part exactly as they sit in the row. Hashing the ciphertext (not the opened
//! personal data) is what lets erasure destroy a data key without breaking the chain, and lets
//! `replay verify` run without any key.
//!
//! The appender computes the hashes while it holds the `event_head` lock (so the previous hash is
//! the head's), and `replay verify` recomputes them from the rows. Both build a [`Content`] and
//! call [`link`]; nothing else defines the bytes.

use aws_lc_rs::digest::{Context, SHA256};
use serde_json::Value;
use time::OffsetDateTime;

/// What the first chained event chains from.
pub const GENESIS: [u8; 32] = [0; 32];

/// Names the encoding, so a future change of the canonical bytes is a new tag, not a silent
/// reinterpretation of old hashes.
const TAG: &[u8] = b"idledger-chain-v1";

/// One event's stored columns, as hashed.
pub struct Content<'a> {
    pub position: i64,
    pub stream_type: &'a str,
    pub stream_id: &'a str,
    pub sequence: i32,
    pub event_type: &'a str,
    pub event_version: i32,
    /// The plain part of the payload (`events.payload`).
    pub payload: &'a Value,
    /// The sealed personal part (`events.personal`), ciphertext as stored.
    pub personal: Option<&'a [u8]>,
    pub subject_id: Option<&'a str>,
    pub actor_kind: &'a str,
    pub actor_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// At PostgreSQL's precision (microseconds), as the store keeps it.
    pub occurred_at: OffsetDateTime,
}

/// The hash of `content` chained after `previous`.
pub fn link(previous: &[u8], content: &Content<'_>) -> [u8; 32] {
    let mut hasher = Hasher(Context::new(&SHA256));
    hasher.bytes(TAG);
    hasher.bytes(previous);
    hasher.0.update(&content.position.to_be_bytes());
    hasher.bytes(content.stream_type.as_bytes());
    hasher.bytes(content.stream_id.as_bytes());
    hasher.0.update(&content.sequence.to_be_bytes());
    hasher.bytes(content.event_type.as_bytes());
    hasher.0.update(&content.event_version.to_be_bytes());
    let mut json = Vec::new();
    canonical_json(content.payload, &mut json);
    hasher.bytes(&json);
    hasher.optional(content.personal);
    hasher.optional(content.subject_id.map(str::as_bytes));
    hasher.bytes(content.actor_kind.as_bytes());
    hasher.optional(content.actor_id.map(str::as_bytes));
    hasher.optional(content.ip.map(str::as_bytes));
    hasher.optional(content.user_agent.map(str::as_bytes));
    hasher.optional(content.request_id.map(str::as_bytes));
    let micros = content.occurred_at.unix_timestamp_nanos() / 1_000;
    hasher
        .0
        .update(&i64::try_from(micros).unwrap_or(i64::MAX).to_be_bytes());
    let digest = hasher.0.finish();
    let mut hash = [0; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

struct Hasher(Context);

impl Hasher {
    /// Length-prefixed, so no two different field sequences share their bytes.
    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
        self.0.update(bytes);
    }

    /// Absent and empty differ.
    fn optional(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            None => self.0.update(&[0]),
            Some(bytes) => {
                self.0.update(&[1]);
                self.bytes(bytes);
            }
        }
    }
}

/// JSON with object keys sorted by their bytes and no whitespace. The payload's own key order
/// cannot be used: the server keeps insertion order, `jsonb` returns its own order, and the hash
/// must come out the same from the value the appender wrote and the value read back.
fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<_> = object.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                string(key, out);
                out.push(b':');
                canonical_json(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::String(text) => string(text, out),
        Value::Number(_) | Value::Bool(_) | Value::Null => {
            out.extend_from_slice(value.to_string().as_bytes());
        }
    }
}

fn string(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(text.to_owned()).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(payload: &Value) -> Content<'_> {
        Content {
            position: 7,
            stream_type: "user",
            stream_id: "u1",
            sequence: 2,
            event_type: "user.updated",
            event_version: 1,
            payload,
            personal: Some(b"sealed"),
            subject_id: Some("u1"),
            actor_kind: "admin",
            actor_id: Some("app"),
            ip: None,
            user_agent: None,
            request_id: Some("r1"),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn key_order_does_not_matter_but_values_do() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(link(&GENESIS, &content(&a)), link(&GENESIS, &content(&b)));
        let c = json!({"a": {"x": null, "y": [1, "x"]}, "b": 2});
        assert_ne!(link(&GENESIS, &content(&a)), link(&GENESIS, &content(&c)));
    }

    #[test]
    fn every_column_and_the_previous_hash_count() {
        let payload = json!({});
        let base = link(&GENESIS, &content(&payload));
        assert_ne!(base, link(&[1; 32], &content(&payload)));
        let changes: [fn(&mut Content<'_>); 8] = [
            |c| c.position = 8,
            |c| c.stream_id = "u2",
            |c| c.sequence = 3,
            |c| c.personal = Some(b"sealeD"),
            |c| c.personal = None,
            |c| c.ip = Some(""),
            |c| c.actor_id = None,
            |c| c.occurred_at = OffsetDateTime::UNIX_EPOCH + time::Duration::MICROSECOND,
        ];
        for change in changes {
            let mut changed = content(&payload);
            change(&mut changed);
            assert_ne!(base, link(&GENESIS, &changed));
        }
    }

    #[test]
    fn adjacent_fields_cannot_trade_bytes() {
        let payload = json!({});
        let mut a = content(&payload);
        a.stream_type = "us";
        a.stream_id = "eru1";
        let mut b = content(&payload);
        b.stream_type = "user";
        b.stream_id = "u1";
        assert_ne!(link(&GENESIS, &a), link(&GENESIS, &b));
    }
}
