//! Second factors on the hosted pages: `/mfa-verification` (a TOTP code, or a backup code),
//! `/mfa-binding/totp` (enrolment: the QR code and the secret, confirmed by a first code),
//! `/mfa-binding/backup-code` (ten codes shown once) and `/mfa-binding/skip`. Every page that
//! submits an interaction (password, email code, magic link, social, registration) is sent
//! here by `step_for` when the submission answers with what is owed, so no first factor
//! reaches the application without the second; the steps are the Experience API's
//! (`flow/mfa.rs`).

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use domain::mfa::MfaFactorKind;

use super::super::locale::{Lang, Phrases};
use super::{Alert, Brand, Form, Visit, csrf_token, render, visit, with_headers_of};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::experience::flow::{Experience, MfaStatus};
use crate::http::extract::RequestContext;

const VERIFICATION: &str = "/mfa-verification";
const TOTP_BINDING: &str = "/mfa-binding/totp";
const BACKUP_CODES: &str = "/mfa-binding/backup-code";
const SKIP: &str = "/mfa-binding/skip";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(VERIFICATION, get(verification_page).post(verify))
        .route(TOTP_BINDING, get(totp_page).post(bind_totp))
        .route(BACKUP_CODES, get(backup_codes_page).post(bind_backup_codes))
        .route(SKIP, post(skip))
}

/// The page that takes the step a refused submission asks for, when the refusal is about
/// second factors.
pub(super) fn step_for(visit: &Visit<'_>, code: &str) -> Option<Response> {
    let path = match code {
        "session.mfa.require_mfa_verification" => VERIFICATION,
        "user.missing_mfa" => TOTP_BINDING,
        "session.mfa.backup_code_required" => BACKUP_CODES,
        _ => return None,
    };
    Some(Redirect::to(&visit.href(path)).into_response())
}

/// The words of these pages, beside the shared ones in `locale.rs`.
struct Words {
    verify_title: &'static str,
    verify_intro: &'static str,
    totp_label: &'static str,
    verify_button: &'static str,
    backup_title: &'static str,
    backup_label: &'static str,
    backup_button: &'static str,
    bind_title: &'static str,
    bind_intro: &'static str,
    qr_alt: &'static str,
    secret_label: &'static str,
    skip_button: &'static str,
    codes_title: &'static str,
    codes_intro: &'static str,
    codes_saved: &'static str,
}

const EN: Words = Words {
    verify_title: "Two-step verification",
    verify_intro: "Enter the 6-digit code from your authenticator app.",
    totp_label: "Verification code",
    verify_button: "Verify",
    backup_title: "No access to your app?",
    backup_label: "Backup code",
    backup_button: "Use a backup code",
    bind_title: "Set up an authenticator app",
    bind_intro: "Scan the QR code with your authenticator app (or type the key), then enter the \
                 6-digit code it shows.",
    qr_alt: "QR code for your authenticator app",
    secret_label: "Key:",
    skip_button: "Skip for now",
    codes_title: "Save your backup codes",
    codes_intro: "Each code signs you in once when you cannot use your authenticator app. Keep \
                  them somewhere safe: they are shown only now.",
    codes_saved: "I have saved them, continue",
};

const JA: Words = Words {
    verify_title: "2段階認証",
    verify_intro: "認証アプリに表示されている6桁のコードを入力してください。",
    totp_label: "確認コード",
    verify_button: "確認",
    backup_title: "アプリを使えない場合",
    backup_label: "バックアップコード",
    backup_button: "バックアップコードを使う",
    bind_title: "認証アプリの設定",
    bind_intro: "認証アプリでQRコードを読み取り（またはキーを入力し）、表示された6桁のコードを入力してください。",
    qr_alt: "認証アプリ用のQRコード",
    secret_label: "キー：",
    skip_button: "今はスキップ",
    codes_title: "バックアップコードの保存",
    codes_intro: "認証アプリを使えないとき、各コードで一度だけサインインできます。表示されるのは今だけなので、安全な場所に保管してください。",
    codes_saved: "保存しました。続行",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

#[derive(Template)]
#[template(path = "mfa_verification.html")]
struct VerificationPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a Words,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    backup_codes: bool,
}

#[derive(Template)]
#[template(path = "mfa_totp_binding.html")]
struct TotpBindingPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a Words,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    verification_id: String,
    secret: String,
    qr_code: String,
    skip_action: Option<String>,
}

#[derive(Template)]
#[template(path = "mfa_backup_codes.html")]
struct BackupCodesPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    w: &'a Words,
    brand: &'a Brand,
    alert: Option<Alert>,
    action: String,
    csrf: String,
    verification_id: String,
    codes: Vec<String>,
}

/// Submits again once a step is done: on to the application, or to the next step owed.
async fn continue_on(visit: &Visit<'_>, experience: &mut Experience<'_>) -> Response {
    match experience.submit().await {
        Ok(resume) => Redirect::to(&resume).into_response(),
        Err(error) => visit.message(error.status, error.code),
    }
}

/// A failed step: its form again with the message, or the page for what the form cannot fix.
fn failed(visit: &Visit<'_>, error: &ApiError, form: impl FnOnce(Alert) -> Response) -> Response {
    match visit.alert(error) {
        Ok(alert) => with_headers_of(error, form(alert)),
        Err(page) => page,
    }
}

async fn verification_form(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &mut Experience<'_>,
    status: StatusCode,
    alert: Option<Alert>,
) -> Response {
    let factors = match experience.second_factor_owed().await {
        Ok(MfaStatus::Verify(factors)) => factors,
        // Nothing (more) to verify here, e.g. a reload after the code passed.
        Ok(MfaStatus::Satisfied | MfaStatus::Enrol { .. } | MfaStatus::BackupCodeRequired) => {
            return continue_on(visit, experience).await;
        }
        Err(error) => return visit.message(error.status, error.code),
    };
    let w = words(visit.lang);
    let t = visit.lang.phrases();
    render(
        status,
        &VerificationPage {
            lang: visit.lang.tag(),
            title: w.verify_title,
            t,
            w,
            brand: &visit.brand,
            alert,
            action: visit.href(VERIFICATION),
            csrf: csrf_token(state, experience.id()),
            backup_codes: factors.contains(&"BackupCode"),
        },
    )
}

async fn verification_page(
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
    verification_form(&visit, &state, &mut experience, StatusCode::OK, None).await
}

async fn verify(
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
    let code = form.text("code");
    let verified = match form.get("factor") {
        Some("backup") => experience.verify_backup_code(&code).await,
        _ => experience.verify_totp(&code, None).await,
    };
    match verified {
        Ok(_) => continue_on(&visit, &mut experience).await,
        Err(error) => {
            let alert = match visit.alert(&error) {
                Ok(alert) => alert,
                Err(page) => return page,
            };
            let page =
                verification_form(&visit, &state, &mut experience, error.status, Some(alert)).await;
            with_headers_of(&error, page)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn totp_form(
    visit: &Visit<'_>,
    state: &AppState,
    experience: &Experience<'_>,
    status: StatusCode,
    verification_id: String,
    (secret, qr_code): (String, String),
    skippable: bool,
    alert: Option<Alert>,
) -> Response {
    let w = words(visit.lang);
    render(
        status,
        &TotpBindingPage {
            lang: visit.lang.tag(),
            title: w.bind_title,
            t: visit.lang.phrases(),
            w,
            brand: &visit.brand,
            alert,
            action: visit.href(TOTP_BINDING),
            csrf: csrf_token(state, experience.id()),
            verification_id,
            secret,
            qr_code,
            skip_action: skippable.then(|| visit.href(SKIP)),
        },
    )
}

/// Whether the enrolment the policy asks for may be declined.
async fn skippable(experience: &Experience<'_>) -> bool {
    matches!(
        experience.second_factor_owed().await,
        Ok(MfaStatus::Enrol {
            skippable: true,
            ..
        })
    )
}

async fn totp_page(
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
    let skippable = skippable(&experience).await;
    match experience.new_totp_secret().await {
        Ok((verification_id, secret, qr)) => totp_form(
            &visit,
            &state,
            &experience,
            StatusCode::OK,
            verification_id,
            (secret, qr),
            skippable,
            None,
        ),
        Err(error) => visit.message(error.status, error.code),
    }
}

async fn bind_totp(
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
    let verification_id = form.text("verification_id");
    let bound = async {
        experience
            .verify_totp(&form.text("code"), Some(&verification_id))
            .await?;
        experience
            .bind_mfa(MfaFactorKind::Totp, &verification_id)
            .await
    }
    .await;
    let error = match bound {
        Ok(()) => return continue_on(&visit, &mut experience).await,
        Err(error) => error,
    };
    // The same secret again: the person has scanned it already.
    let shown = match experience.totp_enrolment(&verification_id).await {
        Ok(shown) => shown,
        Err(error) => return visit.message(error.status, error.code),
    };
    let skippable = skippable(&experience).await;
    failed(&visit, &error, |alert| {
        totp_form(
            &visit,
            &state,
            &experience,
            error.status,
            verification_id,
            shown,
            skippable,
            Some(alert),
        )
    })
}

async fn backup_codes_page(
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
    let (verification_id, codes) = match experience.new_backup_codes().await {
        Ok(made) => made,
        Err(error) => return visit.message(error.status, error.code),
    };
    let w = words(visit.lang);
    render(
        StatusCode::OK,
        &BackupCodesPage {
            lang: visit.lang.tag(),
            title: w.codes_title,
            t: visit.lang.phrases(),
            w,
            brand: &visit.brand,
            alert: None,
            action: visit.href(BACKUP_CODES),
            csrf: csrf_token(&state, experience.id()),
            verification_id,
            codes,
        },
    )
}

async fn bind_backup_codes(
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
    match experience
        .bind_mfa(MfaFactorKind::BackupCode, &form.text("verification_id"))
        .await
    {
        Ok(()) => continue_on(&visit, &mut experience).await,
        Err(error) => visit.message(error.status, error.code),
    }
}

async fn skip(
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
    match experience.skip_mfa().await {
        Ok(()) => continue_on(&visit, &mut experience).await,
        Err(error) => visit.message(error.status, error.code),
    }
}
