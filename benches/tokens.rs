//! Client-credentials tokens per second over real HTTP: the `idledger` binary on a managed,
//! durable (fsync on) PostgreSQL cluster, driven by concurrent reqwest clients calling
//! `POST /oidc/token`. Every 200 must be backed by a committed `exchange.issued` event; the
//! bench counts both and prints MISMATCH when they differ.
//!
//! `cargo bench --bench tokens`. Settings (environment):
//! - `BENCH_CLIENTS`  concurrent clients per level, comma-separated (default 16,64)
//! - `BENCH_SECONDS`  measured seconds per level (default 10)
//! - `BENCH_WARMUP`   warm-up seconds per level (default 2)
//! - `IDLEDGER_BIN`   server binary to run (default: the `idledger` binary cargo built for
//!   this bench, in the release profile)
//! - `IDLEDGER_DB_POOL_SIZE` is passed through to the server when set (server default 32)
//! - `BENCH_QUIET_WAIT` seconds to wait, before each level, for other load on the machine to
//!   end (default 120; 0 disables)
//! - `BENCH_KEEP=1`   keep `target/bench-data/<pid>` (with the server's log) afterwards
//!
//! Smoke run: `BENCH_CLIENTS=4 BENCH_SECONDS=1 BENCH_WARMUP=0 cargo bench --bench tokens`.

// Benches may abort on setup failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::server::{Bench, CLIENT_ID, CLIENT_SECRET, MANAGEMENT_API};
use common::{BoxError, CpuSnapshot, env_list, env_or, ms, percentile};
use idledger::app::connect;

fn main() -> Result<(), BoxError> {
    common::server::run(&[], drive)
}

fn token_request(http: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
    http.post(format!("{base}/oidc/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", MANAGEMENT_API),
            ("scope", "all"),
        ])
}

async fn issued_events(database_url: &str) -> Result<i64, BoxError> {
    let client = connect(database_url).await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'exchange.issued'",
            &[],
        )
        .await?
        .try_get(0)?)
}

/// What one client saw: latencies of 200s inside the window, and every outcome by status.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, u64>,
}

async fn drive(bench: Bench) -> Result<(), BoxError> {
    let (server, database_url, dir) = (&bench.server, &bench.database_url, &bench.dir);
    let postmaster = common::postmaster_pid(dir);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let warmup: f64 = env_or("BENCH_WARMUP", 2.0);
    let issued_before = issued_events(database_url).await?;
    // Every 200 of the whole run, warm-ups included, for the durability check.
    let oks = Arc::new(AtomicU64::new(0));

    let probe = token_request(
        &idledger::outbound::client_builder().build().unwrap(),
        &server.base,
    )
    .send()
    .await?;
    let status = probe.status();
    let body = probe.text().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("the first token request got {status}: {body}").into());
    }
    oks.fetch_add(1, Ordering::Relaxed);
    println!(
        "tokens bench: {} cores, durable PostgreSQL (fsync on), {warmup} s warm-up + {seconds} s per level; token is {} bytes",
        std::thread::available_parallelism().map_or(0, usize::from),
        body.len()
    );

    if let Some(micros) = es384_sign_micros() {
        println!(
            "one ES384 signature (the access token's) costs {micros:.0} us of CPU on this machine"
        );
    }

    for clients in env_list("BENCH_CLIENTS", &[16, 64]) {
        common::wait_for_quiet().await;
        let begin = Instant::now();
        let measured_from = begin + Duration::from_secs_f64(warmup);
        let end = measured_from + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (base, oks) = (server.base.clone(), oks.clone());
            tasks.push(tokio::spawn(async move {
                let http = idledger::outbound::client_builder().build().unwrap();
                let mut tally = Tally::default();
                loop {
                    let started = Instant::now();
                    if started >= end {
                        break;
                    }
                    let outcome = match token_request(&http, &base).send().await {
                        Ok(response) => {
                            let status = response.status();
                            // Read the whole body: the request is done when the token is in.
                            match response.bytes().await {
                                Ok(_) => status.as_u16().to_string(),
                                Err(_) => format!("{} (body lost)", status.as_u16()),
                            }
                        }
                        Err(error) => format!("transport error: {error}"),
                    };
                    let finished = Instant::now();
                    let ok = outcome == "200";
                    if ok {
                        oks.fetch_add(1, Ordering::Relaxed);
                    }
                    if finished < measured_from || finished > end {
                        continue;
                    }
                    if ok {
                        tally.latencies.push(finished - started);
                    }
                    *tally.statuses.entry(outcome).or_default() += 1;
                }
                tally
            }));
        }
        tokio::time::sleep_until(measured_from.into()).await;
        let cpu_before = CpuSnapshot::take(Some(server.pid()), postmaster);
        tokio::time::sleep_until(end.into()).await;
        let cpu_after = CpuSnapshot::take(Some(server.pid()), postmaster);
        let mut latencies = Vec::new();
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        for task in tasks {
            let tally = task.await?;
            latencies.extend(tally.latencies);
            for (status, count) in tally.statuses {
                *statuses.entry(status).or_default() += count;
            }
        }
        latencies.sort();
        println!(
            "clients {clients:>3}: {:>7.0} tokens/s  ({} 200s in {seconds} s)  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            latencies.len() as f64 / seconds,
            latencies.len(),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or_default()),
        );
        println!(
            "             {}",
            cpu_after.report(&cpu_before, true, latencies.len() as f64)
        );
        let others: Vec<String> = statuses
            .iter()
            .filter(|(status, _)| status.as_str() != "200")
            .map(|(status, count)| format!("{status}: {count}"))
            .collect();
        if !others.is_empty() {
            println!("             other outcomes: {}", others.join(", "));
        }
    }

    let issued = issued_events(database_url).await? - issued_before;
    let oks = oks.load(Ordering::Relaxed);
    println!(
        "\ndurability: {oks} responses 200 (warm-ups included), {issued} exchange.issued events stored"
    );
    if u64::try_from(issued).ok() != Some(oks) {
        println!(
            "MISMATCH: {oks} tokens were handed out but {issued} exchange.issued events are in the log"
        );
    } else {
        println!("match: every 200 has its committed exchange.issued event");
    }
    let log = std::fs::read_to_string(dir.join("server").join("server.log")).unwrap_or_default();
    let warnings = log
        .lines()
        .filter(|line| line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\""))
        .count();
    println!(
        "server log: {} lines, {warnings} at WARN or ERROR",
        log.lines().count()
    );
    Ok(())
}

/// CPU cost of one ES384 signature, the cryptographic floor of a token, measured in-process.
fn es384_sign_micros() -> Option<f64> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).ok()?;
    let rng = SystemRandom::new();
    let message = [7u8; 400];
    let rounds = 500;
    let started = common::thread_cpu();
    for _ in 0..rounds {
        pair.sign(&rng, &message).ok()?;
    }
    Some((common::thread_cpu() - started) * 1e6 / f64::from(rounds))
}
