//! Server-rendered pages: the sign-in experience, consent, errors and the OIDC form_post
//! response. Markup is escaped at every interpolation; pages work without JavaScript.

mod experience;
mod locale;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;

/// The hosted sign-in experience's pages.
pub fn routes() -> Router<AppState> {
    experience::routes()
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

/// The headers every page carries: the CSP, no caching, no framing, no MIME sniffing.
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

/// The only script any page runs: submitting a form the server already filled in.
const AUTO_SUBMIT: &str = "document.forms[0].submit()";

/// A form the browser submits on its own (with JavaScript) or on a press of the button
/// (without). The script is allowed by its hash, so the CSP still forbids every other script.
pub fn auto_post(action: &str, fields: &[(&str, &str)], title: &str, button: &str) -> Response {
    use aws_lc_rs::digest;
    use base64::Engine;
    let hash = base64::engine::general_purpose::STANDARD
        .encode(digest::digest(&digest::SHA256, AUTO_SUBMIT.as_bytes()));
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
    let mut response = page(
        StatusCode::OK,
        title,
        &format!(
            "<main><h1>{}</h1><form method=\"post\" action=\"{}\">{inputs}\
             <button type=\"submit\" autofocus>{}</button></form></main>\
             <script>{AUTO_SUBMIT}</script>",
            escape(title),
            escape(action),
            escape(button)
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{CSP}; script-src 'sha256-{hash}'")) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Shown after a sign-out that has nowhere to return to.
pub fn signed_out() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        "<main><h1>Signed out</h1><p>You have been signed out.</p></main>",
    )
}
