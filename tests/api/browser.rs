//! The browser the black-box tests sign in with: its own cookie jar, redirects answered rather
//! than followed (so a test sees every hop), and relative URLs on the server's public endpoint,
//! where its cookies and redirects point. Also the steps of a sign-in that every surface takes
//! the same way: the authorization request, the sign-in page's form, the Experience API's
//! password, identification and submission, and the resume URL's answer to the application.
//!
//! A test file adds the steps only it takes in an `impl Browser` block of its own; Rust keeps
//! inherent method names unique across the crate, so a clash is a compile error.

use std::collections::HashMap;

use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Reply, TestServer};

/// The redirect URI the tests' applications register.
pub const REDIRECT: &str = "https://app.example.com/callback";
/// The `state` of every authorization request, checked in the answer.
pub const STATE: &str = "st4te";

pub struct Browser {
    http: reqwest::Client,
    origin: String,
}

/// What differs between the tests' browsers.
pub struct Builder {
    origin: String,
    user_agent: Option<&'static str>,
}

impl Builder {
    /// Announces itself as `agent`, so a test can find it in the log.
    pub fn user_agent(mut self, agent: &'static str) -> Builder {
        self.user_agent = Some(agent);
        self
    }

    pub fn build(self) -> Browser {
        let mut http = idledger::outbound::client_builder()
            .redirect(Policy::none())
            .cookie_store(true);
        if let Some(agent) = self.user_agent {
            http = http.user_agent(agent);
        }
        Browser {
            http: http.build().unwrap(),
            origin: self.origin,
        }
    }
}

impl Browser {
    /// On `server`'s public endpoint, with the HTTP client's own user agent.
    pub fn new(server: &TestServer) -> Browser {
        Browser::builder(server).build()
    }

    pub fn builder(server: &TestServer) -> Builder {
        Browser::builder_on(&server.endpoint)
    }

    /// On `origin`, a server that is not one of the tests' own (an upstream provider).
    pub fn builder_on(origin: &str) -> Builder {
        Builder {
            origin: origin.to_owned(),
            user_agent: None,
        }
    }

    /// This browser, its cookie jar and user agent, with relative URLs on `origin` (another
    /// node, or the bound address rather than the public endpoint).
    pub fn on(&self, origin: &str) -> Browser {
        Browser {
            http: self.http.clone(),
            origin: origin.to_owned(),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.origin)
        }
    }

    /// `method` on `path_or_url`, with `body` as JSON when there is one.
    pub async fn call(&self, method: Method, path_or_url: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, self.url(path_or_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path_or_url: &str) -> Reply {
        self.call(Method::GET, path_or_url, None).await
    }

    /// A page asked for in the languages of `accept_language`.
    pub async fn get_in(&self, path_or_url: &str, accept_language: &str) -> Reply {
        let request = self
            .http
            .get(self.url(path_or_url))
            .header("accept-language", accept_language);
        Reply::from(request.send().await.unwrap()).await
    }

    pub async fn post(&self, path_or_url: &str, body: Value) -> Reply {
        self.call(Method::POST, path_or_url, Some(body)).await
    }

    pub async fn put(&self, path_or_url: &str, body: Value) -> Reply {
        self.call(Method::PUT, path_or_url, Some(body)).await
    }

    /// Posts a page's form, URL-encoded as a browser does.
    pub async fn form(&self, path_or_url: &str, fields: &[(&str, &str)]) -> Reply {
        let request = self.http.post(self.url(path_or_url)).form(fields);
        Reply::from(request.send().await.unwrap()).await
    }

    /// Fills in the sign-in page at `page_url` (fetched first, for its CSRF token) with an
    /// identifier and a password; the page's answer.
    pub async fn fill_sign_in(&self, page_url: &str, identifier: &str, password: &str) -> Reply {
        let page = self.get(page_url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let token = csrf(&page);
        let fields = [
            ("_csrf", token.as_str()),
            ("identifier", identifier),
            ("password", password),
        ];
        self.form(page_url, &fields).await
    }

    /// The authorization request of `client_id` for `scope` (space separated), with the
    /// shared redirect URI and state plus the `extra` parameters.
    pub async fn authorization(
        &self,
        client_id: &str,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", STATE)
            .extend_pairs(extra);
        self.get(&format!("/oidc/auth?{}", query.finish())).await
    }

    /// Starts an interaction with an authorization request that must be redirected; where the
    /// browser is sent (an experience page, or the application when a session answers).
    pub async fn start(&self, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
        let started = self.authorization(client_id, scope, extra).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        location(&started)
    }

    /// The Experience API's password verification of a username.
    pub async fn verify_password(&self, username: &str, password: &str) -> Reply {
        self.post(
            "/api/experience/verification/password",
            json!({"identifier": {"type": "username", "value": username}, "password": password}),
        )
        .await
    }

    /// Identifies the interaction's user (an existing one) by a verification.
    pub async fn identify(&self, verification_id: &str) {
        self.post(
            "/api/experience/identification",
            json!({ "verificationId": verification_id }),
        )
        .await
        .expect(204);
    }

    /// Identifies the interaction's user by a verification that creates it (registration).
    pub async fn identify_new_user(&self, verification_id: &str) {
        self.post(
            "/api/experience/identification",
            json!({ "verificationId": verification_id }),
        )
        .await
        .expect(201);
    }

    /// Submits the interaction; the resume URL it answers.
    pub async fn submit(&self) -> String {
        let submitted = self.post("/api/experience/submit", json!({})).await;
        submitted.expect(200)["redirectTo"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Submits the interaction and follows its resume URL; the application's code.
    pub async fn submit_and_resume(&self, server: &TestServer) -> String {
        let resume = self.submit().await;
        self.resume(server, &resume).await
    }

    /// Follows a resume URL of `server` to the application; the code it is given.
    pub async fn resume(&self, server: &TestServer, resume: &str) -> String {
        assert!(
            resume.starts_with(&format!("{}/auth/", server.issuer())),
            "{resume}"
        );
        code_of(server, &self.get(resume).await)
    }
}

/// The code of a redirect to the application, after checking its `state` and `iss`.
#[track_caller]
pub fn code_of(server: &TestServer, answered: &Reply) -> String {
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let target = location(answered);
    assert!(target.starts_with(&format!("{REDIRECT}?")), "{target}");
    let params = query_of(&target);
    assert_eq!(params["state"], STATE, "{target}");
    assert_eq!(params["iss"], server.issuer(), "{target}");
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code: {target}"));
    assert!(!code.is_empty(), "{target}");
    code.clone()
}

pub fn location(reply: &Reply) -> String {
    reply.header("location").unwrap_or_default().to_owned()
}

/// The query parameters of a URL, absolute or a path.
pub fn query_of(url: &str) -> HashMap<String, String> {
    let absolute = if url.starts_with('/') {
        format!("http://base{url}")
    } else {
        url.to_owned()
    };
    url::Url::parse(&absolute)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn html(reply: &Reply) -> &str {
    reply.body.as_str().unwrap_or_default()
}

/// A hidden form field's value.
pub fn hidden(reply: &Reply, name: &str) -> String {
    let page = html(reply);
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}: {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// The CSRF token of the page's form.
pub fn csrf(reply: &Reply) -> String {
    hidden(reply, "_csrf")
}
