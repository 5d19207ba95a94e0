//! Helpers shared by the benchmark programs: settings from the environment, the run folder,
//! percentiles, and CPU / memory figures read from /proc.

// Each benchmark uses only part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The fixed key-encryption key of the benchmarks (base64 of 32 bytes).
pub const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `name` parsed from the environment, or `default` when unset or unparsable.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A comma-separated list of numbers from the environment, or `default`; `none` for no entry.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    if std::env::var(name).is_ok_and(|v| v.trim() == "none") {
        return Vec::new();
    }
    let parsed: Vec<usize> = std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    if parsed.is_empty() {
        default.to_vec()
    } else {
        parsed
    }
}

/// `target/bench-data/<pid>`, after removing the folders of earlier runs that are gone.
/// Extra PostgreSQL settings for a profiling or comparison run, from `BENCH_PG_SETTINGS` as
/// `name=value;name=value` (for example `shared_preload_libraries=pg_stat_statements`); none
/// by default.
pub fn pg_settings() -> Vec<(String, String)> {
    std::env::var("BENCH_PG_SETTINGS")
        .unwrap_or_default()
        .split(';')
        .filter_map(|setting| setting.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

pub fn run_dir() -> Result<PathBuf, BoxError> {
    let runs = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-data");
    for entry in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let alive = entry
            .file_name()
            .to_str()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = runs.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes the run folder unless `BENCH_KEEP=1`.
pub fn clean_up(dir: &Path) {
    if env_or("BENCH_KEEP", 0u8) == 1 {
        println!("kept {}", dir.display());
        return;
    }
    if let Err(error) = std::fs::remove_dir_all(dir) {
        eprintln!("could not remove {}: {error}", dir.display());
    }
}

/// The `p`-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Clock ticks per second of /proc times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// The fields after the command name of /proc/<pid>/stat (field 3 onwards).
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn field(fields: &[String], number: usize) -> f64 {
    // `number` is the 1-based field number of proc(5); the slice starts at field 3.
    fields
        .get(number - 3)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// User + system CPU seconds of one process (`"self"` for this one).
pub fn process_cpu(pid: &str) -> f64 {
    stat_fields(pid).map_or(0.0, |f| (field(&f, 14) + field(&f, 15)) / TICKS)
}

/// CPU seconds of a PostgreSQL cluster: the postmaster, its reaped children (backends that
/// ended) and its live children.
pub fn postgres_cpu(postmaster: u32) -> f64 {
    let root = postmaster.to_string();
    let mut total = stat_fields(&root).map_or(0.0, |f| {
        field(&f, 14) + field(&f, 15) + field(&f, 16) + field(&f, 17)
    });
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some(fields) = stat_fields(pid)
            && fields.get(1).map(String::as_str) == Some(root.as_str())
        {
            total += field(&fields, 14) + field(&fields, 15);
        }
    }
    total / TICKS
}

/// CPU seconds of the calling thread, to the nanosecond.
pub fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// The postmaster's pid, from the cluster under `run_dir`.
pub fn postmaster_pid(run_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(run_dir.join("postgres").join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// (busy, total) CPU seconds of the whole machine since boot, all cores.
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().take(8).sum();
    // idle + iowait
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    ((total - idle) / TICKS, total / TICKS)
}

/// Waits (up to `BENCH_QUIET_WAIT` seconds, default 120; 0 disables) until the machine is
/// nearly idle over one second, so other people's builds do not skew a level. Says so when it
/// waited or gave up.
pub async fn wait_for_quiet() {
    let limit = Duration::from_secs_f64(env_or("BENCH_QUIET_WAIT", 120.0));
    let started = std::time::Instant::now();
    let mut busy_share = 0.0;
    while started.elapsed() < limit {
        let (busy_before, total_before) = machine_cpu();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (busy_after, total_after) = machine_cpu();
        busy_share = (busy_after - busy_before) / (total_after - total_before).max(1e-9);
        if busy_share < 0.15 {
            if started.elapsed() > Duration::from_secs(2) {
                println!(
                    "  (waited {:.0} s for other load on the machine to end)",
                    started.elapsed().as_secs_f64()
                );
            }
            return;
        }
    }
    if !limit.is_zero() {
        println!(
            "  (machine still {:.0}% busy with other work after {:.0} s; measuring anyway)",
            100.0 * busy_share,
            limit.as_secs_f64()
        );
    }
}

/// A kB figure of /proc/self/status (`VmHWM`, `VmRSS`).
pub fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix(key)?
                .strip_prefix(':')?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU seconds used between two points, by party.
#[derive(Clone, Copy)]
pub struct CpuSnapshot {
    pub bench: f64,
    pub server: f64,
    pub postgres: f64,
    pub machine_busy: f64,
    pub machine_total: f64,
}

impl CpuSnapshot {
    pub fn take(server: Option<u32>, postmaster: Option<u32>) -> CpuSnapshot {
        let (machine_busy, machine_total) = machine_cpu();
        CpuSnapshot {
            bench: process_cpu("self"),
            server: server.map_or(0.0, |pid| process_cpu(&pid.to_string())),
            postgres: postmaster.map_or(0.0, postgres_cpu),
            machine_busy,
            machine_total,
        }
    }

    /// Two lines: CPU seconds per party over the interval and how busy the machine was, then
    /// CPU microseconds per operation (`ops` operations completed in the interval).
    pub fn report(&self, before: &CpuSnapshot, with_server: bool, ops: f64) -> String {
        let wall_cores = (self.machine_total - before.machine_total).max(1e-9);
        let busy = self.machine_busy - before.machine_busy;
        let bench = self.bench - before.bench;
        let server = self.server - before.server;
        let postgres = self.postgres - before.postgres;
        let others = (busy - bench - server - postgres).max(0.0);
        let per_op = |seconds: f64| seconds * 1e6 / ops.max(1.0);
        let mut line = format!("cpu s: bench {bench:.2}");
        let mut per = format!("cpu us/op: bench {:.0}", per_op(bench));
        if with_server {
            line.push_str(&format!(", server {server:.2}"));
            per.push_str(&format!(", server {:.0}", per_op(server)));
        }
        line.push_str(&format!(
            ", postgres {postgres:.2}, other processes {others:.2}; machine busy {:.0}% of {wall_cores:.1} core-s",
            100.0 * busy / wall_cores,
        ));
        per.push_str(&format!(", postgres {:.0}", per_op(postgres)));
        format!("{line}\n             {per}")
    }
}
pub mod server;
