//! Reading the log about people and for integrations, outside the append path: one user's facts
//! up to a moment (time travel), a data subject's trail (audit), and the log after a position
//! (the events API). Rows are decoded by `store::read`, so personal data comes back unsealed, or
//! marked erased when the person's key was destroyed. Shared by the HTTP handlers and `replay`.

use deadpool_postgres::GenericClient;
use domain::RecordedEvent;
use projections::users::{self, UserRow};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::Row;

use crate::crypto::Keyring;
use crate::store::StoreError;
use crate::store::read::{Keys, Raw, SELECT_EVENTS};

/// What `projections::users::Users::route` reads for one user (`$1`): its own stream, and the
/// sign-ins that interactions record (`interaction.submitted` naming it, indexed by
/// `migrations/0017_sign_ins_by_user.sql`). Keep in step with `route`.
const FACTS_OF_USER: &str = "((e.stream_type = 'user' AND e.stream_id = $1) \
     OR (e.stream_type = 'interaction' AND e.event_type = 'interaction.submitted' \
     AND e.payload->>'userId' = $1))";

/// A moment as `asOf` and the CLI take it: milliseconds since the epoch, or RFC 3339.
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    match text.parse::<i64>() {
        Ok(ms) => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok(),
        Err(_) => OffsetDateTime::parse(text, &Rfc3339).ok(),
    }
}

/// The first instant after `at`'s millisecond. Moments resolve to the millisecond, as every
/// timestamp the API shows does, so "as of `updatedAt`" includes the change made during that
/// millisecond.
pub fn end_of_millisecond(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.unix_timestamp_nanos();
    let floor = nanos - nanos.rem_euclid(1_000_000);
    OffsetDateTime::from_unix_timestamp_nanos(floor + 1_000_000).unwrap_or(at)
}

/// How far into the log a read goes.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// Events that occurred before this instant (exclusive).
    Before(OffsetDateTime),
    /// Events up to this position (inclusive).
    Position(i64),
}

/// One event as read back, with the data subject its personal data is sealed for.
#[derive(Debug, Clone)]
pub struct Logged {
    pub event: RecordedEvent,
    pub subject_id: Option<String>,
}

/// Decodes one row selected with `SELECT_EVENTS`.
pub fn decode(keys: &mut Keys<'_>, row: &Row) -> Result<Logged, StoreError> {
    let raw = Raw::from_row(row)?;
    let subject_id = raw.subject_id.clone();
    Ok(Logged {
        event: keys.decode(raw)?,
        subject_id,
    })
}

fn decode_all(keyring: &Keyring, rows: &[Row]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut keys = Keys::new(keyring);
    rows.iter()
        .map(|row| Ok(decode(&mut keys, row)?.event))
        .collect()
}

/// The events the users projection folds for `user_id`, in position order, up to `until`.
pub async fn user_facts(
    db: &impl GenericClient,
    keyring: &Keyring,
    user_id: &str,
    until: Until,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = match until {
        Until::Before(instant) => {
            let sql = format!(
                "{SELECT_EVENTS} WHERE {FACTS_OF_USER} AND e.occurred_at < $2 ORDER BY e.position"
            );
            let statement = db.prepare_cached(&sql).await?;
            db.query(&statement, &[&user_id, &instant]).await?
        }
        Until::Position(position) => {
            let sql = format!(
                "{SELECT_EVENTS} WHERE {FACTS_OF_USER} AND e.position <= $2 ORDER BY e.position"
            );
            let statement = db.prepare_cached(&sql).await?;
            db.query(&statement, &[&user_id, &position]).await?
        }
    };
    decode_all(keyring, &rows)
}

/// The user as the `users` projection showed it at `at` (to the millisecond): the fold of its
/// facts that occurred by then, in log order. `None` if it did not exist then (not yet created,
/// or already deleted: a deleted user can be viewed as of any moment it existed). A user whose
/// personal data was erased cannot be shown as it was: `SubjectErased`.
pub async fn user_as_of(
    db: &impl GenericClient,
    keyring: &Keyring,
    user_id: &str,
    at: OffsetDateTime,
) -> Result<Option<UserRow>, StoreError> {
    let facts = user_facts(db, keyring, user_id, Until::Before(end_of_millisecond(at))).await?;
    if facts.iter().any(|e| e.erased && e.stream_type == "user") {
        return Err(StoreError::SubjectErased(user_id.to_owned()));
    }
    Ok(users::fold_history(user_id, &facts)?)
}

/// The events of the named streams of one type, decoded, in position order.
pub async fn streams(
    db: &impl GenericClient,
    keyring: &Keyring,
    stream_type: &str,
    ids: &[String],
) -> Result<Vec<RecordedEvent>, StoreError> {
    let statement = db
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE e.stream_type = $1 AND e.stream_id = ANY($2) ORDER BY e.position"
        ))
        .await?;
    let rows = db.query(&statement, &[&stream_type, &ids]).await?;
    decode_all(keyring, &rows)
}

/// The scopes (`interaction:<id>`, `management:<hash>`) that mailed a verification code to one
/// of `recipient_hashes`, the keyed hashes `verification_code.sent` keeps in the clear: how an
/// interaction abandoned before it named an account is found (migration 0036 indexes them).
pub async fn code_scopes_sent_to(
    db: &impl GenericClient,
    recipient_hashes: &[String],
) -> Result<Vec<String>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT DISTINCT stream_id FROM events \
             WHERE event_type = 'verification_code.sent' \
             AND payload->>'recipientHash' = ANY($1) ORDER BY stream_id",
        )
        .await?;
    let rows = db.query(&statement, &[&recipient_hashes]).await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(StoreError::from))
        .collect()
}

/// The interactions that verified (or failed to verify) an identifier whose keyed hash is one
/// of `identifier_keys` (`identifierKey`, in the clear beside the sealed identifier): found
/// whether or not they named an account (migration 0036 indexes them).
pub async fn interactions_typing(
    db: &impl GenericClient,
    identifier_keys: &[String],
) -> Result<Vec<String>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT DISTINCT stream_id FROM events \
             WHERE event_type IN ('interaction.verified', 'interaction.verification_failed') \
             AND payload->>'identifierKey' = ANY($1) ORDER BY stream_id",
        )
        .await?;
    let rows = db.query(&statement, &[&identifier_keys]).await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(StoreError::from))
        .collect()
}

/// One page of the events whose data subject is `subject`, newest first, and how many there are.
pub async fn subject_trail(
    db: &impl GenericClient,
    keyring: &Keyring,
    subject: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<RecordedEvent>, i64), StoreError> {
    let statement = db
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE e.subject_id = $1 ORDER BY e.position DESC LIMIT $2 OFFSET $3"
        ))
        .await?;
    let rows = db.query(&statement, &[&subject, &limit, &offset]).await?;
    let count = db
        .prepare_cached("SELECT count(*) FROM events WHERE subject_id = $1")
        .await?;
    let total: i64 = db.query_one(&count, &[&subject]).await?.try_get(0)?;
    Ok((decode_all(keyring, &rows)?, total))
}

/// The position of the last committed event (0 for an empty log).
pub async fn head(db: &impl GenericClient) -> Result<i64, StoreError> {
    let statement = db.prepare_cached("SELECT position FROM event_head").await?;
    Ok(db.query_one(&statement, &[]).await?.try_get(0)?)
}

/// Up to `limit` events after position `after`, in position order. Positions are gapless and
/// become visible in order, so a reader that continues from the last position it got never
/// misses an event.
pub async fn after(
    db: &impl GenericClient,
    keyring: &Keyring,
    after: i64,
    limit: i64,
) -> Result<Vec<Logged>, StoreError> {
    let statement = db
        .prepare_cached(&format!(
            "{SELECT_EVENTS} WHERE e.position > $1 ORDER BY e.position LIMIT $2"
        ))
        .await?;
    let rows = db.query(&statement, &[&after, &limit]).await?;
    let mut keys = Keys::new(keyring);
    rows.iter().map(|row| decode(&mut keys, row)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_milliseconds_or_rfc_3339_and_cover_their_whole_millisecond() {
        let ms = parse_instant("1700000000123").unwrap();
        let text = parse_instant("2023-11-14T22:13:20.123Z").unwrap();
        assert_eq!(ms, text);
        assert_eq!(parse_instant("2023-11-14T23:13:20.123+01:00").unwrap(), ms);
        assert_eq!(domain::unix_ms(end_of_millisecond(ms)), 1_700_000_000_124);
        let inside = parse_instant("2023-11-14T22:13:20.123999Z").unwrap();
        assert_eq!(end_of_millisecond(inside), end_of_millisecond(ms));
        for bad in ["", "yesterday", "2023-11-14", "1e3", "99999999999999999999"] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
    }
}
