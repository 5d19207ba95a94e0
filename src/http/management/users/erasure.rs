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

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::interaction::IdentifierType;
use domain::message::{Message, MessageCommand};
use domain::one_time_token::{OneTimeToken, OneTimeTokenCommand};
use domain::patch::Patch;
use domain::user::{Traces, UserCommand, UserEvent, UserPatch};
use projections::{interactions, messages, one_time_tokens, users};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::history::{Until, user_facts};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
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
    let mut addresses = BTreeSet::new();
    for email in addresses_of(&own) {
        // An earlier address of theirs that someone else holds now is that person's.
        let holder = users::by_identifier(&db, IdentifierType::Email, &email, false).await?;
        if holder.is_none_or(|user| user.id == id) {
            addresses.insert(email_subject(state, &email).await?);
        }
    }
    let traces = Traces {
        interactions: interactions::ids_of_user(&db, id).await?,
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

/// Every address the person gave as their primary email over their life. Pure.
fn addresses_of(events: &[UserEvent]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| {
            if let UserEvent::Created(user) = event {
                return user.primary_email.clone();
            }
            if let UserEvent::Updated(UserPatch {
                primary_email: Patch::Value(email),
                ..
            }) = event
            {
                return Some(email.clone());
            }
            None
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use domain::user::NewUser;
    use serde_json::Map;

    use super::*;

    #[test]
    fn every_primary_email_the_person_had_is_an_address_of_theirs() {
        let created = UserEvent::Created(NewUser {
            id: "u1".into(),
            username: None,
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
        let changed = |email: Patch<String>| {
            UserEvent::Updated(UserPatch {
                primary_email: email,
                ..UserPatch::default()
            })
        };
        let events = [
            created,
            changed(Patch::Value("second@example.com".into())),
            changed(Patch::Null),
            changed(Patch::Absent),
            UserEvent::Deleted {},
        ];
        assert_eq!(
            addresses_of(&events),
            BTreeSet::from(["first@example.com".into(), "second@example.com".into()])
        );
    }
}
