//! The server skeleton: health check, request ids, Logto's error shape everywhere, metrics.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Reply, TestServer};

#[tokio::test]
async fn status_is_204_and_request_ids_are_echoed_or_generated() {
    let server = TestServer::start().await;
    let generated = server
        .http
        .get(server.url("/api/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(generated.status(), StatusCode::NO_CONTENT);
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);

    let echoed = server
        .http
        .get(server.url("/api/status"))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "caller-chosen-id");

    // An id that could smuggle anything into logs is replaced.
    let replaced = server
        .http
        .get(server.url("/api/status"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "bad id with spaces");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_logtos_error_shape() {
    let server = TestServer::start().await;
    let missing = Reply::from(
        server
            .http
            .get(server.url("/api/no-such-route"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    missing.expect_error(404, "entity.not_found");
    let wrong_method = Reply::from(
        server
            .http
            .delete(server.url("/api/status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    wrong_method.expect_error(405, "request.method_not_allowed");
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    let server = TestServer::start().await;
    server
        .http
        .get(server.url("/api/status"))
        .send()
        .await
        .unwrap();
    let body = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("idledger_http_requests_total"), "{body}");
    assert!(body.contains("status=\"204\""), "{body}");
}

#[tokio::test]
async fn the_openapi_document_and_its_offline_page_are_public() {
    let server = TestServer::start().await;
    let spec: Value = server
        .http
        .get(server.url("/api/swagger.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/applications",
        "/api/users/{id}",
        "/api/roles",
        "/api/logs",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} undocumented");
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    let page = server
        .http
        .get(server.url("/api/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("GET /api/users/{id}"));
    assert!(!html.contains("cdn"), "no third-party assets");
}
