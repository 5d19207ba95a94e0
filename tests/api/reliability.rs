//! Reliability under faults: the server killed mid-stream (alone, and with its managed
//! PostgreSQL), PostgreSQL restarted under load, two nodes on one database, and no secret in
//! the database or the logs. Each test prints its figures (`reliability: ...` lines); the
//! README's reliability section quotes them. Run with
//! `cargo test --test api reliability:: -- --nocapture`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use idledger::postgres::Cluster;

use crate::support::{
    BOOTSTRAP_ID, BOOTSTRAP_SECRET, MANAGEMENT_API, StoredEvent, TestServer, pg_ctl_stop,
};

/// Requests per crash round, and how many are on the wire at once.
const CRASH_REQUESTS: usize = 1_000;
const IN_FLIGHT: usize = 100;
/// Users created before a round, for the round's renames.
const RENAMED_USERS: usize = 250;

/// One request of the load, with what it should leave behind.
#[derive(Clone, Debug)]
enum Request {
    CreateUser { username: String },
    RenameUser { id: String, name: String },
    Token,
}

/// A request and its answer; `None` when no answer came (connection cut).
struct Answered {
    request_id: String,
    request: Request,
    reply: Option<(u16, Value)>,
    took: Duration,
}

/// Answers so far: all of them, the 2xx among them, and the 503s.
#[derive(Clone, Copy, Default, Debug)]
struct Progress {
    answered: usize,
    acknowledged: usize,
    refused: usize,
}
/// Where the load goes: the server's address and a Management API token, taken before the load.
#[derive(Clone)]
struct Target {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Target {
    async fn of(server: &TestServer) -> Target {
        Target {
            base: server.base.clone(),
            token: server.token().await,
            http: server.http.clone(),
        }
    }

    async fn send(&self, request_id: &str, request: &Request) -> Option<(u16, Value)> {
        let built = match request {
            Request::CreateUser { username } => self
                .http
                .post(format!("{}/api/users", self.base))
                .bearer_auth(&self.token)
                .json(&json!({"username": username})),
            Request::RenameUser { id, name } => self
                .http
                .patch(format!("{}/api/users/{id}", self.base))
                .bearer_auth(&self.token)
                .json(&json!({"name": name})),
            Request::Token => self
                .http
                .post(format!("{}/oidc/token", self.base))
                .basic_auth(BOOTSTRAP_ID, Some(BOOTSTRAP_SECRET))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("resource", MANAGEMENT_API),
                    ("scope", "all"),
                ]),
        };
        let response = built
            .header("x-request-id", request_id)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        // A body cut off by the crash is no answer either.
        let body: Value = response.json().await.ok()?;
        Some((status, body))
    }
}

/// The load: `workers` tasks each send the next request of `source` (by index) until it has
/// none or `stop` turns true. The receiver follows the answers as they come.
fn drive(
    target: Target,
    round: &str,
    workers: usize,
    source: impl Fn(usize) -> Option<Request> + Send + Sync + 'static,
    stop: watch::Receiver<bool>,
) -> (
    tokio::task::JoinHandle<Vec<Answered>>,
    watch::Receiver<Progress>,
) {
    let (progress, followed) = watch::channel(Progress::default());
    let (round, source, progress) = (round.to_owned(), Arc::new(source), Arc::new(progress));
    let next = Arc::new(AtomicUsize::new(0));
    let handle = tokio::spawn(async move {
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let (target, round, source) = (target.clone(), round.clone(), source.clone());
            let (progress, next, stop) = (progress.clone(), next.clone(), stop.clone());
            tasks.spawn(async move {
                let mut answered = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(request) = source(i).filter(|_| !*stop.borrow()) else {
                        return answered;
                    };
                    let request_id = format!("{round}-{i}");
                    let sent = Instant::now();
                    let reply = target.send(&request_id, &request).await;
                    if let Some((status, _)) = &reply {
                        progress.send_modify(|p| {
                            p.answered += 1;
                            p.acknowledged += usize::from((200..300).contains(status));
                            p.refused += usize::from(*status == 503);
                        });
                    }
                    answered.push(Answered {
                        request_id,
                        request,
                        reply,
                        took: sent.elapsed(),
                    });
                }
            });
        }
        let mut answered = Vec::new();
        while let Some(done) = tasks.join_next().await {
            answered.extend(done.unwrap());
        }
        answered
    });
    (handle, followed)
}

/// Creates `count` users at once; returns their ids.
async fn users(server: &TestServer, prefix: &str, count: usize) -> Vec<String> {
    let target = Target::of(server).await;
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let target = target.clone();
        let request = Request::CreateUser {
            username: format!("{prefix}_{i}"),
        };
        tasks.spawn(async move { target.send(&format!("setup-{i}"), &request).await });
    }
    let mut ids = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let (status, body) = reply.unwrap().expect("setup request answered");
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Four creations, three renames and three tokens in every ten requests, interleaved.
fn mix(round: &str, renamed: &[String], count: usize) -> Vec<Request> {
    let mut renames = renamed.iter();
    (0..count)
        .map(|i| match i % 10 {
            0..4 => Request::CreateUser {
                username: format!("{round}_{i}"),
            },
            4..7 => match renames.next() {
                Some(id) => Request::RenameUser {
                    id: id.clone(),
                    name: format!("{round} name {i}"),
                },
                None => Request::Token,
            },
            _ => Request::Token,
        })
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    sent: usize,
    acknowledged: usize,
    /// Acknowledged requests whose events and read-model rows are all there.
    found: usize,
    /// Answered 503 in Logto's error shape (the database was down).
    refused: usize,
    unanswered: usize,
    /// Unanswered or refused requests that were nevertheless committed (whole): the outcome
    /// of a commit cut by a crash or an outage is unknown to the server too.
    uncertain_committed: usize,
    /// The longest wait for an answer (or for the connection to fail).
    slowest: Duration,
}

/// Checks every request of a round against the log and the read models: an acknowledged
/// request left its events (by request id) and its read-model state; an unanswered one left
/// either all of it or nothing.
async fn audit(server: &TestServer, answered: &[Answered]) -> Tally {
    let events = server.events().await;
    let mut by_request: HashMap<&str, Vec<&StoredEvent>> = HashMap::new();
    for event in &events {
        if let Some(id) = &event.request_id {
            by_request.entry(id.as_str()).or_default().push(event);
        }
    }
    let rows = server
        .db()
        .await
        .query("SELECT id, username, name FROM users", &[])
        .await
        .unwrap();
    let by_id: HashMap<String, (Option<String>, Option<String>)> = rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let by_username: HashSet<String> = by_id.values().filter_map(|(u, _)| u.clone()).collect();

    let mut tally = Tally::default();
    for one in answered {
        tally.sent += 1;
        let recorded: Vec<&str> = by_request
            .get(one.request_id.as_str())
            .map(|events| events.iter().map(|e| e.event_type.as_str()).collect())
            .unwrap_or_default();
        tally.slowest = tally.slowest.max(one.took);
        let acknowledged = match &one.reply {
            Some((status, _)) if (200..300).contains(status) => true,
            Some((status, body)) => {
                assert_unavailable(*status, body, &one.request_id);
                tally.refused += 1;
                false
            }
            None => {
                tally.unanswered += 1;
                false
            }
        };
        // What the request did, as the log and the read models show it.
        let committed = match &one.request {
            Request::CreateUser { username } => {
                let present = by_username.contains(username);
                assert_eq!(
                    present,
                    recorded == ["user.created"],
                    "{}: read model and log disagree ({recorded:?})",
                    one.request_id
                );
                if let Some((_, body)) = one.reply.as_ref().filter(|_| acknowledged) {
                    let id = body["id"].as_str().unwrap();
                    assert_eq!(
                        by_id.get(id).and_then(|(u, _)| u.as_deref()),
                        Some(username.as_str())
                    );
                }
                present
            }
            Request::RenameUser { id, name } => {
                let renamed = by_id.get(id).and_then(|(_, n)| n.as_deref()) == Some(name);
                assert_eq!(
                    renamed,
                    recorded == ["user.updated"],
                    "{}: read model and log disagree ({recorded:?})",
                    one.request_id
                );
                renamed
            }
            Request::Token => {
                assert!(
                    recorded.is_empty() || recorded == ["exchange.issued"],
                    "{}: {recorded:?}",
                    one.request_id
                );
                !recorded.is_empty()
            }
        };
        if acknowledged {
            tally.acknowledged += 1;
            assert!(committed, "{}: acknowledged but lost", one.request_id);
            tally.found += 1;
        } else {
            tally.uncertain_committed += usize::from(committed);
        }
    }
    tally
}

/// One crash round: load, the crash once a third of the requests are answered, the restart,
/// then the audit (the restarted server answers, and the replay check passes).
async fn crash_round(server: &mut TestServer, round: &str, crash: fn(&mut TestServer)) -> Tally {
    let renamed = users(server, &format!("{round}_renamed"), RENAMED_USERS).await;
    let requests = mix(round, &renamed, CRASH_REQUESTS);
    let (_never, unstopped) = watch::channel(false);
    let (running, mut progress) = drive(
        Target::of(server).await,
        round,
        IN_FLIGHT,
        move |i| requests.get(i).cloned(),
        unstopped,
    );
    progress
        .wait_for(|p| p.answered >= CRASH_REQUESTS / 3)
        .await
        .unwrap();
    crash(server);
    let answered = running.await.unwrap();
    let tally = audit(server, &answered).await;
    assert!(tally.unanswered > 0, "the crash cut no request: {tally:?}");
    // The restarted server serves the same data.
    let someone = &renamed[0];
    server
        .get(&format!("/api/users/{someone}"))
        .await
        .expect(200);
    server.assert_replay_check();
    println!(
        "reliability: crash round {round}: {} requests, {} acknowledged, {} of them found \
         in the log and the read models; {} unanswered, of which {} committed whole and none \
         half-applied",
        tally.sent, tally.acknowledged, tally.found, tally.unanswered, tally.uncertain_committed
    );
    tally
}

/// An outage answer: 503 with Logto's error shape, `request.service_unavailable` from the
/// Management API, `temporarily_unavailable` (RFC 6749) from the token endpoint.
#[track_caller]
fn assert_unavailable(status: u16, body: &Value, request_id: &str) {
    assert_eq!(status, 503, "{request_id}: {body}");
    assert!(body["message"].is_string(), "{request_id}: {body}");
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        code == "request.service_unavailable"
            || (code == "oidc.temporarily_unavailable"
                && body["error"] == "temporarily_unavailable"),
        "{request_id}: {body}"
    );
}

fn recoveries(server: &TestServer) -> usize {
    std::fs::read_to_string(server.data_dir.join("postgres.log"))
        .unwrap_or_default()
        .matches("automatic recovery in progress")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_stream_loses_no_acknowledged_request() {
    // The server as `idledger serve` runs by default: its own PostgreSQL as a child process.
    let mut server = TestServer::start_managed(&[]).await;
    let started = Instant::now();

    // The server alone is killed: its cluster gets the parent-death signal (fast shutdown),
    // and the new process finds it still shutting down or gone.
    let alone = crash_round(&mut server, "sigkill", TestServer::restart).await;
    // The whole process group is killed: PostgreSQL recovers from its WAL on the next start.
    let before = recoveries(&server);
    let group = crash_round(
        &mut server,
        "killpg",
        TestServer::restart_after_killing_the_group,
    )
    .await;
    assert_eq!(
        recoveries(&server),
        before + 1,
        "PostgreSQL ran its crash recovery"
    );
    println!(
        "reliability: crash safety: {} acknowledged, {} found, 2 restarts survived (SIGKILL of \
         the server; SIGKILL of its process group with PostgreSQL crash recovery) in {:.0?}",
        alone.acknowledged + group.acknowledged,
        alone.found + group.found,
        started.elapsed()
    );
}

/// Waits for `what`, failing the test after `limit` rather than hanging it.
async fn within<T>(limit: Duration, what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {limit:?}"))
}

/// The longest a request may take while the database is away: the pool's wait for a
/// connection (5 s) plus room for a loaded machine.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_costs_no_acknowledged_write() {
    // A cluster of this test's own, to restart under the server. fsync is off: the restarts
    // stop PostgreSQL's processes, not the machine, so what a commit wrote is in the kernel's
    // page cache either way (synchronous_commit stays on: a commit is in the WAL when it is
    // acknowledged).
    let dir = crate::support::run_dir("restarted-postgres");
    let settings = [("fsync", "off")];
    let mut cluster = Cluster::start(&dir, &settings).unwrap();
    idledger::app::ensure_database(&cluster.url("postgres"), idledger::app::DATABASE)
        .await
        .unwrap();
    let server = TestServer::start_on(&cluster.url(idledger::app::DATABASE), &[]).await;
    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let (running, mut progress) = drive(
        Target::of(&server).await,
        "outage",
        8,
        |i| {
            Some(match i % 2 {
                0 => Request::CreateUser {
                    username: format!("outage_{i}"),
                },
                _ => Request::Token,
            })
        },
        stopped,
    );
    let mut outages = Vec::new();
    for mode in ["fast", "immediate"] {
        let before = *progress.borrow();
        within(Duration::from_secs(60), "requests flowing", async {
            progress
                .wait_for(|p| p.acknowledged >= before.acknowledged + 50)
                .await
                .unwrap();
        })
        .await;
        pg_ctl_stop(&dir, mode);
        let down = Instant::now();
        let at_stop = *progress.borrow();
        within(OUTAGE_ANSWER_BOUND * 2, "503s during the outage", async {
            progress
                .wait_for(|p| p.refused >= at_stop.refused + 20)
                .await
                .unwrap();
        })
        .await;
        drop(cluster);
        cluster = Cluster::start(&dir, &settings).unwrap();
        let up = Instant::now();
        let at_start = *progress.borrow();
        within(Duration::from_secs(30), "the server reconnecting", async {
            progress
                .wait_for(|p| p.acknowledged >= at_start.acknowledged + 50)
                .await
                .unwrap();
        })
        .await;
        outages.push(format!(
            "-m {mode}: down {:.1?}, answering again {:.1?} after the start",
            up - down,
            up.elapsed()
        ));
    }
    stop.send(true).unwrap();
    let answered = running.await.unwrap();
    let tally = audit(&server, &answered).await;
    assert!(
        tally.slowest < OUTAGE_ANSWER_BOUND,
        "a request hung: {tally:?}"
    );
    assert_eq!(tally.unanswered, 0, "every request was answered: {tally:?}");
    // The log followers (mail, webhooks) lost their sessions and locks; they resume from their
    // checkpoints and reach the head.
    let db = server.db().await;
    within(
        Duration::from_secs(30),
        "the followers catching up",
        async {
            loop {
                let row = db
                    .query_one(
                        "SELECT count(*), min(c.position), (SELECT position FROM event_head) \
                     FROM follower_checkpoints c",
                        &[],
                    )
                    .await
                    .unwrap();
                let (followers, slowest, head): (i64, Option<i64>, i64) =
                    (row.get(0), row.get(1), row.get(2));
                if followers >= 2 && slowest == Some(head) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    )
    .await;
    server.assert_replay_check();
    println!(
        "reliability: PostgreSQL restarted twice under load ({}): {} requests, {} acknowledged \
         and {} found, {} answered 503 in Logto's shape, 0 unanswered, 0 errors 500; slowest \
         answer {:.1?}; {} refused requests committed whole; followers resumed; {:.0?} in all",
        outages.join("; "),
        tally.sent,
        tally.acknowledged,
        tally.found,
        tally.refused,
        tally.slowest,
        tally.uncertain_committed,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_answer_as_one() {
    const PER_NODE: usize = 200;
    let server = TestServer::start().await;
    let node2 = server.second_node();
    let started = Instant::now();
    let renamed = users(&server, "spread_renamed", PER_NODE * 3 / 10 * 2).await;
    let first = Target::of(&server).await;
    // The second node has the same public endpoint: the first node's token is good there.
    let second = Target {
        base: node2.base.clone(),
        ..first.clone()
    };
    let (half, other_half) = renamed.split_at(renamed.len() / 2);
    let mut answered = Vec::new();
    let mut runs = Vec::new();
    for (target, round, renamed) in [(first, "node1", half), (second, "node2", other_half)] {
        let requests = mix(round, renamed, PER_NODE);
        let (_never, unstopped) = watch::channel(false);
        runs.push(
            drive(
                target,
                round,
                16,
                move |i| requests.get(i).cloned(),
                unstopped,
            )
            .0,
        );
    }
    for run in runs {
        answered.extend(run.await.unwrap());
    }
    let tally = audit(&server, &answered).await;
    assert_eq!(tally.acknowledged, 2 * PER_NODE, "{tally:?}");

    // Whichever node answers, the answer is the same: lists, single resources, the key set
    // and the discovery document.
    let renamed_path = format!("/api/users/{}", renamed[0]);
    for path in [
        "/api/users?page_size=100",
        "/api/users?page_size=100&page=3",
        renamed_path.as_str(),
        "/api/applications",
        "/oidc/jwks",
        "/oidc/.well-known/openid-configuration",
    ] {
        let one = server.get(path).await;
        let other = server
            .call_on(&node2.base, reqwest::Method::GET, path, None)
            .await;
        assert_eq!(one.status, 200, "{path}: {}", one.body);
        assert_eq!(one.body, other.body, "{path}");
        assert_eq!(
            one.header("total-number"),
            other.header("total-number"),
            "{path}"
        );
    }
    // A token the second node issued is accepted by the first: one signing-key set.
    let target = Target {
        base: node2.base.clone(),
        ..Target::of(&server).await
    };
    let (status, issued) = target.send("node2-token", &Request::Token).await.unwrap();
    assert_eq!(status, 200, "{issued}");
    server
        .call_with(
            Some(&format!(
                "Bearer {}",
                issued["access_token"].as_str().unwrap()
            )),
            "/api/users?page_size=1",
        )
        .await
        .expect(200);
    server.assert_replay_check();
    println!(
        "reliability: two nodes on one database: {} requests spread over both, {} acknowledged \
         and {} found; lists, resources, JWKS and discovery identical on both; {:.0?}",
        tally.sent,
        tally.acknowledged,
        tally.found,
        started.elapsed()
    );
}

/// Values the secrets audit sets itself, so it knows what to look for.
const AUDIT_PASSWORD: &str = "Audit-Horse-Battery-93";
const AUDIT_SMTP_PASSWORD: &str = "audit-smtp-Pa55-never-stored";

#[tokio::test]
async fn no_secret_of_the_flows_is_in_the_database_or_the_log() {
    use crate::browser::{Browser, code_of};
    use crate::oidc_flows::{Client, tokens};
    let server = TestServer::start().await;
    // (what, value) for every secret the flows below use or are given.
    let mut secrets: Vec<(&str, String)> = vec![
        ("bootstrap client secret", BOOTSTRAP_SECRET.to_owned()),
        ("key-encryption key", crate::support::KEK.to_owned()),
        ("password", AUDIT_PASSWORD.to_owned()),
        ("SMTP password", AUDIT_SMTP_PASSWORD.to_owned()),
    ];
    let ada = server
        .post(
            "/api/users",
            json!({"username": "ada", "password": AUDIT_PASSWORD, "primaryEmail": "ada@example.com"}),
        )
        .await
        .expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            &format!("/api/users/{ada}/password/verify"),
            json!({"password": AUDIT_PASSWORD}),
        )
        .await
        .expect(204);

    // An application's secret, an authorization code, tokens and a refresh rotation.
    let web = Client::create(&server, "Traditional", false).await;
    secrets.push(("client secret", web.secret.clone().unwrap()));
    let browser = Browser::new(&server);
    let started = browser
        .authorize(&web, "openid offline_access", &[("prompt", "consent")])
        .await;
    let code = code_of(
        &server,
        &browser
            .sign_in_with_api(&started, "ada", AUDIT_PASSWORD)
            .await,
    );
    let issued = tokens(&web.redeem(&server, &code).await);
    let refreshed = tokens(&web.refresh(&server, issued.refresh.as_ref().unwrap()).await);
    secrets.push(("authorization code", code));
    secrets.push(("refresh token", issued.refresh.unwrap()));
    secrets.push(("rotated refresh token", refreshed.refresh.unwrap()));
    secrets.push(("access token", issued.access));
    secrets.push(("ID token", issued.id_token.unwrap()));
    let m2m = server.token().await;
    secrets.push(("client-credentials token", m2m));

    // A one-time token, verified; a personal access token; TOTP and backup codes.
    let one_time = server
        .post("/api/one-time-tokens", json!({"email": "ada@example.com"}))
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .post(
            "/api/one-time-tokens/verify",
            json!({"token": one_time, "email": "ada@example.com"}),
        )
        .await
        .expect(200);
    secrets.push(("one-time token", one_time));
    let pat = server
        .post(
            &format!("/api/users/{ada}/personal-access-tokens"),
            json!({"name": "ci"}),
        )
        .await
        .expect(201)["value"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(("personal access token", pat));
    let mfa = format!("/api/users/{ada}/mfa-verifications");
    let totp = server.post(&mfa, json!({"type": "Totp"})).await;
    secrets.push((
        "TOTP secret",
        totp.expect(200)["secret"].as_str().unwrap().to_owned(),
    ));
    let backup = server.post(&mfa, json!({"type": "BackupCode"})).await;
    for code in backup.expect(200)["codes"].as_array().unwrap() {
        secrets.push(("backup code", code.as_str().unwrap().to_owned()));
    }

    // An SMTP connector's password.
    server
        .post(
            "/api/connectors",
            json!({"connectorId": "simple-mail-transfer-protocol", "config": {
                "host": "127.0.0.1", "port": 2525,
                "fromEmail": "Audit <no-reply@idledger.test>",
                "templates": crate::connectors::templates("text/plain"),
                "auth": {"user": "audit", "pass": AUDIT_SMTP_PASSWORD},
            }}),
        )
        .await
        .expect(200);

    // The signing key, as only the vault and the KEK give it.
    let private_key = signing_key(&server).await;

    let dump = std::process::Command::new(crate::support::pg_bin("pg_dump"))
        .arg("--dbname")
        .arg(server.database_url())
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    // The search can find things: the read models hold the e-mail address in the clear.
    assert!(dump.contains("COPY public.vault") && dump.contains("ada@example.com"));
    let log = server.server_log();
    assert!(log.contains("request served"), "the log was captured");
    for (name, text) in [("database dump", &dump), ("server log", &log)] {
        for (what, secret) in &secrets {
            // As text (a column or JSON), or as the bytes of a bytea column.
            assert!(
                !text.contains(secret.as_str()),
                "the {what} is in the {name}"
            );
            assert!(
                !text.contains(&hex(secret.as_bytes())),
                "the {what} is in the {name} as bytes"
            );
        }
        for (form, encoded) in [
            ("hex", hex(&private_key)),
            ("base64", STANDARD.encode(&private_key)),
            ("base64url", URL_SAFE_NO_PAD.encode(&private_key)),
        ] {
            assert!(
                !text.contains(&encoded),
                "the signing key is in the {name} ({form})"
            );
        }
    }
    println!(
        "reliability: secrets audit: {} secrets and the signing key checked against a {} kB \
         pg_dump and a {} kB server log: none found",
        secrets.len(),
        dump.len() / 1024,
        log.len() / 1024
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current signing key's PKCS#8 bytes, opened from the vault with the test KEK.
async fn signing_key(server: &TestServer) -> Vec<u8> {
    let row = server
        .db()
        .await
        .query_one(
            "SELECT v.ref, v.sealed FROM signing_keys k JOIN vault v ON v.ref = k.vault_ref \
             ORDER BY k.generation DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let keyring = idledger::crypto::Keyring::from_base64(crate::support::KEK).unwrap();
    keyring.open_vault(row.get(0), row.get(1)).unwrap()
}
