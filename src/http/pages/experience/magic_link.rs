//! The magic-link pages (logto-compat §4): `/one-time-token`, where the authorization endpoint
//! sends a browser that carries `one_time_token` and `login_hint`, verifies the token and
//! signs the person in or registers them (asking for the profile the sign-up configuration
//! still demands); a page per reason a link cannot be used, saying what to do next; and
//! `/switch-account`, which asks a browser signed in to another account which one to use.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use domain::sign_in_experience::SignInMode;
use projections::sessions::SessionRow;
use projections::users::UserRow;

use super::super::locale::{Lang, Phrases};
use super::{Alert, Brand, Form, Visit, csrf_token, render, visit};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::experience::flow::{Experience, ProfileUpdate};
use crate::http::extract::RequestContext;
use crate::http::oidc::authorize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/one-time-token", get(link_page).post(complete_profile))
        .route("/switch-account", get(switch_page).post(switch))
}

/// The words of these pages, beside the shared ones in `locale.rs`.
struct Words {
    invalid_title: &'static str,
    another_way: &'static str,
    profile_title: &'static str,
    profile_intro: &'static str,
    continue_button: &'static str,
    switch_title: &'static str,
    signed_in_as: &'static str,
    link_for: &'static str,
}

const EN: Words = Words {
    invalid_title: "This link cannot be used",
    another_way: "Sign in another way",
    profile_title: "Complete your account",
    profile_intro: "Your email address is verified. Choose how you will sign in next time.",
    continue_button: "Continue",
    switch_title: "Switch accounts?",
    signed_in_as: "You are signed in as",
    link_for: "This link is for",
};

const JA: Words = Words {
    invalid_title: "このリンクは使用できません",
    another_way: "別の方法でサインイン",
    profile_title: "アカウント情報の入力",
    profile_intro: "メールアドレスが確認されました。次回からのサインイン方法を設定してください。",
    continue_button: "続行",
    switch_title: "アカウントを切り替えますか？",
    signed_in_as: "現在サインインしているアカウント：",
    link_for: "このリンクの宛先：",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

fn continue_as(lang: Lang, account: &str) -> String {
    match lang {
        Lang::En => format!("Continue as {account}"),
        Lang::Ja => format!("{account} で続行"),
    }
}

fn stay_as(lang: Lang, account: &str) -> String {
    match lang {
        Lang::En => format!("Stay signed in as {account}"),
        Lang::Ja => format!("{account} のままにする"),
    }
}

/// Why a link cannot be used and what the person can do about it, for each refusal of the
/// verify algorithm; `None` for errors that are not about the link.
fn link_refusal(lang: Lang, code: &str) -> Option<(&'static str, &'static str)> {
    let (en, ja) = match code {
        "one_time_token.token_not_found" => (
            (
                "This link is not valid.",
                "Check that you opened the whole link from your email. If it still does not work, ask for a new link.",
            ),
            (
                "このリンクは無効です。",
                "メールに記載されたリンク全体を開いたかご確認ください。それでも開けない場合は、新しいリンクを依頼してください。",
            ),
        ),
        "one_time_token.email_mismatch" => (
            (
                "This link does not belong to this email address.",
                "Open the link exactly as it was sent to you, or ask for a new link for your email address.",
            ),
            (
                "このリンクはこのメールアドレス用ではありません。",
                "送られたリンクを変更せずにそのまま開くか、ご自身のメールアドレス宛ての新しいリンクを依頼してください。",
            ),
        ),
        "one_time_token.token_expired" => (
            (
                "This link has expired.",
                "Links work for a limited time. Ask for a new link and use it soon.",
            ),
            (
                "このリンクの有効期限が切れています。",
                "リンクには有効期限があります。新しいリンクを依頼して、早めにご利用ください。",
            ),
        ),
        "one_time_token.token_consumed" => (
            (
                "This link has already been used.",
                "Each link works once. If you used it, go back to the application: you may already be signed in. Otherwise, ask for a new link.",
            ),
            (
                "このリンクはすでに使用されています。",
                "リンクは一度しか使用できません。ご自身で使用した場合は、すでにサインインしている可能性がありますので、アプリケーションに戻ってください。そうでない場合は、新しいリンクを依頼してください。",
            ),
        ),
        "one_time_token.token_revoked" => (
            (
                "This link has been withdrawn.",
                "Whoever sent it cancelled it. Ask them for a new link.",
            ),
            (
                "このリンクは取り消されています。",
                "送信者がリンクを取り消しました。新しいリンクを依頼してください。",
            ),
        ),
        "one_time_token.interaction_event_mismatch" => (
            (
                "This link was made for another purpose.",
                "It is meant either for creating an account or for signing in to an existing one, and this email address needs the other. Ask for a new link.",
            ),
            (
                "このリンクは別の目的のために発行されています。",
                "このリンクはアカウントの作成用、または既存アカウントへのサインイン用のどちらかで、このメールアドレスにはもう一方が必要です。新しいリンクを依頼してください。",
            ),
        ),
        "one_time_token.device_mismatch" => (
            (
                "This link only works on the device and browser that asked for it.",
                "Open it there, or ask for a new link from this device.",
            ),
            (
                "このリンクは、リクエストしたデバイスとブラウザーでのみ使用できます。",
                "そのデバイスで開くか、このデバイスから新しいリンクを依頼してください。",
            ),
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ja => ja,
    })
}

#[derive(Template)]
#[template(path = "one_time_token_error.html")]
struct LinkErrorPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    message: &'a str,
    next_step: &'a str,
    another_way: Option<(String, &'a str)>,
}

#[derive(Template)]
#[template(path = "complete_profile.html")]
struct ProfilePage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a Words,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    username: Option<String>,
    password: bool,
}

#[derive(Template)]
#[template(path = "switch_account.html")]
struct SwitchPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a Words,
    brand: &'a Brand,
    action: String,
    csrf: String,
    current: String,
    target: String,
    continue_label: String,
    stay_label: String,
}

/// The link's `one_time_token` and `login_hint`.
fn link_of(query: Option<&str>) -> Option<(String, String)> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let find = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    find("one_time_token").zip(find("login_hint"))
}

/// The page's query without the link itself: where the "another way" link keeps the
/// application and language but not the token.
fn without_link(query: Option<&str>) -> String {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "one_time_token" && name != "login_hint" {
            kept.append_pair(&name, &value);
        }
    }
    kept.finish()
}

/// The page for a link that cannot be used, which also offers the sign-in page (the
/// interaction outlives a refused link).
fn link_failure(visit: &Visit<'_>, error: &ApiError) -> Response {
    let Some((message, next_step)) = link_refusal(visit.lang, error.code) else {
        return visit.message(error.status, error.code);
    };
    let w = words(visit.lang);
    let another_way = (visit.config.sign_in_mode != SignInMode::Register).then(|| {
        let query = without_link(visit.query.as_deref());
        (format!("/sign-in?{query}"), w.another_way)
    });
    let t = visit.lang.phrases();
    render(
        error.status,
        &LinkErrorPage {
            lang: visit.lang.tag(),
            title: w.invalid_title,
            t,
            brand: &visit.brand,
            message,
            next_step,
            another_way,
        },
    )
}

fn profile_form(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &Experience<'_>,
    status: StatusCode,
    missing: &[&str],
    username: String,
    alert: Option<Alert>,
) -> Response {
    let w = words(visit.lang);
    render(
        status,
        &ProfilePage {
            lang: visit.lang.tag(),
            title: w.profile_title,
            t: visit.lang.phrases(),
            w,
            brand: &visit.brand,
            alert,
            action: visit.href("/one-time-token"),
            csrf: csrf_token(state, experience.id()),
            username: missing.contains(&"username").then_some(username),
            password: missing.contains(&"password"),
        },
    )
}

/// After identification: submit, or ask for what the sign-up configuration still demands
/// (a username and a password are all these pages can take; anything else needs a
/// verification the link did not provide).
async fn continue_to_app(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &mut Experience<'_>,
    status: StatusCode,
    username: String,
    alert: Option<Alert>,
) -> Response {
    let missing = match experience.missing_profile().await {
        Ok(missing) => missing,
        Err(error) => return visit.message(error.status, error.code),
    };
    if missing.is_empty() {
        return match experience.submit().await {
            Ok(resume) => Redirect::to(&resume).into_response(),
            Err(error) => visit.message(error.status, error.code),
        };
    }
    if missing
        .iter()
        .any(|field| !matches!(*field, "username" | "password"))
    {
        return visit.message(StatusCode::UNPROCESSABLE_ENTITY, "user.missing_profile");
    }
    profile_form(visit, state, experience, status, &missing, username, alert)
}

/// Verify, identify (signing in, or registering the email), then on to the application.
async fn follow_link(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &mut Experience<'_>,
    token: &str,
    email: &str,
) -> Response {
    let verification_id = match experience.verify_one_time_token(token, email, true).await {
        Ok(id) => id,
        Err(error) => return link_failure(visit, &error),
    };
    if let Err(error) = experience.identify(Some(&verification_id)).await {
        return visit.message(error.status, error.code);
    }
    continue_to_app(
        visit,
        state,
        experience,
        StatusCode::OK,
        String::new(),
        None,
    )
    .await
}

/// The browser's session when it is another account's than the link's and could answer the
/// authorization request in its place (not `prompt=login`, fresh enough for `max_age`).
async fn other_account(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    experience: &Experience<'_>,
    email: &str,
) -> Result<Option<(SessionRow, UserRow)>, ApiError> {
    let Some((session, user)) = authorize::browser_session(state, jar, context.now_ms()).await?
    else {
        return Ok(None);
    };
    let request = experience.interaction.request()?;
    let fresh = request
        .max_age
        .is_none_or(|age| context.now_ms() - session.auth_time <= age * 1000);
    let same = user
        .primary_email
        .as_deref()
        .is_some_and(|own| own.eq_ignore_ascii_case(email));
    let keepable = fresh && !request.prompts.iter().any(|p| p == "login");
    Ok((keepable && !same).then_some((session, user)))
}

/// `GET /one-time-token?one_time_token=…&login_hint=…`: the link, followed.
async fn link_page(
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
    // Reloaded after the link worked: carry on from there (the token is used up by now).
    if experience.one_time_token_verified() {
        return continue_to_app(
            &visit,
            &state,
            &mut experience,
            StatusCode::OK,
            String::new(),
            None,
        )
        .await;
    }
    let Some((token, email)) = link_of(visit.query.as_deref()) else {
        return link_failure(&visit, &incomplete_link());
    };
    match other_account(&state, &context, &jar, &experience, &email).await {
        Ok(Some(_)) => return Redirect::to(&visit.href("/switch-account")).into_response(),
        Ok(None) => {}
        Err(error) => return visit.message(error.status, error.code),
    }
    follow_link(&visit, &state, &mut experience, &token, &email).await
}

/// A link without its token or email names no token, as Logto's page says.
fn incomplete_link() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "one_time_token.token_not_found",
        "Token not found.",
    )
}

/// `POST /one-time-token`: the missing profile, then on to the application.
async fn complete_profile(
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
    let missing = match experience.missing_profile().await {
        Ok(missing) => missing,
        Err(error) => return visit.message(error.status, error.code),
    };
    let username = form.text("username").trim().to_owned();
    let password = form.text("password");
    if missing.contains(&"password") && form.get("password_confirm") != Some(password.as_str()) {
        let alert = Alert {
            message: visit.lang.phrases().passwords_do_not_match.to_owned(),
            issues: Vec::new(),
        };
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return profile_form(
            &visit,
            &state,
            &experience,
            status,
            &missing,
            username,
            Some(alert),
        );
    }
    let mut updates = Vec::new();
    if missing.contains(&"username") {
        updates.push(ProfileUpdate::Username {
            value: username.clone(),
        });
    }
    if missing.contains(&"password") {
        updates.push(ProfileUpdate::Password { value: password });
    }
    for update in updates {
        if let Err(error) = experience.set_profile(update).await {
            return match visit.alert(&error) {
                Ok(alert) => {
                    continue_to_app(
                        &visit,
                        &state,
                        &mut experience,
                        error.status,
                        username,
                        Some(alert),
                    )
                    .await
                }
                Err(page) => page,
            };
        }
    }
    continue_to_app(
        &visit,
        &state,
        &mut experience,
        StatusCode::OK,
        String::new(),
        None,
    )
    .await
}

/// How the page names an account: its email, else its username, else its id.
fn account_name(user: &UserRow) -> String {
    user.primary_email
        .clone()
        .or_else(|| user.username.clone())
        .unwrap_or_else(|| user.id.clone())
}

/// `GET /switch-account`: a link for one account followed in a browser signed in to another
/// (Logto's account-conflict prompt).
async fn switch_page(
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
    let Some((_, email)) = link_of(visit.query.as_deref()) else {
        return Redirect::to(&visit.href("/one-time-token")).into_response();
    };
    let user = match other_account(&state, &context, &jar, experience, &email).await {
        Ok(Some((_, user))) => user,
        // Nothing to switch from (any more): the link goes on as it would have.
        Ok(None) => return Redirect::to(&visit.href("/one-time-token")).into_response(),
        Err(error) => return visit.message(error.status, error.code),
    };
    let w = words(visit.lang);
    let current = account_name(&user);
    render(
        StatusCode::OK,
        &SwitchPage {
            lang: visit.lang.tag(),
            title: w.switch_title,
            t: visit.lang.phrases(),
            w,
            brand: &visit.brand,
            action: visit.href("/switch-account"),
            csrf: csrf_token(&state, experience.id()),
            continue_label: continue_as(visit.lang, &email),
            stay_label: stay_as(visit.lang, &current),
            current,
            target: email,
        },
    )
}

/// `POST /switch-account`: `choice=continue` follows the link (the token's account replaces
/// the session's when the authorization completes); `choice=stay` answers the application
/// with the session's account and leaves the token unused.
async fn switch(
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
    let Some((token, email)) = link_of(visit.query.as_deref()) else {
        return link_failure(&visit, &incomplete_link());
    };
    match form.get("choice") {
        Some("stay") => {
            // Only a session the page could have offered: `prompt=login` or `max_age` ask for
            // a sign-in, which staying would skip.
            let session = match other_account(&state, &context, &jar, &experience, &email).await {
                Ok(Some((session, _))) => session,
                Ok(None) => return visit.message(StatusCode::BAD_REQUEST, "session.not_found"),
                Err(error) => return visit.message(error.status, error.code),
            };
            match experience.keep_session(&session.user_id, &session.id).await {
                Ok(resume) => Redirect::to(&resume).into_response(),
                Err(error) => visit.message(error.status, error.code),
            }
        }
        _ => follow_link(&visit, &state, &mut experience, &token, &email).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_refusal_says_what_to_do_in_both_languages() {
        for code in [
            "one_time_token.token_not_found",
            "one_time_token.email_mismatch",
            "one_time_token.token_expired",
            "one_time_token.token_consumed",
            "one_time_token.token_revoked",
            "one_time_token.interaction_event_mismatch",
            "one_time_token.device_mismatch",
        ] {
            for lang in [Lang::En, Lang::Ja] {
                let (message, next_step) = link_refusal(lang, code).unwrap();
                assert!(!message.is_empty() && !next_step.is_empty(), "{code}");
            }
        }
        assert!(link_refusal(Lang::En, "user.suspended").is_none());
    }

    #[test]
    fn the_link_is_taken_from_the_query_and_left_out_of_other_links() {
        let query = "app_id=a&one_time_token=t0k&login_hint=ada%40example.com&ui_locales=ja";
        assert_eq!(
            link_of(Some(query)),
            Some(("t0k".to_owned(), "ada@example.com".to_owned()))
        );
        assert_eq!(link_of(Some("one_time_token=t0k")), None);
        assert_eq!(without_link(Some(query)), "app_id=a&ui_locales=ja");
    }
}
