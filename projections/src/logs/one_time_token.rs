//! Log entries of one-time tokens (magic links). Logto audits neither the Management API nor
//! tokens, so the keys are idledger's, in two families `/api/logs` lists:
//!
//! | key | when |
//! |---|---|
//! | `ManagementApi.OneTimeToken.Create` | `POST /api/one-time-tokens` |
//! | `ManagementApi.OneTimeToken.Consume` | `POST /api/one-time-tokens/verify`, or `PUT …/status` to `consumed` |
//! | `ManagementApi.OneTimeToken.Expire` | a verification or a new token for the email found it past its expiry, or `PUT …/status` to `expired` |
//! | `ManagementApi.OneTimeToken.Revoke` | `PUT /api/one-time-tokens/:id/status` to `revoked` |
//! | `ManagementApi.OneTimeToken.Delete` | `DELETE /api/one-time-tokens/:id` |
//! | `Interaction.OneTimeToken.Consume` | the sign-in experience redeemed the token (a magic link followed) |
//! | `Interaction.OneTimeToken.Expire` | the sign-in experience found it past its expiry |
//!
//! The family follows who acted: an application or admin through the Management API, or the
//! person following the link. Each entry carries `oneTimeTokenId`, the request's `ip`,
//! `userAgent` and `requestId`, `applicationId` for the Management API and `userId` when the
//! link names an existing account. The email and the device binding are personal data and stay
//! sealed in the log; creation shows the rest of the context and whether a device is bound.
//! The sign-in the link leads to is logged under the interaction's own keys
//! (`Interaction.<event>.Verification.OneTimeToken.Submit`, `Interaction.<event>.Submit`).

use domain::one_time_token::OneTimeTokenEvent;
use domain::{Actor, RecordedEvent};
use serde_json::{Map, json};

use super::{LogRow, base, log_id};
use crate::ProjectionError;

pub(super) fn entry(event: &RecordedEvent) -> Result<Option<LogRow>, ProjectionError> {
    let mut details = Map::new();
    let action = match domain::decode::<OneTimeTokenEvent>(&event.event_type, &event.payload)? {
        OneTimeTokenEvent::Created(token) => {
            details.insert("context".into(), token.context);
            details.insert("expiresAt".into(), json!(token.expires_at));
            details.insert("deviceBound".into(), json!(token.device_binding.is_some()));
            "Create"
        }
        OneTimeTokenEvent::Consumed {} => "Consume",
        OneTimeTokenEvent::Expired {} => "Expire",
        OneTimeTokenEvent::Revoked {} => "Revoke",
        OneTimeTokenEvent::Deleted { .. } => "Delete",
    };
    let (family, user_id, application_id) = match &event.metadata.actor {
        Actor::App(id) => ("ManagementApi", None, Some(id.clone())),
        Actor::Admin(_) => ("ManagementApi", None, None),
        Actor::User(id) => ("Interaction", Some(id.clone()), None),
        Actor::System | Actor::Anonymous => ("Interaction", None, None),
    };
    let key = format!("{family}.OneTimeToken.{action}");
    let mut payload = base(&key, true, event);
    payload.insert("oneTimeTokenId", json!(event.stream_id));
    if let Some(id) = &application_id {
        payload.insert("applicationId", json!(id));
    }
    if let Some(id) = &user_id {
        payload.insert("userId", json!(id));
    }
    payload.extend(details);
    Ok(Some(LogRow {
        id: log_id(event.position),
        key,
        payload,
        user_id,
        application_id,
        created_at: event.occurred_at_ms(),
    }))
}
