use std::process::ExitCode;

use clap::Parser;
use idledger::config::Config;

#[derive(Parser)]
#[command(
    name = "idledger",
    version,
    about = "Event-sourced identity server (Logto-compatible)"
)]
enum Cli {
    /// Run the server (with a managed PostgreSQL under the data folder unless DATABASE_URL is set).
    Serve(Config),
}

fn main() -> ExitCode {
    let Cli::Serve(config) = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // `block_on` keeps the managed cluster's parent (this thread) alive for the whole run.
    match runtime.block_on(idledger::app::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "idledger stopped");
            eprintln!("idledger: {error}");
            ExitCode::FAILURE
        }
    }
}
