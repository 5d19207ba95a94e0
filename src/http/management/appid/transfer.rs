//! App ID's `users/export` and `users/import`. An export is paged (`startIndex`, `count`) or,
//! without either, the whole set streamed from one consistent snapshot in constant memory; an
//! import keeps user ids and identity ids, refuses roles this instance lacks before appending
//! anything, skips users already here as imported and answers a summary (`crate::transfer`).
//! Both are recorded with their actor (`user_transfer.*`, `ManagementApi.User.Export|Import`).

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use domain::Metadata;
use domain::user_transfer::{Exported, TransferFormat};
use futures::SinkExt;
use futures::channel::mpsc;
use projections::transfer::{self as read, Cursor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio_postgres::IsolationLevel;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppIdProfile, UserList, check_tenant, window};
use crate::app::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, QueryPairs, RequestContext};
use crate::transfer::{self, Missing, TransferError};

/// Users per query of a streamed export.
const STREAM_PAGE: i64 = 500;
const EXPORT_DEFAULT_COUNT: i64 = 50;
const EXPORT_MAX_COUNT: i64 = 10_000;
/// An import carries many users in one body; larger sets go through `replay import-users`.
const IMPORT_BODY_LIMIT: usize = 64 << 20;

pub fn routes() -> OpenApiRouter<AppState> {
    let import = OpenApiRouter::new()
        .routes(routes!(import_users))
        .layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(export_users))
        .merge(import)
}

/// Export users with their profiles, identities, attributes and role names, oldest first.
/// With `startIndex` or `count`, one page; without, every user, streamed.
#[utoipa::path(get, path = "/management/v4/{tenant_id}/users/export", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`."),
           ("startIndex" = Option<i64>, Query, description = "0-based index of the first user of a page."),
           ("count" = Option<i64>, Query, description = "Users in a page, at most 10000 (default 50 when paging).")),
    responses((status = 200, body = Object,
        description = "`{ itemsPerPage, totalResults, requestOptions, users: [profile] }`")),
    security(("bearer" = [])))]
async fn export_users(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(tenant_id): Path<String>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    check_tenant(&tenant_id)?;
    let metadata = context.metadata(caller.actor);
    if query.get("startIndex").is_none() && query.get("count").is_none() {
        return stream_all(&state, &metadata).await;
    }
    let mut options = Map::new();
    let (start, count) = window(&query, EXPORT_DEFAULT_COUNT, EXPORT_MAX_COUNT, &mut options)?;
    let (users, total_results) = {
        let mut db = state.store.pool().get().await?;
        // One snapshot, so the total and the page agree.
        let snapshot = db
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let users = read::page(&snapshot, &Cursor::Index(start), count).await?;
        (users, read::count(&snapshot).await?)
    };
    transfer::record_export(
        &state.store,
        Exported {
            format: TransferFormat::AppId,
            count: u64::try_from(users.len()).unwrap_or(u64::MAX),
            start_index: u64::try_from(start).ok(),
        },
        &metadata,
    )
    .await?;
    Ok(axum::Json(UserList {
        items_per_page: users.len(),
        total_results,
        request_options: options,
        users: users.into_iter().map(AppIdProfile::from).collect(),
    })
    .into_response())
}

type Chunk = Result<Bytes, std::io::Error>;

/// Every user as one JSON document, written page by page from a read-only snapshot by a task
/// of its own while the client reads. The export is recorded before the first byte goes out.
async fn stream_all(state: &AppState, metadata: &Metadata) -> Result<Response, ApiError> {
    let (chunks, body) = mpsc::channel::<Chunk>(4);
    let (started, total) = oneshot::channel();
    tokio::spawn(write_all(state.store.pool().clone(), started, chunks));
    let total = total.await.map_err(|_| ApiError::internal())??;
    // Nothing has been sent yet: should the record fail, dropping `body` stops the writer.
    transfer::record_export(
        &state.store,
        Exported {
            format: TransferFormat::AppId,
            count: u64::try_from(total).unwrap_or(u64::MAX),
            start_index: None,
        },
        metadata,
    )
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Why a writer stopped early.
enum Stop {
    /// The reader went away; nothing to report.
    Gone,
    Failed(ApiError),
}

fn failed(error: impl Into<ApiError>) -> Stop {
    Stop::Failed(error.into())
}

async fn write_all(
    pool: Pool,
    started: oneshot::Sender<Result<i64, ApiError>>,
    mut chunks: mpsc::Sender<Chunk>,
) {
    let mut started = Some(started);
    match write_snapshot(&pool, &mut started, &mut chunks).await {
        Ok(()) | Err(Stop::Gone) => {}
        Err(Stop::Failed(error)) => match started.take() {
            // Not begun: the handler answers the error.
            Some(started) => {
                let _ = started.send(Err(error));
            }
            // Mid-body: an error chunk makes the server abort the response, so the client
            // sees a broken transfer, never a short but well-formed export.
            None => {
                tracing::error!(code = error.code, message = %error.message, "streamed export failed");
                let _ = chunks
                    .send(Err(std::io::Error::other("the export failed")))
                    .await;
            }
        },
    }
}

async fn send(chunks: &mut mpsc::Sender<Chunk>, bytes: Vec<u8>) -> Result<(), Stop> {
    chunks
        .send(Ok(Bytes::from(bytes)))
        .await
        .map_err(|_| Stop::Gone)
}

async fn write_snapshot(
    pool: &Pool,
    started: &mut Option<oneshot::Sender<Result<i64, ApiError>>>,
    chunks: &mut mpsc::Sender<Chunk>,
) -> Result<(), Stop> {
    let mut client = pool.get().await.map_err(failed)?;
    // Read-only and rolled back when dropped: it only pins what the export sees.
    let snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(failed)?;
    let total = read::count(&snapshot).await.map_err(failed)?;
    if let Some(started) = started.take() {
        started.send(Ok(total)).map_err(|_| Stop::Gone)?;
    }
    send(
        chunks,
        format!("{{\"itemsPerPage\":{total},\"totalResults\":{total},\"requestOptions\":{{}},\"users\":[")
            .into_bytes(),
    )
    .await?;
    let mut cursor = Cursor::Start;
    let mut first = true;
    loop {
        let page = read::page(&snapshot, &cursor, STREAM_PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            break;
        };
        cursor = Cursor::After {
            created_at: last.user.created_at,
            id: last.user.id.clone(),
        };
        let full = i64::try_from(page.len()).unwrap_or(i64::MAX) == STREAM_PAGE;
        let mut bytes = Vec::new();
        for user in page {
            if !first {
                bytes.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut bytes, &AppIdProfile::from(user))
                .map_err(|e| failed(crate::store::StoreError::Internal(e.to_string())))?;
        }
        send(chunks, bytes).await?;
        if !full {
            break;
        }
    }
    send(chunks, b"]}".to_vec()).await
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    /// App ID's export envelope may come along whole; only its users matter.
    users: Vec<AppIdProfile>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RefusedBody {
    id: String,
    code: &'static str,
    reason: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportSummary {
    /// The run's record (`user_transfer` stream).
    transfer_id: String,
    created: usize,
    skipped: usize,
    refused: usize,
    refused_users: Vec<RefusedBody>,
}

/// The refusal of a whole import, naming what this instance lacks.
fn missing_error(missing: &Missing) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "user.import_references_missing",
        missing.to_string(),
    )
    .with_data(json!({
        "missingRoles": missing.roles,
        "missingOrganizations": missing.organizations,
        "missingOrganizationRoles": missing.organization_roles,
    }))
}

fn transfer_error(error: TransferError) -> ApiError {
    match error {
        TransferError::Missing(missing) => missing_error(&missing),
        TransferError::Interrupted { created, source } => {
            let details = format!(
                "{created} user(s) were created before the failure; run the import again to \
                 finish (users already imported are skipped)."
            );
            ApiError::from(source)
                .with_details(details)
                .with_data(json!({ "created": created }))
        }
        TransferError::Store(error) => error.into(),
    }
}

/// Import users exported from App ID or idledger: ids and identity ids are kept; roles are
/// matched by name and must all exist here, or nothing is imported; users already here as
/// imported are skipped, so a re-run changes nothing.
#[utoipa::path(post, path = "/management/v4/{tenant_id}/users/import", tag = "App ID",
    params(("tenant_id" = String, Path, description = "`default`.")),
    request_body(content = Object, description = "`{ users: [profile] }` (an export, whole)"),
    responses((status = 200, body = Object,
        description = "`{ transferId, created, skipped, refused, refusedUsers: [{ id, code, reason }] }`"),
        (status = 400), (status = 422)),
    security(("bearer" = [])))]
async fn import_users(
    State(state): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(tenant_id): Path<String>,
    Json(body): Json<ImportBody>,
) -> Result<axum::Json<Value>, ApiError> {
    check_tenant(&tenant_id)?;
    let records = body
        .users
        .into_iter()
        .enumerate()
        .map(|(index, profile)| profile.into_record(index))
        .collect::<Result<Vec<_>, _>>()?;
    let users = records.len();
    let metadata = context.metadata(caller.actor);
    let planned = {
        let db = state.store.pool().get().await?;
        transfer::plan(&db, state.store.keyring(), records, TransferFormat::AppId).await
    };
    let plan = match planned {
        Err(TransferError::Missing(missing)) => {
            transfer::record_refusal(
                &state.store,
                TransferFormat::AppId,
                users,
                &missing,
                &metadata,
            )
            .await?;
            return Err(missing_error(&missing));
        }
        other => other.map_err(transfer_error)?,
    };
    let summary = transfer::apply(&state.store, plan, &metadata, |_, _| {})
        .await
        .map_err(transfer_error)?;
    let body = ImportSummary {
        transfer_id: summary.transfer_id,
        created: summary.created.len(),
        skipped: summary.skipped.len(),
        refused: summary.refused.len(),
        refused_users: summary
            .refused
            .into_iter()
            .map(|r| RefusedBody {
                id: r.id,
                code: r.code,
                reason: r.reason,
            })
            .collect(),
    };
    serde_json::to_value(body)
        .map(axum::Json)
        .map_err(|_| ApiError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_take_stray_provider_fields_as_user_info() {
        let profile: AppIdProfile = serde_json::from_value(json!({
            "id": "1439d777-185d-4be1-8f4a-c4e8142b87ea",
            "identities": [{"provider": "facebook", "id": "100195207128541",
                            "first_name": "AppID", "last_name": "Development"}],
            "attributes": {"points": 250},
            "roles": ["admin", {"name": "viewer"}]
        }))
        .unwrap();
        let record = profile.into_record(0).unwrap();
        let facebook = &record.identities["facebook"];
        assert_eq!(facebook.user_id, "100195207128541");
        assert_eq!(
            facebook.details,
            Some(json!({"first_name": "AppID", "last_name": "Development"}))
        );
        assert_eq!(
            record.roles.into_iter().collect::<Vec<_>>(),
            vec!["admin".to_owned(), "viewer".to_owned()]
        );
    }
}
