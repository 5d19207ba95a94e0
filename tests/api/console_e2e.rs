//! The admin console (`/console`): over plain HTTP, what a browser without a session meets; in
//! headless Chromium (tests/e2e/test_console.py), the whole walk an operator makes, with
//! screenshots of every page at 1280 and 375 px in `target/artefacts/console/` and an axe-core
//! check of each; then what the server recorded: every change the console made is an event
//! whose actor is the operator, carrying the console request's id.

use std::time::Duration;

use serde_json::json;

use crate::connectors::{create_email_connector, templates};
use crate::sdk_e2e::{browser_test, free_port, workspace};
use crate::smtp_server::{Options, SmtpServer, header};
use crate::support::TestServer;

const ADMIN: &str = "console_admin";
const ADMIN_PASSWORD: &str = "Quiet-Harbour-2026";
const CONSOLE_ROLE: &str = "idledger-console-admin";

fn no_redirects() -> reqwest::Client {
    idledger::outbound::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn without_a_session_the_console_sends_the_browser_through_our_oidc_with_pkce() {
    let server = TestServer::start().await;
    let client = no_redirects();
    let page = client
        .get(format!("{}/console/users?search=x", server.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    let to = page.headers()["location"].to_str().unwrap();
    assert_eq!(to, "/console/sign-in?next=%2Fconsole%2Fusers%3Fsearch%3Dx");

    let start = client
        .get(format!("{}{to}", server.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/console"),
        "{cookie}"
    );
    let authorize = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(authorize.path(), "/oidc/auth");
    let query: std::collections::HashMap<_, _> = authorize.query_pairs().collect();
    assert_eq!(query["client_id"], "idledger-console");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["resource"], "https://default.logto.app/api");
    assert!(query["scope"].split(' ').any(|s| s == "all"));
    // The seeded client accepts this request: the sign-in page comes next.
    let auth = client.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(auth.status(), 303, "{:?}", auth.text().await);

    // A forged or foreign callback is refused with a page, not an error in JSON.
    let callback = client
        .get(format!(
            "{}/console/callback?code=x&state=y",
            server.endpoint
        ))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 400);
    let body = callback.text().await.unwrap();
    assert!(body.contains("<html lang=\"en\">"), "{body}");

    // A made-up session cookie is no session.
    let page = client
        .get(format!("{}/console/users", server.endpoint))
        .header("cookie", "idledger_console=bm90IG91cnM")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
}

/// The console relays its operator's address to the API with a key only this process knows;
/// anyone else sending the same headers is recorded at their own address.
#[tokio::test]
async fn a_forged_console_relay_is_recorded_at_the_senders_own_address() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let created = no_redirects()
        .post(format!("{}/api/users", server.endpoint))
        .bearer_auth(&token)
        .header("x-idledger-relay", "a-guessed-key")
        .header("x-idledger-client-ip", "203.0.113.9")
        .json(&json!({"username": "relayed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let events = server.recorded_events().await;
    let event = events
        .iter()
        .find(|e| e.event_type == "user.created")
        .expect("user.created");
    assert_eq!(event.metadata.ip.as_deref(), Some("127.0.0.1"));
}

/// A user with something on every tab: a role, an organization with an organization role, a
/// social identity that is her only way to sign in, a TOTP factor and two access tokens.
async fn provision_carol(server: &TestServer) -> String {
    let carol = server
        .post(
            "/api/users",
            json!({"username": "carol_tabs", "name": "Carol Tabs"}),
        )
        .await;
    let carol = carol.expect(200)["id"].as_str().unwrap().to_owned();
    let role = server
        .post(
            "/api/roles",
            json!({"name": "Support agent", "description": "Answers tickets", "type": "User"}),
        )
        .await;
    let role = role.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/users/{carol}/roles"),
            json!({"roleIds": [role]}),
        )
        .await
        .expect(201);
    let org = server
        .post("/api/organizations", json!({"name": "Acme Corp"}))
        .await;
    let org = org.expect(201)["id"].as_str().unwrap().to_owned();
    let org_role = server
        .post("/api/organization-roles", json!({"name": "billing-admin"}))
        .await;
    let org_role = org_role.expect(201)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/organizations/{org}/users"),
            json!({"userIds": [carol]}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("/api/organizations/{org}/users/{carol}/roles"),
            json!({"organizationRoleIds": [org_role]}),
        )
        .await
        .expect(201);
    server
        .put(
            &format!("/api/users/{carol}/identities/github"),
            json!({"userId": "gh-4242", "details": {"login": "carol-gh"}}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("/api/users/{carol}/mfa-verifications"),
            json!({"type": "Totp"}),
        )
        .await
        .expect(200);
    for name in ["ci-deploy", "laptop"] {
        server
            .post(
                &format!("/api/users/{carol}/personal-access-tokens"),
                json!({"name": name}),
            )
            .await
            .expect(201);
    }
    carol
}

/// When the user was created, from the log (which keeps it after erasure).
async fn created_at_of(server: &TestServer, user: &str) -> i64 {
    let trail = server
        .get(&format!("/api/users/{user}/history?page_size=100"))
        .await;
    let trail = trail.expect(200).as_array().unwrap().clone();
    trail.last().unwrap()["createdAt"].as_i64().unwrap() + 1
}

#[tokio::test]
async fn an_operator_walks_every_console_page_in_a_browser() {
    let server = TestServer::start().await;
    let port = free_port();
    let (app_id, app_secret) = crate::sdk_e2e::flask_sample(&server, port).await;
    let admin = server
        .post(
            "/api/users",
            json!({"username": ADMIN, "name": "Olive Operator", "password": ADMIN_PASSWORD}),
        )
        .await;
    let admin_id = admin.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/users/{admin_id}/roles"),
            json!({"roleIds": [CONSOLE_ROLE]}),
        )
        .await
        .expect(201);

    let carol = provision_carol(&server).await;
    // The connectors page's "send test email" goes to a real SMTP server.
    let smtp = SmtpServer::start(Options::default());
    create_email_connector(&server, smtp.config(templates("text/plain"))).await;

    let shots = workspace().join("target/artefacts/console");
    std::fs::create_dir_all(&shots).unwrap();
    browser_test(
        &server,
        "test_console.py",
        "console",
        &[
            ("ADMIN_USERNAME", ADMIN),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("APP_ID", &app_id),
            ("APP_SECRET", &app_secret),
            ("APP_PORT", &port.to_string()),
            ("CAROL_ID", &carol),
            ("ADMIN_ID", &admin_id),
            ("CONSOLE_SHOTS", &shots.to_string_lossy()),
        ],
    )
    .await;

    let pages = std::fs::read_to_string(shots.join("pages.txt")).unwrap();
    for page in pages.lines() {
        for width in [1280, 375] {
            let png = std::fs::read(shots.join(format!("{page}-{width}.png"))).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{page}-{width}");
        }
    }

    // Every change the console made is the operator's, with the console request's id.
    let events = server.events().await;
    let made: Vec<_> = events
        .iter()
        .filter(|e| e.actor_kind == "admin")
        .map(|e| e.event_type.as_str())
        .collect();
    for expected in [
        "user.created",
        "user.suspended",
        "user.reactivated",
        "user.password_set",
        "user.updated",
        "user.deleted",
    ] {
        assert!(made.contains(&expected), "{expected} missing from {made:?}");
    }
    for event in events.iter().filter(|e| e.actor_kind == "admin") {
        assert_eq!(event.actor_id.as_deref(), Some(admin_id.as_str()));
        assert!(event.request_id.is_some(), "{event:?}");
    }
    // The operator's browser, not the console's loopback client, is what the trail shows.
    let created = events
        .iter()
        .find(|e| e.event_type == "user.created" && e.actor_kind == "admin")
        .unwrap();
    let trail = server
        .get(&format!(
            "/api/users/{}/history?page_size=100",
            created.stream_id
        ))
        .await;
    let trail = trail.expect(200).as_array().unwrap().clone();
    let by_operator: Vec<_> = trail
        .iter()
        .filter(|e| e["actor"]["kind"] == "admin")
        .collect();
    assert!(by_operator.len() >= 6, "{trail:?}");
    for entry in by_operator {
        assert!(
            entry["userAgent"]
                .as_str()
                .is_some_and(|ua| ua.contains("Chrome")),
            "{entry}"
        );
        assert!(entry["requestId"].is_string(), "{entry}");
    }
    // The test email reached the SMTP server, addressed as typed in the console.
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(header(&mail[0], "To").is_some_and(|to| to.contains("ops@example.com")));
    // Carol was erased, not just deleted: her history is unreadable now.
    assert!(made.contains(&"user.erased"), "{made:?}");
    let before_erasure = created_at_of(&server, &carol).await;
    let erased = server
        .get(&format!("/api/users/{carol}?asOf={before_erasure}"))
        .await;
    assert_eq!(erased.status, 410, "{erased:?}");
    // The one-time token made in the console was revoked there; the sign-in experience saved.
    assert!(made.contains(&"one_time_token.revoked"), "{made:?}");
    let experience = server.get("/api/sign-in-exp").await;
    assert_eq!(
        experience.expect(200)["termsOfUseUrl"],
        "https://example.com/terms"
    );
    // The sign-in tried while the user was suspended was refused for that reason.
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "interaction.verification_failed"
                && e.payload.to_string().contains("user.suspended")),
        "the suspended sign-in left no trace"
    );
}
