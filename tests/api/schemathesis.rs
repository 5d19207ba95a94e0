//! Property-based testing of the Management API from its own OpenAPI document: generated
//! requests (valid and invalid) must never get a server error, an undocumented status or a
//! response that violates the schema.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{BOOTSTRAP_ID, BOOTSTRAP_SECRET, MANAGEMENT_API, TestServer};

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

/// What one schemathesis run printed: `(generated, passed)` from its summary line
/// ("  1538 generated, 1538 passed").
fn case_counts(report: &str) -> (u64, u64) {
    let counts: Vec<u64> = report
        .lines()
        .find(|line| line.contains(" generated, "))
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match counts[..] {
        [generated, passed, ..] => (generated, passed),
        _ => (0, 0),
    }
}

/// Runs schemathesis against the server's own document; `paths` selects operations by regular
/// expression, `max_examples` per operation. Every request carries a Management API token from
/// `tests/schemathesis/auth.py`, which fetches a new one when one is refused (a generated
/// request may rotate the signing keys).
async fn run(server: &TestServer, paths: Option<&str>, max_examples: u32) -> (u64, String) {
    // Each run in a folder of its own: two runs at once must not share Hypothesis' example
    // database and caches (`.hypothesis/` in the working directory).
    let workdir = std::env::temp_dir().join(format!(
        "idledger-schemathesis-{}-{}",
        std::process::id(),
        paths.map_or(0, str::len)
    ));
    std::fs::create_dir_all(&workdir).expect("schemathesis working folder");
    let mut command = Command::new(schemathesis());
    command
        .current_dir(&workdir)
        .arg("--config-file")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(server.url("/api/swagger.json"))
        .args(["--url", &server.base])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
        ])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--workers", "2", "--seed", "20261123"])
        // Password hashing in a debug build on a busy machine can take seconds.
        .args(["--request-timeout", "30"])
        .env("NO_COLOR", "1")
        .env(
            "SCHEMATHESIS_HOOKS",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/auth.py"),
        )
        .env("IDLEDGER_TOKEN_URL", server.url("/oidc/token"))
        .env("IDLEDGER_CLIENT_ID", BOOTSTRAP_ID)
        .env("IDLEDGER_CLIENT_SECRET", BOOTSTRAP_SECRET)
        .env("IDLEDGER_RESOURCE", MANAGEMENT_API);
    if let Some(paths) = paths {
        command.args(["--include-path-regex", paths]);
    }
    let output = command.output().expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (generated, passed) = case_counts(&report);
    assert_eq!(generated, passed, "every generated case passes: {report}");
    // Schemathesis only warns when every answer was 401/403: the token must have worked.
    assert!(
        !report.contains("Authentication failed"),
        "requests were refused as unauthenticated: {report}"
    );
    (generated, report)
}

#[tokio::test]
async fn the_application_routes_survive_generated_requests() {
    let server = TestServer::start().await;
    let (generated, report) = run(&server, Some("^/api/applications"), 40).await;
    assert!(generated >= 500, "expected hundreds of cases: {report}");
}

/// Every documented operation. The suite runs a bounded number of examples per operation;
/// `SCHEMATHESIS_MAX_EXAMPLES=100` gives the ≥ 10 000-case run the README reports.
#[tokio::test]
async fn the_whole_management_api_survives_generated_requests() {
    let server = TestServer::start().await;
    let max_examples: u32 = std::env::var("SCHEMATHESIS_MAX_EXAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    let operations = documented_operations(&server).await;
    let (generated, report) = run(&server, None, max_examples).await;
    assert!(
        report.contains(&format!("{operations} selected"))
            || report.contains(&format!("{operations} total")),
        "every one of the {operations} documented operations is tested: {report}"
    );
    assert!(
        generated >= u64::from(max_examples) * operations as u64 / 2,
        "expected about {max_examples} cases per operation: {report}"
    );
    println!("{report}");
}

async fn documented_operations(server: &TestServer) -> usize {
    let document = server.get("/api/swagger.json").await;
    let document = document.expect(200);
    document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().expect("path item").len())
        .sum()
}
