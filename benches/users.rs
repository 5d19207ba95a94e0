//! User management over real HTTP: the `idledger` binary on a managed, durable (fsync on)
//! PostgreSQL cluster, driven by concurrent reqwest clients.
//!
//! 1. user creations per second without a password (`POST /api/users` with a username, an email
//!    and a name: every creation seals its personal data under a new data key, appends
//!    `user.created` and folds the user table and the activity log in the same transaction);
//! 2. the log is then filled to `BENCH_USERS` users through the same route (the seeding is part
//!    of the bench and its rate is printed too);
//! 3. `GET /api/users` searches over that table, p50 / p99 per kind of search: Logto's default
//!    `%value%` search over every searchable column, an exact username, a fuzzy email, and the
//!    first page without a search.
//!
//! `cargo bench --bench users`. Settings (environment):
//! - `BENCH_USERS`    users in the table when searches are measured (default 1 000 000)
//! - `BENCH_CLIENTS`  concurrent clients for the creation levels (default 16,64)
//! - `BENCH_SEED_CLIENTS` concurrent clients while seeding (default 64)
//! - `BENCH_SEARCH_CLIENTS` concurrent clients for searches (default 1,16)
//! - `BENCH_SECONDS`, `BENCH_WARMUP`, `BENCH_QUIET_WAIT`, `BENCH_KEEP`, `IDLEDGER_BIN` as in the
//!   other benches.
//!
//! Smoke run: `BENCH_USERS=2000 BENCH_CLIENTS=4 BENCH_SEARCH_CLIENTS=1 BENCH_SECONDS=1
//! BENCH_WARMUP=0 BENCH_QUIET_WAIT=0 cargo bench --bench users`.

// Benches may abort on setup failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::server::{Bench, level, management_token};
use common::{BoxError, env_list, env_or};
use idledger::app::connect;
use serde_json::json;

fn main() -> Result<(), BoxError> {
    common::server::run(&[], drive)
}

fn client() -> reqwest::Client {
    idledger::outbound::client_builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// Creates user number `n` (its identifiers derive from `n`, so searches can aim at it).
async fn create(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    prefix: &str,
    n: u64,
) -> Result<(), BoxError> {
    let response = http
        .post(format!("{base}/api/users"))
        .bearer_auth(token)
        .json(&json!({
            "username": format!("{prefix}_{n}"),
            "primaryEmail": format!("{prefix}.{n}@bench.example.com"),
            "name": format!("Bench Person {n}"),
        }))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "POST /api/users {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(())
}

/// A search's query string, aimed at seeded user `n`.
type Query = fn(u64) -> String;

async fn user_count(database_url: &str) -> Result<i64, BoxError> {
    let client = connect(database_url).await?;
    Ok(client
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .try_get(0)?)
}

async fn drive(bench: Bench) -> Result<(), BoxError> {
    let server = &bench.server;
    let postmaster = common::postmaster_pid(&bench.dir);
    let base = server.base.clone();
    let token = Arc::new(management_token(&client(), &base).await?);
    let target: u64 = env_or("BENCH_USERS", 1_000_000);
    println!(
        "users bench: {} cores, durable PostgreSQL (fsync on); {target} users for the searches",
        std::thread::available_parallelism().map_or(0, usize::from),
    );

    // 1. Creations per second: each client creates its own sequence of users.
    let next = Arc::new(AtomicU64::new(0));
    for clients in env_list("BENCH_CLIENTS", &[16, 64]) {
        let (base, token, next) = (base.clone(), token.clone(), next.clone());
        let http = client();
        let result = level(clients, server, postmaster, move |_| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            let n = next.fetch_add(1, Ordering::Relaxed);
            async move { create(&http, &base, &token, "level", n).await }
        })
        .await;
        result.print("creations", clients);
    }

    // 2. Seeding to the target through the same route.
    let present = u64::try_from(user_count(&bench.database_url).await?).unwrap_or(0);
    if present < target {
        let clients: u64 = env_or("BENCH_SEED_CLIENTS", 64);
        let missing = target - present;
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (base, token, next, done) =
                (base.clone(), token.clone(), next.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let http = client();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= missing {
                        return Ok::<(), BoxError>(());
                    }
                    create(&http, &base, &token, "seed", n).await?;
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if finished % 100_000 == 0 {
                        println!(
                            "seeded {finished} of {missing} in {:.0} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "seeding: {missing} users in {seconds:.0} s = {:.0} creations/s with {clients} clients",
            missing as f64 / seconds
        );
    }
    println!(
        "users in the table: {}",
        user_count(&bench.database_url).await?
    );

    // 3. Searches over the full table; each request aims at a different seeded user.
    let seeded = target.saturating_sub(present).max(1);
    let searches: [(&str, Query); 4] = [
        ("default %v%", |n| format!("search=%25seed_{n}%25")),
        ("exact user", |n| {
            format!("search.username=seed_{n}&mode.username=exact")
        }),
        ("email %v%", |n| {
            format!("search.primaryEmail=%25seed.{n}@%25")
        }),
        ("first page", |_| "page=1&page_size=20".to_owned()),
    ];
    for (what, query) in searches {
        for clients in env_list("BENCH_SEARCH_CLIENTS", &[1, 16]) {
            let (base, token) = (base.clone(), token.clone());
            let http = client();
            let counter = Arc::new(AtomicU64::new(7));
            let result = level(clients, server, postmaster, move |_| {
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                // A stride through the seeded users, so no two requests hit the same row.
                let n = counter.fetch_add(7919, Ordering::Relaxed) % seeded;
                let url = format!("{base}/api/users?{}", query(n));
                async move {
                    let response = http.get(url).bearer_auth(token.as_str()).send().await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    if status != reqwest::StatusCode::OK || body.len() < 3 {
                        return Err(format!("search {status}: {} bytes", body.len()).into());
                    }
                    Ok(())
                }
            })
            .await;
            result.print(what, clients);
        }
    }
    Ok(())
}
