//! Webhooks and where each delivery stands: what `/api/hooks` reads, and what the webhook
//! follower checks before an attempt (delivered or abandoned deliveries are never sent again;
//! the attempts so far set the back-off; the body of the first attempt is sent again verbatim).

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::hook::HookEvent;
use domain::hook_delivery::HookDeliveryEvent;
use domain::patch::Patch;
use domain::user::UserEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rows::{Rows, StreamFold, document, documents, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRow {
    pub id: String,
    pub name: String,
    pub event: Option<String>,
    pub events: Value,
    /// `{url, headers?, retries?}`.
    pub config: Value,
    pub enabled: bool,
    pub signing_key_ref: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl HookRow {
    /// The events the hook listens to: `events`, or the legacy single `event` when it has none.
    pub fn listens_to(&self, event: &str) -> bool {
        match self.events.as_array() {
            Some(events) if !events.is_empty() => events.iter().any(|e| e.as_str() == Some(event)),
            Some(_) | None => self.event.as_deref() == Some(event),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// `<hook id>:<position>`.
    pub id: String,
    pub hook_id: String,
    pub position: i64,
    pub event: String,
    /// `pending`, `delivered` or `abandoned`.
    pub status: String,
    pub attempts: i32,
    /// The request body the first attempt sent.
    pub body: Value,
    pub first_attempt_at: i64,
    pub last_attempt_at: i64,
}

static HOOKS: Rows<HookRow> = Rows::new("hooks", "id");
static DELIVERIES: Rows<DeliveryRow> = Rows::new("hook_deliveries", "id");

struct HookFold;

#[async_trait]
impl StreamFold for HookFold {
    type Event = HookEvent;
    type State = Option<HookRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, HookEvent)>, domain::CodecError> {
        crate::rows::own_stream(event, "hook")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        HOOKS.load_entities(db, streams).await
    }

    fn fold(state: &mut Self::State, event: &RecordedEvent, decoded: HookEvent) {
        let at = event.occurred_at_ms();
        match decoded {
            HookEvent::Created(hook) => {
                *state = Some(HookRow {
                    id: hook.id,
                    name: hook.name,
                    event: hook.event,
                    events: json!(hook.events),
                    config: json!(hook.config),
                    enabled: hook.enabled,
                    signing_key_ref: hook.signing_key_ref,
                    created_at: at,
                    updated_at: at,
                });
            }
            HookEvent::Updated(patch) => {
                if let Some(row) = state {
                    if let Some(name) = patch.name {
                        row.name = name;
                    }
                    match patch.event {
                        Patch::Absent => {}
                        Patch::Null => row.event = None,
                        Patch::Value(event) => row.event = Some(event),
                    }
                    if let Some(events) = patch.events {
                        row.events = json!(events);
                    }
                    if let Some(config) = patch.config {
                        row.config = json!(config);
                    }
                    if let Some(enabled) = patch.enabled {
                        row.enabled = enabled;
                    }
                    row.updated_at = at;
                }
            }
            HookEvent::SigningKeyRotated { vault_ref, .. } => {
                if let Some(row) = state {
                    row.signing_key_ref = vault_ref;
                    row.updated_at = at;
                }
            }
            HookEvent::Deleted { .. } => *state = None,
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        HOOKS.store_entities(db, streams, states).await
    }
}

struct DeliveryFold;

#[async_trait]
impl StreamFold for DeliveryFold {
    type Event = HookDeliveryEvent;
    type State = Option<DeliveryRow>;

    fn route(
        event: &RecordedEvent,
    ) -> Result<Option<(String, HookDeliveryEvent)>, domain::CodecError> {
        crate::rows::own_stream(event, "hook_delivery")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Self::State>, ProjectionError> {
        DELIVERIES.load_entities(db, streams).await
    }

    fn fold(state: &mut Self::State, event: &RecordedEvent, decoded: HookDeliveryEvent) {
        let at = event.occurred_at_ms();
        match decoded {
            HookDeliveryEvent::Attempted(attempt) => {
                let status = if attempt.success {
                    "delivered"
                } else {
                    "pending"
                };
                match state {
                    Some(row) => {
                        row.attempts = row.attempts.saturating_add(1);
                        row.status = status.to_owned();
                        row.last_attempt_at = at;
                    }
                    None => {
                        *state = Some(DeliveryRow {
                            id: event.stream_id.clone(),
                            hook_id: attempt.hook_id,
                            position: attempt.position,
                            event: attempt.event,
                            status: status.to_owned(),
                            attempts: 1,
                            body: attempt.request.get("body").cloned().unwrap_or(Value::Null),
                            first_attempt_at: at,
                            last_attempt_at: at,
                        });
                    }
                }
            }
            HookDeliveryEvent::Abandoned { .. } => {
                if let Some(row) = state {
                    row.status = "abandoned".to_owned();
                }
            }
        }
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Self::State>,
    ) -> Result<(), ProjectionError> {
        DELIVERIES.store_entities(db, streams, states).await
    }
}

pub struct Hooks;

#[async_trait]
impl Projection for Hooks {
    fn name(&self) -> &'static str {
        "hooks"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["hooks", "hook_deliveries"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(&HookFold, db, events).await?;
        fold_streams(&DeliveryFold, db, events).await?;
        forget_erased(db, events).await
    }
}

/// An erasure names the deliveries about the person (`Traces::hook_deliveries`): their
/// request body goes, as a refold, unable to open it, never had it. Their attempts all precede
/// the erasure (nothing can be recorded under a destroyed key), so the two agree.
async fn forget_erased(
    db: &Transaction<'_>,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let erasures = events
        .iter()
        .filter(|e| e.stream_type == "user" && e.event_type == "user.erased");
    for event in erasures {
        if let UserEvent::Erased(traces) = domain::decode(&event.event_type, &event.payload)?
            && !traces.hook_deliveries.is_empty()
        {
            db.execute(
                "UPDATE hook_deliveries SET body = 'null' WHERE id = ANY($1)",
                &[&traces.hook_deliveries],
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn by_id(db: &impl GenericClient, id: &str) -> Result<Option<HookRow>, ProjectionError> {
    document(db, "SELECT to_jsonb(h) FROM hooks h WHERE id = $1", &[&id]).await
}

/// Every hook, oldest first.
pub async fn all(db: &impl GenericClient) -> Result<Vec<HookRow>, ProjectionError> {
    documents(
        db,
        "SELECT to_jsonb(h) FROM hooks h ORDER BY created_at, id",
        &[],
    )
    .await
}

pub async fn delivery(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<DeliveryRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(d) FROM hook_deliveries d WHERE id = $1",
        &[&id],
    )
    .await
}
