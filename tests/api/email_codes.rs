//! Email verification codes in the Experience API (logto-compat §7), mailed through a real SMTP
//! server: registration by email code with a password, sign-in by email code (with the
//! Japanese template the authorization request's `ui_locales` picks), and a password reset.

use std::time::Duration;

use serde_json::json;

use crate::browser::{Browser, REDIRECT};
use crate::connectors::{create_email_connector, templates};
use crate::smtp_server::{Options, SmtpServer, code_in};
use crate::support::{Reply, TestServer};

const EMAIL: &str = "grace@example.com";
const PASSWORD: &str = "Correct-Horse-42";
const NEW_PASSWORD: &str = "Battery-Staple-77";
const WAIT: Duration = Duration::from_secs(30);
/// What these tests' applications ask for.
const SCOPE: &str = "openid email";

/// The email-code steps of the Experience API (`*_to` for any address, the others for `EMAIL`).
impl Browser {
    async fn send_code(&self, event: &str) -> String {
        self.send_code_to(EMAIL, event).await
    }

    pub async fn send_code_to(&self, email: &str, event: &str) -> String {
        let reply = self
            .post(
                "/api/experience/verification/verification-code",
                json!({"identifier": {"type": "email", "value": email}, "interactionEvent": event}),
            )
            .await;
        reply.expect(200)["verificationId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn verify_code(&self, verification_id: &str, code: &str) -> Reply {
        self.verify_code_to(EMAIL, verification_id, code).await
    }

    pub async fn verify_code_to(&self, email: &str, verification_id: &str, code: &str) -> Reply {
        self.post(
            "/api/experience/verification/verification-code/verify",
            json!({"identifier": {"type": "email", "value": email},
                   "verificationId": verification_id, "code": code}),
        )
        .await
    }
}

pub fn other_code(code: &str) -> &'static str {
    if code == "111111" { "222222" } else { "111111" }
}

#[tokio::test]
async fn people_register_sign_in_and_reset_their_password_with_mailed_codes() {
    let server = TestServer::start().await;
    let app = server
        .post(
            "/api/applications",
            json!({"name": "Shop", "type": "Traditional",
                   "oidcClientMetadata": {"redirectUris": [REDIRECT], "postLogoutRedirectUris": []}}),
        )
        .await;
    let app = app.expect(200)["id"].as_str().unwrap().to_owned();
    let experience = json!({
        "signUp": {"identifiers": ["email"], "password": true, "verify": true},
        "signIn": {"methods": [{"identifier": "email", "password": true,
                                "verificationCode": true, "isPasswordPrimary": true}]},
        "forgotPasswordMethods": ["EmailVerificationCode"],
    });
    // Without an Email connector, email sign-up is refused...
    server
        .patch("/api/sign-in-exp", experience.clone())
        .await
        .expect_error(400, "sign_in_experiences.enabled_connector_not_found");
    // ...and with one, the sign-in experience sees it.
    let mail = SmtpServer::start(Options::default());
    let connector = create_email_connector(&server, mail.config(templates("text/plain"))).await;
    server
        .patch("/api/sign-in-exp", experience)
        .await
        .expect(200);

    // Registration: code, identification (creates the user), the password, submission.
    let browser = Browser::new(&server);
    browser.start(&app, SCOPE, &[]).await;
    browser
        .put("/api/experience", json!({"interactionEvent": "Register"}))
        .await
        .expect(204);
    let verification_id = browser.send_code("Register").await;
    let received = mail.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["subject"], "Register code");
    assert_eq!(received[0]["rcpt_tos"], json!([EMAIL]));
    assert!(
        received[0]["body"].as_str().unwrap().contains("for Shop"),
        "the application's name: {}",
        received[0]["body"]
    );
    let code = code_in(&received[0]);
    browser
        .verify_code(&verification_id, other_code(&code))
        .await
        .expect_error(400, "verification_code.code_mismatch");
    browser
        .verify_code(&verification_id, &code)
        .await
        .expect(200);
    browser.identify_new_user(&verification_id).await;
    let missing = browser.post("/api/experience/submit", json!({})).await;
    missing.expect_error(422, "user.missing_profile");
    assert_eq!(missing.body["data"]["missingProfile"], json!(["password"]));
    browser
        .post(
            "/api/experience/profile",
            json!({"type": "password", "value": PASSWORD}),
        )
        .await
        .expect(204);
    browser.submit_and_resume(&server).await;
    let users = server
        .get(&format!(
            "/api/users?search.primaryEmail={EMAIL}&mode.primaryEmail=exact"
        ))
        .await;
    assert_eq!(users.expect(200).as_array().unwrap().len(), 1);

    // Sign-in by code; `ui_locales=ja` picks the Japanese template.
    let browser = Browser::new(&server);
    browser.start(&app, SCOPE, &[("ui_locales", "ja")]).await;
    let verification_id = browser.send_code("SignIn").await;
    let received = mail.wait_for(2, WAIT).await;
    assert_eq!(received[1]["subject"], "サインインコード");
    let code = code_in(&received[1]);
    browser
        .verify_code(&verification_id, &code)
        .await
        .expect(200);
    browser.identify(&verification_id).await;
    browser.submit_and_resume(&server).await;

    // A password reset, then a sign-in with the new password.
    let browser = Browser::new(&server);
    browser.start(&app, SCOPE, &[]).await;
    browser
        .put(
            "/api/experience",
            json!({"interactionEvent": "ForgotPassword"}),
        )
        .await
        .expect(204);
    let verification_id = browser.send_code("ForgotPassword").await;
    let received = mail.wait_for(3, WAIT).await;
    assert_eq!(received[2]["subject"], "ForgotPassword code");
    let code = code_in(&received[2]);
    browser
        .verify_code(&verification_id, &code)
        .await
        .expect(200);
    browser.identify(&verification_id).await;
    browser
        .put(
            "/api/experience/profile/password",
            json!({"password": PASSWORD}),
        )
        .await
        .expect_error(422, "user.same_password");
    browser
        .put(
            "/api/experience/profile/password",
            json!({"password": NEW_PASSWORD}),
        )
        .await
        .expect(204);
    browser
        .put("/api/experience", json!({"interactionEvent": "SignIn"}))
        .await
        .expect(204);
    let verified = browser
        .post(
            "/api/experience/verification/password",
            json!({"identifier": {"type": "email", "value": EMAIL}, "password": NEW_PASSWORD}),
        )
        .await;
    browser
        .identify(verified.expect(200)["verificationId"].as_str().unwrap())
        .await;
    browser.submit_and_resume(&server).await;

    // An email nobody has signs in to nobody.
    let browser = Browser::new(&server);
    browser.start(&app, SCOPE, &[]).await;
    let stranger = browser
        .post(
            "/api/experience/verification/verification-code",
            json!({"identifier": {"type": "email", "value": "nobody@example.com"},
                   "interactionEvent": "SignIn"}),
        )
        .await;
    let verification_id = stranger.expect(200)["verificationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let received = mail.wait_for(4, WAIT).await;
    let code = code_in(&received[3]);
    browser
        .post(
            "/api/experience/verification/verification-code/verify",
            json!({"identifier": {"type": "email", "value": "nobody@example.com"},
                   "verificationId": verification_id, "code": code}),
        )
        .await
        .expect(200);
    browser
        .post(
            "/api/experience/identification",
            json!({"verificationId": verification_id}),
        )
        .await
        .expect_error(404, "user.user_not_exist");

    // While passwords expire, the only way to reset one cannot be deleted.
    server
        .patch(
            "/api/sign-in-exp",
            json!({"passwordExpiration": {"enabled": true, "validPeriodDays": 90}}),
        )
        .await
        .expect(200);
    let connector_id = connector["id"].as_str().unwrap();
    server
        .delete(&format!("/api/connectors/{connector_id}"))
        .await
        .expect_error(
            422,
            "sign_in_experiences.password_expiration_requires_forgot_password",
        );

    crate::connectors::assert_no_secret_at_rest(&server, &mail.messages()).await;
    server.assert_replay_check();
}
