//! `POST /api/users/:id/erase` (idledger): erasure under GDPR article 17, by crypto-shredding.
//! Unlike `DELETE /api/users/:id`, which ends the account but keeps its history readable for
//! audit and time travel, erasure also destroys the person's data key: every personal field of
//! every event sealed for them, in the log and in any backup of it, becomes unreadable for good.
//! The erasure itself is an event (`user.erased`, with who erased, from where and the request
//! id), and the non-personal facts (which events, when, by whom) stay.
//!
//! What the person left under subjects other than their own stream goes too: what they typed in
//! the interactions they signed in through (`interaction:<id>`), and what was sent to their
//! addresses (`email:<hash>`: mail, one-time tokens). `user.erased` names those traces by
//! non-personal ids (`domain::user::Traces`); the store destroys their keys in the same
//! transaction and the read models forget what they copied of them.
//!
//! Their identifiers are every username, primary email and phone they had, every email they
//! typed in the interactions tied to them, and every address those interactions mailed a code
//! to (read by opening those interactions and messages, whose keys are still whole), less any
//! another account holds now. Their addresses are those emails. Their interactions are those
//! tied to them, and those that typed one of their identifiers (`identifierKey`) or mailed a
//! code to one of their addresses (`recipientHash`): keyed hashes in the clear, so an
//! interaction abandoned before it named an account is found without opening every one.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::interaction::{Failed, Identifier, IdentifierType, InteractionEventRecord, Verified};
use domain::message::{Message, MessageCommand, MessageEvent};
use domain::one_time_token::{OneTimeToken, OneTimeTokenCommand};
use domain::patch::Patch;
use domain::user::{Traces, UserCommand, UserEvent};
use domain::verification_code::VerificationCodeEvent;
use projections::{interactions, messages, one_time_tokens, users};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::history::{self, Until, user_facts};
use crate::http::auth::Caller;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::http::experience::flow::identifier_key;
use crate::http::extract::RequestContext;
use crate::http::management::one_time_tokens::email_subject;
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase_user))
}

/// Erase a user's personal data: the user is deleted (if not already) and their data key
/// destroyed, with the keys of what they typed in sign-ins and of what was sent to their
/// addresses. Irreversible. A deleted user can still be erased; an erased one is not found.
#[utoipa::path(post, path = "/api/users/{id}/erase", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 204), (status = 400), (status = 404)),
    security(("bearer" = [])))]
async fn erase_user(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (traces, unit) = traces(&state, &context, &id).await?;
    super::depart(
        &state,
        caller,
        &context,
        &id,
        unit,
        UserCommand::Erase(traces),
        "user erased",
    )
    .await
}

/// The person's traces under other subjects, and the steps that close them before their keys
/// go: their one-time tokens are deleted (a link for an erased person has no use, and the row
/// would keep the address), and mail still queued to their addresses is abandoned (nothing
/// could be recorded about it once the address's key is gone). These steps come first in the
/// unit, so in every refold their entries precede the erasure that blanks them.
async fn traces(
    state: &AppState,
    context: &RequestContext,
    id: &str,
) -> Result<(Traces, Unit), ApiError> {
    let db = state.store.pool().get().await?;
    let facts = user_facts(&db, state.store.keyring(), id, Until::Position(i64::MAX)).await?;
    let own: Vec<UserEvent> = facts
        .iter()
        .filter(|e| e.stream_type == "user" && e.stream_id == id && !e.erased)
        .map(|e| domain::decode(&e.event_type, &e.payload))
        .collect::<Result<_, _>>()
        .map_err(crate::store::StoreError::from)?;
    let keyring = state.store.keyring();
    let tied = interactions::ids_of_user(&db, id).await?;
    let mut candidates = identifiers_of(&own);
    let scopes: Vec<String> = tied
        .iter()
        .map(|i| domain::interaction::subject(i))
        .collect();
    let codes = decoded(&db, keyring, "verification_code", &scopes).await?;
    let mailed = recipients(&decoded(&db, keyring, "message", &mailed_code_ids(&codes)).await?);
    let typed = typed_emails(&decoded(&db, keyring, "interaction", &tied).await?);
    for email in typed.into_iter().chain(mailed) {
        candidates.push(Identifier {
            kind: IdentifierType::Email,
            value: email,
        });
    }
    let mut addresses = BTreeSet::new();
    let mut recipient_hashes = Vec::new();
    let mut identifier_keys = BTreeSet::new();
    for identifier in candidates {
        // An earlier identifier of theirs that someone else holds now is that person's.
        let holder = users::by_identifier(&db, identifier.kind, &identifier.value, false).await?;
        if holder.is_some_and(|user| user.id != id) {
            continue;
        }
        identifier_keys.insert(identifier_key(keyring, identifier.kind, &identifier.value));
        if identifier.kind == IdentifierType::Email {
            addresses.insert(email_subject(state, &identifier.value).await?);
            recipient_hashes.push(codes::recipient_hash(state, &identifier.value));
        }
    }
    let identifier_keys: Vec<String> = identifier_keys.into_iter().collect();
    let mut interactions: BTreeSet<String> = tied.into_iter().collect();
    interactions.extend(history::interactions_typing(&db, &identifier_keys).await?);
    let prefix = domain::interaction::subject("");
    interactions.extend(
        history::code_scopes_sent_to(&db, &recipient_hashes)
            .await?
            .into_iter()
            .filter_map(|scope| scope.strip_prefix(&prefix).map(str::to_owned)),
    );
    let traces = Traces {
        interactions: interactions.into_iter().collect(),
        addresses: addresses.into_iter().collect(),
        ..Traces::default()
    };
    let sealed: Vec<String> = std::iter::once(id.to_owned())
        .chain(traces.subjects())
        .collect();
    let store = &state.store;
    let mut unit = Unit::new();
    let mut tokens = Vec::new();
    for token in store.streams_sealed_for("one_time_token", &sealed).await? {
        if one_time_tokens::by_id(&db, &token).await?.is_some() {
            unit = unit.then::<OneTimeToken>(&token, OneTimeTokenCommand::Delete);
        }
        tokens.push(token);
    }
    for message in store.streams_sealed_for("message", &sealed).await? {
        if messages::by_id(&db, &message)
            .await?
            .is_some_and(|row| row.status == "queued")
        {
            unit = unit.then::<Message>(
                &message,
                MessageCommand::Abandon {
                    reason: "recipient erased".to_owned(),
                    at: context.now_ms(),
                },
            );
        }
    }
    let traces = Traces {
        one_time_tokens: tokens,
        hook_deliveries: store.streams_sealed_for("hook_delivery", &sealed).await?,
        ..traces
    };
    Ok((traces, unit))
}

/// The events of the named streams that can still be read (an erased one has nothing left to
/// find).
async fn decoded<E: domain::Event>(
    db: &impl deadpool_postgres::GenericClient,
    keyring: &crate::crypto::Keyring,
    stream_type: &str,
    ids: &[String],
) -> Result<Vec<E>, ApiError> {
    let events = history::streams(db, keyring, stream_type, ids).await?;
    Ok(events
        .iter()
        .filter(|e| !e.erased)
        .map(|e| domain::decode(&e.event_type, &e.payload))
        .collect::<Result<_, _>>()
        .map_err(crate::store::StoreError::from)?)
}

/// Every email typed in these interaction events (verified or not). Pure.
fn typed_emails(events: &[InteractionEventRecord]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| {
            if let InteractionEventRecord::Verified(Verified { identifier, .. })
            | InteractionEventRecord::VerificationFailed(Failed { identifier, .. }) = event
            {
                return identifier.as_ref();
            }
            None
        })
        .filter(|identifier| identifier.kind == IdentifierType::Email)
        .map(|identifier| identifier.value.clone())
        .collect()
}

/// The ids of the codes these events mailed (each also the id of the message carrying it). Pure.
fn mailed_code_ids(events: &[VerificationCodeEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            VerificationCodeEvent::Sent(issued) => Some(issued.code_id.clone()),
            VerificationCodeEvent::AttemptFailed { .. }
            | VerificationCodeEvent::Verified { .. } => None,
        })
        .collect()
}

/// The addresses these messages were queued to. Pure.
fn recipients(events: &[MessageEvent]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| match event {
            MessageEvent::Queued(message) if !message.to.is_empty() => Some(message.to.clone()),
            MessageEvent::Queued(_)
            | MessageEvent::AttemptFailed { .. }
            | MessageEvent::Sent { .. }
            | MessageEvent::Abandoned { .. } => None,
        })
        .collect()
}

fn new_value(patch: &Patch<String>) -> Option<String> {
    match patch {
        Patch::Value(value) => Some(value.clone()),
        Patch::Absent | Patch::Null => None,
    }
}

/// Every identifier the person had over their life (username, primary email, primary phone),
/// each once. Pure.
fn identifiers_of(events: &[UserEvent]) -> Vec<Identifier> {
    let mut identifiers: Vec<Identifier> = Vec::new();
    for event in events {
        let (username, email, phone) = if let UserEvent::Created(user) = event {
            (
                user.username.clone(),
                user.primary_email.clone(),
                user.primary_phone.clone(),
            )
        } else if let UserEvent::Updated(patch) = event {
            (
                new_value(&patch.username),
                new_value(&patch.primary_email),
                new_value(&patch.primary_phone),
            )
        } else {
            continue;
        };
        let typed = [
            (IdentifierType::Username, username),
            (IdentifierType::Email, email),
            (IdentifierType::Phone, phone),
        ];
        for (kind, value) in typed {
            let Some(value) = value else { continue };
            let identifier = Identifier { kind, value };
            if !identifiers.contains(&identifier) {
                identifiers.push(identifier);
            }
        }
    }
    identifiers
}

#[cfg(test)]
mod tests {
    use domain::interaction::{Identifier, VerificationKind};
    use domain::message::{NewMessage, UsageType};
    use domain::user::{NewUser, UserPatch};
    use domain::verification_code::IssuedCode;
    use serde_json::{Map, Value};

    use super::*;

    fn typed(kind: IdentifierType, value: &str) -> Option<Identifier> {
        Some(Identifier {
            kind,
            value: value.into(),
        })
    }

    #[test]
    fn the_emails_typed_in_an_interaction_count_whether_or_not_they_verified() {
        let events = [
            InteractionEventRecord::VerificationFailed(Failed {
                kind: VerificationKind::Password,
                identifier: typed(IdentifierType::Email, "mistyped@example.com"),
                identifier_key: None,
                user_id: None,
                reason: "session.invalid_credentials".into(),
            }),
            InteractionEventRecord::Verified(Verified {
                verification_id: "v1".into(),
                kind: VerificationKind::EmailVerificationCode,
                identifier: typed(IdentifierType::Email, "verified@example.com"),
                identifier_key: None,
                user_id: None,
                one_time_token_id: None,
            }),
            InteractionEventRecord::Verified(Verified {
                verification_id: "v2".into(),
                kind: VerificationKind::Password,
                identifier: typed(IdentifierType::Username, "not-an-address"),
                identifier_key: None,
                user_id: Some("u1".into()),
                one_time_token_id: None,
            }),
            InteractionEventRecord::MfaSkipped {},
        ];
        assert_eq!(
            typed_emails(&events),
            BTreeSet::from(["mistyped@example.com".into(), "verified@example.com".into()])
        );
    }

    #[test]
    fn the_codes_an_interaction_mailed_lead_to_their_blank_or_whole_recipients() {
        let codes = [
            VerificationCodeEvent::Sent(IssuedCode {
                code_id: "c1".into(),
                recipient_hash: "h".into(),
                code_hash: "x".into(),
                usage_type: UsageType::SignIn,
                expires_at: 0,
                max_attempts: 10,
            }),
            VerificationCodeEvent::AttemptFailed {
                code_id: "c1".into(),
            },
            VerificationCodeEvent::Verified {
                code_id: "c1".into(),
            },
        ];
        assert_eq!(mailed_code_ids(&codes), vec!["c1".to_owned()]);
        let queued = |to: &str| {
            MessageEvent::Queued(NewMessage {
                id: "c1".into(),
                to: to.into(),
                usage_type: UsageType::SignIn,
                ui_locales: None,
                context: Value::Null,
                code_ref: None,
                expires_at: None,
                subject: "email:h".into(),
            })
        };
        let messages = [
            queued("typed@example.com"),
            // Its address's key was destroyed already.
            queued(""),
            MessageEvent::Sent {
                at: 1,
                code_ref: None,
            },
        ];
        assert_eq!(
            recipients(&messages),
            BTreeSet::from(["typed@example.com".into()])
        );
    }

    #[test]
    fn every_identifier_the_person_had_is_one_of_theirs_once() {
        let created = UserEvent::Created(NewUser {
            id: "u1".into(),
            username: Some("ada".into()),
            primary_email: Some("first@example.com".into()),
            primary_phone: None,
            name: None,
            avatar: None,
            custom_data: Map::new(),
            profile: Map::new(),
            password_digest: None,
            password_algorithm: None,
            role_ids: Vec::new(),
        });
        let changed = |email: Patch<String>, phone: Patch<String>| {
            UserEvent::Updated(UserPatch {
                primary_email: email,
                primary_phone: phone,
                ..UserPatch::default()
            })
        };
        let events = [
            created,
            changed(
                Patch::Value("second@example.com".into()),
                Patch::Value("15550001".into()),
            ),
            changed(Patch::Null, Patch::Null),
            changed(Patch::Absent, Patch::Absent),
            changed(Patch::Value("first@example.com".into()), Patch::Absent),
            UserEvent::Deleted {},
        ];
        let typed = |kind, value: &str| Identifier {
            kind,
            value: value.into(),
        };
        assert_eq!(
            identifiers_of(&events),
            vec![
                typed(IdentifierType::Username, "ada"),
                typed(IdentifierType::Email, "first@example.com"),
                typed(IdentifierType::Email, "second@example.com"),
                typed(IdentifierType::Phone, "15550001"),
            ]
        );
    }
}
