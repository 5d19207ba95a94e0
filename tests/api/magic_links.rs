//! Magic links (logto-compat §4, §7): one-time tokens redeemed through the Experience API and
//! the hosted `/one-time-token` page, invitation-only registration, organization invitations
//! with just-in-time roles, the page for each reason a link cannot be used, account switching,
//! device binding, and the log entries all of it leaves.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, REDIRECT, csrf, html, location, query_of};
use crate::support::{BOOTSTRAP_ID, TestServer};

const USER_AGENT: &str = "magic-link-tests/1.0";
const PASSWORD: &str = "Correct-Horse-42";
const VERIFY: &str = "/api/experience/verification/one-time-token/verify";
/// What these tests' applications ask for.
const SCOPE: &str = "openid profile email";

/// A browser these tests find in the log by its user agent.
fn new_browser(server: &TestServer) -> Browser {
    Browser::builder(server).user_agent(USER_AGENT).build()
}

/// The steps of following a magic link.
impl Browser {
    /// `/oidc/auth` carrying a magic link's token and email; where the browser is sent.
    async fn follow(&self, client_id: &str, token: &str, email: &str) -> String {
        self.start(
            client_id,
            SCOPE,
            &[("one_time_token", token), ("login_hint", email)],
        )
        .await
    }

    /// Signs in with a username and password through the Experience API, leaving a session.
    async fn sign_in(&self, server: &TestServer, client_id: &str, username: &str) {
        self.start(client_id, SCOPE, &[]).await;
        let verified = self.verify_password(username, PASSWORD).await;
        self.identify(verified.expect(200)["verificationId"].as_str().unwrap())
            .await;
        self.submit_and_resume(server).await;
    }
}

async fn app(server: &TestServer) -> String {
    let created = server
        .post(
            "/api/applications",
            json!({
                "name": "Magic app",
                "type": "Traditional",
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

/// A one-time token; returns its id and value.
async fn token(server: &TestServer, body: Value) -> (String, String) {
    let created = server.post("/api/one-time-tokens", body).await;
    let created = created.expect(201);
    (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

async fn token_status(server: &TestServer, id: &str) -> Value {
    server
        .get(&format!("/api/one-time-tokens/{id}"))
        .await
        .expect(200)["status"]
        .clone()
}

async fn find_by_email(server: &TestServer, email: &str) -> Vec<Value> {
    let found = server
        .get(&format!(
            "/api/users?search.primaryEmail={email}&mode.primaryEmail=exact"
        ))
        .await;
    found.expect(200).as_array().unwrap().clone()
}

async fn logs(server: &TestServer, key: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/api/logs?logKey={key}&page_size=100"))
        .await;
    reply.expect(200).as_array().unwrap().clone()
}

/// Whom an authorization code signs in: the `sub` of the ID token the application gets for it.
async fn subject_of(server: &TestServer, client_id: &str, code: &str) -> String {
    use base64::Engine;
    let secrets = server
        .get(&format!("/api/applications/{client_id}/secrets"))
        .await;
    let secret = secrets.expect(200)[0]["value"].as_str().unwrap().to_owned();
    let tokens = server
        .token_request(
            Some((client_id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    let id_token = tokens.expect(200)["id_token"].as_str().unwrap().to_owned();
    let claims = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_experience_api_signs_in_with_a_token_and_logs_each_step() {
    let server = TestServer::start().await;
    let web = app(&server).await;
    let ada = user(
        &server,
        json!({"username": "ada", "primaryEmail": "Ada@Example.com", "password": PASSWORD}),
    )
    .await;
    let (token_id, value) = token(&server, json!({"email": "ada@example.com"})).await;
    let browser = new_browser(&server);
    let page = browser.follow(&web, &value, "ada@example.com").await;
    assert!(page.starts_with("/one-time-token?"), "{page}");
    assert_eq!(query_of(&page)["one_time_token"], value);
    assert_eq!(query_of(&page)["login_hint"], "ada@example.com");

    browser
        .put("/api/experience", json!({"interactionEvent": "SignIn"}))
        .await
        .expect(204);
    browser
        .post(
            VERIFY,
            json!({"token": value, "identifier": {"type": "username", "value": "ada"}}),
        )
        .await
        .expect_error(400, "guard.invalid_input");
    browser
        .post(
            VERIFY,
            json!({"token": value, "identifier": {"type": "email", "value": "Ada@example.com"}}),
        )
        .await
        .expect_error(400, "one_time_token.email_mismatch");
    let verified = browser
        .post(
            VERIFY,
            json!({"token": value, "identifier": {"type": "email", "value": "ada@example.com"}}),
        )
        .await;
    let verification_id = verified.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token_status(&server, &token_id).await, "consumed");
    let state = browser.get("/api/experience/interaction").await;
    assert_eq!(
        state.expect(200)["verificationRecords"][0]["type"],
        "OneTimeToken"
    );
    // The token's account, found whatever the case of its stored email.
    browser.identify(&verification_id).await;
    let code = browser.submit_and_resume(&server).await;
    assert_eq!(subject_of(&server, &web, &code).await, ada);

    // Used up.
    let again = new_browser(&server);
    again.follow(&web, &value, "ada@example.com").await;
    again
        .post(
            VERIFY,
            json!({"token": value, "identifier": {"type": "email", "value": "ada@example.com"}}),
        )
        .await
        .expect_error(400, "one_time_token.token_consumed");

    // The consumption and the interaction's record of it are one unit of work.
    let events = server.events().await;
    let consumed = events
        .iter()
        .position(|e| e.event_type == "one_time_token.consumed")
        .unwrap();
    let recorded = &events[consumed + 1];
    assert_eq!(recorded.event_type, "interaction.verified");
    assert_eq!(recorded.request_id, events[consumed].request_id);
    assert_eq!(events[consumed].actor_id.as_deref(), Some(ada.as_str()));
    let unsealed = server.recorded_events().await;
    let verified = unsealed
        .iter()
        .find(|e| e.position == recorded.position)
        .unwrap();
    assert_eq!(verified.payload["oneTimeTokenId"], token_id);
    assert_eq!(verified.payload["identifier"]["value"], "ada@example.com");
    assert_eq!(verified.metadata.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(verified.metadata.user_agent.as_deref(), Some(USER_AGENT));

    // The log: the token's creation by the Management API, its consumption by the link, the
    // verification, the failed attempts and the sign-in they led to.
    let created = logs(&server, "ManagementApi.OneTimeToken.Create").await;
    assert_eq!(created.len(), 1, "{created:?}");
    let payload = &created[0]["payload"];
    assert_eq!(payload["oneTimeTokenId"], token_id);
    assert_eq!(payload["applicationId"], BOOTSTRAP_ID);
    assert_eq!(payload["ip"], "127.0.0.1");
    assert_eq!(payload["userAgent"], "idledger-tests/1.0");
    assert_eq!(payload["deviceBound"], false);
    assert!(
        !payload.to_string().contains("ada@example.com"),
        "{payload}"
    );
    let consumption = logs(&server, "Interaction.OneTimeToken.Consume").await;
    assert_eq!(consumption.len(), 1, "{consumption:?}");
    assert_eq!(consumption[0]["payload"]["userId"], ada);
    assert_eq!(consumption[0]["payload"]["ip"], "127.0.0.1");
    assert_eq!(consumption[0]["payload"]["userAgent"], USER_AGENT);
    let verifications = logs(
        &server,
        "Interaction.SignIn.Verification.OneTimeToken.Submit",
    )
    .await;
    let results: Vec<(&Value, &Value)> = verifications
        .iter()
        .map(|l| (&l["payload"]["result"], &l["payload"]["error"]["code"]))
        .collect();
    assert!(
        results.contains(&(&json!("Success"), &Value::Null))
            && results.contains(&(&json!("Error"), &json!("one_time_token.email_mismatch")))
            && results.contains(&(&json!("Error"), &json!("one_time_token.token_consumed"))),
        "{results:?}"
    );
    let success = verifications
        .iter()
        .find(|l| l["payload"]["result"] == "Success")
        .unwrap();
    assert_eq!(success["payload"]["verificationId"], verification_id);
    assert_eq!(success["payload"]["applicationId"], web);
    let sign_ins = server
        .get(&format!(
            "/api/logs?userId={ada}&logKey=Interaction.SignIn.Submit"
        ))
        .await;
    assert_eq!(sign_ins.expect(200).as_array().unwrap().len(), 1);
    server.assert_replay_check();
}

#[tokio::test]
async fn a_token_invites_registration_where_registration_is_closed() {
    let server = TestServer::start().await;
    let web = app(&server).await;
    server
        .patch("/api/sign-in-exp", json!({"signInMode": "SignIn"}))
        .await
        .expect(200);
    let (token_id, value) = token(&server, json!({"email": "newbie@example.com"})).await;

    // The Experience API, as Logto's own page drives it.
    let browser = new_browser(&server);
    browser.follow(&web, &value, "newbie@example.com").await;
    // Registration stays closed until a token is verified.
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect_error(403, "auth.forbidden");
    let verified = browser
        .post(
            VERIFY,
            json!({"token": value, "identifier": {"type": "email", "value": "newbie@example.com"}}),
        )
        .await;
    let verification_id = verified.expect(200)["verificationId"].clone();
    let identify = json!({ "verificationId": verification_id });
    browser
        .post("/api/experience/identification", identify.clone())
        .await
        .expect_error(404, "user.user_not_exist");
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect(204);
    browser
        .post("/api/experience/identification", identify)
        .await
        .expect(201);
    // The sign-up profile still applies: username and password, in Logto's order.
    let missing = browser.post("/api/experience/submit", json!({})).await;
    missing.expect_error(422, "user.missing_profile");
    assert_eq!(
        missing.body["data"]["missingProfile"],
        json!(["username", "password"])
    );
    browser
        .post(
            "/api/experience/profile",
            json!({"type": "username", "value": "newbie"}),
        )
        .await
        .expect(204);
    browser
        .post(
            "/api/experience/profile",
            json!({"type": "password", "value": PASSWORD}),
        )
        .await
        .expect(204);
    browser.submit_and_resume(&server).await;
    let found = find_by_email(&server, "newbie@example.com").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["username"], "newbie");
    assert_eq!(found[0]["hasPassword"], true);
    assert!(found[0]["lastSignInAt"].is_number());
    assert_eq!(token_status(&server, &token_id).await, "consumed");

    // The hosted page: an unknown email registers at once, then gives the missing profile.
    let (_, value) = token(&server, json!({"email": "page@example.com"})).await;
    let browser = new_browser(&server);
    let page = browser.follow(&web, &value, "page@example.com").await;
    let form = browser.get(&page).await;
    assert_eq!(form.status, StatusCode::OK, "{}", html(&form));
    let text = html(&form);
    assert!(text.contains("Complete your account"), "{text}");
    assert!(text.contains("name=\"username\"") && text.contains("name=\"password_confirm\""));
    let japanese = browser.get(&format!("{page}&ui_locales=ja")).await;
    assert!(
        html(&japanese).contains("アカウント情報の入力"),
        "{}",
        html(&japanese)
    );
    let token_field = csrf(&form);
    let mismatch = browser
        .form(
            &page,
            &[
                ("_csrf", &token_field),
                ("username", "page_user"),
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
                ("_csrf", &token_field),
                ("username", "page_user"),
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
    // The username was taken on the first try; only the password is asked again.
    assert!(
        !html(&weak).contains("name=\"username\""),
        "{}",
        html(&weak)
    );
    let done = browser
        .form(
            &page,
            &[
                ("_csrf", &token_field),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", html(&done));
    browser.resume(&server, &location(&done)).await;
    let found = find_by_email(&server, "page@example.com").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["username"], "page_user");

    // Without a token the door stays shut.
    let browser = new_browser(&server);
    let sign_in = browser
        .start(&web, SCOPE, &[("first_screen", "register")])
        .await;
    let refused = browser.get(&sign_in).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let keys: Vec<String> = logs(&server, "Interaction.Register.Identifier.Submit")
        .await
        .iter()
        .map(|l| l["payload"]["userId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    server.assert_replay_check();
}

#[tokio::test]
async fn every_unusable_link_gets_a_page_saying_why_and_what_next() {
    let server = TestServer::start().await;
    let web = app(&server).await;
    user(
        &server,
        json!({"username": "ada", "primaryEmail": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    let (_, consumed) = token(&server, json!({"email": "used@example.com"})).await;
    server
        .post(
            "/api/one-time-tokens/verify",
            json!({"token": consumed, "email": "used@example.com"}),
        )
        .await
        .expect(200);
    let (expired_id, expired) = token(&server, json!({"email": "late@example.com"})).await;
    server
        .put(
            &format!("/api/one-time-tokens/{expired_id}/status"),
            json!({"status": "expired"}),
        )
        .await
        .expect(200);
    let (revoked_id, revoked) = token(&server, json!({"email": "gone@example.com"})).await;
    server
        .put(
            &format!("/api/one-time-tokens/{revoked_id}/status"),
            json!({"status": "revoked"}),
        )
        .await
        .expect(200);
    let (mismatch_id, mismatch) = token(&server, json!({"email": "mixed@example.com"})).await;
    // A registration link for an email that already has an account.
    let (event_id, wrong_event) = token(
        &server,
        json!({"email": "ada@example.com", "context": {"interactionEvent": "Register"}}),
    )
    .await;
    let cases = [
        (
            "no-such-token".to_owned(),
            "someone@example.com",
            404,
            "This link is not valid.",
            "ask for a new link",
        ),
        (
            mismatch,
            "other@example.com",
            400,
            "This link does not belong to this email address.",
            "Open the link exactly as it was sent to you",
        ),
        (
            expired,
            "late@example.com",
            400,
            "This link has expired.",
            "Ask for a new link and use it soon.",
        ),
        (
            consumed,
            "used@example.com",
            400,
            "This link has already been used.",
            "Each link works once.",
        ),
        (
            revoked,
            "gone@example.com",
            400,
            "This link has been withdrawn.",
            "Ask them for a new link.",
        ),
        (
            wrong_event,
            "ada@example.com",
            400,
            "This link was made for another purpose.",
            "creating an account or for signing in",
        ),
    ];
    for (value, email, status, message, next_step) in &cases {
        let browser = new_browser(&server);
        let page = browser.follow(&web, value, email).await;
        let shown = browser.get(&page).await;
        assert_eq!(shown.status.as_u16(), *status, "{email}: {}", html(&shown));
        let text = html(&shown);
        assert!(text.contains(message), "{email}: {text}");
        assert!(text.contains(next_step), "{email}: {text}");
        assert!(text.contains("This link cannot be used"), "{text}");
        // Another way in, without the token.
        assert!(text.contains("href=\"/sign-in?app_id="), "{text}");
        assert!(!text.contains(&format!("one_time_token={value}")), "{text}");
    }
    // Japanese.
    let browser = new_browser(&server);
    let page = browser
        .follow(&web, "no-such-token", "someone@example.com")
        .await;
    let shown = browser.get(&format!("{page}&ui_locales=ja")).await;
    assert!(
        html(&shown).contains("このリンクは無効です。"),
        "{}",
        html(&shown)
    );
    assert!(html(&shown).contains("<html lang=\"ja\">"));
    // A link without its token or email.
    let browser = new_browser(&server);
    let page = browser.start(&web, SCOPE, &[("one_time_token", "x")]).await;
    assert!(page.starts_with("/one-time-token?"), "{page}");
    let shown = browser.get(&page).await;
    assert!(
        html(&shown).contains("This link is not valid."),
        "{}",
        html(&shown)
    );
    // A mismatched email or event leaves the token for its rightful use.
    assert_eq!(token_status(&server, &mismatch_id).await, "active");
    assert_eq!(token_status(&server, &event_id).await, "active");
    // Through the API, the event mismatch is Logto's error.
    let browser = new_browser(&server);
    let (_, for_sign_in) = token(
        &server,
        json!({"email": "ada@example.com", "context": {"interactionEvent": "SignIn"}}),
    )
    .await;
    browser.follow(&web, &for_sign_in, "ada@example.com").await;
    browser
        .put("/api/experience", json!({"interactionEvent": "Register"}))
        .await
        .expect(204);
    browser
        .post(
            VERIFY,
            json!({"token": for_sign_in, "identifier": {"type": "email", "value": "ada@example.com"}}),
        )
        .await
        .expect_error(400, "one_time_token.interaction_event_mismatch");
    server.assert_replay_check();
}

async fn organization_role(server: &TestServer, name: &str) -> String {
    let created = server
        .post("/api/organization-roles", json!({ "name": name }))
        .await;
    created.expect(201)["id"].as_str().unwrap().to_owned()
}

async fn organization(server: &TestServer, name: &str, jit_roles: &[&str]) -> String {
    let created = server
        .post("/api/organizations", json!({ "name": name }))
        .await;
    let id = created.expect(201)["id"].as_str().unwrap().to_owned();
    if !jit_roles.is_empty() {
        server
            .post(
                &format!("/api/organizations/{id}/jit/roles"),
                json!({ "organizationRoleIds": jit_roles }),
            )
            .await
            .expect(201);
    }
    id
}

/// Organization id → the names of the roles the user holds there.
async fn memberships(
    server: &TestServer,
    user_id: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let reply = server
        .get(&format!("/api/users/{user_id}/organizations"))
        .await;
    reply
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|org| {
            let mut roles: Vec<String> = org["organizationRoles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
                .collect();
            roles.sort();
            (org["id"].as_str().unwrap().to_owned(), roles)
        })
        .collect()
}

#[tokio::test]
async fn an_organization_invitation_makes_a_member_with_the_jit_roles() {
    let server = TestServer::start().await;
    let web = app(&server).await;
    let member = organization_role(&server, "member").await;
    let viewer = organization_role(&server, "viewer").await;
    let admin = organization_role(&server, "admin").await;
    let acme = organization(&server, "Acme", &[&member]).await;
    let globex = organization(&server, "Globex", &[&viewer]).await;
    // An existing member of Globex, who is an admin there.
    let grace = user(
        &server,
        json!({"username": "grace", "primaryEmail": "grace@example.com", "password": PASSWORD}),
    )
    .await;
    server
        .post(
            &format!("/api/organizations/{globex}/users"),
            json!({"userIds": [grace]}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("/api/organizations/{globex}/users/{grace}/roles"),
            json!({"organizationRoleIds": [admin]}),
        )
        .await
        .expect(201);
    let context = json!({"jitOrganizationIds": [acme, "no-such-organization", globex]});

    // Signing in through the page joins the listed organizations that exist, keeping what
    // was held before.
    let (_, value) = token(
        &server,
        json!({"email": "grace@example.com", "context": context, "expiresIn": 172_800}),
    )
    .await;
    let browser = new_browser(&server);
    let page = browser.follow(&web, &value, "grace@example.com").await;
    let signed_in = browser.get(&page).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        html(&signed_in)
    );
    browser.resume(&server, &location(&signed_in)).await;
    let held = memberships(&server, &grace).await;
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(held[&acme], ["member"]);
    assert_eq!(held[&globex], ["admin", "viewer"]);

    // A newcomer registers through the Experience API and joins too.
    let (_, value) = token(
        &server,
        json!({"email": "hire@example.com", "context": {"jitOrganizationIds": [acme]}}),
    )
    .await;
    let browser = new_browser(&server);
    browser.follow(&web, &value, "hire@example.com").await;
    let verified = browser
        .post(
            VERIFY,
            json!({"token": value, "identifier": {"type": "email", "value": "hire@example.com"}}),
        )
        .await;
    let verification_id = verified.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    browser
        .put(
            "/api/experience/interaction-event",
            json!({"interactionEvent": "Register"}),
        )
        .await
        .expect(204);
    browser.identify_new_user(&verification_id).await;
    for profile in [
        json!({"type": "username", "value": "hire"}),
        json!({"type": "password", "value": PASSWORD}),
    ] {
        browser
            .post("/api/experience/profile", profile)
            .await
            .expect(204);
    }
    // No membership before the submission: it is part of it.
    let hire = find_by_email(&server, "hire@example.com").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(memberships(&server, &hire).await.is_empty());
    browser.submit_and_resume(&server).await;
    let held = memberships(&server, &hire).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[&acme], ["member"]);
    let members = server
        .get(&format!("/api/organizations/{acme}/users"))
        .await;
    assert_eq!(members.expect(200).as_array().unwrap().len(), 2);
    // The memberships were appended with the submission.
    let events = server.events().await;
    let submitted = events
        .iter()
        .rposition(|e| e.event_type == "interaction.submitted")
        .unwrap();
    let joined: Vec<&str> = events[submitted + 1..]
        .iter()
        .take_while(|e| e.request_id == events[submitted].request_id)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        joined,
        [
            "organization.member_added",
            "organization.member_roles_assigned"
        ],
        "{joined:?}"
    );
    server.assert_replay_check();
}

#[tokio::test]
async fn a_link_for_another_account_asks_which_account_to_use() {
    let server = TestServer::start().await;
    let web = app(&server).await;
    let ada = user(
        &server,
        json!({"username": "ada", "primaryEmail": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    let bob = user(
        &server,
        json!({"username": "bob", "primaryEmail": "bob@example.com", "password": PASSWORD}),
    )
    .await;
    let team = organization(&server, "Team", &[]).await;
    let browser = new_browser(&server);
    browser.sign_in(&server, &web, "ada").await;

    // Bob's link in Ada's browser: the choice first.
    let (bob_token_id, bob_token) = token(&server, json!({"email": "bob@example.com"})).await;
    let page = browser.follow(&web, &bob_token, "bob@example.com").await;
    assert!(page.starts_with("/one-time-token?"), "{page}");
    let redirected = browser.get(&page).await;
    assert_eq!(
        redirected.status,
        StatusCode::SEE_OTHER,
        "{}",
        html(&redirected)
    );
    let switch = location(&redirected);
    assert!(switch.starts_with("/switch-account?"), "{switch}");
    let prompt = browser.get(&switch).await;
    assert_eq!(prompt.status, StatusCode::OK);
    let text = html(&prompt);
    assert!(text.contains("Switch accounts?"), "{text}");
    assert!(text.contains("Continue as bob@example.com"), "{text}");
    assert!(text.contains("Stay signed in as ada@example.com"), "{text}");
    let japanese = browser.get(&format!("{switch}&ui_locales=ja")).await;
    assert!(
        html(&japanese).contains("アカウントを切り替えますか"),
        "{}",
        html(&japanese)
    );

    // Staying answers the application as Ada and leaves Bob's token unused.
    let stayed = browser
        .form(&switch, &[("_csrf", &csrf(&prompt)), ("choice", "stay")])
        .await;
    assert_eq!(stayed.status, StatusCode::SEE_OTHER, "{}", html(&stayed));
    let code = browser.resume(&server, &location(&stayed)).await;
    assert_eq!(subject_of(&server, &web, &code).await, ada);
    assert_eq!(token_status(&server, &bob_token_id).await, "active");

    // Continuing verifies the token and signs Bob in, in place of Ada.
    let page = browser.follow(&web, &bob_token, "bob@example.com").await;
    let switch = location(&browser.get(&page).await);
    let prompt = browser.get(&switch).await;
    let continued = browser
        .form(
            &switch,
            &[("_csrf", &csrf(&prompt)), ("choice", "continue")],
        )
        .await;
    assert_eq!(
        continued.status,
        StatusCode::SEE_OTHER,
        "{}",
        html(&continued)
    );
    let code = browser.resume(&server, &location(&continued)).await;
    assert_eq!(subject_of(&server, &web, &code).await, bob);
    assert_eq!(token_status(&server, &bob_token_id).await, "consumed");

    // Now signed in as Bob: his own link needs no choice, and joins its organizations.
    let (_, own) = token(
        &server,
        json!({"email": "bob@example.com", "context": {"jitOrganizationIds": [team]}}),
    )
    .await;
    let page = browser.follow(&web, &own, "bob@example.com").await;
    let signed_in = browser.get(&page).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        html(&signed_in)
    );
    assert!(
        location(&signed_in).contains("/auth/"),
        "{}",
        location(&signed_in)
    );
    browser.resume(&server, &location(&signed_in)).await;
    assert!(memberships(&server, &bob).await.contains_key(&team));
    // Without the link, the session answers at once: Bob's is the browser's session now.
    let answered = browser.start(&web, SCOPE, &[]).await;
    assert!(answered.starts_with(REDIRECT), "{answered}");
    assert_eq!(
        subject_of(&server, &web, &query_of(&answered)["code"]).await,
        bob
    );

    // `prompt=login` skips the choice: the link's account signs in.
    let (_, ada_token) = token(&server, json!({"email": "ada@example.com"})).await;
    let page = browser
        .start(
            &web,
            SCOPE,
            &[
                ("one_time_token", &ada_token),
                ("login_hint", "ada@example.com"),
                ("prompt", "login"),
            ],
        )
        .await;
    // Staying is not on offer then, even to a forged form.
    let sign_in_form = browser
        .get(&page.replacen("/one-time-token", "/sign-in", 1))
        .await;
    let forged = browser
        .form(
            &page.replacen("/one-time-token", "/switch-account", 1),
            &[("_csrf", &csrf(&sign_in_form)), ("choice", "stay")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", html(&forged));
    let signed_in = browser.get(&page).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        html(&signed_in)
    );
    let code = browser.resume(&server, &location(&signed_in)).await;
    assert_eq!(subject_of(&server, &web, &code).await, ada);
    server.assert_replay_check();
}

#[tokio::test]
async fn a_token_bound_to_a_device_works_only_there() {
    let server = TestServer::start().await;
    let web = app(&server).await;
    user(
        &server,
        json!({"username": "ada", "primaryEmail": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    for bad in [
        json!({}),
        json!({"ip": "not-an-address"}),
        json!({"userAgent": ""}),
    ] {
        server
            .post(
                "/api/one-time-tokens",
                json!({"email": "ada@example.com", "context": {"deviceBinding": bad}}),
            )
            .await
            .expect_error(400, "guard.invalid_input");
    }
    let elsewhere = server
        .post(
            "/api/one-time-tokens",
            json!({"email": "ada@example.com", "context": {"deviceBinding": {"ip": "203.0.113.7"}}}),
        )
        .await;
    let elsewhere = elsewhere.expect(201).clone();
    assert_eq!(
        elsewhere["context"],
        json!({"deviceBinding": {"ip": "203.0.113.7"}})
    );
    let (here_id, here) = token(
        &server,
        json!({
            "email": "ada@example.com",
            "context": {"deviceBinding": {"ip": "127.0.0.1", "userAgent": USER_AGENT}}
        }),
    )
    .await;

    // Another device: refused with its own error, and the token stays usable.
    let browser = new_browser(&server);
    browser
        .follow(
            &web,
            elsewhere["token"].as_str().unwrap(),
            "ada@example.com",
        )
        .await;
    browser
        .post(
            VERIFY,
            json!({"token": elsewhere["token"], "identifier": {"type": "email", "value": "ada@example.com"}}),
        )
        .await
        .expect_error(400, "one_time_token.device_mismatch");
    let id = elsewhere["id"].as_str().unwrap();
    assert_eq!(token_status(&server, id).await, "active");
    let browser = new_browser(&server);
    let page = browser
        .follow(
            &web,
            elsewhere["token"].as_str().unwrap(),
            "ada@example.com",
        )
        .await;
    let shown = browser.get(&page).await;
    assert_eq!(shown.status, StatusCode::BAD_REQUEST);
    assert!(
        html(&shown).contains("This link only works on the device and browser that asked for it."),
        "{}",
        html(&shown)
    );

    // The device that asked for it.
    let browser = new_browser(&server);
    let page = browser.follow(&web, &here, "ada@example.com").await;
    let signed_in = browser.get(&page).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        html(&signed_in)
    );
    browser.resume(&server, &location(&signed_in)).await;
    assert_eq!(token_status(&server, &here_id).await, "consumed");

    // The binding is personal data: sealed in the log, shown on reads and flagged in logs.
    for event in server.events().await {
        assert!(
            !event.payload.to_string().contains("203.0.113.7"),
            "{}",
            event.payload
        );
    }
    let created = logs(&server, "ManagementApi.OneTimeToken.Create").await;
    assert!(
        created.iter().all(|l| l["payload"]["deviceBound"] == true),
        "{created:?}"
    );
    server.assert_replay_check();
}

/// Logto's Python SDK sample follows invitation links in headless Chromium
/// (tests/e2e/test_magic_links.py): the invitees end up registered and signed in although
/// public registration is off, the organization's invitee as a member with its JIT role.
#[tokio::test]
async fn the_python_sdk_sample_follows_invitation_links_in_a_browser() {
    use crate::sdk_e2e::{browser_test, free_port};
    let server = TestServer::start().await;
    let port = free_port();
    let (app_id, app_secret) = crate::sdk_e2e::flask_sample(&server, port).await;
    server
        .patch("/api/sign-in-exp", json!({"signInMode": "SignIn"}))
        .await
        .expect(200);
    let member = organization_role(&server, "member").await;
    let acme = organization(&server, "Acme", &[&member]).await;
    let (invite_id, invite) = token(
        &server,
        json!({"email": "invitee@example.com", "expiresIn": 86_400}),
    )
    .await;
    let (org_invite_id, org_invite) = token(
        &server,
        json!({
            "email": "member@example.com",
            "expiresIn": 172_800,
            "context": {"jitOrganizationIds": [acme]}
        }),
    )
    .await;

    browser_test(
        &server,
        "test_magic_links.py",
        "magic-links",
        &[
            ("APP_ID", &app_id),
            ("APP_SECRET", &app_secret),
            ("APP_PORT", &port.to_string()),
            ("INVITE_TOKEN", &invite),
            ("INVITE_EMAIL", "invitee@example.com"),
            ("ORG_INVITE_TOKEN", &org_invite),
            ("ORG_INVITE_EMAIL", "member@example.com"),
            ("NEW_PASSWORD", PASSWORD),
        ],
    )
    .await;

    // Both invitees registered with the invited email and the username they chose, and signed
    // in from the browser; the organization's invitee is a member with its JIT role.
    for (email, username) in [
        ("invitee@example.com", "invitee"),
        ("member@example.com", "new_member"),
    ] {
        let found = find_by_email(&server, email).await;
        assert_eq!(found.len(), 1, "{email}: {found:?}");
        assert_eq!(found[0]["username"], username);
        assert!(found[0]["lastSignInAt"].is_number(), "{}", found[0]);
        assert_eq!(found[0]["applicationId"], app_id);
    }
    let invitee = find_by_email(&server, "invitee@example.com").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let newcomer = find_by_email(&server, "member@example.com").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(memberships(&server, &invitee).await.is_empty());
    let held = memberships(&server, &newcomer).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[&acme], ["member"]);
    assert_eq!(token_status(&server, &invite_id).await, "consumed");
    assert_eq!(token_status(&server, &org_invite_id).await, "consumed");
    // The browser's sign-ins are in the log with its address and agent.
    let registrations = logs(&server, "Interaction.Register.Submit").await;
    assert_eq!(registrations.len(), 2, "{registrations:?}");
    for entry in &registrations {
        assert_eq!(entry["payload"]["ip"], "127.0.0.1", "{entry}");
        assert!(
            entry["payload"]["userAgent"]
                .as_str()
                .is_some_and(|ua| ua.contains("Chrome")),
            "{entry}"
        );
    }
    server.assert_replay_check();
}
