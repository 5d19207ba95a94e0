//! The admin console at `/console`: server-rendered pages (askama templates under
//! `templates/console/`) for the operators who manage users, in English and Japanese. The
//! operator signs in through our own OIDC provider (authorization code + PKCE as the seeded
//! first-party client `idledger-console`, asking for the Management API's `all` scope, which only
//! holders of the console administrator role get), the access token stays sealed in a cookie,
//! and every read or change is a call to the public Management API (`api.rs`). Pages work
//! without JavaScript; `console.js` only adds copy buttons.

mod api;
mod session;
mod settings;
mod text;
mod user_tabs;
mod users;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use domain::resource::{MANAGEMENT_API_INDICATOR, MANAGEMENT_API_SCOPE};
use domain::sign_in_experience::LanguageInfo;
use serde::Deserialize;
use time::OffsetDateTime;

use self::api::Api;
use self::session::{LANG_COOKIE, SESSION_COOKIE, SIGN_IN_COOKIE, Session, SignIn};
use self::text::Text;
use super::pages::locale::{self, Lang};
use crate::app::AppState;
use crate::bootstrap::CONSOLE_APP_ID;
use crate::http::extract::RequestContext;
use crate::telemetry::RequestId;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/users") }))
        .route("/console/sign-in", get(sign_in))
        .route("/console/callback", get(callback))
        .route("/console/sign-out", post(sign_out))
        .route("/console/language", post(choose_language))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .merge(users::routes())
        .merge(user_tabs::routes())
        .merge(settings::routes())
        .layer(axum::middleware::from_fn(show_failures))
}

/// Only our own stylesheet and script; forms post only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data: https:; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

fn harden(mut response: Response) -> Response {
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
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("console.js"),
    )
        .into_response()
}

/// Why a console page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the session ended")]
    SignedOut,
    #[error("the Management API answered {status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("the Management API could not be reached: {0}")]
    Unreachable(String),
    #[error("the Management API answered something unexpected: {0}")]
    Unexpected(String),
    #[error("the token endpoint refused the code: {0}")]
    SignInFailed(String),
    #[error("the form's CSRF token does not match the session")]
    Forged,
    #[error("the signed-in account lacks the Management API's `all` scope")]
    NotAdmin,
    #[error("a page could not be rendered: {0}")]
    Render(#[from] askama::Error),
    #[error(transparent)]
    Session(#[from] session::SessionError),
}

/// A failure on its way out: `show_failures` renders it in the request's language.
#[derive(Clone)]
struct Failure {
    not_admin: bool,
    message: String,
    code: String,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            ConsoleError::SignedOut => return Redirect::to("/console/sign-in").into_response(),
            ConsoleError::Api {
                status,
                code,
                message,
            } => (*status, code.clone(), message.clone()),
            ConsoleError::Forged => (
                StatusCode::FORBIDDEN,
                "console.csrf".to_owned(),
                "The form is out of date; reload the page and try again.".to_owned(),
            ),
            ConsoleError::NotAdmin => (
                StatusCode::FORBIDDEN,
                "auth.forbidden".to_owned(),
                String::new(),
            ),
            ConsoleError::SignInFailed(_) => (
                StatusCode::BAD_REQUEST,
                "console.sign_in_failed".to_owned(),
                "The sign-in could not be completed; please sign in again.".to_owned(),
            ),
            ConsoleError::Unreachable(_)
            | ConsoleError::Unexpected(_)
            | ConsoleError::Render(_)
            | ConsoleError::Session(_) => {
                tracing::error!(error = %self, "console page failed");
                (
                    StatusCode::BAD_GATEWAY,
                    "console.internal".to_owned(),
                    "The console could not complete the request.".to_owned(),
                )
            }
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(Failure {
            not_admin: matches!(self, ConsoleError::NotAdmin),
            message,
            code,
        });
        response
    }
}

#[derive(Template)]
#[template(path = "console/failure.html")]
struct FailurePage<'a> {
    lang: &'static str,
    t: &'static Text,
    title: &'a str,
    message: &'a str,
    code: &'a str,
    not_admin: bool,
}

async fn show_failures(request: Request, next: Next) -> Response {
    let lang = language(request.headers());
    let response = next.run(request).await;
    let Some(failure) = response.extensions().get::<Failure>().cloned() else {
        return response;
    };
    let t = text::text(lang);
    let page = FailurePage {
        lang: lang.tag(),
        t,
        title: if failure.not_admin {
            t.not_admin_title
        } else {
            t.error_title
        },
        message: if failure.not_admin {
            t.not_admin
        } else {
            &failure.message
        },
        code: &failure.code,
        not_admin: failure.not_admin,
    };
    match page.render() {
        Ok(html) => harden((response.status(), Html(html)).into_response()),
        Err(error) => {
            tracing::error!(%error, "console failure page failed");
            response.status().into_response()
        }
    }
}

/// The operator's choice (a cookie), else the browser's languages, else English.
fn language(headers: &HeaderMap) -> Lang {
    let jar = CookieJar::from_headers(headers);
    match jar.get(LANG_COOKIE).map(Cookie::value) {
        Some("ja") => Lang::Ja,
        Some("en") => Lang::En,
        _ => locale::negotiate(
            None,
            None,
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
            &LanguageInfo {
                auto_detect: true,
                fallback_language: "en".to_owned(),
            },
        ),
    }
}

fn now_s() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn cookie(state: &AppState, name: &'static str, value: String, max_age_s: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .secure(state.endpoint.starts_with("https://"))
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age_s))
        .build()
}

/// A signed-in operator's request: language, session and the Management API as them.
pub struct Console {
    pub lang: Lang,
    pub t: &'static Text,
    pub session: Session,
    pub api: Api,
}

impl Console {
    /// What every page's frame shows.
    fn frame(&self, section: Section) -> Frame {
        Frame {
            lang: self.lang.tag(),
            t: self.t,
            operator: self.session.display_name.clone(),
            csrf: self.session.csrf.clone(),
            section,
        }
    }

    fn check(&self, csrf: &str) -> Result<(), ConsoleError> {
        if self.session.csrf_matches(csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Forged)
        }
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Console, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let session = jar
            .get(SESSION_COOKIE)
            .and_then(|c| session::open_session(state.store.keyring(), c.value(), now_s()));
        let Some(session) = session else {
            let next = parts
                .uri
                .path_and_query()
                .map_or("/console/users", |p| p.as_str());
            let to = format!("/console/sign-in?{}", encode(&[("next", next)]));
            return Err(Redirect::to(&to).into_response());
        };
        let lang = language(&parts.headers);
        // The operator's own address, as any API request of theirs would record it.
        let operator_ip = RequestContext::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|context| context.ip);
        let api = Api::new(
            &state.loopback,
            &session.token,
            parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            parts.extensions.get::<RequestId>().map(|id| id.0.clone()),
        )
        .relaying(operator_ip, state.relay_key.clone());
        Ok(Console {
            lang,
            t: text::text(lang),
            session,
            api,
        })
    }
}

/// The console's sections, for the navigation's `aria-current`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Users,
    OneTimeTokens,
    Connectors,
    SignInExperience,
}

/// The frame around every signed-in page: header, navigation, language and sign-out forms.
pub struct Frame {
    pub lang: &'static str,
    pub t: &'static Text,
    pub operator: String,
    pub csrf: String,
    pub section: Section,
}

fn render(page: &impl Template) -> Result<Response, ConsoleError> {
    Ok(harden(Html(page.render()?).into_response()))
}

/// A query string.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize)]
struct SignInQuery {
    next: Option<String>,
}

/// Starts the operator's sign-in at our own authorization endpoint.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(query): Query<SignInQuery>,
) -> Result<Response, ConsoleError> {
    let attempt = SignIn {
        verifier: session::random_token()?,
        state: session::random_token()?,
        next: session::safe_next(query.next.as_deref()),
    };
    let sealed = session::seal_sign_in(state.store.keyring(), &attempt)?;
    let scope = format!("openid profile {MANAGEMENT_API_SCOPE}");
    let redirect_uri = format!("{}/console/callback", state.endpoint);
    let challenge = session::code_challenge(&attempt.verifier);
    let query = encode(&[
        ("client_id", CONSOLE_APP_ID),
        ("redirect_uri", &redirect_uri),
        ("response_type", "code"),
        ("scope", &scope),
        ("resource", MANAGEMENT_API_INDICATOR),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", &attempt.state),
        ("ui_locales", language(&headers).tag()),
    ]);
    let jar = jar.add(cookie(&state, SIGN_IN_COOKIE, sealed, 600));
    Ok((
        jar,
        see_other(&format!("{}/oidc/auth?{query}", state.endpoint)),
    )
        .into_response())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// The authorization endpoint's answer: redeem the code, keep the token sealed, go on.
async fn callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, ConsoleError> {
    let attempt = jar
        .get(SIGN_IN_COOKIE)
        .and_then(|c| session::open_sign_in(state.store.keyring(), c.value()));
    let (Some(attempt), Some(code), Some(returned_state)) = (attempt, query.code, query.state)
    else {
        return Err(ConsoleError::SignInFailed(
            "no sign-in under way".to_owned(),
        ));
    };
    if attempt.state != returned_state {
        return Err(ConsoleError::SignInFailed("state mismatch".to_owned()));
    }
    let redirect_uri = format!("{}/console/callback", state.endpoint);
    let tokens = api::redeem_code(
        &state.loopback,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CONSOLE_APP_ID),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &attempt.verifier),
            ("resource", MANAGEMENT_API_INDICATOR),
        ],
    )
    .await?;
    let jar = jar.remove(Cookie::build(SIGN_IN_COOKIE).path("/console"));
    if !tokens
        .scope
        .split(' ')
        .any(|scope| scope == MANAGEMENT_API_SCOPE)
    {
        return Ok((jar, ConsoleError::NotAdmin).into_response());
    }
    let user_id = session::jwt_subject(&tokens.access_token)
        .ok_or_else(|| ConsoleError::SignInFailed("access token without subject".to_owned()))?;
    let api = Api::new(&state.loopback, &tokens.access_token, None, None);
    let me: users::User = api.get(&format!("/api/users/{user_id}")).await?;
    let session = Session {
        expires_at: now_s() + tokens.expires_in,
        display_name: me.display_name(),
        token: tokens.access_token,
        user_id,
        csrf: session::random_token()?,
    };
    let sealed = session::seal_session(state.store.keyring(), &session)?;
    let jar = jar.add(cookie(&state, SESSION_COOKIE, sealed, tokens.expires_in));
    Ok((jar, see_other(&attempt.next)).into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Forgets the session here, then ends the OIDC session at the provider.
async fn sign_out(
    State(state): State<AppState>,
    console: Console,
    jar: CookieJar,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/console"));
    let query = encode(&[
        ("client_id", CONSOLE_APP_ID),
        (
            "post_logout_redirect_uri",
            &format!("{}/console", state.endpoint),
        ),
    ]);
    Ok((
        jar,
        see_other(&format!("{}/oidc/session/end?{query}", state.endpoint)),
    )
        .into_response())
}

#[derive(Deserialize)]
struct LanguageForm {
    #[serde(default)]
    lang: String,
    next: Option<String>,
}

/// The language switch: a plain form, so it works without JavaScript.
async fn choose_language(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::Form(form): axum::Form<LanguageForm>,
) -> Response {
    let lang = if form.lang == "ja" { "ja" } else { "en" };
    let jar = jar.add(cookie(&state, LANG_COOKIE, lang.to_owned(), 365 * 86_400));
    (jar, see_other(&session::safe_next(form.next.as_deref()))).into_response()
}
