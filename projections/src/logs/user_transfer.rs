//! Log entries of user exports and imports (App ID's `users/export` and `users/import`, replay's
//! `export-users` and `import-users`), in the Management API family:
//!
//! | key | result | when |
//! |---|---|---|
//! | `ManagementApi.User.Export` | `Success` | users were handed out (`format`, `count`, `startIndex` of a page) |
//! | `ManagementApi.User.Import` | `Success` | an import ran (`created`, `skipped`, `refused` users with a code each) |
//! | `ManagementApi.User.Import` | `Error` | an import was turned down whole: it named roles, organizations or organization roles missing here |
//!
//! Each carries `transferId` (the run's stream), the actor, `applicationId` when an application
//! acted, and the request's `ip`, `userAgent` and `requestId`. The users an import created are
//! logged one by one as `ManagementApi.User.Create` with the same request id.

use domain::user_transfer::UserTransferEvent;
use domain::{Actor, RecordedEvent};
use serde_json::{Value, json};

use super::{LogRow, base, log_id};
use crate::ProjectionError;

pub(super) fn entry(event: &RecordedEvent) -> Result<Option<LogRow>, ProjectionError> {
    let (key, success, details) =
        match domain::decode::<UserTransferEvent>(&event.event_type, &event.payload)? {
            UserTransferEvent::Exported(exported) => {
                ("ManagementApi.User.Export", true, json!(exported))
            }
            UserTransferEvent::Imported(imported) => {
                ("ManagementApi.User.Import", true, json!(imported))
            }
            UserTransferEvent::ImportRefused(refusal) => {
                ("ManagementApi.User.Import", false, json!(refusal))
            }
        };
    let mut payload = base(key, success, event);
    payload.insert("transferId", json!(event.stream_id));
    payload.insert("actor", json!(event.metadata.actor));
    let application_id = match &event.metadata.actor {
        Actor::App(id) => {
            payload.insert("applicationId", json!(id));
            Some(id.clone())
        }
        Actor::User(_) | Actor::Admin(_) | Actor::System | Actor::Anonymous => None,
    };
    if !success {
        payload.insert(
            "error",
            json!({ "code": "user.import_references_missing", "data": details }),
        );
    }
    if let Value::Object(details) = details {
        payload.extend(details);
    }
    Ok(Some(LogRow {
        id: log_id(event.position),
        key: key.to_owned(),
        payload,
        user_id: None,
        application_id,
        created_at: event.occurred_at_ms(),
    }))
}
