//! The Account API's identity routes (logto-compat §6, `enableTokenStorage`):
//! `GET /api/my-account/identities/:target/access-token` hands the signed-in person the
//! provider's access token stored for their identity from `target`, refreshed first with the
//! stored refresh token when it has expired. The refresh is recorded like any change of the
//! set (`token_set.refreshed`), the tokens sealed anew.
//!
//! `POST /api/my-account/identities` links the upstream identity a verified social
//! verification record proves (`newIdentifierVerificationRecordId`, spent by the link), and
//! `DELETE /api/my-account/identities/:target` unlinks one, refusing (as Logto's Account API
//! does, and unlike its Management API) when the person would be left with no way to sign in.
//! Both are sensitive changes: they need the `identities` scope and a `logto-verification-id`
//! header naming the caller's live identity record (`http/verifications.rs`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use domain::Actor;
use domain::sign_in_experience::{SignInExperience, SignInIdentifier};
use domain::user::{User, UserCommand};
use domain::verification_record::{VerificationRecord, VerificationRecordCommand};
use projections::grants::TokenRow;
use projections::token_sets::{self, TokenSetRow};
use projections::users::UserRow;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::connectors::{social, token_vault};
use crate::http::account::{account_holder, account_token, unauthorized};
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::http::verifications::{prove_identity, proven_identity};
use crate::store::Unit;

/// A token this close to its expiry is refreshed rather than handed out.
const EXPIRY_MARGIN_MS: i64 = 30_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/my-account/identities/{target}/access-token",
            get(access_token),
        )
        .route("/api/my-account/identities", post(link))
        .route("/api/my-account/identities/{target}", delete(unlink))
}

#[derive(Serialize)]
struct AccessTokenResponse {
    access_token: String,
    token_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// Seconds since the epoch, as OAuth clients count.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "user.token_secret_not_found",
        "No token set is stored for this identity.",
    )
}

async fn access_token(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Path(target): Path<String>,
) -> Result<axum::Json<AccessTokenResponse>, ApiError> {
    let user = account_holder(&state, &context, &headers).await?;
    if user.identities.get(&target).is_none() {
        return Err(crate::http::experience::flow::identity_not_exist());
    }
    let row = {
        let db = state.store.pool().get().await?;
        token_sets::of_user_and_target(&db, &user.id, &target)
            .await?
            .ok_or_else(not_found)?
    };
    let tokens = live_tokens(&state, &context, &row).await?;
    Ok(axum::Json(AccessTokenResponse {
        access_token: tokens.access_token,
        token_type: tokens.token_type,
        scope: tokens.scope,
        expires_at: tokens.expires_at.map(|ms| ms / 1000),
    }))
}

/// The stored set, refreshed first when its access token has expired (or is about to).
async fn live_tokens(
    state: &AppState,
    context: &RequestContext,
    row: &TokenSetRow,
) -> Result<social::TokenSet, ApiError> {
    let sealed = state
        .store
        .open_vault(&row.vault_ref)
        .await?
        .ok_or_else(not_found)?;
    let tokens: social::TokenSet = serde_json::from_slice(&sealed).map_err(|error| {
        tracing::error!(%error, "stored token set unreadable");
        ApiError::internal()
    })?;
    let now = context.now_ms();
    let fresh = tokens
        .expires_at
        .is_none_or(|expires_at| expires_at > now + EXPIRY_MARGIN_MS);
    if fresh {
        return Ok(tokens);
    }
    let Some(refresh_token) = tokens.refresh_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "connector.social_access_token_invalid",
            "The stored access token has expired and there is no refresh token to renew it.",
        ));
    };
    let connector = social::connector(&state.store, &row.connector_id)
        .await?
        .ok_or_else(crate::http::experience::flow::invalid_connector)?;
    let refreshed = connector
        .social
        .refresh(&connector.config, refresh_token, now)
        .await
        .map_err(|error| {
            tracing::warn!(%error, target = %row.target, "stored token set not refreshed");
            ApiError::from(error)
        })?;
    let unit = token_vault::refreshed(Unit::new(), row, &refreshed).map_err(|error| {
        tracing::error!(%error, "refreshed token set not sealed");
        ApiError::internal()
    })?;
    state
        .store
        .run(unit, &context.metadata(Actor::User(row.user_id.clone())))
        .await?;
    Ok(refreshed)
}

/// Logto's `hasRemainingSignInMethod`: without the identity from `removed`, `user` still has
/// another identity whose button the sign-in experience shows, or an identifier a sign-in
/// method accepts with a verification code or with the password the user has.
fn keeps_a_way_in(user: &UserRow, config: &SignInExperience, removed: &str) -> bool {
    let other_identity = user.identities.as_object().is_some_and(|identities| {
        identities.keys().any(|target| {
            target != removed && config.social_sign_in_connector_targets.contains(target)
        })
    });
    other_identity
        || config.sign_in.methods.iter().any(|method| {
            let held = match method.identifier {
                SignInIdentifier::Username => user.username.is_some(),
                SignInIdentifier::Email => user.primary_email.is_some(),
                SignInIdentifier::Phone => user.primary_phone.is_some(),
            };
            held && (method.verification_code
                || (method.password && user.password_digest.is_some()))
        })
}

/// Whether the access token was granted Logto's `identities` scope.
fn has_identities_scope(token: &TokenRow) -> bool {
    token
        .scopes
        .as_array()
        .is_some_and(|scopes| scopes.iter().any(|scope| scope == "identities"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkBody {
    new_identifier_verification_record_id: String,
}

/// `POST /api/my-account/identities`: links what the social record proves, in one unit with
/// the record's consumption, so a record links once however many requests race with it. An
/// identity someone else holds is refused by the read model's unique key, inside the same
/// unit.
async fn link(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<LinkBody>,
) -> Result<StatusCode, ApiError> {
    let (token, user) = account_token(&state, &context, &headers).await?;
    prove_identity(&state, &context, &headers, &user.id, "identity_link").await?;
    if !has_identities_scope(&token) {
        return Err(unauthorized());
    }
    let record_id = body.new_identifier_verification_record_id;
    let proven = proven_identity(&state, &record_id).await?;
    if user.identities.get(&proven.target).is_some() {
        return Err(crate::http::experience::flow::identity_in_use());
    }
    let connector = social::connector(&state.store, &proven.connector_id)
        .await?
        .ok_or_else(crate::http::experience::flow::invalid_connector)?;
    let mut unit = Unit::new()
        .then::<VerificationRecord>(
            record_id,
            VerificationRecordCommand::Consume {
                user_id: user.id.clone(),
                now: context.now_ms(),
            },
        )
        .then::<User>(
            user.id.clone(),
            UserCommand::LinkIdentity {
                target: proven.target.clone(),
                user_id: proven.user.id.clone(),
                details: Some(proven.user.details()),
            },
        );
    if connector.row.enable_token_storage {
        unit = token_vault::store(
            unit,
            &user.id,
            &proven.target,
            &connector.row.id,
            &proven.tokens,
        )
        .map_err(|error| {
            tracing::error!(%error, "linked identity's token set not sealed");
            ApiError::internal()
        })?;
    }
    state
        .store
        .run(unit, &context.metadata(Actor::User(user.id.clone())))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlink(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Path(target): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (token, user) = account_token(&state, &context, &headers).await?;
    prove_identity(&state, &context, &headers, &user.id, "identity_unlink").await?;
    // Logto answers this route's missing scope with 400, the default of its assertion.
    if !has_identities_scope(&token) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            ..unauthorized()
        });
    }
    if user.identities.get(&target).is_none() {
        return Err(crate::http::experience::flow::identity_not_exist());
    }
    let config = {
        let db = state.store.pool().get().await?;
        projections::sign_in_experience::current(&db).await?
    };
    if !keeps_a_way_in(&user, &config, &target) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "user.last_sign_in_method_required",
            "You can't remove the last sign-in method: you would have no way to sign in.",
        ));
    }
    state
        .store
        .run(
            token_vault::unlink(&user.id, &target),
            &context.metadata(Actor::User(user.id.clone())),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::sign_in_experience::SignInMethod;
    use serde_json::json;

    fn user(identities: serde_json::Value) -> UserRow {
        UserRow {
            id: "u1".into(),
            username: None,
            primary_email: None,
            primary_phone: None,
            name: None,
            avatar: None,
            custom_data: json!({}),
            identities,
            profile: json!({}),
            application_id: None,
            is_suspended: false,
            password_digest: None,
            password_algorithm: None,
            last_sign_in_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn experience(methods: Vec<SignInMethod>, targets: &[&str]) -> SignInExperience {
        let mut config = SignInExperience::default();
        config.sign_in.methods = methods;
        config.social_sign_in_connector_targets = targets.iter().map(|t| (*t).into()).collect();
        config
    }

    fn method(identifier: SignInIdentifier, password: bool, code: bool) -> SignInMethod {
        SignInMethod {
            identifier,
            password,
            verification_code: code,
            is_password_primary: password,
        }
    }

    #[test]
    fn the_last_way_in_is_kept() {
        let username_password = vec![method(SignInIdentifier::Username, true, false)];
        let only_social = user(json!({"oidc": {"userId": "s"}}));
        let config = experience(username_password.clone(), &["oidc", "github"]);
        assert!(!keeps_a_way_in(&only_social, &config, "oidc"));

        // Another identity counts only while its button is shown.
        let two = user(json!({"oidc": {"userId": "s"}, "github": {"userId": "g"}}));
        assert!(keeps_a_way_in(&two, &config, "oidc"));
        let hidden = experience(username_password.clone(), &["oidc"]);
        assert!(!keeps_a_way_in(&two, &hidden, "oidc"));

        // A username is a way in only with the password the method asks for.
        let mut named = user(json!({"oidc": {"userId": "s"}}));
        named.username = Some("ada".into());
        assert!(!keeps_a_way_in(&named, &config, "oidc"));
        named.password_digest = Some("$argon2i$...".into());
        assert!(keeps_a_way_in(&named, &config, "oidc"));

        // An email is one when codes are sent to it.
        let mut mailed = user(json!({"oidc": {"userId": "s"}}));
        mailed.primary_email = Some("ada@example.com".into());
        assert!(!keeps_a_way_in(&mailed, &config, "oidc"));
        let codes = experience(vec![method(SignInIdentifier::Email, false, true)], &[]);
        assert!(keeps_a_way_in(&mailed, &codes, "oidc"));
    }
}
