//! Webhook delivery attempts as Logto's `TriggerHook.<event>` log entries: `hookId`, the
//! request (`hookRequest.body`), the response (`{statusCode, body}`) and, for a failure,
//! `error`. `/api/logs` never lists them (its key prefixes leave `TriggerHook` out); they are
//! read per hook by `GET /api/hooks/:id/recent-logs` and counted for `executionStats`.

use deadpool_postgres::GenericClient;
use domain::RecordedEvent;
use domain::hook_delivery::HookDeliveryEvent;
use serde_json::json;

use super::{LogRow, base, log_id};
use crate::ProjectionError;

pub(super) fn entry(event: &RecordedEvent) -> Result<Option<LogRow>, ProjectionError> {
    let attempt = match domain::decode::<HookDeliveryEvent>(&event.event_type, &event.payload)? {
        HookDeliveryEvent::Attempted(attempt) => attempt,
        HookDeliveryEvent::Abandoned { .. } => return Ok(None),
    };
    let key = format!("TriggerHook.{}", attempt.event);
    let mut payload = base(&key, attempt.success, event);
    payload.insert("hookId", json!(attempt.hook_id));
    payload.insert("hookRequest", attempt.request);
    payload.insert("eventPosition", json!(attempt.position));
    if let Some(response) = attempt.response {
        payload.insert("response", response);
    }
    if let Some(error) = attempt.error {
        payload.insert("error", json!(error));
    }
    Ok(Some(LogRow {
        id: log_id(event.position),
        key,
        payload,
        user_id: None,
        application_id: None,
        created_at: event.occurred_at_ms(),
    }))
}

fn filtered(select: &str, hook_id: &str, since: i64, key: Option<&str>) -> crate::Query {
    let mut query = crate::Query::new(select);
    let hook = query.bind(hook_id.to_owned());
    let since = query.bind(since);
    query.push(&format!(
        " WHERE key LIKE 'TriggerHook.%' AND payload->>'hookId' = {hook} AND created_at > {since}"
    ));
    if let Some(key) = key {
        let key = query.bind(key.to_owned());
        query.push(&format!(" AND key = {key}"));
    }
    query
}

/// A hook's delivery attempts after `since` (ms), newest first, and how many there are.
pub async fn recent_hook_logs(
    db: &impl GenericClient,
    hook_id: &str,
    since: i64,
    key: Option<&str>,
    window: crate::Window,
) -> Result<(Vec<LogRow>, i64), ProjectionError> {
    let mut rows = filtered("SELECT to_jsonb(l) FROM logs l", hook_id, since, key);
    let limit = rows.bind(window.limit);
    let offset = rows.bind(window.offset);
    rows.push(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
    ));
    let count = filtered("SELECT count(*) FROM logs l", hook_id, since, key);
    Ok((rows.documents(db).await?, count.count(db).await?))
}

/// Logto's `executionStats`: attempts and successful ones since `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookStats {
    pub request_count: i64,
    pub success_count: i64,
}

pub async fn hook_stats(
    db: &impl GenericClient,
    hook_id: &str,
    since: i64,
) -> Result<HookStats, ProjectionError> {
    let statement = db
        .prepare_cached(
            "SELECT count(*), count(*) FILTER (WHERE payload->>'result' = 'Success') FROM logs \
             WHERE key LIKE 'TriggerHook.%' AND payload->>'hookId' = $1 AND created_at > $2",
        )
        .await?;
    let row = db.query_one(&statement, &[&hook_id, &since]).await?;
    Ok(HookStats {
        request_count: row.try_get(0)?,
        success_count: row.try_get(1)?,
    })
}
