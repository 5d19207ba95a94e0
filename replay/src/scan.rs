//! Reading a filtered part of the log in constant memory, for `export`, `stats` and `report`.
//!
//! One repeatable-read transaction gives every chunk the same snapshot. A reader task queries
//! fixed position ranges (positions are gapless, so a range is an index scan whatever the
//! filters) and hands each chunk over a small bounded channel to a blocking thread that decodes
//! it (personal data unsealed, old versions upcast) and feeds the consumer: at most a few chunks
//! are in memory at once, however long the log.

use std::sync::Arc;

use idledger::app::Environment;
use idledger::crypto::Keyring;
use idledger::history::{self, Logged};
use idledger::store::StoreError;
use idledger::store::read::{Keys, SELECT_EVENTS};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};
use tokio::sync::mpsc;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use crate::ReplayError;

/// Positions per query: large enough that per-query costs vanish, small enough that the chunks
/// in flight stay a few MiB.
const CHUNK: i64 = 10_000;
/// Chunks waiting between the reader and the consumer.
const QUEUED: usize = 2;

/// Which events to read. Every condition must hold.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Filter {
    /// Events that occurred at or after this moment: milliseconds since the epoch, RFC 3339, or
    /// a date (YYYY-MM-DD, UTC midnight).
    #[arg(long)]
    pub from: Option<String>,
    /// Events that occurred at or before this moment (to the millisecond; a date includes its
    /// whole day).
    #[arg(long)]
    pub to: Option<String>,
    /// Stream type, e.g. `user`, `application`, `exchange`.
    #[arg(long)]
    pub stream_type: Option<String>,
    /// Stream id (with `--stream-type` to name one stream).
    #[arg(long)]
    pub stream_id: Option<String>,
    /// Event type, e.g. `user.suspended`; repeat for several.
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    pub event_types: Vec<String>,
    /// Who caused the events: a kind (`user`, `app`, `admin`, `system`, `anonymous`) or
    /// `kind:id`.
    #[arg(long)]
    pub actor: Option<String>,
}

/// A moment given on the command line: what `asOf` accepts, or a date.
fn moment(text: &str) -> Option<(OffsetDateTime, bool)> {
    if let Some(at) = history::parse_instant(text) {
        return Some((at, false));
    }
    let day = Date::parse(text.trim(), format_description!("[year]-[month]-[day]")).ok()?;
    Some((day.with_time(Time::MIDNIGHT).assume_utc(), true))
}

/// The first instant of `--from`.
pub fn start_of(text: &str) -> Result<OffsetDateTime, ReplayError> {
    moment(text)
        .map(|(at, _)| at)
        .ok_or_else(|| bad_moment(text))
}

/// The first instant after `--to`: the end of its millisecond, or of its day for a date.
pub fn end_of(text: &str) -> Result<OffsetDateTime, ReplayError> {
    match moment(text) {
        Some((day, true)) => day
            .date()
            .next_day()
            .map(|next| next.with_time(Time::MIDNIGHT).assume_utc())
            .ok_or_else(|| bad_moment(text)),
        Some((at, false)) => Ok(history::end_of_millisecond(at)),
        None => Err(bad_moment(text)),
    }
}

fn bad_moment(text: &str) -> ReplayError {
    ReplayError::Usage(format!(
        "{text:?} is not a moment: give milliseconds since the epoch, an RFC 3339 date-time \
         or a date (YYYY-MM-DD)"
    ))
}

/// `at` as RFC 3339, for output.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| domain::unix_ms(at).to_string())
}

type Param = Box<dyn ToSql + Sync + Send>;

/// A filter as SQL over `events e`, its placeholders numbered from `$first`.
struct Condition {
    text: String,
    params: Vec<Param>,
}

impl Filter {
    fn condition(&self, first: usize) -> Result<Condition, ReplayError> {
        let mut condition = Condition {
            text: String::from("true"),
            params: Vec::new(),
        };
        let mut add = |sql: &str, value: Param| {
            condition.params.push(value);
            let placeholder = format!("${}", first + condition.params.len() - 1);
            condition.text.push_str(&sql.replace('?', &placeholder));
        };
        if let Some(from) = &self.from {
            add(" AND e.occurred_at >= ?", Box::new(start_of(from)?));
        }
        if let Some(to) = &self.to {
            add(" AND e.occurred_at < ?", Box::new(end_of(to)?));
        }
        if let Some(stream_type) = &self.stream_type {
            add(" AND e.stream_type = ?", Box::new(stream_type.clone()));
        }
        if let Some(stream_id) = &self.stream_id {
            add(" AND e.stream_id = ?", Box::new(stream_id.clone()));
        }
        if !self.event_types.is_empty() {
            add(
                " AND e.event_type = ANY(?)",
                Box::new(self.event_types.clone()),
            );
        }
        if let Some(actor) = &self.actor {
            let (kind, id) = match actor.split_once(':') {
                Some((kind, id)) => (kind, Some(id)),
                None => (actor.as_str(), None),
            };
            if !["user", "app", "admin", "system", "anonymous"].contains(&kind) {
                return Err(ReplayError::Usage(format!(
                    "unknown actor kind {kind:?} (user, app, admin, system, anonymous)"
                )));
            }
            add(" AND e.actor_kind = ?", Box::new(kind.to_owned()));
            if let Some(id) = id {
                add(" AND e.actor_id = ?", Box::new(id.to_owned()));
            }
        }
        Ok(condition)
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// What a scan feeds, event by event, on a blocking thread (it may write to files).
pub trait Consumer: Send + 'static {
    fn consume(&mut self, logged: Logged) -> Result<(), ReplayError>;
}

/// Reads the events `filter` selects, in position order, and hands each to `consumer`; returns
/// how many were read, and the consumer with what it gathered.
pub async fn scan<C: Consumer>(
    environment: &Environment,
    filter: &Filter,
    consumer: C,
) -> Result<(u64, C), ReplayError> {
    let bounds = filter.condition(1)?;
    let ranged = filter.condition(3)?;
    let client = environment.pool.get().await?;
    let (rows_out, rows_in) = mpsc::channel(QUEUED);
    let reading = tokio::spawn(async move {
        let result = read(client, bounds, ranged, &rows_out).await;
        if let Err(error) = result {
            // If the consumer is gone it stopped with an error of its own to report.
            let _ = rows_out.send(Err(error)).await;
        }
    });
    let keyring = Arc::clone(&environment.keyring);
    let consuming = tokio::task::spawn_blocking(move || feed(&keyring, rows_in, consumer));
    let (read_result, consumed) = tokio::join!(reading, consuming);
    read_result.map_err(|e| ReplayError::Store(StoreError::Internal(e.to_string())))?;
    consumed.map_err(|e| ReplayError::Store(StoreError::Internal(e.to_string())))?
}

type Chunk = Result<Vec<tokio_postgres::Row>, ReplayError>;

async fn read(
    mut client: deadpool_postgres::Object,
    bounds: Condition,
    ranged: Condition,
    out: &mpsc::Sender<Chunk>,
) -> Result<(), ReplayError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // Where the selected events lie: an index (or BRIN) answers, and no range outside is read.
    let row = tx
        .query_one(
            &format!(
                "SELECT min(e.position), max(e.position) FROM events e WHERE {}",
                bounds.text
            ),
            &refs(&bounds.params),
        )
        .await?;
    let (Some(first), Some(last)) = (
        row.try_get::<_, Option<i64>>(0)?,
        row.try_get::<_, Option<i64>>(1)?,
    ) else {
        return Ok(());
    };
    let statement = tx
        .prepare(&format!(
            "{SELECT_EVENTS} WHERE e.position > $1 AND e.position <= $2 AND {} ORDER BY e.position",
            ranged.text
        ))
        .await?;
    let mut after = first.saturating_sub(1);
    while after < last {
        let until = after.saturating_add(CHUNK).min(last);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &until];
        params.extend(refs(&ranged.params));
        let rows = tx.query(&statement, &params).await?;
        if out.send(Ok(rows)).await.is_err() {
            // The consumer stopped; it reports why.
            break;
        }
        after = until;
    }
    tx.rollback().await?;
    Ok(())
}

fn feed<C: Consumer>(
    keyring: &Keyring,
    mut rows_in: mpsc::Receiver<Chunk>,
    mut consumer: C,
) -> Result<(u64, C), ReplayError> {
    let mut count = 0;
    while let Some(chunk) = rows_in.blocking_recv() {
        // Unwrapped keys are cached per chunk only, so a log of millions of people does not
        // grow the cache without bound; every row brings its wrapped key along anyway.
        let mut keys = Keys::new(keyring);
        for row in chunk? {
            consumer.consume(history::decode(&mut keys, &row)?)?;
            count += 1;
        }
    }
    Ok((count, consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_take_dates_and_ranges_include_their_ends() {
        assert_eq!(domain::unix_ms(start_of("1970-01-02").unwrap()), 86_400_000);
        assert_eq!(domain::unix_ms(end_of("1970-01-02").unwrap()), 172_800_000);
        assert_eq!(domain::unix_ms(end_of("1500").unwrap()), 1_501);
        assert!(start_of("tomorrow").is_err());
    }

    #[test]
    fn conditions_number_their_placeholders_and_refuse_unknown_actors() {
        let filter = Filter {
            stream_type: Some("user".into()),
            event_types: vec!["user.created".into()],
            actor: Some("app:m2m".into()),
            ..Filter::default()
        };
        let condition = filter.condition(3).unwrap();
        assert_eq!(
            condition.text,
            "true AND e.stream_type = $3 AND e.event_type = ANY($4) AND e.actor_kind = $5 \
             AND e.actor_id = $6"
        );
        let robot = Filter {
            actor: Some("robot".into()),
            ..Filter::default()
        };
        assert!(robot.condition(1).is_err());
    }
}
