//! The OpenID Connect provider's flows end to end (logto-compat §9): a browser (cookies, no
//! automatic redirects) signs in through the hosted pages or the Experience API, the
//! application's back channel redeems codes and refresh tokens, and every token is checked as a
//! relying party checks it (ID tokens and JWT access tokens against `/oidc/jwks`). Also every
//! refusal on the way, consent for third-party applications, suspension, concurrency (over
//! two nodes on one database), the sign-in rate limit and lockout across nodes, the logout
//! pages, and the activity log entries all of it leaves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::Actor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, REDIRECT, STATE, code_of, csrf, hidden, html, location, query_of};
use crate::support::{KEK, MANAGEMENT_API, Reply, TestServer, logs_of, now_s};

const PASSWORD: &str = "Correct-Horse-42";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";
const BROWSER_AGENT: &str = "oidc-flow-browser/1.0";
/// The application's back channel, told apart from the browser in the log.
const BACKEND_AGENT: &str = "oidc-flow-backend/1.0";
const FULL_SCOPE: &str = "openid profile email roles urn:logto:scope:organizations \
                          urn:logto:scope:organization_roles offline_access";

// --- the browser ------------------------------------------------------------------------------

/// A browser these tests tell apart from the application's back channel in the log.
fn new_browser(server: &TestServer) -> Browser {
    Browser::builder(server).user_agent(BROWSER_AGENT).build()
}

/// The steps of these flows; the reliability suite's secrets audit takes them too.
impl Browser {
    /// `/oidc/auth` for `client` with `scope` and `extra` parameters (state `st4te`, nonce
    /// `n0nce`, and a PKCE challenge for public clients).
    pub(crate) async fn authorize(
        &self,
        client: &Client,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let challenge = challenge(VERIFIER);
        let mut parameters = vec![("nonce", "n0nce")];
        if client.secret.is_none() {
            parameters.extend([
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]);
        }
        parameters.extend_from_slice(extra);
        self.authorization(&client.id, scope, &parameters).await
    }

    /// Signs in on the hosted page the authorization request led to; returns the answer of
    /// the resume URL (the redirect to the application, or to the consent page).
    async fn sign_in_on_page(&self, started: &Reply, username: &str, password: &str) -> Reply {
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        let page_url = location(started);
        assert!(page_url.starts_with("/sign-in?"), "{page_url}");
        let signed_in = self.fill_sign_in(&page_url, username, password).await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.body
        );
        self.get(&location(&signed_in)).await
    }

    /// Signs in through the Experience API up to the submission; returns the resume URL.
    async fn submit_with_api(&self, started: &Reply, username: &str, password: &str) -> String {
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        self.put("/api/experience", json!({"interactionEvent": "SignIn"}))
            .await
            .expect(204);
        let verified = self.verify_password(username, password).await;
        self.identify(verified.expect(200)["verificationId"].as_str().unwrap())
            .await;
        self.submit().await
    }

    /// The Experience API's whole sign-in; returns the resume URL's answer.
    pub(crate) async fn sign_in_with_api(
        &self,
        started: &Reply,
        username: &str,
        password: &str,
    ) -> Reply {
        let resume = self.submit_with_api(started, username, password).await;
        self.get(&resume).await
    }
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// The error of a redirect to the application.
#[track_caller]
fn error_of(answered: &Reply) -> String {
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let target = location(answered);
    assert!(target.starts_with(&format!("{REDIRECT}?")), "{target}");
    let params = query_of(&target);
    assert_eq!(params["state"], STATE, "{target}");
    params["error"].clone()
}

// --- the application ------------------------------------------------------------------------

/// A registered application as its back channel knows itself.
pub(crate) struct Client {
    pub(crate) id: String,
    /// `None` for public clients (SPA), which authenticate by `client_id` alone.
    pub(crate) secret: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub(crate) async fn create(server: &TestServer, kind: &str, third_party: bool) -> Client {
        let created = server
            .post(
                "/api/applications",
                json!({
                    "name": format!("{kind} app"),
                    "type": kind,
                    "isThirdParty": third_party,
                    "oidcClientMetadata": {"redirectUris": [REDIRECT], "postLogoutRedirectUris": []}
                }),
            )
            .await;
        let id = created.expect(200)["id"].as_str().unwrap().to_owned();
        let secret = if kind == "SPA" {
            None
        } else {
            let secrets = server.get(&format!("/api/applications/{id}/secrets")).await;
            Some(secrets.expect(200)[0]["value"].as_str().unwrap().to_owned())
        };
        Client {
            id,
            secret,
            http: idledger::outbound::client_builder()
                .user_agent(BACKEND_AGENT)
                .build()
                .unwrap(),
        }
    }

    /// A form to an endpoint that authenticates the client: HTTP Basic for confidential
    /// clients, `client_id` in the body for public ones.
    async fn call(&self, server: &TestServer, path: &str, form: &[(&str, &str)]) -> Reply {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(server.url(path));
        match &self.secret {
            Some(secret) => request = request.basic_auth(&self.id, Some(secret)),
            None => fields.push(("client_id", &self.id)),
        }
        Reply::from(request.form(&fields).send().await.unwrap()).await
    }

    pub(crate) async fn redeem(&self, server: &TestServer, code: &str) -> Reply {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        if self.secret.is_none() {
            form.push(("code_verifier", VERIFIER));
        }
        self.call(server, "/oidc/token", &form).await
    }

    /// `authorization_code` with exactly the given parameters.
    async fn exchange_code(&self, server: &TestServer, pairs: &[(&str, &str)]) -> Reply {
        let mut form = vec![("grant_type", "authorization_code")];
        form.extend_from_slice(pairs);
        self.call(server, "/oidc/token", &form).await
    }

    pub(crate) async fn refresh(&self, server: &TestServer, refresh_token: &str) -> Reply {
        self.call(
            server,
            "/oidc/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn introspect(&self, server: &TestServer, token: &str) -> Value {
        let reply = self
            .call(server, "/oidc/token/introspection", &[("token", token)])
            .await;
        reply.expect(200).clone()
    }

    async fn revoke(&self, server: &TestServer, token: &str) {
        self.call(server, "/oidc/token/revocation", &[("token", token)])
            .await
            .expect(200);
    }
}

/// The tokens of a 200 from the token endpoint.
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: Option<String>,
    pub(crate) id_token: Option<String>,
    body: Value,
}

#[track_caller]
pub(crate) fn tokens(reply: &Reply) -> Tokens {
    let body = reply.expect(200).clone();
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
        id_token: body["id_token"].as_str().map(str::to_owned),
        body,
    }
}

#[track_caller]
fn assert_invalid_grant(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["error"], "invalid_grant", "{}", reply.body);
    assert_eq!(reply.body["code"], "oidc.invalid_grant", "{}", reply.body);
}

pub(crate) async fn userinfo(server: &TestServer, access_token: &str) -> Reply {
    Reply::from(
        server
            .http
            .get(server.url("/oidc/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

// --- tokens as a relying party checks them --------------------------------------------------

async fn jwks(server: &TestServer) -> JwkSet {
    server
        .http
        .get(server.url("/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The claims of an ES384 JWT whose signature, issuer, audience and expiry check out against
/// the published keys; also returns the header's `typ`.
pub(crate) async fn verified(
    server: &TestServer,
    token: &str,
    audience: &str,
) -> (Value, Option<String>) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES384);
    let keys = jwks(server).await;
    let jwk = keys.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES384);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[server.issuer()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap_or_else(|e| panic!("token does not verify: {e}"))
            .claims;
    (claims, header.typ)
}

/// OIDC Core §3.1.3.6 for ES384: the left half of SHA-384 of the access token, base64url.
fn at_hash(access_token: &str) -> String {
    let full = digest::digest(&digest::SHA384, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&full.as_ref()[..24])
}

// --- fixtures ---------------------------------------------------------------------------------

async fn user(server: &TestServer, body: Value) -> String {
    let created = server.post("/api/users", body).await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

async fn suspend(server: &TestServer, user_id: &str, suspended: bool) {
    server
        .patch(
            &format!("/api/users/{user_id}/is-suspended"),
            json!({"isSuspended": suspended}),
        )
        .await
        .expect(200);
}

/// An API resource with `scopes`; returns the scope ids by name. There is no `/api/resources`
/// route yet, so the resource is created through the store, the one path every write takes
/// (the server reads resources from the same read models).
async fn api_resource(
    server: &TestServer,
    indicator: &str,
    scopes: &[&str],
) -> HashMap<String, String> {
    use domain::resource::{NewResource, NewScope, Resource, ResourceCommand};
    let pool = idledger::app::pool(&server.database_url(), 8).unwrap();
    let keyring = Arc::new(idledger::crypto::Keyring::from_base64(KEK).unwrap());
    let store = idledger::store::EventStore::new(pool, keyring);
    let metadata = domain::Metadata {
        actor: Actor::System,
        ip: None,
        user_agent: None,
        request_id: None,
        occurred_at: time::OffsetDateTime::now_utc(),
    };
    let resource_id = format!("res-{}", indicator.len());
    store
        .execute::<Resource>(
            &resource_id,
            ResourceCommand::Create(NewResource {
                id: resource_id.clone(),
                name: "Orders API".into(),
                indicator: indicator.into(),
                access_token_ttl: 600,
            }),
            &metadata,
        )
        .await
        .unwrap();
    let mut ids = HashMap::new();
    for name in scopes {
        let id = format!("scope-{name}").replace(':', "-");
        store
            .execute::<Resource>(
                &resource_id,
                ResourceCommand::AddScope(NewScope {
                    id: id.clone(),
                    name: (*name).into(),
                    description: Some(format!("{name} orders")),
                }),
                &metadata,
            )
            .await
            .unwrap();
        ids.insert((*name).to_owned(), id);
    }
    ids
}

fn keyed<'a>(logs: &'a [Value], key: &str) -> Vec<&'a Value> {
    logs.iter().filter(|l| l["key"] == key).collect()
}

/// Signs `username` in to `client` (through the Experience API) and redeems the code.
async fn signed_in(
    server: &TestServer,
    browser: &Browser,
    client: &Client,
    scope: &str,
    extra: &[(&str, &str)],
    username: &str,
) -> Tokens {
    let started = browser.authorize(client, scope, extra).await;
    let answered = browser.sign_in_with_api(&started, username, PASSWORD).await;
    let code = code_of(server, &answered);
    tokens(&client.redeem(server, &code).await)
}

/// Polls `attempt` until it returns `Some`, for what only the passing of time brings about.
async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(done) = attempt().await {
            return done;
        }
        assert!(
            Instant::now() < until,
            "{what} did not happen within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// --- the flows ------------------------------------------------------------------------------

#[tokio::test]
async fn an_spa_signs_in_with_pkce_and_its_id_token_verifies_against_the_jwks() {
    let server = TestServer::start().await;
    let spa = Client::create(&server, "SPA", false).await;
    let ada = user(
        &server,
        json!({"username": "ada", "name": "Ada Lovelace", "primaryEmail": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    let role = server
        .post(
            "/api/roles",
            json!({"name": "editor", "description": "edits"}),
        )
        .await;
    let role_id = role.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/users/{ada}/roles"),
            json!({"roleIds": [role_id]}),
        )
        .await
        .expect(201);
    let org = server
        .post(
            "/api/organizations",
            json!({"name": "Acme", "description": "Rockets"}),
        )
        .await;
    let org_id = org.expect(201)["id"].as_str().unwrap().to_owned();
    let org_role = server
        .post(
            "/api/organization-roles",
            json!({"name": "member", "type": "User"}),
        )
        .await;
    let org_role_id = org_role.expect(201)["id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/api/organizations/{org_id}/users"),
            json!({"userIds": [ada]}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("/api/organizations/{org_id}/users/{ada}/roles"),
            json!({"organizationRoleIds": [org_role_id]}),
        )
        .await
        .expect(201);

    let browser = new_browser(&server);
    let before = now_s();
    let started = browser
        .authorize(&spa, FULL_SCOPE, &[("prompt", "consent")])
        .await;
    let answered = browser.sign_in_on_page(&started, "ada", PASSWORD).await;
    let code = code_of(&server, &answered);
    let after = now_s();

    // A public client redeems with its verifier and no secret.
    let issued = tokens(&spa.redeem(&server, &code).await);
    assert_eq!(issued.body["token_type"], "Bearer");
    assert_eq!(issued.body["expires_in"], 3600);
    assert!(issued.refresh.is_some(), "offline_access was consented");
    assert!(
        jsonwebtoken::decode_header(&issued.access).is_err(),
        "without a resource the access token is opaque"
    );
    let id_token = issued.id_token.clone().unwrap();
    let (claims, _) = verified(&server, &id_token, &spa.id).await;
    assert_eq!(claims["sub"], ada);
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["at_hash"], at_hash(&issued.access));
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&auth_time),
        "{auth_time} outside {before}..={after}"
    );
    assert!(claims["sid"].is_string());
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["username"], "ada");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["roles"], json!(["editor"]));
    assert_eq!(claims["organizations"], json!([org_id]));
    assert_eq!(
        claims["organization_roles"],
        json!([format!("{org_id}:member")])
    );
    assert!(claims.get("organization_data").is_none(), "userinfo only");
    assert!(
        claims.get("phone_number").is_none(),
        "phone was not asked for"
    );

    // Userinfo with the opaque access token: the same person, plus what only userinfo says.
    let me = userinfo(&server, &issued.access).await;
    let me = me.expect(200);
    assert_eq!(me["sub"], ada);
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["roles"], json!(["editor"]));
    assert_eq!(
        me["organization_data"],
        json!([{"id": org_id, "name": "Acme", "description": "Rockets"}])
    );

    // The exchange is recorded by the application's back channel, and shown in the user's log
    // next to the sign-in.
    let recorded = server.recorded_events().await;
    let redeemed = recorded
        .iter()
        .find(|e| e.event_type == "grant.code_redeemed")
        .unwrap();
    assert_eq!(redeemed.metadata.actor, Actor::App(spa.id.clone()));
    assert_eq!(redeemed.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(redeemed.metadata.user_agent.as_deref(), Some(BACKEND_AGENT));
    assert!(redeemed.metadata.request_id.is_some());
    let logs = logs_of(&server, &ada).await;
    let keys: Vec<&str> = logs.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"Interaction.SignIn.Submit"), "{keys:?}");
    let exchanges = keyed(&logs, "ExchangeTokenBy.AuthorizationCode");
    assert_eq!(exchanges.len(), 1, "{keys:?}");
    let payload = &exchanges[0]["payload"];
    assert_eq!(payload["result"], "Success");
    assert_eq!(payload["applicationId"], spa.id);
    assert_eq!(payload["userId"], ada);
    assert_eq!(payload["grantId"], redeemed.stream_id);
    assert_eq!(
        payload["tokenTypes"],
        json!(["AccessToken", "IdToken", "RefreshToken"])
    );
    assert!(
        payload["scope"].as_str().unwrap().contains("email"),
        "{payload}"
    );
    assert_eq!(payload["ip"], "127.0.0.1");
    assert_eq!(payload["userAgent"], BACKEND_AGENT);
    // The same entry through the application's filter.
    let by_app = server
        .get(&format!(
            "/api/logs?applicationId={}&logKey=ExchangeTokenBy.AuthorizationCode",
            spa.id
        ))
        .await;
    assert_eq!(by_app.expect(200).as_array().unwrap().len(), 1);
    server.assert_replay_check();
}

#[tokio::test]
async fn a_traditional_app_signs_in_through_the_experience_api_with_its_secret() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    let grace = user(
        &server,
        json!({"username": "grace", "primaryEmail": "grace@example.com", "password": PASSWORD}),
    )
    .await;
    let browser = new_browser(&server);
    let started = browser.authorize(&web, "openid", &[]).await;
    let answered = browser.sign_in_with_api(&started, "grace", PASSWORD).await;
    let code = code_of(&server, &answered);

    // A wrong secret by HTTP Basic is a 401 with a challenge, and leaves the code usable.
    let impostor = Client {
        id: web.id.clone(),
        secret: Some("not-the-secret".into()),
        http: idledger::outbound::client_builder().build().unwrap(),
    };
    let refused = impostor.redeem(&server, &code).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_client");
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );

    let issued = tokens(&web.redeem(&server, &code).await);
    assert!(
        issued.refresh.is_none(),
        "no offline_access, no refresh token"
    );
    assert_eq!(issued.body["scope"], "openid");
    let (claims, _) = verified(&server, issued.id_token.as_deref().unwrap(), &web.id).await;
    assert_eq!(claims["sub"], grace);
    assert_eq!(claims["at_hash"], at_hash(&issued.access));
    // Claims follow the scopes: `openid` alone names the account and nothing else.
    for absent in ["email", "name", "username", "roles", "organizations"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }
    let me = userinfo(&server, &issued.access).await;
    assert_eq!(me.expect(200), &json!({"sub": grace}));
    server.assert_replay_check();
}

#[tokio::test]
async fn a_resource_token_is_a_jwt_with_the_scopes_the_users_roles_grant() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    let indicator = "https://orders.example.com";
    let scopes = api_resource(
        &server,
        indicator,
        &["read:orders", "write:orders", "delete:orders"],
    )
    .await;
    let role = server
        .post(
            "/api/roles",
            json!({"name": "clerk", "description": "reads and writes orders",
                   "scopeIds": [scopes["read:orders"], scopes["write:orders"]]}),
        )
        .await;
    let role_id = role.expect(200)["id"].as_str().unwrap().to_owned();
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    user(&server, json!({"username": "bob", "password": PASSWORD})).await;
    server
        .post(
            &format!("/api/users/{ada}/roles"),
            json!({"roleIds": [role_id]}),
        )
        .await
        .expect(201);

    let scope = "openid offline_access read:orders delete:orders unknown:thing";
    let extra = [("resource", indicator), ("prompt", "consent")];
    for (username, expected) in [("ada", "read:orders"), ("bob", "")] {
        let browser = new_browser(&server);
        let started = browser.authorize(&web, scope, &extra).await;
        let answered = browser.sign_in_with_api(&started, username, PASSWORD).await;
        let code = code_of(&server, &answered);
        let reply = web
            .exchange_code(
                &server,
                &[
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("resource", indicator),
                ],
            )
            .await;
        let issued = tokens(&reply);
        // Requested and granted by a role: read. Requested, not granted: delete. Granted, not
        // requested: write. Unknown: dropped.
        assert_eq!(issued.body["scope"], expected, "{username}");
        assert_eq!(issued.body["expires_in"], 600, "the resource's TTL");
        let (claims, typ) = verified(&server, &issued.access, indicator).await;
        assert_eq!(typ.as_deref(), Some("at+jwt"));
        assert_eq!(claims["scope"], expected);
        assert_eq!(claims["client_id"], web.id);
        assert!(claims["jti"].is_string());
        let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(ttl, 600);
        // The ID token hashes the access token it came with, whatever its format.
        let (id_claims, _) = verified(&server, issued.id_token.as_deref().unwrap(), &web.id).await;
        assert_eq!(id_claims["at_hash"], at_hash(&issued.access));

        // A refresh can ask for the resource again; one the grant does not name is refused.
        let refresh = issued.refresh.unwrap();
        let again = web
            .call(
                &server,
                "/oidc/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh),
                    ("resource", indicator),
                ],
            )
            .await;
        let again = tokens(&again);
        assert_eq!(
            verified(&server, &again.access, indicator).await.0["scope"],
            expected
        );
        let elsewhere = web
            .call(
                &server,
                "/oidc/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", again.refresh.as_deref().unwrap()),
                    ("resource", MANAGEMENT_API),
                ],
            )
            .await;
        assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST);
        assert_eq!(elsewhere.body["error"], "invalid_target");
    }
    let logs = logs_of(&server, &ada).await;
    let exchange = keyed(&logs, "ExchangeTokenBy.AuthorizationCode")[0]["payload"].clone();
    assert_eq!(exchange["audience"], indicator);
    assert_eq!(exchange["scope"], "read:orders");
    server.assert_replay_check();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_late_reuse_revokes_the_whole_grant() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let first = signed_in(
        &server,
        &browser,
        &web,
        "openid offline_access",
        &[("prompt", "consent")],
        "ada",
    )
    .await;
    let r1 = first.refresh.unwrap();

    let second = tokens(&web.refresh(&server, &r1).await);
    let r2 = second.refresh.clone().unwrap();
    assert_ne!(r1, r2, "rotated");
    assert_ne!(first.access, second.access);
    let (claims, _) = verified(&server, second.id_token.as_deref().unwrap(), &web.id).await;
    assert_eq!(claims["sub"], ada);
    assert!(
        claims.get("nonce").is_none(),
        "a refreshed ID token carries no nonce"
    );
    // The old token right after its rotation: a retry, refused without punishment.
    let retry = web.refresh(&server, &r1).await;
    assert_invalid_grant(&retry);
    assert_eq!(
        retry.body["error_description"],
        "refresh token was just rotated"
    );
    let third = tokens(&web.refresh(&server, &r2).await);
    let r3 = third.refresh.clone().unwrap();
    assert_eq!(web.introspect(&server, &third.access).await["active"], true);

    // Once the leeway has passed, presenting a rotated-out token is theft: the grant dies.
    let reuse = eventually(
        "the reuse leeway running out",
        Duration::from_secs(20),
        || async {
            let reply = web.refresh(&server, &r1).await;
            assert_invalid_grant(&reply);
            (reply.body["error_description"] != "refresh token was just rotated").then_some(reply)
        },
    )
    .await;
    assert_eq!(reuse.body["error_description"], "grant request is invalid");
    assert_invalid_grant(&web.refresh(&server, &r3).await);
    assert_eq!(
        web.introspect(&server, &third.access).await,
        json!({"active": false})
    );
    assert_eq!(web.introspect(&server, &r3).await, json!({"active": false}));
    userinfo(&server, &third.access).await.expect(401);

    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "grant.refresh_reused")
    );
    let logs = logs_of(&server, &ada).await;
    let refreshed = keyed(&logs, "ExchangeTokenBy.RefreshToken");
    assert_eq!(refreshed.len(), 2);
    assert_eq!(
        refreshed[0]["payload"]["tokenTypes"],
        json!(["AccessToken", "IdToken", "RefreshToken"])
    );
    let revoked = keyed(&logs, "RevokeToken");
    assert_eq!(revoked.len(), 1);
    let payload = &revoked[0]["payload"];
    assert_eq!(payload["reason"], "refresh token reused");
    assert_eq!(payload["applicationId"], web.id);
    assert_eq!(
        payload["tokenTypes"],
        json!(["AccessToken", "RefreshToken"])
    );
    assert_eq!(payload["scope"], "openid offline_access");
    server.assert_replay_check();
}

#[tokio::test]
async fn a_reused_code_revokes_what_it_issued() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let started = browser
        .authorize(&web, "openid offline_access", &[("prompt", "consent")])
        .await;
    let code = code_of(
        &server,
        &browser.sign_in_with_api(&started, "ada", PASSWORD).await,
    );
    let issued = tokens(&web.redeem(&server, &code).await);
    assert_eq!(
        web.introspect(&server, &issued.access).await["active"],
        true
    );

    assert_invalid_grant(&web.redeem(&server, &code).await);
    assert_eq!(
        web.introspect(&server, &issued.access).await,
        json!({"active": false})
    );
    assert_invalid_grant(
        &web.refresh(&server, issued.refresh.as_deref().unwrap())
            .await,
    );
    userinfo(&server, &issued.access).await.expect(401);
    let logs = logs_of(&server, &ada).await;
    let revoked = keyed(&logs, "RevokeToken");
    assert_eq!(revoked.len(), 1, "{logs:?}");
    assert_eq!(revoked[0]["payload"]["reason"], "authorization code reused");
    assert_eq!(revoked[0]["payload"]["userAgent"], BACKEND_AGENT);
    // The second presentation itself is an exchange refused.
    let refused = server
        .get("/api/logs?logKey=ExchangeTokenBy.AuthorizationCode")
        .await;
    let results: Vec<&str> = refused
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["payload"]["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["Error", "Success"]);
    server.assert_replay_check();
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let started = browser.authorize(&web, "openid", &[]).await;
    let code = code_of(
        &server,
        &browser.sign_in_with_api(&started, "ada", PASSWORD).await,
    );
    let issued = server
        .events()
        .await
        .into_iter()
        .find(|e| e.event_type == "grant.code_issued")
        .unwrap();
    let expires_at = issued.payload["code"]["expiresAt"].as_i64().unwrap();
    // Codes live 60 s, as Logto's: wait for the clock, bounded.
    eventually("the code's expiry", Duration::from_secs(90), || async {
        (now_s() * 1000 > expires_at).then_some(())
    })
    .await;
    assert_invalid_grant(&web.redeem(&server, &code).await);
    let events = server.events().await;
    assert!(!events.iter().any(|e| e.event_type == "grant.code_redeemed"));
}

#[tokio::test]
async fn the_token_endpoint_checks_the_redirect_uri_and_pkce() {
    let server = TestServer::start().await;
    let spa = Client::create(&server, "SPA", false).await;
    let other = Client::create(&server, "SPA", false).await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let started = browser.authorize(&spa, "openid", &[]).await;
    let code = code_of(
        &server,
        &browser.sign_in_with_api(&started, "ada", PASSWORD).await,
    );
    let wrong_redirect = spa
        .exchange_code(
            &server,
            &[
                ("code", &code),
                ("redirect_uri", "https://app.example.com/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_invalid_grant(&wrong_redirect);
    let no_redirect = spa
        .exchange_code(&server, &[("code", &code), ("code_verifier", VERIFIER)])
        .await;
    assert_eq!(no_redirect.body["error"], "invalid_request");
    let no_verifier = spa
        .exchange_code(&server, &[("code", &code), ("redirect_uri", REDIRECT)])
        .await;
    assert_invalid_grant(&no_verifier);
    assert_eq!(
        no_verifier.body["error_description"],
        "PKCE verification failed"
    );
    let bad_verifier = spa
        .exchange_code(
            &server,
            &[
                ("code", &code),
                ("redirect_uri", REDIRECT),
                (
                    "code_verifier",
                    "another-verifier-of-forty-three-characters-000000",
                ),
            ],
        )
        .await;
    assert_invalid_grant(&bad_verifier);
    assert_eq!(
        bad_verifier.body["error_description"],
        "PKCE verification failed"
    );
    // Another client cannot redeem it.
    assert_invalid_grant(&other.redeem(&server, &code).await);
    // None of the refusals spent the code.
    tokens(&spa.redeem(&server, &code).await);

    // A confidential client that sent no challenge may not present a verifier. (The browser
    // has a session now: the code comes without a page.)
    let code = code_of(&server, &browser.authorize(&web, "openid", &[]).await);
    let smuggled = web
        .exchange_code(
            &server,
            &[
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_invalid_grant(&smuggled);
    tokens(&web.redeem(&server, &code).await);
}

#[tokio::test]
async fn prompt_none_and_prompt_login_follow_the_browsers_session() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let none = [("prompt", "none")];
    assert_eq!(
        error_of(&browser.authorize(&web, "openid", &none).await),
        "login_required"
    );

    let first = signed_in(&server, &browser, &web, "openid", &[], "ada").await;
    let (first_claims, _) = verified(&server, first.id_token.as_deref().unwrap(), &web.id).await;

    // With a session, prompt=none answers at once, without a page.
    let before = server.events().await;
    let silent = browser.authorize(&web, "openid", &none).await;
    let code = code_of(&server, &silent);
    let after = server.events().await;
    assert!(
        !after[before.len()..]
            .iter()
            .any(|e| e.event_type == "interaction.started"),
        "no interaction for a silent request"
    );
    let silent_tokens = tokens(&web.redeem(&server, &code).await);
    let (claims, _) = verified(&server, silent_tokens.id_token.as_deref().unwrap(), &web.id).await;
    assert_eq!(
        claims["auth_time"], first_claims["auth_time"],
        "no new sign-in"
    );
    assert_eq!(claims["sid"], first_claims["sid"], "the same session");

    // prompt=login asks for the password even with a session, and re-authenticates it.
    let forced = browser
        .authorize(&web, "openid", &[("prompt", "login")])
        .await;
    assert!(
        location(&forced).starts_with("/sign-in?"),
        "{}",
        location(&forced)
    );
    let again = browser.sign_in_on_page(&forced, "ada", PASSWORD).await;
    let relogged = tokens(&web.redeem(&server, &code_of(&server, &again)).await);
    let (claims, _) = verified(&server, relogged.id_token.as_deref().unwrap(), &web.id).await;
    assert_eq!(claims["sid"], first_claims["sid"], "the session is kept");
    assert!(claims["auth_time"].as_i64() >= first_claims["auth_time"].as_i64());
    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "session.reauthenticated")
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn a_suspended_user_is_refused_at_every_step_until_reactivated() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let issued = signed_in(
        &server,
        &browser,
        &web,
        "openid offline_access",
        &[("prompt", "consent")],
        "ada",
    )
    .await;
    let refresh = issued.refresh.clone().unwrap();
    // Another browser is half-way: submitted, not yet back at the application.
    let midway = new_browser(&server);
    let started = midway.authorize(&web, "openid", &[]).await;
    let resume = midway.submit_with_api(&started, "ada", PASSWORD).await;

    suspend(&server, &ada, true).await;
    assert_invalid_grant(&web.refresh(&server, &refresh).await);
    assert_eq!(
        web.introspect(&server, &issued.access).await,
        json!({"active": false})
    );
    assert_eq!(
        web.introspect(&server, &refresh).await,
        json!({"active": false})
    );
    let me = userinfo(&server, &issued.access).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(
        me.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(error_of(&midway.get(&resume).await), "access_denied");
    // The session ended with the suspension.
    assert_eq!(
        error_of(
            &browser
                .authorize(&web, "openid", &[("prompt", "none")])
                .await
        ),
        "login_required"
    );
    // A new sign-in is refused once the password is right, by the API and by the page.
    let fresh = new_browser(&server);
    fresh.authorize(&web, "openid", &[]).await;
    fresh
        .verify_password("ada", PASSWORD)
        .await
        .expect_error(401, "user.suspended");
    let started = fresh.authorize(&web, "openid", &[]).await;
    let page_url = location(&started);
    let refused = fresh.fill_sign_in(&page_url, "ada", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(html(&refused).contains("This account is suspended."));

    suspend(&server, &ada, false).await;
    let back = signed_in(&server, &new_browser(&server), &web, "openid", &[], "ada").await;
    userinfo(&server, &back.access).await.expect(200);
    // What the suspension revoked stays revoked.
    assert_eq!(
        web.introspect(&server, &issued.access).await,
        json!({"active": false})
    );
    assert_invalid_grant(&web.refresh(&server, &refresh).await);
    server.assert_replay_check();
}

#[tokio::test]
async fn introspection_and_revocation_of_real_tokens() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    let stranger = Client::create(&server, "Traditional", false).await;
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let issued = signed_in(
        &server,
        &new_browser(&server),
        &web,
        "openid profile offline_access",
        &[("prompt", "consent")],
        "ada",
    )
    .await;
    let refresh = issued.refresh.clone().unwrap();

    let access = web.introspect(&server, &issued.access).await;
    assert_eq!(access["active"], true);
    assert_eq!(access["client_id"], web.id);
    assert_eq!(access["sub"], ada);
    assert_eq!(access["iss"], server.issuer());
    assert_eq!(access["token_type"], "Bearer");
    assert_eq!(access["scope"], "openid profile offline_access");
    let lifetime = access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap();
    assert!((3599..=3601).contains(&lifetime), "{access}");
    let refreshing = web.introspect(&server, &refresh).await;
    assert_eq!(refreshing["active"], true);
    assert_eq!(refreshing["token_type"], "refresh_token");
    // Another client learns nothing about them, and cannot revoke them.
    assert_eq!(
        stranger.introspect(&server, &issued.access).await,
        json!({"active": false})
    );
    stranger.revoke(&server, &issued.access).await;
    assert_eq!(
        web.introspect(&server, &issued.access).await["active"],
        true
    );

    // Revoking the access token takes its refresh sibling with it.
    web.revoke(&server, &issued.access).await;
    assert_eq!(
        web.introspect(&server, &issued.access).await,
        json!({"active": false})
    );
    assert_eq!(
        web.introspect(&server, &refresh).await,
        json!({"active": false})
    );
    assert_invalid_grant(&web.refresh(&server, &refresh).await);
    userinfo(&server, &issued.access).await.expect(401);
    // Revoking again is answered the same.
    web.revoke(&server, &issued.access).await;

    let revoked = server
        .events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "grant.revoked")
        .collect::<Vec<_>>();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].actor_kind, "app");
    assert_eq!(revoked[0].actor_id.as_deref(), Some(web.id.as_str()));
    assert!(revoked[0].request_id.is_some());
    let logs = logs_of(&server, &ada).await;
    let entries = keyed(&logs, "RevokeToken");
    assert_eq!(entries.len(), 1);
    let payload = &entries[0]["payload"];
    assert_eq!(payload["applicationId"], web.id);
    assert_eq!(payload["grantId"], revoked[0].stream_id);
    assert_eq!(
        payload["tokenTypes"],
        json!(["AccessToken", "RefreshToken"])
    );
    assert_eq!(payload["reason"], "access token revoked by the client");
    assert_eq!(payload["ip"], "127.0.0.1");
    assert_eq!(payload["userAgent"], BACKEND_AGENT);
    server.assert_replay_check();
}

/// Sends `count` copies of one token request at once, spread over the `origins` (nodes on one
/// database); returns the statuses and bodies.
async fn all_at_once(
    origins: &[&str],
    client: &Client,
    form: Vec<(String, String)>,
    count: usize,
) -> Vec<Reply> {
    let gate = Arc::new(tokio::sync::Barrier::new(count));
    let mut tasks = Vec::new();
    for i in 0..count {
        let url = format!("{}/oidc/token", origins[i % origins.len()]);
        let (gate, form) = (gate.clone(), form.clone());
        let (id, secret) = (client.id.clone(), client.secret.clone());
        tasks.push(tokio::spawn(async move {
            let http = idledger::outbound::client_builder().build().unwrap();
            let mut request = http.post(url).form(&form);
            if let Some(secret) = secret {
                request = request.basic_auth(id, Some(secret));
            }
            gate.wait().await;
            Reply::from(request.send().await.unwrap()).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

fn outcomes(replies: &[Reply]) -> HashMap<String, usize> {
    let mut counted = HashMap::new();
    for reply in replies {
        let outcome = match reply.status.as_u16() {
            200 => "200".to_owned(),
            status => format!("{status} {}", reply.body["error"]),
        };
        *counted.entry(outcome).or_default() += 1;
    }
    counted
}

#[tokio::test]
async fn a_hundred_concurrent_redemptions_of_one_code_over_two_nodes_yield_one_token() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let started = browser.authorize(&web, "openid", &[]).await;
    let code = code_of(
        &server,
        &browser.sign_in_with_api(&started, "ada", PASSWORD).await,
    );
    let form = vec![
        ("grant_type".to_owned(), "authorization_code".to_owned()),
        ("code".to_owned(), code),
        ("redirect_uri".to_owned(), REDIRECT.to_owned()),
    ];
    let node2 = server.second_node();
    let replies = all_at_once(&[&server.base, &node2.base], &web, form, 100).await;
    let counted = outcomes(&replies);
    assert_eq!(counted.get("200"), Some(&1), "{counted:?}");
    assert_eq!(
        counted.get("400 \"invalid_grant\""),
        Some(&99),
        "{counted:?}"
    );
    let events = server.events().await;
    let redeemed = events
        .iter()
        .filter(|e| e.event_type == "grant.code_redeemed")
        .count();
    assert_eq!(redeemed, 1);
    // The others were reuses: what the one redemption issued is revoked, as for any reuse.
    let winner = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
    let access = winner.body["access_token"].as_str().unwrap();
    assert_eq!(
        web.introspect(&server, access).await,
        json!({"active": false})
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn a_hundred_concurrent_refreshes_of_one_token_over_two_nodes_yield_one_rotation() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let issued = signed_in(
        &server,
        &new_browser(&server),
        &web,
        "openid offline_access",
        &[("prompt", "consent")],
        "ada",
    )
    .await;
    let form = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), issued.refresh.unwrap()),
    ];
    let node2 = server.second_node();
    let replies = all_at_once(&[&server.base, &node2.base], &web, form, 100).await;
    let counted = outcomes(&replies);
    assert_eq!(counted.get("200"), Some(&1), "{counted:?}");
    assert_eq!(
        counted.get("400 \"invalid_grant\""),
        Some(&99),
        "{counted:?}"
    );
    let events = server.events().await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "grant.refreshed")
            .count(),
        1
    );
    // Racing retries are not theft: the one new refresh token keeps working.
    let winner = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
    let next = winner.body["refresh_token"].as_str().unwrap();
    tokens(&web.refresh(&server, next).await);
    server.assert_replay_check();
}

#[tokio::test]
async fn third_party_apps_ask_for_consent_and_first_party_apps_do_not() {
    let server = TestServer::start().await;
    let partner = Client::create(&server, "Traditional", true).await;
    let own = Client::create(&server, "Traditional", false).await;
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let scope = "openid profile email";

    // After the sign-in, the consent page instead of a code.
    let started = browser.authorize(&partner, scope, &[]).await;
    let answered = browser.sign_in_with_api(&started, "ada", PASSWORD).await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&answered), "/consent");
    let page = browser.get("/consent").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = html(&page);
    assert!(text.contains("<html lang=\"en\">"), "{text}");
    assert!(text.contains("Traditional app"), "the app's name: {text}");
    assert!(text.contains("Your email address"), "{text}");
    assert!(text.contains("Your name, username, avatar"), "{text}");
    assert!(text.contains("<strong>ada</strong>"), "the account: {text}");
    assert!(!text.contains("<script"), "{text}");
    let japanese = browser.get("/consent?ui_locales=ja").await;
    assert!(html(&japanese).contains("<html lang=\"ja\">"));
    assert!(html(&japanese).contains("メールアドレス"));
    assert!(html(&japanese).contains("許可する"));
    let forged = browser.form("/consent", &[("action", "accept")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Refusing tells the application so, and ends the interaction. A refused authorization
    // leaves no session behind: the code, and with it the session, never came.
    let denied = browser
        .form("/consent", &[("_csrf", &csrf(&page)), ("action", "deny")])
        .await;
    assert_eq!(error_of(&denied), "access_denied");
    assert_eq!(
        browser.get("/consent").await.status,
        StatusCode::BAD_REQUEST
    );

    let started = browser.authorize(&partner, scope, &[]).await;
    let answered = browser.sign_in_with_api(&started, "ada", PASSWORD).await;
    assert_eq!(location(&answered), "/consent");
    let page = browser.get("/consent").await;
    let accepted = browser
        .form("/consent", &[("_csrf", &csrf(&page)), ("action", "accept")])
        .await;
    let code = code_of(&server, &accepted);
    let issued = tokens(&partner.redeem(&server, &code).await);
    assert_eq!(
        userinfo(&server, &issued.access).await.expect(200)["sub"],
        ada
    );

    // Consent given covers later requests for as much; more needs asking again.
    let covered = browser.authorize(&partner, "openid email", &[]).await;
    code_of(&server, &covered);
    assert_eq!(
        error_of(
            &browser
                .authorize(&partner, "openid phone", &[("prompt", "none")])
                .await
        ),
        "consent_required"
    );
    // Signed in now, asking again goes straight to the consent page, without a sign-in.
    let asked = browser
        .authorize(&partner, "openid phone", &[("prompt", "consent")])
        .await;
    assert!(
        location(&asked).starts_with("/consent?"),
        "{}",
        location(&asked)
    );
    let page = browser.get("/consent").await;
    assert!(html(&page).contains("Your phone number"));
    let accepted = browser
        .form("/consent", &[("_csrf", &csrf(&page)), ("action", "accept")])
        .await;
    let issued = tokens(&partner.redeem(&server, &code_of(&server, &accepted)).await);
    let (claims, _) = verified(&server, issued.id_token.as_deref().unwrap(), &partner.id).await;
    assert_eq!(claims["sub"], ada);
    // A first-party application is consented to without a page.
    code_of(
        &server,
        &browser
            .authorize(&own, scope, &[("prompt", "consent")])
            .await,
    );

    let recorded = server.recorded_events().await;
    let consented = recorded
        .iter()
        .find(|e| e.event_type == "interaction.consented")
        .unwrap();
    assert_eq!(consented.metadata.actor, Actor::User(ada.clone()));
    assert_eq!(consented.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert!(consented.metadata.request_id.is_some());
    assert_eq!(
        domain::decode::<domain::interaction::InteractionEventRecord>(
            &consented.event_type,
            &consented.payload
        )
        .unwrap(),
        domain::interaction::InteractionEventRecord::Consented {
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            resources: vec![],
        }
    );
    assert!(
        recorded
            .iter()
            .any(|e| e.event_type == "interaction.consent_denied")
    );
    assert!(
        recorded
            .iter()
            .any(|e| e.event_type == "interaction.session_continued")
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address() {
    // A window of a day, so the test never straddles two windows.
    let server = TestServer::start_with(&[("IDLEDGER_SIGN_IN_RATE", "3/86400")]).await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    user(&server, json!({"username": "bob", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let started = browser.authorize(&web, "openid", &[]).await;
    // Different accounts: no identifier lockout could be what stops the fourth.
    for username in ["ada", "bob", "carol"] {
        browser
            .verify_password(username, "wrong")
            .await
            .expect_error(422, "session.invalid_credentials");
    }
    // Counted in the database: a second node refuses the fourth as well. (Its address on
    // `localhost`, the endpoint's host, so the browser sends it the interaction's cookie.)
    let node2 = server.second_node();
    let through_node2 = browser.on(&node2.base.replacen("127.0.0.1", "localhost", 1));
    let limited = through_node2.verify_password("ada", PASSWORD).await;
    limited.expect_error(429, "request.rate_limited");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");

    // The page counts against the same address.
    let page_url = location(&started);
    let page = browser.get(&page_url).await;
    let refused = browser
        .form(
            &page_url,
            &[
                ("_csrf", &csrf(&page)),
                ("identifier", "ada"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.header("retry-after").is_some());
    assert!(
        html(&refused).contains("Too many sign-in attempts"),
        "{}",
        html(&refused)
    );
    let in_japanese = browser
        .form(
            &format!("{page_url}&ui_locales=ja"),
            &[
                ("_csrf", &csrf(&page)),
                ("identifier", "ada"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(html(&in_japanese).contains("サインイン試行が多すぎます"));
    // Refused attempts record nothing: no verification ran.
    let events = server.events().await;
    let failures = events
        .iter()
        .filter(|e| e.event_type == "interaction.verification_failed")
        .count();
    assert_eq!(failures, 3);
}

#[tokio::test]
async fn the_identifier_lockout_counts_once_across_two_nodes() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({"sentinelPolicy": {"maxAttempts": 3, "lockoutDuration": 5}}),
        )
        .await
        .expect(200);
    let node2 = server.second_node();
    // Both nodes on 127.0.0.1: one cookie jar (cookies ignore ports) serves one interaction
    // to both.
    let first = new_browser(&server).on(&server.base);
    let second = first.on(&node2.base);
    first.authorize(&web, "openid", &[]).await;
    first
        .verify_password("ada", "wrong-1")
        .await
        .expect_error(422, "session.invalid_credentials");
    second
        .verify_password("ada", "wrong-2")
        .await
        .expect_error(422, "session.invalid_credentials");
    // The third failure, wherever it lands, is the one that locks.
    first
        .verify_password("ada", "wrong-3")
        .await
        .expect_error(400, "session.verification_blocked_too_many_attempts");
    second
        .verify_password("ada", PASSWORD)
        .await
        .expect_error(400, "session.verification_blocked_too_many_attempts");
    let db = server.db().await;
    let rows = db
        .query("SELECT failures, locked_until FROM lockouts", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 3, "each failure counted once");
    assert!(rows[0].get::<_, Option<i64>>(1).is_some());
}

#[tokio::test]
async fn the_sign_out_pages_speak_the_requested_language() {
    let server = TestServer::start().await;
    let web = Client::create(&server, "Traditional", false).await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    signed_in(&server, &browser, &web, "openid", &[], "ada").await;

    let english = browser.get("/oidc/session/end").await;
    assert_eq!(english.status, StatusCode::OK);
    let text = html(&english);
    assert!(
        text.contains("<html lang=\"en\">") && text.contains("Signing out"),
        "{text}"
    );
    assert!(
        text.contains("--primary: #6139F6"),
        "branded like the other pages: {text}"
    );
    assert!(
        english
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'sha256-")
    );
    let by_browser = browser.get_in("/oidc/session/end", "ja, en;q=0.5").await;
    assert!(html(&by_browser).contains("<html lang=\"ja\">"));
    let japanese = browser.get("/oidc/session/end?ui_locales=ja").await;
    let text = html(&japanese);
    assert!(text.contains("サインアウトしています"), "{text}");
    assert_eq!(hidden(&japanese, "ui_locales"), "ja");

    let done = browser
        .form(
            "/oidc/session/end/confirm",
            &[("xsrf", &hidden(&japanese, "xsrf")), ("ui_locales", "ja")],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let text = html(&done);
    assert!(
        text.contains("<html lang=\"ja\">") && text.contains("サインアウトしました"),
        "{text}"
    );
    assert!(!text.contains("<script"));
    // The session is over.
    assert_eq!(
        error_of(
            &browser
                .authorize(&web, "openid", &[("prompt", "none")])
                .await
        ),
        "login_required"
    );
    let events = server.events().await;
    assert!(events.iter().any(|e| e.event_type == "session.ended"));
}
