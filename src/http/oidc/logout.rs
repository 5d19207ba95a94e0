//! RP-initiated logout (`/oidc/session/end`): confirm, end the browser's session, revoke the
//! grants it gave that did not ask for offline access, and return to the client.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use domain::Actor;
use domain::grant::{Grant, GrantCommand};
use domain::session::{Session, SessionCommand};
use jsonwebtoken::Validation;

use super::authorize::{SESSION_COOKIE, SESSION_HASH_KIND};
use super::params::Params;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::http::pages;
use crate::store::Unit;

const XSRF_HASH_KIND: &str = "logout xsrf";

fn bad(message: &str) -> Response {
    pages::error_page(StatusCode::BAD_REQUEST, "oidc.invalid_request", message)
}

/// Ties the confirmation form to the browser's session cookie (or to its absence).
fn xsrf(state: &AppState, jar: &CookieJar) -> String {
    let session = jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    state.store.keyring().lookup_hash(XSRF_HASH_KIND, &session)
}

pub async fn end_session_get(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match Params::from_query(query.as_deref().unwrap_or_default()) {
        Ok(params) => confirm_page(&state, &jar, &headers, &params).await,
        Err(error) => bad(&error.description),
    }
}

pub async fn end_session_post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match Params::from_body(&headers, &body) {
        Ok(params) => confirm_page(&state, &jar, &headers, &params).await,
        Err(error) => bad(&error.description),
    }
}

/// The client the request speaks for: `client_id`, or the audience of `id_token_hint` (which
/// may have expired; its signature must still be ours).
async fn client_of(state: &AppState, params: &Params) -> Result<Option<String>, &'static str> {
    let named = params
        .single("client_id")
        .map_err(|_| "client_id given twice")?;
    let hinted = match params
        .single("id_token_hint")
        .map_err(|_| "id_token_hint given twice")?
    {
        Some(token) => {
            let mut validation = Validation::new(jsonwebtoken::Algorithm::ES384);
            validation.validate_exp = false;
            validation.validate_aud = false;
            validation.set_issuer(&[&state.issuer]);
            validation.set_required_spec_claims(&["iss", "aud"]);
            let claims: serde_json::Value = state
                .keys
                .verify(token, &validation)
                .await
                .map_err(|_| "id_token_hint could not be validated")?;
            claims["aud"].as_str().map(str::to_owned)
        }
        None => None,
    };
    match (named, hinted) {
        (Some(named), Some(hinted)) if named != hinted => {
            Err("client_id does not match the id_token_hint audience")
        }
        (Some(named), _) => Ok(Some(named.to_owned())),
        (None, hinted) => Ok(hinted),
    }
}

/// A post-logout redirect URI must be registered for the client it is returned to.
async fn check_return(
    state: &AppState,
    client_id: Option<&str>,
    uri: &str,
) -> Result<(), Response> {
    let Some(client_id) = client_id else {
        return Err(bad(
            "post_logout_redirect_uri needs client_id or id_token_hint",
        ));
    };
    let application = async {
        let db = state.store.pool().get().await?;
        Ok::<_, ApiError>(projections::applications::by_id(&db, client_id).await?)
    }
    .await;
    match application {
        Ok(Some(app))
            if app.oidc_client_metadata["postLogoutRedirectUris"]
                .as_array()
                .is_some_and(|uris| uris.iter().any(|u| u.as_str() == Some(uri))) =>
        {
            Ok(())
        }
        Ok(Some(_)) => Err(bad("post_logout_redirect_uri not registered")),
        Ok(None) => Err(bad("unknown client")),
        Err(error) => Err(error.into_response()),
    }
}

async fn confirm_page(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    params: &Params,
) -> Response {
    let client_id = match client_of(state, params).await {
        Ok(client) => client,
        Err(message) => return bad(message),
    };
    let Ok(redirect) = params.single("post_logout_redirect_uri") else {
        return bad("post_logout_redirect_uri given twice");
    };
    if let Some(uri) = redirect
        && let Err(refusal) = check_return(state, client_id.as_deref(), uri).await
    {
        return refusal;
    }
    let token = xsrf(state, jar);
    let mut fields = vec![("xsrf", token.as_str())];
    if let (Some(uri), Some(client_id)) = (redirect, &client_id) {
        fields.push(("post_logout_redirect_uri", uri));
        fields.push(("client_id", client_id));
    }
    if let Ok(Some(client_state)) = params.single("state") {
        fields.push(("state", client_state));
    }
    // Kept for the signed-out page that may follow.
    let ui_locales = params.single("ui_locales").ok().flatten();
    if let Some(ui_locales) = ui_locales {
        fields.push(("ui_locales", ui_locales));
    }
    let look = pages::sign_out::look(state, ui_locales, headers).await;
    pages::sign_out::confirmation(
        &look,
        &format!("{}/session/end/confirm", state.issuer),
        &fields,
    )
}

/// `POST /oidc/session/end/confirm`.
pub async fn confirm(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(params) = Params::from_body(&headers, &body) else {
        return bad("unreadable form");
    };
    if params.single("xsrf").ok().flatten() != Some(xsrf(&state, &jar).as_str()) {
        return bad("the sign-out form expired; start again");
    }
    let redirect = params.single("post_logout_redirect_uri").ok().flatten();
    // Checked again here: a browser without a session shares its XSRF value with every other
    // such browser, so the form alone proves nothing about the URI.
    if let Some(uri) = redirect
        && let Err(refusal) =
            check_return(&state, params.single("client_id").ok().flatten(), uri).await
    {
        return refusal;
    }
    if let Err(error) = end(&state, &context, &jar).await {
        return error.into_response();
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    match redirect {
        Some(uri) => {
            let mut target = uri.to_owned();
            if let Ok(Some(client_state)) = params.single("state") {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("state", client_state)
                    .finish();
                target.push(if uri.contains('?') { '&' } else { '?' });
                target.push_str(&query);
            }
            (jar, Redirect::to(&target)).into_response()
        }
        None => {
            let ui_locales = params.single("ui_locales").ok().flatten();
            let look = pages::sign_out::look(&state, ui_locales, &headers).await;
            (jar, pages::sign_out::signed_out(&look)).into_response()
        }
    }
}

/// Ends the browser's session and revokes the grants it gave without offline access.
async fn end(state: &AppState, context: &RequestContext, jar: &CookieJar) -> Result<(), ApiError> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(());
    };
    let id = state
        .store
        .keyring()
        .lookup_hash(SESSION_HASH_KIND, cookie.value());
    let db = state.store.pool().get().await?;
    let Some(session) = projections::sessions::by_id(&db, &id).await? else {
        return Ok(());
    };
    if session.ended_at.is_some() {
        return Ok(());
    }
    let grants = projections::grants::active_of_session(&db, &id).await?;
    drop(db);
    let mut unit = Unit::new().then::<Session>(
        &id,
        SessionCommand::End {
            reason: "logout".into(),
        },
    );
    for grant in grants {
        let offline = grant
            .scopes
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == "offline_access"));
        if !offline {
            unit = unit.then::<Grant>(
                &grant.id,
                GrantCommand::Revoke {
                    reason: "signed out".into(),
                },
            );
        }
    }
    state
        .store
        .run(unit, &context.metadata(Actor::User(session.user_id)))
        .await?;
    Ok(())
}
