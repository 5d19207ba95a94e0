//! Server-rendered pages: the sign-in experience, consent, errors and the OIDC form_post
//! response. Markup is escaped at every interpolation; pages work without JavaScript.

mod consent;
mod experience;
pub(crate) mod locale;
pub mod sign_out;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;

/// The hosted sign-in experience's pages.
pub fn routes() -> Router<AppState> {
    experience::routes().merge(consent::routes())
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}

/// Pages carry no third-party content: everything is ours, inline styles only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; \
                   form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title></head><body>{body}</body></html>",
        escape(title)
    );
    harden((status, Html(html)).into_response())
}

/// The headers every page carries: the CSP, no caching, no framing, no MIME sniffing, and no
/// `Referer` (page URLs carry interaction and one-time-token parameters).
pub fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error that cannot be sent back to the client application (unknown client, bad
/// redirect URI, lost interaction): shown to the person instead.
pub fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    page(
        status,
        "Something went wrong",
        &format!(
            "<main><h1>Something went wrong</h1><p>{}</p><p><code>{}</code></p></main>",
            escape(message),
            escape(code)
        ),
    )
}

/// OAuth 2.0 Form Post Response Mode: the browser posts the parameters to the client. Without
/// JavaScript the person presses the button.
pub fn form_post(action: &str, fields: &[(&str, &str)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            )
        })
        .collect();
    page(
        StatusCode::OK,
        "Continue",
        &format!(
            "<form method=\"post\" action=\"{}\">{inputs}\
             <noscript><p>Press continue to return to the application.</p></noscript>\
             <button type=\"submit\">Continue</button></form>",
            escape(action)
        ),
    )
}
