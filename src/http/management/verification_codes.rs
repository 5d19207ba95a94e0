//! `/api/verification-codes` (logto-compat §7): a code mailed to an address with the `Generic`
//! template, and its check. Codes of one address replace each other.

use axum::extract::State;
use axum::http::StatusCode;
use domain::message::UsageType;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_code))
        .routes(routes!(verify_code))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendCodeBody {
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCodeBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub verification_code: String,
}

/// Without an email, a phone number would need an SMS connector, which none is.
fn email_of(email: Option<String>, phone: Option<String>) -> Result<String, ApiError> {
    match (email, phone) {
        (Some(email), _) => codes::email(&email, "email"),
        // Logto's guard: a phone is digits; only a well-formed one gets as far as the connector.
        (None, Some(phone)) if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ApiError::invalid_input(
                "body",
                "Error in key path \"phone\": Invalid",
            ))
        }
        (None, Some(_)) => Err(ApiError::connector_not_found("Sms")),
        (None, None) => Err(ApiError::invalid_input(
            "body",
            "Error in key path \"email\": Required",
        )),
    }
}

/// Send a verification code (template `Generic`) to an email address.
#[utoipa::path(post, path = "/api/verification-codes", tag = "Verification codes",
    request_body = SendCodeBody,
    responses((status = 204), (status = 400), (status = 429), (status = 501)),
    security(("bearer" = [])))]
async fn send_code(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<SendCodeBody>,
) -> Result<StatusCode, ApiError> {
    let email = email_of(body.email, body.phone)?;
    codes::send(
        &state,
        &context,
        caller.actor,
        codes::Send {
            scope: codes::management_scope(&state, &email),
            code_id: ids::standard_id().map_err(|_| ApiError::internal())?,
            email: &email,
            usage_type: UsageType::Generic,
            ui_locales: None,
            context: json!({}),
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check a verification code sent to an email address; a right code is consumed.
#[utoipa::path(post, path = "/api/verification-codes/verify", tag = "Verification codes",
    request_body = VerifyCodeBody,
    responses((status = 204), (status = 400), (status = 501, description = "A phone number was given and there is no SMS connector.")),
    security(("bearer" = [])))]
async fn verify_code(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<VerifyCodeBody>,
) -> Result<StatusCode, ApiError> {
    let email = email_of(body.email, body.phone)?;
    codes::require_code(&body.verification_code)?;
    codes::verify(
        &state,
        &context,
        caller.actor,
        &codes::management_scope(&state, &email),
        None,
        &email,
        &body.verification_code,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
