//! Brute-force protection held in PostgreSQL, so several nodes count each attempt once:
//! fixed-window rate limits per bucket and key (`hit`), and Logto's sentinel, which locks an
//! identifier after repeated failed verifications (`check_lockout`, `record_failure`, `clear`).
//!
//! Every `key` must already be a keyed hash, e.g. `store.keyring().lookup_hash("sentinel",
//! identifier)`: the tables never hold an IP address or identifier in the clear. They are
//! operational state, not read models (see `migrations/0010_sentinel.sql`).
//!
//! The checks (`hit`, `check_lockout`) fail open when the database does not answer: the
//! operation they guard needs the same database and fails right after, so an outage cannot be
//! used to get around them, and a hiccup of the counter alone does not lock everyone out.

use deadpool_postgres::Pool;
use domain::sign_in_experience::SentinelPolicy;

use crate::store::StoreError;

/// Failures older than this stop counting toward a lockout (Logto counts the last hour).
pub const FAILURE_WINDOW_MS: i64 = 60 * 60 * 1000;

/// One in this many calls also deletes expired rows, so the tables stay small without a job.
const CLEANUP_ODDS: u32 = 64;
/// Rows deleted per clean-up, so one request never pays for a large backlog.
const CLEANUP_BATCH: i64 = 500;

/// At most `limit` requests per fixed window of `window_secs`, written `<limit>/<seconds>`
/// (e.g. `50/300`) in settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window_secs: i64,
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<RateLimit, String> {
        let malformed = || format!("expected <attempts>/<seconds>, e.g. 50/300, not {text:?}");
        let (limit, window) = text.trim().split_once('/').ok_or_else(malformed)?;
        let limit: u32 = limit.trim().parse().map_err(|_| malformed())?;
        let window_secs: i64 = window.trim().parse().map_err(|_| malformed())?;
        if limit == 0 || window_secs < 1 {
            return Err(malformed());
        }
        Ok(RateLimit { limit, window_secs })
    }
}

/// Counts one request against `rate` for `key` in `bucket`; see `hit`.
pub async fn hit_rate(
    pool: &Pool,
    bucket: &str,
    key: &str,
    rate: RateLimit,
    now_ms: i64,
) -> Result<(), Limited> {
    hit(pool, bucket, key, rate.limit, rate.window_secs, now_ms).await
}

/// The caller must wait this long before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

/// Whole seconds from `now_ms` until `until_ms`, rounded up, at least one: a client told to retry
/// after 0 s would retry at once and be refused again.
fn retry_after(until_ms: i64, now_ms: i64) -> Limited {
    let remaining = u64::try_from(until_ms.saturating_sub(now_ms)).unwrap_or(0);
    Limited {
        retry_after_secs: remaining.div_ceil(1000).max(1),
    }
}

/// The fixed window holding `now_ms`: its start and its end, in milliseconds.
fn window(now_ms: i64, window_secs: i64) -> (i64, i64) {
    let length = window_secs.max(1).saturating_mul(1000);
    let start = now_ms - now_ms.rem_euclid(length);
    (start, start.saturating_add(length))
}

/// Counts one request against `limit` per `window_secs` for `key` in `bucket` (`"sign-in-ip"`,
/// `"verification-code-email"`, ...). Refused requests count too, so hammering does not
/// shorten the wait.
pub async fn hit(
    pool: &Pool,
    bucket: &str,
    key: &str,
    limit: u32,
    window_secs: i64,
    now_ms: i64,
) -> Result<(), Limited> {
    let (start, end) = window(now_ms, window_secs);
    match count(pool, bucket, key, limit, start, end).await {
        Ok(count) if i64::from(count) > i64::from(limit) => Err(retry_after(end, now_ms)),
        Ok(_) => {
            if rand::random_range(0..CLEANUP_ODDS) == 0 {
                clean_counters(pool, now_ms).await;
            }
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, bucket, "rate limit not enforced: counters unavailable");
            Ok(())
        }
    }
}

async fn count(
    pool: &Pool,
    bucket: &str,
    key: &str,
    limit: u32,
    start: i64,
    end: i64,
) -> Result<i32, StoreError> {
    // Counting stops one past the limit: that is all a verdict needs, and it cannot overflow.
    let cap = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO rate_counters (bucket, key, window_start, count, expires_at) \
             VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (bucket, key, window_start) \
             DO UPDATE SET count = LEAST(rate_counters.count + 1, $5) \
             RETURNING count",
        )
        .await?;
    let row = client
        .query_one(&statement, &[&bucket, &key, &start, &end, &cap])
        .await?;
    Ok(row.try_get(0)?)
}

async fn clean_counters(pool: &Pool, now_ms: i64) {
    let cleaned = async {
        let client = pool.get().await?;
        client
            .execute(
                "DELETE FROM rate_counters WHERE (bucket, key, window_start) IN ( \
                   SELECT bucket, key, window_start FROM rate_counters \
                   WHERE expires_at <= $1 LIMIT $2)",
                &[&now_ms, &CLEANUP_BATCH],
            )
            .await?;
        Ok::<_, StoreError>(())
    };
    if let Err(error) = cleaned.await {
        tracing::warn!(%error, "expired rate counters not cleaned");
    }
}

/// Refuses while the identifier is locked.
pub async fn check_lockout(pool: &Pool, identifier_key: &str, now_ms: i64) -> Result<(), Limited> {
    let locked = async {
        let client = pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT locked_until FROM lockouts WHERE key = $1 AND locked_until > $2",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&identifier_key, &now_ms])
            .await?;
        Ok::<_, StoreError>(row.map(|row| row.try_get::<_, i64>(0)).transpose()?)
    };
    match locked.await {
        Ok(Some(until)) => Err(retry_after(until, now_ms)),
        Ok(None) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, "lockout not checked: lockouts unavailable");
            Ok(())
        }
    }
}

/// An identifier's failed verifications since `first_failure_at` and the lock they tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    failures: i32,
    first_failure_at: i64,
    locked_until: Option<i64>,
}

/// The tally after one more failure, and the lock in force if there is one. Pure.
///
/// `max_attempts` failures within `FAILURE_WINDOW_MS` lock for `lockout_duration` minutes, the
/// failure that reaches the limit included (as in Logto). Failures while locked change nothing.
/// Once a lock or the window has run out, counting starts afresh; Logto instead keeps the hour's
/// earlier failures, so one more failure right after a lock would lock again.
fn next_tally(
    old: Option<Tally>,
    policy: &SentinelPolicy,
    now_ms: i64,
) -> (Tally, Option<Limited>) {
    let tally = match old {
        Some(old) => match old.locked_until {
            Some(until) if until > now_ms => return (old, Some(retry_after(until, now_ms))),
            None if now_ms.saturating_sub(old.first_failure_at) < FAILURE_WINDOW_MS => Tally {
                failures: old.failures.saturating_add(1),
                ..old
            },
            Some(_) | None => Tally {
                failures: 1,
                first_failure_at: now_ms,
                locked_until: None,
            },
        },
        None => Tally {
            failures: 1,
            first_failure_at: now_ms,
            locked_until: None,
        },
    };
    if i64::from(tally.failures) < i64::from(policy.max_attempts) {
        return (tally, None);
    }
    let until = now_ms.saturating_add(i64::from(policy.lockout_duration).saturating_mul(60_000));
    (
        Tally {
            locked_until: Some(until),
            ..tally
        },
        Some(retry_after(until, now_ms)),
    )
}

/// Records one failed verification for the identifier. `Some` means the identifier is locked
/// now (this failure reached `max_attempts`, or a lock was already in force): answer with
/// `ApiError::verification_blocked` instead of the failure itself.
pub async fn record_failure(
    pool: &Pool,
    identifier_key: &str,
    policy: &SentinelPolicy,
    now_ms: i64,
) -> Result<Option<Limited>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The no-op update locks the row, so failures reported on several nodes at once are
    // tallied one after the other; the inserted row (0 failures) stands for "none yet".
    let lock = tx
        .prepare_cached(
            "INSERT INTO lockouts (key, failures, first_failure_at) VALUES ($1, 0, $2) \
             ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key \
             RETURNING failures, first_failure_at, locked_until",
        )
        .await?;
    let row = tx.query_one(&lock, &[&identifier_key, &now_ms]).await?;
    let old = Tally {
        failures: row.try_get(0)?,
        first_failure_at: row.try_get(1)?,
        locked_until: row.try_get(2)?,
    };
    let (tally, limited) = next_tally((old.failures > 0).then_some(old), policy, now_ms);
    let update = tx
        .prepare_cached(
            "UPDATE lockouts SET failures = $2, first_failure_at = $3, locked_until = $4 \
             WHERE key = $1",
        )
        .await?;
    tx.execute(
        &update,
        &[
            &identifier_key,
            &tally.failures,
            &tally.first_failure_at,
            &tally.locked_until,
        ],
    )
    .await?;
    tx.commit().await?;
    if rand::random_range(0..CLEANUP_ODDS) == 0 {
        clean_lockouts(pool, now_ms).await;
    }
    Ok(limited)
}

async fn clean_lockouts(pool: &Pool, now_ms: i64) {
    let cleaned = async {
        let client = pool.get().await?;
        client
            .execute(
                "DELETE FROM lockouts WHERE key IN ( \
                   SELECT key FROM lockouts \
                   WHERE locked_until <= $1 \
                      OR (locked_until IS NULL AND first_failure_at <= $1 - $2) \
                   LIMIT $3)",
                &[&now_ms, &FAILURE_WINDOW_MS, &CLEANUP_BATCH],
            )
            .await?;
        Ok::<_, StoreError>(())
    };
    if let Err(error) = cleaned.await {
        tracing::warn!(%error, "expired lockouts not cleaned");
    }
}

/// Forgets the identifier's failures after a successful verification. A lock in force stays:
/// a success reported by a node that checked just before another node locked must not lift it.
pub async fn clear(pool: &Pool, identifier_key: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM lockouts WHERE key = $1 AND locked_until IS NULL")
        .await?;
    client.execute(&statement, &[&identifier_key]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiError;

    const T0: i64 = 1_700_000_000_000;

    fn policy(max_attempts: u32, lockout_duration: u32) -> SentinelPolicy {
        SentinelPolicy {
            max_attempts,
            lockout_duration,
        }
    }

    #[test]
    fn rate_limits_read_as_attempts_per_seconds() {
        assert_eq!(
            "50/300".parse(),
            Ok(RateLimit {
                limit: 50,
                window_secs: 300
            })
        );
        assert_eq!(
            " 5 / 60 "
                .parse::<RateLimit>()
                .map(|r| (r.limit, r.window_secs)),
            Ok((5, 60))
        );
        for bad in ["50", "0/60", "5/0", "x/60", "5/-1", ""] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_aligned_and_retry_after_rounds_up() {
        assert_eq!(window(61_500, 60), (60_000, 120_000));
        assert_eq!(window(60_000, 60), (60_000, 120_000));
        assert_eq!(window(59_999, 60), (0, 60_000));
        assert_eq!(retry_after(120_000, 61_500).retry_after_secs, 59);
        assert_eq!(retry_after(120_000, 119_999).retry_after_secs, 1);
        assert_eq!(retry_after(120_000, 120_000).retry_after_secs, 1);
    }

    #[test]
    fn the_failure_that_reaches_the_limit_locks() {
        let policy = policy(3, 10);
        let (first, none) = next_tally(None, &policy, T0);
        assert_eq!((first.failures, none), (1, None));
        let (second, none) = next_tally(Some(first), &policy, T0 + 1000);
        assert_eq!(
            (second.failures, second.first_failure_at, none),
            (2, T0, None)
        );
        let (third, locked) = next_tally(Some(second), &policy, T0 + 2000);
        assert_eq!(third.locked_until, Some(T0 + 2000 + 600_000));
        assert_eq!(locked.map(|l| l.retry_after_secs), Some(600));
    }

    #[test]
    fn failures_while_locked_change_nothing_and_counting_restarts_after() {
        let policy = policy(2, 1);
        let locked = Tally {
            failures: 2,
            first_failure_at: T0,
            locked_until: Some(T0 + 60_000),
        };
        let (during, limited) = next_tally(Some(locked), &policy, T0 + 30_000);
        assert_eq!(during, locked);
        assert_eq!(limited.map(|l| l.retry_after_secs), Some(30));
        let (after, limited) = next_tally(Some(locked), &policy, T0 + 60_000);
        assert_eq!(
            (after.failures, after.locked_until, limited),
            (1, None, None)
        );
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let old = Tally {
            failures: 99,
            first_failure_at: T0,
            locked_until: None,
        };
        let (tally, limited) = next_tally(Some(old), &policy(100, 60), T0 + FAILURE_WINDOW_MS);
        assert_eq!(
            (tally.failures, tally.first_failure_at, limited),
            (1, T0 + FAILURE_WINDOW_MS, None)
        );
        let (tally, limited) = next_tally(Some(old), &policy(100, 60), T0 + FAILURE_WINDOW_MS - 1);
        assert_eq!(tally.failures, 100);
        assert!(limited.is_some());
    }

    #[test]
    fn limits_become_logtos_errors() {
        let limited = Limited {
            retry_after_secs: 90,
        };
        let rate = ApiError::rate_limited(limited);
        assert_eq!(
            (rate.status.as_u16(), rate.code),
            (429, "request.rate_limited")
        );
        assert!(
            rate.headers
                .iter()
                .any(|(name, value)| name == "retry-after" && value == "90")
        );
        let blocked = ApiError::verification_blocked(limited);
        assert_eq!(
            (blocked.status.as_u16(), blocked.code),
            (400, "session.verification_blocked_too_many_attempts")
        );
        assert_eq!(
            blocked.message,
            "Too many attempts in a short time. Please try again in 2 minutes."
        );
        let soon = ApiError::verification_blocked(Limited {
            retry_after_secs: 40,
        });
        assert!(soon.message.ends_with("try again in 1 minute."));
    }
}
