//! `POST /api/users/:id/erase` (idledger): erasure under GDPR article 17, by crypto-shredding.
//! Unlike `DELETE /api/users/:id`, which ends the account but keeps its history readable for
//! audit and time travel, erasure also destroys the person's data key: every personal field of
//! every event sealed for them, in the log and in any backup of it, becomes unreadable for good.
//! The erasure itself is an event (`user.erased`, with who erased, from where and the request
//! id), and the non-personal facts (which events, when, by whom) stay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::one_time_token::{OneTimeToken, OneTimeTokenCommand};
use domain::user::UserCommand;
use projections::one_time_tokens::TokenFilter;
use projections::{interactions, one_time_tokens, users};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::http::management::one_time_tokens::email_subject;
use crate::store::Unit;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase_user))
}

/// Erase a user's personal data: the user is deleted (if not already) and their data key
/// destroyed. Irreversible. A deleted user can still be erased; an erased one is not found.
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
    let traces = traces(&state, &id).await?;
    super::depart(
        &state,
        caller,
        &context,
        &id,
        traces,
        UserCommand::Erase,
        "user erased",
    )
    .await
}

/// The person's data sealed under subjects other than their own stream, which the erasure
/// destroys with their key: what they typed in the interactions they signed in through, and
/// what was sent to their primary email (mail, one-time tokens; the address's current key
/// generation). Their one-time tokens are deleted: a row keyed by nothing but the address
/// would otherwise keep it in the clear, and a link for an erased person has no use.
async fn traces(state: &AppState, id: &str) -> Result<Unit, ApiError> {
    let db = state.store.pool().get().await?;
    let mut unit = Unit::new();
    for interaction in interactions::ids_of_user(&db, id).await? {
        unit = unit.shred(domain::interaction::subject(&interaction));
    }
    let email = users::by_id(&db, id)
        .await?
        .and_then(|user| user.primary_email);
    if let Some(email) = email {
        let filter = TokenFilter {
            email: Some(email.clone()),
            status: None,
        };
        for token in one_time_tokens::list(&db, &filter, None).await?.0 {
            unit = unit.then::<OneTimeToken>(&token.id, OneTimeTokenCommand::Delete);
        }
        unit = unit.shred(email_subject(state, &email).await?);
    }
    Ok(unit)
}
