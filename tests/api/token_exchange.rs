//! Token exchange (RFC 8693, logto-compat §9 grant types): `POST /api/subject-tokens`, then
//! `/oidc/token` with `urn:ietf:params:oauth:grant-type:token-exchange` for subject tokens
//! (single use, also under concurrency) and personal access tokens, only for applications that
//! opt in. Expiry of a subject token is covered by the domain's decision tests: the server has
//! no clock a black-box test could move.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_ID, MANAGEMENT_API, Reply, TestServer, logs_of};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const PAT: &str = "urn:logto:token-type:personal_access_token";
/// The user role the server seeds, carrying the Management API's `all` scope.
const ADMIN_ROLE: &str = "idledger-console-admin";

/// A Traditional web application, opted in to token exchange or not; its id and secret.
async fn web_app(server: &TestServer, allow_token_exchange: bool) -> (String, String) {
    let created = server
        .post(
            "/api/applications",
            json!({
                "name": "support console",
                "type": "Traditional",
                "oidcClientMetadata": {"redirectUris": ["https://support.example.com/cb"],
                                       "postLogoutRedirectUris": []},
                "customClientMetadata": {"allowTokenExchange": allow_token_exchange},
            }),
        )
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let secrets = server.get(&format!("/api/applications/{id}/secrets")).await;
    let secret = secrets.expect(200)[0]["value"].as_str().unwrap().to_owned();
    (id, secret)
}

async fn admin_user(server: &TestServer, username: &str) -> String {
    let created = server
        .post("/api/users", json!({"username": username}))
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/users/{id}/roles"),
            json!({"roleIds": [ADMIN_ROLE]}),
        )
        .await
        .expect(201);
    id
}

async fn subject_token(server: &TestServer, user_id: &str) -> String {
    let created = server
        .post("/api/subject-tokens", json!({"userId": user_id}))
        .await;
    created.expect(201)["subjectToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn exchange(
    server: &TestServer,
    (id, secret): &(String, String),
    token: &str,
    token_type: &str,
) -> Reply {
    server
        .token_request(
            Some((id, secret)),
            &[
                ("grant_type", GRANT),
                ("subject_token", token),
                ("subject_token_type", token_type),
                ("resource", MANAGEMENT_API),
                ("scope", "all"),
            ],
        )
        .await
}

#[track_caller]
fn refused(reply: &Reply, error: &str, description: &str) {
    reply.expect(400);
    assert_eq!(reply.body["error"], error, "{}", reply.body);
    assert_eq!(reply.body["error_description"], description);
}

fn access_token(reply: &Reply) -> String {
    reply.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_subject_token_is_exchanged_once_for_a_token_that_works_at_the_resource() {
    let server = TestServer::start().await;
    let app = web_app(&server, true).await;
    let ada = admin_user(&server, "ada").await;

    let created = server
        .post(
            "/api/subject-tokens",
            json!({"userId": ada, "context": {"ticket": "SUP-42"}}),
        )
        .await;
    let body = created.expect(201);
    assert_eq!(body["expiresIn"], 600);
    let token = body["subjectToken"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sub_"), "{token}");
    server
        .post("/api/subject-tokens", json!({"userId": "nobody"}))
        .await
        .expect_error(404, "entity.not_found");
    server
        .post(
            "/api/subject-tokens",
            json!({"userId": ada, "context": [1]}),
        )
        .await
        .expect(400);

    // Recorded by the calling application; the value is nowhere, the context sealed.
    let events = server.events().await;
    let issued: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "subject_token.issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].actor_kind, "app");
    assert_eq!(issued[0].actor_id.as_deref(), Some(BOOTSTRAP_ID));
    assert!(issued[0].request_id.is_some());
    assert_eq!(issued[0].payload["userId"], ada.as_str());
    assert!(issued[0].payload.get("context").is_none(), "sealed");
    let everything: String = events
        .iter()
        .map(|e| format!("{} {}", e.stream_id, e.payload))
        .collect();
    assert!(!everything.contains(&token["sub_".len()..]));
    let unsealed = server
        .recorded_events()
        .await
        .into_iter()
        .find(|e| e.event_type == "subject_token.issued")
        .unwrap();
    assert_eq!(unsealed.payload["context"], json!({"ticket": "SUP-42"}));

    let reply = exchange(&server, &app, &token, ACCESS_TOKEN).await;
    let issued = reply.expect(200);
    assert_eq!(issued["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["scope"], "all");
    assert!(issued["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let bearer = format!("Bearer {}", access_token(&reply));
    let me = server
        .call_with(Some(&bearer), &format!("/api/users/{ada}"))
        .await;
    assert_eq!(me.expect(200)["username"], "ada");

    refused(
        &exchange(&server, &app, &token, ACCESS_TOKEN).await,
        "invalid_grant",
        "subject token is already consumed",
    );
    refused(
        &exchange(&server, &app, "sub_unknown", ACCESS_TOKEN).await,
        "invalid_grant",
        "subject token not found",
    );
    let consumed: Vec<_> = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "subject_token.consumed")
        .collect();
    assert_eq!(consumed.len(), 1);
    assert_eq!(consumed[0].actor_id.as_deref(), Some(app.0.as_str()));

    let logs = logs_of(&server, &ada).await;
    let exchanges: Vec<&Value> = logs
        .iter()
        .filter(|l| l["key"] == "ExchangeTokenBy.TokenExchange")
        .collect();
    assert_eq!(exchanges.len(), 1, "{logs:?}");
    assert_eq!(exchanges[0]["payload"]["applicationId"], app.0.as_str());
    let discovery = server
        .http
        .get(server.url("/oidc/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let discovery = Reply::from(discovery).await;
    let grants = discovery.expect(200)["grant_types_supported"].clone();
    assert!(
        grants.as_array().unwrap().contains(&json!(GRANT)),
        "{grants}"
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn personal_access_tokens_and_the_rules_of_who_may_exchange() {
    let server = TestServer::start().await;
    let app = web_app(&server, true).await;
    let not_opted_in = web_app(&server, false).await;
    let grace = admin_user(&server, "grace").await;
    let pat = server
        .post(
            &format!("/api/users/{grace}/personal-access-tokens"),
            json!({"name": "cli"}),
        )
        .await;
    let pat = pat.expect(201)["value"].as_str().unwrap().to_owned();

    // A PAT may be exchanged as often as its holder likes, as its own type only.
    for _ in 0..2 {
        let reply = exchange(&server, &app, &pat, PAT).await;
        let bearer = format!("Bearer {}", access_token(&reply));
        let me = server
            .call_with(Some(&bearer), &format!("/api/users/{grace}"))
            .await;
        assert_eq!(me.expect(200)["id"], grace.as_str());
    }
    refused(
        &exchange(&server, &app, &pat, ACCESS_TOKEN).await,
        "invalid_grant",
        "subject token not found",
    );
    refused(
        &exchange(&server, &app, &pat, "urn:example:unknown").await,
        "invalid_grant",
        "unsupported subject token type",
    );

    // An application that did not opt in is refused without spending the token.
    let token = subject_token(&server, &grace).await;
    refused(
        &exchange(&server, &not_opted_in, &token, ACCESS_TOKEN).await,
        "unauthorized_client",
        "requested grant type is not allowed for this client",
    );
    let missing = server
        .token_request(
            Some((&app.0, &app.1)),
            &[("grant_type", GRANT), ("subject_token_type", ACCESS_TOKEN)],
        )
        .await;
    refused(
        &missing,
        "invalid_request",
        "missing required parameter 'subject_token'",
    );
    access_token(&exchange(&server, &app, &token, ACCESS_TOKEN).await);

    // A user without the scope gets a token without it, which the resource refuses.
    let plain = server.post("/api/users", json!({"username": "bob"})).await;
    let bob = plain.expect(200)["id"].as_str().unwrap().to_owned();
    let reply = exchange(
        &server,
        &app,
        &subject_token(&server, &bob).await,
        ACCESS_TOKEN,
    )
    .await;
    assert_eq!(reply.expect(200)["scope"], "");
    let bearer = format!("Bearer {}", access_token(&reply));
    let denied = server
        .call_with(Some(&bearer), &format!("/api/users/{bob}"))
        .await;
    assert_eq!(denied.status.as_u16(), 403, "{}", denied.body);

    // Without a resource: an opaque token for userinfo with the OpenID Connect scopes asked for.
    let token = subject_token(&server, &grace).await;
    let reply = server
        .token_request(
            Some((&app.0, &app.1)),
            &[
                ("grant_type", GRANT),
                ("subject_token", &token),
                ("subject_token_type", ACCESS_TOKEN),
                ("scope", "openid profile all"),
            ],
        )
        .await;
    assert_eq!(reply.expect(200)["scope"], "openid profile");
    assert_eq!(reply.body["expires_in"], 3600);
    assert!(reply.body.get("id_token").is_none() && reply.body.get("refresh_token").is_none());
    let opaque = format!("Bearer {}", access_token(&reply));
    let me = server.call_with(Some(&opaque), "/oidc/me").await;
    assert_eq!(me.expect(200)["sub"], grace.as_str());
    assert_eq!(me.body["username"], "grace");

    // A suspended user cannot be impersonated, by subject token or PAT, and what was issued
    // without a resource stops working.
    let token = subject_token(&server, &grace).await;
    server
        .patch(
            &format!("/api/users/{grace}/is-suspended"),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    for (presented, token_type) in [(token.as_str(), ACCESS_TOKEN), (pat.as_str(), PAT)] {
        refused(
            &exchange(&server, &app, presented, token_type).await,
            "invalid_grant",
            "user is suspended",
        );
    }
    let me = server.call_with(Some(&opaque), "/oidc/me").await;
    assert_eq!(me.status.as_u16(), 401, "{}", me.body);
    server.assert_replay_check();
}

#[tokio::test]
async fn of_ten_concurrent_exchanges_of_one_subject_token_exactly_one_wins() {
    let server = Arc::new(TestServer::start().await);
    let app = Arc::new(web_app(&server, true).await);
    let ada = admin_user(&server, "ada").await;
    let token = subject_token(&server, &ada).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (server, app, token) = (server.clone(), app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            exchange(&server, &app, &token, ACCESS_TOKEN).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        if reply.status.as_u16() == 200 {
            won += 1;
        } else {
            refused(&reply, "invalid_grant", "subject token is already consumed");
        }
    }
    assert_eq!(won, 1);
    let consumed = server
        .events()
        .await
        .iter()
        .filter(|e| e.event_type == "subject_token.consumed")
        .count();
    assert_eq!(consumed, 1);
}
