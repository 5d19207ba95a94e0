//! The OIDC social connector against panva's `oidc-provider` (tests/upstream/provider.mjs), an
//! OpenID provider that shares no code with idledger: its discovery (PKCE), its RS256 ID tokens
//! and JWKS, its development sign-in and consent pages, and a client per token endpoint
//! authentication method, each of which it accepts only authenticated its own way.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::browser::{location, query_of};
use crate::sdk_e2e::{browser_test, free_port};
use crate::social_oidc::{
    CONNECTOR, Downstream, authorization, browser_on, downstream_user_of, dump, end_user_token,
    identify_and_submit, verify,
};
use crate::support::Reply;

/// The provider prints its address within a second; past this it is not starting.
const START_DEADLINE: Duration = Duration::from_secs(20);

fn script() -> PathBuf {
    let upstream = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/upstream");
    assert!(
        upstream
            .join("node_modules/oidc-provider/package.json")
            .exists(),
        "oidc-provider is missing: run the suite through scripts/test, which installs \
         tests/upstream/package.json"
    );
    upstream.join("provider.mjs")
}

/// A running `oidc-provider`; it stops when dropped (its standard input closes and the
/// process is killed).
pub struct NodeProvider {
    _child: Child,
    pub issuer: String,
    /// `<auth method>` → `{clientId, clientSecret}`.
    clients: Value,
    redirect_uri: String,
}

impl NodeProvider {
    /// Starts the provider for a connector whose callback is `redirect_uri`, with `settings`
    /// (`accessTokenTtl`, `host`: see provider.mjs).
    pub async fn start(redirect_uri: &str, mut settings: Value) -> NodeProvider {
        settings["redirectUri"] = json!(redirect_uri);
        let mut child = Command::new("node")
            .arg(script())
            .arg(settings.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its development-mode warnings; failures show in what it answers.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (scripts/test installs the npm packages; node comes with npm)");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::time::timeout(START_DEADLINE, BufReader::new(stdout).lines().next_line())
            .await
            .expect("oidc-provider started in time")
            .unwrap()
            .expect("oidc-provider printed its address");
        let started: Value = serde_json::from_str(&line).unwrap();
        NodeProvider {
            _child: child,
            issuer: started["issuer"].as_str().unwrap().to_owned(),
            clients: started["clients"].clone(),
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    pub fn client(&self, method: &str) -> (String, String) {
        let client = &self.clients[method];
        (
            client["clientId"].as_str().unwrap().to_owned(),
            client["clientSecret"].as_str().unwrap().to_owned(),
        )
    }

    /// The connector configuration of the client registered for `method`, authenticating
    /// with `used` (the same unless a test wants it refused).
    pub fn config(&self, method: &str, used: &str) -> Value {
        let (client_id, client_secret) = self.client(method);
        let issuer = &self.issuer;
        json!({
            "clientId": client_id,
            "clientSecret": client_secret,
            "scope": "profile email offline_access",
            "authorizationEndpoint": format!("{issuer}/auth"),
            "tokenEndpoint": format!("{issuer}/token"),
            "tokenEndpointAuthMethod": used,
            "clientSecretJwtSigningAlgorithm": "HS384",
            "idTokenVerificationConfig": {
                "jwksUri": format!("{issuer}/jwks"), "issuer": issuer, "algorithms": ["RS256"],
            },
            // oidc-provider issues a refresh token only to a consented offline_access request.
            "authRequestOptionalConfig": {"prompt": "consent"},
        })
    }

    /// Follows `authorization_uri` through the provider's sign-in (as `login`, which becomes
    /// the subject) and consent pages; answers the redirect back to the connector's callback.
    pub async fn sign_in(&self, authorization_uri: &str, login: &str) -> String {
        let browser = browser_on(&self.issuer);
        let mut reply = browser.get(authorization_uri).await;
        for _ in 0..10 {
            if reply.status.is_redirection() {
                let next = location(&reply);
                if next.starts_with(&self.redirect_uri) {
                    return next;
                }
                reply = browser.get(&next).await;
                continue;
            }
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let page = reply.body.as_str().unwrap_or_default().to_owned();
            let action = between(&page, "action=\"", "\"");
            reply = if page.contains("name=\"prompt\" value=\"login\"") {
                let fields = [("prompt", "login"), ("login", login), ("password", "any")];
                browser.form(&action, &fields).await
            } else {
                assert!(page.contains("value=\"consent\""), "{page}");
                browser.form(&action, &[("prompt", "consent")]).await
            };
        }
        panic!("the provider never sent the browser back: {}", reply.body);
    }
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start}: {text}"))
        + start.len();
    let to = from + text[from..].find(end).unwrap();
    text[from..to].replace("&#x2F;", "/").replace("&amp;", "&")
}

/// A social registration of `login` through the Experience API: the verification's answer
/// and, when it succeeded, the downstream user and the application's authorization code.
async fn register(
    provider: &NodeProvider,
    downstream: &Downstream,
    login: &str,
) -> Result<(String, String), Reply> {
    let browser = downstream.visitor().await;
    let (verification_id, uri) = authorization(&browser, downstream).await;
    let sent = query_of(&uri);
    assert_eq!(sent["code_challenge_method"], "S256", "PKCE from discovery");
    let back = provider.sign_in(&uri, login).await;
    let verified = verify(&browser, &verification_id, &back).await;
    if verified.status != StatusCode::OK {
        return Err(verified);
    }
    let (status, code) = identify_and_submit(&browser, &verification_id, "Register").await;
    assert_eq!(status, 201);
    Ok((downstream_user_of(downstream, login).await, code))
}

#[tokio::test]
async fn each_token_endpoint_auth_method_signs_in_at_an_independent_provider() {
    let downstream = Downstream::start().await;
    let provider = NodeProvider::start(&downstream.callback(), json!({})).await;
    downstream
        .connect(
            provider.config("client_secret_post", "client_secret_post"),
            json!({}),
        )
        .await
        .expect(200);
    for method in [
        "client_secret_post",
        "client_secret_basic",
        "client_secret_jwt",
    ] {
        downstream
            .server
            .patch(
                &format!("/api/connectors/{CONNECTOR}"),
                json!({"config": provider.config(method, method)}),
            )
            .await
            .expect(200);
        let login = format!("ada-{}", method.rsplit('_').next().unwrap());
        let (user_id, _) = register(&provider, &downstream, &login)
            .await
            .unwrap_or_else(|refused| panic!("{method}: {}", refused.body));
        let user = downstream
            .server
            .get(&format!("/api/users/{user_id}"))
            .await;
        let user = user.expect(200);
        assert_eq!(user["identities"][CONNECTOR]["userId"], login.as_str());
        assert_eq!(
            user["identities"][CONNECTOR]["details"]["rawData"]["iss"],
            provider.issuer.as_str()
        );
        assert_eq!(user["primaryEmail"], format!("{login}@upstream.example"));
        assert_eq!(user["name"], format!("{login} upstream"));
    }

    // The provider holds each client to its own method: the JWT client posting its secret
    // instead is refused at the token endpoint, and the connector says so.
    downstream
        .server
        .patch(
            &format!("/api/connectors/{CONNECTOR}"),
            json!({"config": provider.config("client_secret_jwt", "client_secret_post")}),
        )
        .await
        .expect(200);
    let refused = register(&provider, &downstream, "mallory")
        .await
        .expect_err("a client authenticating another way is refused");
    refused.expect_error(401, "connector.social_auth_code_invalid");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_client"),
        "{}",
        refused.body
    );
    downstream.server.assert_replay_check();
}

#[tokio::test]
async fn the_vault_refreshes_an_expired_token_at_the_independent_provider() {
    let downstream = Downstream::start().await;
    // Access tokens of 20 s are inside the vault's 30 s margin: the first retrieval renews.
    let provider = NodeProvider::start(&downstream.callback(), json!({"accessTokenTtl": 20})).await;
    downstream
        .connect(
            provider.config("client_secret_basic", "client_secret_basic"),
            json!({"enableTokenStorage": true}),
        )
        .await
        .expect(200);
    let (user_id, code) = register(&provider, &downstream, "ada")
        .await
        .unwrap_or_else(|refused| panic!("{}", refused.body));
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
    let events = downstream.server.events().await;
    let refreshed = events
        .iter()
        .find(|e| e.event_type == "token_set.refreshed")
        .expect("the expiring token was refreshed");
    assert_eq!(refreshed.actor_id.as_deref(), Some(user_id.as_str()));

    // The renewed token is the provider's, and its userinfo endpoint takes it.
    let userinfo = idledger::outbound::client_builder()
        .build()
        .unwrap()
        .get(format!("{}/me", provider.issuer))
        .bearer_auth(&upstream_token)
        .send()
        .await
        .unwrap();
    let userinfo = Reply::from(userinfo).await;
    assert_eq!(userinfo.expect(200)["sub"], "ada");

    // Neither the token nor the client secret is in a dump of the database.
    let dumped = dump(&downstream.server);
    let (_, client_secret) = provider.client("client_secret_basic");
    for (name, secret) in [
        ("client secret", client_secret.as_str()),
        ("upstream access token", upstream_token.as_str()),
    ] {
        assert!(!dumped.contains(secret), "the {name} is in the dump");
    }
    downstream.server.assert_replay_check();
}

#[tokio::test]
async fn logtos_python_sdk_continues_with_the_provider_in_a_browser() {
    let downstream = Downstream::start().await;
    // Another loopback address than idledger's: the browser keeps the two sites' cookies apart.
    let provider = NodeProvider::start(&downstream.callback(), json!({"host": "127.0.0.2"})).await;
    downstream
        .connect(
            provider.config("client_secret_basic", "client_secret_basic"),
            json!({}),
        )
        .await
        .expect(200);
    let port = free_port();
    let server = &downstream.server;
    let (app_id, app_secret) = crate::sdk_e2e::flask_sample(server, port).await;

    browser_test(
        server,
        "test_social_oidc.py",
        "social",
        &[
            ("APP_ID", &app_id),
            ("APP_SECRET", &app_secret),
            ("APP_PORT", &port.to_string()),
            ("UPSTREAM_ISSUER", &provider.issuer),
            ("UPSTREAM_LOGIN", "grace"),
        ],
    )
    .await;

    // One user, registered by the first sign-in and signed in again by the second, with the
    // provider's verified email and name.
    let user_id = downstream_user_of(&downstream, "grace").await;
    let user = server.get(&format!("/api/users/{user_id}")).await;
    let user = user.expect(200);
    assert_eq!(user["primaryEmail"], "grace@upstream.example");
    assert_eq!(user["name"], "grace upstream");
    let logs = server
        .get(&format!("/api/logs?userId={user_id}&page_size=100"))
        .await;
    let logs = logs.expect(200).as_array().unwrap().clone();
    let exchanges = logs
        .iter()
        .filter(|l| l["key"] == "ExchangeTokenBy.AuthorizationCode")
        .count();
    assert_eq!(
        exchanges, 2,
        "the SDK redeemed both sign-ins' codes: {logs:?}"
    );
    server.assert_replay_check();
}
