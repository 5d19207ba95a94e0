//! Building the server: database (managed or given), migrations, projections caught up, keys,
//! bootstrap, then the HTTP listener until SIGINT or SIGTERM.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::ops::Deref;
use std::os::unix::fs::OpenOptionsExt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_postgres::NoTls;

use crate::config::{Config, Storage};
use crate::crypto::signing::SigningKeys;
use crate::crypto::{CryptoError, Keyring};
use crate::http::extract::TrustProxy;
use crate::postgres::{Cluster, PostgresError};
use crate::store::{EventStore, StoreError};

/// The database the managed cluster serves.
pub const DATABASE: &str = "idledger";
/// How long a request waits for a database connection before answering 503.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the log followers to put down their work.
const FOLLOWERS_STOP: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error("database: {0}")]
    Database(String),
    #[error("key-encryption key: {0}")]
    Kek(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

impl From<tokio_postgres::Error> for AppError {
    fn from(error: tokio_postgres::Error) -> AppError {
        AppError::Database(error.to_string())
    }
}

impl From<CryptoError> for AppError {
    fn from(error: CryptoError) -> AppError {
        AppError::Kek(error.to_string())
    }
}

/// What every entry point (server, replay, benchmarks) opens first: the database, migrated and
/// with projections caught up, and the keyring.
pub struct Environment {
    /// Keeps the managed cluster running for as long as the environment lives.
    pub cluster: Option<Cluster>,
    pub pool: Pool,
    pub keyring: Arc<Keyring>,
}

impl Environment {
    /// Must run on a thread that outlives the cluster (the main thread): the cluster is stopped
    /// by the kernel when the thread that started it ends.
    pub async fn open(config: &Storage) -> Result<Environment, AppError> {
        let keyring = Arc::new(load_keyring(config)?);
        let (cluster, url) = match &config.database_url {
            Some(url) => (None, url.clone()),
            None => {
                let cluster = Cluster::start(&config.data_dir, &config.postgres_settings)?;
                ensure_database(&cluster.url("postgres"), DATABASE).await?;
                let url = cluster.url(DATABASE);
                (Some(cluster), url)
            }
        };
        let pool = pool(&url, config.pool_size)?;
        let mut client = connect(&url).await?;
        crate::migrate::apply(&mut client).await?;
        crate::store::catch_up(&pool, &keyring).await?;
        Ok(Environment {
            cluster,
            pool,
            keyring,
        })
    }
}

pub fn pool(url: &str, size: usize) -> Result<Pool, AppError> {
    let config =
        tokio_postgres::Config::from_str(url).map_err(|e| AppError::Database(e.to_string()))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| AppError::Database(e.to_string()))
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client, AppError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "database connection closed");
        }
    });
    Ok(client)
}

pub async fn ensure_database(admin_url: &str, name: &str) -> Result<(), AppError> {
    let client = connect(admin_url).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // Names are our own constants, never user input.
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
    }
    Ok(())
}

fn load_keyring(config: &Storage) -> Result<Keyring, AppError> {
    if let Some(kek) = &config.kek {
        return Ok(Keyring::from_base64(kek)?);
    }
    let path = config.data_dir.join("kek");
    if path.exists() {
        let kek = fs::read_to_string(&path)
            .map_err(|e| AppError::Io(format!("reading {}: {e}", path.display())))?;
        return Ok(Keyring::from_base64(&kek)?);
    }
    fs::create_dir_all(&config.data_dir)
        .map_err(|e| AppError::Io(format!("creating {}: {e}", config.data_dir.display())))?;
    let kek = Keyring::generate_kek_base64()?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| AppError::Io(format!("writing {}: {e}", path.display())))?;
    file.write_all(kek.as_bytes())
        .map_err(|e| AppError::Io(format!("writing {}: {e}", path.display())))?;
    tracing::warn!(
        path = %path.display(),
        "generated a key-encryption key; back it up (losing it loses every secret and all \
         personal data) or set IDLEDGER_KEK"
    );
    Ok(Keyring::from_base64(&kek)?)
}

pub struct Shared {
    pub store: EventStore,
    pub keys: SigningKeys,
    pub endpoint: String,
    /// `<endpoint>/oidc`, the `iss` of every token.
    pub issuer: String,
    pub trust_proxy: bool,
    pub metrics: Option<PrometheusHandle>,
    /// Password sign-in attempts allowed per client IP.
    pub sign_in_rate: crate::sentinel::RateLimit,
    /// This node's own listening address as a base URL: the console calls the Management API
    /// here, whatever proxy `endpoint` names.
    pub loopback: String,
    /// The key of what the console relays over `loopback` (see `TrustProxy`).
    pub relay_key: Arc<str>,
}

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for TrustProxy {
    fn from_ref(state: &AppState) -> TrustProxy {
        TrustProxy {
            forwarded_for: state.trust_proxy,
            relay_key: state.relay_key.clone(),
        }
    }
}

/// An unspecified bind address (`0.0.0.0`, `::`) is reached through the loopback interface.
fn loopback_base(address: SocketAddr) -> String {
    let ip = match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, address.port()))
}

pub async fn serve(config: Config) -> Result<(), AppError> {
    crate::telemetry::init_logging();
    let metrics = crate::telemetry::init_metrics();
    let environment = Environment::open(&config.storage).await?;
    let listener = TcpListener::bind((config.bind.as_str(), config.port))
        .await
        .map_err(|e| AppError::Io(format!("binding {}:{}: {e}", config.bind, config.port)))?;
    let address = listener
        .local_addr()
        .map_err(|e| AppError::Io(e.to_string()))?;
    let store = EventStore::new(environment.pool.clone(), environment.keyring.clone());
    crate::bootstrap::run(
        &store,
        crate::bootstrap::BootstrapSettings {
            endpoint: &config.endpoint(address.port()),
            client_id: config.bootstrap_client_id.as_deref(),
            client_secret: config.bootstrap_client_secret.as_deref(),
            data_dir: &config.storage.data_dir,
        },
    )
    .await?;
    let keys = SigningKeys::load(environment.pool.clone(), environment.keyring.clone()).await?;
    let endpoint = config.endpoint(address.port());
    let state = AppState(Arc::new(Shared {
        store,
        keys,
        issuer: format!("{endpoint}/oidc"),
        endpoint,
        trust_proxy: config.trust_proxy,
        metrics,
        sign_in_rate: config.sign_in_rate,
        loopback: loopback_base(address),
        relay_key: crate::crypto::ids::secret()?.into(),
    }));
    let (stop_followers, followers_stop) = tokio::sync::watch::channel(false);
    if config.checkpoint_interval > 0 {
        tokio::spawn(crate::audit::schedule(
            environment.pool.clone(),
            environment.keyring.clone(),
            Duration::from_secs(config.checkpoint_interval),
            followers_stop.clone(),
        ));
    }
    let mail = crate::mail::start(
        state.store.clone(),
        environment.keyring.clone(),
        followers_stop.clone(),
    )
    .await?;
    let webhooks = crate::webhooks::start(
        state.store.clone(),
        environment.keyring.clone(),
        followers_stop,
        Duration::from_secs(config.webhook_retry_period),
    )
    .await?;
    tracing::info!(%address, endpoint = %state.endpoint, "listening");
    let app = crate::http::router(state);
    let limits = crate::http::listener::Limits {
        max_connections: config.max_connections,
        header_read_timeout: Duration::from_secs(config.header_read_timeout),
    };
    let served = crate::http::listener::serve(listener, app, limits, shutdown_signal())
        .await
        .map_err(|e| AppError::Io(e.to_string()));
    // A follower stopped mid-batch leaves its checkpoint behind: the batch is redone later.
    let _ = stop_followers.send(true);
    if tokio::time::timeout(FOLLOWERS_STOP, mail).await.is_err() {
        tracing::warn!("the mail follower did not stop in time");
    }
    if tokio::time::timeout(FOLLOWERS_STOP, webhooks)
        .await
        .is_err()
    {
        tracing::warn!("the webhook follower did not stop in time");
    }
    served?;
    tracing::info!("stopped serving; stopping the database");
    drop(environment);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
