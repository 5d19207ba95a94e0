//! One-time tokens as `/api/one-time-tokens` lists them (values stay sealed in the vault).

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::RecordedEvent;
use domain::one_time_token::{OneTimeTokenEvent, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rows::{Rows, StreamFold, document, fold_streams};
use crate::{Projection, ProjectionError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneTimeTokenRow {
    pub id: String,
    pub email: String,
    pub lookup_hash: String,
    pub vault_ref: String,
    pub context: Value,
    /// The stored status; an active token past `expires_at` reads as expired.
    pub status: String,
    pub created_at: i64,
    pub expires_at: i64,
}

static TOKENS: Rows<OneTimeTokenRow> = Rows::new("one_time_tokens", "id");

fn fold(row: &mut Option<OneTimeTokenRow>, event: &RecordedEvent, decoded: OneTimeTokenEvent) {
    let status = |row: &mut Option<OneTimeTokenRow>, status: Status| {
        if let Some(row) = row {
            row.status = status.as_str().to_owned();
        }
    };
    match decoded {
        OneTimeTokenEvent::Created(token) => {
            // The binding is sealed apart from the context in the log; reads show it in place.
            let mut context = token.context;
            if let (Some(binding), Value::Object(map)) = (token.device_binding, &mut context) {
                map.insert("deviceBinding".into(), serde_json::json!(binding));
            }
            *row = Some(OneTimeTokenRow {
                id: token.id,
                email: token.email,
                lookup_hash: token.lookup_hash,
                vault_ref: token.vault_ref,
                context,
                status: Status::Active.as_str().to_owned(),
                created_at: event.occurred_at_ms(),
                expires_at: token.expires_at,
            });
        }
        OneTimeTokenEvent::Consumed {} => status(row, Status::Consumed),
        OneTimeTokenEvent::Expired {} => status(row, Status::Expired),
        OneTimeTokenEvent::Revoked {} => status(row, Status::Revoked),
        OneTimeTokenEvent::Deleted { .. } => *row = None,
    }
}

pub struct OneTimeTokens;

#[async_trait]
impl StreamFold for OneTimeTokens {
    type Event = OneTimeTokenEvent;
    type State = Option<OneTimeTokenRow>;

    fn route(event: &RecordedEvent) -> Result<Option<(String, Self::Event)>, domain::CodecError> {
        crate::rows::own_stream(event, "one_time_token")
    }

    async fn load(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
    ) -> Result<HashMap<String, Option<OneTimeTokenRow>>, ProjectionError> {
        TOKENS.load_entities(db, streams).await
    }

    fn fold(
        state: &mut Option<OneTimeTokenRow>,
        event: &RecordedEvent,
        decoded: OneTimeTokenEvent,
    ) {
        fold(state, event, decoded);
    }

    async fn store(
        &self,
        db: &Transaction<'_>,
        streams: &[String],
        states: HashMap<String, Option<OneTimeTokenRow>>,
    ) -> Result<(), ProjectionError> {
        TOKENS.store_entities(db, streams, states).await
    }
}

#[async_trait]
impl Projection for OneTimeTokens {
    fn name(&self) -> &'static str {
        "one_time_tokens"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["one_time_tokens"]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        fold_streams(self, db, events).await
    }
}

pub async fn by_id(
    db: &impl GenericClient,
    id: &str,
) -> Result<Option<OneTimeTokenRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(t) FROM one_time_tokens t WHERE id = $1",
        &[&id],
    )
    .await
}

pub async fn by_hash(
    db: &impl GenericClient,
    lookup_hash: &str,
) -> Result<Option<OneTimeTokenRow>, ProjectionError> {
    document(
        db,
        "SELECT to_jsonb(t) FROM one_time_tokens t WHERE lookup_hash = $1",
        &[&lookup_hash],
    )
    .await
}

/// Active tokens of `email` already past their expiry (Logto marks them expired when a new
/// token is created for the email).
pub async fn stale_of_email(
    db: &impl GenericClient,
    email: &str,
    now: i64,
) -> Result<Vec<OneTimeTokenRow>, ProjectionError> {
    crate::rows::documents(
        db,
        "SELECT to_jsonb(t) FROM one_time_tokens t WHERE email = $1 AND status = 'active' \
         AND expires_at <= $2",
        &[&email, &now],
    )
    .await
}

#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub email: Option<String>,
    /// Compared with the stored status, as Logto does.
    pub status: Option<String>,
}

fn filtered(select: &str, filter: &TokenFilter) -> crate::Query {
    let mut query = crate::Query::new(select);
    query.push(" WHERE TRUE");
    if let Some(email) = &filter.email {
        let p = query.bind(email.clone());
        query.push(&format!(" AND email = {p}"));
    }
    if let Some(status) = &filter.status {
        let p = query.bind(status.clone());
        query.push(&format!(" AND status = {p}"));
    }
    query
}

/// Tokens matching `filter`, newest first, and how many match in all.
pub async fn list(
    db: &impl GenericClient,
    filter: &TokenFilter,
    window: Option<crate::Window>,
) -> Result<(Vec<OneTimeTokenRow>, i64), ProjectionError> {
    let mut rows = filtered("SELECT to_jsonb(t) FROM one_time_tokens t", filter);
    rows.push(" ORDER BY created_at DESC, id DESC");
    if let Some(window) = window {
        let limit = rows.bind(window.limit);
        let offset = rows.bind(window.offset);
        rows.push(&format!(" LIMIT {limit} OFFSET {offset}"));
    }
    let count = filtered("SELECT count(*) FROM one_time_tokens t", filter);
    Ok((rows.documents(db).await?, count.count(db).await?))
}
