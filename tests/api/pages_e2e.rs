//! Screenshots of every hosted page (sign-in, register, consent, error, sign-out confirmation,
//! signed-out) in English and Japanese, taken in headless Chromium by
//! tests/e2e/test_pages.py, the same Playwright harness as the SDK test. The PNGs land in
//! `test-artifacts/screenshots/pages/`.

use serde_json::json;

use crate::sdk_e2e::{browser_test, free_port};
use crate::support::TestServer;

const USERNAME: &str = "page_reader";
const PASSWORD: &str = "Paper-Lantern-77";
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

    let screenshots = browser_test(
        &server,
        "test_pages.py",
        "pages",
        &[
            ("APP_ID", &app_id),
            ("APP_REDIRECT_URI", &redirect_uri),
            ("USER_USERNAME", USERNAME),
            ("USER_PASSWORD", PASSWORD),
        ],
    )
    .await;

    for lang in ["en", "ja"] {
        for page in PAGES {
            let path = screenshots.join(format!("{lang}-{page}.png"));
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
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
