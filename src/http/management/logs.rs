//! `/api/logs`: the activity log, a projection of the event log (Logto §3).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use projections::logs::{self, LogFilter, LogRow};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::listing::{self, Listing, Paging};
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::QueryPairs;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logs))
        .routes(routes!(get_log))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogResponse {
    pub tenant_id: &'static str,
    pub id: String,
    pub key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: i64,
}

impl From<LogRow> for LogResponse {
    fn from(row: LogRow) -> LogResponse {
        LogResponse {
            tenant_id: "default",
            id: row.id,
            key: row.key,
            payload: row.payload.into_value(),
            created_at: row.created_at,
        }
    }
}

fn time(query: &QueryPairs, key: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(key)
        .map(|value| {
            value.parse::<i64>().map_err(|_| {
                ApiError::invalid_input(
                    "query",
                    format!("Error in key path \"{key}\": not a number"),
                )
            })
        })
        .transpose()
}

/// List log entries, newest first.
#[utoipa::path(get, path = "/api/logs", tag = "Audit logs",
    params(
        ("userId" = Option<String>, Query, description = "Entries about this user."),
        ("applicationId" = Option<String>, Query, description = "Entries about this application."),
        ("logKey" = Option<String>, Query, description = "Exact log key, e.g. ExchangeTokenBy.ClientCredentials."),
        ("start_time" = Option<i64>, Query, description = "Earliest createdAt (ms, inclusive)."),
        ("end_time" = Option<i64>, Query, description = "Latest createdAt (ms, inclusive)."),
        ("page" = Option<i64>, Query, description = "1-based page (default 1)."),
        ("page_size" = Option<i64>, Query, description = "Page size (default 20, at most 100)."),
    ),
    responses((status = 200, body = Vec<LogResponse>), (status = 400)),
    security(("bearer" = [])))]
async fn list_logs(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: QueryPairs,
) -> Result<Listing<LogResponse>, ApiError> {
    let page = listing::required_page(&query)?;
    let filter = LogFilter {
        user_id: query.get("userId").map(str::to_owned),
        application_id: query.get("applicationId").map(str::to_owned),
        key: query.get("logKey").map(str::to_owned),
        start_time: time(&query, "start_time")?,
        end_time: time(&query, "end_time")?,
    };
    if let (Some(start), Some(end)) = (filter.start_time, filter.end_time)
        && start > end
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "log.invalid_time_window",
            "The start time must not be after the end time.",
        ));
    }
    let db = state.store.pool().get().await?;
    let window = page.window();
    let (rows, total) = logs::list(&db, &filter, window).await?;
    Ok(Listing {
        rows: rows.into_iter().map(LogResponse::from).collect(),
        paging: Some(Paging::new(&state, &uri, &query, page, total)),
    })
}

/// Get one log entry.
#[utoipa::path(get, path = "/api/logs/{id}", tag = "Audit logs",
    params(("id" = String, Path, description = "Log entry id.")),
    responses((status = 200, body = LogResponse), (status = 404)),
    security(("bearer" = [])))]
async fn get_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<LogResponse>, ApiError> {
    let db = state.store.pool().get().await?;
    logs::by_id(&db, &id)
        .await?
        .map(|row| axum::Json(row.into()))
        .ok_or_else(|| ApiError::not_exists_with_id("log", &id))
}
