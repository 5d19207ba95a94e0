//! The console's pages beyond users: one-time tokens (create, copy, status, revoke), connectors
//! (with "send test email" from the saved configuration) and the sign-in experience (branding
//! colour, languages, legal links).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::users::{datetime, invalid};
use super::{Console, ConsoleError, Frame, Section, encode, render, see_other};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/one-time-tokens",
            get(one_time_tokens).post(create_one_time_token),
        )
        .route(
            "/console/one-time-tokens/{id}/revoke",
            post(revoke_one_time_token),
        )
        .route("/console/connectors", get(connectors))
        .route("/console/connectors/{id}/test", post(test_connector))
        .route(
            "/console/sign-in-experience",
            get(sign_in_experience).post(save_sign_in_experience),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeToken {
    pub id: String,
    pub email: String,
    pub token: String,
    pub status: String,
    pub expires_at: i64,
    /// The one just created, whose value the page offers to copy.
    #[serde(skip)]
    pub fresh: bool,
}

impl OneTimeToken {
    pub fn expires(&self) -> String {
        datetime(self.expires_at)
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// What an application adds to its authorization request so the link signs the person in
    /// (logto-compat §4): the token and the email as the login hint.
    pub fn link_parameters(&self) -> String {
        encode(&[("one_time_token", &self.token), ("login_hint", &self.email)])
    }
}

#[derive(Template)]
#[template(path = "console/one_time_tokens.html")]
struct OneTimeTokensPage {
    f: Frame,
    tokens: Vec<OneTimeToken>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct CreatedQuery {
    created: Option<String>,
    done: Option<String>,
}

async fn one_time_tokens(
    console: Console,
    Query(query): Query<CreatedQuery>,
) -> Result<Response, ConsoleError> {
    let mut tokens: Vec<OneTimeToken> = console
        .api
        .get("/api/one-time-tokens?page=1&page_size=50")
        .await?;
    for token in &mut tokens {
        token.fresh = query.created.as_deref() == Some(token.id.as_str());
    }
    let t = console.t;
    render(&OneTimeTokensPage {
        f: console.frame(Section::OneTimeTokens),
        tokens,
        notice: match (query.created.is_some(), query.done.as_deref()) {
            (true, _) => Some(t.token_created),
            (false, Some(_)) => Some(t.token_revoked),
            (false, None) => None,
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OneTimeTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    minutes: String,
}

async fn create_one_time_token(
    console: Console,
    axum::Form(form): axum::Form<OneTimeTokenForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let minutes: i64 = form
        .minutes
        .trim()
        .parse()
        .map_err(|_| invalid("The lifetime must be a whole number of minutes."))?;
    let token: OneTimeToken = console
        .api
        .send(
            Method::POST,
            "/api/one-time-tokens",
            Some(&json!({"email": form.email.trim(), "expiresIn": minutes * 60})),
        )
        .await?
        .ok_or_else(|| ConsoleError::Unexpected("no token in the answer".to_owned()))?;
    Ok(see_other(&format!(
        "/console/one-time-tokens?{}",
        encode(&[("created", &token.id)])
    )))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn revoke_one_time_token(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    console
        .api
        .send::<Value>(
            Method::PUT,
            &format!("/api/one-time-tokens/{id}/status"),
            Some(&json!({"status": "revoked"})),
        )
        .await?;
    Ok(see_other("/console/one-time-tokens?done=revoked"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub id: String,
    pub connector_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub metadata: Value,
}

impl Connector {
    pub fn name(&self) -> String {
        let name = &self.metadata["name"];
        name["en"]
            .as_str()
            .or_else(|| name.as_str())
            .unwrap_or(&self.connector_id)
            .to_owned()
    }

    pub fn is_email(&self) -> bool {
        self.kind == "Email"
    }

    /// Where it sends from or signs in with, without its secrets.
    pub fn summary(&self) -> String {
        ["host", "fromEmail", "issuer", "clientId"]
            .iter()
            .filter_map(|key| self.config[*key].as_str().map(|v| format!("{key}: {v}")))
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

#[derive(Template)]
#[template(path = "console/connectors.html")]
struct ConnectorsPage {
    f: Frame,
    connectors: Vec<Connector>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn connectors(
    console: Console,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let connectors = console.api.get("/api/connectors").await?;
    render(&ConnectorsPage {
        f: console.frame(Section::Connectors),
        connectors,
        notice: query.done.is_some().then_some(console.t.test_sent),
    })
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// Sends the test message with the saved configuration, through the factory's test route.
async fn test_connector(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<TestForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let connector: Connector = console.api.get(&format!("/api/connectors/{id}")).await?;
    console
        .api
        .send::<Value>(
            Method::POST,
            &format!("/api/connectors/{}/test", connector.connector_id),
            Some(&json!({
                "email": form.email.trim(),
                "config": connector.config,
                "locale": console.lang.tag(),
            })),
        )
        .await?;
    Ok(see_other("/console/connectors?done=sent"))
}

#[derive(Template)]
#[template(path = "console/sign_in_experience.html")]
struct SignInExperiencePage {
    f: Frame,
    primary_color: String,
    fallback_language: String,
    auto_detect: bool,
    terms_of_use_url: String,
    privacy_policy_url: String,
    raw: String,
    notice: Option<&'static str>,
}

async fn sign_in_experience(
    console: Console,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let experience: Value = console.api.get("/api/sign-in-exp").await?;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    render(&SignInExperiencePage {
        f: console.frame(Section::SignInExperience),
        primary_color: text(&experience["color"]["primaryColor"]),
        fallback_language: text(&experience["languageInfo"]["fallbackLanguage"]),
        auto_detect: experience["languageInfo"]["autoDetect"]
            .as_bool()
            .unwrap_or(true),
        terms_of_use_url: text(&experience["termsOfUseUrl"]),
        privacy_policy_url: text(&experience["privacyPolicyUrl"]),
        raw: serde_json::to_string_pretty(&experience).unwrap_or_default(),
        notice: query.done.is_some().then_some(console.t.saved),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExperienceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    primary_color: String,
    #[serde(default)]
    fallback_language: String,
    auto_detect: Option<String>,
    #[serde(default)]
    terms_of_use_url: String,
    #[serde(default)]
    privacy_policy_url: String,
}

/// The PATCH body: the colour and language objects whole (the API takes them whole), the links
/// `null` when emptied.
fn experience_patch(current: &Value, form: &ExperienceForm) -> Value {
    let mut color = current["color"].as_object().cloned().unwrap_or_default();
    color.insert("primaryColor".to_owned(), json!(form.primary_color.trim()));
    let mut language = current["languageInfo"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    language.insert(
        "fallbackLanguage".to_owned(),
        json!(form.fallback_language.trim()),
    );
    language.insert("autoDetect".to_owned(), json!(form.auto_detect.is_some()));
    let link = |value: &str| {
        let value = value.trim();
        if value.is_empty() {
            Value::Null
        } else {
            json!(value)
        }
    };
    let mut body = Map::new();
    body.insert("color".to_owned(), Value::Object(color));
    body.insert("languageInfo".to_owned(), Value::Object(language));
    body.insert("termsOfUseUrl".to_owned(), link(&form.terms_of_use_url));
    body.insert(
        "privacyPolicyUrl".to_owned(),
        link(&form.privacy_policy_url),
    );
    Value::Object(body)
}

async fn save_sign_in_experience(
    console: Console,
    axum::Form(form): axum::Form<ExperienceForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let current: Value = console.api.get("/api/sign-in-exp").await?;
    console
        .api
        .send::<Value>(
            Method::PATCH,
            "/api/sign-in-exp",
            Some(&experience_patch(&current, &form)),
        )
        .await?;
    Ok(see_other("/console/sign-in-experience?done=saved"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_experience_patch_keeps_the_rest_of_each_object_and_nulls_emptied_links() {
        let current = json!({
            "color": {"primaryColor": "#111111", "isDarkModeEnabled": true,
                      "darkPrimaryColor": "#222222"},
            "languageInfo": {"autoDetect": true, "fallbackLanguage": "en"},
            "termsOfUseUrl": "https://example.com/terms",
        });
        let form = ExperienceForm {
            csrf: String::new(),
            primary_color: " #4a3aa8 ".to_owned(),
            fallback_language: "ja".to_owned(),
            auto_detect: None,
            terms_of_use_url: String::new(),
            privacy_policy_url: "https://example.com/privacy".to_owned(),
        };
        assert_eq!(
            experience_patch(&current, &form),
            json!({
                "color": {"primaryColor": "#4a3aa8", "isDarkModeEnabled": true,
                          "darkPrimaryColor": "#222222"},
                "languageInfo": {"autoDetect": false, "fallbackLanguage": "ja"},
                "termsOfUseUrl": null,
                "privacyPolicyUrl": "https://example.com/privacy",
            })
        );
    }

    #[test]
    fn magic_link_parameters_carry_the_token_and_the_login_hint() {
        let token = OneTimeToken {
            id: "t1".to_owned(),
            email: "a+b@example.com".to_owned(),
            token: "abc".to_owned(),
            status: "active".to_owned(),
            expires_at: 0,
            fresh: false,
        };
        assert_eq!(
            token.link_parameters(),
            "one_time_token=abc&login_hint=a%2Bb%40example.com"
        );
    }
}
