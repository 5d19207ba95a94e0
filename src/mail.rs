//! Mail delivery: the `mail` log follower (`follow.rs`) sends each `message.queued` through the
//! Email connector configured at the time of sending, and records the outcome on the message's
//! stream. Nothing here runs inside an append transaction.
//!
//! Exactly once, as far as this side can tell: before each attempt the follower reads the
//! message's state (`messages`), so a message recorded as sent is never sent again, whether the
//! batch is replayed after a crash or another node took over. The window between the server
//! accepting a mail and `message.sent` being recorded remains; the message id travels as the
//! `Message-ID` (and `X-Idledger-Message-Id`) header so a receiver can recognise a resend.
//!
//! The verification code itself is sealed in the vault under the message's `code_ref` by the
//! handler that queued it, opened here just before sending, and retired by the `message.sent`
//! or `message.abandoned` event: it is never stored in the clear and does not outlive the
//! message.
//!
//! Transient failures (server unreachable, timeouts, 4xx replies, no Email connector) are
//! retried with exponential backoff, computed from the failures recorded on the message so that
//! a restart neither forgets nor resets it, until the message expires; permanent ones (5xx
//! replies, no usable template) abandon it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::message::{Message, MessageCommand, MessageEvent, NewMessage};
use domain::{Aggregate, Metadata};
use projections::messages::{self, MessageRow};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connectors::{self, Mail, SendError};
use crate::crypto::Keyring;
use crate::follow::{self, FollowError, Handler};
use crate::store::{EventStore, StoreError, Unit};

const FOLLOWER: &str = "mail";
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// Attempts for a message that never expires; one with a code gives up when the code expires.
const MAX_ATTEMPTS_WITHOUT_EXPIRY: i32 = 12;

/// Starts the follower. Its checkpoint is created first, at the current end of the log, so a
/// message queued by the first request after a first start is not skipped.
pub async fn start(
    store: EventStore,
    keyring: Arc<Keyring>,
    stop: watch::Receiver<bool>,
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
    let pool = store.pool().clone();
    let delivery = Delivery {
        store,
        stop: stop.clone(),
    };
    Ok(tokio::spawn(follow::run(pool, keyring, delivery, stop)))
}

struct Delivery {
    store: EventStore,
    stop: watch::Receiver<bool>,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(LONGEST_RETRY)
}

fn handler_error(error: impl std::fmt::Display) -> FollowError {
    FollowError::Handler(error.to_string())
}

impl Delivery {
    async fn row(&self, id: &str) -> Result<Option<MessageRow>, FollowError> {
        let db = self.store.pool().get().await?;
        messages::by_id(&db, id).await.map_err(handler_error)
    }

    /// Records an outcome; `false` when the recipient was erased meanwhile (the erasure
    /// abandons what it finds queued): nothing more can be recorded about the message, and
    /// there is nobody to write to.
    async fn record(&self, id: &str, command: MessageCommand) -> Result<bool, FollowError> {
        match self
            .store
            .run(
                Unit::new().then::<Message>(id, command),
                &Metadata::system(now()),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::SubjectErased(_)) => {
                tracing::info!(message_id = %id, "message ended: its recipient was erased");
                Ok(false)
            }
            Err(error) => Err(handler_error(error)),
        }
    }

    /// Waits until `until`; `Err` when the server is stopping, so the batch is not checkpointed.
    async fn wait_until(&self, until: OffsetDateTime) -> Result<(), FollowError> {
        let Ok(pause) = Duration::try_from(until - now()) else {
            return Ok(());
        };
        let mut stop = self.stop.clone();
        if *stop.borrow() {
            return Err(handler_error("stopping"));
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => Ok(()),
            _ = stop.changed() => Err(handler_error("stopping")),
        }
    }

    /// Delivers one message, retrying transient failures, until it is sent or given up.
    async fn deliver(&self, message: &NewMessage) -> Result<(), FollowError> {
        loop {
            let Some(row) = self.row(&message.id).await? else {
                return Ok(());
            };
            if row.status != "queued" {
                return Ok(());
            }
            let at = domain::unix_ms(now());
            let out_of_time = row.expires_at.is_some_and(|expires| at >= expires);
            let out_of_attempts =
                row.expires_at.is_none() && row.attempts >= MAX_ATTEMPTS_WITHOUT_EXPIRY;
            if out_of_time || out_of_attempts {
                let reason = if out_of_time {
                    "expired"
                } else {
                    "too many failed attempts"
                };
                return self
                    .record(
                        &message.id,
                        MessageCommand::Abandon {
                            reason: reason.to_owned(),
                            at,
                        },
                    )
                    .await
                    .map(|_| ());
            }
            if let Some(last) = row.last_attempt_at {
                let retry_ms = i64::try_from(backoff(row.attempts).as_millis()).unwrap_or(i64::MAX);
                let mut next = last.saturating_add(retry_ms);
                if let Some(expires) = row.expires_at {
                    next = next.min(expires);
                }
                let next = OffsetDateTime::from_unix_timestamp_nanos(i128::from(next) * 1_000_000)
                    .map_err(handler_error)?;
                self.wait_until(next).await?;
                // Expired while waiting: the top of the loop gives it up.
                if row.expires_at.is_some_and(|e| domain::unix_ms(now()) >= e) {
                    continue;
                }
            }
            let outcome = self.attempt(message).await?;
            let at = domain::unix_ms(now());
            match outcome {
                Ok(()) => {
                    tracing::info!(message_id = %message.id, "message sent");
                    return self
                        .record(&message.id, MessageCommand::RecordSent { at })
                        .await
                        .map(|_| ());
                }
                Err(SendError {
                    transient: true,
                    reason,
                    ..
                }) => {
                    tracing::warn!(message_id = %message.id, attempt = row.attempts + 1,
                        "message not sent; will retry");
                    if !self
                        .record(
                            &message.id,
                            MessageCommand::RecordAttemptFailed { reason, at },
                        )
                        .await?
                    {
                        return Ok(());
                    }
                }
                Err(SendError { reason, .. }) => {
                    tracing::warn!(message_id = %message.id, "message refused; abandoned");
                    return self
                        .record(&message.id, MessageCommand::Abandon { reason, at })
                        .await
                        .map(|_| ());
                }
            }
        }
    }

    /// One attempt. The outer `Err` is the database failing (the batch is retried); the inner
    /// one the message not being sent.
    async fn attempt(&self, message: &NewMessage) -> Result<Result<(), SendError>, FollowError> {
        let Some((sender, _, config)) = connectors::email_connector(&self.store)
            .await
            .map_err(handler_error)?
        else {
            return Ok(Err(SendError::transient(
                "no Email connector is configured",
            )));
        };
        let mut payload = match &message.context {
            Value::Object(context) => context.clone(),
            _ => serde_json::Map::new(),
        };
        if let Some(code_ref) = &message.code_ref {
            let Some(code) = self
                .store
                .open_vault(code_ref)
                .await
                .map_err(handler_error)?
            else {
                return Ok(Err(SendError::permanent("the code is no longer available")));
            };
            payload.insert("code".into(), json!(String::from_utf8_lossy(&code)));
        }
        if let Some(locales) = &message.ui_locales {
            payload.insert(
                "locale".into(),
                json!(locales.split_whitespace().next().unwrap_or_default()),
            );
            payload.insert("uiLocales".into(), json!(locales));
        }
        let mail = Mail {
            message_id: message.id.clone(),
            to: message.to.clone(),
            usage_type: message.usage_type,
            ui_locales: message.ui_locales.clone(),
            payload,
        };
        Ok(sender.send(&config, &mail).await)
    }
}

#[async_trait]
impl Handler for Delivery {
    fn name(&self) -> &'static str {
        FOLLOWER
    }

    fn wants(&self, stream_type: &str, event_type: &str) -> bool {
        stream_type == Message::TYPE && event_type == "message.queued"
    }

    async fn handle(&self, events: &[domain::RecordedEvent]) -> Result<(), FollowError> {
        for event in events {
            if event.erased {
                // The recipient was erased: there is nobody left to write to.
                self.record(
                    &event.stream_id,
                    MessageCommand::Abandon {
                        reason: "recipient erased".to_owned(),
                        at: domain::unix_ms(now()),
                    },
                )
                .await?;
                continue;
            }
            let decoded: MessageEvent =
                domain::decode(&event.event_type, &event.payload).map_err(handler_error)?;
            match decoded {
                MessageEvent::Queued(message) => self.deliver(&message).await?,
                MessageEvent::AttemptFailed { .. }
                | MessageEvent::Sent { .. }
                | MessageEvent::Abandoned { .. } => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(9), LONGEST_RETRY);
        assert_eq!(backoff(i32::MAX), LONGEST_RETRY);
    }
}
