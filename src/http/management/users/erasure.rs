//! `POST /api/users/:id/erase` (idledger): erasure under GDPR article 17, by crypto-shredding.
//! Unlike `DELETE /api/users/:id`, which ends the account but keeps its history readable for
//! audit and time travel, erasure also destroys the person's data key: every personal field of
//! every event sealed for them, in the log and in any backup of it, becomes unreadable for good.
//! The erasure itself is an event (`user.erased`, with who erased, from where and the request
//! id), and the non-personal facts (which events, when, by whom) stay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::user::UserCommand;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;

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
    super::depart(
        &state,
        caller,
        &context,
        &id,
        UserCommand::Erase,
        "user erased",
    )
    .await
}
