//! The hosted sign-in experience: `/sign-in`, `/register` and `/error`, server-rendered from
//! askama templates, in English or Japanese, branded from the sign-in experience. Each form
//! post runs the Experience API's steps in-process (`http::experience::flow`) and sends the
//! browser on to the authorization endpoint.

use askama::Template;
use aws_lc_rs::constant_time;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use domain::interaction::{IdentifierType, InteractionEvent};
use domain::sign_in_experience::{SignInExperience, SignInMode};
use serde::Deserialize;

use super::locale::{self, Lang, Phrases};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::experience::flow::Experience;
use crate::http::experience::{experience, rules};
use crate::http::extract::RequestContext;

mod email_code;
mod magic_link;
mod mfa;
mod social;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/register", get(register_page).post(register))
        .route("/error", get(error_page))
        .merge(magic_link::routes())
        .merge(email_code::routes())
        .merge(social::routes())
        .merge(mfa::routes())
}

/// Keyed-hash domain of the forms' CSRF tokens.
const CSRF_HASH_KIND: &str = "csrf";
/// Logto's default brand color, used when the configured one is not a hex color.
const DEFAULT_COLOR: &str = "#6139F6";

/// The sign-in experience's branding, made safe to put in a page.
pub struct Brand {
    /// HTTPS only: the pages' CSP loads no other images.
    pub logo_url: Option<String>,
    pub color: String,
    /// Black or white, whichever reads better on `color`.
    pub on_color: &'static str,
}

fn hex_color(text: &str) -> Option<[f64; 3]> {
    let digits = text.strip_prefix('#')?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |hex: &str| {
        u8::from_str_radix(hex, 16)
            .ok()
            .map(|v| f64::from(v) / 255.0)
    };
    let long = |i: usize| digits.get(i..i + 2).and_then(channel);
    let short = |i: usize| digits.get(i..=i).and_then(|d| channel(&format!("{d}{d}")));
    match digits.len() {
        3 | 4 => Some([short(0)?, short(1)?, short(2)?]),
        6 | 8 => Some([long(0)?, long(2)?, long(4)?]),
        _ => None,
    }
}

/// WCAG relative luminance.
fn luminance([r, g, b]: [f64; 3]) -> f64 {
    let linear = |c: f64| {
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

pub fn brand(config: &SignInExperience) -> Brand {
    let configured = config.color.primary_color.as_str();
    let (color, rgb) = match hex_color(configured) {
        Some(rgb) => (configured, rgb),
        None => (DEFAULT_COLOR, hex_color(DEFAULT_COLOR).unwrap_or([0.0; 3])),
    };
    let light = luminance(rgb);
    // Contrast against white is 1.05 / (L + 0.05), against black (L + 0.05) / 0.05.
    let on_color = if 1.05 / (light + 0.05) >= (light + 0.05) / 0.05 {
        "#ffffff"
    } else {
        "#000000"
    };
    Brand {
        logo_url: config
            .branding
            .logo_url
            .clone()
            .filter(|u| url::Url::parse(u).is_ok_and(|u| u.scheme() == "https")),
        color: color.to_owned(),
        on_color,
    }
}

/// An error shown above a form.
pub struct Alert {
    pub message: String,
    pub issues: Vec<String>,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    identifier_label: String,
    input_type: &'a str,
    autocomplete: &'a str,
    identifier: String,
    switch_href: Option<String>,
    /// Email-code sign-in and password reset, when the sign-in experience has them.
    links: Vec<email_code::Link>,
    /// Whether a password sign-in method exists (a social-only page has buttons alone).
    password: bool,
    social: &'a [social::Button],
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    username: String,
    switch_href: Option<String>,
    social: &'a [social::Button],
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    message: &'a str,
    code: Option<&'a str>,
}

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => super::harden((status, Html(html)).into_response()),
        Err(error) => {
            tracing::error!(%error, "page template failed");
            ApiError::internal().into_response()
        }
    }
}

/// One page view: the interaction (if the browser has a live one), the language and branding.
struct Visit<'a> {
    experience: Result<Experience<'a>, ApiError>,
    config: SignInExperience,
    lang: Lang,
    brand: Brand,
    /// This page's query (the authorization endpoint's `app_id`, `ui_locales`, ...), kept by the
    /// form's action and the links between pages.
    query: Option<String>,
    /// "Continue with <name>" buttons of the social connectors the experience lists.
    social: Vec<social::Button>,
}

async fn visit<'a>(
    state: &'a AppState,
    context: &'a RequestContext,
    jar: &CookieJar,
    headers: &HeaderMap,
    query: Option<String>,
) -> Visit<'a> {
    let experience = experience(state, context, jar).await;
    let config = match &experience {
        Ok(experience) => experience.config.clone(),
        // A page still renders, in the seed's branding, when the configuration is unreadable.
        Err(_) => current_config(state).await.unwrap_or_default(),
    };
    let ui_locales = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ui_locales")
            .map(|(_, v)| v.into_owned())
    });
    let requested = experience
        .as_ref()
        .ok()
        .and_then(|e| e.interaction.request().ok())
        .and_then(|r| r.ui_locales);
    let lang = locale::negotiate(
        ui_locales.as_deref(),
        requested.as_deref(),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        &config.language_info,
    );
    let social = match &experience {
        Ok(experience) => {
            social::buttons(state, &config, lang, experience.id(), query.as_deref()).await
        }
        Err(_) => Vec::new(),
    };
    Visit {
        brand: brand(&config),
        experience,
        config,
        lang,
        query,
        social,
    }
}

async fn current_config(state: &AppState) -> Result<SignInExperience, ApiError> {
    let db = state.store.pool().get().await?;
    Ok(projections::sign_in_experience::current(&db).await?)
}

impl<'a> Visit<'a> {
    /// The interaction this page continues, taken out of the visit, or the page that says why
    /// there is none.
    fn take_experience(&mut self) -> Result<Experience<'a>, Response> {
        std::mem::replace(&mut self.experience, Err(ApiError::internal()))
            .map_err(|error| self.message(StatusCode::BAD_REQUEST, error.code))
    }

    /// As `take_experience`, for a posted form, which must carry the interaction's CSRF token.
    fn take_posted(&mut self, state: &AppState, form: &Form) -> Result<Experience<'a>, Response> {
        let experience = self.take_experience()?;
        if !csrf_valid(state, experience.id(), form.get("_csrf")) {
            return Err(self.message(StatusCode::FORBIDDEN, "session.csrf"));
        }
        Ok(experience)
    }

    fn href(&self, path: &str) -> String {
        match &self.query {
            Some(query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path.to_owned(),
        }
    }

    fn message(&self, status: StatusCode, code: &str) -> Response {
        // A second factor owed is a step of its own, not a dead end.
        if let Some(step) = mfa::step_for(self, code) {
            return step;
        }
        let t = self.lang.phrases();
        let known = locale::error_message(self.lang, code);
        render(
            status,
            &MessagePage {
                lang: self.lang.tag(),
                title: t.error_title,
                t,
                brand: &self.brand,
                message: known.unwrap_or(t.unknown_error),
                code: known.is_none().then_some(code),
            },
        )
    }

    /// The answer to a failed step: a page of its own for what the form cannot fix, else the
    /// message for the form.
    fn alert(&self, error: &ApiError) -> Result<Alert, Response> {
        if let Some(step) = mfa::step_for(self, error.code) {
            return Err(step);
        }
        if error.status.is_server_error()
            || matches!(
                error.code,
                "auth.forbidden" | "session.not_found" | "session.interaction_finished"
            )
        {
            return Err(self.message(error.status, error.code));
        }
        let message = match (locale::error_message(self.lang, error.code), self.lang) {
            (Some(known), _) => known.to_owned(),
            (None, Lang::En) => error.message.clone(),
            (None, Lang::Ja) => self.lang.phrases().unknown_error.to_owned(),
        };
        Ok(Alert {
            message,
            issues: password_issues(self.lang, error),
        })
    }
}

fn password_issues(lang: Lang, error: &ApiError) -> Vec<String> {
    #[derive(Deserialize)]
    struct Bounds {
        min: Option<u32>,
        max: Option<u32>,
    }
    #[derive(Deserialize)]
    struct Issue {
        code: String,
        interpolation: Option<Bounds>,
    }
    let issues = error
        .data
        .as_ref()
        .and_then(|data| data.get("issues"))
        .and_then(|issues| serde_json::from_value::<Vec<Issue>>(issues.clone()).ok())
        .unwrap_or_default();
    issues
        .iter()
        .map(|issue| {
            let bounds = issue.interpolation.as_ref();
            locale::password_issue(
                lang,
                &issue.code,
                bounds.and_then(|b| b.min),
                bounds.and_then(|b| b.max),
            )
        })
        .collect()
}

fn csrf_token(state: &AppState, interaction_id: &str) -> String {
    state
        .store
        .keyring()
        .lookup_hash(CSRF_HASH_KIND, interaction_id)
}

fn csrf_valid(state: &AppState, interaction_id: &str, sent: Option<&str>) -> bool {
    let expected = csrf_token(state, interaction_id);
    sent.is_some_and(|sent| {
        constant_time::verify_slices_are_equal(expected.as_bytes(), sent.as_bytes()).is_ok()
    })
}

/// A posted form's fields (the first value of each name).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }
}

/// Which identifier kind a typed value is, among those that sign in with a password.
fn identifier_kind(value: &str, kinds: &[IdentifierType]) -> IdentifierType {
    let phone_like = value.chars().any(|c| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || "+-() ".contains(c));
    let guess = if value.contains('@') {
        IdentifierType::Email
    } else if phone_like {
        IdentifierType::Phone
    } else {
        IdentifierType::Username
    };
    if kinds.contains(&guess) {
        guess
    } else if kinds.contains(&IdentifierType::Username) {
        IdentifierType::Username
    } else {
        kinds.first().copied().unwrap_or(IdentifierType::Username)
    }
}

fn registration_offered(config: &SignInExperience) -> bool {
    config.sign_in_mode != SignInMode::SignIn
        && (rules::guard_username_sign_up(config).is_ok()
            || crate::http::experience::flow::email_sign_up_enabled(config))
}

fn sign_in_form(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &Experience<'_>,
    status: StatusCode,
    identifier: String,
    alert: Option<Alert>,
) -> Response {
    let t = visit.lang.phrases();
    let kinds = rules::password_identifiers(&visit.config);
    let input_type = match kinds.as_slice() {
        [IdentifierType::Email] => "email",
        [IdentifierType::Phone] => "tel",
        _ => "text",
    };
    render(
        status,
        &SignInPage {
            lang: visit.lang.tag(),
            title: t.sign_in_title,
            t,
            brand: &visit.brand,
            alert,
            action: visit.href("/sign-in"),
            csrf: csrf_token(state, experience.id()),
            identifier_label: t.identifier_label(&kinds),
            input_type,
            autocomplete: "username",
            identifier,
            switch_href: registration_offered(&visit.config).then(|| visit.href("/register")),
            links: email_code::sign_in_links(visit),
            password: !kinds.is_empty(),
            social: &visit.social,
        },
    )
}

async fn sign_in_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let visit = visit(&state, &context, &jar, &headers, query).await;
    let experience = match &visit.experience {
        Ok(experience) => experience,
        Err(error) => return visit.message(StatusCode::BAD_REQUEST, error.code),
    };
    if visit.config.sign_in_mode == SignInMode::Register {
        return Redirect::to(&visit.href("/register")).into_response();
    }
    if let Some(by_code) = email_code::sign_in_by_code(&visit) {
        return by_code;
    }
    if rules::password_identifiers(&visit.config).is_empty() && visit.social.is_empty() {
        return visit.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.sign_in_method_not_enabled",
        );
    }
    sign_in_form(
        &visit,
        &state,
        experience,
        StatusCode::OK,
        String::new(),
        None,
    )
}

/// Verify, identify and submit: the Experience API's sign-in, in one form post.
async fn sign_in_steps(
    experience: &mut Experience<'_>,
    kind: IdentifierType,
    identifier: &str,
    password: String,
) -> Result<String, ApiError> {
    experience.set_event(InteractionEvent::SignIn, true).await?;
    let verification_id = experience
        .verify_password(kind, identifier, password)
        .await?;
    experience.identify(Some(&verification_id)).await?;
    experience.submit().await
}

async fn sign_in(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let mut visit = visit(&state, &context, &jar, &headers, query).await;
    let mut experience = match visit.take_posted(&state, &form) {
        Ok(experience) => experience,
        Err(page) => return page,
    };
    let identifier = form.text("identifier").trim().to_owned();
    let kinds = rules::password_identifiers(&visit.config);
    let kind = identifier_kind(&identifier, &kinds);
    match sign_in_steps(&mut experience, kind, &identifier, form.text("password")).await {
        Ok(resume) => Redirect::to(&resume).into_response(),
        Err(error) => match visit.alert(&error) {
            Ok(alert) => with_headers_of(
                &error,
                sign_in_form(
                    &visit,
                    &state,
                    &experience,
                    error.status,
                    identifier,
                    Some(alert),
                ),
            ),
            Err(page) => page,
        },
    }
}

/// A form shown again for a failed step keeps the step's headers (`Retry-After` of a 429).
fn with_headers_of(error: &ApiError, mut response: Response) -> Response {
    for (name, value) in &error.headers {
        if let Ok(value) = axum::http::HeaderValue::from_str(value) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    response
}

fn register_form(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &Experience<'_>,
    status: StatusCode,
    username: String,
    alert: Option<Alert>,
) -> Response {
    let t = visit.lang.phrases();
    render(
        status,
        &RegisterPage {
            lang: visit.lang.tag(),
            title: t.register_title,
            t,
            brand: &visit.brand,
            alert,
            action: visit.href("/register"),
            csrf: csrf_token(state, experience.id()),
            username,
            switch_href: (visit.config.sign_in_mode != SignInMode::Register)
                .then(|| visit.href("/sign-in")),
            social: &visit.social,
        },
    )
}

/// Why this tenant's registration cannot happen on this page, if it cannot.
fn registration_refused(visit: &Visit<'_>) -> Option<Response> {
    if let Err(error) = rules::guard_event(&visit.config, InteractionEvent::Register) {
        return Some(visit.message(error.status, error.code));
    }
    rules::guard_username_sign_up(&visit.config)
        .err()
        .map(|error| visit.message(error.status, error.code))
}

async fn register_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let visit = visit(&state, &context, &jar, &headers, query).await;
    let experience = match &visit.experience {
        Ok(experience) => experience,
        Err(error) => return visit.message(StatusCode::BAD_REQUEST, error.code),
    };
    if let Some(by_email) = email_code::register_by_email(&visit) {
        return by_email;
    }
    if let Some(refused) = registration_refused(&visit) {
        return refused;
    }
    register_form(
        &visit,
        &state,
        experience,
        StatusCode::OK,
        String::new(),
        None,
    )
}

/// New identity, identification (which creates the user) and submit, in one form post.
async fn register_steps(
    experience: &mut Experience<'_>,
    username: String,
    password: String,
) -> Result<String, ApiError> {
    experience
        .set_event(InteractionEvent::Register, true)
        .await?;
    let verification_id = experience.new_password_identity(username, password).await?;
    experience.identify(Some(&verification_id)).await?;
    experience.submit().await
}

async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let mut visit = visit(&state, &context, &jar, &headers, query).await;
    let mut experience = match visit.take_posted(&state, &form) {
        Ok(experience) => experience,
        Err(page) => return page,
    };
    if let Some(refused) = registration_refused(&visit) {
        return refused;
    }
    let username = form.text("username").trim().to_owned();
    let password = form.text("password");
    if form.get("password_confirm") != Some(password.as_str()) {
        let alert = Alert {
            message: visit.lang.phrases().passwords_do_not_match.to_owned(),
            issues: Vec::new(),
        };
        return register_form(
            &visit,
            &state,
            &experience,
            StatusCode::UNPROCESSABLE_ENTITY,
            username,
            Some(alert),
        );
    }
    match register_steps(&mut experience, username.clone(), password).await {
        Ok(resume) => Redirect::to(&resume).into_response(),
        Err(error) => match visit.alert(&error) {
            Ok(alert) => register_form(
                &visit,
                &state,
                &experience,
                error.status,
                username,
                Some(alert),
            ),
            Err(page) => page,
        },
    }
}

/// `/error?code=<Logto code>`: the message for codes the pages know, a generic one otherwise.
async fn error_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let code = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    });
    let visit = visit(&state, &context, &jar, &headers, query).await;
    let t = visit.lang.phrases();
    let message = code
        .as_deref()
        .and_then(|code| locale::error_message(visit.lang, code))
        .unwrap_or(t.unknown_error);
    render(
        StatusCode::OK,
        &MessagePage {
            lang: visit.lang.tag(),
            title: t.error_title,
            t,
            brand: &visit.brand,
            message,
            code: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_colors_are_hex_and_text_keeps_contrast() {
        let mut config = SignInExperience::default();
        assert_eq!(brand(&config).on_color, "#ffffff");
        config.color.primary_color = "#ffee00".into();
        assert_eq!(brand(&config).on_color, "#000000");
        config.color.primary_color = "red;} body{display:none".into();
        assert_eq!(brand(&config).color, DEFAULT_COLOR);
        config.branding.logo_url = Some("http://insecure.example/logo.png".into());
        assert_eq!(brand(&config).logo_url, None);
    }

    #[test]
    fn typed_identifiers_pick_an_enabled_kind() {
        use IdentifierType::{Email, Phone, Username};
        assert_eq!(identifier_kind("ada", &[Username, Email]), Username);
        assert_eq!(
            identifier_kind("ada@example.com", &[Username, Email]),
            Email
        );
        assert_eq!(identifier_kind("+1 415 555", &[Username, Phone]), Phone);
        assert_eq!(identifier_kind("ada@example.com", &[Username]), Username);
        assert_eq!(identifier_kind("ada", &[Email]), Email);
    }
}
