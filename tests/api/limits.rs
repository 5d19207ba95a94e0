//! Every input is bounded (issue 14, item 5): body size, header size and count, JSON depth,
//! page size, search value length and concurrent connections each end in a 4xx in Logto's
//! shape, and a client that dribbles its headers (slowloris) is cut off by the header read
//! timeout instead of holding a connection slot.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Reply, TestServer};

const STATUS_REQUEST: &[u8] = b"GET /api/status HTTP/1.1\r\nhost: localhost\r\n\r\n";

#[tokio::test]
async fn oversized_and_overdeep_inputs_get_4xx_in_logtos_shape() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let http = idledger::outbound::client_builder().build().unwrap();

    // A body over 1 MiB, to the Management API and to the token endpoint.
    let huge = json!({"name": "x".repeat(1 << 20), "type": "SPA"});
    let reply = server.post("/api/applications", huge).await;
    reply.expect_error(413, "guard.invalid_input");
    let form = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(1 << 20)
    );
    let reply = Reply::from(
        http.post(server.url("/oidc/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 413, "{}", reply.body);
    // The unread body is still on the connection: the refusal closes it, and says so, so the
    // client sends its next request on a fresh one.
    assert_eq!(reply.headers["connection"], "close");
    assert!(
        reply.body["error"].is_string() || reply.body["code"].is_string(),
        "{}",
        reply.body
    );

    // Headers: one 40 KiB value, then 150 small header lines.
    let big_header = Reply::from(
        http.get(server.url("/api/applications"))
            .bearer_auth(&token)
            .header("x-padding", "p".repeat(40 * 1024))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(big_header.headers["connection"], "close");
    big_header.expect_error(431, "request.headers_too_large");
    let mut many = http
        .get(server.url("/api/applications"))
        .bearer_auth(&token);
    for n in 0..150 {
        many = many.header(format!("x-h{n}"), "v");
    }
    Reply::from(many.send().await.unwrap())
        .await
        .expect_error(431, "request.headers_too_large");

    // JSON nested 40 deep in custom data.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = Value::Array(vec![deep]);
    }
    let reply = server
        .post(
            "/api/applications",
            json!({"name": "deep", "type": "SPA", "customData": {"d": deep}}),
        )
        .await;
    reply.expect_error(400, "guard.invalid_input");
    assert!(
        reply.body.to_string().contains("nested too deeply"),
        "{}",
        reply.body
    );

    // A body that is JSON but not an object: serde would fill a struct from an array by
    // position; Logto's guard refuses it, and nothing is created.
    for body in [json!([]), json!(["not-an-object", "SPA"]), json!("text")] {
        server
            .post("/api/applications", body)
            .await
            .expect_error(400, "guard.invalid_input");
    }
    server
        .post("/api/users", json!([]))
        .await
        .expect_error(400, "guard.invalid_input");

    // Page size and search value length.
    server
        .get("/api/users?page_size=101")
        .await
        .expect_error(400, "guard.invalid_pagination");
    server
        .get("/api/users?page=1&page_size=100")
        .await
        .expect(200);
    let long = "a".repeat(1025);
    server
        .get(&format!("/api/users?search={long}"))
        .await
        .expect_error(400, "request.invalid_input");
    server
        .get(&format!("/api/users?search={}", &long[..1024]))
        .await
        .expect(200);
}

/// Sends one request on a new connection and reads the whole answer (the server closes the
/// connection after it, or the read stops at the blank line and body of a keep-alive answer).
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        // A 204 has no body; a 429 closes the connection.
        if n == 0 || text.starts_with("HTTP/1.1 204") && text.contains("\r\n\r\n") {
            return text.into_owned();
        }
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_with_429_until_one_closes() {
    let server = TestServer::start_with(&[("IDLEDGER_MAX_CONNECTIONS", "4")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&server).await;
        let answer = exchange(&mut stream, STATUS_REQUEST).await;
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        held.push(stream);
    }
    let mut fifth = connect(&server).await;
    let answer = exchange(&mut fifth, STATUS_REQUEST).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "request.too_many_connections", "{answer}");
    assert!(body["message"].is_string());

    // One connection closes; its slot is free again once the server has seen it close.
    drop(held.pop());
    let mut attempts = 0;
    loop {
        let mut stream = connect(&server).await;
        let answer = exchange(&mut stream, STATUS_REQUEST).await;
        if answer.starts_with("HTTP/1.1 204") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        attempts += 1;
        assert!(
            attempts < 50,
            "the closed connection's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two slowloris clients take both connection slots, dribbling a header byte every 100 ms:
/// the header read timeout (1 s here) cuts them off long before they finish, and the slots
/// serve an honest client again.
#[tokio::test]
async fn a_client_dribbling_its_headers_cannot_hold_a_connection() {
    let server = TestServer::start_with(&[
        ("IDLEDGER_MAX_CONNECTIONS", "2"),
        ("IDLEDGER_HEADER_READ_TIMEOUT", "1"),
    ])
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let dribble = |address: String| async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET /api/status HTTP/1.1\r\nhost: localhost\r\nx-slow: {}\r\n\r\n",
            "s".repeat(200)
        );
        // 200+ bytes at one per 100 ms would take over 20 s.
        for (sent, byte) in request.bytes().enumerate() {
            if stream.write_all(&[byte]).await.is_err() {
                return (sent, String::new());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut buffer = [0_u8; 512];
            match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await {
                // The server closed the connection, or answered (408) before closing it.
                Ok(Ok(0) | Err(_)) => return (sent, String::new()),
                Ok(Ok(n)) => return (sent, String::from_utf8_lossy(&buffer[..n]).into_owned()),
                Err(_) => {}
            }
        }
        (request.len(), "finished".to_owned())
    };
    let slow = tokio::spawn({
        let first = dribble(address.clone());
        let second = dribble(address.clone());
        async move { tokio::join!(first, second) }
    });
    // While they hold both slots, an honest client is refused, not queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut honest = connect(&server).await;
    let answer = exchange(&mut honest, STATUS_REQUEST).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");

    let ((first_sent, first), (second_sent, second)) = slow.await.unwrap();
    for (sent, answer) in [(first_sent, first), (second_sent, second)] {
        assert!(sent < 60, "cut off after {sent} bytes, answer {answer:?}");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    let mut attempts = 0;
    loop {
        let mut stream = connect(&server).await;
        let answer = exchange(&mut stream, STATUS_REQUEST).await;
        if answer.starts_with("HTTP/1.1 204") {
            break;
        }
        attempts += 1;
        assert!(attempts < 50, "the slots never came back: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
