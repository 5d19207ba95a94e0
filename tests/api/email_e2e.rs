//! Logto's Python SDK in its Flask sample, driven by headless Chromium, with email codes read
//! from a real SMTP server (tests/e2e/test_email_flow.py): register by code, sign out, sign in
//! by code, reset the password by code. This test provisions idledger (application, Email
//! connector, email sign-up and sign-in) and checks what it recorded afterwards.

use serde_json::json;

use crate::connectors::{create_email_connector, templates};
use crate::sdk_e2e::{browser_test, free_port};
use crate::smtp_server::{Options, SmtpServer};
use crate::support::TestServer;

const EMAIL: &str = "sdk-mail@example.com";
const PASSWORD: &str = "Looking-Glass-1865";
const NEW_PASSWORD: &str = "Through-The-Mirror-1871";

#[tokio::test]
async fn logtos_python_sdk_registers_signs_in_and_resets_a_password_by_email_code() {
    let server = TestServer::start().await;
    let mail = SmtpServer::start(Options::default());
    create_email_connector(&server, mail.config(templates("text/plain"))).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({
                "signUp": {"identifiers": ["email"], "password": true, "verify": true},
                "signIn": {"methods": [{"identifier": "email", "password": true,
                                        "verificationCode": true, "isPasswordPrimary": true}]},
                "forgotPasswordMethods": ["EmailVerificationCode"],
            }),
        )
        .await
        .expect(200);
    let port = free_port();
    let (app_id, app_secret) = crate::sdk_e2e::flask_sample(&server, port).await;

    browser_test(
        &server,
        "test_email_flow.py",
        "email-e2e",
        &[
            ("APP_ID", &app_id),
            ("APP_SECRET", &app_secret),
            ("APP_PORT", &port.to_string()),
            ("MAIL_DIR", &mail.dir().to_string_lossy()),
            ("USER_EMAIL", EMAIL),
            ("USER_PASSWORD", PASSWORD),
            ("NEW_PASSWORD", NEW_PASSWORD),
        ],
    )
    .await;

    // One user, registered by email, signed in three times; three codes mailed to it.
    let users = server
        .get(&format!(
            "/api/users?search.primaryEmail={EMAIL}&mode.primaryEmail=exact"
        ))
        .await;
    let users = users.expect(200).as_array().unwrap().clone();
    assert_eq!(users.len(), 1, "{users:?}");
    let to_user: Vec<_> = mail
        .messages()
        .into_iter()
        .filter(|m| m["rcpt_tos"][0] == EMAIL)
        .collect();
    let subjects: Vec<_> = to_user.iter().map(|m| m["subject"].clone()).collect();
    assert_eq!(
        subjects,
        vec![
            json!("Register code"),
            json!("SignIn code"),
            json!("ForgotPassword code")
        ]
    );
    crate::connectors::assert_no_secret_at_rest(&server, &to_user).await;
    server.assert_replay_check();
}
