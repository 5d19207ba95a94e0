//! Logto's webhook events (logto-compat §10) derived from the log: which hook event an event of
//! the log is, and the payload Logto would send for it. Built once per delivery, by the webhook
//! follower, when the delivery is first attempted; retries send the same bytes.
//!
//! | log event | hook event |
//! |---|---|
//! | `interaction.submitted` | `PostSignIn`, `PostRegister` |
//! | `user.password_set` by the user, over an existing password (a reset) | `PostResetPassword` |
//! | `user.created` | `User.Created` |
//! | `user.updated`, `…custom_data_merged`, `…profile_merged`, `…password_set`, `…mfa_verification_added`, `…mfa_verification_deleted` | `User.Data.Updated` |
//! | `user.deleted` | `User.Deleted` (`data`: the user as it was) |
//! | `user.suspended`, `user.reactivated` | `User.SuspensionStatus.Updated` |
//! | `role.created`, `…updated`, `…deleted`, `…scopes_added`, `…scope_removed` | `Role.Created`, `Role.Data.Updated`, `Role.Deleted`, `Role.Scopes.Updated` |
//! | `resource.scope_added` | `Scope.Created` |
//! | `organization.created`, `…updated`, `…deleted`, `…member_added`, `…member_removed` | `Organization.*`, `Organization.Membership.Updated` |
//! | `organization_role.created`, `…updated`, `…deleted` | `OrganizationRole.*` |
//! | `interaction.identifier_locked` | `Identifier.Lockout` |
//! | `interaction.message_rate_limited` | `Message.RateLimited` |
//!
//! Data events changed through the Management API carry its route context (`path`, `method`,
//! `status`, `params`, `matchedRoute`), reconstructed from the event; `data` is the object as
//! it was right after the event (a user is folded from the log up to it), or the current one
//! for roles and organizations.

use deadpool_postgres::GenericClient;
use domain::interaction::{InteractionEvent, InteractionEventRecord};
use domain::user::UserEvent;
use domain::{Actor, RecordedEvent};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::Keyring;
use crate::history::{self, Until};
use crate::http::management::users::UserResponse;
use crate::store::StoreError;

/// Every hook event Logto defines (for validating hooks' `events`).
pub const EVENTS: &[&str] = &[
    "PostRegister",
    "PostSignIn",
    "PostSignInAdaptiveMfaTriggered",
    "PostResetPassword",
    "User.Created",
    "User.Deleted",
    "User.Data.Updated",
    "User.SuspensionStatus.Updated",
    "Role.Created",
    "Role.Deleted",
    "Role.Data.Updated",
    "Role.Scopes.Updated",
    "Scope.Created",
    "Scope.Deleted",
    "Scope.Data.Updated",
    "Organization.Created",
    "Organization.Deleted",
    "Organization.Data.Updated",
    "Organization.Membership.Updated",
    "OrganizationRole.Created",
    "OrganizationRole.Deleted",
    "OrganizationRole.Data.Updated",
    "OrganizationRole.Scopes.Updated",
    "OrganizationScope.Created",
    "OrganizationScope.Deleted",
    "OrganizationScope.Data.Updated",
    "Identifier.Lockout",
    "Message.RateLimited",
    "Grant.LimitExceeded",
];

/// Whether events of this type can become a hook event (the follower decodes only those).
pub fn candidate(stream_type: &str, event_type: &str) -> bool {
    match stream_type {
        "interaction" => matches!(
            event_type,
            "interaction.submitted"
                | "interaction.identifier_locked"
                | "interaction.message_rate_limited"
        ),
        "user" => matches!(
            event_type,
            "user.created"
                | "user.updated"
                | "user.custom_data_merged"
                | "user.profile_merged"
                | "user.password_set"
                | "user.mfa_verification_added"
                | "user.mfa_verification_deleted"
                | "user.deleted"
                | "user.suspended"
                | "user.reactivated"
        ),
        "role" | "organization" | "organization_role" => true,
        "resource" => event_type == "resource.scope_added",
        _ => false,
    }
}

/// A payload ready to sign, without `hookId` and `hookRequestId` (the delivery adds them).
pub struct Built {
    pub event: &'static str,
    /// Whose personal data the payload carries.
    pub subject: String,
    pub body: Map<String, Value>,
}

fn iso(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The Management API's route context, when the change came through it.
fn route(
    event: &RecordedEvent,
    method: &str,
    matched: &str,
    status: u16,
    params: Value,
) -> Map<String, Value> {
    let mut context = Map::new();
    if let Actor::App(_) | Actor::Admin(_) = event.metadata.actor {
        let mut path = matched.to_owned();
        if let Value::Object(params) = &params {
            for (name, value) in params {
                path = path.replace(&format!(":{name}"), value.as_str().unwrap_or_default());
            }
        }
        context.insert("path".into(), json!(path));
        context.insert("method".into(), json!(method));
        context.insert("status".into(), json!(status));
        context.insert("params".into(), params);
        context.insert("matchedRoute".into(), json!(matched));
    }
    context
}

fn base(event: &RecordedEvent, name: &'static str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("event".into(), json!(name));
    body.insert("createdAt".into(), json!(iso(event.metadata.occurred_at)));
    if let Some(ip) = &event.metadata.ip {
        body.insert("ip".into(), json!(ip));
    }
    if let Some(user_agent) = &event.metadata.user_agent {
        body.insert("userAgent".into(), json!(user_agent));
    }
    body
}

/// Builds the hook event of `event`, if it has one.
pub async fn build(
    db: &impl GenericClient,
    keyring: &Keyring,
    event: &RecordedEvent,
) -> Result<Option<Built>, StoreError> {
    Ok(match event.stream_type.as_str() {
        "interaction" => interaction(db, keyring, event).await?,
        "user" => user(db, keyring, event).await?,
        "role" | "resource" | "organization" | "organization_role" => {
            super::payload_data::build(db, event).await?
        }
        _ => None,
    })
}

/// The user as the users projection showed it at `position`.
async fn user_at(
    db: &impl GenericClient,
    keyring: &Keyring,
    user_id: &str,
    position: i64,
) -> Result<Option<projections::users::UserRow>, StoreError> {
    let facts = history::user_facts(db, keyring, user_id, Until::Position(position)).await?;
    Ok(projections::users::fold_history(user_id, &facts)?)
}

/// Logto's `userInfoSelectFields`: the user object without `hasPassword`.
fn user_info(row: projections::users::UserRow) -> Value {
    let mut user = serde_json::to_value(UserResponse::from_row(row, false)).unwrap_or_default();
    if let Value::Object(fields) = &mut user {
        fields.remove("hasPassword");
    }
    user
}

async fn application(db: &impl GenericClient, id: &str) -> Result<Value, StoreError> {
    Ok(projections::applications::by_id(db, id)
        .await?
        .map_or(Value::Null, |app| {
            json!({"id": app.id, "type": app.app_type, "name": app.name,
                   "description": app.description})
        }))
}

/// What an interaction hook says happened: the hook event, Logto's interaction event name, who,
/// through which app, in which session.
struct Submitted<'a> {
    name: &'static str,
    interaction_event: &'a str,
    user_id: &'a str,
    application_id: Option<&'a str>,
    session_id: &'a str,
}

/// Logto's interaction payload.
async fn interaction_payload(
    db: &impl GenericClient,
    keyring: &Keyring,
    event: &RecordedEvent,
    submitted: Submitted<'_>,
) -> Result<Map<String, Value>, StoreError> {
    let Submitted {
        name,
        interaction_event,
        user_id,
        application_id,
        session_id,
    } = submitted;
    let mut body = Map::new();
    body.insert("event".into(), json!(name));
    body.insert("createdAt".into(), json!(iso(event.metadata.occurred_at)));
    body.insert("interactionEvent".into(), json!(interaction_event));
    body.insert("sessionId".into(), json!(session_id));
    body.insert("userAgent".into(), json!(event.metadata.user_agent));
    body.insert("userIp".into(), json!(event.metadata.ip));
    body.insert("userId".into(), json!(user_id));
    let user = user_at(db, keyring, user_id, event.position).await?;
    body.insert("user".into(), user.map_or(Value::Null, user_info));
    if let Some(application_id) = application_id {
        body.insert("application".into(), application(db, application_id).await?);
    }
    Ok(body)
}

async fn interaction(
    db: &impl GenericClient,
    keyring: &Keyring,
    event: &RecordedEvent,
) -> Result<Option<Built>, StoreError> {
    let decoded: InteractionEventRecord = domain::decode(&event.event_type, &event.payload)?;
    let subject = domain::interaction::subject(&event.stream_id);
    Ok(match decoded {
        InteractionEventRecord::Submitted {
            user_id,
            event: kind,
            application_id,
        } => {
            let name = match kind {
                InteractionEvent::SignIn => "PostSignIn",
                InteractionEvent::Register => "PostRegister",
                InteractionEvent::ForgotPassword => "PostResetPassword",
            };
            let submitted = Submitted {
                name,
                interaction_event: kind.as_str(),
                user_id: &user_id,
                application_id: Some(&application_id),
                session_id: &event.stream_id,
            };
            let body = interaction_payload(db, keyring, event, submitted).await?;
            Some(Built {
                event: name,
                subject: user_id,
                body,
            })
        }
        InteractionEventRecord::IdentifierLocked { identifier, .. } => {
            let mut body = base(event, "Identifier.Lockout");
            body.insert("sessionId".into(), json!(event.stream_id));
            body.insert("type".into(), json!(identifier.kind));
            body.insert("value".into(), json!(identifier.value));
            Some(Built {
                event: "Identifier.Lockout",
                subject,
                body,
            })
        }
        InteractionEventRecord::MessageRateLimited { recipient } => {
            let mut body = base(event, "Message.RateLimited");
            body.insert("sessionId".into(), json!(event.stream_id));
            body.insert("action".into(), json!("VerificationCodeSend"));
            body.insert("recipient".into(), json!(recipient));
            Some(Built {
                event: "Message.RateLimited",
                subject,
                body,
            })
        }
        InteractionEventRecord::Started { .. }
        | InteractionEventRecord::EventChanged { .. }
        | InteractionEventRecord::Verified(_)
        | InteractionEventRecord::VerificationFailed(_)
        | InteractionEventRecord::Identified { .. }
        | InteractionEventRecord::UserRegistered { .. }
        | InteractionEventRecord::Completed { .. }
        | InteractionEventRecord::SessionContinued { .. }
        | InteractionEventRecord::Consented { .. }
        | InteractionEventRecord::ConsentDenied {}
        | InteractionEventRecord::MfaEnrolmentStarted { .. }
        | InteractionEventRecord::MfaEnrolmentConfirmed { .. }
        | InteractionEventRecord::MfaBound { .. }
        | InteractionEventRecord::MfaSkipped {} => None,
    })
}

async fn user(
    db: &impl GenericClient,
    keyring: &Keyring,
    event: &RecordedEvent,
) -> Result<Option<Built>, StoreError> {
    let decoded: UserEvent = domain::decode(&event.event_type, &event.payload)?;
    let id = event.stream_id.as_str();
    let params = json!({ "userId": id });
    let (name, method, matched, status, params) = match &decoded {
        UserEvent::Created(_) => ("User.Created", "POST", "/users", 200, json!({})),
        UserEvent::Updated(_) => ("User.Data.Updated", "PATCH", "/users/:userId", 200, params),
        UserEvent::CustomDataMerged { .. } => (
            "User.Data.Updated",
            "PATCH",
            "/users/:userId/custom-data",
            200,
            params,
        ),
        UserEvent::ProfileMerged { .. } => (
            "User.Data.Updated",
            "PATCH",
            "/users/:userId/profile",
            200,
            params,
        ),
        UserEvent::PasswordSet(_) => (
            "User.Data.Updated",
            "PATCH",
            "/users/:userId/password",
            200,
            params,
        ),
        UserEvent::MfaVerificationAdded(_) => (
            "User.Data.Updated",
            "POST",
            "/users/:userId/mfa-verifications",
            200,
            params,
        ),
        UserEvent::MfaVerificationDeleted { id: factor, .. } => (
            "User.Data.Updated",
            "DELETE",
            "/users/:userId/mfa-verifications/:verificationId",
            204,
            json!({ "userId": id, "verificationId": factor }),
        ),
        UserEvent::Deleted {} => ("User.Deleted", "DELETE", "/users/:userId", 204, params),
        UserEvent::Suspended {} | UserEvent::Reactivated {} => (
            "User.SuspensionStatus.Updated",
            "PATCH",
            "/users/:userId/is-suspended",
            200,
            params,
        ),
        UserEvent::PasswordRehashed(_)
        | UserEvent::Erased(_)
        | UserEvent::CustomDataChangeRefused { .. }
        | UserEvent::IdentityLinked { .. }
        | UserEvent::IdentityUnlinked { .. }
        | UserEvent::RolesAssigned { .. }
        | UserEvent::RoleRemoved { .. }
        | UserEvent::PersonalAccessTokenAdded(_)
        | UserEvent::PersonalAccessTokenRenamed { .. }
        | UserEvent::PersonalAccessTokenDeleted { .. }
        | UserEvent::TotpUsed { .. }
        | UserEvent::BackupCodeUsed { .. } => return Ok(None),
    };
    // A deleted user is shown as it was; any other as the event left it.
    let at = if name == "User.Deleted" {
        event.position - 1
    } else {
        event.position
    };
    let Some(row) = user_at(db, keyring, id, at).await? else {
        return Ok(None);
    };
    // A person setting a new password over their old one, in the sign-in experience, reset it.
    if let (UserEvent::PasswordSet(_), Actor::User(_)) = (&decoded, &event.metadata.actor) {
        let before = user_at(db, keyring, id, event.position - 1).await?;
        if before.is_some_and(|b| b.password_digest.is_some()) {
            let submitted = Submitted {
                name: "PostResetPassword",
                interaction_event: "ForgotPassword",
                user_id: id,
                application_id: None,
                session_id: "",
            };
            let body = interaction_payload(db, keyring, event, submitted).await?;
            return Ok(Some(Built {
                event: "PostResetPassword",
                subject: id.to_owned(),
                body,
            }));
        }
    }
    let mut body = base(event, name);
    body.extend(route(event, method, matched, status, params));
    body.insert(
        "data".into(),
        if name == "User.Deleted" {
            user_info(row)
        } else {
            serde_json::to_value(UserResponse::from_row(row, false)).unwrap_or_default()
        },
    );
    Ok(Some(Built {
        event: name,
        subject: id.to_owned(),
        body,
    }))
}

pub(super) fn data_body(
    event: &RecordedEvent,
    name: &'static str,
    route_of: (&str, &str, u16, Value),
    data: Value,
) -> Built {
    let (method, matched, status, params) = route_of;
    let mut body = base(event, name);
    body.extend(route(event, method, matched, status, params));
    body.insert("data".into(), data);
    Built {
        event: name,
        subject: format!("hook_delivery:{}", event.position),
        body,
    }
}
