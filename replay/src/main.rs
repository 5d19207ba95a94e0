//! `replay`: the auditors' and analysts' CLI over the event log. It refolds the log into the
//! read models (`rebuild`) or into a scratch schema to prove the live ones match (`check`), and
//! reads it for auditors and analysts (`export`, `stats`, `user`, `report`, `rebuild-as-of`).

mod as_of;
mod chart;
mod check;
mod export;
mod progress;
mod rebuild;
mod report;
mod scan;
mod stats;
mod transfer;
mod user;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use idledger::app::{AppError, Environment};
use idledger::config::Storage;
use idledger::store::StoreError;

#[derive(Parser)]
#[command(name = "replay", version, about = "Replay the idledger event log")]
struct Cli {
    #[command(flatten)]
    storage: Storage,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drop and refold read models from the log (all, or the named projections).
    Rebuild { projections: Vec<String> },
    /// Refold every read model into a scratch schema and diff it row by row against the live
    /// tables; exits 1 when they differ.
    Check,
    /// Write events, oldest first, as JSON Lines (the shape of `GET /api/events`) or CSV, to
    /// stdout or a file, streaming in constant memory.
    Export(export::Args),
    /// Count events per type per day (UTC).
    Stats(scan::Filter),
    /// Print a user as `GET /api/users/:id` shows it, now or as of a moment.
    User(user::Args),
    /// Write an HTML audit report of a period: sign-ins and failures per day, admin changes per
    /// actor, suspensions, erasures, lockouts, token exchanges.
    Report(report::Args),
    /// Fold every event up to a moment into tables created like the live ones in a separate
    /// schema, for analysts.
    RebuildAsOf(as_of::Args),
    /// Write every user as JSON Lines (password digests, identities, roles and organization
    /// memberships by name) for `import-users` on another instance. The file holds credentials.
    ExportUsers(transfer::ExportArgs),
    /// Import users written by `export-users`: ids kept, everything decided before anything is
    /// appended, missing roles or organizations refuse the whole import, users already here are
    /// skipped.
    ImportUsers(transfer::ImportArgs),
    /// Walk the hash chain and check the signed checkpoints; prints every finding, the first
    /// position first, and exits 1 when the log is not what was written.
    Verify(verify::Args),
    /// Print the public keys that sign checkpoints (PEM), to keep outside the database for
    /// `verify --trusted-key`.
    CheckpointKey,
    /// Sign the chain's head now (as the server does periodically and on
    /// `POST /api/audit/checkpoints`).
    Checkpoint,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Environment(#[from] AppError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown projection {0:?} (known: {1})")]
    UnknownProjection(String, String),
    #[error("{0} difference(s) between the live read models and the log")]
    Differences(usize),
    #[error("{0}")]
    Usage(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Transfer(#[from] idledger::transfer::TransferError),
    #[error("the log fails verification: {} finding(s), the first at position {}",
        .0.len(), .0.first().map_or(0, idledger::audit::Finding::position))]
    Tampered(Vec<idledger::audit::Finding>),
    #[error("{0}")]
    Audit(String),
}

impl From<tokio_postgres::Error> for ReplayError {
    fn from(error: tokio_postgres::Error) -> ReplayError {
        ReplayError::Store(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for ReplayError {
    fn from(error: deadpool_postgres::PoolError) -> ReplayError {
        ReplayError::Store(error.into())
    }
}

/// See replay/Cargo.toml: the refold's allocation pattern is costly under glibc malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("replay: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ (ReplayError::Differences(_) | ReplayError::Tampered(_))) => {
            eprintln!("replay: {error}");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("replay: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), ReplayError> {
    let environment = Environment::open(&cli.storage).await?;
    match cli.command {
        Command::Rebuild { projections } => rebuild::run(&environment, &projections).await,
        Command::Check => check::run(&environment).await,
        Command::Export(args) => export::run(&environment, args).await,
        Command::Stats(filter) => stats::run(&environment, &filter).await,
        Command::User(args) => user::run(&environment, &args).await,
        Command::Report(args) => report::run(&environment, &args).await,
        Command::RebuildAsOf(args) => as_of::run(&environment, &args).await,
        Command::ExportUsers(args) => transfer::export(&environment, &args).await,
        Command::ImportUsers(args) => transfer::import(&environment, &args).await,
        Command::Verify(args) => verify::run(&environment, &args).await,
        Command::CheckpointKey => verify::checkpoint_key(&environment).await,
        Command::Checkpoint => verify::checkpoint(&environment).await,
    }
}
