//! The OIDC social connector against real, independent upstreams: a second idledger server
//! (its hosted sign-in page, token endpoint, JWKS and key rotation), and, for the ID token
//! checks no honest provider fails, a token endpoint of the test's own whose ID tokens are
//! signed with the upstream's real key and verified against its real JWKS.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, REDIRECT, csrf, location, query_of};
use crate::support::{KEK, Reply, TestServer, now_s, pg_bin};

pub const PASSWORD: &str = "Upstream-Horse-42";
pub const CONNECTOR: &str = "upstream";
const AGENT: &str = "social-browser/1.0";

/// The social tests' browser on `origin`, announcing itself as [`AGENT`].
pub fn browser_on(origin: &str) -> Browser {
    Browser::builder_on(origin).user_agent(AGENT).build()
}

/// An application of `server` with a secret and one redirect URI.
pub async fn application(server: &TestServer, redirect: &str) -> (String, String) {
    let created = server
        .post(
            "/api/applications",
            json!({
                "name": "Relying party",
                "type": "Traditional",
                "oidcClientMetadata": {"redirectUris": [redirect], "postLogoutRedirectUris": []}
            }),
        )
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let secrets = server.get(&format!("/api/applications/{id}/secrets")).await;
    let secret = secrets.expect(200)[0]["value"].as_str().unwrap().to_owned();
    (id, secret)
}

/// The upstream: an idledger server with a person and an application for the downstream.
pub struct Upstream {
    pub server: TestServer,
    pub client_id: String,
    pub client_secret: String,
    pub user_id: String,
}

impl Upstream {
    pub async fn start(callback: &str, person: Value) -> Upstream {
        let server = TestServer::start().await;
        let (client_id, client_secret) = application(&server, callback).await;
        let created = server.post("/api/users", person).await;
        let user_id = created.expect(200)["id"].as_str().unwrap().to_owned();
        Upstream {
            server,
            client_id,
            client_secret,
            user_id,
        }
    }

    /// The connector configuration that signs in with this upstream.
    pub fn config(&self, auth_method: &str) -> Value {
        let issuer = self.server.issuer();
        json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "scope": "profile email offline_access",
            "authorizationEndpoint": format!("{issuer}/auth"),
            "tokenEndpoint": format!("{issuer}/token"),
            "tokenEndpointAuthMethod": auth_method,
            "idTokenVerificationConfig": {"jwksUri": format!("{issuer}/jwks"), "issuer": issuer},
            "authRequestOptionalConfig": {"prompt": "consent"},
        })
    }

    /// Follows `authorization_uri` through the upstream's hosted sign-in page; answers the
    /// redirect back to the downstream's callback.
    pub async fn sign_in(&self, authorization_uri: &str, username: &str) -> String {
        let browser = browser_on(&self.server.endpoint);
        let started = browser.get(authorization_uri).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        let signed_in = browser
            .fill_sign_in(&location(&started), username, PASSWORD)
            .await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        let resumed = browser.get(&location(&signed_in)).await;
        assert_eq!(resumed.status, StatusCode::SEE_OTHER, "{}", resumed.body);
        location(&resumed)
    }
}

/// The downstream: an idledger server with the OIDC connector and an application that starts
/// sign-ins.
pub struct Downstream {
    pub server: TestServer,
    pub client_id: String,
    pub client_secret: String,
}

impl Downstream {
    pub async fn start() -> Downstream {
        let server = TestServer::start().await;
        let (client_id, client_secret) = application(&server, REDIRECT).await;
        Downstream {
            server,
            client_id,
            client_secret,
        }
    }

    pub fn callback(&self) -> String {
        format!("{}/callback/{CONNECTOR}", self.server.endpoint)
    }

    pub async fn connect(&self, config: Value, options: Value) -> Reply {
        let mut body = json!({
            "connectorId": "oidc",
            "id": CONNECTOR,
            "config": config,
            "metadata": {"target": CONNECTOR, "name": {"en": "Upstream"}},
        });
        for (key, value) in options.as_object().unwrap() {
            body[key] = value.clone();
        }
        let created = self.server.post("/api/connectors", body).await;
        // The seed's sign-up asks for a username, which Logto asks a new social user for
        // (the first test shows it); with `skipRequiredIdentifiers` the upstream identity is
        // enough, which keeps the other tests to the connector.
        self.server
            .patch(
                "/api/sign-in-exp",
                json!({"socialSignInConnectorTargets": [CONNECTOR],
                       "socialSignIn": {"skipRequiredIdentifiers": true}}),
            )
            .await
            .expect(200);
        created
    }

    /// A browser with an interaction of the downstream's application.
    pub async fn visitor(&self) -> Browser {
        self.visitor_asking("openid profile email").await
    }

    /// A browser with an interaction of the downstream's application asking for `scope`.
    pub async fn visitor_asking(&self, scope: &str) -> Browser {
        let browser = browser_on(&self.server.endpoint);
        browser.start(&self.client_id, scope, &[]).await;
        browser
    }
}

/// `authorization-uri`: the verification id and where the browser goes.
pub async fn authorization(browser: &Browser, downstream: &Downstream) -> (String, String) {
    let reply = browser
        .post(
            &format!("/api/experience/verification/social/{CONNECTOR}/authorization-uri"),
            json!({"state": "trip-state", "redirectUri": downstream.callback()}),
        )
        .await;
    let body = reply.expect(200);
    (
        body["verificationId"].as_str().unwrap().to_owned(),
        body["authorizationUri"].as_str().unwrap().to_owned(),
    )
}

pub async fn verify(browser: &Browser, verification_id: &str, callback_url: &str) -> Reply {
    let data: serde_json::Map<String, Value> = query_of(callback_url)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    browser
        .post(
            &format!("/api/experience/verification/social/{CONNECTOR}/verify"),
            json!({"verificationId": verification_id, "connectorData": data}),
        )
        .await
}

/// Identification under `event`, then submission; answers the identification's status and
/// the authorization code the application receives.
pub async fn identify_and_submit(
    browser: &Browser,
    verification_id: &str,
    event: &str,
) -> (u16, String) {
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": event}),
        )
        .await
        .expect(204);
    let identified = browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": verification_id}),
        )
        .await;
    let status = identified.status.as_u16();
    assert!(matches!(status, 201 | 204), "{}", identified.body);
    (status, submit(browser).await)
}

/// Submits the interaction and follows the resumption back to the application; answers the
/// authorization code.
pub async fn submit(browser: &Browser) -> String {
    let submitted = browser.post("/api/experience/submit", json!({})).await;
    let resume = submitted.expect(200)["redirectTo"]
        .as_str()
        .unwrap()
        .to_owned();
    let resumed = browser.get(&resume).await;
    let back = location(&resumed);
    assert!(back.starts_with(REDIRECT), "{}", resumed.body);
    query_of(&back)["code"].clone()
}

/// A whole social sign-in (or registration) through the Experience API; answers the
/// downstream user's id and the application's authorization code.
pub async fn social_sign_in_with_code(
    upstream: &Upstream,
    downstream: &Downstream,
    event: &str,
) -> (String, String) {
    let browser = downstream.visitor().await;
    let (verification_id, uri) = authorization(&browser, downstream).await;
    let back = upstream.sign_in(&uri, "ada").await;
    assert!(back.starts_with(&downstream.callback()), "{back}");
    verify(&browser, &verification_id, &back).await.expect(200);
    let (_, code) = identify_and_submit(&browser, &verification_id, event).await;
    let user_id = downstream_user_of(downstream, &upstream.user_id).await;
    (user_id, code)
}

pub async fn social_sign_in(upstream: &Upstream, downstream: &Downstream, event: &str) -> String {
    social_sign_in_with_code(upstream, downstream, event)
        .await
        .0
}

pub async fn downstream_user_of(downstream: &Downstream, upstream_user_id: &str) -> String {
    let db = downstream.server.db().await;
    let row = db
        .query_one(
            "SELECT user_id FROM users_identities WHERE target = $1 AND identity_id = $2",
            &[&CONNECTOR, &upstream_user_id],
        )
        .await
        .unwrap();
    row.get(0)
}

fn ada() -> Value {
    json!({
        "username": "ada", "password": PASSWORD, "primaryEmail": "ada@example.com",
        "name": "Ada Lovelace", "avatar": "https://img.example/ada.png",
    })
}

pub async fn pair(auth_method: &str, options: Value) -> (Upstream, Downstream) {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(&downstream.callback(), ada()).await;
    downstream
        .connect(upstream.config(auth_method), options)
        .await
        .expect(200);
    (upstream, downstream)
}

#[tokio::test]
async fn a_first_social_sign_in_registers_and_the_next_signs_the_same_user_in() {
    let (upstream, downstream) = pair("client_secret_post", json!({})).await;
    // Logto's default: the seed's sign-up identifier (a username) is asked of a new social
    // user before the sign-in completes.
    downstream
        .server
        .patch("/api/sign-in-exp", json!({"socialSignIn": {}}))
        .await
        .expect(200);

    let browser = downstream.visitor().await;
    let (verification_id, uri) = authorization(&browser, &downstream).await;
    let sent = query_of(&uri);
    assert_eq!(sent["scope"], "openid profile email offline_access");
    assert_eq!(sent["state"], "trip-state");
    assert_eq!(sent["prompt"], "consent");
    assert_eq!(sent["code_challenge_method"], "S256", "PKCE from discovery");
    assert!(sent["nonce"].len() >= 43);
    let back = upstream.sign_in(&uri, "ada").await;
    verify(&browser, &verification_id, &back).await.expect(200);
    // The same return a second time finds its trip used up.
    verify(&browser, &verification_id, &back)
        .await
        .expect_error(404, "session.verification_session_not_found");
    // Signing in with an identity nobody has is Logto's hint to register.
    browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": verification_id}),
        )
        .await
        .expect_error(404, "user.identity_not_exist");
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect(204);
    browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": verification_id}),
        )
        .await
        .expect(201);
    let missing = browser.post("/api/experience/submit", json!({})).await;
    missing.expect_error(422, "user.missing_profile");
    assert_eq!(missing.body["data"]["missingProfile"], json!(["username"]));
    browser
        .post(
            "/api/experience/profile",
            json!({"type": "username", "value": "ada_social"}),
        )
        .await
        .expect(204);
    submit(&browser).await;

    let user_id = downstream_user_of(&downstream, &upstream.user_id).await;
    let user = downstream
        .server
        .get(&format!("/api/users/{user_id}"))
        .await;
    let user = user.expect(200);
    assert_eq!(user["username"], "ada_social");
    assert_eq!(user["primaryEmail"], "ada@example.com", "verified upstream");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["avatar"], "https://img.example/ada.png");
    assert_eq!(user["identities"][CONNECTOR]["userId"], upstream.user_id);
    assert_eq!(
        user["identities"][CONNECTOR]["details"]["rawData"]["iss"],
        upstream.server.issuer()
    );

    // The second time the same identity signs in the same user.
    assert_eq!(
        social_sign_in(&upstream, &downstream, "SignIn").await,
        user_id
    );
    let events = downstream.server.events().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "social_authorization.started",
        "social_authorization.verified",
        "social_authorization.consumed",
        "user.identity_linked",
        "interaction.user_registered",
        "interaction.identified",
    ] {
        assert!(types.contains(&expected), "{expected} missing: {types:?}");
    }
    let linked = events
        .iter()
        .find(|e| e.event_type == "user.identity_linked")
        .unwrap();
    assert_eq!(linked.actor_kind, "user");
    assert_eq!(linked.actor_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(linked.user_agent, None, "sealed as personal data");
    assert!(linked.request_id.is_some());
    downstream.server.assert_replay_check();
}

#[tokio::test]
async fn client_secret_basic_authenticates_at_the_upstream_token_endpoint() {
    let (upstream, downstream) = pair("client_secret_basic", json!({})).await;
    let user_id = social_sign_in(&upstream, &downstream, "Register").await;
    assert!(!user_id.is_empty());
    // The upstream's log shows the grant went to this client.
    let logs = upstream.server.get("/api/logs?page_size=100").await;
    let exchanged = logs.expect(200).as_array().unwrap().iter().any(|log| {
        log["key"]
            .as_str()
            .is_some_and(|k| k == "ExchangeTokenBy.AuthorizationCode")
            && log["payload"]["applicationId"] == upstream.client_id.as_str()
    });
    assert!(exchanged, "{}", logs.body);
}

#[tokio::test]
async fn a_wrong_issuer_is_refused_with_its_reason_and_recorded() {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(&downstream.callback(), ada()).await;
    let mut config = upstream.config("client_secret_post");
    config["idTokenVerificationConfig"]["issuer"] = json!("https://impostor.example");
    downstream.connect(config, json!({})).await.expect(200);

    let browser = downstream.visitor().await;
    let (verification_id, uri) = authorization(&browser, &downstream).await;
    let back = upstream.sign_in(&uri, "ada").await;
    let refused = verify(&browser, &verification_id, &back).await;
    refused.expect_error(401, "connector.social_invalid_id_token");
    assert_eq!(refused.body["data"]["reason"], "issuer");
    let events = downstream.server.events().await;
    let failed = events
        .iter()
        .find(|e| e.event_type == "social_authorization.failed")
        .unwrap();
    assert_eq!(
        failed.payload["reason"],
        "connector.social_invalid_id_token"
    );
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "interaction.verification_failed")
    );
}

#[tokio::test]
async fn a_rotated_upstream_key_is_fetched_when_a_token_names_it() {
    let (upstream, downstream) = pair("client_secret_post", json!({})).await;
    let first = social_sign_in(&upstream, &downstream, "Register").await;
    upstream
        .server
        .post(
            "/api/configs/oidc/private-keys/rotate",
            json!({"signingKeyAlgorithm": "EC"}),
        )
        .await
        .expect(200);
    // The downstream cached the old key set; the new kid makes it fetch the set again.
    assert_eq!(
        social_sign_in(&upstream, &downstream, "SignIn").await,
        first
    );
}

#[tokio::test]
async fn sync_profile_copies_name_and_avatar_on_every_sign_in_only_when_on() {
    for sync in [true, false] {
        let (upstream, downstream) = pair("client_secret_post", json!({"syncProfile": sync})).await;
        let user_id = social_sign_in(&upstream, &downstream, "Register").await;
        upstream
            .server
            .patch(
                &format!("/api/users/{}", upstream.user_id),
                json!({"name": "Countess of Lovelace", "avatar": "https://img.example/a2.png"}),
            )
            .await
            .expect(200);
        social_sign_in(&upstream, &downstream, "SignIn").await;
        let user = downstream
            .server
            .get(&format!("/api/users/{user_id}"))
            .await;
        let (name, avatar) = if sync {
            ("Countess of Lovelace", "https://img.example/a2.png")
        } else {
            ("Ada Lovelace", "https://img.example/ada.png")
        };
        assert_eq!(user.expect(200)["name"], name, "syncProfile {sync}");
        assert_eq!(user.body["avatar"], avatar, "syncProfile {sync}");
    }
}

#[tokio::test]
async fn a_verified_email_links_to_its_account_only_with_automatic_linking() {
    let (upstream, downstream) = pair("client_secret_post", json!({})).await;
    let existing = downstream
        .server
        .post("/api/users", json!({"primaryEmail": "ada@example.com"}))
        .await;
    let existing = existing.expect(200)["id"].as_str().unwrap().to_owned();

    let browser = downstream.visitor().await;
    let (verification_id, uri) = authorization(&browser, &downstream).await;
    let back = upstream.sign_in(&uri, "ada").await;
    verify(&browser, &verification_id, &back).await.expect(200);
    browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": verification_id}),
        )
        .await
        .expect_error(404, "user.identity_not_exist");

    downstream
        .server
        .patch(
            "/api/sign-in-exp",
            json!({"socialSignIn": {"automaticAccountLinking": true,
                                    "skipRequiredIdentifiers": true}}),
        )
        .await
        .expect(200);
    assert_eq!(
        social_sign_in(&upstream, &downstream, "SignIn").await,
        existing
    );
}

#[tokio::test]
async fn the_account_api_refuses_to_unlink_the_last_way_to_sign_in() {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(
        &downstream.callback(),
        json!({"username": "ada", "password": PASSWORD}),
    )
    .await;
    downstream
        .connect(upstream.config("client_secret_post"), json!({}))
        .await
        .expect(200);
    // Registered through the upstream, with a token that may change identities.
    let browser = downstream.visitor_asking("openid profile identities").await;
    let (verification_id, uri) = authorization(&browser, &downstream).await;
    let back = upstream.sign_in(&uri, "ada").await;
    verify(&browser, &verification_id, &back).await.expect(200);
    let (_, code) = identify_and_submit(&browser, &verification_id, "Register").await;
    let user_id = downstream_user_of(&downstream, &upstream.user_id).await;
    let token = end_user_token(&downstream, &code).await;
    // A password to prove themselves with (Logto's identity verification), though without a
    // username it signs nobody in: the seed signs in by username and password.
    downstream
        .server
        .patch(
            &format!("/api/users/{user_id}/password"),
            json!({"password": "Another-Way-In-7"}),
        )
        .await
        .expect(200);
    let proved = downstream
        .server
        .http
        .post(downstream.server.url("/api/verifications/password"))
        .bearer_auth(&token)
        .json(&json!({"password": "Another-Way-In-7"}))
        .send()
        .await
        .unwrap();
    let proof = Reply::from(proved).await.expect(201)["verificationRecordId"]
        .as_str()
        .unwrap()
        .to_owned();
    let unlink = || async {
        let request = downstream
            .server
            .http
            .delete(
                downstream
                    .server
                    .url(&format!("/api/my-account/identities/{CONNECTOR}")),
            )
            .bearer_auth(&token)
            .header("logto-verification-id", &proof);
        Reply::from(request.send().await.unwrap()).await
    };
    // The upstream identity is the person's only way in.
    unlink()
        .await
        .expect_error(400, "user.last_sign_in_method_required");
    downstream
        .server
        .patch(
            &format!("/api/users/{user_id}"),
            json!({"username": "ada_here"}),
        )
        .await
        .expect(200);
    assert_eq!(unlink().await.status, StatusCode::NO_CONTENT);
    let user = downstream
        .server
        .get(&format!("/api/users/{user_id}"))
        .await;
    assert_eq!(user.expect(200)["identities"], json!({}));
    let events = downstream.server.events().await;
    let unlinked = events
        .iter()
        .find(|e| e.event_type == "user.identity_unlinked")
        .unwrap();
    assert_eq!(unlinked.actor_kind, "user");
    assert_eq!(unlinked.actor_id.as_deref(), Some(user_id.as_str()));
    assert!(unlinked.request_id.is_some());
    unlink().await.expect_error(404, "user.identity_not_exist");
}

#[tokio::test]
async fn an_administrator_links_an_identity_with_what_the_provider_returned() {
    let (upstream, downstream) = pair("client_secret_post", json!({})).await;
    let user = downstream
        .server
        .post("/api/users", json!({"username": "lovelace"}))
        .await;
    let user_id = user.expect(200)["id"].as_str().unwrap().to_owned();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &upstream.client_id)
        .append_pair("redirect_uri", &downstream.callback())
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "admin-state")
        .append_pair("nonce", "admin-nonce")
        .finish();
    let back = upstream
        .sign_in(&format!("{}/auth?{query}", upstream.server.issuer()), "ada")
        .await;
    let code = query_of(&back)["code"].clone();
    let linked = downstream
        .server
        .post(
            &format!("/api/users/{user_id}/identities"),
            json!({"connectorId": CONNECTOR, "connectorData": {
                "code": code, "redirectUri": downstream.callback(), "nonce": "admin-nonce",
            }}),
        )
        .await;
    assert_eq!(linked.expect(200)[CONNECTOR]["userId"], upstream.user_id);
    let other = downstream
        .server
        .post("/api/users", json!({"username": "byron"}))
        .await;
    let other = other.expect(200)["id"].as_str().unwrap().to_owned();
    let back = upstream
        .sign_in(&format!("{}/auth?{query}", upstream.server.issuer()), "ada")
        .await;
    downstream
        .server
        .post(
            &format!("/api/users/{other}/identities"),
            json!({"connectorId": CONNECTOR, "connectorData": {
                "code": query_of(&back)["code"], "redirectUri": downstream.callback(),
            }}),
        )
        .await
        .expect_error(422, "user.identity_already_in_use");
}

// --- the token vault ------------------------------------------------------------------------

/// An end-user access token of the downstream for `browser`'s finished sign-in.
pub async fn end_user_token(downstream: &Downstream, browser_code: &str) -> String {
    let reply = downstream
        .server
        .token_request(
            Some((&downstream.client_id, &downstream.client_secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", browser_code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    reply.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates an API resource on `server` whose access tokens live `ttl_s` seconds.
async fn short_lived_resource(server: &TestServer, indicator: &str, ttl_s: i64) {
    use domain::resource::{NewResource, Resource, ResourceCommand};
    let pool = idledger::app::pool(&server.database_url(), 2).unwrap();
    let keyring = Arc::new(idledger::crypto::Keyring::from_base64(KEK).unwrap());
    let store = idledger::store::EventStore::new(pool, keyring);
    let metadata = domain::Metadata {
        actor: domain::Actor::System,
        ip: None,
        user_agent: None,
        request_id: None,
        occurred_at: time::OffsetDateTime::now_utc(),
    };
    store
        .execute::<Resource>(
            "res-upstream-api",
            ResourceCommand::Create(NewResource {
                id: "res-upstream-api".into(),
                name: "Upstream API".into(),
                indicator: indicator.into(),
                access_token_ttl: ttl_s,
            }),
            &metadata,
        )
        .await
        .unwrap();
}

pub fn dump(server: &TestServer) -> String {
    let dumped = std::process::Command::new(pg_bin("pg_dump"))
        .arg("--dbname")
        .arg(server.database_url())
        .output()
        .unwrap();
    assert!(dumped.status.success());
    String::from_utf8_lossy(&dumped.stdout).into_owned()
}

#[tokio::test]
async fn the_token_vault_keeps_refreshes_and_erases_the_upstream_tokens_sealed() {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(&downstream.callback(), ada()).await;
    let api = "https://api.upstream.example";
    short_lived_resource(&upstream.server, api, 10).await;
    let mut config = upstream.config("client_secret_basic");
    // The upstream's access tokens are for its API and live 10 s: inside the vault's margin,
    // so the first retrieval already renews the token with the refresh token.
    config["customConfig"] = json!({"resource": api});
    downstream
        .connect(config, json!({"enableTokenStorage": true}))
        .await
        .expect(200);

    let browser = downstream.visitor().await;
    let (verification_id, uri) = authorization(&browser, &downstream).await;
    let back = upstream.sign_in(&uri, "ada").await;
    verify(&browser, &verification_id, &back).await.expect(200);
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect(204);
    browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": verification_id}),
        )
        .await
        .expect(201);
    let submitted = browser.post("/api/experience/submit", json!({})).await;
    let resume = submitted.expect(200)["redirectTo"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = query_of(&location(&browser.get(&resume).await))["code"].clone();
    let user_id = downstream_user_of(&downstream, &upstream.user_id).await;

    let shown = downstream
        .server
        .get(&format!(
            "/api/users/{user_id}/identities/{CONNECTOR}?includeTokenSecret=true"
        ))
        .await;
    let secret = &shown.expect(200)["tokenSecret"];
    assert_eq!(secret["metadata"]["hasRefreshToken"], true, "{secret}");
    assert_eq!(secret["metadata"]["tokenType"], "Bearer");
    assert!(secret.get("accessToken").is_none() && !secret.to_string().contains("refresh_token"));
    let first_expiry = secret["metadata"]["expiresAt"].as_i64().unwrap();
    let all = downstream
        .server
        .get(&format!(
            "/api/users/{user_id}/all-identities?includeTokenSecret=true"
        ))
        .await;
    assert_eq!(
        &all.expect(200)["socialIdentities"][0]["tokenSecret"],
        secret
    );
    assert!(first_expiry <= (now_s() + 11) * 1000);

    let access_token = end_user_token(&downstream, &code).await;
    let retrieval = downstream
        .server
        .http
        .get(downstream.server.url(&format!(
            "/api/my-account/identities/{CONNECTOR}/access-token"
        )))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    let retrieved = Reply::from(retrieval).await;
    let upstream_token = retrieved.expect(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The token handed out is the upstream's, for its API, and valid there.
    let payload = upstream_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], api);
    assert_eq!(claims["sub"], upstream.user_id);
    let events = downstream.server.events().await;
    let refreshed = events
        .iter()
        .find(|e| e.event_type == "token_set.refreshed")
        .expect("the expiring token was refreshed");
    assert_eq!(refreshed.actor_id.as_deref(), Some(user_id.as_str()));
    let stored = events
        .iter()
        .find(|e| e.event_type == "token_set.stored")
        .unwrap();
    assert_eq!(
        refreshed.payload["retiredVaultRef"],
        stored.payload["vaultRef"]
    );

    // Nothing secret at rest: neither token nor the client secret is in a dump.
    let dumped = dump(&downstream.server);
    assert!(dumped.contains("COPY public.vault"));
    for (name, secret) in [
        ("client secret", upstream.client_secret.as_str()),
        ("upstream access token", upstream_token.as_str()),
    ] {
        assert!(!dumped.contains(secret), "the {name} is in the dump");
    }
    let db = downstream.server.db().await;
    let vault_refs: Vec<String> = db
        .query("SELECT ref FROM vault WHERE ref LIKE 'token_set/%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(vault_refs.len(), 1, "the refreshed set replaced the first");

    // Turning storage off erases the tokens; the event says so and carries none.
    downstream
        .server
        .patch(
            &format!("/api/connectors/{CONNECTOR}"),
            json!({"enableTokenStorage": false}),
        )
        .await
        .expect(200);
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM vault WHERE ref LIKE 'token_set/%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let events = downstream.server.events().await;
    let erased = events
        .iter()
        .find(|e| e.event_type == "token_set.erased")
        .unwrap();
    assert_eq!(erased.payload["reason"], "storage_disabled");
    let shown = downstream
        .server
        .get(&format!(
            "/api/users/{user_id}/identities/{CONNECTOR}?includeTokenSecret=true"
        ))
        .await;
    assert!(shown.expect(200).get("tokenSecret").is_none());
    downstream.server.assert_replay_check();
}

// --- ID tokens no honest provider sends ------------------------------------------------------

/// A token endpoint of the test's own: it answers whatever ID token the test sets, signed with
/// the upstream's real key so that only the claim under test is wrong.
struct ForgedTokenEndpoint {
    url: String,
    next: Arc<Mutex<Option<String>>>,
}

impl ForgedTokenEndpoint {
    async fn start() -> ForgedTokenEndpoint {
        let next: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let answer = next.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let answer = answer.clone();
                async move {
                    let id_token = answer.lock().unwrap().clone().unwrap_or_default();
                    axum::Json(json!({
                        "access_token": "forged-access", "token_type": "Bearer",
                        "expires_in": 3600, "id_token": id_token,
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ForgedTokenEndpoint {
            url: format!("http://{address}/token"),
            next,
        }
    }

    fn answer(&self, id_token: String) {
        *self.next.lock().unwrap() = Some(id_token);
    }
}

/// Signs `claims` with the upstream's current key, under `kid` (its own when `None`).
async fn signed_by_upstream(upstream: &TestServer, claims: &Value, kid: Option<&str>) -> String {
    let db = upstream.db().await;
    let row = db
        .query_one(
            "SELECT k.kid, v.ref, v.sealed FROM signing_keys k JOIN vault v ON v.ref = k.vault_ref \
             ORDER BY k.generation DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (own_kid, vault_ref, sealed): (String, String, Vec<u8>) =
        (row.get(0), row.get(1), row.get(2));
    let keyring = idledger::crypto::Keyring::from_base64(KEK).unwrap();
    let pkcs8 = keyring.open_vault(&vault_ref, &sealed).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    header.kid = Some(kid.map_or(own_kid, str::to_owned));
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&pkcs8),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_id_tokens_fail_each_with_its_reason() {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(&downstream.callback(), ada()).await;
    let forged = ForgedTokenEndpoint::start().await;
    let mut config = upstream.config("client_secret_post");
    config["tokenEndpoint"] = json!(forged.url);
    config["idTokenVerificationConfig"]["clockTolerance"] = json!(5);
    downstream.connect(config, json!({})).await.expect(200);
    let issuer = upstream.server.issuer();
    let browser = downstream.visitor().await;

    // An honest token first: its nonce is the one replayed below.
    let (first_id, first_uri) = authorization(&browser, &downstream).await;
    let first_nonce = query_of(&first_uri)["nonce"].clone();
    let honest = |nonce: &str| {
        json!({
            "iss": issuer, "aud": upstream.client_id, "sub": "forged-sub",
            "iat": now_s(), "exp": now_s() + 600, "nonce": nonce,
        })
    };
    forged.answer(signed_by_upstream(&upstream.server, &honest(&first_nonce), None).await);
    let back = format!("{}?code=c&state=trip-state", downstream.callback());
    verify(&browser, &first_id, &back).await.expect(200);

    // (what is forged, the claims for a nonce, a signing-key override, whether it is accepted)
    type Forgery<'a> = (
        &'a str,
        Box<dyn Fn(&str) -> Value + 'a>,
        Option<&'a str>,
        bool,
    );
    let cases: Vec<Forgery> = vec![
        (
            "issuer",
            Box::new(|n| {
                let mut c = honest(n);
                c["iss"] = json!("https://evil.example");
                c
            }),
            None,
            false,
        ),
        (
            "audience",
            Box::new(|n| {
                let mut c = honest(n);
                c["aud"] = json!("someone-else");
                c
            }),
            None,
            false,
        ),
        (
            "expired",
            Box::new(|n| {
                let mut c = honest(n);
                c["exp"] = json!(now_s() - 60);
                c
            }),
            None,
            false,
        ),
        ("nonce", Box::new(|_| honest(&first_nonce)), None, false),
        ("signature", Box::new(|n| honest(n)), None, true),
        (
            "unknown_kid",
            Box::new(|n| honest(n)),
            Some("kid-nobody-published"),
            false,
        ),
    ];
    for (reason, claims, kid, tamper) in cases {
        let (verification_id, uri) = authorization(&browser, &downstream).await;
        let nonce = query_of(&uri)["nonce"].clone();
        let mut token = signed_by_upstream(&upstream.server, &claims(&nonce), kid).await;
        if tamper {
            // Another subject in the payload, the signature left as it was.
            let parts: Vec<&str> = token.split('.').collect();
            let mut payload: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            payload["sub"] = json!("someone-i-am-not");
            let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
            token = format!("{}.{payload}.{}", parts[0], parts[2]);
        }
        forged.answer(token);
        let refused = verify(&browser, &verification_id, &back).await;
        refused.expect_error(401, "connector.social_invalid_id_token");
        assert_eq!(refused.body["data"]["reason"], reason, "{}", refused.body);
    }
    // A state that is not the trip's is refused before the token endpoint is asked.
    let (verification_id, _) = authorization(&browser, &downstream).await;
    let wrong_state = format!("{}?code=c&state=another", downstream.callback());
    let refused = verify(&browser, &verification_id, &wrong_state).await;
    refused.expect_error(401, "connector.authorization_failed");
    assert_eq!(refused.body["data"]["reason"], "state");
    downstream.server.assert_replay_check();
}

#[tokio::test]
async fn an_unreachable_provider_is_a_connector_error_not_a_500() {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(&downstream.callback(), ada()).await;
    let mut config = upstream.config("client_secret_post");
    config["tokenEndpoint"] = json!("http://127.0.0.1:9/token");
    downstream.connect(config, json!({})).await.expect(200);
    let browser = downstream.visitor().await;
    let (verification_id, _) = authorization(&browser, &downstream).await;
    let back = format!("{}?code=c&state=trip-state", downstream.callback());
    verify(&browser, &verification_id, &back)
        .await
        .expect_error(400, "connector.general");
}

#[tokio::test]
async fn the_connector_is_a_standard_one_with_its_secret_sealed() {
    let downstream = Downstream::start().await;
    let upstream = Upstream::start(&downstream.callback(), ada()).await;
    downstream
        .server
        .post(
            "/api/connectors",
            json!({"connectorId": "oidc", "config": upstream.config("client_secret_post")}),
        )
        .await
        .expect_error(400, "connector.should_specify_target");
    let mut broken = upstream.config("client_secret_post");
    broken["tokenEndpointAuthMethod"] = json!("private_key_jwt");
    downstream
        .server
        .post(
            "/api/connectors",
            json!({"connectorId": "oidc", "config": broken, "metadata": {"target": "x"}}),
        )
        .await
        .expect_error(400, "connector.invalid_config");
    let created = downstream
        .connect(upstream.config("client_secret_post"), json!({}))
        .await;
    assert_eq!(
        created.expect(200)["config"]["clientSecret"],
        upstream.client_secret
    );
    assert_eq!(created.body["isStandard"], true);
    assert_eq!(created.body["target"], CONNECTOR);
    downstream
        .server
        .post(
            "/api/connectors",
            json!({"connectorId": "oidc", "config": upstream.config("client_secret_post"),
                   "metadata": {"target": CONNECTOR}}),
        )
        .await
        .expect_error(422, "connector.multiple_target_with_same_platform");
    let dumped = dump(&downstream.server);
    assert!(!dumped.contains(&upstream.client_secret));
    let exp = downstream.server.get("/api/sign-in-exp").await;
    assert_eq!(
        exp.expect(200)["socialSignInConnectorTargets"],
        json!([CONNECTOR])
    );
}

#[tokio::test]
async fn the_hosted_pages_continue_with_the_provider_and_come_back_signed_in() {
    let (upstream, downstream) = pair("client_secret_post", json!({})).await;
    let browser = downstream.visitor().await;
    let page = browser.get("/sign-in").await;
    let html = page.body.as_str().unwrap_or_default().to_owned();
    assert!(html.contains("Continue with Upstream"), "{html}");
    let started = browser
        .form(
            &format!("/sign-in/social/{CONNECTOR}"),
            &[("_csrf", &csrf(&page))],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let back = upstream.sign_in(&location(&started), "ada").await;
    let callback_path = back.replacen(&downstream.server.endpoint, "", 1);
    let landed = browser.get(&callback_path).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    let resumed = browser.get(&location(&landed)).await;
    assert!(location(&resumed).starts_with(REDIRECT), "{}", resumed.body);
    let user_id = downstream_user_of(&downstream, &upstream.user_id).await;
    assert!(!user_id.is_empty());

    // The same callback again: the sign-in it belonged to is finished, and the page says so.
    let again = browser.get(&callback_path).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let html = again.body.as_str().unwrap_or_default();
    assert!(
        html.contains("This sign-in has expired or is already finished."),
        "{html}"
    );
}

#[tokio::test]
async fn the_hosted_pages_ask_a_new_social_user_for_the_username_the_sign_up_wants() {
    let (upstream, downstream) = pair("client_secret_post", json!({})).await;
    // Logto's default: the seed's sign-up wants a username, which the upstream does not give.
    downstream
        .server
        .patch("/api/sign-in-exp", json!({"socialSignIn": {}}))
        .await
        .expect(200);
    downstream
        .server
        .post("/api/users", json!({"username": "taken"}))
        .await
        .expect(200);
    let browser = downstream.visitor().await;
    let page = browser.get("/sign-in").await;
    let started = browser
        .form(
            &format!("/sign-in/social/{CONNECTOR}"),
            &[("_csrf", &csrf(&page))],
        )
        .await;
    let back = upstream.sign_in(&location(&started), "ada").await;
    let landed = browser
        .get(&back.replacen(&downstream.server.endpoint, "", 1))
        .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    let step = location(&landed);
    assert!(step.starts_with("/sign-in/social/profile"), "{step}");
    let form = browser.get(&step).await;
    assert_eq!(form.status, StatusCode::OK);
    let html = form.body.as_str().unwrap_or_default().to_owned();
    assert!(html.contains("Choose a username"), "{html}");

    // Someone has the name, then the name breaks the rules: each said on the form, kept there.
    for (username, message) in [
        ("taken", "This username is already in use."),
        (
            "has space",
            "The username contains characters that are not allowed.",
        ),
    ] {
        let refused = browser
            .form(&step, &[("_csrf", &csrf(&form)), ("username", username)])
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let html = refused.body.as_str().unwrap_or_default();
        assert!(html.contains(message), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains(&format!("value=\"{username}\"")), "{html}");
    }

    let chosen = browser
        .form(&step, &[("_csrf", &csrf(&form)), ("username", "ada_below")])
        .await;
    assert_eq!(chosen.status, StatusCode::SEE_OTHER, "{}", chosen.body);
    let resumed = browser.get(&location(&chosen)).await;
    assert!(location(&resumed).starts_with(REDIRECT), "{}", resumed.body);
    let user_id = downstream_user_of(&downstream, &upstream.user_id).await;
    let user = downstream
        .server
        .get(&format!("/api/users/{user_id}"))
        .await;
    assert_eq!(user.expect(200)["username"], "ada_below");
    let events = downstream.server.events().await;
    let named = events
        .iter()
        .rfind(|e| e.stream_id == user_id && e.event_type == "user.updated")
        .expect("the username was recorded");
    assert_eq!(named.actor_id.as_deref(), Some(user_id.as_str()));
    assert!(named.request_id.is_some());
    downstream.server.assert_replay_check();
}
