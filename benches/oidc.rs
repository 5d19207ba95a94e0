//! End-user OIDC throughput over real HTTP: the `idledger` binary on a managed, durable (fsync
//! on) PostgreSQL cluster, driven by concurrent reqwest clients.
//!
//! 1. argon2id verifies per second in-process, on every core, with the server's parameters
//!    (`idledger::crypto::password`): the ceiling of password sign-ins on this machine;
//! 2. password sign-ins per second through the whole flow (`/oidc/auth` → Experience API
//!    password, identification, submit → `/oidc/auth/:uid` → code → `/oidc/token`), and their
//!    ratio to (1) (target ≥ 0.9);
//! 3. userinfo (`GET /oidc/me`) and introspection requests per second with opaque access
//!    tokens (target ≥ 8 000/s);
//! 4. `refresh_token` grants per second, each client rotating its own grant's token.
//!
//! Each figure comes with the CPU each party used and the bottleneck it points at.
//!
//! `cargo bench --bench oidc`. Settings (environment):
//! - `BENCH_SECONDS`  measured seconds per level (default 10)
//! - `BENCH_WARMUP`   warm-up seconds per level (default 2)
//! - `BENCH_SIGN_IN_CLIENTS` concurrent sign-in flows (default 4 per core)
//! - `BENCH_CLIENTS`  concurrent clients for userinfo, introspection and refresh, comma-separated
//!   (default 16,64)
//! - `IDLEDGER_BIN`   server binary to run (default: the `idledger` binary cargo built for this
//!   bench, in the release profile)
//! - `BENCH_QUIET_WAIT` seconds to wait, before each level, for other load on the machine to end
//!   (default 120; 0 disables)
//! - `BENCH_KEEP=1`   keep `target/bench-data/<pid>` (with the server's log) afterwards
//!
//! Smoke run: `BENCH_SECONDS=1 BENCH_WARMUP=0 BENCH_CLIENTS=4 BENCH_QUIET_WAIT=0 cargo bench --bench oidc`.

// Benches may abort on setup failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::server::{Bench, level, management_token};
use common::{BoxError, env_list, env_or};
use serde_json::{Value, json};

const REDIRECT: &str = "https://bench.example.com/callback";
const PASSWORD: &str = "Bench-Password-4242";
/// Distinct users, so the per-identifier sentinel sees ordinary traffic.
const USERS: usize = 32;

fn main() -> Result<(), BoxError> {
    // Every request comes from 127.0.0.1: the per-address limit would stop the bench.
    common::server::run(&[("IDLEDGER_SIGN_IN_RATE", "1000000000/1")], drive)
}

/// What the bench set up through the Management API.
struct Setup {
    base: String,
    app_id: String,
    app_secret: String,
    usernames: Vec<String>,
}

async fn set_up(base: &str) -> Result<Setup, BoxError> {
    let http = idledger::outbound::client_builder().build().unwrap();
    let token = management_token(&http, base).await?;
    let app: Value = http
        .post(format!("{base}/api/applications"))
        .bearer_auth(&token)
        .json(&json!({
            "name": "bench web app",
            "type": "Traditional",
            "oidcClientMetadata": {"redirectUris": [REDIRECT], "postLogoutRedirectUris": []},
        }))
        .send()
        .await?
        .json()
        .await?;
    let app_id = app["id"].as_str().ok_or("no application id")?.to_owned();
    let secrets: Value = http
        .get(format!("{base}/api/applications/{app_id}/secrets"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let app_secret = secrets[0]["value"].as_str().ok_or("no secret")?.to_owned();
    let mut usernames = Vec::new();
    for i in 0..USERS {
        let username = format!("bench_user_{i}");
        let created = http
            .post(format!("{base}/api/users"))
            .bearer_auth(&token)
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await?;
        if !created.status().is_success() {
            return Err(format!("creating {username}: {}", created.text().await?).into());
        }
        usernames.push(username);
    }
    Ok(Setup {
        base: base.to_owned(),
        app_id,
        app_secret,
        usernames,
    })
}

/// The tokens one sign-in ended with.
struct Signed {
    access: String,
    refresh: Option<String>,
}

fn bad(step: &str, status: reqwest::StatusCode, body: &str) -> BoxError {
    format!(
        "{step}: {status} {}",
        body.chars().take(300).collect::<String>()
    )
    .into()
}

/// One password sign-in through the whole flow, as a browser and the app's back channel do it.
/// The interaction cookie is carried by hand, so one connection pool serves every flow.
async fn sign_in(
    http: &reqwest::Client,
    setup: &Setup,
    username: &str,
    offline: bool,
) -> Result<Signed, BoxError> {
    let base = &setup.base;
    let scope = if offline {
        "openid profile offline_access"
    } else {
        "openid profile"
    };
    // Built in a block: the serializer is not Send and must not live across an await.
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("client_id", &setup.app_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", "bench");
        // Logto keeps offline access only with prompt=consent.
        if offline {
            query.append_pair("prompt", "consent");
        }
        query.finish()
    };
    let started = http.get(format!("{base}/oidc/auth?{query}")).send().await?;
    let cookie = started
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("_interaction="))
        .and_then(|c| c.split(';').next())
        .ok_or("no interaction cookie")?
        .to_owned();
    let verified = http
        .post(format!("{base}/api/experience/verification/password"))
        .header("cookie", &cookie)
        .json(&json!({"identifier": {"type": "username", "value": username}, "password": PASSWORD}))
        .send()
        .await?;
    let status = verified.status();
    let body: Value = verified.json().await?;
    let verification_id = body["verificationId"]
        .as_str()
        .ok_or_else(|| bad("password", status, &body.to_string()))?
        .to_owned();
    let identified = http
        .post(format!("{base}/api/experience/identification"))
        .header("cookie", &cookie)
        .json(&json!({"verificationId": verification_id}))
        .send()
        .await?;
    if identified.status() != reqwest::StatusCode::NO_CONTENT {
        return Err(bad(
            "identification",
            identified.status(),
            &identified.text().await?,
        ));
    }
    let submitted: Value = http
        .post(format!("{base}/api/experience/submit"))
        .header("cookie", &cookie)
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let resume = submitted["redirectTo"]
        .as_str()
        .and_then(|url| url.find("/oidc/auth/").map(|at| &url[at..]))
        .ok_or("no resume URL")?
        .to_owned();
    let answered = http
        .get(format!("{base}{resume}"))
        .header("cookie", &cookie)
        .send()
        .await?;
    let target = answered
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let code = url::Url::parse(&target)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("no code in {target:?}"))?;
    let issued = http
        .post(format!("{base}/oidc/token"))
        .basic_auth(&setup.app_id, Some(&setup.app_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await?;
    let status = issued.status();
    let body: Value = issued.json().await?;
    let access = body["access_token"]
        .as_str()
        .ok_or_else(|| bad("token", status, &body.to_string()))?
        .to_owned();
    Ok(Signed {
        access,
        refresh: body["refresh_token"].as_str().map(str::to_owned),
    })
}

/// Keeps up to 1 024 access tokens for the userinfo and introspection levels.
fn keep(tokens: &std::sync::Mutex<Vec<String>>, access: String) {
    let mut kept = tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if kept.len() < 1024 {
        kept.push(access);
    }
}

fn client() -> reqwest::Client {
    idledger::outbound::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// argon2id verifies per second on every core, with the server's parameters.
fn argon2_verifies_per_second(seconds: f64) -> Result<f64, BoxError> {
    let stored = idledger::crypto::password::hash(PASSWORD)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if matches!(
                        idledger::crypto::password::verify(PASSWORD, &stored),
                        Ok(true)
                    ) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// One level's outcome: completed operations in the window, their latencies, failures.
async fn drive(bench: Bench) -> Result<(), BoxError> {
    let server = &bench.server;
    let postmaster = common::postmaster_pid(&bench.dir);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let setup = Arc::new(set_up(&server.base).await?);
    let http = client();
    // A first sign-in proves the flow before anything is measured.
    let probe = sign_in(&http, &setup, &setup.usernames[0], false).await?;
    println!(
        "oidc bench: {cores} cores, durable PostgreSQL (fsync on), {seconds} s per level; {USERS} users"
    );

    // 1. The ceiling: argon2id alone.
    common::wait_for_quiet().await;
    let verifies = argon2_verifies_per_second(seconds)?;
    println!(
        "argon2id      raw verifies: {verifies:>7.1}/s on {cores} threads (m=19456 KiB, t=2, p=1), {:.1} ms of CPU each",
        cores as f64 * 1000.0 / verifies
    );

    // 2. Whole sign-ins.
    let sign_in_clients = env_or("BENCH_SIGN_IN_CLIENTS", 4 * cores);
    let tokens = Arc::new(std::sync::Mutex::new(vec![probe.access]));
    let flows = {
        let (setup, http, tokens) = (setup.clone(), http.clone(), tokens.clone());
        level(sign_in_clients, server, postmaster, move |index| {
            let (setup, http, tokens) = (setup.clone(), http.clone(), tokens.clone());
            async move {
                let username = &setup.usernames[index % setup.usernames.len()];
                let signed = sign_in(&http, &setup, username, false).await?;
                keep(&tokens, signed.access);
                Ok(())
            }
        })
        .await
    };
    flows.print("sign-ins", sign_in_clients);
    let argon2_share = flows.per_second * cores as f64 / verifies;
    println!(
        "             ratio to raw argon2id: {:.2} (target >= 0.90); argon2id is {:.0}% of the machine's CPU during sign-ins",
        flows.per_second / verifies,
        argon2_share * 100.0
    );

    // 3. Userinfo and introspection with the sign-ins' opaque tokens.
    let tokens: Arc<Vec<String>> = Arc::new(
        tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    );
    let counter = Arc::new(AtomicU64::new(0));
    for clients in env_list("BENCH_CLIENTS", &[16, 64]) {
        let userinfo = {
            let (setup, http, tokens, counter) =
                (setup.clone(), http.clone(), tokens.clone(), counter.clone());
            level(clients, server, postmaster, move |_| {
                let (setup, http, tokens, counter) =
                    (setup.clone(), http.clone(), tokens.clone(), counter.clone());
                async move {
                    let n = counter.fetch_add(1, Ordering::Relaxed) as usize;
                    let response = http
                        .get(format!("{}/oidc/me", setup.base))
                        .bearer_auth(&tokens[n % tokens.len()])
                        .send()
                        .await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    if status != reqwest::StatusCode::OK {
                        return Err(bad("userinfo", status, &String::from_utf8_lossy(&body)));
                    }
                    Ok(())
                }
            })
            .await
        };
        userinfo.print("userinfo", clients);
        let introspection = {
            let (setup, http, tokens, counter) =
                (setup.clone(), http.clone(), tokens.clone(), counter.clone());
            level(clients, server, postmaster, move |_| {
                let (setup, http, tokens, counter) =
                    (setup.clone(), http.clone(), tokens.clone(), counter.clone());
                async move {
                    let n = counter.fetch_add(1, Ordering::Relaxed) as usize;
                    let response = http
                        .post(format!("{}/oidc/token/introspection", setup.base))
                        .basic_auth(&setup.app_id, Some(&setup.app_secret))
                        .form(&[("token", tokens[n % tokens.len()].as_str())])
                        .send()
                        .await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    if status != reqwest::StatusCode::OK || !body.starts_with(b"{\"active\":true") {
                        return Err(bad(
                            "introspection",
                            status,
                            &String::from_utf8_lossy(&body),
                        ));
                    }
                    Ok(())
                }
            })
            .await
        };
        introspection.print("introspection", clients);
    }

    // 4. Refresh grants: one grant per client, each rotating its own chain.
    for clients in env_list("BENCH_CLIENTS", &[16, 64]) {
        let mut chains = Vec::new();
        for index in 0..clients {
            let username = &setup.usernames[index % setup.usernames.len()];
            let signed = sign_in(&http, &setup, username, true).await?;
            chains.push(tokio::sync::Mutex::new(
                signed.refresh.ok_or("no refresh token issued")?,
            ));
        }
        let chains = Arc::new(chains);
        let refreshed = {
            let (setup, http, chains) = (setup.clone(), http.clone(), chains.clone());
            level(clients, server, postmaster, move |index| {
                let (setup, http, chains) = (setup.clone(), http.clone(), chains.clone());
                async move {
                    let mut current = chains[index].lock().await;
                    let response = http
                        .post(format!("{}/oidc/token", setup.base))
                        .basic_auth(&setup.app_id, Some(&setup.app_secret))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", current.as_str()),
                        ])
                        .send()
                        .await?;
                    let status = response.status();
                    let body: Value = response.json().await?;
                    let next = body["refresh_token"]
                        .as_str()
                        .ok_or_else(|| bad("refresh", status, &body.to_string()))?;
                    *current = next.to_owned();
                    Ok(())
                }
            })
            .await
        };
        refreshed.print("refresh", clients);
    }

    let log =
        std::fs::read_to_string(bench.dir.join("server").join("server.log")).unwrap_or_default();
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
