//! The authorization endpoint (`/oidc/auth`) and its resumption after the sign-in experience
//! (`/oidc/auth/:uid`): validate the request, start an interaction or reuse the browser's
//! session, and finally issue an authorization code under a new grant.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use domain::application::AppType;
use domain::grant::{Authorization, Code, Grant, GrantCommand};
use domain::interaction::{
    AuthorizationRequest, Interaction, InteractionCommand, InteractionEvent,
};
use domain::session::{Session, SessionCommand};
use domain::{Actor, Metadata};
use projections::applications::{self, ApplicationRow};
use projections::interactions::InteractionRow;
use projections::sessions::SessionRow;
use projections::users::UserRow;

use super::params::Params;
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::error::ApiError;
use crate::http::extract::RequestContext;
use crate::http::pages;
use crate::store::Unit;

pub const INTERACTION_COOKIE: &str = "_interaction";
pub const SESSION_COOKIE: &str = "_session";
/// Keyed-hash domains of the secrets this module hands out.
pub const SESSION_HASH_KIND: &str = "session";
pub const CODE_HASH_KIND: &str = "authorization_code";

const INTERACTION_TTL_MS: i64 = 3_600_000;
const SESSION_TTL_MS: i64 = 14 * 24 * 3_600_000;
const CODE_TTL_MS: i64 = 60_000;

/// The OpenID scopes Logto's provider knows; other requested scopes can only be resource
/// scopes, and are dropped where they grant nothing.
pub const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "offline_access",
    "profile",
    "email",
    "phone",
    "address",
    "custom_data",
    "identities",
    "roles",
    "urn:logto:scope:organizations",
    "urn:logto:scope:organization_roles",
    "urn:logto:scope:sessions",
    "urn:logto:scope:trusted_devices",
];

/// An error reported back to the client at its redirect URI (RFC 6749 §4.1.2.1).
struct Refusal {
    error: &'static str,
    description: String,
}

fn refuse(error: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        error,
        description: description.into(),
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        let unavailable = error.status == StatusCode::SERVICE_UNAVAILABLE;
        refuse(
            if unavailable {
                "temporarily_unavailable"
            } else {
                "server_error"
            },
            "the authorization server could not complete the request",
        )
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Refusal {
        ApiError::from(error).into()
    }
}

impl From<projections::ProjectionError> for Refusal {
    fn from(error: projections::ProjectionError) -> Refusal {
        ApiError::from(error).into()
    }
}

/// Where and how answers for this request go.
struct Reply<'a> {
    state: &'a AppState,
    redirect_uri: String,
    response_mode: String,
    client_state: Option<String>,
}

impl Reply<'_> {
    fn send(&self, mut fields: Vec<(&str, String)>) -> Response {
        if let Some(state) = &self.client_state {
            fields.push(("state", state.clone()));
        }
        fields.push(("iss", self.state.issuer.clone()));
        if self.response_mode == "form_post" {
            let borrowed: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            return pages::form_post(&self.redirect_uri, &borrowed);
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &fields {
            query.append_pair(name, value);
        }
        let separator = if self.response_mode == "fragment" {
            '#'
        } else if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        // 303: the browser must GET the client's redirect URI, even after a POST.
        Redirect::to(&format!(
            "{}{separator}{}",
            self.redirect_uri,
            query.finish()
        ))
        .into_response()
    }

    fn error(&self, refusal: Refusal) -> Response {
        self.send(vec![
            ("error", refusal.error.to_owned()),
            ("error_description", refusal.description),
        ])
    }
}

fn page_error(code: &str, message: &str) -> Response {
    pages::error_page(StatusCode::BAD_REQUEST, code, message)
}

pub async fn authorize_get(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    match Params::from_query(query.as_deref().unwrap_or_default()) {
        Ok(params) => authorize(&state, &context, jar, params).await,
        Err(error) => page_error(&format!("oidc.{}", error.error), &error.description),
    }
}

/// Logto converts a POSTed authorization request into the GET one.
pub async fn authorize_post(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match Params::from_body(&headers, &body) {
        Ok(params) => authorize(&state, &context, jar, params).await,
        Err(error) => page_error(&format!("oidc.{}", error.error), &error.description),
    }
}

fn single<'p>(params: &'p Params, name: &str) -> Result<Option<&'p str>, Response> {
    params
        .single(name)
        .map_err(|error| page_error("oidc.invalid_request", &error.description))
}

/// Whether `uri` is one of the client's registered redirect URIs (exact match, as Logto).
fn registered(application: &ApplicationRow, key: &str, uri: &str) -> bool {
    application.oidc_client_metadata[key]
        .as_array()
        .is_some_and(|uris| uris.iter().any(|u| u.as_str() == Some(uri)))
}

async fn authorize(
    state: &AppState,
    context: &RequestContext,
    jar: CookieJar,
    params: Params,
) -> Response {
    // Until the client and its redirect URI are known good, errors are shown, not redirected.
    let client_id = match single(&params, "client_id") {
        Ok(Some(id)) => id.to_owned(),
        Ok(None) => {
            return page_error(
                "oidc.invalid_request",
                "missing required parameter 'client_id'",
            );
        }
        Err(page) => return page,
    };
    let application = match find_application(state, &client_id).await {
        Ok(Some(app)) => app,
        Ok(None) => {
            return page_error(
                "oidc.invalid_client",
                &format!("invalid client {client_id}"),
            );
        }
        Err(error) => return error.into_response(),
    };
    let redirect_uri = match single(&params, "redirect_uri") {
        Ok(Some(uri)) if registered(&application, "redirectUris", uri) => uri.to_owned(),
        Ok(Some(_)) => {
            return page_error(
                "oidc.invalid_redirect_uri",
                "redirect_uri did not match any of the client's registered redirect_uris",
            );
        }
        Ok(None) => {
            return page_error(
                "oidc.invalid_request",
                "missing required parameter 'redirect_uri'",
            );
        }
        Err(page) => return page,
    };
    let reply = Reply {
        state,
        redirect_uri,
        response_mode: params
            .single("response_mode")
            .ok()
            .flatten()
            .unwrap_or("query")
            .to_owned(),
        client_state: params.single("state").ok().flatten().map(str::to_owned),
    };
    match begin(state, context, &jar, &params, &application, &reply).await {
        Ok(response) => response,
        Err(refusal) => reply.error(refusal),
    }
}

async fn find_application(state: &AppState, id: &str) -> Result<Option<ApplicationRow>, ApiError> {
    let db = state.store.pool().get().await?;
    Ok(applications::by_id(&db, id).await?)
}

fn app_type(application: &ApplicationRow) -> Option<AppType> {
    serde_json::from_value(serde_json::Value::String(application.app_type.clone())).ok()
}

/// Validates the rest of the request, then either starts an interaction or, with a usable
/// session, goes straight to the code.
async fn begin(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    params: &Params,
    application: &ApplicationRow,
    reply: &Reply<'_>,
) -> Result<Response, Refusal> {
    let single = |name: &str| {
        params
            .single(name)
            .map(|value| value.map(str::to_owned))
            .map_err(|error| refuse("invalid_request", error.description))
    };
    match single("response_type")?.as_deref() {
        Some("code") => {}
        Some(other) => {
            return Err(refuse(
                "unsupported_response_type",
                format!("unsupported response_type requested: {other}"),
            ));
        }
        None => {
            return Err(refuse(
                "invalid_request",
                "missing required parameter 'response_type'",
            ));
        }
    }
    if !matches!(
        reply.response_mode.as_str(),
        "query" | "form_post" | "fragment"
    ) {
        return Err(refuse(
            "invalid_request",
            "unsupported response_mode requested",
        ));
    }
    let app_type =
        app_type(application).ok_or_else(|| refuse("unauthorized_client", "unsupported client"))?;
    if app_type == AppType::MachineToMachine {
        return Err(refuse(
            "unauthorized_client",
            "requested response_type is not allowed for this client",
        ));
    }
    let requested = single("scope")?.unwrap_or_default();
    // Resource scopes ride along with the OIDC ones; each token keeps only what applies to it.
    let scopes: Vec<String> = requested
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .fold(Vec::new(), |mut acc, s| {
            if !acc.contains(&s) {
                acc.push(s);
            }
            acc
        });
    if !scopes.iter().any(|s| s == "openid") {
        return Err(refuse("invalid_scope", "openid scope must be requested"));
    }
    let code_challenge = single("code_challenge")?;
    match (single("code_challenge_method")?.as_deref(), &code_challenge) {
        (Some("S256"), Some(_)) | (None, None) => {}
        (None, Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "plain code_challenge_method fallback disabled, code_challenge_method must be provided",
            ));
        }
        (Some(_), _) => {
            return Err(refuse(
                "invalid_request",
                "not supported value of code_challenge_method",
            ));
        }
    }
    if code_challenge.is_none() && !app_type.is_confidential() {
        return Err(refuse(
            "invalid_request",
            "PKCE must be used for this client",
        ));
    }
    let mut resources: Vec<String> = params.all("resource").map(str::to_owned).collect();
    resources.dedup();
    {
        let db = state.store.pool().get().await.map_err(ApiError::from)?;
        for resource in &resources {
            if projections::resources::by_indicator(&db, resource)
                .await?
                .is_none()
            {
                return Err(refuse(
                    "invalid_target",
                    "resource indicator is missing, or unknown",
                ));
            }
        }
    }
    let prompts: Vec<String> = single("prompt")?
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if prompts.iter().any(|p| p == "none") && prompts.len() > 1 {
        return Err(refuse(
            "invalid_request",
            "prompt none must only be used alone",
        ));
    }
    let max_age = single("max_age")?
        .map(|age| age.parse::<i64>())
        .transpose()
        .map_err(|_| refuse("invalid_request", "invalid max_age parameter value"))?;
    // Refresh tokens need consent to offline access (Logto keeps it only with prompt=consent)
    // unless the web app always gets one.
    let always_refresh = application.custom_client_metadata["alwaysIssueRefreshToken"]
        .as_bool()
        .unwrap_or(false);
    let scopes: Vec<String> = scopes
        .into_iter()
        .filter(|s| {
            s != "offline_access" || prompts.iter().any(|p| p == "consent") || always_refresh
        })
        .collect();
    let request = AuthorizationRequest {
        client_id: application.id.clone(),
        redirect_uri: reply.redirect_uri.clone(),
        response_mode: reply.response_mode.clone(),
        scopes,
        state: reply.client_state.clone(),
        nonce: single("nonce")?,
        code_challenge,
        resources,
        prompts: prompts.clone(),
        ui_locales: single("ui_locales")?,
        organization_id: single("organization_id")?,
        max_age,
    };

    let session = current_session(state, jar, context.now_ms()).await?;
    let fresh_enough = |session: &(SessionRow, UserRow)| {
        max_age.is_none_or(|age| context.now_ms() - session.0.auth_time <= age * 1000)
    };
    let wants_login = prompts.iter().any(|p| p == "login");
    // A magic link is followed even over a session: the one-time-token page verifies its
    // token (joining its organizations) and, if the session is another account's, first asks
    // which account to continue with (`/switch-account`).
    let magic_link = single("one_time_token")?.is_some() && !prompts.iter().any(|p| p == "none");
    if let Some((session, user)) =
        session.filter(|s| !wants_login && !magic_link && fresh_enough(s))
    {
        if consent_needed(state, application, &request, &user.id).await? {
            if prompts.iter().any(|p| p == "none") {
                return Err(refuse("consent_required", "End-User consent is required"));
            }
            // The session stands in for the sign-in; only the consent page is left.
            return start_interaction(
                state,
                context,
                jar,
                params,
                request,
                Some((&user, &session)),
            )
            .await;
        }
        return complete(
            state,
            context,
            jar,
            reply,
            Completion {
                request,
                user: &user,
                interaction: None,
                session: Some(session),
                consent_required: false,
            },
        )
        .await;
    }
    if prompts.iter().any(|p| p == "none") {
        return Err(refuse(
            "login_required",
            "End-User authentication is required",
        ));
    }
    start_interaction(state, context, jar, params, request, None).await
}

/// Whether the user must be asked before a code is issued. Only third-party applications ask
/// (first-party ones are consented to automatically, as in Logto): when the request says
/// `prompt=consent`, or when no live grant of this user to this client already covers the
/// scopes and resources requested.
async fn consent_needed(
    state: &AppState,
    application: &ApplicationRow,
    request: &AuthorizationRequest,
    user_id: &str,
) -> Result<bool, Refusal> {
    if !application.is_third_party {
        return Ok(false);
    }
    if request.prompts.iter().any(|p| p == "consent") {
        return Ok(true);
    }
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let grants = projections::grants::active_of_user(&db, user_id).await?;
    let covers = |granted: &serde_json::Value, wanted: &[String]| {
        wanted
            .iter()
            .all(|w| granted.as_array().is_some_and(|g| g.iter().any(|v| v == w)))
    };
    Ok(!grants.iter().any(|grant| {
        grant.client_id == application.id
            && covers(&grant.scopes, &request.scopes)
            && covers(&grant.resources, &request.resources)
    }))
}

/// `current_session` for the pages that offer to keep the session (`/switch-account`).
pub async fn browser_session(
    state: &AppState,
    jar: &CookieJar,
    now: i64,
) -> Result<Option<(SessionRow, UserRow)>, ApiError> {
    current_session(state, jar, now).await.map_err(|refusal| {
        if refusal.error == "temporarily_unavailable" {
            ApiError::unavailable()
        } else {
            ApiError::internal()
        }
    })
}

/// The browser's session, if its cookie names a live session of a user who may sign in.
async fn current_session(
    state: &AppState,
    jar: &CookieJar,
    now: i64,
) -> Result<Option<(SessionRow, UserRow)>, Refusal> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let id = state
        .store
        .keyring()
        .lookup_hash(SESSION_HASH_KIND, cookie.value());
    let db = state.store.pool().get().await.map_err(ApiError::from)?;
    let Some(session) = projections::sessions::by_id(&db, &id).await? else {
        return Ok(None);
    };
    if session.ended_at.is_some() || session.expires_at <= now {
        return Ok(None);
    }
    let user = projections::users::by_id(&db, &session.user_id).await?;
    Ok(user.filter(|u| !u.is_suspended).map(|user| (session, user)))
}

fn cookie(state: &AppState, name: &'static str, value: String, max_age_ms: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.endpoint.starts_with("https://"))
        .max_age(time::Duration::milliseconds(max_age_ms))
        .build()
}

/// Which page of the experience comes first (Logto's `first_screen`, or the deprecated
/// `interaction_mode` the Python SDK still sends).
fn first_screen(params: &Params) -> (&'static str, InteractionEvent) {
    let first = params.single("first_screen").ok().flatten();
    let mode = params.single("interaction_mode").ok().flatten();
    match (first, mode) {
        (Some("register" | "identifier:register"), _) | (None, Some("signUp")) => {
            ("/register", InteractionEvent::Register)
        }
        (Some("reset_password"), _) => ("/forgot-password", InteractionEvent::ForgotPassword),
        _ => ("/sign-in", InteractionEvent::SignIn),
    }
}

/// Starts an interaction and sends the browser to its first page: the sign-in experience, or,
/// when a session already signed the user in (`continued`), the consent page.
async fn start_interaction(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    params: &Params,
    request: AuthorizationRequest,
    continued: Option<(&UserRow, &SessionRow)>,
) -> Result<Response, Refusal> {
    let uid = ids::standard_id().map_err(|_| refuse("server_error", "no randomness"))?;
    let (path, event) = match continued {
        Some(_) => ("/consent", InteractionEvent::SignIn),
        None => first_screen(params),
    };
    let client_id = request.client_id.clone();
    let now = context.now_ms();
    let mut unit = Unit::new().then::<Interaction>(
        &uid,
        InteractionCommand::Start {
            request,
            event,
            expires_at: now + INTERACTION_TTL_MS,
        },
    );
    let mut metadata = context.metadata(Actor::Anonymous);
    if let Some((user, session)) = continued {
        unit = unit.then::<Interaction>(
            &uid,
            InteractionCommand::ContinueSession {
                user_id: user.id.clone(),
                session_id: session.id.clone(),
                now,
            },
        );
        metadata.actor = Actor::User(user.id.clone());
    }
    state.store.run(unit, &metadata).await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("app_id", &client_id);
    for name in [
        "ui_locales",
        "login_hint",
        "one_time_token",
        "organization_id",
        "direct_sign_in",
    ] {
        if let Ok(Some(value)) = params.single(name) {
            query.append_pair(name, value);
        }
    }
    // A magic link lands on the one-time-token page, which verifies it before anything else.
    let path = if continued.is_none() && params.single("one_time_token").ok().flatten().is_some() {
        "/one-time-token"
    } else {
        path
    };
    let jar = jar
        .clone()
        .add(cookie(state, INTERACTION_COOKIE, uid, INTERACTION_TTL_MS));
    Ok((jar, Redirect::to(&format!("{path}?{}", query.finish()))).into_response())
}

/// The interaction a code ends, and how it got there.
struct Ending<'a> {
    id: &'a str,
    /// The user signed in during this interaction (not merely through an existing session), so
    /// a reused session is re-authenticated.
    signed_in: bool,
    /// The user has just consented on the consent page; recorded with the code.
    consented: bool,
}

/// What a code is issued for.
struct Completion<'a> {
    request: AuthorizationRequest,
    user: &'a UserRow,
    interaction: Option<Ending<'a>>,
    session: Option<SessionRow>,
    consent_required: bool,
}

/// Issues the authorization code: a new grant, the session (new or reused) remembering the
/// client, and the interaction (if any) completed, all in one unit of work.
async fn complete(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    reply: &Reply<'_>,
    completion: Completion<'_>,
) -> Result<Response, Refusal> {
    let Completion {
        request,
        user,
        interaction,
        session,
        consent_required,
    } = completion;
    let now = context.now_ms();
    let fail = |_| refuse("server_error", "no randomness");
    let grant_id = ids::standard_id().map_err(fail)?;
    let code = format!(
        "{}{}",
        ids::secret().map_err(fail)?,
        ids::secret().map_err(fail)?
    );
    let keyring = state.store.keyring();
    let mut unit = Unit::new();
    let mut new_cookie = None;
    let (session_id, auth_time) = match session.filter(|s| s.user_id == user.id) {
        Some(session) => match &interaction {
            Some(ending) if ending.signed_in => {
                unit = unit.then::<Session>(
                    &session.id,
                    SessionCommand::Reauthenticate {
                        interaction_id: ending.id.to_owned(),
                        auth_time: now,
                    },
                );
                (session.id, now)
            }
            Some(_) | None => (session.id.clone(), session.auth_time),
        },
        None => {
            let value = format!(
                "{}{}",
                ids::secret().map_err(fail)?,
                ids::secret().map_err(fail)?
            );
            let id = keyring.lookup_hash(SESSION_HASH_KIND, &value);
            unit = unit.then::<Session>(
                &id,
                SessionCommand::Start {
                    user_id: user.id.clone(),
                    interaction_id: interaction
                        .as_ref()
                        .map(|ending| ending.id.to_owned())
                        .unwrap_or_default(),
                    auth_time: now,
                    expires_at: now + SESSION_TTL_MS,
                },
            );
            new_cookie = Some(value);
            (id, now)
        }
    };
    unit = unit
        .then::<Session>(
            &session_id,
            SessionCommand::AddClient {
                client_id: request.client_id.clone(),
                grant_id: grant_id.clone(),
            },
        )
        .then::<Grant>(
            &grant_id,
            GrantCommand::IssueCode {
                authorization: Authorization {
                    client_id: request.client_id.clone(),
                    user_id: user.id.clone(),
                    session_id: session_id.clone(),
                    scopes: request.scopes.clone(),
                    resources: request.resources.clone(),
                    auth_time,
                },
                code: Code {
                    hash: keyring.lookup_hash(CODE_HASH_KIND, &code),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    nonce: request.nonce.clone(),
                    expires_at: now + CODE_TTL_MS,
                },
            },
        );
    if let Some(ending) = &interaction {
        if ending.consented {
            unit = unit.then::<Interaction>(ending.id, InteractionCommand::Consent { now });
        }
        unit = unit.then::<Interaction>(
            ending.id,
            InteractionCommand::Complete {
                grant_id,
                session_id,
                consent_required,
                now,
            },
        );
    }
    let metadata = Metadata {
        actor: Actor::User(user.id.clone()),
        ..context.metadata(Actor::Anonymous)
    };
    state.store.run(unit, &metadata).await?;
    let mut jar = jar.clone();
    if let Some(value) = new_cookie {
        jar = jar.add(cookie(state, SESSION_COOKIE, value, SESSION_TTL_MS));
    }
    if interaction.is_some() {
        jar = jar.remove(Cookie::build(INTERACTION_COOKIE).path("/"));
    }
    Ok((jar, reply.send(vec![("code", code)])).into_response())
}

/// An interaction this browser holds whose person is done (signed in, or continued a session)
/// and that has not been answered yet.
pub struct Pending {
    pub interaction: InteractionRow,
    pub request: AuthorizationRequest,
    pub user: UserRow,
    pub application: ApplicationRow,
}

/// The pending interaction `uid`, if the browser's cookie names it and it is still open.
pub async fn pending(
    state: &AppState,
    now: i64,
    jar: &CookieJar,
    uid: &str,
) -> Result<Option<Pending>, ApiError> {
    if jar.get(INTERACTION_COOKIE).map(|c| c.value()) != Some(uid) {
        return Ok(None);
    }
    let db = state.store.pool().get().await?;
    let Some(interaction) = projections::interactions::by_id(&db, uid)
        .await?
        .filter(|i| i.submitted && !i.completed && i.expires_at > now)
    else {
        return Ok(None);
    };
    let Ok(request) = interaction.request() else {
        return Ok(None);
    };
    let user = match &interaction.user_id {
        Some(user_id) => projections::users::by_id(&db, user_id).await?,
        None => None,
    };
    let application = applications::by_id(&db, &interaction.client_id).await?;
    Ok(user.zip(application).map(|(user, application)| Pending {
        interaction,
        request,
        user,
        application,
    }))
}

fn lost() -> Response {
    pages::error_page(
        StatusCode::BAD_REQUEST,
        "session.not_found",
        "This sign-in has expired or belongs to another browser. Start again from the application.",
    )
}

fn reply_to<'a>(state: &'a AppState, request: &AuthorizationRequest) -> Reply<'a> {
    Reply {
        state,
        redirect_uri: request.redirect_uri.clone(),
        response_mode: request.response_mode.clone(),
        client_state: request.state.clone(),
    }
}

/// `GET /oidc/auth/:uid`: the experience submitted; answer the original request, or ask for
/// consent first.
pub async fn resume(
    State(state): State<AppState>,
    context: RequestContext,
    jar: CookieJar,
    Path(uid): Path<String>,
) -> Response {
    let pending = match pending(&state, context.now_ms(), &jar, &uid).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return lost(),
        Err(error) => return error.into_response(),
    };
    let reply = reply_to(&state, &pending.request);
    if pending.user.is_suspended {
        return reply.error(refuse("access_denied", "user is suspended"));
    }
    match consent_needed(
        &state,
        &pending.application,
        &pending.request,
        &pending.user.id,
    )
    .await
    {
        Ok(true) => return Redirect::to("/consent").into_response(),
        Ok(false) => {}
        Err(refusal) => return reply.error(refusal),
    }
    finish(&state, &context, &jar, &reply, pending, false).await
}

/// The consent page's answer for the pending interaction `uid`: a code, or `access_denied`.
pub async fn answer_consent(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    uid: &str,
    accepted: bool,
) -> Response {
    let pending = match pending(state, context.now_ms(), jar, uid).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return lost(),
        Err(error) => return error.into_response(),
    };
    let reply = reply_to(state, &pending.request);
    if pending.user.is_suspended {
        return reply.error(refuse("access_denied", "user is suspended"));
    }
    if accepted {
        return finish(state, context, jar, &reply, pending, true).await;
    }
    let denied = state
        .store
        .execute::<Interaction>(
            uid,
            InteractionCommand::DenyConsent {
                now: context.now_ms(),
            },
            &context.metadata(Actor::User(pending.user.id.clone())),
        )
        .await;
    if let Err(error) = denied {
        return reply.error(error.into());
    }
    let jar = jar
        .clone()
        .remove(Cookie::build(INTERACTION_COOKIE).path("/"));
    (
        jar,
        reply.error(refuse("access_denied", "End-User aborted interaction")),
    )
        .into_response()
}

/// Issues the code that ends a pending interaction, in the browser's session. An interaction
/// that continued a session needs that very session still live.
async fn finish(
    state: &AppState,
    context: &RequestContext,
    jar: &CookieJar,
    reply: &Reply<'_>,
    pending: Pending,
    consented: bool,
) -> Response {
    let session = match current_session(state, jar, context.now_ms()).await {
        Ok(session) => session.map(|(session, _)| session),
        Err(refusal) => return reply.error(refusal),
    };
    if let Some(continued) = &pending.interaction.session_id
        && session.as_ref().map(|s| &s.id) != Some(continued)
    {
        return lost();
    }
    let completion = Completion {
        request: pending.request,
        user: &pending.user,
        interaction: Some(Ending {
            id: &pending.interaction.id,
            signed_in: pending.interaction.session_id.is_none(),
            consented,
        }),
        session,
        // Recorded in the same unit; the interaction refuses to complete without it.
        consent_required: consented,
    };
    match complete(state, context, jar, reply, completion).await {
        Ok(response) => response,
        Err(refusal) => reply.error(refusal),
    }
}

/// The resume URL the experience answers with after submitting.
pub fn resume_url(state: &AppState, uid: &str) -> String {
    format!("{}/auth/{uid}", state.issuer)
}
