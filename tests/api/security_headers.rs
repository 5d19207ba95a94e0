//! Security headers, cookies and redirects (issue 14, item 7): HSTS only behind TLS, session
//! and interaction cookies `HttpOnly`, `SameSite=Lax`, `Secure` behind TLS, the hardening
//! headers on every hosted page, and no redirect parameter that sends a browser anywhere the
//! application did not register.

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::TestServer;

const REDIRECT: &str = "https://app.example.com/callback";
const SIGNED_OUT: &str = "https://app.example.com/signed-out";
const PUBLIC_ENDPOINT: &str = "https://id.example.test";
const PASSWORD: &str = "Correct-Horse-42";
const ATTACKER: &str = "https://attacker.example.net/steal";

/// A browser with a cookie jar of its own: cookies marked `Secure` are still sent over the
/// test's plain HTTP, as they would be over the TLS the public endpoint promises.
struct Browser {
    http: reqwest::Client,
    server_base: String,
    endpoint: String,
    cookies: Vec<(String, String)>,
    /// Every `Set-Cookie` line received, in order.
    set_cookies: Vec<String>,
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            http: idledger::outbound::client_builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            server_base: server.base.clone(),
            endpoint: server.endpoint.clone(),
            cookies: Vec::new(),
            set_cookies: Vec::new(),
        }
    }

    /// The server's own address for a path or for a URL on its public endpoint.
    fn url(&self, target: &str) -> String {
        let path = target.strip_prefix(&self.endpoint).unwrap_or(target);
        format!("{}{path}", self.server_base)
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if cookie.is_empty() {
            request
        } else {
            request.header("cookie", cookie)
        };
        let response = request.send().await.unwrap();
        for line in response.headers().get_all("set-cookie") {
            let line = line.to_str().unwrap().to_owned();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
            self.set_cookies.push(line);
        }
        response
    }

    async fn get(&mut self, target: &str) -> reqwest::Response {
        let request = self.http.get(self.url(target));
        self.send(request).await
    }

    async fn json(&mut self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method, self.url(path)).json(&body);
        let response = self.send(request).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The attributes of the last `Set-Cookie` that gave `name` a value, lowercased.
    fn attributes_of(&self, name: &str) -> Vec<String> {
        let line = self
            .set_cookies
            .iter()
            .rev()
            .find(|line| {
                line.starts_with(&format!("{name}=")) && !line.starts_with(&format!("{name}=;"))
            })
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.set_cookies));
        line.split(';')
            .skip(1)
            .map(|attribute| attribute.trim().to_ascii_lowercase())
            .collect()
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn spa(server: &TestServer) -> String {
    let created = server
        .post(
            "/api/applications",
            json!({
                "name": "headers app",
                "type": "SPA",
                "oidcClientMetadata": {
                    "redirectUris": [REDIRECT],
                    "postLogoutRedirectUris": [SIGNED_OUT]
                }
            }),
        )
        .await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

fn authorize_path(client_id: &str, redirect_uri: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "st4te")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("/oidc/auth?{query}")
}

/// Signs `username` in through the Experience API; returns the answer of the resume URL, which
/// sets the session cookie and redirects to the application.
async fn sign_in(browser: &mut Browser, client_id: &str, username: &str) -> reqwest::Response {
    let started = browser.get(&authorize_path(client_id, REDIRECT)).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    browser
        .json(
            reqwest::Method::PUT,
            "/api/experience",
            json!({"interactionEvent": "SignIn"}),
        )
        .await;
    let verified = browser
        .json(
            reqwest::Method::POST,
            "/api/experience/verification/password",
            json!({"identifier": {"type": "username", "value": username}, "password": PASSWORD}),
        )
        .await;
    browser
        .json(
            reqwest::Method::POST,
            "/api/experience/identification",
            json!({"verificationId": verified["verificationId"]}),
        )
        .await;
    let submitted = browser
        .json(reqwest::Method::POST, "/api/experience/submit", json!({}))
        .await;
    let resume = submitted["redirectTo"].as_str().unwrap().to_owned();
    browser.get(&resume).await
}

async fn user(server: &TestServer, username: &str) {
    server
        .post(
            "/api/users",
            json!({"username": username, "password": PASSWORD}),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn behind_tls_responses_carry_hsts_and_cookies_are_secure_http_only_and_lax() {
    let server = TestServer::start_with(&[("ENDPOINT", PUBLIC_ENDPOINT)]).await;
    for path in [
        "/api/status",
        "/oidc/.well-known/openid-configuration",
        "/sign-in",
    ] {
        let response = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
    let client_id = spa(&server).await;
    user(&server, "tls_person").await;
    let mut browser = Browser::new(&server);
    let answered = sign_in(&mut browser, &client_id, "tls_person").await;
    assert_eq!(answered.status(), StatusCode::SEE_OTHER);
    assert!(location(&answered).starts_with(REDIRECT), "{answered:?}");
    for cookie in ["_interaction", "_session"] {
        let attributes = browser.attributes_of(cookie);
        for expected in ["httponly", "samesite=lax", "secure", "path=/"] {
            assert!(
                attributes.iter().any(|a| a == expected),
                "{cookie} lacks {expected}: {attributes:?}"
            );
        }
    }
}

#[tokio::test]
async fn over_plain_http_there_is_no_hsts_and_cookies_are_not_secure() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/api/status")).await.unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    let client_id = spa(&server).await;
    user(&server, "http_person").await;
    let mut browser = Browser::new(&server);
    sign_in(&mut browser, &client_id, "http_person").await;
    let attributes = browser.attributes_of("_session");
    assert!(attributes.iter().any(|a| a == "httponly"), "{attributes:?}");
    assert!(
        attributes.iter().any(|a| a == "samesite=lax"),
        "{attributes:?}"
    );
    assert!(!attributes.iter().any(|a| a == "secure"), "{attributes:?}");
}

/// Every hosted page, with and without an interaction, is unframeable, unsniffable, uncached,
/// leaks no referrer and runs only what its CSP allows.
#[tokio::test]
async fn every_hosted_page_carries_the_hardening_headers() {
    let server = TestServer::start().await;
    let client_id = spa(&server).await;
    let mut browser = Browser::new(&server);
    let pages = [
        "/sign-in",
        "/register",
        "/error",
        "/consent",
        "/sign-in/email",
        "/register/email",
        "/forgot-password",
        "/one-time-token",
        "/switch-account",
        "/oidc/session/end",
        "/oidc/auth?client_id=unknown",
    ];
    let mut checked = Vec::new();
    for with_interaction in [false, true] {
        if with_interaction {
            let started = browser.get(&authorize_path(&client_id, REDIRECT)).await;
            assert_eq!(started.status(), StatusCode::SEE_OTHER);
        }
        for page in pages {
            let response = browser.get(page).await;
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            if !kind.starts_with("text/html") {
                // A redirect between pages: the page it leads to is in the list.
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
                continue;
            }
            let headers = response.headers();
            let csp = headers["content-security-policy"].to_str().unwrap();
            for directive in [
                "default-src 'none'",
                "frame-ancestors 'none'",
                "base-uri 'none'",
            ] {
                assert!(csp.contains(directive), "{page}: {csp}");
            }
            assert!(!csp.contains("script-src *"), "{page}: {csp}");
            assert_eq!(headers["x-frame-options"], "DENY", "{page}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{page}");
            assert_eq!(headers["referrer-policy"], "no-referrer", "{page}");
            assert_eq!(headers["cache-control"], "no-store", "{page}");
            checked.push(page);
        }
    }
    assert!(checked.len() >= pages.len(), "pages checked: {checked:?}");
}

/// No redirect parameter sends the browser to an address the application did not register:
/// not through `redirect_uri` (unknown client, unregistered, look-alike URIs) nor through
/// `post_logout_redirect_uri` (at the confirmation page, and again at its form's target).
#[tokio::test]
async fn no_redirect_parameter_is_an_open_redirect() {
    let server = TestServer::start().await;
    let client_id = spa(&server).await;
    let mut browser = Browser::new(&server);
    let look_alikes = [
        ATTACKER.to_owned(),
        format!("{REDIRECT}.attacker.example.net"),
        format!("{REDIRECT}@attacker.example.net"),
        format!("{REDIRECT}/../../evil"),
        "https://app.example.com:443@attacker.example.net/callback".to_owned(),
        "//attacker.example.net/callback".to_owned(),
        "javascript:alert(1)".to_owned(),
        REDIRECT.to_uppercase(),
    ];
    for (client, uri) in look_alikes
        .iter()
        .map(|uri| (client_id.as_str(), uri.as_str()))
        .chain([("no-such-client", REDIRECT), ("no-such-client", ATTACKER)])
    {
        let response = browser.get(&authorize_path(client, uri)).await;
        let target = location(&response);
        assert!(
            target.is_empty() || target.starts_with('/') && !target.starts_with("//"),
            "{client} {uri} redirected to {target}"
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{client} {uri}");
    }

    // Logout: refused on the confirmation page...
    for uri in [ATTACKER, &format!("{SIGNED_OUT}.attacker.example.net")] {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &client_id)
            .append_pair("post_logout_redirect_uri", uri)
            .finish();
        let response = browser.get(&format!("/oidc/session/end?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(location(&response), "", "{uri}");
    }
    // ... and at the form's target, with a valid form for a registered URI whose URI field
    // the attacker swapped.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client_id)
        .append_pair("post_logout_redirect_uri", SIGNED_OUT)
        .finish();
    let page = browser.get(&format!("/oidc/session/end?{query}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let xsrf = html
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no xsrf field: {html}"))
        .to_owned();
    let confirm = |uri: &str| {
        [
            ("xsrf", xsrf.clone()),
            ("client_id", client_id.clone()),
            ("post_logout_redirect_uri", uri.to_owned()),
        ]
    };
    let request = browser
        .http
        .post(browser.url("/oidc/session/end/confirm"))
        .form(&confirm(ATTACKER));
    let swapped = browser.send(request).await;
    assert_eq!(swapped.status(), StatusCode::BAD_REQUEST);
    assert_eq!(location(&swapped), "");
    let request = browser
        .http
        .post(browser.url("/oidc/session/end/confirm"))
        .form(&confirm(SIGNED_OUT));
    let kept = browser.send(request).await;
    assert_eq!(kept.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&kept), SIGNED_OUT);
}
