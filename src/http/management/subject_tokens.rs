//! `POST /api/subject-tokens`: a single-use token standing for one user, which an application
//! allowed to (`customClientMetadata.allowTokenExchange`) exchanges at `/oidc/token` for an
//! access token about that user (`oidc/token_exchange.rs`). The value (`sub_` + a standard id,
//! as Logto) is shown once and kept nowhere: its keyed hash names the token's stream.

use axum::extract::State;
use axum::http::StatusCode;
use domain::subject_token::{NewSubjectToken, SubjectToken, SubjectTokenCommand, TTL_S};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::find;
use crate::app::AppState;
use crate::crypto::ids;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};
use crate::store::Unit;

/// Keyed-hash domain of subject token values.
pub const TOKEN_HASH_KIND: &str = "subject_token";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_subject_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSubjectTokenBody {
    /// The user the token stands for.
    pub user_id: String,
    /// Free-form JSON object kept with the token.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubjectTokenResponse {
    /// The token, shown only here.
    pub subject_token: String,
    /// Seconds until it expires (600).
    pub expires_in: i64,
}

/// Create a subject token for impersonating a user through token exchange.
#[utoipa::path(post, path = "/api/subject-tokens", tag = "Subject tokens",
    request_body = CreateSubjectTokenBody,
    responses((status = 201, body = SubjectTokenResponse), (status = 404)),
    security(("bearer" = [])))]
async fn create_subject_token(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<CreateSubjectTokenBody>,
) -> Result<(StatusCode, axum::Json<SubjectTokenResponse>), ApiError> {
    find(&state, &body.user_id).await?;
    let value = format!(
        "sub_{}",
        ids::standard_id().map_err(|_| ApiError::internal())?
    );
    let stream = state.store.keyring().lookup_hash(TOKEN_HASH_KIND, &value);
    let unit = Unit::new().then_fresh::<SubjectToken>(
        stream,
        SubjectTokenCommand::Issue(NewSubjectToken {
            user_id: body.user_id,
            context: Value::Object(body.context.unwrap_or_default()),
            expires_at: context.now_ms() + TTL_S * 1000,
        }),
    );
    state
        .store
        .run(unit, &context.metadata(caller.actor))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SubjectTokenResponse {
            subject_token: value,
            expires_in: TTL_S,
        }),
    ))
}
