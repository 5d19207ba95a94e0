//! The managed local PostgreSQL cluster: `idledger serve` without `DATABASE_URL`, the test
//! harness and the benchmarks all run one from the system's binaries under a data folder. It
//! listens only on a unix socket, runs as the `postgres` user when we are root, and is stopped
//! (fast shutdown) when we exit, or by the kernel when we die, through the parent-death signal.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

const PORT: u16 = 5432;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Unix socket paths are limited to 107 bytes; past this length the socket goes under /tmp.
const MAX_SOCKET_DIR_LEN: usize = 80;

/// What every managed cluster runs with, before the caller's settings (a later `-c` wins).
///
/// `wal_level = minimal`: the cluster serves one idledger and nothing streams from it, so the
/// WAL only has to bring it back after a crash, which it still does. What it saves: a bulk
/// load into a table emptied or created in the same transaction (`replay rebuild`'s TRUNCATE
/// then COPY and its index builds, a new projection's catch-up, `replay check`'s scratch
/// tables) writes no WAL and is synced to disk at commit instead, about 470 bytes of WAL an
/// event and a quarter of a rebuild's time (`cargo bench --bench store`). It rules out
/// `pg_basebackup` and replication of this cluster; an operator who wants them sets
/// `IDLEDGER_POSTGRES_SETTINGS="wal_level=replica;max_wal_senders=10"` (or brings a cluster
/// of their own with `DATABASE_URL`). `pg_dump` works either way.
pub const MANAGED_SETTINGS: &[(&str, &str)] = &[("wal_level", "minimal"), ("max_wal_senders", "0")];

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "no PostgreSQL server binaries found (looked in IDLEDGER_PG_BIN, /usr/lib/postgresql/*/bin and PATH); install them, e.g. `apt-get install postgresql`"
    )]
    BinariesMissing,
    #[error("running as root but there is no `postgres` user to run the cluster as")]
    NoPostgresUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {output}")]
    Command { command: String, output: String },
    #[error("PostgreSQL did not become ready within {0:?}; see {1}")]
    NotReady(Duration, PathBuf),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PostgresError {
    let what = what.into();
    move |source| PostgresError::Io { what, source }
}

/// Who the cluster's processes run as: ourselves, or `postgres` when we are root (PostgreSQL
/// refuses to run as root).
#[derive(Clone, Copy)]
struct RunAs {
    uid: Option<(u32, u32)>,
}

impl RunAs {
    fn detect() -> Result<RunAs, PostgresError> {
        if !Uid::effective().is_root() {
            return Ok(RunAs { uid: None });
        }
        let user = User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or(PostgresError::NoPostgresUser)?;
        Ok(RunAs {
            uid: Some((user.uid.as_raw(), user.gid.as_raw())),
        })
    }

    fn command(self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Some((uid, gid)) = self.uid {
            command.uid(uid).gid(gid);
        }
        command.env_remove("PGDATA").env("LC_ALL", "C");
        command
    }

    fn own(self, path: &Path) -> Result<(), PostgresError> {
        if let Some((uid, gid)) = self.uid {
            chown(path, Some(uid), Some(gid)).map_err(io(format!("chown {}", path.display())))?;
        }
        Ok(())
    }
}

fn find_bin_dir() -> Result<PathBuf, PostgresError> {
    if let Some(dir) = std::env::var_os("IDLEDGER_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
        .ok_or(PostgresError::BinariesMissing)
}

fn run(mut command: Command, name: &str) -> Result<(), PostgresError> {
    let output = command.output().map_err(io(format!("running {name}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(PostgresError::Command {
        command: name.to_owned(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

pub struct Cluster {
    bin: PathBuf,
    run_as: RunAs,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    /// The postmaster we started; `None` when we found one already running and leave it be.
    child: Option<Child>,
}

impl Cluster {
    /// Initialises the cluster under `dir/postgres` if needed and starts it, or joins the one
    /// already running there. `settings` are `-c name=value` server settings, after
    /// `MANAGED_SETTINGS`.
    pub fn start<S: AsRef<str>>(dir: &Path, settings: &[(S, S)]) -> Result<Cluster, PostgresError> {
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
            .collect();
        let bin = find_bin_dir()?;
        let run_as = RunAs::detect()?;
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io(format!("resolving {}", dir.display())))?;
        let data_dir = dir.join("postgres");
        let socket_dir = socket_dir_for(&dir);
        let log = dir.join("postgres.log");
        fs::create_dir_all(&socket_dir)
            .map_err(io(format!("creating {}", socket_dir.display())))?;
        fs::set_permissions(&socket_dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod {}", socket_dir.display())))?;
        run_as.own(&socket_dir)?;
        let mut cluster = Cluster {
            bin,
            run_as,
            data_dir,
            socket_dir,
            log,
            child: None,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if cluster.running_postmaster().is_none() {
            cluster.spawn(&settings)?;
        }
        cluster.wait_ready(&settings)?;
        Ok(cluster)
    }

    fn initdb(&self) -> Result<(), PostgresError> {
        fs::create_dir_all(&self.data_dir)
            .map_err(io(format!("creating {}", self.data_dir.display())))?;
        fs::set_permissions(&self.data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("chmod {}", self.data_dir.display())))?;
        self.run_as.own(&self.data_dir)?;
        let mut command = self.run_as.command(&self.bin.join("initdb"));
        command.arg("-D").arg(&self.data_dir).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(command, "initdb")
    }

    /// The pid of a live postmaster already serving this data folder, if any.
    fn running_postmaster(&self) -> Option<i32> {
        let pid_file = fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        let pid: i32 = pid_file.lines().next()?.trim().parse().ok()?;
        kill(Pid::from_raw(pid), None).ok()?;
        Some(pid)
    }

    #[allow(unsafe_code)]
    fn spawn(&mut self, settings: &[(&str, &str)]) -> Result<(), PostgresError> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("opening {}", self.log.display())))?;
        self.run_as.own(&self.log)?;
        let log_err = log.try_clone().map_err(io("duplicating the log handle"))?;
        let mut command = self.run_as.command(&self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-p", &PORT.to_string(), "-c", "listen_addresses="])
            .args(["-c", "max_connections=300"]);
        for (name, value) in MANAGED_SETTINGS.iter().chain(settings) {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent. It runs after the uid switch, which would otherwise clear it. SIGINT is
        // PostgreSQL's fast shutdown: if we are killed, the cluster still stops cleanly.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGINT).map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().map_err(io("starting postgres"))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the cluster accepts connections. A postmaster we only joined may be on its
    /// way out (its previous owner was killed and the parent-death signal began a fast
    /// shutdown): once it is gone, we start our own.
    fn wait_ready(&mut self, settings: &[(&str, &str)]) -> Result<(), PostgresError> {
        let started = Instant::now();
        loop {
            let mut probe = Command::new(self.bin.join("pg_isready"));
            probe.arg("-h").arg(&self.socket_dir).args([
                "-p",
                &PORT.to_string(),
                "-U",
                "postgres",
                "-q",
            ]);
            if probe.status().map(|s| s.success()).unwrap_or(false) {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let tail = fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                return Err(PostgresError::Command {
                    command: format!("postgres ({status})"),
                    output: tail,
                });
            }
            if self.child.is_none() && self.running_postmaster().is_none() {
                self.spawn(settings)?;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(PostgresError::NotReady(READY_TIMEOUT, self.log.clone()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A libpq-style URL for `database` on this cluster's socket.
    pub fn url(&self, database: &str) -> String {
        url_on(&self.socket_dir, database)
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Fast shutdown of the postmaster we started; a cluster we only joined keeps running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URL of `database` on the managed cluster under `dir`, which another process runs (the
/// tests reach a server's own cluster this way).
pub fn url_in(dir: &Path, database: &str) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    url_on(&socket_dir_for(&dir), database)
}

fn url_on(socket_dir: &Path, database: &str) -> String {
    format!(
        "postgresql://postgres@localhost/{database}?host={}&port={PORT}",
        socket_dir.display()
    )
}

fn socket_dir_for(dir: &Path) -> PathBuf {
    let local = dir.join("run");
    if local.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return local;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in dir.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!("idledger-{hash:016x}"))
}
