//! Starts the real server for black-box tests: one managed PostgreSQL cluster per test run (the
//! same code `idledger serve` uses), one database per test cloned from a migrated template, and
//! the `idledger` binary on an ephemeral port.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idledger::postgres::Cluster;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Fixed for tests so a dump can be checked for what it must not contain.
pub const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const BOOTSTRAP_ID: &str = "bootstrap-m2m";
pub const BOOTSTRAP_SECRET: &str = "bootstrap-secret-for-tests-0123456789";
pub const MANAGEMENT_API: &str = "https://default.logto.app/api";
const TEMPLATE: &str = "idledger_template";

struct Shared {
    /// URL of the cluster's maintenance database, for creating per-test databases.
    admin_url: String,
    run_dir: PathBuf,
    bin_dir: PathBuf,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared() -> &'static Shared {
    let result = SHARED.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        // The cluster dies with the thread that started it (parent-death signal), so it is
        // started on a thread that lives as long as the test process.
        std::thread::spawn(move || {
            let run_dir = workspace()
                .join("target")
                .join("test-runs")
                .join(std::process::id().to_string());
            remove_stale_runs(run_dir.parent());
            let started = Cluster::start(
                &run_dir,
                &[
                    ("fsync", "off"),
                    ("synchronous_commit", "off"),
                    ("full_page_writes", "off"),
                ],
            );
            match started {
                Ok(cluster) => {
                    let shared = Shared {
                        admin_url: cluster.url("postgres"),
                        run_dir: run_dir.clone(),
                        bin_dir: cluster.bin_dir().to_path_buf(),
                    };
                    let template = make_template(&shared);
                    let _ = sender.send(template.map(|()| shared));
                    loop {
                        std::thread::park();
                    }
                }
                Err(error) => {
                    let _ = sender.send(Err(error.to_string()));
                }
            }
        });
        receiver
            .recv()
            .unwrap_or_else(|e| Err(format!("cluster thread died: {e}")))
    });
    match result {
        Ok(shared) => shared,
        Err(error) => panic!("test PostgreSQL cluster unavailable: {error}"),
    }
}

/// Run folders of earlier test processes that are no longer alive.
fn remove_stale_runs(runs: Option<&Path>) {
    let Some(runs) = runs else { return };
    for entry in std::fs::read_dir(runs).into_iter().flatten().flatten() {
        let alive = entry
            .file_name()
            .to_str()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn make_template(shared: &Shared) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        idledger::app::ensure_database(&shared.admin_url, TEMPLATE)
            .await
            .map_err(|e| e.to_string())?;
        let url = shared
            .admin_url
            .replacen("/postgres?", &format!("/{TEMPLATE}?"), 1);
        let mut client = idledger::app::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        idledger::migrate::apply(&mut client)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

pub fn database_url(name: &str) -> String {
    shared()
        .admin_url
        .replacen("/postgres?", &format!("/{name}?"), 1)
}

pub fn pg_bin(tool: &str) -> PathBuf {
    shared().bin_dir.join(tool)
}

/// A fresh database cloned from the migrated template.
pub async fn fresh_database() -> String {
    let shared = shared();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let admin = idledger::app::connect(&shared.admin_url)
        .await
        .expect("connect to the test cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        .await
        .expect("clone the template database");
    name
}

pub struct TestServer {
    pub base: String,
    /// The server's public `ENDPOINT` (issuer = `<endpoint>/oidc`).
    pub endpoint: String,
    pub database: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    child: Child,
    env: Vec<(String, String)>,
    token: tokio::sync::OnceCell<String>,
    location: Location,
}

/// Where a test server's database lives.
#[derive(Clone)]
enum Location {
    /// A database of the suite's shared cluster, by name (`TestServer::database`).
    Shared,
    /// Any PostgreSQL database, given as `DATABASE_URL`.
    Url(String),
    /// The server's own managed cluster under its data folder (no `DATABASE_URL`), as
    /// `idledger serve` runs by default; the server runs in its own process group, so the
    /// cluster can be killed along with it.
    Managed,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    /// Starts a server on a new database with extra environment variables.
    pub async fn start_with(env: &[(&str, &str)]) -> TestServer {
        let database = fresh_database().await;
        let data_dir = shared().run_dir.join(format!("server-{database}"));
        TestServer::spawn(database, data_dir, owned(env), Location::Shared)
    }

    /// Starts a server with its own managed PostgreSQL cluster (initialised on first start).
    pub async fn start_managed(env: &[(&str, &str)]) -> TestServer {
        let name = format!("managed-{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
        TestServer::spawn(
            idledger::app::DATABASE.to_owned(),
            run_dir(&name),
            owned(env),
            Location::Managed,
        )
    }

    /// Starts a server on the database at `url`, whose cluster the test controls.
    pub async fn start_on(url: &str, env: &[(&str, &str)]) -> TestServer {
        let name = format!("on-url-{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
        TestServer::spawn(
            name.clone(),
            run_dir(&name),
            owned(env),
            Location::Url(url.to_owned()),
        )
    }

    fn spawn(
        database: String,
        data_dir: PathBuf,
        env: Vec<(String, String)>,
        location: Location,
    ) -> TestServer {
        let (child, base, endpoint) = launch(&location, &database, &data_dir, &env);
        TestServer {
            base,
            endpoint,
            database,
            data_dir,
            http: idledger::outbound::client_builder().build().unwrap(),
            child,
            env,
            token: tokio::sync::OnceCell::new(),
            location,
        }
    }

    /// Starts the binary again once the old process is gone, and forgets the old process's
    /// token: tokens name the old endpoint as their issuer.
    fn start_process(&mut self) {
        let _ = self.child.wait();
        let (child, base, endpoint) =
            launch(&self.location, &self.database, &self.data_dir, &self.env);
        self.child = child;
        self.base = base;
        self.endpoint = endpoint;
        self.token = tokio::sync::OnceCell::new();
    }

    /// SIGKILLs the server and everything in its process group (its managed PostgreSQL), as
    /// a power cut would kill them, then starts it again on the same data folder.
    pub fn restart_after_killing_the_group(&mut self) {
        assert!(
            matches!(self.location, Location::Managed),
            "only a managed server has a process group of its own"
        );
        let group = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL)
            .expect("kill the server's process group");
        self.start_process();
    }

    /// Everything the server process wrote to stdout (its JSON log), across restarts.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// A second node on the same database, behind the same public endpoint.
    pub fn second_node(&self) -> Node {
        let data_dir = self.data_dir.with_extension("node2");
        let mut env = self.env.clone();
        env.push(("ENDPOINT".to_owned(), self.endpoint.clone()));
        let (child, base, _) = spawn_server(Some(&self.database_url()), &data_dir, &env, false);
        Node { base, child }
    }

    pub fn issuer(&self) -> String {
        format!("{}/oidc", self.endpoint)
    }

    /// Kills the server (as a crash would) and starts it again on the same database and data
    /// directory; it listens on a new port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        self.start_process();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn database_url(&self) -> String {
        match &self.location {
            Location::Shared => database_url(&self.database),
            Location::Url(url) => url.clone(),
            Location::Managed => {
                idledger::postgres::url_in(&self.data_dir, idledger::app::DATABASE)
            }
        }
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        idledger::app::connect(&self.database_url())
            .await
            .expect("connect to the test database")
    }

    /// A Management API token for the bootstrap app.
    pub async fn token(&self) -> String {
        self.token
            .get_or_init(|| async {
                let response = self
                    .http
                    .post(self.url("/oidc/token"))
                    .basic_auth(BOOTSTRAP_ID, Some(BOOTSTRAP_SECRET))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("resource", MANAGEMENT_API),
                        ("scope", "all"),
                    ])
                    .send()
                    .await
                    .expect("token request");
                assert_eq!(response.status(), StatusCode::OK, "bootstrap token");
                let body: Value = response.json().await.expect("token JSON");
                body["access_token"]
                    .as_str()
                    .expect("access_token")
                    .to_owned()
            })
            .await
            .clone()
    }

    /// An authenticated Management API call; returns status, headers and JSON body (Null when
    /// empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_on(&self.base, method, path, body).await
    }

    /// `call` through another node of the same database (`second_node`): it has the same
    /// public endpoint, so the same token works there.
    pub async fn call_on(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let token = self.token().await;
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .header("user-agent", "idledger-tests/1.0");
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// The log as stored, in position order.
    pub async fn events(&self) -> Vec<StoredEvent> {
        self.db()
            .await
            .query(
                "SELECT position, stream_id, event_type, actor_kind, actor_id, ip, user_agent, \
                 request_id, payload FROM events ORDER BY position",
                &[],
            )
            .await
            .expect("read events")
            .iter()
            .map(|row| StoredEvent {
                position: row.get(0),
                stream_id: row.get(1),
                event_type: row.get(2),
                actor_kind: row.get(3),
                actor_id: row.get(4),
                ip: row.get(5),
                user_agent: row.get(6),
                request_id: row.get(7),
                payload: row.get(8),
            })
            .collect()
    }

    /// Runs the replay CLI against this server's database, with the server's KEK (the test
    /// one unless it was started with an `IDLEDGER_KEK` of its own, as an independent instance).
    pub fn replay(&self, args: &[&str]) -> std::process::Output {
        let kek = self
            .env
            .iter()
            .find(|(key, _)| key == "IDLEDGER_KEK")
            .map_or(KEK, |(_, value)| value.as_str());
        Command::new(replay_binary())
            .args(args)
            .env("DATABASE_URL", self.database_url())
            .env("IDLEDGER_KEK", kek)
            .env("IDLEDGER_DATA_DIR", &self.data_dir)
            .output()
            .expect("run replay")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another server process on the same database.
pub struct Node {
    pub base: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: i64,
    pub stream_id: String,
    pub event_type: String,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub payload: Value,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        &self.body
    }

    /// Asserts a Logto error reply.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        self.expect(status);
        assert_eq!(self.body["code"], code, "error body: {}", self.body);
        assert!(
            self.body["message"].is_string(),
            "error body: {}",
            self.body
        );
    }
}

fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_idledger"))
}

fn replay_binary() -> PathBuf {
    // The replay binary belongs to another package of the workspace; the test command builds
    // every binary first, and it lands beside the server's.
    let path = server_binary().with_file_name("replay");
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

fn launch(
    location: &Location,
    database: &str,
    data_dir: &Path,
    env: &[(String, String)],
) -> (Child, String, String) {
    match location {
        Location::Shared => spawn_server(Some(&database_url(database)), data_dir, env, false),
        Location::Url(url) => spawn_server(Some(url), data_dir, env, false),
        Location::Managed => spawn_server(None, data_dir, env, true),
    }
}

fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A folder of its own under this test run's folder (removed with the run's).
pub fn run_dir(name: &str) -> PathBuf {
    shared().run_dir.join(name)
}

/// Starts the binary; returns the process, its base URL and its public endpoint. Without a
/// database URL the server runs its managed cluster under `data_dir`.
fn spawn_server(
    database_url: Option<&str>,
    data_dir: &Path,
    env: &[(String, String)],
    own_group: bool,
) -> (Child, String, String) {
    use std::os::unix::process::CommandExt;
    let _ = std::fs::create_dir_all(data_dir);
    let mut command = Command::new(server_binary());
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    if own_group {
        command.process_group(0);
    }
    command
        .arg("serve")
        .env("PORT", "0")
        .env("IDLEDGER_BIND", "127.0.0.1")
        .env("IDLEDGER_KEK", KEK)
        .env("IDLEDGER_DATA_DIR", data_dir)
        .env("IDLEDGER_BOOTSTRAP_CLIENT_ID", BOOTSTRAP_ID)
        .env("IDLEDGER_BOOTSTRAP_CLIENT_SECRET", BOOTSTRAP_SECRET)
        .env("IDLEDGER_DB_POOL_SIZE", "8")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start idledger");
    let stdout = child.stdout.take().expect("server stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    let log_path = data_dir.join("server.log");
    std::thread::spawn(move || {
        // Appended, so a restarted server's log follows its predecessor's.
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .ok();
        let mut sender = Some(sender);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(log) = &mut log {
                let _ = writeln!(log, "{line}");
            }
            if line.contains("\"listening\"") {
                let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
                if let (Some(sender), Some(address), Some(endpoint)) = (
                    sender.take(),
                    parsed["address"].as_str(),
                    parsed["endpoint"].as_str(),
                ) {
                    let _ = sender.send((address.to_owned(), endpoint.to_owned()));
                }
            }
        }
    });
    let (address, endpoint) = receiver
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "idledger did not start; see {}",
                data_dir.join("server.log").display()
            )
        });
    (child, format!("http://{address}"), endpoint)
}

impl TestServer {
    /// `POST /oidc/token` with the given form and optional HTTP Basic credentials.
    pub async fn token_request(&self, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Reply {
        let mut request = self.http.post(self.url("/oidc/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        Reply::from(request.send().await.expect("token request")).await
    }

    /// A Management API token for any machine-to-machine app.
    pub async fn token_for(&self, client_id: &str, secret: &str) -> String {
        let reply = self
            .token_request(
                Some((client_id, secret)),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", MANAGEMENT_API),
                    ("scope", "all"),
                ],
            )
            .await;
        reply.expect(200)["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A Management API call with an explicit `Authorization` header value (or none).
    pub async fn call_with(&self, authorization: Option<&str>, path: &str) -> Reply {
        let mut request = self.http.get(self.url(path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        Reply::from(request.send().await.expect("request sent")).await
    }

    /// Signs `claims` with the server's current private key, read from the vault with the
    /// test KEK, to forge tokens the server would otherwise never issue (expired, no `sub`...).
    pub async fn sign_as_server(&self, claims: &Value) -> String {
        let db = self.db().await;
        let row = db
            .query_one(
                "SELECT k.kid, v.ref, v.sealed FROM signing_keys k JOIN vault v ON v.ref = k.vault_ref \
                 ORDER BY k.generation DESC LIMIT 1",
                &[],
            )
            .await
            .expect("current signing key");
        let (kid, vault_ref, sealed): (String, String, Vec<u8>) =
            (row.get(0), row.get(1), row.get(2));
        let keyring = idledger::crypto::Keyring::from_base64(KEK).expect("test KEK");
        let pkcs8 = keyring.open_vault(&vault_ref, &sealed).expect("open vault");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
        header.kid = Some(kid);
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&pkcs8),
        )
        .expect("sign")
    }

    /// Asserts that `replay check` finds the read models equal to a refold of the log.
    pub fn assert_replay_check(&self) {
        let output = self.replay(&["check"]);
        assert!(
            output.status.success(),
            "replay check failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The Management API's log entries of `user_id`, oldest first.
pub async fn logs_of(server: &TestServer, user_id: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/api/logs?userId={user_id}&page_size=100"))
        .await;
    let mut logs = reply.expect(200).as_array().unwrap().clone();
    logs.reverse();
    logs
}

/// An event as the server itself reads it back (personal data unsealed with the test KEK), its
/// payload as a tree for assertions.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub position: i64,
    pub stream_id: String,
    pub event_type: String,
    pub payload: Value,
    pub metadata: domain::Metadata,
}

impl From<domain::RecordedEvent> for Recorded {
    fn from(event: domain::RecordedEvent) -> Recorded {
        Recorded {
            position: event.position,
            stream_id: event.stream_id,
            event_type: event.event_type,
            payload: event.payload.to_value(),
            metadata: event.metadata,
        }
    }
}

impl TestServer {
    pub async fn recorded_events(&self) -> Vec<Recorded> {
        let db = self.db().await;
        let keyring = idledger::crypto::Keyring::from_base64(KEK).expect("test KEK");
        let mut keys = idledger::store::read::Keys::new(&keyring);
        db.query(
            &format!(
                "{} ORDER BY e.position",
                idledger::store::read::SELECT_EVENTS
            ),
            &[],
        )
        .await
        .expect("read events")
        .iter()
        .map(|row| {
            keys.decode(idledger::store::read::Raw::from_row(row).expect("row"))
                .expect("decode")
                .into()
        })
        .collect()
    }
}

/// `pg_ctl stop -m <mode>` (`fast` or `immediate`) for the cluster `Cluster::start` runs under
/// `dir`, as the user the cluster runs as.
pub fn pg_ctl_stop(dir: &Path, mode: &str) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(pg_bin("pg_ctl"));
    command
        .args(["stop", "-w", "-m", mode, "-D"])
        .arg(dir.join("postgres"));
    if nix::unistd::Uid::effective().is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a postgres user");
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let output = command.output().expect("run pg_ctl");
    assert!(
        output.status.success(),
        "pg_ctl stop -m {mode}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
