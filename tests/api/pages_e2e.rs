//! Screenshots of every hosted page (sign-in, register, consent, error, sign-out confirmation,
//! signed-out) in English and Japanese, taken in headless Chromium by
//! tests/e2e/test_pages.py, the same Playwright harness as the SDK test. The PNGs land in
//! `test-artifacts/screenshots/pages/`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::sdk_e2e::{free_port, python, workspace};
use crate::support::TestServer;

const USERNAME: &str = "page_reader";
const PASSWORD: &str = "Paper-Lantern-77";
/// Past this the browser test is stuck, and is killed with its children.
const DEADLINE: Duration = Duration::from_secs(240);
const PAGES: &[&str] = &[
    "sign-in",
    "register",
    "consent",
    "error",
    "sign-out-confirmation",
    "signed-out",
];

#[tokio::test]
async fn every_hosted_page_is_photographed_in_english_and_japanese() {
    let python = python();
    let server = TestServer::start().await;
    // Never served: the pages are photographed before anything returns to the application.
    let redirect_uri = format!("http://localhost:{}/callback", free_port());
    let app = server
        .post(
            "/api/applications",
            json!({
                "name": "Partner Portal",
                "type": "Traditional",
                "isThirdParty": true,
                "oidcClientMetadata": {"redirectUris": [redirect_uri], "postLogoutRedirectUris": []},
            }),
        )
        .await;
    let app_id = app.expect(200)["id"].as_str().unwrap().to_owned();
    server
        .post(
            "/api/users",
            json!({"username": USERNAME, "password": PASSWORD}),
        )
        .await
        .expect(200);

    let artifacts = workspace().join("test-artifacts");
    let screenshots = artifacts.join("screenshots");
    std::fs::create_dir_all(&artifacts).unwrap();
    let log_path = artifacts.join("pages-e2e-pytest.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "tests/e2e/test_pages.py"])
        .args(["-v", "-p", "no:cacheprovider", "--tb=short", "-rA"])
        .args(["-o", "faulthandler_timeout=120"])
        .current_dir(workspace())
        .env("IDLEDGER_ENDPOINT", &server.endpoint)
        .env("APP_ID", &app_id)
        .env("APP_REDIRECT_URI", &redirect_uri)
        .env("USER_USERNAME", USERNAME)
        .env("USER_PASSWORD", PASSWORD)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group, so the browser driver goes with it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run the browser test");
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    let status = tokio::time::timeout(DEADLINE, child.wait()).await;
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let report = std::fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.unwrap_or_else(|_| {
        panic!("the browser test was still running after {DEADLINE:?}:\n{report}")
    });
    assert!(
        status.expect("wait for the browser test").success(),
        "the browser test failed (server log in {}):\n{report}",
        server.data_dir.join("server.log").display()
    );

    for lang in ["en", "ja"] {
        for page in PAGES {
            let path = screenshots.join("pages").join(format!("{lang}-{page}.png"));
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{} is missing: {e}\n{report}", path.display()));
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is no PNG",
                path.display()
            );
        }
    }
    // The consent pages asked for real: each sign-in recorded, nothing consented.
    let events = server.events().await;
    let submitted = events
        .iter()
        .filter(|e| e.event_type == "interaction.submitted")
        .count();
    assert_eq!(submitted, 2, "one sign-in per language");
    assert!(
        !events
            .iter()
            .any(|e| e.event_type == "interaction.consented")
    );
}
