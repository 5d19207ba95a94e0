//! Log entries of what people do to their own account through the Account API
//! (`/api/my-account`). Logto logs none of it, so the key is idledger's, in a family `/api/logs`
//! lists:
//!
//! | key | result | when |
//! |---|---|---|
//! | `Account.CustomData.Update` | `Success` | the user merged keys the custom data policy lets them write |
//! | `Account.CustomData.Update` | `Error` | the user tried to write keys the policy keeps read-only (e.g. their own `role`); nothing changed |
//!
//! Each entry carries `userId`, the key names (`fields`), the request's `ip`, `userAgent` and
//! `requestId`; a refusal also carries the error code and the refused `keys`. Values stay sealed
//! with the person's data in the log, so an auditor sees who tried to change which key, when
//! and from where, never what they typed.

use domain::user::UserEvent;
use domain::{Actor, RecordedEvent};
use serde_json::{Map, Value, json};

use super::{LogRow, base, log_id};
use crate::ProjectionError;

pub const KEY: &str = "Account.CustomData.Update";

/// Code of the refusal, as the Account API answered it.
pub const REFUSED_CODE: &str = "user.custom_data_key_not_writable";

fn field_names(custom_data: &Map<String, Value>) -> Value {
    json!(custom_data.keys().collect::<Vec<_>>())
}

/// The entry of a user's own change to their account, if the event is one.
pub(super) fn entry(event: &RecordedEvent) -> Result<Option<LogRow>, ProjectionError> {
    let Actor::User(actor) = &event.metadata.actor else {
        return Ok(None);
    };
    // Only the account's own holder acting on it is an Account API change.
    if *actor != event.stream_id {
        return Ok(None);
    }
    let mut payload = match domain::decode::<UserEvent>(&event.event_type, &event.payload)? {
        UserEvent::CustomDataMerged { custom_data } => {
            let mut payload = base(KEY, true, event);
            payload.insert("fields", field_names(&custom_data));
            payload
        }
        UserEvent::CustomDataChangeRefused { keys, attempted } => {
            let mut payload = base(KEY, false, event);
            payload.insert("fields", field_names(&attempted));
            payload.insert("keys", json!(keys));
            payload.insert(
                "error",
                json!({
                    "code": REFUSED_CODE,
                    "message": "The user may not write these custom data keys.",
                    "data": { "keys": keys },
                }),
            );
            payload
        }
        // Registrations, rehashes and second factors are logged under their interaction's keys.
        UserEvent::Created(_)
        | UserEvent::Updated(_)
        | UserEvent::ProfileMerged { .. }
        | UserEvent::PasswordSet(_)
        | UserEvent::PasswordRehashed(_)
        | UserEvent::Suspended {}
        | UserEvent::Reactivated {}
        | UserEvent::Deleted {}
        | UserEvent::Erased(_)
        | UserEvent::IdentityLinked { .. }
        | UserEvent::IdentityUnlinked { .. }
        | UserEvent::RolesAssigned { .. }
        | UserEvent::RoleRemoved { .. }
        | UserEvent::PersonalAccessTokenAdded(_)
        | UserEvent::PersonalAccessTokenRenamed { .. }
        | UserEvent::PersonalAccessTokenDeleted { .. }
        | UserEvent::MfaVerificationAdded(_)
        | UserEvent::MfaVerificationDeleted { .. }
        | UserEvent::TotpUsed { .. }
        | UserEvent::BackupCodeUsed { .. } => return Ok(None),
    };
    payload.insert("userId", json!(event.stream_id));
    Ok(Some(LogRow {
        id: log_id(event.position),
        key: KEY.to_owned(),
        payload,
        user_id: Some(event.stream_id.clone()),
        application_id: None,
        created_at: event.occurred_at_ms(),
    }))
}
