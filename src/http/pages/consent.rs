//! The consent page (`/consent`): a third-party application asks the signed-in user for what
//! its authorization request names (OpenID scopes, API resources and their permissions).
//! Accepting records the consent with the code (`interaction.consented`); refusing sends the
//! application `access_denied`. First-party applications are consented to automatically and
//! never come here (logto-compat §9, "prompt handling").

use askama::Template;
use aws_lc_rs::constant_time;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;

use super::experience::{Brand, brand};
use super::locale::{self, Lang, Phrases};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::http::oidc::INTERACTION_COOKIE;
use crate::http::oidc::authorize::{self, KNOWN_SCOPES, Pending};

pub fn routes() -> Router<AppState> {
    Router::new().route("/consent", get(consent_page).post(consent))
}

/// Keyed-hash domain of the consent form's CSRF token.
const CSRF_HASH_KIND: &str = "consent csrf";

struct Words {
    title: &'static str,
    wants_access: &'static str,
    signed_in_as: &'static str,
    requested: &'static str,
    resources: &'static str,
    authorize: &'static str,
    cancel: &'static str,
}

const EN: Words = Words {
    title: "Authorize access",
    wants_access: "wants to access your account.",
    signed_in_as: "Signed in as",
    requested: "It asks for",
    resources: "and for access to",
    authorize: "Authorize",
    cancel: "Cancel",
};

const JA: Words = Words {
    title: "アクセスの許可",
    wants_access: "があなたのアカウントへのアクセスを求めています。",
    signed_in_as: "サインイン中のアカウント：",
    requested: "求められている情報",
    resources: "アクセスを求められているリソース",
    authorize: "許可する",
    cancel: "キャンセル",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

/// What granting an OpenID scope shares, in words; `None` for scopes that share nothing to
/// speak of (`openid` alone names the account, which the page already shows).
fn scope_words(lang: Lang, scope: &str) -> Option<&'static str> {
    let (en, ja) = match scope {
        "profile" => (
            "Your name, username, avatar and other profile information",
            "名前、ユーザー名、アバターなどのプロフィール情報",
        ),
        "email" => ("Your email address", "メールアドレス"),
        "phone" => ("Your phone number", "電話番号"),
        "address" => ("Your address", "住所"),
        "custom_data" => ("Your custom data", "カスタムデータ"),
        "identities" => (
            "Your linked social accounts",
            "連携済みのソーシャルアカウント",
        ),
        "roles" => ("Your roles", "ロール"),
        "urn:logto:scope:organizations" => ("Your organizations", "所属している組織"),
        "urn:logto:scope:organization_roles" => ("Your roles in organizations", "組織でのロール"),
        "urn:logto:scope:sessions" => ("Your sign-in sessions", "サインインセッション"),
        "urn:logto:scope:trusted_devices" => ("Your trusted devices", "信頼済みのデバイス"),
        "offline_access" => (
            "Keep access while you are not using it",
            "利用していない間もアクセスを維持すること",
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Ja => ja,
    })
}

struct ResourceLine {
    name: String,
    /// The requested permissions this resource defines, comma-separated.
    permissions: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    lang: &'a str,
    title: &'a str,
    t: &'a Phrases,
    brand: &'a Brand,
    c: &'a Words,
    app_name: &'a str,
    account: &'a str,
    scopes: Vec<&'static str>,
    resources: Vec<ResourceLine>,
    csrf: String,
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

fn csrf_token(state: &AppState, interaction_id: &str) -> String {
    state
        .store
        .keyring()
        .lookup_hash(CSRF_HASH_KIND, interaction_id)
}

/// The interaction waiting for consent, with the language and branding to ask in.
struct Asking {
    pending: Option<Pending>,
    lang: Lang,
    brand: Brand,
}

async fn asking(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Asking, ApiError> {
    let uid = jar
        .get(INTERACTION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let pending = authorize::pending(state, context.now_ms(), jar, &uid)
        .await?
        .filter(|p| p.application.is_third_party);
    let config = {
        let db = state.store.pool().get().await?;
        projections::sign_in_experience::current(&db).await?
    };
    let ui_locales = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ui_locales")
            .map(|(_, v)| v.into_owned())
    });
    let lang = locale::negotiate(
        ui_locales.as_deref(),
        pending
            .as_ref()
            .and_then(|p| p.request.ui_locales.as_deref()),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        &config.language_info,
    );
    Ok(Asking {
        pending,
        lang,
        brand: brand(&config),
    })
}

impl Asking {
    fn lost(&self) -> Response {
        let t = self.lang.phrases();
        render(
            StatusCode::BAD_REQUEST,
            &MessagePage {
                lang: self.lang.tag(),
                title: t.error_title,
                t,
                brand: &self.brand,
                message: locale::error_message(self.lang, "session.not_found")
                    .unwrap_or(t.unknown_error),
                code: None,
            },
        )
    }
}

/// The requested resources, each with the requested permissions it defines.
async fn resource_lines(
    state: &AppState,
    pending: &Pending,
) -> Result<Vec<ResourceLine>, ApiError> {
    let db = state.store.pool().get().await?;
    let mut lines = Vec::new();
    for indicator in &pending.request.resources {
        let Some(resource) = projections::resources::by_indicator(&db, indicator).await? else {
            continue;
        };
        let defined = projections::resources::scopes_of(&db, &resource.id).await?;
        let permissions: Vec<&str> = pending
            .request
            .scopes
            .iter()
            .filter(|s| !KNOWN_SCOPES.contains(&s.as_str()))
            .filter(|s| defined.iter().any(|d| &d.name == *s))
            .map(String::as_str)
            .collect();
        lines.push(ResourceLine {
            name: resource.name,
            permissions: permissions.join(", "),
        });
    }
    Ok(lines)
}

async fn consent_page(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let asking = match asking(&state, &context, &jar, &headers, query.as_deref()).await {
        Ok(asking) => asking,
        Err(error) => return error.into_response(),
    };
    let Some(pending) = &asking.pending else {
        return asking.lost();
    };
    let resources = match resource_lines(&state, pending).await {
        Ok(lines) => lines,
        Err(error) => return error.into_response(),
    };
    let user = &pending.user;
    let account = user
        .username
        .as_deref()
        .or(user.primary_email.as_deref())
        .or(user.primary_phone.as_deref())
        .or(user.name.as_deref())
        .unwrap_or(&user.id);
    let c = words(asking.lang);
    render(
        StatusCode::OK,
        &ConsentPage {
            lang: asking.lang.tag(),
            title: c.title,
            t: asking.lang.phrases(),
            brand: &asking.brand,
            c,
            app_name: &pending.application.name,
            account,
            scopes: pending
                .request
                .scopes
                .iter()
                .filter_map(|s| scope_words(asking.lang, s))
                .collect(),
            resources,
            csrf: csrf_token(&state, &pending.interaction.id),
        },
    )
}

/// `POST /consent`: `action=accept` or `action=deny`, with the page's CSRF token.
async fn consent(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let asking = match asking(&state, &context, &jar, &headers, None).await {
        Ok(asking) => asking,
        Err(error) => return error.into_response(),
    };
    let Some(pending) = &asking.pending else {
        return asking.lost();
    };
    let expected = csrf_token(&state, &pending.interaction.id);
    let csrf_valid = field("_csrf").is_some_and(|sent| {
        constant_time::verify_slices_are_equal(expected.as_bytes(), sent.as_bytes()).is_ok()
    });
    if !csrf_valid {
        let t = asking.lang.phrases();
        return render(
            StatusCode::FORBIDDEN,
            &MessagePage {
                lang: asking.lang.tag(),
                title: t.error_title,
                t,
                brand: &asking.brand,
                message: locale::error_message(asking.lang, "session.csrf")
                    .unwrap_or(t.unknown_error),
                code: None,
            },
        );
    }
    let accepted = match field("action") {
        Some("accept") => true,
        Some("deny") => false,
        Some(_) | None => return asking.lost(),
    };
    authorize::answer_consent(&state, &context, &jar, &pending.interaction.id, accepted).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shared_scope_is_worded_in_both_languages() {
        for scope in KNOWN_SCOPES.iter().filter(|s| **s != "openid") {
            assert!(scope_words(Lang::En, scope).is_some(), "{scope}");
            assert!(scope_words(Lang::Ja, scope).is_some(), "{scope}");
        }
        assert_eq!(scope_words(Lang::En, "read:orders"), None);
    }
}
