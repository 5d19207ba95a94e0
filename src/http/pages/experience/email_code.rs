//! The hosted pages of email verification codes: `/sign-in/email` (sign in with a code),
//! `/register/email` (register with a code, and a password when the sign-up configuration
//! wants one) and `/forgot-password` (reset a password with a code). Each is two forms: the
//! address, then the code mailed to it; each post runs the Experience API's steps in-process.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use domain::interaction::InteractionEvent;
use domain::sign_in_experience::{ForgotPasswordMethod, SignInExperience};

use super::super::locale::{Lang, Phrases};
use super::{Alert, Brand, Form, Visit, csrf_token, password_issues, render, visit};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::experience::flow::{
    Experience, ProfileUpdate, code_sign_in_enabled, email_sign_up_enabled,
};
use crate::http::experience::rules;
use crate::http::extract::RequestContext;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in/email", get(sign_in_page).post(sign_in))
        .route("/register/email", get(register_page).post(register))
        .route("/forgot-password", get(forgot_page).post(forgot))
}

/// The words of these pages, beside the shared ones in `locale.rs`.
pub struct Words {
    sign_in_title: &'static str,
    register_title: &'static str,
    forgot_title: &'static str,
    code: &'static str,
    new_password: &'static str,
    send_button: &'static str,
    verify_button: &'static str,
    pub code_link: &'static str,
    pub forgot_link: &'static str,
    password_link: &'static str,
    reset_done: &'static str,
}

const EN: Words = Words {
    sign_in_title: "Sign in with an email code",
    register_title: "Create your account",
    forgot_title: "Reset your password",
    code: "Verification code",
    new_password: "New password",
    send_button: "Send code",
    verify_button: "Continue",
    code_link: "Sign in with an email code",
    forgot_link: "Forgot your password?",
    password_link: "Sign in with a password",
    reset_done: "Your password has been reset. Sign in with your new password.",
};

const JA: Words = Words {
    sign_in_title: "メールのコードでサインイン",
    register_title: "アカウントを作成",
    forgot_title: "パスワードの再設定",
    code: "確認コード",
    new_password: "新しいパスワード",
    send_button: "コードを送信",
    verify_button: "続行",
    code_link: "メールのコードでサインイン",
    forgot_link: "パスワードをお忘れですか？",
    password_link: "パスワードでサインイン",
    reset_done: "パスワードを再設定しました。新しいパスワードでサインインしてください。",
};

pub fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

fn sent_to(lang: Lang, email: &str) -> String {
    match lang {
        Lang::En => format!("We sent a code to {email}. Enter it below."),
        Lang::Ja => format!("{email} にコードを送信しました。以下に入力してください。"),
    }
}

/// The messages of the codes these pages meet that the shared pages do not.
fn error_message(lang: Lang, code: &str) -> Option<&'static str> {
    let (en, ja) = match code {
        "verification_code.code_mismatch" => (
            "The code is not right. Please check it and try again.",
            "コードが正しくありません。確認してもう一度お試しください。",
        ),
        "verification_code.not_found" | "verification_code.expired" => (
            "This code has expired or was replaced. Please request a new one.",
            "このコードは期限切れか、新しいコードに置き換えられました。新しいコードを請求してください。",
        ),
        "verification_code.exceed_max_try" => (
            "Too many wrong codes. Please request a new one.",
            "誤ったコードの入力が多すぎます。新しいコードを請求してください。",
        ),
        "request.message_rate_limited" => (
            "Too many codes were sent to this address. Please try again later.",
            "このアドレスへのコード送信が多すぎます。しばらくしてから再度お試しください。",
        ),
        "connector.not_found" => (
            "Emails cannot be sent at the moment.",
            "現在メールを送信できません。",
        ),
        "user.email_already_in_use" => (
            "This email is associated with an existing account.",
            "このメールアドレスはすでに使用されています。",
        ),
        "user.user_not_exist" => (
            "No account uses this email address.",
            "このメールアドレスのアカウントはありません。",
        ),
        "user.same_password" => (
            "The new password must differ from the old one.",
            "新しいパスワードは以前のものと異なる必要があります。",
        ),
        "guard.invalid_input" => (
            "Please enter a valid email address.",
            "有効なメールアドレスを入力してください。",
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ja => ja,
    })
}

/// A link under a form.
pub struct Link {
    pub href: String,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "email_code.html")]
struct CodePage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a Words,
    brand: &'a Brand,
    alert: Option<Alert>,
    info: Option<String>,
    action: String,
    csrf: String,
    code_step: bool,
    done: bool,
    email: String,
    verification_id: String,
    ask_password: bool,
    links: Vec<Link>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    SignIn,
    Register,
    ForgotPassword,
}

impl Mode {
    fn path(self) -> &'static str {
        match self {
            Mode::SignIn => "/sign-in/email",
            Mode::Register => "/register/email",
            Mode::ForgotPassword => "/forgot-password",
        }
    }

    fn event(self) -> InteractionEvent {
        match self {
            Mode::SignIn => InteractionEvent::SignIn,
            Mode::Register => InteractionEvent::Register,
            Mode::ForgotPassword => InteractionEvent::ForgotPassword,
        }
    }

    fn title(self, w: &Words) -> &'static str {
        match self {
            Mode::SignIn => w.sign_in_title,
            Mode::Register => w.register_title,
            Mode::ForgotPassword => w.forgot_title,
        }
    }

    fn asks_password(self, config: &SignInExperience) -> bool {
        match self {
            Mode::SignIn => false,
            Mode::Register => config.sign_up.password,
            Mode::ForgotPassword => true,
        }
    }
}

/// Whether the password reset page is offered: by email code, in the sign-in experience.
pub fn forgot_password_enabled(config: &SignInExperience) -> bool {
    config
        .forgot_password_methods
        .as_ref()
        .is_some_and(|methods| methods.contains(&ForgotPasswordMethod::EmailVerificationCode))
}

/// Why this page cannot be used with this configuration, if it cannot.
fn refused(visit: &Visit<'_>, mode: Mode) -> Option<Response> {
    let config = &visit.config;
    let refusal = match mode {
        Mode::SignIn => (!code_sign_in_enabled(config)).then_some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "user.sign_in_method_not_enabled",
        )),
        Mode::Register => match rules::guard_event(config, InteractionEvent::Register) {
            Err(error) => Some((error.status, error.code)),
            Ok(()) => (!email_sign_up_enabled(config)).then_some((
                StatusCode::UNPROCESSABLE_ENTITY,
                "user.sign_up_method_not_enabled",
            )),
        },
        Mode::ForgotPassword => (!forgot_password_enabled(config))
            .then_some((StatusCode::UNPROCESSABLE_ENTITY, "auth.forbidden")),
    };
    refusal.map(|(status, code)| visit.message(status, code))
}

fn alert_for(visit: &Visit<'_>, error: &ApiError) -> Result<Alert, Response> {
    match error_message(visit.lang, error.code) {
        Some(message) => Ok(Alert {
            message: message.to_owned(),
            issues: Vec::new(),
        }),
        None => visit.alert(error).map(|alert| Alert {
            issues: password_issues(visit.lang, error),
            ..alert
        }),
    }
}

/// What a form shows besides its fields.
struct Shown {
    status: StatusCode,
    alert: Option<Alert>,
    info: Option<String>,
    code_step: bool,
    done: bool,
    email: String,
    verification_id: String,
}

impl Shown {
    fn email_step(email: String, alert: Option<Alert>, status: StatusCode) -> Shown {
        Shown {
            status,
            alert,
            info: None,
            code_step: false,
            done: false,
            email,
            verification_id: String::new(),
        }
    }
}

fn page(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &Experience<'_>,
    mode: Mode,
    shown: Shown,
) -> Response {
    let t = visit.lang.phrases();
    let w = words(visit.lang);
    let mut links = Vec::new();
    if mode == Mode::ForgotPassword
        || (mode == Mode::SignIn && !rules::password_identifiers(&visit.config).is_empty())
    {
        links.push(Link {
            href: visit.href("/sign-in"),
            label: if shown.done {
                t.sign_in_button
            } else {
                w.password_link
            },
        });
    }
    if mode == Mode::Register {
        links.push(Link {
            href: visit.href("/sign-in"),
            label: t.sign_in_link,
        });
    }
    render(
        shown.status,
        &CodePage {
            lang: visit.lang.tag(),
            title: mode.title(w),
            t,
            w,
            brand: &visit.brand,
            alert: shown.alert,
            info: shown.info,
            action: visit.href(mode.path()),
            csrf: csrf_token(state, experience.id()),
            code_step: shown.code_step,
            done: shown.done,
            email: shown.email,
            verification_id: shown.verification_id,
            ask_password: mode.asks_password(&visit.config),
            links,
        },
    )
}

async fn show(
    state: AppState,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    query: Option<String>,
    mode: Mode,
) -> Response {
    let visit = visit(&state, &context, &jar, &headers, query).await;
    let experience = match &visit.experience {
        Ok(experience) => experience,
        Err(error) => return visit.message(StatusCode::BAD_REQUEST, error.code),
    };
    if let Some(refused) = refused(&visit, mode) {
        return refused;
    }
    page(
        &visit,
        &state,
        experience,
        mode,
        Shown::email_step(String::new(), None, StatusCode::OK),
    )
}

/// After the code: what the mode does with the verified email. `Ok(Some(url))` sends the
/// browser on; `Ok(None)` shows the form as done.
async fn finish(
    experience: &mut Experience<'_>,
    mode: Mode,
    verification_id: &str,
    password: String,
) -> Result<Option<String>, ApiError> {
    match mode {
        Mode::SignIn => {
            experience.identify(Some(verification_id)).await?;
            experience.submit().await.map(Some)
        }
        Mode::Register => {
            // A second try after a refused password has registered already.
            if experience.interaction.user_id.is_none() {
                experience.identify(Some(verification_id)).await?;
            }
            if experience.config.sign_up.password {
                experience
                    .set_profile(ProfileUpdate::Password { value: password })
                    .await?;
            }
            experience.submit().await.map(Some)
        }
        Mode::ForgotPassword => {
            experience.identify(Some(verification_id)).await?;
            experience.reset_password(password).await?;
            // The person signs in next, in this same interaction.
            experience
                .set_event(InteractionEvent::SignIn, false)
                .await?;
            Ok(None)
        }
    }
}

async fn post(
    state: AppState,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
    mode: Mode,
) -> Response {
    let form = Form::parse(&body);
    let mut visit = visit(&state, &context, &jar, &headers, query).await;
    let mut experience = match visit.take_posted(&state, &form) {
        Ok(experience) => experience,
        Err(page) => return page,
    };
    if let Some(refused) = refused(&visit, mode) {
        return refused;
    }
    let email = form.text("email").trim().to_owned();
    if form.get("step") != Some("code") {
        let sent = async {
            experience.set_event(mode.event(), false).await?;
            experience.send_email_code(&email, mode.event()).await
        }
        .await;
        let shown = match sent {
            Ok(verification_id) => Shown {
                status: StatusCode::OK,
                alert: None,
                info: Some(sent_to(visit.lang, &email)),
                code_step: true,
                done: false,
                email,
                verification_id,
            },
            Err(error) => match alert_for(&visit, &error) {
                Ok(alert) => Shown::email_step(email, Some(alert), error.status),
                Err(page) => return page,
            },
        };
        return page(&visit, &state, &experience, mode, shown);
    }
    let verification_id = form.text("verification_id");
    let password = form.text("password");
    let outcome = async {
        if mode.asks_password(&visit.config)
            && form.get("password_confirm") != Some(password.as_str())
        {
            return Err(None);
        }
        // A code verified by an earlier post of this form (whose next step failed) stands.
        let verified = experience
            .interaction
            .verifications
            .get(&verification_id)
            .is_some();
        if !verified {
            experience
                .verify_email_code(&email, &verification_id, &form.text("code"))
                .await
                .map_err(Some)?;
        }
        finish(&mut experience, mode, &verification_id, password.clone())
            .await
            .map_err(Some)
    }
    .await;
    let (status, alert, done) = match outcome {
        Ok(Some(resume)) => return Redirect::to(&resume).into_response(),
        Ok(None) => (StatusCode::OK, None, true),
        Err(None) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(Alert {
                message: visit.lang.phrases().passwords_do_not_match.to_owned(),
                issues: Vec::new(),
            }),
            false,
        ),
        Err(Some(error)) => match alert_for(&visit, &error) {
            Ok(alert) => (error.status, Some(alert), false),
            Err(page) => return page,
        },
    };
    let info = done.then(|| words(visit.lang).reset_done.to_owned());
    page(
        &visit,
        &state,
        &experience,
        mode,
        Shown {
            status,
            alert,
            info,
            code_step: true,
            done,
            email,
            verification_id,
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
    show(state, context, jar, headers, query, Mode::SignIn).await
}

async fn sign_in(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    post(state, context, jar, headers, query, body, Mode::SignIn).await
}

async fn register_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    show(state, context, jar, headers, query, Mode::Register).await
}

async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    post(state, context, jar, headers, query, body, Mode::Register).await
}

async fn forgot_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    show(state, context, jar, headers, query, Mode::ForgotPassword).await
}

async fn forgot(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    post(
        state,
        context,
        jar,
        headers,
        query,
        body,
        Mode::ForgotPassword,
    )
    .await
}

/// The links the password sign-in page shows to these pages.
pub fn sign_in_links(visit: &Visit<'_>) -> Vec<Link> {
    let w = words(visit.lang);
    let mut links = Vec::new();
    if code_sign_in_enabled(&visit.config) {
        links.push(Link {
            href: visit.href(Mode::SignIn.path()),
            label: w.code_link,
        });
    }
    if forgot_password_enabled(&visit.config) {
        links.push(Link {
            href: visit.href(Mode::ForgotPassword.path()),
            label: w.forgot_link,
        });
    }
    links
}

/// Where `/register` sends a browser when registration is by email rather than username.
pub fn register_by_email(visit: &Visit<'_>) -> Option<Response> {
    (rules::guard_username_sign_up(&visit.config).is_err() && email_sign_up_enabled(&visit.config))
        .then(|| Redirect::to(&visit.href(Mode::Register.path())).into_response())
}

/// Where `/sign-in` sends a browser when no sign-in method takes a password.
pub fn sign_in_by_code(visit: &Visit<'_>) -> Option<Response> {
    (rules::password_identifiers(&visit.config).is_empty() && code_sign_in_enabled(&visit.config))
        .then(|| Redirect::to(&visit.href(Mode::SignIn.path())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_these_pages_meet_reads_in_both_languages() {
        for code in [
            "verification_code.code_mismatch",
            "verification_code.expired",
            "request.message_rate_limited",
            "user.same_password",
        ] {
            assert!(error_message(Lang::En, code).is_some());
            assert!(error_message(Lang::Ja, code).is_some());
        }
        assert!(error_message(Lang::En, "no.such").is_none());
    }
}
