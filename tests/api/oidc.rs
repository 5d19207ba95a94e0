//! The OpenID Connect provider's protocol surface (logto-compat §9): discovery, the
//! authorization endpoint's validation and redirects, and the token-adjacent endpoints'
//! refusals. Full sign-in flows live in the experience and SDK tests.

use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::{Reply, TestServer};

pub const REDIRECT: &str = "https://app.example.com/callback";
pub const LOGOUT: &str = "https://app.example.com/";

/// A browser-like client that shows redirects instead of following them.
pub fn browser() -> reqwest::Client {
    idledger::outbound::client_builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

pub async fn app(server: &TestServer, kind: &str) -> (String, Option<String>) {
    let created = server
        .post(
            "/api/applications",
            json!({
                "name": format!("{kind} app"),
                "type": kind,
                "oidcClientMetadata": {"redirectUris": [REDIRECT], "postLogoutRedirectUris": [LOGOUT]}
            }),
        )
        .await;
    let id = created.expect(200)["id"].as_str().unwrap().to_owned();
    let secrets = server.get(&format!("/api/applications/{id}/secrets")).await;
    let secret = secrets.body[0]["value"].as_str().map(str::to_owned);
    (id, secret)
}

fn location(reply: &Reply) -> String {
    reply.header("location").unwrap_or_default().to_owned()
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn discovery_advertises_what_is_implemented() {
    let server = TestServer::start().await;
    let reply = Reply::from(
        server
            .http
            .get(server.url("/oidc/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let doc = reply.expect(200);
    let issuer = server.issuer();
    assert_eq!(doc["issuer"], issuer.as_str());
    for (key, path) in [
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/me"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/session/end"),
        ("revocation_endpoint", "/token/revocation"),
        ("introspection_endpoint", "/token/introspection"),
    ] {
        assert_eq!(doc[key], format!("{issuer}{path}"), "{key}");
    }
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["ES384"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("offline_access"))
    );
    let rfc8414 = server
        .http
        .get(server.url("/oidc/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(&rfc8414, doc);
}

#[tokio::test]
async fn the_authorization_endpoint_validates_before_anything_else() {
    let server = TestServer::start().await;
    let (spa, _) = app(&server, "SPA").await;
    let (web, _) = app(&server, "Traditional").await;
    let (m2m, _) = app(&server, "MachineToMachine").await;
    let browser = browser();
    let get = |query: String| {
        let browser = browser.clone();
        let url = server.url(&format!("/oidc/auth?{query}"));
        async move { Reply::from(browser.get(url).send().await.unwrap()).await }
    };
    let encoded =
        |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    let redirect = encoded(REDIRECT);

    // Not redirectable: shown as a page.
    let unknown = get(format!(
        "client_id=nobody&redirect_uri={redirect}&response_type=code&scope=openid"
    ))
    .await;
    assert_eq!(unknown.status.as_u16(), 400);
    assert!(
        unknown
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        unknown
            .body
            .as_str()
            .unwrap()
            .contains("oidc.invalid_client")
    );
    let foreign = get(format!(
        "client_id={web}&redirect_uri={}&response_type=code&scope=openid",
        encoded("https://evil.example/cb")
    ))
    .await;
    assert_eq!(foreign.status.as_u16(), 400);
    assert!(
        foreign
            .body
            .as_str()
            .unwrap()
            .contains("oidc.invalid_redirect_uri")
    );
    assert!(foreign.header("location").is_none(), "no open redirect");

    // Redirectable errors go back to the client with state and iss.
    for (query, error) in [
        (
            format!(
                "client_id={web}&redirect_uri={redirect}&response_type=token&scope=openid&state=s1"
            ),
            "unsupported_response_type",
        ),
        (
            format!(
                "client_id={web}&redirect_uri={redirect}&response_type=code&scope=profile&state=s1"
            ),
            "invalid_scope",
        ),
        (
            format!(
                "client_id={spa}&redirect_uri={redirect}&response_type=code&scope=openid&state=s1"
            ),
            "invalid_request",
        ),
        (
            format!(
                "client_id={web}&redirect_uri={redirect}&response_type=code&scope=openid&state=s1&prompt=none"
            ),
            "login_required",
        ),
        (
            format!(
                "client_id={web}&redirect_uri={redirect}&response_type=code&scope=openid&state=s1&resource=https%3A%2F%2Fnowhere"
            ),
            "invalid_target",
        ),
        (
            format!(
                "client_id={web}&redirect_uri={redirect}&response_type=code&scope=openid&state=s1&code_challenge=abc&code_challenge_method=plain"
            ),
            "invalid_request",
        ),
    ] {
        let reply = get(query.clone()).await;
        assert_eq!(reply.status.as_u16(), 303, "{query}: {}", reply.body);
        let target = location(&reply);
        assert!(target.starts_with(REDIRECT), "{target}");
        let params = query_of(&target);
        assert_eq!(params["error"], error, "{query}");
        assert_eq!(params["state"], "s1");
        assert_eq!(params["iss"], server.issuer());
    }
    // Machine-to-machine apps cannot sign users in.
    let robot = get(format!(
        "client_id={m2m}&redirect_uri={redirect}&response_type=code&scope=openid"
    ))
    .await;
    assert_eq!(query_of(&location(&robot))["error"], "unauthorized_client");

    // A valid request starts an interaction and sends the browser to the sign-in page.
    let started = get(format!(
        "client_id={web}&redirect_uri={redirect}&response_type=code&scope=openid%20profile&state=s2&ui_locales=ja&login_hint=ada"
    ))
    .await;
    assert_eq!(started.status.as_u16(), 303, "{}", started.body);
    let target = location(&started);
    assert!(target.starts_with("/sign-in?"), "{target}");
    let params = query_of(&format!("http://x{target}"));
    assert_eq!(params["app_id"], web);
    assert_eq!(params["ui_locales"], "ja");
    assert_eq!(params["login_hint"], "ada");
    let cookie = started
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("_interaction="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let signup = get(format!(
        "client_id={web}&redirect_uri={redirect}&response_type=code&scope=openid&interaction_mode=signUp"
    ))
    .await;
    assert!(location(&signup).starts_with("/register?"));

    // The interaction is an event; the log shows its creation.
    let events = server.events().await;
    assert!(events.iter().any(|e| e.event_type == "interaction.started"));
    // Resuming an interaction this browser does not hold is refused.
    let stranger = Reply::from(
        idledger::outbound::client_builder()
            .redirect(Policy::none())
            .build()
            .unwrap()
            .get(server.url("/oidc/auth/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stranger.status.as_u16(), 400);
    server.assert_replay_check();
}

#[tokio::test]
async fn token_adjacent_endpoints_refuse_what_they_must() {
    let server = TestServer::start().await;
    let (web, secret) = app(&server, "Traditional").await;
    let secret = secret.unwrap();
    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };

    let bad_code = server
        .token_request(
            Some((&web, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", "forged"),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(bad_code.status.as_u16(), 400);
    assert_eq!(bad_code.body["error"], "invalid_grant");
    let no_code = server
        .token_request(
            Some((&web, &secret)),
            &[("grant_type", "authorization_code")],
        )
        .await;
    assert_eq!(no_code.body["error"], "invalid_request");
    let bad_refresh = server
        .token_request(
            Some((&web, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", "forged")],
        )
        .await;
    assert_eq!(bad_refresh.body["error"], "invalid_grant");

    let me = Reply::from(
        server
            .http
            .get(server.url("/oidc/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me.status.as_u16(), 400);
    let forged = Reply::from(
        server
            .http
            .get(server.url("/oidc/me"))
            .bearer_auth("forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(forged.status.as_u16(), 401);
    assert!(
        forged
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    let jwt = server.token().await;
    for (path, verb) in [
        ("/oidc/token/introspection", "introspected"),
        ("/oidc/token/revocation", "revoked"),
    ] {
        let reply = Reply::from(
            server
                .http
                .post(server.url(path))
                .basic_auth(&web, Some(&secret))
                .form(&form(&[("token", &jwt)]))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 400, "{path}");
        assert_eq!(reply.body["error"], "unsupported_token_type");
        assert!(
            reply.body["error_description"]
                .as_str()
                .unwrap()
                .contains(verb)
        );
    }
    let inactive = Reply::from(
        server
            .http
            .post(server.url("/oidc/token/introspection"))
            .basic_auth(&web, Some(&secret))
            .form(&form(&[("token", "unknown")]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(inactive.expect(200), &json!({"active": false}));
    let unknown_revocation = server
        .http
        .post(server.url("/oidc/token/revocation"))
        .basic_auth(&web, Some(&secret))
        .form(&form(&[("token", "unknown")]))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_revocation.status().as_u16(), 200);
    let unauthenticated = Reply::from(
        server
            .http
            .post(server.url("/oidc/token/introspection"))
            .form(&form(&[("token", "x")]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unauthenticated.body["error"], "invalid_request");

    // Logout: only registered post-logout URIs; the confirmation posts back to us.
    let browser = browser();
    let evil = Reply::from(
        browser
            .get(server.url(&format!(
                "/oidc/session/end?client_id={web}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(evil.status.as_u16(), 400);
    let confirm = Reply::from(
        browser
            .get(server.url(&format!(
                "/oidc/session/end?client_id={web}&post_logout_redirect_uri={}&state=bye",
                form_urlencoded::byte_serialize(LOGOUT.as_bytes()).collect::<String>()
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(confirm.status.as_u16(), 200);
    let page = confirm.body.as_str().unwrap().to_owned();
    assert!(page.contains("/oidc/session/end/confirm"));
    assert!(
        confirm
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'sha256-")
    );
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let done = Reply::from(
        browser
            .post(server.url("/oidc/session/end/confirm"))
            .form(&form(&[
                ("xsrf", xsrf),
                ("post_logout_redirect_uri", LOGOUT),
                ("client_id", &web),
                ("state", "bye"),
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(done.status.as_u16(), 303);
    assert_eq!(location(&done), format!("{LOGOUT}?state=bye"));
    let forged_form = Reply::from(
        browser
            .post(server.url("/oidc/session/end/confirm"))
            .form(&form(&[
                ("xsrf", xsrf),
                ("post_logout_redirect_uri", "https://evil.example/"),
                ("client_id", &web),
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        forged_form.status.as_u16(),
        400,
        "no open redirect through logout"
    );
}
