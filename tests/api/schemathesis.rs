//! Property-based testing of the Management API from its own OpenAPI document: generated
//! requests (valid and invalid) must never get a server error, an undocumented status or a
//! response that violates the schema.

use std::path::PathBuf;
use std::process::Command;

use crate::support::TestServer;

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/schemathesis")
        });
    assert!(
        path.exists(),
        "{} is missing: run the suite through scripts/test, which installs tests/requirements.txt",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_application_routes_survive_generated_requests() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let output = Command::new(schemathesis())
        .arg("run")
        .arg(server.url("/api/swagger.json"))
        .args(["--url", &server.base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--include-path-regex", "^/api/applications"])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
        ])
        .args([
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--seed",
            "20261123",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "  1538 generated, 1538 passed"
    let counts: Vec<u64> = report
        .lines()
        .find(|line| line.contains(" generated, "))
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] == counts[1] && counts[0] >= 500,
        "expected hundreds of cases, all passed: {report}"
    );
}
