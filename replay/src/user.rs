//! `replay user <id> [--as-of <moment>]`: the user as `GET /api/users/:id[?asOf=]` shows it,
//! printed as the same JSON. As of a moment, it is folded from the log with the users
//! projection's own fold, exactly as the API does it.

use idledger::app::Environment;
use idledger::history;
use idledger::http::management::users::UserResponse;
use idledger::store::StoreError;

use crate::ReplayError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The user's id (also of a deleted user, with `--as-of`).
    id: String,
    /// The moment: milliseconds since the epoch or RFC 3339 (to the millisecond), as `asOf`.
    #[arg(long)]
    as_of: Option<String>,
}

pub async fn run(environment: &Environment, args: &Args) -> Result<(), ReplayError> {
    let db = environment.pool.get().await?;
    let row = match &args.as_of {
        Some(text) => {
            let at = history::parse_instant(text).ok_or_else(|| {
                ReplayError::Usage(format!(
                    "{text:?} is not a moment: give milliseconds since the epoch or an RFC 3339 \
                     date-time"
                ))
            })?;
            history::user_as_of(&db, &environment.keyring, &args.id, at).await?
        }
        None => projections::users::by_id(&db, &args.id)
            .await
            .map_err(StoreError::from)?,
    };
    let row = row.ok_or_else(|| ReplayError::NotFound(format!("user {:?}", args.id)))?;
    let json = serde_json::to_string_pretty(&UserResponse::from_row(row, false))
        .map_err(|e| ReplayError::Output(e.into()))?;
    println!("{json}");
    Ok(())
}
