//! The `idledger` binary as the HTTP benches run it: a managed, durable (fsync on) PostgreSQL
//! cluster, the server on an ephemeral port with a known bootstrap machine-to-machine app, and
//! timed levels of concurrent clients with the CPU each party used.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idledger::app::{DATABASE, ensure_database};
use idledger::postgres::Cluster;
use serde_json::Value;

use super::{BoxError, CpuSnapshot, env_or, ms, percentile};

pub const CLIENT_ID: &str = "bench-m2m";
pub const CLIENT_SECRET: &str = "bench-secret-0123456789abcdefghijklmnop";
pub const MANAGEMENT_API: &str = "https://default.logto.app/api";

/// What a bench drives: the server, its database's URL, and the run folder.
pub struct Bench {
    pub server: Server,
    pub database_url: String,
    pub dir: PathBuf,
}

/// Starts the cluster and the server (with `extra_env`), runs `drive`, and cleans up whatever
/// happened.
pub fn run<F, Fut>(extra_env: &[(&str, &str)], drive: F) -> Result<(), BoxError>
where
    F: FnOnce(Bench) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    idledger::outbound::install_crypto_provider();
    let dir = super::run_dir()?;
    let settings = super::pg_settings();
    // On the main thread: the cluster is stopped when the thread that started it ends.
    let cluster = Cluster::start(&dir, &settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let database_url = cluster.url(DATABASE);
    let result = runtime
        .block_on(ensure_database(&cluster.url("postgres"), DATABASE))
        .map_err(BoxError::from)
        .and_then(|()| Server::spawn(&database_url, &dir, extra_env))
        .and_then(|server| {
            runtime.block_on(drive(Bench {
                server,
                database_url: database_url.clone(),
                dir: dir.clone(),
            }))
        });
    drop(runtime);
    drop(cluster);
    super::clean_up(&dir);
    result
}

/// The server process; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    fn spawn(
        database_url: &str,
        dir: &Path,
        extra_env: &[(&str, &str)],
    ) -> Result<Server, BoxError> {
        let binary = std::env::var_os("IDLEDGER_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_idledger")),
            PathBuf::from,
        );
        let data_dir = dir.join("server");
        std::fs::create_dir_all(&data_dir)?;
        let mut child = Command::new(&binary)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("PORT", "0")
            .env("IDLEDGER_BIND", "127.0.0.1")
            .env("IDLEDGER_KEK", super::KEK)
            .env("IDLEDGER_DATA_DIR", &data_dir)
            .env("IDLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
            .env("IDLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
            .envs(extra_env.iter().copied())
            .env("RUST_LOG", "warn,idledger=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no server stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let log_path = data_dir.join("server.log");
        // Keeps draining stdout into the log for the server's whole life.
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(&log_path).ok();
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(log) = &mut log {
                    let _ = writeln!(log, "{line}");
                }
                if sender.is_some() && line.contains("\"listening\"") {
                    let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
                    if let (Some(sender), Some(address)) =
                        (sender.take(), parsed["address"].as_str())
                    {
                        let _ = sender.send(address.to_owned());
                    }
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
        };
        let address = receiver
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| {
                format!(
                    "idledger did not start; see {}",
                    data_dir.join("server.log").display()
                )
            })?;
        server.base = format!("http://{address}");
        println!(
            "server {} (pid {}) at {}",
            binary.display(),
            server.child.id(),
            server.base
        );
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn management_token(http: &reqwest::Client, base: &str) -> Result<String, BoxError> {
    let reply: Value = http
        .post(format!("{base}/oidc/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", MANAGEMENT_API),
            ("scope", "all"),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(reply["access_token"]
        .as_str()
        .ok_or("no management token")?
        .to_owned())
}

pub struct Level {
    pub per_second: f64,
    pub latencies: Vec<Duration>,
    pub failures: BTreeMap<String, u64>,
    pub cpu_before: CpuSnapshot,
    pub cpu_after: CpuSnapshot,
}

/// Runs `clients` loops of `operation` (given the client's index) for the warm-up and the
/// measured window; counts what completes inside the window.
pub async fn level<F, Fut>(
    clients: usize,
    server: &Server,
    postmaster: Option<u32>,
    operation: F,
) -> Level
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let warmup: f64 = env_or("BENCH_WARMUP", 2.0);
    super::wait_for_quiet().await;
    let operation = Arc::new(operation);
    let begin = Instant::now();
    let measured_from = begin + Duration::from_secs_f64(warmup);
    let end = measured_from + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for index in 0..clients {
        let operation = operation.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let outcome = operation(index).await;
                let finished = Instant::now();
                if finished < measured_from || finished > end {
                    continue;
                }
                match outcome {
                    Ok(()) => latencies.push(finished - started),
                    Err(error) => {
                        let text = error.to_string();
                        *failures
                            .entry(text.chars().take(120).collect())
                            .or_default() += 1;
                    }
                }
            }
            (latencies, failures)
        }));
    }
    tokio::time::sleep_until(measured_from.into()).await;
    let cpu_before = CpuSnapshot::take(Some(server.pid()), postmaster);
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = CpuSnapshot::take(Some(server.pid()), postmaster);
    let mut latencies = Vec::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (done, failed) = task.await.unwrap_or_default();
        latencies.extend(done);
        for (what, count) in failed {
            *failures.entry(what).or_default() += count;
        }
    }
    latencies.sort();
    Level {
        per_second: latencies.len() as f64 / seconds,
        latencies,
        failures,
        cpu_before,
        cpu_after,
    }
}

impl Level {
    pub fn print(&self, what: &str, clients: usize) {
        println!(
            "{what:<13} clients {clients:>3}: {:>7.0}/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.per_second,
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        );
        println!(
            "             {}",
            self.cpu_after
                .report(&self.cpu_before, true, self.latencies.len() as f64)
        );
        if !self.failures.is_empty() {
            let failures: Vec<String> = self
                .failures
                .iter()
                .map(|(what, count)| format!("{what}: {count}"))
                .collect();
            println!("             failures: {}", failures.join("; "));
        }
        println!("             bottleneck: {}", self.bottleneck());
    }

    /// Which party limits the figure: with the machine's cores saturated, the one that used
    /// the most CPU per operation; otherwise nothing on the CPU, so waiting (commits, locks,
    /// round trips).
    pub fn bottleneck(&self) -> String {
        let (a, b) = (&self.cpu_after, &self.cpu_before);
        let total = (a.machine_total - b.machine_total).max(1e-9);
        let busy = (a.machine_busy - b.machine_busy) / total;
        let parties = [
            ("the server", a.server - b.server),
            ("PostgreSQL", a.postgres - b.postgres),
            ("the bench's own clients", a.bench - b.bench),
        ];
        let (name, seconds) = parties
            .iter()
            .copied()
            .fold(("nobody", 0.0), |top, p| if p.1 > top.1 { p } else { top });
        let share = seconds / total;
        if busy >= 0.85 {
            format!(
                "CPU: the machine is {:.0}% busy; {name} uses {:.0}% of it",
                busy * 100.0,
                share * 100.0
            )
        } else {
            format!(
                "waiting, not CPU (machine {:.0}% busy; {name} uses {:.0}%): commit latency, locks or round trips",
                busy * 100.0,
                share * 100.0
            )
        }
    }
}
