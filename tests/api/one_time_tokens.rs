//! `/api/one-time-tokens` (logto-compat §4): routes, the six error cases, single use under
//! concurrency, and the creation rate limit (both across two nodes on one database).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::TestServer;

pub async fn create(server: &TestServer, body: Value) -> Value {
    server
        .post("/api/one-time-tokens", body)
        .await
        .expect(201)
        .clone()
}

#[tokio::test]
async fn routes_statuses_and_the_error_cases() {
    let server = TestServer::start().await;
    let token = create(
        &server,
        json!({"email": "invitee@example.com", "context": {"jitOrganizationIds": ["org1"]}}),
    )
    .await;
    let id = token["id"].as_str().unwrap().to_owned();
    let value = token["token"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 21);
    assert_eq!(value.len(), 32);
    assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(token["status"], "active");
    assert_eq!(token["tenantId"], "default");
    assert_eq!(token["context"], json!({"jitOrganizationIds": ["org1"]}));
    let life = token["expiresAt"].as_i64().unwrap() - token["createdAt"].as_i64().unwrap();
    assert_eq!(life, 600_000, "default lifetime is 600 s");

    let fetched = server.get(&format!("/api/one-time-tokens/{id}")).await;
    assert_eq!(
        fetched.expect(200)["token"],
        value.as_str(),
        "shown again on reads"
    );
    server
        .get("/api/one-time-tokens/nope")
        .await
        .expect_error(404, "entity.not_exists_with_id");
    let listed = server
        .get("/api/one-time-tokens?email=invitee@example.com")
        .await;
    assert_eq!(listed.expect(200).as_array().unwrap().len(), 1);
    assert!(
        listed.header("total-number").is_none(),
        "pagination is optional"
    );
    let paged = server.get("/api/one-time-tokens?page=1&page_size=10").await;
    assert_eq!(paged.header("total-number"), Some("1"));

    let verify = |token: &str, email: &str| {
        let body = json!({"token": token, "email": email});
        let server = &server;
        async move { server.post("/api/one-time-tokens/verify", body).await }
    };
    verify("not-a-token", "invitee@example.com")
        .await
        .expect_error(404, "one_time_token.token_not_found");
    verify(&value, "INVITEE@example.com")
        .await
        .expect_error(400, "one_time_token.email_mismatch");
    let consumed = verify(&value, "invitee@example.com").await;
    assert_eq!(consumed.expect(200)["status"], "consumed");
    verify(&value, "invitee@example.com")
        .await
        .expect_error(400, "one_time_token.token_consumed");

    let revocable = create(&server, json!({"email": "other@example.com"})).await;
    let rid = revocable["id"].as_str().unwrap();
    let revoked = server
        .put(
            &format!("/api/one-time-tokens/{rid}/status"),
            json!({"status": "revoked"}),
        )
        .await;
    assert_eq!(revoked.expect(200)["status"], "revoked");
    verify(revocable["token"].as_str().unwrap(), "other@example.com")
        .await
        .expect_error(400, "one_time_token.token_revoked");
    server
        .put(
            &format!("/api/one-time-tokens/{rid}/status"),
            json!({"status": "active"}),
        )
        .await
        .expect_error(400, "one_time_token.cannot_reactivate_token");
    let revoked_list = server.get("/api/one-time-tokens?status=revoked").await;
    assert_eq!(revoked_list.expect(200)[0]["id"], rid);

    // Expiry: a token is marked expired when it is touched after its time.
    let short = create(
        &server,
        json!({"email": "late@example.com", "expiresIn": 1}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = verify(short["token"].as_str().unwrap(), "late@example.com").await;
        if reply.status.as_u16() == 400 {
            reply.expect_error(400, "one_time_token.token_expired");
            break;
        }
        // Until the second is over, the token may still be consumed: that ends the race too.
        if reply.status.as_u16() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    for bad in [
        json!({"email": ""}),
        json!({"email": "a@b.c", "expiresIn": 0}),
        json!({"email": "a@b.c", "context": {"interactionEvent": "Dance"}}),
        json!({}),
    ] {
        server
            .post("/api/one-time-tokens", bad)
            .await
            .expect_error(400, "guard.invalid_input");
    }

    server
        .delete(&format!("/api/one-time-tokens/{id}"))
        .await
        .expect(204);
    server
        .delete(&format!("/api/one-time-tokens/{id}"))
        .await
        .expect_error(404, "entity.not_found");
    let vault: i64 = server
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM vault WHERE ref = $1",
            &[&format!("one-time-token-{id}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(vault, 0, "a deleted token's value is destroyed");
    // The email is personal data: sealed in the log.
    for event in server.events().await {
        assert!(!event.payload.to_string().contains("invitee@example.com"));
        assert!(!event.payload.to_string().contains(&value));
    }
    server.assert_replay_check();
}

#[tokio::test]
async fn of_a_hundred_concurrent_verifications_exactly_one_wins() {
    let server = Arc::new(TestServer::start().await);
    // Half of them through a second node on the same database: single use holds across nodes.
    let node2 = server.second_node();
    let token = create(&server, json!({"email": "race@example.com"})).await;
    let value = token["token"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let server = server.clone();
        let value = value.clone();
        let base = if i % 2 == 0 {
            server.base.clone()
        } else {
            node2.base.clone()
        };
        tasks.push(tokio::spawn(async move {
            server
                .call_on(
                    &base,
                    reqwest::Method::POST,
                    "/api/one-time-tokens/verify",
                    Some(json!({"token": value, "email": "race@example.com"})),
                )
                .await
        }));
    }
    let (mut won, mut consumed) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => won += 1,
            _ => {
                reply.expect_error(400, "one_time_token.token_consumed");
                consumed += 1;
            }
        }
    }
    assert_eq!((won, consumed), (1, 99));
    let consumptions = server
        .events()
        .await
        .iter()
        .filter(|e| e.event_type == "one_time_token.consumed")
        .count();
    assert_eq!(consumptions, 1);
    server.assert_replay_check();
}

#[tokio::test]
async fn creation_is_rate_limited_per_email() {
    let server = TestServer::start().await;
    for _ in 0..5 {
        create(&server, json!({"email": "flood@example.com"})).await;
    }
    // The count lives in the database: a second node refuses the sixth too.
    let node2 = server.second_node();
    let limited = server
        .call_on(
            &node2.base,
            reqwest::Method::POST,
            "/api/one-time-tokens",
            Some(json!({"email": "Flood@example.com"})),
        )
        .await;
    assert_eq!(limited.status.as_u16(), 429, "{}", limited.body);
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    create(&server, json!({"email": "someone-else@example.com"})).await;
}
