//! Webhooks (logto-compat §10): the `/api/hooks` routes with Logto's shapes and refusals, and
//! delivery from the log to a receiver this file starts, which checks every request's
//! `logto-signature-sha-256` HMAC: retried until it succeeds, in log order per hook, each
//! delivery carrying the same idempotency id (`hookRequestId`) in every attempt; nothing lost
//! when the server is SIGKILLed mid-delivery; never the same delivery from two nodes at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::TestServer;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    body: Value,
    /// Whether `logto-signature-sha-256` was the HMAC of the raw body under the key expected.
    signed: bool,
    user_agent: String,
    /// What the receiver answered.
    answered: u16,
}

impl Received {
    fn request_id(&self) -> &str {
        self.body["hookRequestId"].as_str().unwrap_or_default()
    }

    fn event(&self) -> &str {
        self.body["event"].as_str().unwrap_or_default()
    }
}

struct Inner {
    signing_key: Mutex<String>,
    /// How many requests still get a 500.
    failures_left: Mutex<usize>,
    /// Requests wait while this is false (a delivery caught in flight).
    open: watch::Receiver<bool>,
    /// How long each request is held before the answer: the window in which a second
    /// deliverer of the same delivery would overlap.
    hold: Duration,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Requests that arrived while another one of the same delivery was in flight.
    overlaps: Mutex<usize>,
    received: Mutex<Vec<Received>>,
    count: watch::Sender<usize>,
}

/// A webhook endpoint on a local port.
struct Receiver {
    url: String,
    inner: Arc<Inner>,
    gate: watch::Sender<bool>,
}

impl Receiver {
    async fn start(failures: usize, hold: Duration) -> Receiver {
        let (gate, open) = watch::channel(true);
        let inner = Arc::new(Inner {
            signing_key: Mutex::new(String::new()),
            failures_left: Mutex::new(failures),
            open,
            hold,
            in_flight: Mutex::new(HashMap::new()),
            overlaps: Mutex::new(0),
            received: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner, gate }
    }

    fn expect_key(&self, key: &str) {
        key.clone_into(&mut self.inner.signing_key.lock().unwrap());
    }

    fn fail_next(&self, failures: usize) {
        *self.inner.failures_left.lock().unwrap() = failures;
    }

    fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    fn overlaps(&self) -> usize {
        *self.inner.overlaps.lock().unwrap()
    }

    /// Waits (up to a minute) until the receiver has got `count` requests.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let mut arrived = self.inner.count.subscribe();
        let reached = tokio::time::timeout(
            Duration::from_secs(60),
            arrived.wait_for(|got| *got >= count),
        )
        .await;
        assert!(
            reached.is_ok(),
            "only {} of {count} requests arrived: {:#?}",
            self.received().len(),
            self.received()
        );
        self.received()
    }

    /// The deliveries the receiver accepted, each once (by idempotency id), in arrival order:
    /// what a receiver dropping duplicates keeps.
    fn accepted(&self) -> Vec<Received> {
        let mut seen = Vec::new();
        let mut kept = Vec::new();
        for request in self.received() {
            if request.answered == 200 && !seen.contains(&request.request_id().to_owned()) {
                seen.push(request.request_id().to_owned());
                kept.push(request);
            }
        }
        kept
    }

    /// Waits until `count` distinct deliveries were accepted.
    async fn wait_accepted(&self, count: usize) -> Vec<Received> {
        let mut arrived = self.inner.count.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(60), async {
            while self.accepted().len() < count {
                arrived.changed().await.unwrap();
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "only {} of {count} deliveries accepted: {:#?}",
            self.accepted().len(),
            self.received()
        );
        self.accepted()
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request_id = parsed["hookRequestId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let signature = headers
        .get("logto-signature-sha-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .unwrap_or_default();
    let key = inner.signing_key.lock().unwrap().clone();
    let signed = hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        &body,
        &signature,
    )
    .is_ok();
    {
        let mut in_flight = inner.in_flight.lock().unwrap();
        let running = in_flight.entry(request_id.clone()).or_default();
        if *running > 0 {
            *inner.overlaps.lock().unwrap() += 1;
        }
        *running += 1;
    }
    let answered = {
        let mut failures = inner.failures_left.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            500
        } else {
            200
        }
    };
    inner.received.lock().unwrap().push(Received {
        body: parsed,
        signed,
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        answered,
    });
    inner.count.send_modify(|count| *count += 1);
    let mut open = inner.open.clone();
    let _ = open.wait_for(|open| *open).await;
    tokio::time::sleep(inner.hold).await;
    if let Some(running) = inner.in_flight.lock().unwrap().get_mut(&request_id) {
        *running -= 1;
    }
    StatusCode::from_u16(answered).unwrap()
}

/// Creates a hook for `events` pointing at `url`; returns its id and signing key.
async fn create_hook(server: &TestServer, url: &str, events: &[&str]) -> (String, String) {
    let created = server
        .post(
            "/api/hooks",
            json!({"name": "Audit", "events": events,
                   "config": {"url": url, "headers": {"x-tenant": "acme"}}}),
        )
        .await;
    let created = created.expect(201);
    (
        created["id"].as_str().unwrap().to_owned(),
        created["signingKey"].as_str().unwrap().to_owned(),
    )
}

async fn create_user(server: &TestServer, username: &str) -> String {
    let created = server
        .post("/api/users", json!({"username": username}))
        .await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

/// The log position a delivery's idempotency id names (`<hook id>:<position>`).
fn position(request: &Received) -> i64 {
    request
        .request_id()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

/// Waits (up to a minute) until the webhook follower's checkpoint reaches the log's head.
pub async fn follower_caught_up(server: &TestServer) {
    let db = server.db().await;
    let head: i64 = db
        .query_one("SELECT position FROM event_head", &[])
        .await
        .unwrap()
        .get(0);
    let caught_up = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let at: i64 = db
                .query_one(
                    "SELECT position FROM follower_checkpoints WHERE name = 'webhooks'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if at >= head {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(caught_up.is_ok(), "the webhook follower did not catch up");
}

const USER_EVENTS: &[&str] = &["User.Created", "User.Data.Updated", "User.Deleted"];

#[tokio::test]
async fn deliveries_are_retried_until_accepted_in_order_and_signed() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(3, Duration::ZERO).await;
    let (hook, key) = create_hook(&server, &receiver.url, USER_EVENTS).await;
    receiver.expect_key(&key);

    let ada = create_user(&server, "ada").await;
    server
        .patch(
            &format!("/api/users/{ada}"),
            json!({"name": "Ada Lovelace"}),
        )
        .await
        .expect(200);
    server
        .delete(&format!("/api/users/{ada}"))
        .await
        .expect(204);

    let accepted = receiver.wait_accepted(3).await;
    let all = receiver.received();
    // The first three attempts failed; each retry sent the same delivery again.
    assert_eq!(all.len(), 6, "{all:#?}");
    assert!(all[..3].iter().all(|r| r.answered == 500));
    assert!(all[..4].iter().all(|r| r.body == all[0].body), "same bytes");
    assert!(all.iter().all(|r| r.signed), "every signature is valid");
    assert!(
        all.iter()
            .all(|r| r.user_agent == "Logto (https://logto.io/)")
    );
    let events: Vec<&str> = accepted.iter().map(Received::event).collect();
    assert_eq!(events, USER_EVENTS);
    let positions: Vec<i64> = accepted.iter().map(position).collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    for request in &accepted {
        assert_eq!(request.body["hookId"], hook);
        assert!(request.request_id().starts_with(&format!("{hook}:")));
        assert!(request.body["createdAt"].as_str().unwrap().contains('T'));
    }
    let created = &accepted[0].body;
    assert_eq!(created["data"]["id"], ada);
    assert_eq!(created["data"]["username"], "ada");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["matchedRoute"], "/users");
    assert_eq!(accepted[1].body["data"]["name"], "Ada Lovelace");
    assert_eq!(accepted[1].body["path"], format!("/users/{ada}"));
    assert_eq!(accepted[2].body["data"]["id"], ada);

    // Every attempt is a `TriggerHook.<event>` entry of the hook's recent logs, never of
    // `/api/logs`, and counts in the execution stats.
    follower_caught_up(&server).await;
    let logs = server.get(&format!("/api/hooks/{hook}/recent-logs")).await;
    assert_eq!(logs.header("total-number"), Some("6"));
    let logs = logs.expect(200).as_array().unwrap().clone();
    let created_logs: Vec<&Value> = logs
        .iter()
        .filter(|l| l["key"] == "TriggerHook.User.Created")
        .collect();
    assert_eq!(created_logs.len(), 4);
    assert_eq!(
        created_logs
            .iter()
            .filter(|l| l["payload"]["result"] == "Error")
            .count(),
        3
    );
    assert!(created_logs.iter().all(|l| l["payload"]["hookId"] == hook));
    let success = created_logs
        .iter()
        .find(|l| l["payload"]["result"] == "Success")
        .unwrap();
    assert_eq!(success["payload"]["response"]["statusCode"], 200);
    assert_eq!(
        success["payload"]["hookRequest"]["body"]["hookRequestId"],
        accepted[0].body["hookRequestId"]
    );
    let only_deleted = server
        .get(&format!(
            "/api/hooks/{hook}/recent-logs?logKey=TriggerHook.User.Deleted"
        ))
        .await;
    assert_eq!(only_deleted.expect(200).as_array().unwrap().len(), 1);
    let audit = server.get("/api/logs").await;
    assert!(
        audit
            .expect(200)
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l["key"].as_str().unwrap().starts_with("TriggerHook"))
    );
    let listed = server.get("/api/hooks?includeExecutionStats=true").await;
    let listed = listed.expect(200).as_array().unwrap().clone();
    assert_eq!(
        listed[0]["executionStats"],
        json!({"requestCount": 6, "successCount": 3})
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn hooks_routes_have_logtos_shapes_and_refusals() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(0, Duration::ZERO).await;

    server
        .post(
            "/api/hooks",
            json!({"name": "x", "config": {"url": receiver.url}}),
        )
        .await
        .expect_error(400, "hook.missing_events");
    server
        .post(
            "/api/hooks",
            json!({"name": "x", "events": ["User.Exploded"], "config": {"url": receiver.url}}),
        )
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .post(
            "/api/hooks",
            json!({"name": "x", "events": ["PostSignIn"], "config": {"url": "not a url"}}),
        )
        .await
        .expect_error(400, "guard.invalid_input");

    let created = server
        .post(
            "/api/hooks",
            json!({"name": "Sign-ins", "events": ["PostSignIn", "PostSignIn"],
                   "config": {"url": receiver.url}}),
        )
        .await;
    let created = created.expect(201).clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 21);
    assert_eq!(created["tenantId"], "default");
    assert_eq!(created["name"], "Sign-ins");
    assert_eq!(created["events"], json!(["PostSignIn"]));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["config"]["url"], receiver.url);
    assert!(created["createdAt"].is_i64());
    assert!(created.get("executionStats").is_none());
    let key = created["signingKey"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);
    // The key is sealed in the vault, never in an event.
    let events = server.events().await;
    let dump =
        serde_json::to_string(&events.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    assert!(!dump.contains(&key));
    let created_event = events
        .iter()
        .find(|e| e.event_type == "hook.created")
        .unwrap();
    assert_eq!(created_event.actor_kind, "app");
    assert!(created_event.request_id.is_some());

    let got = server.get(&format!("/api/hooks/{id}")).await;
    assert_eq!(got.expect(200)["signingKey"], key);
    let got = server
        .get(&format!("/api/hooks/{id}?includeExecutionStats=true"))
        .await;
    assert_eq!(
        got.expect(200)["executionStats"],
        json!({"requestCount": 0, "successCount": 0})
    );
    server
        .get("/api/hooks/nope")
        .await
        .expect_error(404, "entity.not_exists_with_id");

    let patched = server
        .patch(
            &format!("/api/hooks/{id}"),
            json!({"name": "Everything", "events": ["PostSignIn", "User.Created"], "enabled": false}),
        )
        .await;
    let patched = patched.expect(200).clone();
    assert_eq!(patched["name"], "Everything");
    assert_eq!(patched["events"], json!(["PostSignIn", "User.Created"]));
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["signingKey"], key);
    server
        .patch(&format!("/api/hooks/{id}"), json!({"events": []}))
        .await
        .expect_error(400, "guard.invalid_input");
    server
        .patch("/api/hooks/nope", json!({"name": "x"}))
        .await
        .expect_error(404, "entity.not_exists_with_id");

    let rotated = server
        .patch(&format!("/api/hooks/{id}/signing-key"), json!({}))
        .await;
    let new_key = rotated.expect(200)["signingKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_key.len(), 32);
    assert_ne!(new_key, key);

    // The test sends Logto's sample payload of each event, signed with the current key.
    receiver.expect_key(&new_key);
    server
        .post(
            &format!("/api/hooks/{id}/test"),
            json!({"events": ["PostSignIn", "User.Created"], "config": {"url": receiver.url}}),
        )
        .await
        .expect(204);
    let tested = receiver.wait_for(2).await;
    assert!(tested.iter().all(|r| r.signed));
    assert_eq!(tested[0].event(), "PostSignIn");
    assert_eq!(tested[0].body["hookId"], id);
    assert_eq!(tested[0].body["user"]["id"], "fake-id");
    assert_eq!(tested[1].event(), "User.Created");
    receiver.fail_next(1);
    let refused = server
        .post(
            &format!("/api/hooks/{id}/test"),
            json!({"events": ["PostSignIn"], "config": {"url": receiver.url}}),
        )
        .await;
    refused.expect_error(422, "hook.endpoint_responded_with_error");
    assert_eq!(refused.body["data"]["responseStatus"], 500);
    server
        .post(
            "/api/hooks/nope/test",
            json!({"events": ["PostSignIn"], "config": {"url": receiver.url}}),
        )
        .await
        .expect_error(404, "entity.not_exists_with_id");

    // A disabled hook gets nothing, once the follower has gone past the event.
    create_user(&server, "quiet").await;
    follower_caught_up(&server).await;

    let logs = server.get(&format!("/api/hooks/{id}/recent-logs")).await;
    assert_eq!(logs.expect(200), &json!([]));

    server.delete(&format!("/api/hooks/{id}")).await.expect(204);
    server
        .get(&format!("/api/hooks/{id}"))
        .await
        .expect_error(404, "entity.not_exists_with_id");
    server
        .delete(&format!("/api/hooks/{id}"))
        .await
        .expect_error(404, "entity.not_exists_with_id");
    assert_eq!(server.get("/api/hooks").await.expect(200), &json!([]));
    // The tests (not deliveries) left no attempt on record; the disabled hook none either.
    assert_eq!(receiver.received().len(), 3);
    server.assert_replay_check();
}

#[tokio::test]
async fn a_server_killed_mid_delivery_delivers_everything_after_its_restart() {
    let mut server = TestServer::start().await;
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let (hook, key) = create_hook(&server, &receiver.url, USER_EVENTS).await;
    receiver.expect_key(&key);

    // The receiver holds the first request: the server is killed with it in flight.
    receiver.gate.send_replace(false);
    let ada = create_user(&server, "ada").await;
    let grace = create_user(&server, "grace").await;
    receiver.wait_for(1).await;
    server.restart();
    receiver.gate.send_replace(true);
    let lin = create_user(&server, "lin").await;

    let accepted = receiver.wait_accepted(3).await;
    let ids: Vec<&Value> = accepted.iter().map(|r| &r.body["data"]["id"]).collect();
    assert_eq!(ids, [&json!(ada), &json!(grace), &json!(lin)]);
    assert!(receiver.received().iter().all(|r| r.signed));
    let positions: Vec<i64> = accepted.iter().map(position).collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    // The request caught in flight came again after the restart, with the same idempotency
    // id (at least once; the receiver drops the copy).
    let first = receiver.received()[0].request_id().to_owned();
    assert_eq!(first, accepted[0].request_id());
    assert!(first.starts_with(&format!("{hook}:")));
    // Nothing more is sent once all is delivered: one success on record per delivery.
    follower_caught_up(&server).await;
    let logs = server.get(&format!("/api/hooks/{hook}/recent-logs")).await;
    let logs = logs.expect(200).as_array().unwrap().clone();
    let successes = logs
        .iter()
        .filter(|l| l["payload"]["result"] == "Success")
        .count();
    assert_eq!(successes, 3, "{logs:#?}");
    server.assert_replay_check();
}

#[tokio::test]
async fn two_nodes_never_send_one_delivery_at_the_same_time() {
    let server = TestServer::start().await;
    let _second = server.second_node();
    // Each request is held a moment, so a second node sending the same delivery would overlap.
    let receiver = Receiver::start(2, Duration::from_millis(300)).await;
    let (_, key) = create_hook(&server, &receiver.url, USER_EVENTS).await;
    receiver.expect_key(&key);

    for name in ["ada", "grace", "lin", "joan"] {
        create_user(&server, name).await;
    }
    let accepted = receiver.wait_accepted(4).await;
    let positions: Vec<i64> = accepted.iter().map(position).collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    assert_eq!(receiver.overlaps(), 0);
    // Two failures, then one request per delivery: no attempt was sent twice.
    let received = receiver.received();
    assert_eq!(received.len(), 6, "{received:#?}");
    follower_caught_up(&server).await;
    let attempts = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "hook_delivery.attempted")
        .count();
    assert_eq!(attempts, 6);
    server.assert_replay_check();
}
