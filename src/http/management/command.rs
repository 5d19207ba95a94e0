//! Running one command on one stream as the caller, as most Management API writes do.

use domain::Aggregate;

use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;

/// Runs `command` on the `A` stream `id`, recorded as the caller's, from the request's address.
/// A refusal because the stream does not exist names it as Logto does: "The application with ID
/// `…` does not exist." (the aggregate's type is Logto's entity name).
pub async fn execute<A>(
    state: &AppState,
    caller: Caller,
    context: &RequestContext,
    id: &str,
    command: A::Command,
) -> Result<(), ApiError>
where
    A: Aggregate,
    A::Command: Clone + Sync,
{
    state
        .store
        .execute::<A>(id, command, &context.metadata(caller.actor))
        .await
        .map_err(|e| ApiError::from(e).about(A::TYPE, id))?;
    Ok(())
}
