//! The activity log behind `/api/logs`: one entry per auditable event, keyed as Logto keys its
//! log entries (`ExchangeTokenBy.*`, `Interaction.*`, ...).

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::Actor;
use domain::RecordedEvent;
use domain::exchange::ExchangeEvent;
use domain::grant::{GrantEvent, Issued};
use domain::interaction::InteractionEventRecord;
use domain::user::UserEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::rows::{Rows, document};
use crate::{Projection, ProjectionError};

mod account;
mod fields;
mod hook;
mod one_time_token;
mod user_transfer;

pub use fields::Fields;
pub use hook::{HookStats, hook_stats, recent_hook_logs};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub id: String,
    pub key: String,
    pub payload: Fields,
    pub user_id: Option<String>,
    pub application_id: Option<String>,
    pub created_at: i64,
}

static LOGS: Rows<LogRow> = Rows::new("logs", "id");

/// Log ids are derived from the event's position (21 base-36 digits, Logto's id length), so a
/// rebuild reproduces them.
pub fn log_id(position: i64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut value = u64::try_from(position).unwrap_or(0);
    let mut id = vec![b'0'; 21];
    for slot in id.iter_mut().rev() {
        *slot = DIGITS[usize::try_from(value % 36).unwrap_or(0)];
        value /= 36;
    }
    String::from_utf8(id).unwrap_or_default()
}

/// The payload fields every entry carries: result and request origin.
fn base(key: &str, success: bool, event: &RecordedEvent) -> Fields {
    let mut payload = Fields::new();
    payload.insert("key", json!(key));
    payload.insert("result", json!(if success { "Success" } else { "Error" }));
    if let Some(ip) = &event.metadata.ip {
        payload.insert("ip", json!(ip));
    }
    if let Some(user_agent) = &event.metadata.user_agent {
        payload.insert("userAgent", json!(user_agent));
    }
    if let Some(request_id) = &event.metadata.request_id {
        payload.insert("requestId", json!(request_id));
    }
    payload
}

/// The log entry an event produces, if any. Pure.
pub fn entry(event: &RecordedEvent) -> Result<Option<LogRow>, ProjectionError> {
    let (key, payload, user_id, application_id) = match event.stream_type.as_str() {
        "exchange" => match domain::decode::<ExchangeEvent>(&event.event_type, &event.payload)? {
            ExchangeEvent::Issued(issued) => {
                let key = format!("ExchangeTokenBy.{}", issued.grant_type.log_name());
                let mut payload = base(&key, true, event);
                payload.insert("applicationId", json!(issued.application_id));
                if let Some(user_id) = &issued.user_id {
                    payload.insert("userId", json!(user_id));
                }
                if let Some(name) = &issued.secret_name {
                    payload.insert("applicationSecret", json!({ "name": name }));
                }
                payload.insert("tokenTypes", json!(issued.token_types));
                payload.insert("scope", json!(issued.scope));
                (key, payload, issued.user_id, Some(issued.application_id))
            }
            ExchangeEvent::Refused(refused) => {
                let key = format!("ExchangeTokenBy.{}", refused.grant_type.log_name());
                let mut payload = base(&key, false, event);
                if let Some(application_id) = &refused.application_id {
                    payload.insert("applicationId", json!(application_id));
                }
                if let Some(user_id) = &refused.user_id {
                    payload.insert("userId", json!(user_id));
                }
                payload.insert(
                    "error",
                    json!({
                        "code": format!("oidc.{}", refused.error),
                        "message": refused.error_description,
                    }),
                );
                (key, payload, refused.user_id, refused.application_id)
            }
        },
        "user" => match &event.metadata.actor {
            Actor::App(_) | Actor::Admin(_) => {
                let (action, details) = user_change(domain::decode::<UserEvent>(
                    &event.event_type,
                    &event.payload,
                )?);
                let key = format!("ManagementApi.User.{action}");
                let mut payload = base(&key, true, event);
                payload.insert("userId", json!(event.stream_id));
                payload.insert("actor", json!(event.metadata.actor));
                let application_id = match &event.metadata.actor {
                    Actor::App(id) => {
                        payload.insert("applicationId", json!(id));
                        Some(id.clone())
                    }
                    Actor::User(_) | Actor::Admin(_) | Actor::System | Actor::Anonymous => None,
                };
                payload.extend(details);
                (key, payload, Some(event.stream_id.clone()), application_id)
            }
            Actor::User(_) => return account::entry(event),
            Actor::System | Actor::Anonymous => return Ok(None),
        },
        "one_time_token" => return one_time_token::entry(event),
        "user_transfer" => return user_transfer::entry(event),
        "hook_delivery" => return hook::entry(event),
        _ => return Ok(None),
    };
    Ok(Some(LogRow {
        id: log_id(event.position),
        key,
        payload,
        user_id,
        application_id,
        created_at: event.occurred_at_ms(),
    }))
}

/// What a Management API change to a user did, as a log action name and the non-secret facts
/// worth keeping with it (changed field names, targets, role ids; never values of secrets).
fn user_change(event: UserEvent) -> (&'static str, Map<String, Value>) {
    let fields = |value: Value| {
        Map::from_iter([(
            "fields".to_owned(),
            json!(
                value
                    .as_object()
                    .map(|o| o.keys().cloned().collect::<Vec<_>>())
            ),
        )])
    };
    match event {
        UserEvent::Created(_) => ("Create", Map::new()),
        UserEvent::Updated(patch) => ("Update", fields(json!(patch))),
        UserEvent::CustomDataMerged { custom_data } => {
            ("UpdateCustomData", fields(Value::Object(custom_data)))
        }
        // Only the Account API records refusals (a user's own write); kept apart should an
        // administrator's ever be.
        UserEvent::CustomDataChangeRefused { keys, .. } => (
            "RefuseCustomDataChange",
            Map::from_iter([("keys".to_owned(), json!(keys))]),
        ),
        UserEvent::ProfileMerged { profile } => ("UpdateProfile", fields(Value::Object(profile))),
        UserEvent::PasswordSet(_) => ("UpdatePassword", Map::new()),
        UserEvent::PasswordRehashed(_) => ("RehashPassword", Map::new()),
        UserEvent::Suspended {} => ("Suspend", Map::new()),
        UserEvent::Reactivated {} => ("Reactivate", Map::new()),
        UserEvent::Deleted {} => ("Delete", Map::new()),
        UserEvent::Erased(_) => ("Erase", Map::new()),
        UserEvent::IdentityLinked { target, .. } => (
            "LinkIdentity",
            Map::from_iter([("target".to_owned(), json!(target))]),
        ),
        UserEvent::IdentityUnlinked { target } => (
            "UnlinkIdentity",
            Map::from_iter([("target".to_owned(), json!(target))]),
        ),
        UserEvent::RolesAssigned { role_ids } => (
            "AssignRoles",
            Map::from_iter([("roleIds".to_owned(), json!(role_ids))]),
        ),
        UserEvent::RoleRemoved { role_id } => (
            "RemoveRole",
            Map::from_iter([("roleId".to_owned(), json!(role_id))]),
        ),
        UserEvent::PersonalAccessTokenAdded(token) => (
            "CreatePersonalAccessToken",
            Map::from_iter([("name".to_owned(), json!(token.name))]),
        ),
        UserEvent::PersonalAccessTokenRenamed { name, new_name } => (
            "RenamePersonalAccessToken",
            Map::from_iter([
                ("name".to_owned(), json!(name)),
                ("newName".to_owned(), json!(new_name)),
            ]),
        ),
        UserEvent::PersonalAccessTokenDeleted { name, .. } => (
            "DeletePersonalAccessToken",
            Map::from_iter([("name".to_owned(), json!(name))]),
        ),
        UserEvent::MfaVerificationAdded(new) => (
            "CreateMfaVerification",
            Map::from_iter([
                ("verificationId".to_owned(), json!(new.id())),
                ("type".to_owned(), json!(new.kind().as_str())),
            ]),
        ),
        UserEvent::MfaVerificationDeleted { id, .. } => (
            "DeleteMfaVerification",
            Map::from_iter([("verificationId".to_owned(), json!(id))]),
        ),
        UserEvent::TotpUsed { id, .. } | UserEvent::BackupCodeUsed { id, .. } => (
            "UseMfaVerification",
            Map::from_iter([("verificationId".to_owned(), json!(id))]),
        ),
    }
}

/// What an interaction's log keys need beyond its own events: the client it serves and the
/// interaction event (`SignIn`, `Register`, ...) in force, which `interaction.verified` and its
/// kin do not repeat.
#[derive(Debug, Clone)]
struct Journey {
    client_id: String,
    event: String,
}

/// The journeys of the interactions a batch touches, followed through the batch in order. An
/// interaction begun before the batch is read back from the log itself (never from another read
/// model), so the entries do not depend on chunking or on which projections are refolded.
#[derive(Default)]
struct Journeys(std::collections::HashMap<String, Journey>);

impl Journeys {
    async fn journey(
        &mut self,
        db: &Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<Option<Journey>, ProjectionError> {
        if let Some(journey) = self.0.get(&event.stream_id) {
            return Ok(Some(journey.clone()));
        }
        let statement = db
            .prepare_cached(
                "SELECT s.payload->'request'->>'clientId', c.payload->>'event' \
                 FROM events s, LATERAL ( \
                   SELECT payload FROM events \
                   WHERE stream_type = 'interaction' AND stream_id = $1 AND sequence < $2 \
                     AND event_type IN ('interaction.started', 'interaction.event_changed') \
                   ORDER BY sequence DESC LIMIT 1) c \
                 WHERE s.stream_type = 'interaction' AND s.stream_id = $1 AND s.sequence = 1",
            )
            .await?;
        let Some(row) = db
            .query_opt(&statement, &[&event.stream_id, &event.sequence])
            .await?
        else {
            return Ok(None);
        };
        let journey = match (row.try_get(0)?, row.try_get(1)?) {
            (Some(client_id), Some(event)) => Journey { client_id, event },
            _ => return Ok(None),
        };
        self.0.insert(event.stream_id.clone(), journey.clone());
        Ok(Some(journey))
    }

    /// The entry of one interaction event (Logto's `Interaction.*` keys), if it has one.
    async fn entry(
        &mut self,
        db: &Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<Option<LogRow>, ProjectionError> {
        let decoded = domain::decode::<InteractionEventRecord>(&event.event_type, &event.payload)?;
        if let InteractionEventRecord::Started {
            request,
            event: kind,
            ..
        } = &decoded
        {
            self.0.insert(
                event.stream_id.clone(),
                Journey {
                    client_id: request.client_id.clone(),
                    event: kind.as_str().to_owned(),
                },
            );
        }
        let Some(journey) = self.journey(db, event).await? else {
            return Ok(None);
        };
        let phase = |what: &str| format!("Interaction.{}.{what}", journey.event);
        let (key, success, user_id, mut extra) = match decoded {
            InteractionEventRecord::Started { .. } => {
                ("Interaction.Create".to_owned(), true, None, Map::new())
            }
            InteractionEventRecord::EventChanged { event: next } => {
                let key = phase("Update");
                self.0.insert(
                    event.stream_id.clone(),
                    Journey {
                        event: next.as_str().to_owned(),
                        ..journey.clone()
                    },
                );
                let extra = Map::from_iter([("interactionEvent".to_owned(), json!(next.as_str()))]);
                (key, true, None, extra)
            }
            InteractionEventRecord::Verified(verified) => (
                phase(&format!("Verification.{}.Submit", verified.kind.as_str())),
                true,
                verified.user_id,
                Map::from_iter([("verificationId".to_owned(), json!(verified.verification_id))]),
            ),
            InteractionEventRecord::VerificationFailed(failed) => (
                phase(&format!("Verification.{}.Submit", failed.kind.as_str())),
                false,
                failed.user_id,
                Map::from_iter([("error".to_owned(), json!({ "code": failed.reason }))]),
            ),
            InteractionEventRecord::Identified {
                user_id,
                verification_id,
            } => (
                phase("Identifier.Submit"),
                true,
                Some(user_id),
                Map::from_iter([("verificationId".to_owned(), json!(verification_id))]),
            ),
            InteractionEventRecord::UserRegistered { user_id } => {
                (phase("Identifier.Submit"), true, Some(user_id), Map::new())
            }
            InteractionEventRecord::Submitted {
                user_id,
                event: submitted,
                ..
            } => (
                format!("Interaction.{}.Submit", submitted.as_str()),
                true,
                Some(user_id),
                Map::new(),
            ),
            InteractionEventRecord::Completed {
                grant_id, user_id, ..
            } => (
                "Interaction.End".to_owned(),
                true,
                Some(user_id).filter(|id| !id.is_empty()),
                Map::from_iter([("grantId".to_owned(), json!(grant_id))]),
            ),
            InteractionEventRecord::MfaEnrolmentStarted { user_id, factor } => (
                phase(&format!("Verification.{}.Create", factor.kind().as_str())),
                true,
                Some(user_id),
                Map::from_iter([("verificationId".to_owned(), json!(factor.id()))]),
            ),
            InteractionEventRecord::MfaEnrolmentConfirmed { verification_id } => (
                phase("Verification.Totp.Submit"),
                true,
                None,
                Map::from_iter([("verificationId".to_owned(), json!(verification_id))]),
            ),
            InteractionEventRecord::MfaBound {
                verification_id,
                factor,
            } => (
                phase(&format!("BindMfa.{}.Submit", factor.as_str())),
                true,
                None,
                Map::from_iter([("verificationId".to_owned(), json!(verification_id))]),
            ),
            // Logto keys no log entry to consent; the grant it leads to is logged when used.
            // Lockouts and refused messages are webhook events, not log entries, in Logto.
            InteractionEventRecord::SessionContinued { .. }
            | InteractionEventRecord::Consented { .. }
            | InteractionEventRecord::ConsentDenied {}
            | InteractionEventRecord::MfaSkipped {}
            | InteractionEventRecord::IdentifierLocked { .. }
            | InteractionEventRecord::MessageRateLimited { .. } => return Ok(None),
        };
        let mut payload = base(&key, success, event);
        payload.insert("interactionId", json!(event.stream_id));
        payload.insert("applicationId", json!(journey.client_id));
        if let Some(user_id) = &user_id {
            payload.insert("userId", json!(user_id));
        }
        payload.append(&mut extra);
        Ok(Some(LogRow {
            id: log_id(event.position),
            key,
            payload,
            user_id,
            application_id: Some(journey.client_id),
            created_at: event.occurred_at_ms(),
        }))
    }
}

/// What a grant's log entries need beyond the event at hand: whose grant it is, what it
/// authorizes and which kinds of token it has handed out (what a revocation takes back).
#[derive(Debug, Clone)]
struct GrantOwner {
    client_id: String,
    user_id: String,
    scopes: Vec<String>,
    access_issued: bool,
    refresh_issued: bool,
}

impl GrantOwner {
    fn record(&mut self, issued: &Issued) {
        self.access_issued = true;
        self.refresh_issued |= issued.refresh_token.is_some();
    }
}

/// The grants a batch touches, followed through the batch in order; a grant begun before the
/// batch is read back from the log itself, as `Journeys` does for interactions.
#[derive(Default)]
struct GrantOwners(std::collections::HashMap<String, GrantOwner>);

impl GrantOwners {
    async fn owner(
        &mut self,
        db: &Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<Option<GrantOwner>, ProjectionError> {
        if let Some(owner) = self.0.get(&event.stream_id) {
            return Ok(Some(owner.clone()));
        }
        let statement = db
            .prepare_cached(
                "SELECT s.payload->'authorization'->>'clientId',                         s.payload->'authorization'->>'userId',                         s.payload->'authorization'->'scopes',                         EXISTS (SELECT 1 FROM events r                           WHERE r.stream_type = 'grant' AND r.stream_id = $1 AND r.sequence < $2                             AND r.event_type IN ('grant.code_redeemed', 'grant.refreshed')),                         EXISTS (SELECT 1 FROM events r                           WHERE r.stream_type = 'grant' AND r.stream_id = $1 AND r.sequence < $2                             AND r.event_type IN ('grant.code_redeemed', 'grant.refreshed')                             AND jsonb_typeof(r.payload->'issued'->'refreshToken') = 'object')                  FROM events s                  WHERE s.stream_type = 'grant' AND s.stream_id = $1 AND s.sequence = 1                    AND s.event_type = 'grant.code_issued'",
            )
            .await?;
        let Some(row) = db
            .query_opt(&statement, &[&event.stream_id, &event.sequence])
            .await?
        else {
            return Ok(None);
        };
        let (Some(client_id), Some(user_id)) = (row.try_get(0)?, row.try_get(1)?) else {
            return Ok(None);
        };
        let scopes: Option<Value> = row.try_get(2)?;
        let owner = GrantOwner {
            client_id,
            user_id,
            scopes: scopes
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default(),
            access_issued: row.try_get(3)?,
            refresh_issued: row.try_get(4)?,
        };
        self.0.insert(event.stream_id.clone(), owner.clone());
        Ok(Some(owner))
    }

    /// Key, token types, scopes and extra fields of one granted exchange, noted on the grant.
    fn exchanged(
        &mut self,
        grant_id: &str,
        grant_type: &str,
        issued: &Issued,
    ) -> (String, Vec<&'static str>, Vec<String>, Map<String, Value>) {
        let mut types = vec!["AccessToken"];
        if issued.id_token {
            types.push("IdToken");
        }
        if issued.refresh_token.is_some() {
            types.push("RefreshToken");
        }
        let mut extra = Map::new();
        if let Some(resource) = &issued.resource {
            extra.insert("audience".into(), json!(resource));
        }
        if let Some(owner) = self.0.get_mut(grant_id) {
            owner.record(issued);
        }
        (
            format!("ExchangeTokenBy.{grant_type}"),
            types,
            issued.scopes.clone(),
            extra,
        )
    }

    /// The entry of one grant event: Logto's `ExchangeTokenBy.AuthorizationCode` and
    /// `ExchangeTokenBy.RefreshToken` for the user-token exchanges the token endpoint granted
    /// (refusals are logged from the `exchange` stream), `RevokeToken` for a revocation.
    async fn entry(
        &mut self,
        db: &Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<Option<LogRow>, ProjectionError> {
        let decoded = domain::decode::<GrantEvent>(&event.event_type, &event.payload)?;
        if let GrantEvent::CodeIssued { authorization, .. } = &decoded {
            self.0.insert(
                event.stream_id.clone(),
                GrantOwner {
                    client_id: authorization.client_id.clone(),
                    user_id: authorization.user_id.clone(),
                    scopes: authorization.scopes.clone(),
                    access_issued: false,
                    refresh_issued: false,
                },
            );
            return Ok(None);
        }
        let Some(owner) = self.owner(db, event).await? else {
            return Ok(None);
        };
        let (key, token_types, scopes, mut extra) = match &decoded {
            // An exchange is logged from its `exchange` stream (`ExchangeTokenBy.TokenExchange`).
            GrantEvent::CodeIssued { .. }
            | GrantEvent::CodeReused { .. }
            | GrantEvent::RefreshReused { .. }
            | GrantEvent::Exchanged { .. } => return Ok(None),
            GrantEvent::CodeRedeemed { issued, .. } => {
                self.exchanged(&event.stream_id, "AuthorizationCode", issued)
            }
            GrantEvent::Refreshed { issued, .. } => {
                self.exchanged(&event.stream_id, "RefreshToken", issued)
            }
            GrantEvent::Revoked { reason } => {
                let mut types = Vec::new();
                if owner.access_issued {
                    types.push("AccessToken");
                }
                if owner.refresh_issued {
                    types.push("RefreshToken");
                }
                (
                    "RevokeToken".to_owned(),
                    types,
                    owner.scopes.clone(),
                    Map::from_iter([("reason".to_owned(), json!(reason))]),
                )
            }
        };
        let mut payload = base(&key, true, event);
        payload.insert("applicationId", json!(owner.client_id));
        payload.insert("userId", json!(owner.user_id));
        payload.insert("grantId", json!(event.stream_id));
        payload.insert("tokenTypes", json!(token_types));
        payload.insert("scope", json!(scopes.join(" ")));
        payload.append(&mut extra);
        Ok(Some(LogRow {
            id: log_id(event.position),
            key,
            payload,
            user_id: Some(owner.user_id),
            application_id: Some(owner.client_id),
            created_at: event.occurred_at_ms(),
        }))
    }
}

pub struct Logs;

#[async_trait]
impl Projection for Logs {
    fn name(&self) -> &'static str {
        "logs"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["logs"]
    }

    /// The primary key (no fold reads an entry by id), the list orders of `/api/logs` and the
    /// webhook statistics. `logs_user` stays: erasing a user rewrites their entries by
    /// `user_id` during the fold.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[
            "logs_pkey",
            "logs_created_at",
            "logs_application",
            "logs_key",
            "logs_hook",
        ]
    }

    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut rows = Vec::new();
        let mut journeys = Journeys::default();
        let mut grants = GrantOwners::default();
        let mut erased = Vec::new();
        for event in events {
            match event.stream_type.as_str() {
                "interaction" => rows.extend(journeys.entry(db, event).await?),
                "grant" => rows.extend(grants.entry(db, event).await?),
                _ => rows.extend(entry(event)?),
            }
            if event.stream_type == "user"
                && event.event_type == "user.erased"
                && let UserEvent::Erased(traces) =
                    domain::decode::<UserEvent>(&event.event_type, &event.payload)?
            {
                erased.push((event.stream_id.as_str(), traces));
            }
        }
        LOGS.insert(db, &rows).await?;
        for (user_id, traces) in &erased {
            forget(db, user_id, traces).await?;
        }
        Ok(())
    }
}

/// What an erased person's log entries keep: what happened, when (the row's `created_at`), to
/// whom by id, by which actor and application, and the request id. Everything else an entry
/// may hold (IP, user agent, changed field names, identifiers) came from, or may have come
/// from, their sealed data: live entries had it, a refold of the erased events cannot, so the
/// erasure removes it from both alike and `replay check` stays exact.
const KEPT_AFTER_ERASURE: &[&str] = &[
    "key",
    "result",
    "userId",
    "applicationId",
    "actor",
    "requestId",
];

/// What entries about an erased person's traces lose (`domain::user::Traces`): their IP and
/// user agent, and whether a link was bound to a device, all sealed under the destroyed keys.
/// The traces' events all precede the erasure in the log, so a refold blanks them the same way.
const SEALED_IN_TRACES: &[&str] = &["ip", "userAgent", "deviceBound"];

/// What a webhook delivery's entries lose: the request and the response (the person's user
/// object, whatever the receiver echoed), as a refold decodes them without their sealed fields.
const SEALED_IN_DELIVERIES: &[&str] = &["response", "error"];

async fn forget(
    db: &Transaction<'_>,
    user_id: &str,
    traces: &domain::user::Traces,
) -> Result<(), ProjectionError> {
    // The payload is stored as `json` (migration 0035); key removal and merging are jsonb's.
    let kept: Vec<&str> = KEPT_AFTER_ERASURE.to_vec();
    db.execute(
        "UPDATE logs SET payload = ( \
           SELECT coalesce(jsonb_object_agg(k, v), '{}')::json \
           FROM jsonb_each(payload::jsonb) AS e(k, v) WHERE k = ANY($2)) \
         WHERE user_id = $1",
        &[&user_id, &kept],
    )
    .await?;
    if !traces.interactions.is_empty() || !traces.one_time_tokens.is_empty() {
        let sealed: Vec<&str> = SEALED_IN_TRACES.to_vec();
        db.execute(
            "UPDATE logs SET payload = (payload::jsonb - $3::text[])::json \
             WHERE payload->>'interactionId' = ANY($1) OR payload->>'oneTimeTokenId' = ANY($2)",
            &[&traces.interactions, &traces.one_time_tokens, &sealed],
        )
        .await?;
    }
    if !traces.hook_deliveries.is_empty() {
        let sealed: Vec<&str> = SEALED_IN_DELIVERIES.to_vec();
        db.execute(
            "UPDATE logs SET payload = \
               ((payload::jsonb - $2::text[]) || '{\"hookRequest\": null}')::json \
             WHERE key LIKE 'TriggerHook.%' \
               AND (payload->>'hookId') || ':' || (payload->>'eventPosition') = ANY($1)",
            &[&traces.hook_deliveries, &sealed],
        )
        .await?;
    }
    Ok(())
}

pub async fn by_id(db: &impl GenericClient, id: &str) -> Result<Option<LogRow>, ProjectionError> {
    document(db, "SELECT to_jsonb(l) FROM logs l WHERE id = $1", &[&id]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_are_fixed_width_and_ordered_like_positions() {
        assert_eq!(log_id(0), "000000000000000000000");
        assert_eq!(log_id(35), "00000000000000000000z");
        assert_eq!(log_id(36), "000000000000000000010");
        assert!(log_id(1_000) < log_id(1_001));
        assert_eq!(log_id(i64::MAX).len(), 21);
    }
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub user_id: Option<String>,
    pub application_id: Option<String>,
    pub key: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
}

/// Key families `/api/logs` shows (Logto hides webhook delivery logs and the like there).
const LISTED_PREFIXES: &[&str] = &[
    "ExchangeTokenBy%",
    "RevokeToken%",
    "RevokeGrants%",
    "Interaction%",
    "JwtCustomizer%",
    "SamlApplication%",
    "Action%",
    "Unknown%",
    "ManagementApi%",
    "Account%",
];

fn filtered(select: &str, filter: &LogFilter) -> crate::Query {
    let mut query = crate::Query::new(select);
    let prefixes = query.bind(
        LISTED_PREFIXES
            .iter()
            .map(|p| (*p).to_owned())
            .collect::<Vec<_>>(),
    );
    query.push(&format!(" WHERE key LIKE ANY({prefixes})"));
    if let Some(user_id) = &filter.user_id {
        let p = query.bind(user_id.clone());
        query.push(&format!(" AND user_id = {p}"));
    }
    // The list indexes lead with `hashtext` of these columns (migration 0039): the hash finds
    // the index range, the text rules out collisions.
    if let Some(application_id) = &filter.application_id {
        let p = query.bind(application_id.clone());
        query.push(&format!(
            " AND hashtext(application_id) = hashtext({p}) AND application_id = {p}"
        ));
    }
    if let Some(key) = &filter.key {
        let p = query.bind(key.clone());
        query.push(&format!(" AND hashtext(key) = hashtext({p}) AND key = {p}"));
    }
    if let Some(start) = filter.start_time {
        let p = query.bind(start);
        query.push(&format!(" AND created_at >= {p}"));
    }
    if let Some(end) = filter.end_time {
        let p = query.bind(end);
        query.push(&format!(" AND created_at <= {p}"));
    }
    query
}

/// Log entries matching `filter`, newest first, and how many match in all.
pub async fn list(
    db: &impl GenericClient,
    filter: &LogFilter,
    window: crate::Window,
) -> Result<(Vec<LogRow>, i64), ProjectionError> {
    let mut rows = filtered("SELECT to_jsonb(l) FROM logs l", filter);
    let limit = rows.bind(window.limit);
    let offset = rows.bind(window.offset);
    rows.push(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
    ));
    let count = filtered("SELECT count(*) FROM logs l", filter);
    Ok((rows.documents(db).await?, count.count(db).await?))
}
