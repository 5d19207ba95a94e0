//! Social sign-in on the hosted pages: the "Continue with <name>" buttons of `/sign-in` and
//! `/register` (one per connector the sign-in experience lists in
//! `socialSignInConnectorTargets`), `POST /sign-in/social/:connectorId` which sends the browser
//! to the provider, and `/callback/:connectorId` where it comes back: the return is verified,
//! the person signed in (or registered) and sent on to the authorization endpoint. A failure
//! is shown with its `connector.*` code and logged, never a 500.
//!
//! A registration the sign-up configuration still wants a username for (Logto asks a new
//! social user for missing identifiers unless `socialSignIn.skipRequiredIdentifiers` is on) goes
//! on to `/sign-in/social/profile`, which asks for one and then finishes the sign-in.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use domain::sign_in_experience::SignInExperience;
use serde_json::{Map, Value};

use super::super::locale::{Lang, Phrases};
use super::{Alert, Brand, Form, MessagePage, Visit, csrf_token, render, visit};
use crate::app::AppState;
use crate::connectors::social;
use crate::http::error::ApiError;
use crate::http::experience::flow::{Experience, ProfileUpdate};
use crate::http::extract::RequestContext;

/// Where a social registration without the username the sign-up wants goes for one.
const PROFILE: &str = "/sign-in/social/profile";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PROFILE, get(profile_page).post(choose_username))
        .route("/sign-in/social/{connector_id}", post(start))
        .route(
            "/callback/{connector_id}",
            get(callback_get).post(callback_post),
        )
}

/// One "Continue with <name>" button.
pub struct Button {
    pub action: String,
    pub label: String,
    pub csrf: String,
}

fn label(lang: Lang, name: &str) -> String {
    match lang {
        Lang::En => format!("Continue with {name}"),
        Lang::Ja => format!("{name}で続行"),
    }
}

/// The buttons the sign-in experience offers, in its order of targets.
pub async fn buttons(
    state: &AppState,
    config: &SignInExperience,
    lang: Lang,
    interaction_id: &str,
    query: Option<&str>,
) -> Vec<Button> {
    if config.social_sign_in_connector_targets.is_empty() {
        return Vec::new();
    }
    let connectors = match social::connectors(&state.store).await {
        Ok(connectors) => connectors,
        Err(error) => {
            // The password form still works without the buttons.
            tracing::error!(%error, "social connectors unreadable");
            return Vec::new();
        }
    };
    let suffix = query
        .filter(|q| !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    config
        .social_sign_in_connector_targets
        .iter()
        .filter_map(|target| connectors.iter().find(|c| c.target == *target))
        .map(|connector| Button {
            action: format!("/sign-in/social/{}{suffix}", connector.row.id),
            label: label(lang, &connector.name),
            csrf: csrf_token(state, interaction_id),
        })
        .collect()
}

/// The messages of the codes a social sign-in meets that the shared pages do not.
fn error_message(lang: Lang, code: &str) -> Option<&'static str> {
    let (en, ja) = match code {
        "connector.social_invalid_id_token" => (
            "The identity provider's answer could not be verified. Please try again.",
            "IDプロバイダーからの応答を検証できませんでした。もう一度お試しください。",
        ),
        "connector.authorization_failed" => (
            "The sign-in with the identity provider did not complete. Please try again.",
            "IDプロバイダーでのサインインが完了しませんでした。もう一度お試しください。",
        ),
        "connector.social_auth_code_invalid" => (
            "The identity provider refused the sign-in. Please try again.",
            "IDプロバイダーがサインインを拒否しました。もう一度お試しください。",
        ),
        "connector.general" => (
            "The identity provider cannot be reached at the moment.",
            "現在IDプロバイダーに接続できません。",
        ),
        "connector.invalid_config" | "session.invalid_connector_id" => (
            "This sign-in method is not available.",
            "このサインイン方法は利用できません。",
        ),
        "user.identity_not_exist" => (
            "No account is linked to this identity, and registration is closed.",
            "このIDに紐づくアカウントがなく、新規登録も受け付けていません。",
        ),
        "user.identity_already_in_use" => (
            "This identity is already linked to another account.",
            "このIDはすでに別のアカウントに紐づいています。",
        ),
        "session.verification_session_not_found" | "session.verification_failed" => (
            "This sign-in has expired or was already used. Please start again.",
            "このサインインは期限切れか、すでに使用されています。もう一度やり直してください。",
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ja => ja,
    })
}

/// A failed step's page: the message, and the code so a person can report it.
fn failure(visit: &Visit<'_>, error: &ApiError) -> Response {
    let Some(message) = error_message(visit.lang, error.code) else {
        return visit.message(error.status, error.code);
    };
    let t = visit.lang.phrases();
    render(
        error.status,
        &MessagePage {
            lang: visit.lang.tag(),
            title: t.error_title,
            t,
            brand: &visit.brand,
            message,
            code: Some(error.code),
        },
    )
}

async fn start(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let mut visit = visit(&state, &context, &jar, &headers, query).await;
    let mut experience = match visit.take_posted(&state, &form) {
        Ok(experience) => experience,
        Err(page) => return page,
    };
    let redirect_uri = format!("{}/callback/{connector_id}", state.endpoint);
    match experience
        .social_authorization_uri(&connector_id, None, &redirect_uri)
        .await
    {
        Ok((_, uri)) => Redirect::to(&uri).into_response(),
        Err(error) => failure(&visit, &error),
    }
}

async fn callback_get(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let data = parameters(query.as_deref().unwrap_or_default().as_bytes());
    callback(state, context, jar, headers, connector_id, data).await
}

/// The provider's `form_post` response mode.
async fn callback_post(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    Path(connector_id): Path<String>,
    body: Bytes,
) -> Response {
    let data = parameters(&body);
    callback(state, context, jar, headers, connector_id, data).await
}

fn parameters(encoded: &[u8]) -> Map<String, Value> {
    let mut data = Map::new();
    for (key, value) in form_urlencoded::parse(encoded) {
        data.entry(key.into_owned())
            .or_insert(Value::String(value.into_owned()));
    }
    data
}

async fn callback(
    state: AppState,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    connector_id: String,
    data: Map<String, Value>,
) -> Response {
    let mut visit = visit(&state, &context, &jar, &headers, None).await;
    let mut experience = match visit.take_experience() {
        Ok(experience) => experience,
        Err(page) => return page,
    };
    // The pages' state starts with the trip's verification id (see `social_authorization_uri`).
    let verification_id = data
        .get("state")
        .and_then(Value::as_str)
        .and_then(|state| state.split_once('.'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_default();
    let steps = async {
        experience
            .verify_social(&connector_id, &verification_id, &data)
            .await?;
        experience.complete_social(&verification_id).await
    };
    match steps.await {
        Ok(resume) => Redirect::to(&resume).into_response(),
        Err(error) if wants_only_a_username(&error) => {
            Redirect::to(&visit.href(PROFILE)).into_response()
        }
        Err(error) => {
            tracing::warn!(
                code = error.code,
                message = %error.message,
                %connector_id,
                "social sign-in on the hosted pages failed"
            );
            failure(&visit, &error)
        }
    }
}

/// Whether a refused submission lacks nothing but a username, which the profile page asks for
/// (a social identity stands in for the password; other identifiers need a verification).
fn wants_only_a_username(error: &ApiError) -> bool {
    error.code == "user.missing_profile"
        && error
            .data
            .as_ref()
            .and_then(|data| data.get("missingProfile"))
            .is_some_and(|missing| *missing == serde_json::json!(["username"]))
}

/// The words of the username step, beside the shared ones in `locale.rs`.
struct ProfileWords {
    title: &'static str,
    profile_intro: &'static str,
    continue_button: &'static str,
}

const PROFILE_EN: ProfileWords = ProfileWords {
    title: "Choose a username",
    profile_intro: "Your identity provider vouched for you. Choose a username to finish creating \
                    your account.",
    continue_button: "Continue",
};

const PROFILE_JA: ProfileWords = ProfileWords {
    title: "ユーザー名の設定",
    profile_intro: "IDプロバイダーで本人確認ができました。アカウントの作成を完了するため、ユーザー名を設定してください。",
    continue_button: "続行",
};

/// The magic-link pages' profile form, asking for a username only.
#[derive(Template)]
#[template(path = "complete_profile.html")]
struct UsernamePage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a ProfileWords,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    username: Option<String>,
    password: bool,
}

fn username_form(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &Experience<'_>,
    status: StatusCode,
    username: String,
    alert: Option<Alert>,
) -> Response {
    let w = match visit.lang {
        Lang::En => &PROFILE_EN,
        Lang::Ja => &PROFILE_JA,
    };
    render(
        status,
        &UsernamePage {
            lang: visit.lang.tag(),
            title: w.title,
            t: visit.lang.phrases(),
            w,
            brand: &visit.brand,
            alert,
            action: visit.href(PROFILE),
            csrf: csrf_token(state, experience.id()),
            username: Some(username),
            password: false,
        },
    )
}

/// Submits the interaction, or asks for the username it still lacks.
async fn finish(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &mut Experience<'_>,
    status: StatusCode,
    username: String,
    alert: Option<Alert>,
) -> Response {
    match experience.submit().await {
        Ok(resume) => Redirect::to(&resume).into_response(),
        Err(error) if wants_only_a_username(&error) => {
            username_form(visit, state, experience, status, username, alert)
        }
        Err(error) => visit.message(error.status, error.code),
    }
}

/// `GET /sign-in/social/profile`: the username form (or, once nothing is missing, on to the
/// application).
async fn profile_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut visit = visit(&state, &context, &jar, &headers, query).await;
    let mut experience = match visit.take_experience() {
        Ok(experience) => experience,
        Err(page) => return page,
    };
    finish(
        &visit,
        &state,
        &mut experience,
        StatusCode::OK,
        String::new(),
        None,
    )
    .await
}

/// `POST /sign-in/social/profile`: the chosen username (its format and uniqueness checked by
/// the Experience API's profile step, errors shown on the form), then on to the application.
async fn choose_username(
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
    let username = form.text("username").trim().to_owned();
    let update = ProfileUpdate::Username {
        value: username.clone(),
    };
    let (status, alert) = match experience.set_profile(update).await {
        Ok(()) => (StatusCode::OK, None),
        Err(error) => match visit.alert(&error) {
            Ok(alert) => (error.status, Some(alert)),
            Err(page) => return page,
        },
    };
    finish(&visit, &state, &mut experience, status, username, alert).await
}
