//! `/api/sign-in-exp`: the sign-in experience (read, partial update, password policy check,
//! username case conflicts), and its public copy for the sign-in pages,
//! `/api/.well-known/sign-in-exp`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::Rejection;
use domain::sign_in_experience::{
    self, Connectors, ForgotPasswordMethod, PasswordExpiration, SignInExperience,
    SignInExperienceCommand, SignInExperienceConfig, SignInExperienceError,
};
use projections::sign_in_experience::{CaseConflicts, current, username_case_conflicts};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::crypto::password_policy::{self, PasswordIssue, PasswordPolicyError, UserInfo};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::store::StoreError;

/// How often a PATCH is merged again when another one landed between its read and its write.
const MERGE_ATTEMPTS: u32 = 5;
/// Logto's tenant and row id of the one sign-in experience.
const DEFAULT_ID: &str = "default";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_sign_in_exp, update_sign_in_exp))
        .routes(routes!(check_password))
        .routes(routes!(case_sensitivity_conflicts))
}

/// Routes anyone may call: the sign-in pages read the experience before anyone is signed in.
pub fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(well_known_sign_in_exp))
}

/// The connectors configured now (every configured connector is enabled, as in Logto).
async fn enabled_connectors(state: &AppState) -> Result<Connectors, ApiError> {
    let db = state.store.pool().get().await?;
    let rows = projections::connectors::all(&db).await?;
    let of_type = |kind: &str| rows.iter().any(|row| row.connector_type == kind);
    Ok(Connectors {
        email: of_type("Email"),
        sms: of_type("Sms"),
        social_targets: rows
            .iter()
            .filter(|row| row.connector_type == "Social")
            .filter_map(|row| {
                row.metadata
                    .get("target")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| {
                        crate::connectors::factory(&row.connector_id)?
                            .metadata()
                            .get("target")?
                            .as_str()
                            .map(str::to_owned)
                    })
            })
            .collect(),
    })
}

async fn load(state: &AppState) -> Result<SignInExperience, ApiError> {
    let db = state.store.pool().get().await?;
    Ok(current(&db).await?)
}

/// The object as Logto answers it: `tenantId` and `id` first, then every field.
fn document(experience: &SignInExperience) -> Result<Map<String, Value>, ApiError> {
    let mut document = Map::new();
    document.insert("tenantId".into(), json!(DEFAULT_ID));
    document.insert("id".into(), json!(DEFAULT_ID));
    match serde_json::to_value(experience) {
        Ok(Value::Object(fields)) => document.extend(fields),
        Ok(_) | Err(_) => return Err(ApiError::internal()),
    }
    Ok(document)
}

/// The default sign-in experience.
#[utoipa::path(get, path = "/api/sign-in-exp", tag = "Sign-in experience",
    responses((status = 200, body = Object, description = "Logto's sign-in experience object.")),
    security(("bearer" = [])))]
async fn get_sign_in_exp(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(Value::Object(document(&load(&state).await?)?)))
}

/// Update the sign-in experience: every top-level key of the body replaces that key's value.
#[utoipa::path(patch, path = "/api/sign-in-exp", tag = "Sign-in experience",
    request_body(content = Object, description = "Any fields of the sign-in experience."),
    responses((status = 200, body = Object), (status = 400), (status = 409), (status = 422)),
    security(("bearer" = [])))]
async fn update_sign_in_exp(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<Map<String, Value>>,
) -> Result<axum::Json<Value>, ApiError> {
    let metadata = context.metadata(caller.actor);
    let mut attempt = 1;
    loop {
        let base = load(&state).await?;
        let experience = merge(&base, &body, context.now_ms())?;
        if base.username_policy.case_sensitive && !experience.username_policy.case_sensitive {
            refuse_case_conflicts(&state).await?;
        }
        let command = SignInExperienceCommand::Update {
            base: Box::new(base),
            experience: Box::new(experience),
            connectors: enabled_connectors(&state).await?,
        };
        let result = state
            .store
            .execute::<SignInExperienceConfig>(sign_in_experience::STREAM_ID, command, &metadata)
            .await;
        match result {
            Err(StoreError::Rejected(Rejection::SignInExperience(
                SignInExperienceError::Stale,
            ))) if attempt < MERGE_ATTEMPTS => {
                attempt += 1;
            }
            other => {
                other?;
                break;
            }
        }
    }
    Ok(axum::Json(Value::Object(document(&load(&state).await?)?)))
}

/// Logto refuses to make usernames case-insensitive while some differ only by case: they
/// would become one account's name.
async fn refuse_case_conflicts(state: &AppState) -> Result<(), ApiError> {
    let db = state.store.pool().get().await?;
    let conflicts = username_case_conflicts(&db, 20).await?;
    if conflicts.total_conflicts == 0 {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "sign_in_experiences.username_policy_case_conflicts_exist",
        "Cannot switch to case-insensitive usernames while usernames that differ only by case \
         exist. Resolve the conflicts and try again.",
    )
    .with_data(json!(conflicts)))
}

/// Applies a PATCH body to `base`: known top-level keys replace their value, unknown keys are
/// refused, and the result must be a valid sign-in experience.
fn merge(
    base: &SignInExperience,
    body: &Map<String, Value>,
    now_ms: i64,
) -> Result<SignInExperience, ApiError> {
    let Ok(Value::Object(mut merged)) = serde_json::to_value(base) else {
        return Err(ApiError::internal());
    };
    for (key, value) in body {
        match key.as_str() {
            // A client may send back what GET gave it; both are fixed.
            "tenantId" | "id" => {}
            known if merged.contains_key(known) => {
                merged.insert(key.clone(), value.clone());
            }
            _ => {
                return Err(ApiError::invalid_input(
                    "body",
                    format!("Unrecognized key in body: \"{key}\""),
                ));
            }
        }
    }
    let mut experience: SignInExperience = serde_path_to_error::deserialize(Value::Object(merged))
        .map_err(|error| {
            ApiError::invalid_input(
                "body",
                format!("Error in key path \"{}\": {}", error.path(), error.inner()),
            )
        })?;
    check_formats(&experience).map_err(|(path, problem)| {
        ApiError::invalid_input("body", format!("Error in key path \"{path}\": {problem}"))
    })?;
    experience.password_expiration = stamp_expiration(
        &base.password_expiration,
        &experience.password_expiration,
        now_ms,
    );
    Ok(experience)
}

/// `enabledAt` belongs to the server: kept while the policy stays on, the current time when it
/// is switched on, dropped with the rest when it is switched off.
fn stamp_expiration(
    base: &PasswordExpiration,
    next: &PasswordExpiration,
    now_ms: i64,
) -> PasswordExpiration {
    if !next.enabled {
        return PasswordExpiration::default();
    }
    let kept = if base.enabled { base.enabled_at } else { None };
    PasswordExpiration {
        enabled_at: Some(kept.unwrap_or(now_ms)),
        ..next.clone()
    }
}

type FormatResult = Result<(), (&'static str, &'static str)>;

fn is_url(value: &str) -> bool {
    url::Url::parse(value).is_ok()
}

/// Logto's `hexColorRegEx`: `#rgb` or `#rrggbb`.
fn is_hex_color(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn check(condition: bool, path: &'static str, problem: &'static str) -> FormatResult {
    if condition {
        Ok(())
    } else {
        Err((path, problem))
    }
}

/// What Logto's body guard checks beyond the shape: URLs, colours, e-mail, numeric ranges.
fn check_formats(e: &SignInExperience) -> FormatResult {
    const URL: &str = "Invalid url";
    check(
        is_hex_color(&e.color.primary_color),
        "color.primaryColor",
        "Invalid hex colour",
    )?;
    check(
        is_hex_color(&e.color.dark_primary_color),
        "color.darkPrimaryColor",
        "Invalid hex colour",
    )?;
    for (value, path) in [
        (&e.branding.logo_url, "branding.logoUrl"),
        (&e.branding.dark_logo_url, "branding.darkLogoUrl"),
        (&e.branding.favicon, "branding.favicon"),
        (&e.branding.dark_favicon, "branding.darkFavicon"),
    ] {
        check(value.as_deref().is_none_or(is_url), path, URL)?;
    }
    // These may also be empty, which clears them in Logto's console.
    for (value, path) in [
        (&e.terms_of_use_url, "termsOfUseUrl"),
        (&e.privacy_policy_url, "privacyPolicyUrl"),
        (&e.support_website_url, "supportWebsiteUrl"),
        (&e.unknown_session_redirect_url, "unknownSessionRedirectUrl"),
    ] {
        check(
            value.as_deref().is_none_or(|v| v.is_empty() || is_url(v)),
            path,
            URL,
        )?;
    }
    check(
        e.support_email
            .as_deref()
            .is_none_or(|v| v.is_empty() || is_email(v)),
        "supportEmail",
        "Invalid email",
    )?;
    let policy = &e.password_policy;
    check(
        policy.length.min >= 1,
        "passwordPolicy.length.min",
        "Must be at least 1",
    )?;
    check(
        policy.length.max >= 1,
        "passwordPolicy.length.max",
        "Must be at least 1",
    )?;
    check(
        (1..=4).contains(&policy.character_types.min),
        "passwordPolicy.characterTypes.min",
        "Must be between 1 and 4",
    )?;
    let codes = &e.verification_code_policy;
    check(
        (60..=3600).contains(&codes.expiration_duration),
        "verificationCodePolicy.expirationDuration",
        "Must be between 60 and 3600",
    )?;
    check(
        (1..=100).contains(&codes.max_retry_attempts),
        "verificationCodePolicy.maxRetryAttempts",
        "Must be between 1 and 100",
    )?;
    let expiration = &e.password_expiration;
    check(
        !expiration.enabled || expiration.valid_period_days.is_some_and(|d| d >= 1),
        "passwordExpiration.validPeriodDays",
        "Required and at least 1 when enabled",
    )?;
    let usernames = &e.username_policy;
    check(
        (1..=128).contains(&usernames.min_length),
        "usernamePolicy.minLength",
        "Must be between 1 and 128",
    )?;
    check(
        (1..=128).contains(&usernames.max_length),
        "usernamePolicy.maxLength",
        "Must be between 1 and 128",
    )?;
    check(
        usernames.min_length <= usernames.max_length,
        "usernamePolicy.maxLength",
        "Minimum length cannot exceed maximum length.",
    )?;
    let chars = &usernames.allowed_chars;
    check(
        chars.lowercase || chars.uppercase || chars.underscore,
        "usernamePolicy.allowedChars",
        "At least one of lowercase, uppercase, or underscore must be enabled.",
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckPasswordBody {
    pub password: String,
    /// Whose name and identifiers the password must not contain.
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckPasswordResult {
    pub result: bool,
    /// Present when the password fails: `password_rejected.*` codes with their bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub issues: Option<Vec<PasswordIssue>>,
}

/// Check a password against the password policy; 400 with the issues when it fails.
#[utoipa::path(post, path = "/api/sign-in-exp/default/check-password", tag = "Sign-in experience",
    request_body = CheckPasswordBody,
    responses((status = 200, body = CheckPasswordResult),
        (status = 400, body = CheckPasswordResult, description = "The password fails the policy.")),
    security(("bearer" = [])))]
async fn check_password(
    State(state): State<AppState>,
    Json(body): Json<CheckPasswordBody>,
) -> Result<Response, ApiError> {
    let policy = load(&state).await?.password_policy;
    let user = match &body.user_id {
        Some(id) => Some(crate::http::management::users::find(&state, id).await?),
        None => None,
    };
    let info = user.as_ref().map(|user| UserInfo {
        name: user.name.as_deref(),
        username: user.username.as_deref(),
        email: user.primary_email.as_deref(),
        phone_number: user.primary_phone.as_deref(),
    });
    let issues = password_policy::check(&policy, &body.password, info.as_ref()).map_err(
        |error @ PasswordPolicyError::UserInfoRequired| {
            let message = error.to_string();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "request.invalid_input",
                format!("Input is invalid. {message}"),
            )
            .with_data(json!({ "message": message }))
        },
    )?;
    Ok(if issues.is_empty() {
        axum::Json(CheckPasswordResult {
            result: true,
            issues: None,
        })
        .into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(CheckPasswordResult {
                result: false,
                issues: Some(issues),
            }),
        )
            .into_response()
    })
}

/// Usernames that differ only by case, which block switching to case-insensitive usernames.
#[utoipa::path(get, path = "/api/sign-in-exp/username-policy/case-sensitivity-conflicts",
    tag = "Sign-in experience",
    params(("limit" = Option<i64>, Query, description = "Samples returned, 1 to 100 (20).")),
    responses((status = 200, body = Object)),
    security(("bearer" = [])))]
async fn case_sensitivity_conflicts(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<axum::Json<CaseConflicts>, ApiError> {
    let limit = match query.get("limit") {
        None => 20,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_input("query", "Error in key path \"limit\": 1 to 100")
            })?,
    };
    let db = state.store.pool().get().await?;
    Ok(axum::Json(username_case_conflicts(&db, limit).await?))
}

/// The sign-in experience for the sign-in pages: Logto's "full" form, with the enabled
/// connectors and without the policies only the server needs.
#[utoipa::path(get, path = "/api/.well-known/sign-in-exp", tag = "Well-known",
    responses((status = 200, body = Object)))]
async fn well_known_sign_in_exp(
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let experience = load(&state).await?;
    let connectors = enabled_connectors(&state).await?;
    let methods = experience
        .forgot_password_methods
        .clone()
        .unwrap_or_default();
    let mut document = document(&experience)?;
    for private in [
        "emailBlocklistPolicy",
        "emailAllowlistPolicy",
        "forgotPasswordMethods",
    ] {
        document.remove(private);
    }
    document.insert("socialConnectors".into(), json!([]));
    document.insert("ssoConnectors".into(), json!([]));
    document.insert(
        "forgotPassword".into(),
        json!({
            "email": connectors.email
                && methods.contains(&ForgotPasswordMethod::EmailVerificationCode),
            "phone": connectors.sms
                && methods.contains(&ForgotPasswordMethod::PhoneVerificationCode),
        }),
    );
    document.insert("isDevelopmentTenant".into(), json!(false));
    document.insert("customProfileFields".into(), json!([]));
    Ok(axum::Json(Value::Object(document)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_replaces_top_level_keys_and_refuses_unknown_ones() {
        let base = SignInExperience::default();
        let body = json!({
            "id": "default",
            "signInMode": "SignIn",
            "color": {"primaryColor": "#abc", "isDarkModeEnabled": true,
                "darkPrimaryColor": "#000000"},
        });
        let Value::Object(body) = body else { panic!() };
        let merged = merge(&base, &body, 0).unwrap();
        assert_eq!(merged.sign_in_mode, sign_in_experience::SignInMode::SignIn);
        assert!(merged.color.is_dark_mode_enabled);
        assert_eq!(merged.sign_up, base.sign_up);

        let Value::Object(unknown) = json!({"signInModes": "SignIn"}) else {
            panic!()
        };
        assert_eq!(
            merge(&base, &unknown, 0).unwrap_err().code,
            "guard.invalid_input"
        );
        let Value::Object(partial) = json!({"color": {"primaryColor": "#abc"}}) else {
            panic!()
        };
        let error = merge(&base, &partial, 0).unwrap_err();
        assert!(error.details.unwrap().contains("color"), "names the key");
        let Value::Object(bad) = json!({"supportEmail": "nobody"}) else {
            panic!()
        };
        assert_eq!(
            merge(&base, &bad, 0).unwrap_err().code,
            "guard.invalid_input"
        );
    }

    #[test]
    fn the_expiration_anchor_is_the_servers() {
        let off = PasswordExpiration::default();
        let on = PasswordExpiration {
            enabled: true,
            valid_period_days: Some(90),
            enabled_at: Some(1),
        };
        assert_eq!(stamp_expiration(&off, &on, 500).enabled_at, Some(500));
        let stored = PasswordExpiration {
            enabled_at: Some(100),
            ..on.clone()
        };
        assert_eq!(stamp_expiration(&stored, &on, 500).enabled_at, Some(100));
        assert_eq!(stamp_expiration(&stored, &off, 500), off);
    }
}
