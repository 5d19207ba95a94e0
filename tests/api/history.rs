//! History for auditors and analysts: a user as of a past moment (`GET /api/users/:id?asOf=`,
//! `replay user --as-of`), a user's audit trail (`/api/users/:id/history`), the events API for
//! integrations (`/api/events`), and the replay CLI's `export`, `stats`, `report` and
//! `rebuild-as-of`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::browser::Browser;
use crate::oidc::{REDIRECT, app};
use crate::support::{BOOTSTRAP_ID, TestServer};

const PASSWORD: &str = "Correct-Horse-42";
const USER_AGENT: &str = "history-tests/1.0";

/// Signs `username` in to `client_id` through the Experience API, after one wrong password;
/// returns the authorization code.
async fn sign_in(server: &TestServer, client_id: &str, username: &str) -> String {
    let browser = Browser::builder(server).user_agent(USER_AGENT).build();
    browser.start(client_id, "openid", &[]).await;
    browser
        .put("/api/experience", json!({"interactionEvent": "SignIn"}))
        .await
        .expect(204);
    browser
        .verify_password(username, "wrong-password")
        .await
        .expect_error(422, "session.invalid_credentials");
    let verified = browser.verify_password(username, PASSWORD).await;
    browser
        .identify(verified.expect(200)["verificationId"].as_str().unwrap())
        .await;
    browser.submit_and_resume(server).await
}

fn ms(user: &Value, field: &str) -> i64 {
    user[field].as_i64().unwrap()
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

async fn shown(server: &TestServer, id: &str) -> Value {
    server
        .get(&format!("/api/users/{id}"))
        .await
        .expect(200)
        .clone()
}

/// Asserts that `asOf` each moment's `updatedAt` answers what the API answered then.
async fn as_of_each(server: &TestServer, id: &str, moments: &[Value]) {
    for (step, moment) in moments.iter().enumerate() {
        let at = ms(moment, "updatedAt");
        let past = server.get(&format!("/api/users/{id}?asOf={at}")).await;
        assert_eq!(past.expect(200), moment, "as of step {step} ({at})");
    }
}

#[tokio::test]
async fn as_of_shows_a_user_exactly_as_the_api_did_at_ten_moments_even_after_deletion() {
    let server = TestServer::start().await;
    let (web, _) = app(&server, "Traditional").await;
    let created = server
        .post(
            "/api/users",
            json!({"username": "ada", "password": PASSWORD, "customData": {"plan": "free"}}),
        )
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let path = format!("/api/users/{id}");
    let mut moments = vec![shown(&server, &id).await];
    let steps: Vec<(&str, String, Value)> = vec![
        ("PATCH", path.clone(), json!({"name": "Ada Lovelace"})),
        (
            "PATCH",
            format!("{path}/custom-data"),
            json!({"customData": {"seats": 3}}),
        ),
        (
            "PATCH",
            format!("{path}/profile"),
            json!({"profile": {"givenName": "Ada"}}),
        ),
        (
            "PATCH",
            format!("{path}/is-suspended"),
            json!({"isSuspended": true}),
        ),
        (
            "PATCH",
            format!("{path}/is-suspended"),
            json!({"isSuspended": false}),
        ),
        (
            "PATCH",
            path.clone(),
            json!({"primaryEmail": "ada@example.com"}),
        ),
        ("SIGN-IN", String::new(), Value::Null),
        (
            "PATCH",
            format!("{path}/custom-data"),
            json!({"customData": {"plan": "pro"}}),
        ),
        (
            "PATCH",
            path.clone(),
            json!({"name": null, "avatar": "https://example.com/a.png"}),
        ),
    ];
    for (method, target, body) in steps {
        if method == "SIGN-IN" {
            sign_in(&server, &web, "ada").await;
        } else {
            server.patch(&target, body).await.expect(200);
        }
        moments.push(shown(&server, &id).await);
    }
    assert_eq!(moments.len(), 10);
    assert_eq!(moments[7]["applicationId"], web, "the sign-in is a moment");
    assert!(moments[7]["lastSignInAt"].is_i64());
    // Every moment is a different state.
    for pair in moments.windows(2) {
        assert_ne!(pair[0], pair[1]);
    }

    as_of_each(&server, &id, &moments).await;
    // RFC 3339 names the same millisecond.
    let at = ms(&moments[4], "updatedAt");
    let past = server
        .get(&format!("/api/users/{id}?asOf={}", rfc3339(at)))
        .await;
    assert_eq!(past.expect(200), &moments[4]);
    assert_eq!(past.body["isSuspended"], true);
    server
        .get(&format!(
            "/api/users/{id}?asOf={}",
            ms(&moments[0], "createdAt") - 1
        ))
        .await
        .expect_error(404, "entity.not_found");
    for bad in ["yesterday", "2024-13-01T00:00:00Z", "1e3"] {
        server
            .get(&format!("/api/users/{id}?asOf={bad}"))
            .await
            .expect_error(400, "guard.invalid_input");
    }

    // The CLI prints the same JSON.
    let at = ms(&moments[5], "updatedAt").to_string();
    let output = server.replay(&["user", &id, "--as-of", &at]);
    assert!(output.status.success(), "{output:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, moments[5]);

    // Deleted, the user is gone now but can still be viewed as of any moment it existed.
    server.delete(&path).await.expect(204);
    server
        .get(&path)
        .await
        .expect_error(404, "entity.not_found");
    as_of_each(&server, &id, &moments).await;
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000 + 1000;
    server
        .get(&format!("{path}?asOf={now}"))
        .await
        .expect_error(404, "entity.not_found");
    let gone = server.replay(&["user", &id]);
    assert_eq!(gone.status.code(), Some(2), "{gone:?}");
    server.assert_replay_check();
}

#[tokio::test]
async fn a_users_history_says_who_did_what_from_where_with_before_and_after() {
    let server = TestServer::start().await;
    let (web, secret) = app(&server, "Traditional").await;
    let secret = secret.unwrap();
    let created = server
        .post(
            "/api/users",
            json!({"username": "grace", "primaryEmail": "grace@example.com", "password": PASSWORD}),
        )
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let path = format!("/api/users/{id}");
    let changed = server
        .http
        .patch(server.url(&path))
        .bearer_auth(server.token().await)
        .header("x-request-id", "history-42")
        .header("user-agent", "auditor/2.0")
        .json(&json!({"primaryEmail": "grace@navy.mil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status().as_u16(), 200);
    server
        .patch(
            &format!("{path}/is-suspended"),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    server
        .patch(
            &format!("{path}/is-suspended"),
            json!({"isSuspended": false}),
        )
        .await
        .expect(200);
    let code = sign_in(&server, &web, "grace").await;
    let exchange = |code: String| {
        let (server, web, secret) = (&server, web.clone(), secret.clone());
        async move {
            server
                .token_request(
                    Some((&web, &secret)),
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                    ],
                )
                .await
        }
    };
    exchange(code.clone()).await.expect(200);
    let reused = exchange(code).await;
    assert_eq!(reused.status.as_u16(), 400, "{}", reused.body);

    let reply = server.get(&format!("{path}/history?page_size=100")).await;
    let entries = reply.expect(200).as_array().unwrap().clone();
    let total: usize = reply.header("total-number").unwrap().parse().unwrap();
    assert_eq!(total, entries.len());
    let positions: Vec<i64> = entries
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] > p[1]), "newest first");
    let find =
        |kind: &str| -> Vec<&Value> { entries.iter().filter(|e| e["type"] == kind).collect() };

    let created = find("user.created")[0];
    assert_eq!(created["summary"], "Created");
    assert_eq!(created["before"], Value::Null);
    assert_eq!(created["after"]["username"], "grace");
    assert_eq!(created["after"]["hasPassword"], true);
    assert!(created["after"].get("passwordDigest").is_none());

    let email = find("user.updated")[0];
    assert_eq!(email["summary"], "Email changed");
    assert_eq!(email["actor"], json!({"kind": "app", "id": BOOTSTRAP_ID}));
    assert_eq!(email["ip"], "127.0.0.1");
    assert_eq!(email["userAgent"], "auditor/2.0");
    assert_eq!(email["requestId"], "history-42");
    assert!(email["createdAt"].as_i64().unwrap() >= created["createdAt"].as_i64().unwrap());
    assert_eq!(
        email["before"],
        json!({"primaryEmail": "grace@example.com"})
    );
    assert_eq!(email["after"], json!({"primaryEmail": "grace@navy.mil"}));

    let suspended = find("user.suspended")[0];
    assert_eq!(suspended["summary"], "Suspended");
    assert_eq!(suspended["before"], json!({"isSuspended": false}));
    assert_eq!(suspended["after"], json!({"isSuspended": true}));
    assert_eq!(find("user.reactivated")[0]["summary"], "Reactivated");

    let signed_in = find("session.client_added")[0];
    assert_eq!(signed_in["summary"], "Signed in to Traditional app");
    assert_eq!(signed_in["actor"], json!({"kind": "user", "id": id}));
    assert_eq!(signed_in["userAgent"], USER_AGENT);
    assert!(
        signed_in.get("before").is_none(),
        "only the user's own events"
    );
    assert_eq!(
        find("grant.code_issued")[0]["summary"],
        "Authorization code issued to Traditional app"
    );
    assert_eq!(
        find("grant.code_redeemed")[0]["summary"],
        "Authorization code exchanged for tokens"
    );
    assert_eq!(
        find("grant.code_reused")[0]["summary"],
        "Authorization code reused: grant revoked"
    );
    for entry in &entries {
        assert!(entry["requestId"].is_string(), "{entry}");
        assert!(entry["summary"].as_str().is_some_and(|s| !s.is_empty()));
    }

    // Paginated like every list.
    let page = server
        .get(&format!("{path}/history?page=2&page_size=3"))
        .await;
    assert_eq!(page.expect(200).as_array().unwrap().len(), 3);
    assert_eq!(
        page.header("total-number"),
        Some(total.to_string().as_str())
    );
    let links: Vec<&str> = page
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        links
            .iter()
            .any(|l| l.contains("rel=\"next\"") && l.contains("page=3")),
        "{links:?}"
    );
    assert_eq!(page.body[0]["position"], entries[3]["position"]);

    // Deleting the user keeps its history.
    server.delete(&path).await.expect(204);
    let after = server.get(&format!("{path}/history?page_size=100")).await;
    let kept = after.expect(200).as_array().unwrap();
    assert!(kept.len() > total);
    let deleted = kept.iter().find(|e| e["type"] == "user.deleted").unwrap();
    assert_eq!(deleted["summary"], "Deleted");
    assert_eq!(deleted["after"], Value::Null);
    assert_eq!(deleted["before"]["primaryEmail"], "grace@navy.mil");
    server
        .get("/api/users/nobody/history")
        .await
        .expect_error(404, "entity.not_found");
}

#[tokio::test]
async fn the_events_api_is_gapless_unsealed_and_its_long_poll_wakes_up() {
    let server = std::sync::Arc::new(TestServer::start().await);
    server
        .post(
            "/api/users",
            json!({"username": "hedy", "primaryEmail": "hedy@example.com", "password": PASSWORD}),
        )
        .await
        .expect(200);
    let stored = server.events().await;
    let all = server.get("/api/events?limit=1000").await;
    let all = all.expect(200).as_array().unwrap().clone();
    assert_eq!(all.len(), stored.len());
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, (1..=stored.len() as i64).collect::<Vec<_>>());

    // Following page by page from the last position gets the same, gap-free.
    let mut followed = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get(&format!("/api/events?after={after}&limit=4"))
            .await;
        let page = page.expect(200).as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["position"].as_i64().unwrap();
        followed.extend(page);
    }
    assert_eq!(followed, all);

    // Personal data comes unsealed (the log stores it sealed); a digest never leaves.
    let created = all.iter().find(|e| e["type"] == "user.created").unwrap();
    assert_eq!(created["payload"]["primaryEmail"], "hedy@example.com");
    assert_eq!(created["payload"]["passwordDigest"], "[withheld]");
    assert_eq!(created["ip"], "127.0.0.1");
    assert_eq!(created["userAgent"], "idledger-tests/1.0");
    assert_eq!(created["actor"], json!({"kind": "app", "id": BOOTSTRAP_ID}));
    assert_eq!(created["subjectId"], created["streamId"]);
    assert_eq!(created["erased"], false);
    assert!(created["requestId"].is_string());

    for bad in ["limit=0", "limit=1001", "wait=31", "after=-1", "after=x"] {
        server
            .get(&format!("/api/events?{bad}"))
            .await
            .expect_error(400, "guard.invalid_input");
    }
    server
        .call_with(None, "/api/events")
        .await
        .expect_error(401, "auth.authorization_header_missing");
    let head = *positions.last().unwrap();
    let caught_up = server.get(&format!("/api/events?after={head}")).await;
    assert_eq!(caught_up.expect(200), &json!([]));

    // A long poll at the head answers with the next event as soon as it is committed.
    let polling = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .get(&format!("/api/events?after={head}&wait=30"))
                .await
        })
    };
    server
        .post(
            "/api/roles",
            json!({"name": "auditor", "description": "reads"}),
        )
        .await
        .expect(200);
    let woken = polling.await.unwrap();
    let events = woken.expect(200).as_array().unwrap();
    assert_eq!(events[0]["position"], head + 1);
    assert_eq!(events[0]["type"], "role.created");
}

/// Lines of the replay command's standard output, which must have succeeded.
fn lines(output: &std::process::Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "replay failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn count(server: &TestServer, condition: &str) -> usize {
    let db = server.db().await;
    let row = db
        .query_one(
            &format!("SELECT count(*) FROM events WHERE {condition}"),
            &[],
        )
        .await
        .unwrap();
    usize::try_from(row.get::<_, i64>(0)).unwrap()
}

#[tokio::test]
async fn replay_exports_counts_prints_reports_and_rebuilds_as_of() {
    let server = TestServer::start().await;
    let (web, _) = app(&server, "Traditional").await;
    let mut ids = Vec::new();
    for name in ["alan", "barbara"] {
        let created = server
            .post(
                "/api/users",
                json!({"username": name, "password": PASSWORD, "name": name}),
            )
            .await;
        ids.push(created.expect(200)["id"].as_str().unwrap().to_owned());
    }
    let before_rename = shown(&server, &ids[0]).await;
    // The moment both users exist and nothing else has happened to them yet.
    let as_of = ms(&shown(&server, &ids[1]).await, "updatedAt").to_string();
    server
        .patch(
            &format!("/api/users/{}", ids[0]),
            json!({"name": "Alan Turing"}),
        )
        .await
        .expect(200);
    server
        .patch(
            &format!("/api/users/{}/is-suspended", ids[1]),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    sign_in(&server, &web, "alan").await;
    let total = count(&server, "true").await;
    let dir = server.data_dir.join("replay-out");
    std::fs::create_dir_all(&dir).unwrap();

    // JSON Lines: every event once, in position order, in the shape of the events API.
    let exported = lines(&server.replay(&["export"]));
    assert_eq!(exported.len(), total);
    let parsed: Vec<Value> = exported
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let positions: Vec<i64> = parsed
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, (1..=total as i64).collect::<Vec<_>>());
    let api = server.get("/api/events?limit=1000").await;
    assert_eq!(
        api.expect(200).as_array().unwrap()[..total],
        parsed[..],
        "export and the events API agree"
    );

    // CSV to a file: a header and one record per event.
    let csv = dir.join("events.csv");
    lines(&server.replay(&["export", "--format", "csv", "--out", csv.to_str().unwrap()]));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("position,created_at,occurred_at,stream_type,"));
    assert_eq!(text.lines().count(), total + 1);

    // Filters select what SQL over the log selects.
    let user_events = count(&server, "stream_type = 'user'").await;
    assert_eq!(
        lines(&server.replay(&["export", "--stream-type", "user"])).len(),
        user_events
    );
    let alan = count(
        &server,
        &format!("stream_type = 'user' AND stream_id = '{}'", ids[0]),
    )
    .await;
    assert_eq!(alan, 2);
    assert_eq!(
        lines(&server.replay(&["export", "--stream-type", "user", "--stream-id", &ids[0]])).len(),
        alan
    );
    let suspended = lines(&server.replay(&[
        "export",
        "--type",
        "user.suspended",
        "--type",
        "user.updated",
    ]));
    assert_eq!(suspended.len(), 2);
    let by_app = count(
        &server,
        &format!("actor_kind = 'app' AND actor_id = '{BOOTSTRAP_ID}'"),
    )
    .await;
    assert!(by_app > 0);
    assert_eq!(
        lines(&server.replay(&["export", "--actor", &format!("app:{BOOTSTRAP_ID}")])).len(),
        by_app
    );
    let renamed = parsed.iter().find(|e| e["type"] == "user.updated").unwrap();
    let at = renamed["createdAt"].as_i64().unwrap();
    let until_rename = count(
        &server,
        &format!(
            "occurred_at < timestamptz 'epoch' + {} * interval '1 millisecond'",
            at + 1
        ),
    )
    .await;
    assert_eq!(
        lines(&server.replay(&["export", "--to", &at.to_string()])).len(),
        until_rename
    );
    assert_eq!(
        lines(&server.replay(&["export", "--from", &(at + 1).to_string()])).len(),
        total - until_rename
    );
    let bad = server.replay(&["export", "--actor", "robot"]);
    assert_eq!(bad.status.code(), Some(2));

    // Stats: per day and type, with the total.
    let stats = lines(&server.replay(&["stats"]));
    let today = OffsetDateTime::now_utc().date().to_string();
    let users_today = stats
        .iter()
        .find(|l| l.starts_with(&today) && l.split_whitespace().nth(1) == Some("user.created"))
        .unwrap();
    assert_eq!(
        users_today.split_whitespace().nth(2),
        Some("2"),
        "{stats:?}"
    );
    assert_eq!(
        stats.last().unwrap().split_whitespace().collect::<Vec<_>>(),
        vec!["total", &total.to_string()]
    );

    // The user as of before the rename, as the API showed it then.
    let printed: Value = serde_json::from_str(
        &lines(&server.replay(&["user", &ids[0], "--as-of", &as_of])).join("\n"),
    )
    .unwrap();
    assert_eq!(printed, before_rename);

    // The report counts what happened.
    let report = dir.join("report.html");
    let now = (OffsetDateTime::now_utc().unix_timestamp() * 1000 + 1000).to_string();
    lines(&server.replay(&[
        "report",
        "--from",
        "2000-01-01",
        "--to",
        &now,
        "--out",
        report.to_str().unwrap(),
    ]));
    let html = std::fs::read_to_string(&report).unwrap();
    let issued = count(&server, "event_type = 'exchange.issued'").await;
    let admin = count(
        &server,
        "actor_kind IN ('app', 'admin') AND stream_type NOT IN ('exchange', 'interaction', 'session', 'grant')",
    )
    .await;
    for (id, expected) in [
        ("events", total),
        ("sign-ins", 1),
        ("sign-in-failures", 1),
        ("suspensions", 1),
        ("reactivations", 0),
        ("token-exchanges", issued),
        ("admin-changes", admin),
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\">{expected}<")),
            "{id} should be {expected}"
        );
    }
    assert!(html.contains("<svg"));
    assert!(!html.contains("<script"));
    assert!(html.contains(&ids[1]), "the suspension is listed");

    // Every read model as of before the rename, in a schema of its own.
    lines(&server.replay(&["rebuild-as-of", &as_of, "--schema", "before_rename"]));
    let db = server.db().await;
    let then: Value = db
        .query_one(
            "SELECT to_jsonb(u) FROM before_rename.users u WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(then["name"], "alan");
    let suspended_then: bool = db
        .query_one(
            "SELECT is_suspended FROM before_rename.users WHERE id = $1",
            &[&ids[1]],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!suspended_then);
    let again = server.replay(&["rebuild-as-of", &as_of, "--schema", "before_rename"]);
    assert_eq!(again.status.code(), Some(2), "an existing schema is kept");
    lines(&server.replay(&[
        "rebuild-as-of",
        &now,
        "--schema",
        "before_rename",
        "--replace",
    ]));
    let live: i64 = db
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    let rebuilt: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT * FROM before_rename.users EXCEPT SELECT * FROM users) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!((live, rebuilt), (2, 0), "as of now, the live users");
}
