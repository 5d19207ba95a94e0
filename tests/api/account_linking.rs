//! Linking an upstream identity through the Account API, as Logto does it: a password
//! verification record proves the person (`logto-verification-id`), a social verification
//! record proves the upstream identity (a real trip to panva's `oidc-provider`), and
//! `POST /api/my-account/identities` links it, spending the social record.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::query_of;
use crate::social_oidc::{CONNECTOR, Downstream, PASSWORD, browser_on, end_user_token};
use crate::social_oidc_provider::NodeProvider;
use crate::support::{KEK, Reply, TestServer};

/// A call to the Account API with `token`, and a `logto-verification-id` when given.
async fn account(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    verification: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(id) = verification {
        request = request.header("logto-verification-id", id);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::from(request.send().await.unwrap()).await
}

/// An access token of `username` (password `PASSWORD`) for the downstream's application,
/// granted `scope`.
async fn signed_in(downstream: &Downstream, username: &str, scope: &str) -> String {
    let browser = browser_on(&downstream.server.endpoint);
    browser.start(&downstream.client_id, scope, &[]).await;
    let verified = browser.verify_password(username, PASSWORD).await;
    let id = verified.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.identify(&id).await;
    let code = browser.submit_and_resume(&downstream.server).await;
    end_user_token(downstream, &code).await
}

async fn create_user(server: &TestServer, username: &str) -> String {
    let created = server
        .post(
            "/api/users",
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

async fn password_record(server: &TestServer, token: &str) -> String {
    let created = account(
        server,
        Method::POST,
        "/api/verifications/password",
        token,
        None,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    created.expect(201)["verificationRecordId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A social verification record of `token`'s person, verified by signing in at the provider
/// as `login`.
async fn social_record(
    downstream: &Downstream,
    provider: &NodeProvider,
    token: &str,
    login: &str,
) -> String {
    let started = account(
        &downstream.server,
        Method::POST,
        "/api/verifications/social",
        token,
        None,
        Some(
            json!({"connectorId": CONNECTOR, "redirectUri": downstream.callback(),
                    "state": "link-state"}),
        ),
    )
    .await;
    let started = started.expect(201);
    let id = started["verificationRecordId"].as_str().unwrap().to_owned();
    let uri = started["authorizationUri"].as_str().unwrap();
    assert_eq!(query_of(uri)["state"], "link-state");
    let back = provider.sign_in(uri, login).await;
    let data: serde_json::Map<String, Value> = query_of(&back)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let verified = account(
        &downstream.server,
        Method::POST,
        "/api/verifications/social/verify",
        token,
        None,
        Some(json!({"verificationRecordId": id, "connectorData": data})),
    )
    .await;
    assert_eq!(verified.expect(200)["verificationRecordId"], id.as_str());
    id
}

async fn link(server: &TestServer, token: &str, identity: Option<&str>, record: &str) -> Reply {
    account(
        server,
        Method::POST,
        "/api/my-account/identities",
        token,
        identity,
        Some(json!({"newIdentifierVerificationRecordId": record})),
    )
    .await
}

const SCOPE: &str = "openid profile identities";

#[tokio::test]
async fn a_person_links_an_upstream_identity_with_a_password_and_a_social_record() {
    let downstream = Downstream::start().await;
    let provider = NodeProvider::start(&downstream.callback(), json!({})).await;
    downstream
        .connect(
            provider.config("client_secret_post", "client_secret_post"),
            json!({}),
        )
        .await
        .expect(200);
    let server = &downstream.server;
    let grace = create_user(server, "grace").await;
    let mallory = create_user(server, "mallory").await;
    let token = signed_in(&downstream, "grace", SCOPE).await;
    let intruder = signed_in(&downstream, "mallory", SCOPE).await;

    // A wrong password makes no record.
    account(
        server,
        Method::POST,
        "/api/verifications/password",
        &token,
        None,
        Some(json!({"password": "not-the-password"})),
    )
    .await
    .expect_error(422, "session.invalid_credentials");
    let created = account(
        server,
        Method::POST,
        "/api/verifications/password",
        &token,
        None,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    let created = created.expect(201);
    let proof = created["verificationRecordId"].as_str().unwrap().to_owned();
    let expires = time::OffsetDateTime::parse(
        created["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = expires - time::OffsetDateTime::now_utc();
    assert!(
        ttl.whole_seconds() > 590 && ttl.whole_seconds() <= 600,
        "{ttl}"
    );
    let record = social_record(&downstream, &provider, &token, "grace-upstream").await;

    // No proof, a proof that is not an identity record, and someone else's proof.
    let intruders_proof = password_record(server, &intruder).await;
    for header in [None, Some(record.as_str()), Some(intruders_proof.as_str())] {
        link(server, &token, header, &record)
            .await
            .expect_error(401, "verification_record.permission_denied");
    }
    // A token without the `identities` scope.
    let narrow = signed_in(&downstream, "grace", "openid profile").await;
    link(server, &narrow, Some(&proof), &record)
        .await
        .expect_error(401, "auth.unauthorized");
    // Someone else's social record, with their own proof.
    link(server, &intruder, Some(&intruders_proof), &record)
        .await
        .expect_error(400, "verification_record.not_found");
    link(server, &token, Some(&proof), "no-such-record")
        .await
        .expect_error(400, "verification_record.not_found");

    assert_eq!(
        link(server, &token, Some(&proof), &record).await.status,
        204
    );
    let me = account(server, Method::GET, "/api/my-account", &token, None, None).await;
    let identity = &me.expect(200)["identities"][CONNECTOR];
    assert_eq!(identity["userId"], "grace-upstream");
    assert_eq!(
        identity["details"]["rawData"]["iss"],
        provider.issuer.as_str()
    );
    let events = server.events().await;
    let of = |event_type: &str| {
        events
            .iter()
            .filter(|e| e.event_type == event_type)
            .collect::<Vec<_>>()
    };
    let consumed = of("verification_record.consumed");
    assert_eq!(consumed.len(), 1);
    assert_eq!(consumed[0].stream_id, record);
    let linked = of("user.identity_linked");
    let linked = linked.iter().find(|e| e.stream_id == grace).unwrap();
    assert_eq!(linked.actor_kind, "user");
    assert_eq!(linked.actor_id.as_deref(), Some(grace.as_str()));
    assert!(linked.request_id.is_some());
    for created in of("verification_record.created") {
        assert!(created.request_id.is_some());
        assert!(
            created.payload.get("password").is_none(),
            "{}",
            created.payload
        );
    }
    assert_eq!(of("verification_record.refused").len(), 1);

    // The same upstream identity for someone else: already in use.
    let again = social_record(&downstream, &provider, &intruder, "grace-upstream").await;
    link(server, &intruder, Some(&intruders_proof), &again)
        .await
        .expect_error(422, "user.identity_already_in_use");
    let user = server.get(&format!("/api/users/{mallory}")).await;
    assert_eq!(user.expect(200)["identities"], json!({}));

    // Unlinking needs the proof too; then the spent record links nothing again.
    let unlink_path = format!("/api/my-account/identities/{CONNECTOR}");
    account(server, Method::DELETE, &unlink_path, &token, None, None)
        .await
        .expect_error(401, "verification_record.permission_denied");
    let unlinked = account(
        server,
        Method::DELETE,
        &unlink_path,
        &token,
        Some(&proof),
        None,
    )
    .await;
    assert_eq!(unlinked.status, 204, "{}", unlinked.body);
    link(server, &token, Some(&proof), &record)
        .await
        .expect_error(400, "verification_record.not_found");

    // Two links racing with one fresh record: exactly one links.
    let fresh = social_record(&downstream, &provider, &token, "grace-upstream").await;
    let (first, second) = tokio::join!(
        link(server, &token, Some(&proof), &fresh),
        link(server, &token, Some(&proof), &fresh)
    );
    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 204, "{} {}", first.body, second.body);
    assert_ne!(statuses[1], 204, "{} {}", first.body, second.body);
    let spent = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "verification_record.consumed" && e.stream_id == fresh)
        .count();
    assert_eq!(spent, 1);
    server.assert_replay_check();
}

#[tokio::test]
async fn an_expired_identity_record_proves_nothing() {
    use domain::verification_record::{TTL_MS, VerificationRecord, VerificationRecordCommand};
    let downstream = Downstream::start().await;
    let server = &downstream.server;
    let grace = create_user(server, "grace").await;
    let token = signed_in(&downstream, "grace", SCOPE).await;
    // A record made eleven minutes ago, appended through the store as the route would have.
    let pool = idledger::app::pool(&server.database_url(), 2).unwrap();
    let keyring = Arc::new(idledger::crypto::Keyring::from_base64(KEK).unwrap());
    let store = idledger::store::EventStore::new(pool, keyring);
    let made = time::OffsetDateTime::now_utc() - time::Duration::minutes(11);
    let metadata = domain::Metadata {
        actor: domain::Actor::User(grace.clone()),
        ip: None,
        user_agent: None,
        request_id: None,
        occurred_at: made,
    };
    store
        .execute::<VerificationRecord>(
            "stale-proof",
            VerificationRecordCommand::ProvePassword {
                user_id: grace.clone(),
                expires_at: domain::unix_ms(made) + TTL_MS,
            },
            &metadata,
        )
        .await
        .unwrap();
    account(
        server,
        Method::DELETE,
        &format!("/api/my-account/identities/{CONNECTOR}"),
        &token,
        Some("stale-proof"),
        None,
    )
    .await
    .expect_error(401, "verification_record.permission_denied");
    // A fresh one passes the proof and reaches the route's own checks.
    let proof = password_record(server, &token).await;
    account(
        server,
        Method::DELETE,
        &format!("/api/my-account/identities/{CONNECTOR}"),
        &token,
        Some(&proof),
        None,
    )
    .await
    .expect_error(404, "user.identity_not_exist");
    server.assert_replay_check();
}

#[tokio::test]
async fn a_code_mailed_to_the_primary_email_proves_the_person() {
    use crate::connectors::{create_email_connector, templates};
    use crate::email_codes::other_code;
    use crate::smtp_server::{Options, SmtpServer, code_in};
    let downstream = Downstream::start().await;
    let server = &downstream.server;
    let mail = SmtpServer::start(Options::default());
    create_email_connector(server, mail.config(templates("text/plain"))).await;
    let created = server
        .post(
            "/api/users",
            json!({"username": "grace", "password": PASSWORD,
                   "primaryEmail": "grace@example.com"}),
        )
        .await;
    created.expect(200);
    let token = signed_in(&downstream, "grace", SCOPE).await;
    let send = |identifier: Value| {
        account(
            server,
            Method::POST,
            "/api/verifications/verification-code",
            &token,
            None,
            Some(json!({ "identifier": identifier })),
        )
    };
    // Only the person's own primary email proves them; no SMS here.
    send(json!({"type": "email", "value": "someone@example.com"}))
        .await
        .expect_error(422, "user.email_not_exist");
    send(json!({"type": "phone", "value": "+15550100"}))
        .await
        .expect_error(501, "connector.not_found");
    let sent = send(json!({"type": "email", "value": "Grace@Example.com"})).await;
    let record = sent.expect(201)["verificationRecordId"]
        .as_str()
        .unwrap()
        .to_owned();
    let messages = mail.wait_for(1, std::time::Duration::from_secs(30)).await;
    let code = code_in(&messages[0]);
    let unlink_path = format!("/api/my-account/identities/{CONNECTOR}");
    // Not a proof until the code is entered, and not with a wrong one.
    account(
        server,
        Method::DELETE,
        &unlink_path,
        &token,
        Some(&record),
        None,
    )
    .await
    .expect_error(401, "verification_record.permission_denied");
    let verify = |code: String| {
        account(
            server,
            Method::POST,
            "/api/verifications/verification-code/verify",
            &token,
            None,
            Some(
                json!({"identifier": {"type": "email", "value": "grace@example.com"},
                        "verificationId": record, "code": code}),
            ),
        )
    };
    verify(other_code(&code).to_owned())
        .await
        .expect_error(400, "verification_code.code_mismatch");
    let verified = verify(code).await;
    assert_eq!(
        verified.expect(200)["verificationRecordId"],
        record.as_str()
    );
    // The proof passes; the route's own check follows (there is nothing to unlink).
    account(
        server,
        Method::DELETE,
        &unlink_path,
        &token,
        Some(&record),
        None,
    )
    .await
    .expect_error(404, "user.identity_not_exist");
    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "verification_record.code_verified" && e.stream_id == record)
    );
    for event in &events {
        assert!(
            !event.payload.to_string().contains("grace@example.com"),
            "{}: {}",
            event.event_type,
            event.payload
        );
    }
    server.assert_replay_check();
}
