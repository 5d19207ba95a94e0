//! `/api/configs/custom-data-policy` (idledger): which custom data keys end users may write
//! themselves through the Account API, each with an optional JSON Schema its values must
//! satisfy. Keys it does not name are read-only for users; administrators write every key
//! through `/api/users`.

use std::collections::BTreeMap;

use axum::extract::State;
use domain::custom_data_policy::{
    self, CustomDataPolicy, CustomDataPolicyCommand, KeyPolicy, Policy,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, RequestContext};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
}

/// Compiles the JSON Schema of `key`. Only the schema's own document is read: `$ref`s to files
/// or URLs are not fetched (the validator has no resolver for them) and fail here.
pub fn compile(key: &str, schema: &Value) -> Result<jsonschema::Validator, ApiError> {
    jsonschema::validator_for(schema).map_err(|error| {
        ApiError::invalid_input(
            "body",
            format!("Error in key path \"userWritable.{key}.schema\": {error}"),
        )
    })
}

/// The body of `PUT`: unknown fields are refused, so a misspelt `schema` cannot silently leave
/// a key unchecked.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyBody {
    user_writable: BTreeMap<String, KeyBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    schema: Option<Value>,
}

/// The policy in force; `{"userWritable": {}}` until one is set.
#[utoipa::path(get, path = "/api/configs/custom-data-policy", tag = "Configs",
    responses((status = 200, body = Object,
        description = "`{ userWritable: { <key>: { schema?: <JSON Schema> } } }`")),
    security(("bearer" = [])))]
async fn get_policy(State(state): State<AppState>) -> Result<axum::Json<Policy>, ApiError> {
    let db = state.store.pool().get().await?;
    Ok(axum::Json(
        projections::custom_data_policy::current(&db).await?,
    ))
}

/// Replace the policy. Every schema must compile; a key it leaves out becomes read-only for
/// users at once.
#[utoipa::path(put, path = "/api/configs/custom-data-policy", tag = "Configs",
    request_body(content = Object,
        description = "`{ userWritable: { <key>: { schema?: <JSON Schema> } } }`"),
    responses((status = 200, body = Object), (status = 400)),
    security(("bearer" = [])))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Json(body): Json<PolicyBody>,
) -> Result<axum::Json<Policy>, ApiError> {
    for (key, rule) in &body.user_writable {
        if let Some(schema) = &rule.schema {
            compile(key, schema)?;
        }
    }
    let policy = Policy {
        user_writable: body
            .user_writable
            .into_iter()
            .map(|(key, rule)| {
                (
                    key,
                    KeyPolicy {
                        schema: rule.schema,
                    },
                )
            })
            .collect(),
    };
    state
        .store
        .execute::<CustomDataPolicy>(
            custom_data_policy::STREAM_ID,
            CustomDataPolicyCommand::Replace(policy),
            &context.metadata(caller.actor),
        )
        .await?;
    get_policy(State(state)).await
}
