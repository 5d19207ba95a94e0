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
/// request may rotate the signing keys). JUnit and JSON reports go to
/// `target/schemathesis/<name>/`; the counts are printed as a `schemathesis:` line.
async fn run(
    server: &TestServer,
    name: &str,
    paths: Option<&str>,
    max_examples: u32,
) -> (u64, String) {
    let reports = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/schemathesis")
        .join(name);
    let started = std::time::Instant::now();
    // Each run in a folder of its own: two runs at once must not share Hypothesis' example
    // database and caches (`.hypothesis/` in the working directory).
    let workdir = std::env::temp_dir().join(format!(
        "idledger-schemathesis-{}-{name}",
        std::process::id()
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
        .args(["--report", "junit,json", "--report-dir"])
        .arg(&reports)
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
    let (generated, passed) = case_counts(&report);
    println!(
        "schemathesis: {name}: {generated} cases generated, {passed} passed, {} examples per \
         operation at most, {:.0} s; reports in {}",
        max_examples,
        started.elapsed().as_secs_f64(),
        reports.display()
    );
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
    let (generated, report) = run(&server, "applications", Some("^/api/applications"), 40).await;
    assert!(generated >= 500, "expected hundreds of cases: {report}");
}

/// Every documented operation: the Management API with a token, the end-user APIs (Experience,
/// Account, verification records) without their credentials, for their refusals. The suite runs
/// a bounded number of examples per operation; `SCHEMATHESIS_MAX_EXAMPLES=100` gives the
/// ≥ 10 000-case run the README reports.
#[tokio::test]
async fn the_whole_management_api_survives_generated_requests() {
    let server = TestServer::start().await;
    let max_examples: u32 = std::env::var("SCHEMATHESIS_MAX_EXAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    let operations = documented_operations(&server).await;
    let (generated, report) = run(&server, "whole", None, max_examples).await;
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

/// Every path `/api/swagger.json` documents is routed: a method it does not document gets the
/// router's 405, never the fallback 404 a path the server does not know would get. Together with
/// the end-user APIs' own description (`src/http/end_user_api.rs`) this keeps the document from
/// naming routes that moved or never existed.
#[tokio::test]
async fn every_documented_path_is_routed() {
    let server = TestServer::start().await;
    let document = server.get("/api/swagger.json").await;
    let paths = document.expect(200)["paths"]
        .as_object()
        .expect("paths")
        .clone();
    for required in [
        "/api/experience/submit",
        "/api/my-account",
        "/api/verifications/password",
    ] {
        assert!(paths.contains_key(required), "{required} is documented");
    }
    for (path, item) in &paths {
        let concrete = path.replace('{', "x").replace('}', "");
        let undocumented = ["put", "patch", "delete", "post", "get"]
            .into_iter()
            .find(|method| !item.as_object().expect("path item").contains_key(*method))
            .expect("a path documents at most four methods");
        let method = reqwest::Method::from_bytes(undocumented.to_uppercase().as_bytes()).unwrap();
        let reply = server.call(method, &concrete, None).await;
        assert_eq!(
            reply.status.as_u16(),
            405,
            "{undocumented} {path} should be 405 on a routed path: {}",
            reply.body
        );
    }
}
