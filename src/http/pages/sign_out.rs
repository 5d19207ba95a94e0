//! The pages of RP-initiated logout (`/oidc/session/end`): the confirmation form, which submits
//! itself, and the page shown after a sign-out with nowhere to return to. Branded and worded
//! like the sign-in pages, in the language the logout request's `ui_locales` or the browser
//! asks for.

use askama::Template;
use aws_lc_rs::digest;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;

use super::experience::{Brand, brand};
use super::locale::{self, Lang, Phrases};
use crate::app::AppState;
use crate::http::error::ApiError;

/// The only script any page runs: submitting a form the server already filled in.
const AUTO_SUBMIT: &str = "document.forms[0].submit()";

/// How a page outside any interaction looks: its language and the tenant's branding.
pub struct Look {
    lang: Lang,
    brand: Brand,
}

/// Logto's order for a page of its own: `ui_locales`, then the browser's languages (when the
/// sign-in experience detects them), then the fallback language. An unreadable configuration
/// still gives a page, in the seed's branding.
pub async fn look(state: &AppState, ui_locales: Option<&str>, headers: &HeaderMap) -> Look {
    let config = async {
        let db = state.store.pool().get().await?;
        Ok::<_, ApiError>(projections::sign_in_experience::current(&db).await?)
    }
    .await
    .unwrap_or_default();
    let lang = locale::negotiate(
        ui_locales,
        None,
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        &config.language_info,
    );
    Look {
        lang,
        brand: brand(&config),
    }
}

struct Words {
    confirm_title: &'static str,
    confirm_message: &'static str,
    confirm_button: &'static str,
    done_title: &'static str,
    done_message: &'static str,
}

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &Words {
            confirm_title: "Signing out",
            confirm_message: "You are being signed out. If nothing happens, press the button.",
            confirm_button: "Sign out",
            done_title: "Signed out",
            done_message: "You have been signed out. You can close this window.",
        },
        Lang::Ja => &Words {
            confirm_title: "サインアウトしています",
            confirm_message: "サインアウトしています。画面が切り替わらない場合はボタンを押してください。",
            confirm_button: "サインアウト",
            done_title: "サインアウトしました",
            done_message: "サインアウトしました。このウィンドウを閉じてもかまいません。",
        },
    }
}

#[derive(Template)]
#[template(path = "sign_out.html")]
struct Confirmation<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    message: &'a str,
    action: &'a str,
    fields: &'a [(&'a str, &'a str)],
    button: &'a str,
    script: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOut<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    message: &'a str,
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => super::harden((StatusCode::OK, Html(html)).into_response()),
        Err(error) => {
            tracing::error!(%error, "page template failed");
            ApiError::internal().into_response()
        }
    }
}

/// The confirmation: a form the browser submits on its own (with JavaScript) or on a press of
/// the button (without). The script is allowed by its hash, so the CSP still forbids every
/// other script.
pub fn confirmation(look: &Look, action: &str, fields: &[(&str, &str)]) -> Response {
    let w = words(look.lang);
    let mut response = render(&Confirmation {
        lang: look.lang.tag(),
        title: w.confirm_title,
        t: look.lang.phrases(),
        brand: &look.brand,
        message: w.confirm_message,
        action,
        fields,
        button: w.confirm_button,
        script: AUTO_SUBMIT,
    });
    let hash = base64::engine::general_purpose::STANDARD
        .encode(digest::digest(&digest::SHA256, AUTO_SUBMIT.as_bytes()));
    if let Ok(value) = HeaderValue::from_str(&format!("{}; script-src 'sha256-{hash}'", super::CSP))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Shown after a sign-out that has nowhere to return to.
pub fn signed_out(look: &Look) -> Response {
    let w = words(look.lang);
    render(&SignedOut {
        lang: look.lang.tag(),
        title: w.done_title,
        t: look.lang.phrases(),
        brand: &look.brand,
        message: w.done_message,
    })
}
