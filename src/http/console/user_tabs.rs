//! The user page's other tabs: user logs (with a detail view), roles, organizations,
//! identities (removal, warned when it is the last way to sign in), MFA factors (deletion),
//! personal access tokens (create, view, rename, delete) and the timeline from the log
//! (`/api/users/:id/history`, every change with actor, IP, request id, before and after).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::users::{Tab, User, UserHead, datetime, picker_value};
use super::{Console, ConsoleError, Frame, Section, encode, render, see_other};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/users/{id}/logs", get(logs))
        .route("/console/users/{id}/logs/{log_id}", get(log_detail))
        .route("/console/users/{id}/roles", get(roles))
        .route("/console/users/{id}/organizations", get(organizations))
        .route("/console/users/{id}/identities", get(identities))
        .route(
            "/console/users/{id}/identities/{target}/remove",
            get(confirm_identity_removal).post(remove_identity),
        )
        .route("/console/users/{id}/mfa", get(mfa))
        .route(
            "/console/users/{id}/mfa/{factor}/delete",
            post(delete_factor),
        )
        .route("/console/users/{id}/tokens", get(tokens).post(create_token))
        .route("/console/users/{id}/tokens/rename", post(rename_token))
        .route("/console/users/{id}/tokens/delete", post(delete_token))
        .route("/console/users/{id}/timeline", get(timeline))
}

async fn head(
    console: &Console,
    id: &str,
    tab: Tab,
    notice: Option<&'static str>,
) -> Result<UserHead, ConsoleError> {
    let user: User = console.api.get(&format!("/api/users/{id}")).await?;
    Ok(UserHead {
        user,
        tab,
        notice,
        password: None,
    })
}

/// The tab's user head, then what the tab shows, from the Management API at `path`.
async fn head_and<T: DeserializeOwned>(
    console: &Console,
    id: &str,
    tab: Tab,
    notice: Option<&'static str>,
    path: &str,
) -> Result<(UserHead, T), ConsoleError> {
    let u = head(console, id, tab, notice).await?;
    Ok((u, console.api.get(path).await?))
}

/// A change through the Management API (its answer's body unused), then back to the tab at `to`.
async fn change_then(
    console: &Console,
    method: Method,
    path: &str,
    body: Option<&Value>,
    to: &str,
) -> Result<Response, ConsoleError> {
    console.api.send::<Value>(method, path, body).await?;
    Ok(see_other(to))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// An activity-log entry (`/api/logs`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Log {
    pub id: String,
    pub key: String,
    #[serde(default)]
    pub payload: Value,
    pub created_at: i64,
}

impl Log {
    pub fn time(&self) -> String {
        datetime(self.created_at)
    }

    fn field(&self, key: &str) -> String {
        self.payload[key].as_str().unwrap_or("—").to_owned()
    }

    pub fn ip(&self) -> String {
        self.field("ip")
    }

    pub fn user_agent(&self) -> String {
        self.field("userAgent")
    }

    pub fn application(&self) -> String {
        self.field("applicationId")
    }

    pub fn result(&self) -> String {
        self.field("result")
    }

    pub fn raw(&self) -> String {
        pretty(&self.payload)
    }
}

#[derive(Template)]
#[template(path = "console/user_logs.html")]
struct LogsPage {
    f: Frame,
    u: UserHead,
    logs: Vec<Log>,
}

async fn logs(console: Console, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let path = format!(
        "/api/logs?{}",
        encode(&[("userId", &id), ("page_size", "50")])
    );
    let (u, logs) = head_and(&console, &id, Tab::Logs, None, &path).await?;
    render(&LogsPage {
        f: console.frame(Section::Users),
        u,
        logs,
    })
}

#[derive(Template)]
#[template(path = "console/user_log.html")]
struct LogPage {
    f: Frame,
    u: UserHead,
    log: Log,
}

async fn log_detail(
    console: Console,
    Path((id, log_id)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let path = format!("/api/logs/{log_id}");
    let (u, log) = head_and(&console, &id, Tab::Logs, None, &path).await?;
    render(&LogPage {
        f: console.frame(Section::Users),
        u,
        log,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Template)]
#[template(path = "console/user_roles.html")]
struct RolesPage {
    f: Frame,
    u: UserHead,
    roles: Vec<Role>,
}

async fn roles(console: Console, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let path = format!("/api/users/{id}/roles?page_size=100");
    let (u, roles) = head_and(&console, &id, Tab::Roles, None, &path).await?;
    render(&RolesPage {
        f: console.frame(Section::Users),
        u,
        roles,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub organization_roles: Vec<Role>,
}

impl Organization {
    pub fn role_names(&self) -> String {
        self.organization_roles
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Template)]
#[template(path = "console/user_organizations.html")]
struct OrganizationsPage {
    f: Frame,
    u: UserHead,
    organizations: Vec<Organization>,
}

async fn organizations(console: Console, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let path = format!("/api/users/{id}/organizations");
    let (u, organizations) = head_and(&console, &id, Tab::Organizations, None, &path).await?;
    render(&OrganizationsPage {
        f: console.frame(Section::Users),
        u,
        organizations,
    })
}

/// One upstream identity: the provider (`target`) and the user's id there.
pub struct Identity {
    pub target: String,
    pub user_id: String,
    pub details: String,
}

fn identities_of(user: &User) -> Vec<Identity> {
    user.identities
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(target, identity)| Identity {
                    target: target.clone(),
                    user_id: identity["userId"].as_str().unwrap_or_default().to_owned(),
                    details: pretty(&identity["details"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Logto's warning: removing this identity leaves the user no way to sign in (no password, no
/// email or phone for a code, no other identity).
fn is_last_sign_in_method(user: &User, target: &str) -> bool {
    let others = identities_of(user)
        .iter()
        .filter(|identity| identity.target != target)
        .count();
    let has = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    others == 0 && !user.has_password && !has(&user.primary_email) && !has(&user.primary_phone)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoIdentity {
    pub issuer: String,
    pub identity_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WithSso {
    #[serde(default)]
    sso_identities: Vec<SsoIdentity>,
}

#[derive(Template)]
#[template(path = "console/user_identities.html")]
struct IdentitiesPage {
    f: Frame,
    u: UserHead,
    identities: Vec<Identity>,
    sso: Vec<SsoIdentity>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn identities(
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let notice = query.done.is_some().then_some(console.t.identity_removed);
    let path = format!("/api/users/{id}?includeSsoIdentities=true");
    let (u, with_sso): (_, WithSso) =
        head_and(&console, &id, Tab::Identities, notice, &path).await?;
    render(&IdentitiesPage {
        f: console.frame(Section::Users),
        identities: identities_of(&u.user),
        sso: with_sso.sso_identities,
        u,
    })
}

#[derive(Template)]
#[template(path = "console/user_identity_remove.html")]
struct RemoveIdentityPage {
    f: Frame,
    u: UserHead,
    target: String,
    last: bool,
}

async fn confirm_identity_removal(
    console: Console,
    Path((id, target)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let u = head(&console, &id, Tab::Identities, None).await?;
    render(&RemoveIdentityPage {
        f: console.frame(Section::Users),
        last: is_last_sign_in_method(&u.user, &target),
        target,
        u,
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn remove_identity(
    console: Console,
    Path((id, target)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    change_then(
        &console,
        Method::DELETE,
        &format!("/api/users/{id}/identities/{}", path_segment(&target)),
        None,
        &format!("/console/users/{id}/identities?done=removed"),
    )
    .await
}

/// A value placed in a URL path: percent-encoded so it stays one segment.
fn path_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Factor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: Option<String>,
}

#[derive(Template)]
#[template(path = "console/user_mfa.html")]
struct MfaPage {
    f: Frame,
    u: UserHead,
    factors: Vec<Factor>,
}

async fn mfa(
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, ConsoleError> {
    let notice = query.done.is_some().then_some(console.t.factor_deleted);
    let path = format!("/api/users/{id}/mfa-verifications");
    let (u, factors) = head_and(&console, &id, Tab::Mfa, notice, &path).await?;
    render(&MfaPage {
        f: console.frame(Section::Users),
        u,
        factors,
    })
}

async fn delete_factor(
    console: Console,
    Path((id, factor)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    change_then(
        &console,
        Method::DELETE,
        &format!(
            "/api/users/{id}/mfa-verifications/{}",
            path_segment(&factor)
        ),
        None,
        &format!("/console/users/{id}/mfa?done=deleted"),
    )
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub name: String,
    pub value: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// The one whose value the page shows (`?view=<name>`).
    #[serde(skip)]
    pub shown: bool,
}

impl Token {
    pub fn created(&self) -> String {
        datetime(self.created_at)
    }

    pub fn expires(&self) -> Option<String> {
        self.expires_at.map(datetime)
    }
}

#[derive(Template)]
#[template(path = "console/user_tokens.html")]
struct TokensPage {
    f: Frame,
    u: UserHead,
    tokens: Vec<Token>,
}

#[derive(Deserialize)]
struct TokensQuery {
    view: Option<String>,
    done: Option<String>,
}

async fn tokens(
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<TokensQuery>,
) -> Result<Response, ConsoleError> {
    let t = console.t;
    let notice = match query.done.as_deref() {
        Some("deleted") => Some(t.token_deleted),
        Some(_) => Some(t.saved),
        None => None,
    };
    let path = format!("/api/users/{id}/personal-access-tokens");
    let (u, mut tokens): (_, Vec<Token>) =
        head_and(&console, &id, Tab::Tokens, notice, &path).await?;
    for token in &mut tokens {
        token.shown = query.view.as_deref() == Some(token.name.as_str());
    }
    render(&TokensPage {
        f: console.frame(Section::Users),
        u,
        tokens,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// `YYYY-MM-DD` (UTC midnight), optional.
    #[serde(default)]
    expires: String,
    #[serde(default)]
    current_name: String,
}

/// The end of the chosen UTC day, in milliseconds.
fn expiry_ms(date: &str) -> Result<Option<i64>, ConsoleError> {
    let date = date.trim();
    if date.is_empty() {
        return Ok(None);
    }
    let day = time::Date::parse(
        date,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| super::users::invalid("The expiry must be a date."))?;
    let end = day
        .with_hms(23, 59, 59)
        .map_err(|_| super::users::invalid("The expiry must be a date."))?;
    Ok(Some(end.assume_utc().unix_timestamp() * 1000))
}

async fn create_token(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<TokenForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let mut body = Map::new();
    body.insert("name".to_owned(), json!(form.name.trim()));
    if let Some(expires_at) = expiry_ms(&form.expires)? {
        body.insert("expiresAt".to_owned(), json!(expires_at));
    }
    let to = encode(&[("view", form.name.trim()), ("done", "created")]);
    change_then(
        &console,
        Method::POST,
        &format!("/api/users/{id}/personal-access-tokens"),
        Some(&Value::Object(body)),
        &format!("/console/users/{id}/tokens?{to}"),
    )
    .await
}

async fn rename_token(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<TokenForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    change_then(
        &console,
        Method::PATCH,
        &format!("/api/users/{id}/personal-access-tokens"),
        Some(&json!({"currentName": form.current_name, "name": form.name.trim()})),
        &format!("/console/users/{id}/tokens?done=renamed"),
    )
    .await
}

async fn delete_token(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<TokenForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    change_then(
        &console,
        Method::POST,
        &format!("/api/users/{id}/personal-access-tokens/delete"),
        Some(&json!({"name": form.current_name})),
        &format!("/console/users/{id}/tokens?done=deleted"),
    )
    .await
}

#[derive(Deserialize)]
pub struct Actor {
    pub kind: String,
    pub id: Option<String>,
}

/// One entry of the user's audit trail.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub created_at: i64,
    pub summary: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Entry {
    pub fn time(&self) -> String {
        datetime(self.created_at)
    }

    pub fn actor_label(&self) -> String {
        match &self.actor.id {
            Some(id) => format!("{} {id}", self.actor.kind),
            None => self.actor.kind.clone(),
        }
    }

    /// The moment of this change, for the as-of view (which includes it).
    pub fn as_of(&self) -> String {
        picker_value(self.created_at)
    }

    pub fn before_json(&self) -> Option<String> {
        self.before.as_ref().map(pretty)
    }

    pub fn after_json(&self) -> Option<String> {
        self.after.as_ref().map(pretty)
    }
}

#[derive(Template)]
#[template(path = "console/user_timeline.html")]
struct TimelinePage {
    f: Frame,
    u: UserHead,
    entries: Vec<Entry>,
    page: u64,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

const TIMELINE_PAGE: u64 = 20;

async fn timeline(
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let u = head(&console, &id, Tab::Timeline, None).await?;
    let page = query.page.unwrap_or(1).max(1);
    let listed = console
        .api
        .list::<Entry>(&format!(
            "/api/users/{id}/history?page={page}&page_size={TIMELINE_PAGE}"
        ))
        .await?;
    let link = |to: u64| format!("/console/users/{id}/timeline?page={to}");
    render(&TimelinePage {
        f: console.frame(Section::Users),
        u,
        entries: listed.items,
        previous: (page > 1).then(|| link(page - 1)),
        next: (page * TIMELINE_PAGE < listed.total).then(|| link(page + 1)),
        page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(identities: Value, has_password: bool, email: Option<&str>) -> User {
        serde_json::from_value(json!({
            "id": "u1", "username": "carol", "primaryEmail": email, "primaryPhone": null,
            "name": null, "avatar": null, "customData": {}, "profile": {},
            "identities": identities, "lastSignInAt": null, "createdAt": 0,
            "applicationId": null, "isSuspended": false, "hasPassword": has_password
        }))
        .unwrap()
    }

    #[test]
    fn the_last_way_to_sign_in_is_warned_about() {
        let one = json!({"github": {"userId": "g1", "details": {}}});
        let two = json!({"github": {"userId": "g1"}, "google": {"userId": "o1"}});
        assert!(is_last_sign_in_method(
            &user(one.clone(), false, None),
            "github"
        ));
        assert!(!is_last_sign_in_method(
            &user(one.clone(), true, None),
            "github"
        ));
        assert!(!is_last_sign_in_method(
            &user(one, false, Some("c@example.com")),
            "github"
        ));
        assert!(!is_last_sign_in_method(&user(two, false, None), "github"));
    }

    #[test]
    fn expiry_dates_end_with_their_utc_day() {
        assert_eq!(expiry_ms("").unwrap(), None);
        assert_eq!(expiry_ms("2030-01-01").unwrap(), Some(1_893_542_399_000));
        assert!(expiry_ms("soon").is_err());
    }

    #[test]
    fn path_segments_stay_one_segment() {
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
