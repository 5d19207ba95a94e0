//! Getting a Management API token with client credentials, and every way `/api` refuses one
//! (logto-compat §1).

use serde_json::json;

use crate::support::{BOOTSTRAP_ID, BOOTSTRAP_SECRET, MANAGEMENT_API, TestServer, now_s};

const FORM: &[(&str, &str)] = &[
    ("grant_type", "client_credentials"),
    ("resource", MANAGEMENT_API),
    ("scope", "all"),
];

#[tokio::test]
async fn client_credentials_by_basic_and_by_body_both_reach_the_api() {
    let server = TestServer::start().await;
    let basic = server
        .token_request(Some((BOOTSTRAP_ID, BOOTSTRAP_SECRET)), FORM)
        .await;
    let body = basic.expect(200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "all");
    assert_eq!(basic.header("cache-control"), Some("no-store"));

    let mut form = FORM.to_vec();
    form.push(("client_id", BOOTSTRAP_ID));
    form.push(("client_secret", BOOTSTRAP_SECRET));
    let posted = server.token_request(None, &form).await;
    let token = posted.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let listed = server
        .call_with(Some(&format!("Bearer {token}")), "/api/applications")
        .await;
    let apps = listed.expect(200);
    assert!(
        apps.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == BOOTSTRAP_ID)
    );

    // The JWT carries what Logto's does, and names its key.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES384);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks = server
        .http
        .get(server.url("/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header.kid.clone().unwrap())
    );
    let payload: serde_json::Value = {
        use base64::Engine;
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    for claim in [
        "iss",
        "sub",
        "aud",
        "iat",
        "exp",
        "jti",
        "client_id",
        "scope",
    ] {
        assert!(payload.get(claim).is_some(), "missing {claim} in {payload}");
    }
    assert_eq!(payload["iss"], server.issuer());
    assert_eq!(payload["sub"], BOOTSTRAP_ID);
    assert_eq!(payload["aud"], MANAGEMENT_API);
}

#[tokio::test]
async fn each_issuance_is_an_event_and_an_exchange_log() {
    let server = TestServer::start().await;
    server.token().await;
    let logs = server
        .get("/api/logs?logKey=ExchangeTokenBy.ClientCredentials")
        .await;
    let entries = logs.expect(200).as_array().unwrap().clone();
    assert!(!entries.is_empty());
    let payload = &entries[0]["payload"];
    assert_eq!(payload["applicationId"], BOOTSTRAP_ID);
    assert_eq!(payload["applicationSecret"]["name"], "Default secret");
    assert_eq!(payload["result"], "Success");
    assert_eq!(payload["ip"], "127.0.0.1");
    let events = server.events().await;
    let issued: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "exchange.issued")
        .collect();
    assert!(!issued.is_empty());
    assert_eq!(issued[0].actor_kind, "app");
    assert_eq!(issued[0].actor_id.as_deref(), Some(BOOTSTRAP_ID));
    assert!(issued[0].request_id.is_some());
    // No token material in the event.
    assert!(issued[0].payload.get("access_token").is_none());
}

#[tokio::test]
async fn the_five_authentication_failures_of_logto() {
    let server = TestServer::start().await;
    server
        .call_with(None, "/api/applications")
        .await
        .expect_error(401, "auth.authorization_header_missing");

    let basic = server
        .call_with(Some("Basic Zm9vOmJhcg=="), "/api/applications")
        .await;
    basic.expect_error(401, "auth.authorization_token_type_not_supported");
    assert_eq!(basic.body["data"]["supportedTypes"], json!(["Bearer"]));

    server
        .call_with(Some("Bearer not.a.jwt"), "/api/applications")
        .await
        .expect_error(401, "auth.unauthorized");

    let issuer = server.issuer();
    let no_sub = server
        .sign_as_server(&json!({
            "iss": issuer, "aud": MANAGEMENT_API, "exp": now_s() + 600, "scope": "all"
        }))
        .await;
    server
        .call_with(Some(&format!("Bearer {no_sub}")), "/api/applications")
        .await
        .expect_error(401, "auth.jwt_sub_missing");

    // A real token issued without the `all` scope.
    let scopeless = server
        .token_request(
            Some((BOOTSTRAP_ID, BOOTSTRAP_SECRET)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", MANAGEMENT_API),
            ],
        )
        .await;
    assert_eq!(scopeless.expect(200)["scope"], "");
    let token = scopeless.body["access_token"].as_str().unwrap();
    server
        .call_with(Some(&format!("Bearer {token}")), "/api/applications")
        .await
        .expect_error(403, "auth.forbidden");
}

#[tokio::test]
async fn expired_foreign_or_misdirected_tokens_are_unauthorized() {
    let server = TestServer::start().await;
    let issuer = server.issuer();
    let claims = |aud: &str, iss: &str, exp: i64| {
        json!({"iss": iss, "aud": aud, "exp": exp, "sub": BOOTSTRAP_ID,
               "client_id": BOOTSTRAP_ID, "scope": "all"})
    };
    let good = server
        .sign_as_server(&claims(MANAGEMENT_API, &issuer, now_s() + 600))
        .await;
    server
        .call_with(Some(&format!("Bearer {good}")), "/api/applications")
        .await
        .expect(200);

    for forged in [
        server
            .sign_as_server(&claims(MANAGEMENT_API, &issuer, now_s() - 60))
            .await,
        server
            .sign_as_server(&claims("https://other.example/api", &issuer, now_s() + 600))
            .await,
        server
            .sign_as_server(&claims(
                MANAGEMENT_API,
                "https://evil.example/oidc",
                now_s() + 600,
            ))
            .await,
    ] {
        server
            .call_with(Some(&format!("Bearer {forged}")), "/api/applications")
            .await
            .expect_error(401, "auth.unauthorized");
    }

    // Signed by a key the server never had.
    let stranger = idledger::crypto::signing::generate_es384().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    header.kid = Some(stranger.kid.clone());
    let foreign = jsonwebtoken::encode(
        &header,
        &claims(MANAGEMENT_API, &issuer, now_s() + 600),
        &jsonwebtoken::EncodingKey::from_ec_der(&stranger.private_pkcs8),
    )
    .unwrap();
    server
        .call_with(Some(&format!("Bearer {foreign}")), "/api/applications")
        .await
        .expect_error(401, "auth.unauthorized");

    // The server's own kid on a signature made by another key.
    let current_kid = jsonwebtoken::decode_header(&good).unwrap().kid;
    header.kid = current_kid;
    let spoofed = jsonwebtoken::encode(
        &header,
        &claims(MANAGEMENT_API, &issuer, now_s() + 600),
        &jsonwebtoken::EncodingKey::from_ec_der(&stranger.private_pkcs8),
    )
    .unwrap();
    server
        .call_with(Some(&format!("Bearer {spoofed}")), "/api/applications")
        .await
        .expect_error(401, "auth.unauthorized");
}

#[tokio::test]
async fn the_token_endpoint_refuses_as_logto_does() {
    let server = TestServer::start().await;
    let wrong = server
        .token_request(Some((BOOTSTRAP_ID, "wrong")), FORM)
        .await;
    assert_eq!(wrong.status.as_u16(), 401);
    assert_eq!(wrong.body["error"], "invalid_client");
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );

    let unknown = server.token_request(Some(("nobody", "x")), FORM).await;
    assert_eq!(unknown.status.as_u16(), 400);
    assert_eq!(unknown.body["error"], "invalid_client");
    assert_eq!(unknown.body["error_description"], "invalid client nobody");
    assert_eq!(unknown.body["code"], "oidc.invalid_client");

    let mut mismatch = FORM.to_vec();
    mismatch.push(("client_id", "someone-else"));
    let reply = server
        .token_request(Some((BOOTSTRAP_ID, BOOTSTRAP_SECRET)), &mismatch)
        .await;
    assert_eq!(reply.status.as_u16(), 400);
    assert_eq!(reply.body["error_description"], "client_id mismatch");

    let anonymous = server.token_request(None, FORM).await;
    assert_eq!(anonymous.body["error"], "invalid_request");
    assert_eq!(
        anonymous.body["error_description"],
        "no client authentication mechanism provided"
    );

    let auth = Some((BOOTSTRAP_ID, BOOTSTRAP_SECRET));
    let no_resource = server
        .token_request(
            auth,
            &[("grant_type", "client_credentials"), ("scope", "all")],
        )
        .await;
    assert_eq!(no_resource.status.as_u16(), 400);
    assert_eq!(no_resource.body["error"], "invalid_target");
    assert_eq!(
        no_resource.body["error_description"],
        "both `resource` and `organization_id` are not provided"
    );
    let unknown_resource = server
        .token_request(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://nowhere.example"),
            ],
        )
        .await;
    assert_eq!(unknown_resource.body["error"], "invalid_target");
    assert_eq!(
        unknown_resource.body["error_description"],
        "resource indicator is missing, or unknown"
    );
    let two = server
        .token_request(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MANAGEMENT_API),
                ("resource", "https://other.example"),
            ],
        )
        .await;
    assert_eq!(two.body["error"], "invalid_target");

    // Scopes the roles do not grant are dropped silently.
    let extra = server
        .token_request(
            auth,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MANAGEMENT_API),
                ("scope", "all write:everything"),
            ],
        )
        .await;
    assert_eq!(extra.expect(200)["scope"], "all");

    let unsupported = server
        .token_request(
            auth,
            &[("grant_type", "password"), ("resource", MANAGEMENT_API)],
        )
        .await;
    assert_eq!(unsupported.body["error"], "unsupported_grant_type");

    // A web application may not use client credentials.
    let token = server.token().await;
    let created = server
        .post(
            "/api/applications",
            json!({"name": "web", "type": "Traditional"}),
        )
        .await;
    let web_id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let secrets = server
        .get(&format!("/api/applications/{web_id}/secrets"))
        .await;
    let web_secret = secrets.expect(200)[0]["value"].as_str().unwrap().to_owned();
    let refused = server
        .token_request(Some((&web_id, &web_secret)), FORM)
        .await;
    assert_eq!(refused.status.as_u16(), 400);
    assert_eq!(refused.body["error"], "unauthorized_client");
    assert!(!token.is_empty());

    // Refusals are logged too.
    let logs = server
        .get("/api/logs?logKey=ExchangeTokenBy.ClientCredentials&page_size=100")
        .await;
    assert!(
        logs.expect(200)
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["payload"]["result"] == "Error"
                && l["payload"]["error"]["code"] == "oidc.invalid_client")
    );
}

#[tokio::test]
async fn an_expired_secret_is_refused() {
    let server = TestServer::start().await;
    let created = server
        .post(
            "/api/applications",
            json!({"name": "cron", "type": "MachineToMachine"}),
        )
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let expires_at = (now_s() + 2) * 1000;
    let secret = server
        .post(
            &format!("/api/applications/{id}/secrets"),
            json!({"name": "short-lived", "expiresAt": expires_at}),
        )
        .await;
    let value = secret.expect(201)["value"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "client_credentials"),
        ("resource", MANAGEMENT_API),
    ];
    server
        .token_request(Some((&id, &value)), &form)
        .await
        .expect(200);
    // Expiry is a matter of wall-clock time: poll until the deadline passes, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = server.token_request(Some((&id, &value)), &form).await;
        if reply.status.as_u16() == 400 {
            assert_eq!(reply.body["error"], "invalid_request");
            assert_eq!(reply.body["error_description"], "client secret has expired");
            assert!(now_s() * 1000 >= expires_at - 1000);
            break;
        }
        assert_eq!(reply.status.as_u16(), 200);
        assert!(std::time::Instant::now() < deadline, "secret never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// No request can leave the Management API without an administrator: the bootstrap app cannot
/// delete itself, withdraw its own access or delete its own last secret, and the access role and
/// its `all` scope stay; the same changes on another app are allowed.
#[tokio::test]
async fn the_management_api_cannot_lock_itself_out() {
    let server = TestServer::start().await;
    let own = format!("/api/applications/{BOOTSTRAP_ID}");
    let refused = [
        (server.delete(&own).await, "application.cannot_delete_self"),
        (
            server.patch(&own, json!({"isAdmin": false})).await,
            "application.cannot_withdraw_own_management_access",
        ),
        (
            server
                .delete(&format!("{own}/roles/management-api-access"))
                .await,
            "application.cannot_withdraw_own_management_access",
        ),
        (
            server
                .put(&format!("{own}/roles"), json!({"roleIds": []}))
                .await,
            "application.cannot_withdraw_own_management_access",
        ),
        (
            server
                .delete(&format!(
                    "/api/roles/management-api-access/applications/{BOOTSTRAP_ID}"
                ))
                .await,
            "application.cannot_withdraw_own_management_access",
        ),
        (
            server
                .delete(&format!("{own}/secrets/Default%20secret"))
                .await,
            "application.cannot_delete_own_last_secret",
        ),
        (
            server.delete("/api/roles/management-api-access").await,
            "role.management_api_access_protected",
        ),
        (
            server
                .delete("/api/roles/management-api-access/scopes/management-api-all")
                .await,
            "role.management_api_access_protected",
        ),
    ];
    for (reply, code) in &refused {
        reply.expect_error(400, code);
    }
    let token = server
        .token_request(Some((BOOTSTRAP_ID, BOOTSTRAP_SECRET)), FORM)
        .await;
    assert_eq!(token.expect(200)["scope"], "all");

    // Another machine-to-machine app loses its access as asked.
    let other = server
        .post(
            "/api/applications",
            json!({"name": "other", "type": "MachineToMachine"}),
        )
        .await;
    let other = other.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/applications/{other}/roles"),
            json!({"roleIds": ["management-api-access"]}),
        )
        .await
        .expect(201);
    server
        .delete(&format!(
            "/api/applications/{other}/roles/management-api-access"
        ))
        .await
        .expect(204);
    server
        .delete(&format!("/api/applications/{other}"))
        .await
        .expect(204);

    // With a second secret the first may go: rotating the bootstrap secret stays possible.
    server
        .post(&format!("{own}/secrets"), json!({"name": "next"}))
        .await
        .expect(201);
    server
        .delete(&format!("{own}/secrets/Default%20secret"))
        .await
        .expect(204);
}
