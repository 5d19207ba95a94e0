//! The past of a user (idledger): `GET /api/users/:id?asOf=` shows the user as the read model
//! showed it at a moment, and `GET /api/users/:id/history` is the audit trail of everything that
//! happened to the user as a data subject (its own stream, its sessions, grants and token
//! exchanges), each entry with who did it, from where, a summary in English and, for changes to
//! the user itself, the fields before and after. Both fold the log with the users projection's own
//! fold (`projections::users::UserHistory`), so they show exactly what the API showed. Deleting
//! a user keeps its history: the log is never rewritten.

use std::collections::{HashMap, HashSet};

use axum::extract::{OriginalUri, Path, State};
use domain::RecordedEvent;
use domain::exchange::{ExchangeEvent, GrantType};
use domain::grant::GrantEvent;
use domain::patch::Patch;
use domain::session::SessionEvent;
use domain::user::{UserEvent, UserPatch};
use projections::users::{UserHistory, UserRow};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::UserResponse;
use crate::app::AppState;
use crate::history::{self, Until};
use crate::http::error::ApiError;
use crate::http::extract::QueryPairs;
use crate::http::management::events::ActorResponse;
use crate::http::management::listing::{self, Listing, Paging};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(user_history))
}

/// The user as of `as_of` (milliseconds since the epoch or RFC 3339, to the millisecond).
pub async fn as_of(state: &AppState, id: &str, as_of: &str) -> Result<UserRow, ApiError> {
    let at = history::parse_instant(as_of).ok_or_else(|| {
        ApiError::invalid_input(
            "query",
            "Error in key path \"asOf\": expected milliseconds since the epoch or an RFC 3339 \
             date-time",
        )
    })?;
    let db = state.store.pool().get().await?;
    history::user_as_of(&db, state.store.keyring(), id, at)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// One event of a user's audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The event's position in the log.
    pub position: i64,
    /// Stored event type, e.g. `user.updated`, `session.client_added`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `user`, `session`, `grant` or `exchange`.
    pub stream_type: String,
    pub stream_id: String,
    pub actor: ActorResponse,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// What happened, in English: "Email changed", "Signed in to Web app".
    pub summary: String,
    /// Changes to the user itself only: the fields that changed, as the users API shows them
    /// (plus `roleIds` and `personalAccessTokens` names), before the event; `null` when the user
    /// did not exist yet. Absent for other events and when the personal data was erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The same fields after the event; `null` when the event deleted the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// The user's personal data was erased: personal values, IP and user agent are gone.
    pub erased: bool,
}

/// The audit trail of a user, newest first. Kept after the user is deleted.
#[utoipa::path(get, path = "/api/users/{id}/history", tag = "Users",
    params(("id" = String, Path, description = "User id (also of a deleted user)."),
           ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
           ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100).")),
    responses((status = 200, body = Vec<HistoryEntry>), (status = 404)),
    security(("bearer" = [])))]
async fn user_history(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    query: QueryPairs,
) -> Result<Listing<HistoryEntry>, ApiError> {
    let page = listing::page(&query, false)?.unwrap_or(listing::Page {
        number: 1,
        size: 20,
    });
    let keyring = state.store.keyring();
    let db = state.store.pool().get().await?;
    let (events, total) =
        history::subject_trail(&db, keyring, &id, page.size, page.offset()).await?;
    // Every user's first event names it as its subject: none means no such user, ever.
    if total == 0 {
        return Err(ApiError::not_found());
    }
    let decoded: Vec<Decoded> = events.iter().map(Decoded::of).collect();
    let names = Names::of(&db, &decoded).await?;
    let mut changes = changes(&db, keyring, &id, &events).await?;
    let rows = events
        .into_iter()
        .zip(decoded)
        .map(|(event, decoded)| {
            let (before, after) = match changes.remove(&event.position) {
                Some((before, after)) => (Some(before), Some(after)),
                None => (None, None),
            };
            HistoryEntry {
                summary: summary(&event, decoded, &names),
                position: event.position,
                created_at: event.occurred_at_ms(),
                actor: ActorResponse::from(&event.metadata.actor),
                event_type: event.event_type,
                stream_type: event.stream_type,
                stream_id: event.stream_id,
                ip: event.metadata.ip,
                user_agent: event.metadata.user_agent,
                request_id: event.metadata.request_id,
                before,
                after,
                erased: event.erased,
            }
        })
        .collect();
    Ok(Listing {
        rows,
        paging: Some(Paging {
            page,
            total,
            endpoint: state.endpoint.clone(),
            path: uri.path().to_owned(),
            query: query.0.clone(),
        }),
    })
}

// ---- before and after -------------------------------------------------------------------------

/// The user as the users API shows it (without `updatedAt`, which every change moves), plus the
/// roles and token names the user object leaves out; `None` while the user does not exist.
fn snapshot(history: &UserHistory) -> Option<Map<String, Value>> {
    let row = history.user()?.clone();
    let Ok(Value::Object(mut fields)) = serde_json::to_value(UserResponse::from_row(row, false))
    else {
        return None;
    };
    fields.remove("updatedAt");
    fields.insert("roleIds".to_owned(), json!(history.role_ids()));
    fields.insert(
        "personalAccessTokens".to_owned(),
        json!(history.token_names()),
    );
    Some(fields)
}

/// The fields that differ, before and after; a side where the user does not exist is `null`.
fn difference(
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
) -> (Value, Value) {
    match (before, after) {
        (Some(before), Some(after)) => {
            let (mut old, mut new) = (Map::new(), Map::new());
            for (key, value) in &after {
                let previous = before.get(key).cloned().unwrap_or(Value::Null);
                if previous != *value {
                    old.insert(key.clone(), previous);
                    new.insert(key.clone(), value.clone());
                }
            }
            (Value::Object(old), Value::Object(new))
        }
        (before, after) => (
            before.map_or(Value::Null, Value::Object),
            after.map_or(Value::Null, Value::Object),
        ),
    }
}

/// Before and after of each of the user's own events in `events`, by position: the user's facts
/// folded from the start to the newest of them, watching the state around each. Empty when the
/// personal data was erased (there is nothing left to show).
async fn changes(
    db: &deadpool_postgres::Object,
    keyring: &crate::crypto::Keyring,
    id: &str,
    events: &[RecordedEvent],
) -> Result<HashMap<i64, (Value, Value)>, ApiError> {
    let watched: HashSet<i64> = events
        .iter()
        .filter(|e| e.stream_type == "user")
        .map(|e| e.position)
        .collect();
    let mut changes = HashMap::new();
    let Some(last) = watched.iter().max().copied() else {
        return Ok(changes);
    };
    let facts = history::user_facts(db, keyring, id, Until::Position(last)).await?;
    if facts.iter().any(|e| e.erased && e.stream_type == "user") {
        return Ok(changes);
    }
    let mut timeline = UserHistory::default();
    for fact in &facts {
        let before = watched
            .contains(&fact.position)
            .then(|| snapshot(&timeline));
        timeline
            .fold(id, fact)
            .map_err(crate::store::StoreError::from)?;
        if let Some(before) = before {
            changes.insert(fact.position, difference(before, snapshot(&timeline)));
        }
    }
    Ok(changes)
}

// ---- summaries ----------------------------------------------------------------------------

/// An event of the trail, decoded by its stream type when it is one the summaries know.
enum Decoded {
    User(Box<UserEvent>),
    Session(SessionEvent),
    Grant(Box<GrantEvent>),
    Exchange(Box<ExchangeEvent>),
    /// Another stream type, or a payload that no longer decodes (its personal part erased).
    Other,
}

impl Decoded {
    fn of(event: &RecordedEvent) -> Decoded {
        let (kind, payload) = (&event.event_type, &event.payload);
        let decoded = match event.stream_type.as_str() {
            "user" => domain::decode(kind, payload).map(|e| Decoded::User(Box::new(e))),
            "session" => domain::decode(kind, payload).map(Decoded::Session),
            "grant" => domain::decode(kind, payload).map(|e| Decoded::Grant(Box::new(e))),
            "exchange" => domain::decode(kind, payload).map(|e| Decoded::Exchange(Box::new(e))),
            _ => return Decoded::Other,
        };
        decoded.unwrap_or(Decoded::Other)
    }
}

/// Names of the applications and roles the summaries mention, as they are now (an id stands in
/// for one deleted since).
#[derive(Default)]
struct Names {
    applications: HashMap<String, String>,
    roles: HashMap<String, String>,
}

impl Names {
    async fn of(db: &deadpool_postgres::Object, events: &[Decoded]) -> Result<Names, ApiError> {
        let mut applications = HashSet::new();
        let mut roles = HashSet::new();
        for event in events {
            match event {
                Decoded::User(user) => {
                    if let UserEvent::RolesAssigned { role_ids } = user.as_ref() {
                        roles.extend(role_ids.iter().cloned());
                    }
                    if let UserEvent::RoleRemoved { role_id } = user.as_ref() {
                        roles.insert(role_id.clone());
                    }
                }
                Decoded::Session(SessionEvent::ClientAdded { client_id, .. }) => {
                    applications.insert(client_id.clone());
                }
                Decoded::Grant(grant) => {
                    if let GrantEvent::CodeIssued { authorization, .. }
                    | GrantEvent::Exchanged { authorization, .. } = grant.as_ref()
                    {
                        applications.insert(authorization.client_id.clone());
                    }
                }
                Decoded::Exchange(exchange) => match exchange.as_ref() {
                    ExchangeEvent::Issued(issued) => {
                        applications.insert(issued.application_id.clone());
                    }
                    ExchangeEvent::Refused(refused) => {
                        applications.extend(refused.application_id.clone());
                    }
                },
                Decoded::Session(_) | Decoded::Other => {}
            }
        }
        let mut names = Names::default();
        for id in applications {
            if let Some(application) = projections::applications::by_id(db, &id).await? {
                names.applications.insert(id, application.name);
            }
        }
        let roles: Vec<String> = roles.into_iter().collect();
        for role in projections::roles::by_ids(db, &roles).await? {
            names.roles.insert(role.id, role.name);
        }
        Ok(names)
    }

    fn application<'a>(&'a self, id: &'a str) -> &'a str {
        self.applications.get(id).map_or(id, String::as_str)
    }

    fn role<'a>(&'a self, id: &'a str) -> &'a str {
        self.roles.get(id).map_or(id, String::as_str)
    }
}

/// "a", "a and b", "a, b and c".
fn enumerate(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "Email changed", "Name and avatar changed; phone removed".
fn updated(patch: &UserPatch) -> String {
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    let identifiers = [
        ("username", &patch.username),
        ("email", &patch.primary_email),
        ("phone", &patch.primary_phone),
        ("name", &patch.name),
        ("avatar", &patch.avatar),
    ];
    for (label, field) in identifiers {
        match field {
            Patch::Absent => {}
            // Logto clears a field given as "" as it does one given as null.
            Patch::Null => removed.push(label),
            Patch::Value(value) if value.is_empty() => removed.push(label),
            Patch::Value(_) => changed.push(label),
        }
    }
    if patch.custom_data.is_some() {
        changed.push("custom data");
    }
    if patch.profile.is_some() {
        changed.push("profile");
    }
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!("{} changed", enumerate(&changed)));
    }
    if !removed.is_empty() {
        parts.push(format!("{} removed", enumerate(&removed)));
    }
    if parts.is_empty() {
        return "Updated".to_owned();
    }
    capitalized(&parts.join("; "))
}

fn user_summary(event: &UserEvent, names: &Names) -> String {
    match event {
        UserEvent::Created(_) => "Created".to_owned(),
        UserEvent::Updated(patch) => updated(patch),
        UserEvent::CustomDataMerged { .. } => "Custom data updated".to_owned(),
        UserEvent::CustomDataChangeRefused { keys, .. } => {
            format!("Custom data change refused: {}", keys.join(", "))
        }
        UserEvent::ProfileMerged { .. } => "Profile updated".to_owned(),
        UserEvent::PasswordSet(_) => "Password set".to_owned(),
        UserEvent::PasswordRehashed(password) => format!(
            "Password rehashed with {}",
            password.password_algorithm.as_str()
        ),
        UserEvent::Suspended {} => "Suspended".to_owned(),
        UserEvent::Reactivated {} => "Reactivated".to_owned(),
        UserEvent::Deleted {} => "Deleted".to_owned(),
        UserEvent::Erased(_) => "Personal data erased".to_owned(),
        UserEvent::IdentityLinked { target, .. } => format!("{target} identity linked"),
        UserEvent::IdentityUnlinked { target } => format!("{target} identity unlinked"),
        UserEvent::RolesAssigned { role_ids } => {
            let roles: Vec<&str> = role_ids.iter().map(|id| names.role(id)).collect();
            let noun = if roles.len() == 1 { "Role" } else { "Roles" };
            format!("{noun} assigned: {}", roles.join(", "))
        }
        UserEvent::RoleRemoved { role_id } => format!("Role removed: {}", names.role(role_id)),
        UserEvent::PersonalAccessTokenAdded(token) => {
            format!("Personal access token \"{}\" added", token.name)
        }
        UserEvent::PersonalAccessTokenRenamed { name, new_name } => {
            format!("Personal access token \"{name}\" renamed to \"{new_name}\"")
        }
        UserEvent::PersonalAccessTokenDeleted { name, .. } => {
            format!("Personal access token \"{name}\" deleted")
        }
        UserEvent::MfaVerificationAdded(new) => format!("{} factor added", new.kind().as_str()),
        UserEvent::MfaVerificationDeleted { .. } => "Second factor removed".to_owned(),
        UserEvent::TotpUsed { .. } => "TOTP code used".to_owned(),
        UserEvent::BackupCodeUsed { .. } => "Backup code used".to_owned(),
    }
}

fn grant_type(grant: GrantType) -> &'static str {
    match grant {
        GrantType::ClientCredentials => "client credentials",
        GrantType::AuthorizationCode => "authorization code",
        GrantType::RefreshToken => "refresh token",
        GrantType::TokenExchange => "token exchange",
        GrantType::Unknown => "unsupported grant",
    }
}

fn summary(event: &RecordedEvent, decoded: Decoded, names: &Names) -> String {
    match decoded {
        Decoded::User(user) => user_summary(&user, names),
        Decoded::Session(session) => match session {
            SessionEvent::Started { .. } => "Signed in (new browser session)".to_owned(),
            SessionEvent::Reauthenticated { .. } => {
                "Signed in again (same browser session)".to_owned()
            }
            SessionEvent::ClientAdded { client_id, .. } => {
                format!("Signed in to {}", names.application(&client_id))
            }
            SessionEvent::Ended { reason } => format!("Session ended ({reason})"),
        },
        Decoded::Grant(grant) => match *grant {
            GrantEvent::CodeIssued { authorization, .. } => format!(
                "Authorization code issued to {}",
                names.application(&authorization.client_id)
            ),
            GrantEvent::CodeRedeemed { .. } => "Authorization code exchanged for tokens".to_owned(),
            GrantEvent::CodeReused { .. } => "Authorization code reused: grant revoked".to_owned(),
            GrantEvent::Refreshed { .. } => "Tokens refreshed".to_owned(),
            GrantEvent::RefreshReused { .. } => "Refresh token reused: grant revoked".to_owned(),
            GrantEvent::Revoked { reason } => format!("Grant revoked ({reason})"),
            GrantEvent::Exchanged { authorization, .. } => format!(
                "Access token issued to {} by token exchange",
                names.application(&authorization.client_id)
            ),
        },
        Decoded::Exchange(exchange) => match *exchange {
            ExchangeEvent::Issued(issued) => format!(
                "Tokens issued to {} ({})",
                names.application(&issued.application_id),
                grant_type(issued.grant_type)
            ),
            ExchangeEvent::Refused(refused) => match &refused.application_id {
                Some(id) => format!(
                    "Token request from {} refused: {}",
                    names.application(id),
                    refused.error
                ),
                None => format!("Token request refused: {}", refused.error),
            },
        },
        Decoded::Other if event.erased => format!("{} (personal data erased)", event.event_type),
        Decoded::Other => event.event_type.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_summaries_name_what_changed_and_what_was_removed() {
        let patch = UserPatch {
            primary_email: Patch::Value("a@b.co".into()),
            ..UserPatch::default()
        };
        assert_eq!(updated(&patch), "Email changed");
        let patch = UserPatch {
            name: Patch::Value("Ada".into()),
            avatar: Patch::Value("https://x.io/a.png".into()),
            primary_phone: Patch::Null,
            username: Patch::Value(String::new()),
            custom_data: Some(Map::new()),
            ..UserPatch::default()
        };
        assert_eq!(
            updated(&patch),
            "Name, avatar and custom data changed; username and phone removed"
        );
        assert_eq!(updated(&UserPatch::default()), "Updated");
    }

    #[test]
    fn token_theft_and_sign_ins_read_as_english() {
        let mut names = Names::default();
        names.applications.insert("app1".into(), "Web shop".into());
        let event = RecordedEvent {
            position: 1,
            stream_id: "s".into(),
            stream_type: "grant".into(),
            sequence: 2,
            event_type: "grant.refresh_reused".into(),
            event_version: 1,
            payload: (&json!({"refreshHash": "h"})).into(),
            metadata: domain::Metadata::system(time::OffsetDateTime::UNIX_EPOCH),
            erased: false,
        };
        assert_eq!(
            summary(&event, Decoded::of(&event), &names),
            "Refresh token reused: grant revoked"
        );
        let added = SessionEvent::ClientAdded {
            client_id: "app1".into(),
            grant_id: "g".into(),
        };
        assert_eq!(
            summary(&event, Decoded::Session(added), &names),
            "Signed in to Web shop"
        );
        let erased = RecordedEvent {
            stream_type: "user".into(),
            event_type: "user.created".into(),
            payload: domain::Payload::empty(),
            erased: true,
            ..event
        };
        assert_eq!(
            summary(&erased, Decoded::of(&erased), &names),
            "user.created (personal data erased)"
        );
    }

    #[test]
    fn differences_keep_only_changed_fields_and_null_for_a_missing_user() {
        let before = Map::from_iter([
            ("name".to_owned(), json!("Ada")),
            ("a".to_owned(), json!(1)),
        ]);
        let after = Map::from_iter([
            ("name".to_owned(), json!("Grace")),
            ("a".to_owned(), json!(1)),
        ]);
        assert_eq!(
            difference(Some(before.clone()), Some(after)),
            (json!({"name": "Ada"}), json!({"name": "Grace"}))
        );
        assert_eq!(
            difference(Some(before), None),
            (json!({"name": "Ada", "a": 1}), Value::Null)
        );
    }
}
