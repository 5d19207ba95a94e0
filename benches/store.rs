//! Event store throughput on a managed, durable (fsync on) PostgreSQL cluster.
//!
//! 1. Appends: for each writer count, that many tasks each append one `exchange.issued` event
//!    per command (a fresh stream each) for a fixed time after a warm-up; prints events/s and
//!    p50/p99 latency per command, with the CPU split and the WAL syncs per commit.
//! 2. Replay: grows the log to `BENCH_EVENTS` events with large units of work, then refolds the
//!    whole log into every projection in one transaction, as `replay rebuild` does; prints
//!    events/s and the process's peak RSS.
//!
//! `cargo bench --bench store`. Settings (environment):
//! - `BENCH_EVENTS`     log size for the replay (default 1000000)
//! - `BENCH_SECONDS`    measured seconds per writer count (default 10)
//! - `BENCH_WARMUP`     warm-up seconds per writer count (default 2)
//! - `BENCH_WRITERS`    writer counts, comma-separated (default 1,8,64)
//! - `BENCH_WRITERS_AFTER` writer counts measured again after the replay, on the grown log
//!   (default 1,8; `none` skips)
//! - `BENCH_UNIT`       commands per unit of work when generating (default 100; larger units
//!   are slower per event)
//! - `BENCH_GENERATORS` concurrent generating tasks (default 4)
//! - `BENCH_QUIET_WAIT` seconds to wait, before each measurement, for other load on the
//!   machine to end (default 120; 0 disables)
//! - `BENCH_KEEP=1`     keep `target/bench-data/<pid>` afterwards
//! - `BENCH_PG_SETTINGS` extra PostgreSQL settings, `name=value;name=value`
//!
//! Smoke run: `BENCH_EVENTS=20000 BENCH_SECONDS=1 BENCH_WARMUP=0 cargo bench --bench store`.

// Benches may abort on setup failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{BoxError, CpuSnapshot, env_list, env_or, ms, percentile};
use domain::exchange::{Exchange, ExchangeCommand, GrantType, Issued};
use domain::{Actor, Metadata};
use idledger::app::{DATABASE, Environment, ensure_database};
use idledger::config::Storage;
use idledger::postgres::Cluster;
use idledger::store::{EventStore, Stretch, Unit, rebuild, refold};
use time::OffsetDateTime;

/// The replay binary's allocator, so the rebuild is measured as `replay rebuild` runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), BoxError> {
    let dir = common::run_dir()?;
    // On the main thread: the cluster is stopped when the thread that started it ends.
    let settings = common::pg_settings();
    let cluster = Cluster::start(&dir, &settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&cluster, &dir));
    drop(runtime);
    drop(cluster);
    common::clean_up(&dir);
    result
}

async fn run(cluster: &Cluster, dir: &Path) -> Result<(), BoxError> {
    ensure_database(&cluster.url("postgres"), DATABASE).await?;
    let environment = Environment::open(&Storage {
        database_url: Some(cluster.url(DATABASE)),
        data_dir: dir.to_path_buf(),
        kek: Some(common::KEK.to_owned()),
        pool_size: 80,
        postgres_settings: Vec::new(),
    })
    .await?;
    let store = EventStore::new(environment.pool.clone(), environment.keyring.clone());
    let postmaster = common::postmaster_pid(dir);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let warmup: f64 = env_or("BENCH_WARMUP", 2.0);
    println!(
        "store bench: {} cores, durable PostgreSQL (fsync on), {warmup} s warm-up + {seconds} s per level",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    println!("\n== appends (one exchange.issued event per command, fresh stream each)");
    for writers in env_list("BENCH_WRITERS", &[1, 8, 64]) {
        appends(&store, postmaster, writers, warmup, seconds).await?;
    }

    chain_cost(&store).await?;

    println!("\n== replay");
    let target: i64 = env_or("BENCH_EVENTS", 1_000_000);
    generate(&store, target).await?;
    replay(&environment, &store, postmaster).await?;

    let after = env_list("BENCH_WRITERS_AFTER", &[1, 8]);
    if !after.is_empty() {
        println!(
            "\n== appends again, on the grown log ({} events)",
            head(&store).await?
        );
    }
    for writers in after {
        appends(&store, postmaster, writers, warmup, seconds).await?;
    }

    println!(
        "\npeak RSS of the bench process (VmHWM): {:.1} MiB",
        common::status_kb("VmHWM") as f64 / 1024.0
    );
    drop(store);
    drop(environment);
    Ok(())
}

fn metadata(request: u64) -> Metadata {
    Metadata {
        actor: Actor::App("bench-app".to_owned()),
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("idledger-bench/1.0 (like curl/8.5)".to_owned()),
        request_id: Some(format!("req-{request:016x}")),
        occurred_at: OffsetDateTime::now_utc(),
    }
}

fn issued(token: u64) -> ExchangeCommand {
    ExchangeCommand::RecordIssued(Issued {
        grant_type: GrantType::ClientCredentials,
        application_id: "bench-app".to_owned(),
        secret_name: Some("default".to_owned()),
        user_id: None,
        audience: Some("https://default.logto.app/api".to_owned()),
        scope: "all".to_owned(),
        token_types: vec!["AccessToken".to_owned()],
        token_id: format!("tok{token:018x}"),
        expires_at: 1_900_000_000_000,
    })
}

/// Commands completed inside the measured window, their latencies, and failures.
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

async fn appends(
    store: &EventStore,
    postmaster: Option<u32>,
    writers: usize,
    warmup: f64,
    seconds: f64,
) -> Result<(), BoxError> {
    // Distinguishes the streams of repeated levels.
    static ROUND: AtomicU64 = AtomicU64::new(0);
    let round = ROUND.fetch_add(1, Ordering::Relaxed);
    common::wait_for_quiet().await;
    let begin = Instant::now();
    let measured_from = begin + Duration::from_secs_f64(warmup);
    let end = measured_from + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                latencies: Vec::new(),
                errors: 0,
                first_error: None,
            };
            let mut n: u64 = 0;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let stream = format!("bench-{round}-{writers}x{writer}-{n}");
                let id = ((writers as u64) << 48) | ((writer as u64) << 32) | n;
                let outcome = store
                    .execute::<Exchange>(&stream, issued(id), &metadata(id))
                    .await;
                let finished = Instant::now();
                n += 1;
                if finished < measured_from || finished > end {
                    continue;
                }
                match outcome {
                    Ok(_) => tally.latencies.push(finished - started),
                    Err(error) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            tally
        }));
    }
    // Snapshot the counters at the start of the measured window.
    tokio::time::sleep_until(measured_from.into()).await;
    let cpu_before = CpuSnapshot::take(None, postmaster);
    let wal_before = wal_stats(store).await?;
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = CpuSnapshot::take(None, postmaster);
    let wal_after = wal_stats(store).await?;
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        let tally = task.await?;
        latencies.extend(tally.latencies);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    latencies.sort();
    let commits = latencies.len() as f64;
    println!(
        "writers {writers:>3}: {:>8.0} events/s  ({} commands in {seconds} s)  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {errors}",
        commits / seconds,
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "             {}; WAL syncs ~{} (~{:.2} per commit), {:.0} WAL bytes per event",
        cpu_after.report(&cpu_before, false, commits),
        wal_after.1 - wal_before.1,
        (wal_after.1 - wal_before.1) as f64 / commits.max(1.0),
        (wal_after.0 - wal_before.0) as f64 / commits.max(1.0),
    );
    if let Some(error) = first_error {
        println!("             first error: {error}");
    }
    Ok(())
}

/// The CPU cost of the hash chain alone: the appender hashes every event while it holds the head
/// lock. Measured over the last appended row, as `replay verify` rehashes it.
async fn chain_cost(store: &EventStore) -> Result<(), BoxError> {
    use idledger::audit::{SELECT_STORED, StoredRow};
    let client = store.pool().get().await?;
    let Some(row) = client
        .query_opt(
            &format!("{SELECT_STORED} ORDER BY position DESC LIMIT 1"),
            &[],
        )
        .await?
    else {
        return Ok(());
    };
    let row = StoredRow::from_row(&row)?;
    let rounds = 200_000_u32;
    let mut previous = idledger::store::chain::GENESIS;
    let started = Instant::now();
    for _ in 0..rounds {
        previous = row.link_at(&previous, row.position);
    }
    let per_event = started.elapsed() / rounds;
    println!(
        "chain hash alone: {:.2} µs per event ({:.0} events/s on one core)",
        per_event.as_secs_f64() * 1e6,
        1.0 / per_event.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    Ok(())
}

/// (WAL bytes written, WAL syncs) of the cluster so far. The sync count comes from the
/// cumulative statistics, which backends flush about once a second: it is approximate.
async fn wal_stats(store: &EventStore) -> Result<(i64, i64), BoxError> {
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, wal_sync \
             FROM pg_stat_wal",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn head(store: &EventStore) -> Result<i64, BoxError> {
    let client = store.pool().get().await?;
    Ok(client
        .query_one("SELECT position FROM event_head", &[])
        .await?
        .try_get(0)?)
}

/// Appends units of `BENCH_UNIT` commands until the log holds about `target` events.
async fn generate(store: &EventStore, target: i64) -> Result<(), BoxError> {
    let start_head = head(store).await?;
    let wanted = u64::try_from(target - start_head).unwrap_or(0);
    let unit_size: u64 = env_or("BENCH_UNIT", 100u64).max(1);
    let generators: usize = env_or("BENCH_GENERATORS", 4usize).max(1);
    println!(
        "log holds {start_head} events; generating {wanted} more ({unit_size} per unit, {generators} tasks)"
    );
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicU64::new(0));
    let units = wanted.div_ceil(unit_size);
    let mut tasks = Vec::new();
    for _ in 0..generators {
        let (store, next, made) = (store.clone(), next.clone(), made.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= units {
                    return Ok::<(), idledger::store::StoreError>(());
                }
                let size = unit_size.min(wanted - index * unit_size);
                let mut unit = Unit::new();
                for k in 0..size {
                    let id = (1u64 << 63) | (index << 20) | k;
                    unit = unit.then::<Exchange>(format!("bench-gen-{index}-{k}"), issued(id));
                }
                store.run(unit, &metadata(index)).await?;
                let before = made.fetch_add(size, Ordering::Relaxed);
                if (before + size) / 100_000 > before / 100_000 {
                    let elapsed = started.elapsed().as_secs_f64();
                    println!(
                        "  generated {:>8} events in {elapsed:>6.1} s ({:.0} events/s)",
                        before + size,
                        (before + size) as f64 / elapsed
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "generated {wanted} events in {elapsed:.1} s ({:.0} events/s); log holds {}",
        wanted as f64 / elapsed.max(1e-9),
        head(store).await?
    );
    Ok(())
}

/// Rebuilds every projection from the whole log with `replay rebuild`'s code.
async fn replay(
    environment: &Environment,
    store: &EventStore,
    postmaster: Option<u32>,
) -> Result<(), BoxError> {
    let chosen = projections::ALL;
    common::wait_for_quiet().await;
    let (wal_before, _) = wal_stats(store).await?;
    let rss_before = common::status_kb("VmHWM");
    let mut client = environment.pool.get().await?;
    let cpu_before = CpuSnapshot::take(None, postmaster);
    let started = Instant::now();
    let tx = client.transaction().await?;
    let mut reported = 0;
    let rebuilt = rebuild(&environment.pool, &tx, &environment.keyring, chosen, |at| {
        if at / 200_000 > reported {
            reported = at / 200_000;
            println!(
                "  folded up to {at:>8} in {:>6.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    })
    .await?;
    let rebuilt_in = started.elapsed();
    tx.commit().await?;
    let total = started.elapsed();
    let cpu_after = CpuSnapshot::take(None, postmaster);
    let (folded, head) = (rebuilt.folded, rebuilt.head);
    println!(
        "rebuild: {folded} events into {} projections: {:.0} events/s overall ({:.2} s, of which deferred index builds {:.2} s, commit {:.2} s)",
        chosen.len(),
        folded as f64 / total.as_secs_f64().max(1e-9),
        total.as_secs_f64(),
        rebuilt.indexing.as_secs_f64(),
        (total - rebuilt_in).as_secs_f64(),
    );
    println!(
        "             {}",
        cpu_after.report(&cpu_before, false, folded as f64)
    );
    let (wal_after, _) = wal_stats(store).await?;
    println!(
        "             WAL written: {:.0} MiB, {:.0} bytes per event",
        (wal_after - wal_before) as f64 / 1_048_576.0,
        (wal_after - wal_before) as f64 / (folded as f64).max(1.0)
    );

    // The same pass with no projection: what reading and decoding the log costs alone.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let started = Instant::now();
    let cpu_before = CpuSnapshot::take(None, postmaster);
    let snapshot = idledger::store::export_snapshot(&tx).await?;
    let stretch = Stretch {
        snapshot: &snapshot,
        after: 0,
        until: head,
    };
    let read = refold(
        &environment.pool,
        &tx,
        &environment.keyring,
        &[],
        stretch,
        |_| {},
    )
    .await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let cpu_after = CpuSnapshot::take(None, postmaster);
    tx.rollback().await?;
    println!(
        "read+decode only (refold with no projection): {read} events: {:>8.0} events/s ({read_seconds:.2} s, {:.0}% of the rebuild)",
        read as f64 / read_seconds.max(1e-9),
        100.0 * read_seconds / total.as_secs_f64().max(1e-9)
    );
    println!(
        "             {}",
        cpu_after.report(&cpu_before, false, read as f64)
    );
    println!(
        "             peak RSS before replay {:.1} MiB, after {:.1} MiB",
        rss_before as f64 / 1024.0,
        common::status_kb("VmHWM") as f64 / 1024.0
    );
    Ok(())
}
