//! The listener: accepts connections and serves the router on each through hyper with the
//! settings `axum::serve` does not expose. A client must send a request's headers within the
//! header read timeout (a slow client, slowloris, cannot hold a connection), headers are bounded
//! in size and number, and at most `max_connections` connections are served at once: one more
//! is answered 429 in Logto's shape and closed instead of queueing without bound.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// Largest total size of a request's header lines (names and values) answered in Logto's shape.
/// Node, behind Logto, allows 16 KiB; twice that leaves room for large cookies and tokens.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header lines in one request answered in Logto's shape.
pub const MAX_HEADERS: usize = 100;
/// hyper's own read buffer and header count: past these it answers a bare 431 itself, before
/// the router (and so Logto's shape) is reached. They sit above the limits the router checks.
const HYPER_BUFFER: usize = 4 * MAX_HEADER_BYTES;
const HYPER_HEADERS: usize = 2 * MAX_HEADERS;
/// How long a refused connection may take to send its request before it is answered anyway.
const REFUSAL_READ: Duration = Duration::from_secs(1);
/// How long open connections may finish their requests after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// their requests for a bounded time.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HYPER_BUFFER)
        .max_headers(HYPER_HEADERS);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors or a connection reset before accept: the listener
                // itself is fine, so wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.oneshot(request).await.into_response()) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period");
    }
    Ok(())
}

/// The answer to a connection over the limit: 429 in Logto's shape, then close. The request
/// is read first (bounded in time and size) so that closing does not reset the connection
/// before the client has read the answer.
async fn refuse(mut stream: TcpStream) {
    let mut request = [0_u8; 8192];
    let _ = tokio::time::timeout(REFUSAL_READ, async {
        let mut read = 0;
        while read < request.len() {
            match stream.read(&mut request[read..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
            if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let body = too_many_connections_body();
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn too_many_connections_body() -> String {
    serde_json::json!({
        "code": "request.too_many_connections",
        "message": "The server is serving as many connections as it allows; retry later.",
    })
    .to_string()
}

/// Refuses requests whose headers exceed `MAX_HEADER_BYTES` or `MAX_HEADERS` (431), or whose
/// body exceeds `MAX_BODY_BYTES` (413), in Logto's shape. A declared `Content-Length` is refused
/// before the body is read; a chunked body over the limit is cut by `DefaultBodyLimit` in the
/// handler's extractor, whose plain-text rejection is given the same shape here.
pub async fn bounded(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADERS {
        let refusal = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request.headers_too_large",
            "The request headers are too large.",
        )
        .with_details(format!(
            "At most {MAX_HEADERS} header lines and {MAX_HEADER_BYTES} bytes are accepted."
        ))
        .into_response();
        return closing(refusal);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return body_too_large();
    }
    let response = next.run(request).await;
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && plain_text {
        return body_too_large();
    }
    response
}

fn body_too_large() -> Response {
    closing(
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "guard.invalid_input",
            "The request body is too large.",
        )
        .with_details(format!("At most {MAX_BODY_BYTES} bytes are accepted."))
        .into_response(),
    )
}

/// A refusal sent before the request's body was read ends the connection (the unread body is
/// still on it); saying so keeps a client from sending its next request on a closing socket.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
