//! User management: the users table with keyword search, adding a user (the generated initial
//! password shown once), and the user-details page (profile editing, password reset shown once,
//! suspend / reactivate, delete after confirmation).

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Console, ConsoleError, Frame, Section, encode, render, see_other};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/users", get(list).post(create))
        .route("/console/users/new", get(new_user))
        .route("/console/users/{id}", get(details).post(save))
        .route("/console/users/{id}/password", post(reset_password))
        .route("/console/users/{id}/suspension", post(suspension))
        .route(
            "/console/users/{id}/delete",
            get(confirm_delete).post(delete),
        )
        .route("/console/users/{id}/erase", get(confirm_erase).post(erase))
}

const PAGE_SIZE: u64 = 20;

/// A user as the Management API shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: Option<String>,
    pub primary_email: Option<String>,
    pub primary_phone: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    #[serde(default)]
    pub custom_data: Value,
    #[serde(default)]
    pub profile: Value,
    #[serde(default)]
    pub identities: Value,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub application_id: Option<String>,
    #[serde(default)]
    pub is_suspended: bool,
    #[serde(default)]
    pub has_password: bool,
    pub generated_password: Option<String>,
}

impl User {
    /// What to call the user: the first of name, username, email, phone, id.
    pub fn display_name(&self) -> String {
        [
            &self.name,
            &self.username,
            &self.primary_email,
            &self.primary_phone,
        ]
        .into_iter()
        .flatten()
        .find(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| self.id.clone())
    }

    /// One or two letters for the avatar placeholder.
    pub fn initials(&self) -> String {
        self.display_name()
            .chars()
            .next()
            .map(|c| c.to_uppercase().collect())
            .unwrap_or_default()
    }

    pub fn created(&self) -> String {
        datetime(self.created_at)
    }

    pub fn custom_data_json(&self) -> String {
        pretty(&self.custom_data)
    }

    pub fn profile_json(&self) -> String {
        pretty(&self.profile)
    }
}

fn pretty(value: &Value) -> String {
    match value {
        Value::Null => "{}".to_owned(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn datetime(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Application {
    id: String,
    name: String,
}

/// A row of the users table.
pub struct Row {
    pub user: User,
    pub application: Option<String>,
    pub latest_sign_in: Option<String>,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    f: Frame,
    rows: Vec<Row>,
    search: String,
    page: u64,
    pages: u64,
    previous: Option<String>,
    next: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct ListQuery {
    search: Option<String>,
    page: Option<u64>,
    done: Option<String>,
}

/// A search term as Logto's console sends it: a substring match (`%keyword%`) over name, id,
/// username, phone and email. A typed `_` or `%` only widens the match (it still matches
/// itself); a backslash would be taken as LIKE's escape character, so it is left out.
fn search_term(keyword: &str) -> Option<String> {
    let keyword: String = keyword.trim().chars().filter(|c| *c != '\\').collect();
    (!keyword.is_empty()).then(|| format!("%{keyword}%"))
}

async fn list(console: Console, Query(query): Query<ListQuery>) -> Result<Response, ConsoleError> {
    let keyword = query.search.unwrap_or_default();
    let page = query.page.unwrap_or(1).max(1);
    let page_text = page.to_string();
    let size = PAGE_SIZE.to_string();
    let mut params = vec![("page", page_text.as_str()), ("page_size", size.as_str())];
    let term = search_term(&keyword);
    if let Some(term) = &term {
        params.push(("search", term));
    }
    let listed = console
        .api
        .list::<User>(&format!("/api/users?{}", encode(&params)))
        .await?;
    let names: HashMap<String, String> = if listed.items.iter().any(|u| u.application_id.is_some())
    {
        console
            .api
            .get::<Vec<Application>>("/api/applications?page_size=100")
            .await?
            .into_iter()
            .map(|app| (app.id, app.name))
            .collect()
    } else {
        HashMap::new()
    };
    let pages = listed.total.div_ceil(PAGE_SIZE).max(1);
    let link = |to: u64| {
        format!(
            "/console/users?{}",
            encode(&[("search", &keyword), ("page", &to.to_string())])
        )
    };
    let rows = listed
        .items
        .into_iter()
        .map(|user| Row {
            application: user
                .application_id
                .as_ref()
                .map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())),
            latest_sign_in: user.last_sign_in_at.map(datetime),
            user,
        })
        .collect();
    render(&UsersPage {
        f: console.frame(Section::Users),
        rows,
        previous: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        search: keyword,
        page,
        pages,
        notice: match query.done.as_deref() {
            Some("deleted") => Some(console.t.user_deleted),
            Some("erased") => Some(console.t.user_erased),
            _ => None,
        },
    })
}

#[derive(Template)]
#[template(path = "console/user_new.html")]
struct NewUserPage {
    f: Frame,
}

async fn new_user(console: Console) -> Result<Response, ConsoleError> {
    render(&NewUserPage {
        f: console.frame(Section::Users),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    primary_email: String,
    #[serde(default)]
    primary_phone: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    avatar: String,
    custom_data: Option<String>,
    profile: Option<String>,
}

fn filled(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

/// The API takes phone numbers as digits only ("+81 80-1234-5678" is 818012345678).
fn phone_digits(typed: &str) -> String {
    let digits: String = typed.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        typed.trim().to_owned()
    } else {
        digits
    }
}

async fn create(
    console: Console,
    axum::Form(form): axum::Form<ProfileForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let mut body = Map::new();
    for (key, value) in [
        ("username", &form.username),
        ("primaryEmail", &form.primary_email),
        ("primaryPhone", &phone_digits(&form.primary_phone)),
        ("name", &form.name),
    ] {
        if let Some(value) = filled(value) {
            body.insert(key.to_owned(), json!(value));
        }
    }
    if !["username", "primaryEmail", "primaryPhone"]
        .iter()
        .any(|key| body.contains_key(*key))
    {
        return Err(invalid(
            "At least one of username, email address or phone number is required.",
        ));
    }
    body.insert("generatePassword".to_owned(), json!(true));
    let user: User = console
        .api
        .send(Method::POST, "/api/users", Some(&Value::Object(body)))
        .await?
        .ok_or_else(|| ConsoleError::Unexpected("no user in the answer".to_owned()))?;
    let password = user.generated_password.clone();
    show_user(&console, user, Some(console.t.user_created), password).await
}

pub(super) fn invalid(message: &str) -> ConsoleError {
    ConsoleError::Api {
        status: StatusCode::BAD_REQUEST,
        code: "guard.invalid_input".to_owned(),
        message: message.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    f: Frame,
    u: UserHead,
    /// Set when the page shows the user as of a past moment (read-only).
    as_of: Option<String>,
    /// The as-of picker's value (`YYYY-MM-DDTHH:MM:SS`, UTC).
    as_of_input: String,
}

/// What every tab of a user's page shows above the tab: who, the actions menu, a notice, a
/// password generated by this very request (shown once, in this answer only).
pub struct UserHead {
    pub user: User,
    pub tab: Tab,
    pub notice: Option<&'static str>,
    pub password: Option<String>,
}

/// The user-details page's tabs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Details,
    Logs,
    Roles,
    Organizations,
    Identities,
    Mfa,
    Tokens,
    Timeline,
}

async fn show_user(
    console: &Console,
    user: User,
    notice: Option<&'static str>,
    password: Option<String>,
) -> Result<Response, ConsoleError> {
    render(&UserPage {
        f: console.frame(Section::Users),
        u: UserHead {
            user,
            tab: Tab::Details,
            notice,
            password,
        },
        as_of: None,
        as_of_input: String::new(),
    })
}

#[derive(Deserialize)]
struct DetailsQuery {
    done: Option<String>,
    #[serde(rename = "asOf")]
    as_of: Option<String>,
}

/// The as-of picker's `datetime-local` value (UTC; minutes, seconds or milliseconds) as
/// RFC 3339.
fn as_of_moment(input: &str) -> Option<String> {
    let input = input.trim();
    let with_seconds = if input.len() == 16 {
        format!("{input}:00")
    } else {
        input.to_owned()
    };
    let moment = time::PrimitiveDateTime::parse(
        &with_seconds,
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        ),
    )
    .ok()?;
    moment
        .assume_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A moment in the as-of picker's format, to the millisecond.
pub fn picker_value(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

async fn details(
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<DetailsQuery>,
) -> Result<Response, ConsoleError> {
    let t = console.t;
    let as_of_input = query.as_of.unwrap_or_default();
    if !as_of_input.is_empty() {
        let moment = as_of_moment(&as_of_input)
            .ok_or_else(|| invalid("The moment must be a date and time."))?;
        let user: User = console
            .api
            .get(&format!("/api/users/{id}?{}", encode(&[("asOf", &moment)])))
            .await?;
        return render(&UserPage {
            f: console.frame(Section::Users),
            u: UserHead {
                user,
                tab: Tab::Details,
                notice: None,
                password: None,
            },
            as_of: Some(moment),
            as_of_input,
        });
    }
    let user: User = console.api.get(&format!("/api/users/{id}")).await?;
    let notice = match query.done.as_deref() {
        Some("saved") => Some(t.saved),
        Some("suspended") => Some(t.suspended),
        Some("reactivated") => Some(t.active),
        _ => None,
    };
    show_user(&console, user, notice, None).await
}

/// A JSON object typed into a textarea.
fn object(field: &str, text: &str) -> Result<Value, ConsoleError> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(invalid(&format!("{field} must be a JSON object."))),
    }
}

/// The fields the form changed, as a Logto PATCH body (an emptied field becomes `null`).
fn changes(user: &User, form: &ProfileForm) -> Result<Map<String, Value>, ConsoleError> {
    let mut body = Map::new();
    for (key, old, new) in [
        ("username", &user.username, &form.username),
        ("primaryEmail", &user.primary_email, &form.primary_email),
        (
            "primaryPhone",
            &user.primary_phone,
            &phone_digits(&form.primary_phone),
        ),
        ("name", &user.name, &form.name),
        ("avatar", &user.avatar, &form.avatar),
    ] {
        let new = filled(new);
        if old.as_deref().filter(|v| !v.is_empty()) != new {
            body.insert(key.to_owned(), new.map_or(Value::Null, |v| json!(v)));
        }
    }
    for (key, old, new) in [
        ("customData", &user.custom_data, &form.custom_data),
        ("profile", &user.profile, &form.profile),
    ] {
        if let Some(new) = new {
            let new = object(key, new)?;
            if &new != old {
                body.insert(key.to_owned(), new);
            }
        }
    }
    Ok(body)
}

async fn save(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<ProfileForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let user: User = console.api.get(&format!("/api/users/{id}")).await?;
    let body = changes(&user, &form)?;
    if !body.is_empty() {
        console
            .api
            .send::<Value>(
                Method::PATCH,
                &format!("/api/users/{id}"),
                Some(&Value::Object(body)),
            )
            .await?;
    }
    Ok(see_other(&format!("/console/users/{id}?done=saved")))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn reset_password(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let user: User = console
        .api
        .send(
            Method::PATCH,
            &format!("/api/users/{id}/password"),
            Some(&json!({"generatePassword": true})),
        )
        .await?
        .ok_or_else(|| ConsoleError::Unexpected("no user in the answer".to_owned()))?;
    let password = user.generated_password.clone();
    show_user(&console, user, Some(console.t.password_reset), password).await
}

#[derive(Deserialize)]
struct SuspensionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    suspend: String,
}

async fn suspension(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<SuspensionForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    let suspend = form.suspend == "true";
    console
        .api
        .send::<Value>(
            Method::PATCH,
            &format!("/api/users/{id}/is-suspended"),
            Some(&json!({"isSuspended": suspend})),
        )
        .await?;
    let done = if suspend { "suspended" } else { "reactivated" };
    Ok(see_other(&format!("/console/users/{id}?done={done}")))
}

#[derive(Template)]
#[template(path = "console/user_delete.html")]
struct DeletePage {
    f: Frame,
    user: User,
}

async fn confirm_delete(
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let user: User = console.api.get(&format!("/api/users/{id}")).await?;
    render(&DeletePage {
        f: console.frame(Section::Users),
        user,
    })
}

async fn delete(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    console
        .api
        .send::<Value>(Method::DELETE, &format!("/api/users/{id}"), None)
        .await?;
    Ok(see_other("/console/users?done=deleted"))
}

#[derive(Template)]
#[template(path = "console/user_erase.html")]
struct ErasePage {
    f: Frame,
    user: User,
}

async fn confirm_erase(console: Console, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let user: User = console.api.get(&format!("/api/users/{id}")).await?;
    render(&ErasePage {
        f: console.frame(Section::Users),
        user,
    })
}

/// Erasure (`POST /api/users/:id/erase`), distinct from deletion: the data key is destroyed.
async fn erase(
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check(&form.csrf)?;
    console
        .api
        .send::<Value>(Method::POST, &format!("/api/users/{id}/erase"), None)
        .await?;
    Ok(see_other("/console/users?done=erased"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        serde_json::from_value(json!({
            "id": "u1", "username": "ada", "primaryEmail": null, "primaryPhone": "",
            "name": "Ada", "avatar": null, "customData": {"a": 1}, "profile": {},
            "identities": {}, "lastSignInAt": null, "createdAt": 0, "applicationId": null,
            "isSuspended": false, "hasPassword": true
        }))
        .unwrap()
    }

    fn form(custom_data: &str) -> ProfileForm {
        ProfileForm {
            csrf: String::new(),
            username: "ada".to_owned(),
            primary_email: " ada@example.com ".to_owned(),
            primary_phone: String::new(),
            name: String::new(),
            avatar: String::new(),
            custom_data: Some(custom_data.to_owned()),
            profile: Some("{}".to_owned()),
        }
    }

    #[test]
    fn only_changed_fields_are_sent_and_emptied_ones_become_null() {
        let body = changes(&user(), &form(r#"{"a": 1}"#)).unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"primaryEmail": "ada@example.com", "name": null})
        );
        let body = changes(&user(), &form(r#"{"a": 2}"#)).unwrap();
        assert_eq!(body["customData"], json!({"a": 2}));
    }

    #[test]
    fn custom_data_must_be_an_object() {
        for bad in ["[1]", "nope", "3"] {
            assert!(matches!(
                changes(&user(), &form(bad)),
                Err(ConsoleError::Api {
                    status: StatusCode::BAD_REQUEST,
                    ..
                })
            ));
        }
    }

    #[test]
    fn keywords_become_substring_searches_without_escapes() {
        assert_eq!(search_term(" ada "), Some("%ada%".to_owned()));
        assert_eq!(search_term("console_bob"), Some("%console_bob%".to_owned()));
        assert_eq!(search_term("a\\b"), Some("%ab%".to_owned()));
        assert_eq!(search_term("  "), None);
    }

    #[test]
    fn phones_are_sent_as_digits() {
        assert_eq!(phone_digits("+81 80-1234-5678"), "818012345678");
        assert_eq!(phone_digits(" "), "");
        assert_eq!(phone_digits("call me"), "call me");
    }

    #[test]
    fn the_as_of_picker_speaks_utc() {
        assert_eq!(
            as_of_moment("2026-11-23T22:58").as_deref(),
            Some("2026-11-23T22:58:00Z")
        );
        assert_eq!(
            as_of_moment("2026-11-23T22:58:07").as_deref(),
            Some("2026-11-23T22:58:07Z")
        );
        assert_eq!(
            as_of_moment(&picker_value(1_700_000_000_123)).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(as_of_moment("yesterday"), None);
    }

    #[test]
    fn names_and_times_for_the_table() {
        let mut user = user();
        assert_eq!(user.display_name(), "Ada");
        user.name = None;
        assert_eq!(user.display_name(), "ada");
        assert_eq!(user.initials(), "A");
        assert_eq!(datetime(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
    }
}
