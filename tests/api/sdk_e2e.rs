//! Logto's Python SDK in its Flask sample, driven by headless Chromium, against the real server:
//! sign in, sign up, sign out, Japanese pages (tests/e2e/test_sdk_flow.py). This test provisions
//! the application and the user through the Management API, runs the browser test with the
//! venv's Python, then checks what the server recorded.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestServer;

const USERNAME: &str = "sdk_alice";
const NAME: &str = "Alice Liddell";
const PASSWORD: &str = "Looking-Glass-1865";
const SIGNUP_USERNAME: &str = "sdk_newcomer";
const SIGNUP_PASSWORD: &str = "Rabbit-Hole-1951";
/// The browser test takes seconds; past this it is stuck, and is killed with its children.
const DEADLINE: Duration = Duration::from_secs(300);

pub(crate) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run the suite through scripts/test, which installs tests/requirements.txt",
        path.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run the suite through scripts/test (scripts/ensure-browser)"
    );
    path
}

/// A port nobody listens on now, for the sample app (its URIs must be registered first).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// The SDK's Flask sample as a Traditional application whose URIs are on `port`: its id and
/// secret.
pub(crate) async fn flask_sample(server: &TestServer, port: u16) -> (String, String) {
    let app = server
        .post(
            "/api/applications",
            json!({
                "name": "Flask sample",
                "type": "Traditional",
                "oidcClientMetadata": {
                    "redirectUris": [format!("http://localhost:{port}/callback")],
                    "postLogoutRedirectUris": [format!("http://localhost:{port}/")],
                },
            }),
        )
        .await;
    let app_id = app.expect(200)["id"].as_str().unwrap().to_owned();
    let secrets = server
        .get(&format!("/api/applications/{app_id}/secrets"))
        .await;
    let app_secret = secrets.expect(200)[0]["value"]
        .as_str()
        .expect("the application's secret")
        .to_owned();
    (app_id, app_secret)
}

/// Runs the browser test `tests/e2e/<file>` with the venv's Python against `server` (its
/// endpoint in `IDLEDGER_ENDPOINT`, plus `vars`), screenshots under
/// `test-artifacts/screenshots/<name>` and pytest's output in `test-artifacts/<name>-pytest.log`;
/// fails with that output unless every test passed within `DEADLINE`, prints it otherwise.
/// Returns the screenshots' folder.
pub(crate) async fn browser_test(
    server: &TestServer,
    file: &str,
    name: &str,
    vars: &[(&str, &str)],
) -> PathBuf {
    let python = python();
    let artifacts = workspace().join("test-artifacts");
    let screenshots = artifacts.join("screenshots").join(name);
    std::fs::create_dir_all(&artifacts).unwrap();
    let log_path = artifacts.join(format!("{name}-pytest.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(&python)
        .args(["-m", "pytest", &format!("tests/e2e/{file}")])
        .args(["-v", "-p", "no:cacheprovider", "--tb=short", "-rA"])
        // A stuck test prints every thread's stack into the log before the deadline.
        .args(["-o", "faulthandler_timeout=120"])
        .current_dir(workspace())
        .env("IDLEDGER_ENDPOINT", &server.endpoint)
        .envs(vars.iter().copied())
        .env("SCREENSHOT_DIR", &screenshots)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group, so the sample app and the browser driver go with it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run the browser test");
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    let status = tokio::time::timeout(DEADLINE, child.wait()).await;
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let report = std::fs::read_to_string(&log_path).unwrap_or_default();
    let where_to_look = format!(
        "screenshots in {}, server log in {}",
        screenshots.display(),
        server.data_dir.join("server.log").display()
    );
    let status = status.unwrap_or_else(|_| {
        panic!("the browser test was still running after {DEADLINE:?} ({where_to_look}):\n{report}")
    });
    assert!(
        status.expect("wait for the browser test").success(),
        "the browser test failed ({where_to_look}):\n{report}"
    );
    println!("{report}");
    screenshots
}

#[tokio::test]
async fn logtos_python_sdk_signs_in_up_and_out_in_a_browser() {
    let server = TestServer::start().await;
    let port = free_port();
    let (app_id, app_secret) = crate::sdk_e2e::flask_sample(&server, port).await;
    let user = server
        .post(
            "/api/users",
            json!({"username": USERNAME, "name": NAME, "password": PASSWORD}),
        )
        .await;
    let user_id = user.expect(200)["id"].as_str().unwrap().to_owned();

    browser_test(
        &server,
        "test_sdk_flow.py",
        "sdk-e2e",
        &[
            ("APP_ID", &app_id),
            ("APP_SECRET", &app_secret),
            ("APP_PORT", &port.to_string()),
            ("USER_USERNAME", USERNAME),
            ("USER_NAME", NAME),
            ("USER_PASSWORD", PASSWORD),
            ("SIGNUP_USERNAME", SIGNUP_USERNAME),
            ("SIGNUP_PASSWORD", SIGNUP_PASSWORD),
        ],
    )
    .await;

    // The sign-up variant created exactly one new user, with the username it typed.
    let found = server
        .get(&format!(
            "/api/users?search.username={SIGNUP_USERNAME}&mode.username=exact"
        ))
        .await;
    let found = found.expect(200).as_array().unwrap().clone();
    assert_eq!(found.len(), 1, "registered user: {found:?}");
    assert_ne!(found[0]["id"], user_id);
    assert!(
        found[0]["lastSignInAt"].is_number(),
        "the new user signed in: {}",
        found[0]
    );

    // The existing user's sign-ins are in the activity log with the browser's address and agent,
    // and the code exchange with the SDK's.
    let logs = server
        .get(&format!("/api/logs?userId={user_id}&page_size=100"))
        .await;
    let logs = logs.expect(200).as_array().unwrap().clone();
    let keys: Vec<&str> = logs.iter().filter_map(|l| l["key"].as_str()).collect();
    let entry = |key: &str| -> Vec<&Value> { logs.iter().filter(|l| l["key"] == key).collect() };
    let sign_ins = entry("Interaction.SignIn.Submit");
    assert!(!sign_ins.is_empty(), "no sign-in logged: {keys:?}");
    for sign_in in &sign_ins {
        let payload = &sign_in["payload"];
        assert_eq!(payload["result"], "Success", "{sign_in}");
        assert_eq!(payload["ip"], "127.0.0.1", "{sign_in}");
        assert_eq!(payload["applicationId"], app_id, "{sign_in}");
        assert!(
            payload["userAgent"]
                .as_str()
                .is_some_and(|ua| ua.contains("Chrome")),
            "the browser's user agent: {sign_in}"
        );
    }
    // The SDK's back channel redeemed each code (sign-in, sign-up, Japanese sign-in), as the
    // log records it; the existing user's two are in their activity log too.
    let exchanges = entry("ExchangeTokenBy.AuthorizationCode");
    assert_eq!(exchanges.len(), 2, "code exchanges logged: {keys:?}");
    for exchange in &exchanges {
        let payload = &exchange["payload"];
        assert_eq!(payload["applicationId"], app_id, "{exchange}");
        assert!(
            payload["userAgent"]
                .as_str()
                .is_some_and(|ua| ua.contains("aiohttp")),
            "the SDK's user agent: {exchange}"
        );
    }
    let redeemed: Vec<_> = server
        .recorded_events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "grant.code_redeemed")
        .collect();
    assert_eq!(redeemed.len(), 3, "code exchanges: {redeemed:?}");
    for event in &redeemed {
        assert_eq!(event.metadata.ip.as_deref(), Some("127.0.0.1"), "{event:?}");
        assert!(
            event
                .metadata
                .user_agent
                .as_deref()
                .is_some_and(|ua| ua.contains("aiohttp")),
            "the SDK, not the browser, exchanged the code: {event:?}"
        );
    }

    server.assert_replay_check();
}
