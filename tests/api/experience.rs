//! The Experience API and the hosted sign-in pages (logto-compat §7), driven like a browser:
//! `/oidc/auth` starts an interaction, the pages or `/api/experience` verify, identify and
//! submit, and `/oidc/auth/<uid>` answers the application with a code. Also the log keys the
//! interaction leaves (§3) and the refusals of §2.5.

use aws_lc_rs::digest;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, REDIRECT, csrf, html, location};
use crate::support::{TestServer, logs_of};

const USER_AGENT: &str = "experience-tests/1.0";
const PASSWORD: &str = "Correct-Horse-42";
/// What these tests' applications ask for.
const SCOPE: &str = "openid profile";

/// A browser these tests find in the log by its user agent.
fn new_browser(server: &TestServer) -> Browser {
    Browser::builder(server).user_agent(USER_AGENT).build()
}

fn key_of(entry: &Value) -> &str {
    entry["key"].as_str().unwrap_or_default()
}

fn pkce() -> String {
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

pub async fn app(server: &TestServer, kind: &str) -> String {
    let created = server
        .post(
            "/api/applications",
            json!({
                "name": format!("{kind} app"),
                "type": kind,
                "oidcClientMetadata": {"redirectUris": [REDIRECT], "postLogoutRedirectUris": []}
            }),
        )
        .await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

async fn user(server: &TestServer, body: Value) -> String {
    let created = server.post("/api/users", body).await;
    created.expect(200)["id"].as_str().unwrap().to_owned()
}

/// The interaction this browser holds (the `_interaction` cookie is HttpOnly, so it is read
/// back from the log: the latest interaction started).
async fn latest_interaction(server: &TestServer) -> String {
    server
        .events()
        .await
        .iter()
        .rev()
        .find(|e| e.event_type == "interaction.started")
        .unwrap()
        .stream_id
        .clone()
}

#[tokio::test]
async fn the_sign_in_page_signs_a_spa_in_with_pkce_in_english_or_japanese() {
    let server = TestServer::start().await;
    let spa = app(&server, "SPA").await;
    let ada = user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    let browser = new_browser(&server);
    let page = browser
        .start(
            &spa,
            SCOPE,
            &[
                ("code_challenge", &pkce()),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert!(page.starts_with("/sign-in?"), "{page}");

    let english = browser.get(&page).await;
    assert_eq!(english.status, StatusCode::OK);
    let text = html(&english);
    assert!(text.contains("<html lang=\"en\">"), "{text}");
    assert!(
        text.contains("<label for=\"identifier\">Username</label>"),
        "{text}"
    );
    assert!(
        text.contains("<label for=\"password\">Password</label>"),
        "{text}"
    );
    assert!(!text.contains("<script"), "no script on the page");
    assert!(text.contains("--primary: #6139F6"), "branded: {text}");
    let csp = english.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(english.header("x-frame-options"), Some("DENY"));

    let japanese = browser.get(&format!("{page}&ui_locales=ja")).await;
    let text = html(&japanese);
    assert!(text.contains("<html lang=\"ja\">"), "{text}");
    assert!(
        text.contains("サインイン") && text.contains("ユーザー名"),
        "{text}"
    );
    // The browser's languages count when the URL names none.
    let detected = browser.get_in(&page, "fr;q=0.9, ja;q=0.8").await;
    assert!(html(&detected).contains("<html lang=\"ja\">"));

    // A form without the page's token is refused, and records nothing.
    let before = server.events().await.len();
    let forged = browser
        .form(&page, &[("identifier", "ada"), ("password", PASSWORD)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(server.events().await.len(), before);

    let token = csrf(&english);
    let wrong = browser
        .form(
            &page,
            &[
                ("_csrf", &token),
                ("identifier", "ada"),
                ("password", "wrong"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = html(&wrong);
    assert!(text.contains("role=\"alert\""), "{text}");
    assert!(text.contains("Incorrect account or password"), "{text}");
    assert!(
        text.contains("value=\"ada\""),
        "the identifier is kept: {text}"
    );

    let signed_in = browser
        .form(
            &page,
            &[
                ("_csrf", &token),
                ("identifier", "ada"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let uid = latest_interaction(&server).await;
    assert_eq!(
        location(&signed_in),
        format!("{}/auth/{uid}", server.issuer())
    );
    browser.resume(&server, &location(&signed_in)).await;

    let ada_now = server.get(&format!("/api/users/{ada}")).await;
    assert!(ada_now.expect(200)["lastSignInAt"].is_number());
    assert_eq!(ada_now.body["applicationId"], spa);

    // The attempts are in the log, with where they came from.
    let recorded = server.recorded_events().await;
    let verified = recorded
        .iter()
        .find(|e| e.event_type == "interaction.verified" && e.stream_id == uid)
        .unwrap();
    assert_eq!(verified.metadata.actor, domain::Actor::User(ada.clone()));
    assert_eq!(verified.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(verified.metadata.user_agent.as_deref(), Some(USER_AGENT));
    assert!(verified.metadata.request_id.is_some());
    let stored = server.events().await;
    let sealed = stored
        .iter()
        .find(|e| e.event_type == "interaction.verified" && e.stream_id == uid)
        .unwrap();
    assert!(
        !sealed.payload.to_string().contains("\"ada\""),
        "the identifier is sealed: {}",
        sealed.payload
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn the_experience_api_signs_a_traditional_app_in_and_logs_every_step() {
    let server = TestServer::start().await;
    let web = app(&server, "Traditional").await;
    let grace = user(
        &server,
        json!({"username": "grace", "primaryEmail": "Grace@Example.com", "password": PASSWORD}),
    )
    .await;
    let browser = new_browser(&server);
    // Without an interaction there is nothing to drive.
    browser
        .put("/api/experience", json!({"interactionEvent": "SignIn"}))
        .await
        .expect_error(404, "session.not_found");

    browser.start(&web, SCOPE, &[]).await;
    let uid = latest_interaction(&server).await;
    browser
        .put("/api/experience", json!({"interactionEvent": "SignIn"}))
        .await
        .expect(204);
    let state = browser.get("/api/experience/interaction").await;
    assert_eq!(state.expect(200)["interactionEvent"], "SignIn");
    assert_eq!(state.body["userId"], Value::Null);

    let attempt = |value: &str, password: &str| json!({"identifier": {"type": "username", "value": value}, "password": password});
    browser
        .post(
            "/api/experience/verification/password",
            attempt("grace", "nope"),
        )
        .await
        .expect_error(422, "session.invalid_credentials");
    // An unknown account gets the very same answer.
    browser
        .post(
            "/api/experience/verification/password",
            attempt("nobody", "nope"),
        )
        .await
        .expect_error(422, "session.invalid_credentials");
    // Email is not a sign-in method of the default experience.
    browser
        .post(
            "/api/experience/verification/password",
            json!({"identifier": {"type": "email", "value": "grace@example.com"}, "password": PASSWORD}),
        )
        .await
        .expect_error(422, "user.sign_in_method_not_enabled");
    browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": "forged"}),
        )
        .await
        .expect_error(404, "session.verification_session_not_found");
    browser
        .post("/api/experience/submit", json!({}))
        .await
        .expect_error(404, "session.identifier_not_found");

    let verified = browser
        .post(
            "/api/experience/verification/password",
            attempt("grace", PASSWORD),
        )
        .await;
    let verification_id = verified.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verification_id.len(), 21);
    browser.identify(&verification_id).await;
    let state = browser.get("/api/experience/interaction").await;
    assert_eq!(state.expect(200)["userId"], grace);
    assert_eq!(state.body["verificationRecords"][0]["type"], "Password");
    let resume = browser.submit().await;
    assert_eq!(resume, format!("{}/auth/{uid}", server.issuer()));
    // Submitted is final.
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect_error(400, "session.interaction_finished");
    browser
        .post(
            "/api/experience/verification/password",
            attempt("grace", "guess"),
        )
        .await
        .expect_error(400, "session.interaction_finished");
    browser.resume(&server, &resume).await;

    // The user's sign-in, step by step, from this browser.
    let logs = logs_of(&server, &grace).await;
    let keys: Vec<&str> = logs.iter().map(|l| l["key"].as_str().unwrap()).collect();
    let password_key = "Interaction.SignIn.Verification.Password.Submit";
    let attempts: Vec<&Value> = logs.iter().filter(|l| l["key"] == password_key).collect();
    assert_eq!(attempts.len(), 2, "{keys:?}");
    assert_eq!(attempts[0]["payload"]["result"], "Error");
    assert_eq!(
        attempts[0]["payload"]["error"]["code"],
        "session.invalid_credentials"
    );
    assert_eq!(attempts[1]["payload"]["result"], "Success");
    assert_eq!(attempts[1]["payload"]["verificationId"], verification_id);
    for entry in logs
        .iter()
        .filter(|l| key_of(l).starts_with("Interaction."))
    {
        let payload = &entry["payload"];
        assert_eq!(payload["ip"], "127.0.0.1", "{entry}");
        assert_eq!(payload["userAgent"], USER_AGENT, "{entry}");
        assert_eq!(payload["interactionId"], uid, "{entry}");
        assert_eq!(payload["applicationId"], web, "{entry}");
        assert_eq!(payload["userId"], grace, "{entry}");
    }
    for key in [
        "Interaction.SignIn.Identifier.Submit",
        "Interaction.SignIn.Submit",
        "Interaction.End",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let created = server
        .get("/api/logs?logKey=Interaction.Create")
        .await
        .expect(200)
        .clone();
    assert_eq!(created[0]["payload"]["interactionId"], uid);
    server.assert_replay_check();
}

#[tokio::test]
async fn registration_through_the_page_and_the_api_creates_signed_in_users() {
    let server = TestServer::start().await;
    let web = app(&server, "Traditional").await;
    let role = server
        .post(
            "/api/roles",
            json!({"name": "member", "description": "everyone", "isDefault": true}),
        )
        .await;
    let role_id = role.expect(200)["id"].as_str().unwrap().to_owned();
    user(&server, json!({"username": "taken", "password": PASSWORD})).await;

    // The page.
    let browser = new_browser(&server);
    let page = browser
        .start(&web, SCOPE, &[("first_screen", "register")])
        .await;
    assert!(page.starts_with("/register?"), "{page}");
    let form = browser.get(&page).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(html(&form).contains("<label for=\"password_confirm\">"));
    let japanese = browser.get(&format!("{page}&ui_locales=ja-JP")).await;
    assert!(html(&japanese).contains("アカウントを作成"));
    let token = csrf(&form);
    let mismatch = browser
        .form(
            &page,
            &[
                ("_csrf", &token),
                ("username", "newcomer"),
                ("password", PASSWORD),
                ("password_confirm", "other"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html(&mismatch).contains("do not match"));
    let weak = browser
        .form(
            &page,
            &[
                ("_csrf", &token),
                ("username", "newcomer"),
                ("password", "123"),
                ("password_confirm", "123"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html(&weak).contains("At least 8 characters."),
        "{}",
        html(&weak)
    );
    let registered = browser
        .form(
            &page,
            &[
                ("_csrf", &token),
                ("username", "newcomer"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::SEE_OTHER,
        "{}",
        registered.body
    );
    browser.resume(&server, &location(&registered)).await;

    // The API.
    let browser = new_browser(&server);
    browser.start(&web, SCOPE, &[]).await;
    browser
        .put("/api/experience", json!({"interactionEvent": "Register"}))
        .await
        .expect(204);
    let identity = |username: &str, password: &str| json!({"identifier": {"type": "username", "value": username}, "password": password});
    let path = "/api/experience/verification/new-password-identity";
    browser
        .post(path, identity("taken", PASSWORD))
        .await
        .expect_error(422, "user.username_already_in_use");
    browser
        .post(path, identity("9lives", PASSWORD))
        .await
        .expect_error(422, "user.username_should_not_start_with_number");
    let weak = browser.post(path, identity("api_user", "api_user1")).await;
    weak.expect_error(422, "password.rejected");
    let issues: Vec<&str> = weak.body["data"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert!(
        issues.contains(&"password_rejected.restricted.user_info"),
        "{issues:?}"
    );
    let verified = browser.post(path, identity("api_user", PASSWORD)).await;
    let verification_id = verified.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    browser
        .post("/api/experience/identification", json!({}))
        .await
        .expect_error(422, "user.missing_profile");
    browser.identify_new_user(&verification_id).await;
    browser.submit_and_resume(&server).await;

    for username in ["newcomer", "api_user"] {
        let found = server
            .get(&format!(
                "/api/users?search.username={username}&mode.username=exact"
            ))
            .await;
        let found = found.expect(200).as_array().unwrap().clone();
        assert_eq!(found.len(), 1, "{username}: {found:?}");
        assert!(found[0]["lastSignInAt"].is_number(), "{}", found[0]);
        assert_eq!(found[0]["hasPassword"], true);
        assert_eq!(found[0]["applicationId"], web);
        let id = found[0]["id"].as_str().unwrap();
        let roles = server.get(&format!("/api/users/{id}/roles")).await;
        assert_eq!(roles.expect(200)[0]["id"], role_id, "default role");
        let keys: Vec<String> = logs_of(&server, id)
            .await
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            keys.contains(&"Interaction.Register.Identifier.Submit".to_owned())
                && keys.contains(&"Interaction.Register.Submit".to_owned()),
            "{keys:?}"
        );
    }
    // The user and the interaction's record of it were one unit of work.
    let events = server.events().await;
    let created = events
        .iter()
        .position(|e| e.event_type == "user.created" && e.actor_kind == "user")
        .unwrap();
    assert_eq!(
        events[created + 1].event_type,
        "interaction.user_registered"
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn a_suspended_user_is_refused_only_after_the_right_password() {
    let server = TestServer::start().await;
    let web = app(&server, "Traditional").await;
    let id = user(
        &server,
        json!({"username": "mallory", "password": PASSWORD}),
    )
    .await;
    server
        .patch(
            &format!("/api/users/{id}/is-suspended"),
            json!({"isSuspended": true}),
        )
        .await
        .expect(200);
    let browser = new_browser(&server);
    let page = browser.start(&web, SCOPE, &[]).await;
    let attempt = |password: &str| json!({"identifier": {"type": "username", "value": "mallory"}, "password": password});
    browser
        .post("/api/experience/verification/password", attempt("wrong"))
        .await
        .expect_error(422, "session.invalid_credentials");
    browser
        .post("/api/experience/verification/password", attempt(PASSWORD))
        .await
        .expect_error(401, "user.suspended");

    let refused = browser.fill_sign_in(&page, "mallory", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(html(&refused).contains("This account is suspended."));
    let logs = logs_of(&server, &id).await;
    assert!(
        logs.iter()
            .any(|l| l["payload"]["error"]["code"] == "user.suspended")
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn the_sign_in_mode_gates_registration_and_the_sentinel_locks_identifiers() {
    let server = TestServer::start().await;
    let web = app(&server, "Traditional").await;
    user(&server, json!({"username": "ada", "password": PASSWORD})).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({"signInMode": "SignIn", "sentinelPolicy": {"maxAttempts": 2, "lockoutDuration": 5}}),
        )
        .await
        .expect(200);

    let browser = new_browser(&server);
    let page = browser.start(&web, SCOPE, &[]).await;
    browser
        .put("/api/experience", json!({"interactionEvent": "Register"}))
        .await
        .expect_error(403, "auth.forbidden");
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect_error(403, "auth.forbidden");
    let register = page.replacen("/sign-in", "/register", 1);
    let refused = browser.get(&register).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(html(&refused).contains("role=\"alert\""));
    let sign_in = browser.get(&page).await;
    assert!(
        !html(&sign_in).contains("href=\"/register"),
        "no link to a closed door"
    );
    let posted = browser
        .form(
            &register,
            &[
                ("_csrf", &csrf(&sign_in)),
                ("username", "sneaky"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);

    // Two failures lock the identifier, whatever the next password.
    let attempt = |password: &str| json!({"identifier": {"type": "username", "value": "ada"}, "password": password});
    let path = "/api/experience/verification/password";
    browser
        .post(path, attempt("wrong-1"))
        .await
        .expect_error(422, "session.invalid_credentials");
    browser
        .post(path, attempt("wrong-2"))
        .await
        .expect_error(400, "session.verification_blocked_too_many_attempts");
    browser
        .post(path, attempt(PASSWORD))
        .await
        .expect_error(400, "session.verification_blocked_too_many_attempts");
    server.assert_replay_check();
}

#[tokio::test]
async fn a_user_missing_a_required_username_adds_it_before_submitting() {
    let server = TestServer::start().await;
    let web = app(&server, "Traditional").await;
    let id = user(
        &server,
        json!({"primaryEmail": "lin@example.com", "password": PASSWORD}),
    )
    .await;
    let methods = json!([
        {"identifier": "username", "password": true, "verificationCode": false, "isPasswordPrimary": true},
        {"identifier": "email", "password": true, "verificationCode": false, "isPasswordPrimary": true}
    ]);
    server
        .patch("/api/sign-in-exp", json!({"signIn": {"methods": methods}}))
        .await
        .expect(200);

    let browser = new_browser(&server);
    browser.start(&web, SCOPE, &[]).await;
    let verified = browser
        .post(
            "/api/experience/verification/password",
            json!({"identifier": {"type": "email", "value": "LIN@example.com"}, "password": PASSWORD}),
        )
        .await;
    browser
        .identify(verified.expect(200)["verificationId"].as_str().unwrap())
        .await;
    let missing = browser.post("/api/experience/submit", json!({})).await;
    missing.expect_error(422, "user.missing_profile");
    assert_eq!(missing.body["data"]["missingProfile"], json!(["username"]));
    browser
        .post(
            "/api/experience/profile",
            json!({"type": "password", "value": "Another-Horse-43"}),
        )
        .await
        .expect_error(422, "user.password_exists_in_profile");
    browser
        .post(
            "/api/experience/profile",
            json!({"type": "username", "value": "lin"}),
        )
        .await
        .expect(204);
    browser.submit_and_resume(&server).await;
    let lin = server.get(&format!("/api/users/{id}")).await;
    assert_eq!(lin.expect(200)["username"], "lin");
    server.assert_replay_check();
}
