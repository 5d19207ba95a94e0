//! Settings, all from the environment (or the matching flag), in Logto's names where Logto has
//! one (`PORT`, `ENDPOINT`, `DATABASE_URL`).

use std::path::PathBuf;

use crate::sentinel::RateLimit;

#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Port to listen on; 0 picks a free one (the chosen address is logged).
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "IDLEDGER_BIND", default_value = "0.0.0.0")]
    pub bind: String,
    /// Public base URL; the OIDC issuer is `<ENDPOINT>/oidc`. Default `http://localhost:<port>`.
    #[arg(long, env = "ENDPOINT")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub storage: Storage,
    /// Client id of the machine-to-machine app `serve` ensures, with Management API access.
    #[arg(long, env = "IDLEDGER_BOOTSTRAP_CLIENT_ID")]
    pub bootstrap_client_id: Option<String>,
    #[arg(long, env = "IDLEDGER_BOOTSTRAP_CLIENT_SECRET", hide_env_values = true)]
    pub bootstrap_client_secret: Option<String>,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy you control).
    #[arg(long, env = "TRUST_PROXY", default_value_t = false)]
    pub trust_proxy: bool,
    /// Password sign-in attempts allowed per client IP, as `<attempts>/<seconds>` (fixed
    /// windows, counted once across nodes); more are answered 429 with `Retry-After`.
    #[arg(long, env = "IDLEDGER_SIGN_IN_RATE", default_value = "50/300")]
    pub sign_in_rate: RateLimit,
    /// How long (seconds) a webhook delivery is retried, with exponential back-off, before it
    /// is given up.
    #[arg(long, env = "IDLEDGER_WEBHOOK_RETRY_PERIOD", default_value_t = 86_400)]
    pub webhook_retry_period: u64,
    /// How often (seconds) the server signs a checkpoint of the log's hash chain head, when the
    /// head moved; 0 turns the periodic checkpoints off (`POST /api/audit/checkpoints` and
    /// `replay checkpoint` still record them on demand).
    #[arg(long, env = "IDLEDGER_CHECKPOINT_INTERVAL", default_value_t = 3_600)]
    pub checkpoint_interval: u64,
    /// Most client connections served at once; one more is answered 429 and closed.
    #[arg(long, env = "IDLEDGER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, counted from the end of the previous
    /// answer on a kept-alive connection: a slow client (slowloris) or an idle one cannot hold
    /// a connection, and so a connection slot, longer than this. Node's (Logto's) default.
    #[arg(long, env = "IDLEDGER_HEADER_READ_TIMEOUT", default_value_t = 60)]
    pub header_read_timeout: u64,
}

/// Where the data lives: the database and the key that unlocks its secrets. Shared by the
/// server and the replay CLI.
#[derive(clap::Args, Debug, Clone)]
pub struct Storage {
    /// An existing PostgreSQL database. Without it, a managed cluster runs under the data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where the managed cluster, the generated key-encryption key and the bootstrap
    /// credentials live.
    #[arg(long, env = "IDLEDGER_DATA_DIR", default_value = "./idledger-data")]
    pub data_dir: PathBuf,
    /// Base64 of the 32-byte key-encryption key. Without it one is generated into the data folder.
    #[arg(long, env = "IDLEDGER_KEK", hide_env_values = true)]
    pub kek: Option<String>,
    /// Database connections per process.
    #[arg(long, env = "IDLEDGER_DB_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,
    /// Server settings for the managed cluster, `name=value`, separated by `;` in the
    /// environment; they override idledger's own (`postgres::MANAGED_SETTINGS`), e.g.
    /// `wal_level=replica;max_wal_senders=10` to base-backup or replicate it.
    #[arg(
        long = "postgres-setting",
        env = "IDLEDGER_POSTGRES_SETTINGS",
        value_delimiter = ';',
        value_parser = setting
    )]
    pub postgres_settings: Vec<(String, String)>,
}

/// `name=value`, as PostgreSQL's `-c` takes it.
fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("{text:?} is not a `name=value` setting")),
    }
}

impl Config {
    pub fn endpoint(&self, port: u16) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => format!("http://localhost:{port}"),
        }
    }
}
