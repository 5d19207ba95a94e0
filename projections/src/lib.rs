//! The read side: each module folds events into its tables and answers the queries on them.
//! Folds are deterministic (every value comes from the events, never from the clock or a
//! sequence), so `replay` rebuilds exactly what the live appends produced.

pub mod applications;
pub mod connectors;
pub mod custom_data_policy;
pub mod grants;
pub mod hooks;
pub mod id_token_config;
pub mod interactions;
pub mod logs;
pub mod messages;
pub mod one_time_tokens;
pub mod organizations;
pub mod resources;
pub mod roles;
mod rows;
pub mod search;
pub mod sessions;
pub mod sign_in_experience;
pub mod signing_keys;
pub mod token_sets;
pub mod transfer;
pub mod users;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use domain::{CodecError, RecordedEvent};

pub use rows::{Query, Rows, StreamFold, Window, bulk, document, documents, fold_streams, single};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Decode(#[from] CodecError),
    #[error("read-model row does not match its type: {0}")]
    Row(#[from] serde_json::Error),
    /// A bulk write (replay's COPY) stopped before PostgreSQL confirmed it.
    #[error("a bulk write did not finish: {0}")]
    Unfinished(String),
}

#[async_trait]
pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;

    /// The tables this projection alone writes; `replay` truncates and compares them.
    fn tables(&self) -> &'static [&'static str];

    /// Indexes on those tables that no fold reads through (only the API's queries do), by
    /// name; the index of a primary key or unique constraint stands for the constraint. A full
    /// `replay rebuild` drops them before refolding and builds each once at the end, in the
    /// same transaction: one bulk sort instead of a B-tree insert per row. Every name must
    /// exist (the rebuild refuses to run otherwise), so a migration renaming one cannot
    /// silently undo this.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[]
    }

    /// Folds `events` (in position order) into the tables. Called with the events of one command
    /// inside its append transaction, and with large chunks of the log by `replay`: the result
    /// must not depend on how the log is chunked.
    async fn apply(
        &self,
        db: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;
}

/// Every projection, in the order they run. The store applies all of them in each append
/// transaction; replay rebuilds and checks all of them.
pub static ALL: &[&dyn Projection] = &[
    &resources::Resources,
    &roles::Roles,
    &applications::Applications,
    &users::Users,
    &organizations::Organizations,
    &signing_keys::SigningKeys,
    &sign_in_experience::SignInExperiences,
    &custom_data_policy::CustomDataPolicies,
    &id_token_config::IdTokenConfigs,
    &one_time_tokens::OneTimeTokens,
    &connectors::Connectors,
    &token_sets::TokenSets,
    &messages::Messages,
    &hooks::Hooks,
    &interactions::Interactions,
    &sessions::Sessions,
    &grants::Grants,
    &logs::Logs,
];
