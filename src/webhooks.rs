//! Webhook delivery: the `webhooks` log follower (`follow.rs`) turns each event of the log that
//! is one of Logto's hook events (`http::management::hooks::payload`) into a signed POST to
//! every enabled hook that listens to it, and records every attempt on the delivery's stream
//! (`hook_delivery.attempted`, Logto's `TriggerHook.<event>` log entries).
//!
//! Better than Logto's fire-and-forget:
//! - at least once: the follower's checkpoint only moves past an event once every hook has it
//!   (delivered or given up), and it resumes there after a restart or on another node; the
//!   follower's lock keeps several nodes from working the same event;
//! - retried with exponential back-off (1 s doubling to 5 min) for `IDLEDGER_WEBHOOK_RETRY_PERIOD`,
//!   computed from the recorded attempts so a restart neither forgets nor resets it;
//! - in order per hook: an event waits until the one before it was delivered or given up;
//! - idempotent for receivers: `hookRequestId` (`<hook id>:<log position>`) is the same in every
//!   attempt of one delivery, and retries send the first attempt's bytes again.
//!
//! Headers: `user-agent: Logto (https://logto.io/)`, the hook's configured headers, and
//! `logto-signature-sha-256` = hex HMAC-SHA256(signing key, body). Timeout 10 s.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use domain::hook_delivery::{Attempt, HookDelivery, HookDeliveryCommand};
use domain::{Metadata, RecordedEvent};
use projections::hooks::HookRow;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::crypto::Keyring;
use crate::follow::{self, FollowError, Handler};
use crate::http::management::hooks::payload;
use crate::store::{EventStore, StoreError, Unit};

const FOLLOWER: &str = "webhooks";
const USER_AGENT: &str = "Logto (https://logto.io/)";
const SIGNATURE_HEADER: &str = "logto-signature-sha-256";
const TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(300);
/// Response bodies are recorded up to this many bytes.
const RECORDED_BODY: usize = 4096;

/// hex HMAC-SHA256 of `body` under `signing_key`: Logto's `logto-signature-sha-256`.
pub fn signature(signing_key: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_bytes());
    hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hooks' HTTP client: no redirects followed (a hook's URL is where it is), 10 s per request.
pub fn client() -> Result<reqwest::Client, String> {
    crate::outbound::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| e.to_string())
}

/// What the endpoint did with one request.
pub enum Sent {
    /// It answered; `{statusCode, body}` as Logto records it.
    Answered { status: u16, body: String },
    /// It could not be reached, or did not answer in time.
    Failed(String),
}

/// POSTs `body` (already serialized: what is signed is what is sent) to a hook's endpoint.
pub async fn send(
    client: &reqwest::Client,
    config: &Value,
    signing_key: &str,
    body: &[u8],
) -> Sent {
    let Some(url) = config["url"].as_str() else {
        return Sent::Failed("the hook has no URL".to_owned());
    };
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", USER_AGENT);
    if let Some(headers) = config["headers"].as_object() {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                request = request.header(name.as_str(), value);
            }
        }
    }
    let request = request
        .header(SIGNATURE_HEADER, signature(signing_key, body))
        .body(body.to_vec());
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let cut = text
                .char_indices()
                .nth(RECORDED_BODY)
                .map_or(text.as_str(), |(at, _)| &text[..at]);
            Sent::Answered {
                status,
                body: cut.to_owned(),
            }
        }
        Err(error) if error.is_timeout() => Sent::Failed("timed out".to_owned()),
        Err(error) => Sent::Failed(format!("request failed: {error}")),
    }
}

/// The signing key of a hook, from the vault.
pub async fn signing_key(store: &EventStore, hook: &HookRow) -> Result<String, StoreError> {
    store
        .open_vault(&hook.signing_key_ref)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| StoreError::Internal(format!("hook {} has no signing key", hook.id)))
}

/// Starts the follower; its checkpoint is created at the current end of the log first, so an
/// event appended right after the first start is not skipped.
pub async fn start(
    store: EventStore,
    keyring: Arc<Keyring>,
    stop: watch::Receiver<bool>,
    retry_period: Duration,
) -> Result<JoinHandle<()>, StoreError> {
    {
        let db = store.pool().get().await?;
        db.execute(
            "INSERT INTO follower_checkpoints (name, position) VALUES ($1, \
             (SELECT position FROM event_head)) ON CONFLICT (name) DO NOTHING",
            &[&FOLLOWER],
        )
        .await?;
    }
    let client = client().map_err(StoreError::Internal)?;
    let pool = store.pool().clone();
    let delivery = Delivery {
        store,
        keyring: keyring.clone(),
        stop: stop.clone(),
        client,
        retry_period,
    };
    Ok(tokio::spawn(follow::run(pool, keyring, delivery, stop)))
}

struct Delivery {
    store: EventStore,
    keyring: Arc<Keyring>,
    stop: watch::Receiver<bool>,
    client: reqwest::Client,
    retry_period: Duration,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn handler_error(error: impl std::fmt::Display) -> FollowError {
    FollowError::Handler(error.to_string())
}

fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(LONGEST_RETRY)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Delivery {
    /// Waits `pause`; `Err` when the server is stopping, so the batch is not checkpointed.
    async fn wait(&self, pause: Duration) -> Result<(), FollowError> {
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return Err(handler_error("stopping"));
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => Ok(()),
            _ = stop.changed() => Err(handler_error("stopping")),
        }
    }

    /// Records an outcome; `false` when the person the delivery is about was erased meanwhile:
    /// nothing more can be recorded about them, so the delivery stops there.
    async fn record(&self, id: &str, command: HookDeliveryCommand) -> Result<bool, FollowError> {
        match self
            .store
            .run(
                Unit::new().then::<HookDelivery>(id, command),
                &Metadata::system(now()),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::SubjectErased(_)) => {
                tracing::info!(delivery = %id, "webhook delivery ended: its subject was erased");
                Ok(false)
            }
            Err(error) => Err(handler_error(error)),
        }
    }

    /// Delivers `made` (the hook event of `event`) to `hook`, retrying, until it is delivered
    /// or given up.
    async fn deliver(
        &self,
        hook_id: &str,
        event: &RecordedEvent,
        made: &payload::Built,
    ) -> Result<(), FollowError> {
        let id = format!("{hook_id}:{}", event.position);
        let mut built: Option<(String, Value, String)> = None;
        loop {
            let (row, hook) = {
                let db = self.store.pool().get().await?;
                (
                    projections::hooks::delivery(&db, &id)
                        .await
                        .map_err(handler_error)?,
                    projections::hooks::by_id(&db, hook_id)
                        .await
                        .map_err(handler_error)?,
                )
            };
            // A hook deleted or disabled meanwhile gets nothing more.
            let Some(hook) = hook.filter(|h| h.enabled) else {
                return Ok(());
            };
            if let Some(row) = &row {
                if row.status != "pending" {
                    return Ok(());
                }
                let at = domain::unix_ms(now());
                if at.saturating_sub(row.first_attempt_at) >= millis(self.retry_period) {
                    tracing::warn!(delivery = %id, attempts = row.attempts, "webhook given up");
                    self.record(
                        &id,
                        HookDeliveryCommand::Abandon {
                            reason: "retry period over".to_owned(),
                            at,
                        },
                    )
                    .await?;
                    return Ok(());
                }
                let next = row
                    .last_attempt_at
                    .saturating_add(millis(backoff(row.attempts)));
                if let Ok(pause) = u64::try_from(next.saturating_sub(at)) {
                    self.wait(Duration::from_millis(pause)).await?;
                }
            }
            let (name, body, subject) = match (&built, &row) {
                (Some(built), _) => built.clone(),
                // The person it was about was erased: their data is not sent again.
                (None, Some(row)) if row.body.is_null() => return Ok(()),
                // Retries send the first attempt's bytes again.
                (None, Some(row)) => {
                    let subject = format!("hook_delivery:{id}");
                    (row.event.clone(), row.body.clone(), subject)
                }
                (None, None) => {
                    let mut body = made.body.clone();
                    body.insert("hookId".into(), json!(hook_id));
                    body.insert("hookRequestId".into(), json!(id));
                    (
                        made.event.to_owned(),
                        Value::Object(body),
                        made.subject.clone(),
                    )
                }
            };
            built = Some((name.clone(), body.clone(), subject.clone()));
            let key = signing_key(&self.store, &hook)
                .await
                .map_err(handler_error)?;
            let bytes = serde_json::to_vec(&body).map_err(handler_error)?;
            let sent = send(&self.client, &hook.config, &key, &bytes).await;
            let (success, response, error) = match sent {
                Sent::Answered { status, body } => {
                    let parsed = serde_json::from_str::<Value>(&body).unwrap_or(json!(body));
                    let success = (200..300).contains(&status);
                    (
                        success,
                        Some(json!({ "statusCode": status, "body": parsed })),
                        (!success).then(|| format!("the endpoint answered {status}")),
                    )
                }
                Sent::Failed(reason) => (false, None, Some(reason)),
            };
            let subject = row
                .as_ref()
                .map_or(subject, |_| format!("hook_delivery:{id}"));
            let attempt = Attempt {
                hook_id: hook_id.to_owned(),
                event: name,
                position: event.position,
                subject,
                request: json!({ "body": body }),
                response,
                error,
                success,
                at: domain::unix_ms(now()),
            };
            if !self
                .record(&id, HookDeliveryCommand::RecordAttempt(attempt))
                .await?
            {
                return Ok(());
            }
            if success {
                tracing::info!(delivery = %id, "webhook delivered");
                return Ok(());
            }
        }
    }
}

#[async_trait]
impl Handler for Delivery {
    fn name(&self) -> &'static str {
        FOLLOWER
    }

    fn wants(&self, stream_type: &str, event_type: &str) -> bool {
        payload::candidate(stream_type, event_type)
    }

    async fn handle(&self, events: &[RecordedEvent]) -> Result<(), FollowError> {
        let hooks = {
            let db = self.store.pool().get().await?;
            projections::hooks::all(&db).await.map_err(handler_error)?
        };
        if hooks.is_empty() {
            return Ok(());
        }
        for event in events {
            // Nothing is said about a person whose data was erased.
            if event.erased {
                continue;
            }
            let listening =
                |hook: &&HookRow| hook.enabled && hook.created_at <= event.occurred_at_ms();
            if !hooks.iter().any(|hook| listening(&hook)) {
                continue;
            }
            let made = {
                let db = self.store.pool().get().await?;
                payload::build(&db, &self.keyring, event)
                    .await
                    .map_err(handler_error)?
            };
            let Some(made) = made else {
                continue;
            };
            let targets: Vec<&HookRow> = hooks
                .iter()
                .filter(|hook| listening(hook) && hook.listens_to(made.event))
                .collect();
            // Hooks are independent of each other; each keeps its own order because the next
            // event waits for this one.
            let delivered = futures::future::join_all(
                targets
                    .iter()
                    .map(|hook| self.deliver(&hook.id, event, &made)),
            )
            .await;
            delivered.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), LONGEST_RETRY);
    }
}
