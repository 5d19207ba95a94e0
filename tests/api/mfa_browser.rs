//! The second factor in a real browser (tests/e2e/test_mfa.py): headless Chromium, Logto's Python
//! SDK sample as the application, idledger's hosted pages. The user enrols a TOTP from the QR
//! code the page shows, signs out, and is asked for the TOTP after the password (a wrong code
//! refused, the right one accepted) and after a magic link (a backup code accepted, then refused
//! the second time). This test provisions the server, runs the browser, then checks what the
//! log recorded of it.

use serde_json::json;

use crate::sdk_e2e::{browser_test, flask_sample, free_port};
use crate::support::TestServer;

const USERNAME: &str = "mfa_ada";
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "Analytical-Engine-1843";

/// The results of the log entries keyed `key`, as many as there are.
async fn results(server: &TestServer, key: &str) -> Vec<String> {
    let logs = server.get(&format!("/api/logs?logKey={key}")).await;
    let mut results: Vec<String> = logs
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["payload"]["ip"], "127.0.0.1", "{entry}");
            assert!(
                entry["payload"]["userAgent"]
                    .as_str()
                    .is_some_and(|agent| agent.contains("Chrome")),
                "the browser's user agent: {entry}"
            );
            entry["payload"]["result"].as_str().unwrap().to_owned()
        })
        .collect();
    results.sort();
    results
}

#[tokio::test]
async fn a_browser_enrols_a_totp_from_the_qr_code_and_is_asked_for_it_after_every_first_factor() {
    let server = TestServer::start().await;
    let port = free_port();
    let (app_id, app_secret) = flask_sample(&server, port).await;
    server
        .patch(
            "/api/sign-in-exp",
            json!({"mfa": {"factors": ["Totp", "BackupCode"], "policy": "Mandatory"}}),
        )
        .await
        .expect(200);
    let user = server
        .post(
            "/api/users",
            json!({"username": USERNAME, "primaryEmail": EMAIL, "password": PASSWORD}),
        )
        .await;
    let user_id = user.expect(200)["id"].as_str().unwrap().to_owned();
    let token = server
        .post("/api/one-time-tokens", json!({"email": EMAIL}))
        .await;
    let token = token.expect(201)["token"].as_str().unwrap().to_owned();

    browser_test(
        &server,
        "test_mfa.py",
        "mfa-e2e",
        &[
            ("APP_ID", &app_id),
            ("APP_SECRET", &app_secret),
            ("APP_PORT", &port.to_string()),
            ("USER_USERNAME", USERNAME),
            ("USER_PASSWORD", PASSWORD),
            ("MAGIC_TOKEN", &token),
            ("MAGIC_EMAIL", EMAIL),
        ],
    )
    .await;

    // The user holds what the pages enrolled: one TOTP, and backup codes less the one used.
    let held = server
        .get(&format!("/api/users/{user_id}/mfa-verifications"))
        .await;
    let held = held.expect(200).as_array().unwrap().clone();
    let kinds: Vec<&str> = held.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(kinds.len(), 2, "{held:?}");
    assert!(
        kinds.contains(&"Totp") && kinds.contains(&"BackupCode"),
        "{held:?}"
    );
    let codes = held.iter().find(|f| f["type"] == "BackupCode").unwrap();
    assert_eq!(
        codes["remainCodes"],
        json!(8),
        "two backup codes were used: {codes}"
    );

    // The browser's second factors are in the log: the enrolment's code and the right code
    // passed, the wrong one failed; a backup code passed twice and was refused once.
    let totp = results(&server, "Interaction.SignIn.Verification.Totp.Submit").await;
    assert_eq!(totp, ["Error", "Success", "Success"]);
    let backup = results(&server, "Interaction.SignIn.Verification.BackupCode.Submit").await;
    assert_eq!(backup, ["Error", "Success", "Success"]);
    // Four sign-ins reached the application: the enrolment, the password, the magic link, the
    // password with a backup code.
    let sign_ins = results(&server, "Interaction.SignIn.Submit").await;
    assert_eq!(sign_ins, ["Success"; 4]);
    server.assert_replay_check();
}
