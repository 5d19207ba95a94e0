//! `replay`: the auditors' and analysts' CLI over the event log. It refolds the log into the
//! read models (`rebuild`) or into a scratch schema to prove the live ones match (`check`).

mod check;
mod progress;
mod rebuild;

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
        Err(error @ ReplayError::Differences(_)) => {
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
    }
}
