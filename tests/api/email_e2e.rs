//! Logto's Python SDK in its Flask sample, driven by headless Chromium, with email codes read
//! from a real SMTP server (tests/e2e/test_email_flow.py): register by code, sign out, sign in
//! by code, reset the password by code. This test provisions idledger (application, Email
//! connector, email sign-up and sign-in) and checks what it recorded afterwards.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::connectors::{create_email_connector, templates};
use crate::smtp_server::{Options, SmtpServer};
use crate::support::TestServer;

const EMAIL: &str = "sdk-mail@example.com";
const PASSWORD: &str = "Looking-Glass-1865";
const NEW_PASSWORD: &str = "Through-The-Mirror-1871";
const DEADLINE: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

#[tokio::test]
async fn logtos_python_sdk_registers_signs_in_and_resets_a_password_by_email_code() {
    let python = workspace().join(".venv/bin/python");
    assert!(
        python.exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "run the suite through scripts/test (the venv and Chromium)"
    );
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

    let artifacts = workspace().join("test-artifacts");
    let screenshots = artifacts.join("screenshots-email");
    std::fs::create_dir_all(&artifacts).unwrap();
    let log_path = artifacts.join("email-e2e-pytest.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "tests/e2e/test_email_flow.py"])
        .args(["-v", "-p", "no:cacheprovider", "--tb=short", "-rA"])
        .args(["-o", "faulthandler_timeout=120"])
        .current_dir(workspace())
        .env("IDLEDGER_ENDPOINT", &server.endpoint)
        .env("APP_ID", &app_id)
        .env("APP_SECRET", &app_secret)
        .env("APP_PORT", port.to_string())
        .env("MAIL_DIR", mail.dir())
        .env("USER_EMAIL", EMAIL)
        .env("USER_PASSWORD", PASSWORD)
        .env("NEW_PASSWORD", NEW_PASSWORD)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run the browser test");
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    let status = tokio::time::timeout(DEADLINE, child.wait()).await;
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let report = std::fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.unwrap_or_else(|_| panic!("the browser test hung:\n{report}"));
    assert!(
        status.expect("wait for the browser test").success(),
        "the browser test failed (screenshots in {}, server log in {}):\n{report}",
        screenshots.display(),
        server.data_dir.join("server.log").display()
    );

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
