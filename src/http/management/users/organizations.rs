//! The organizations a user belongs to, with the organization roles held in each.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::find;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::management::organizations::{OrganizationResponse, RoleRefResponse};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_organizations))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationWithRoles {
    #[serde(flatten)]
    pub organization: OrganizationResponse,
    pub organization_roles: Vec<RoleRefResponse>,
}

/// The user's organizations and their roles in each. Not paginated: Logto aligns it with the
/// organizations an ID token lists.
#[utoipa::path(get, path = "/api/users/{id}/organizations", tag = "Users",
    params(("id" = String, Path, description = "User id.")),
    responses((status = 200, body = Vec<OrganizationWithRoles>), (status = 404)),
    security(("bearer" = [])))]
async fn list_organizations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<OrganizationWithRoles>>, ApiError> {
    find(&state, &id).await?;
    let db = state.store.pool().get().await?;
    let memberships = projections::organizations::memberships(&db, &id).await?;
    Ok(axum::Json(
        memberships
            .into_iter()
            .map(|membership| OrganizationWithRoles {
                organization: membership.organization.into(),
                organization_roles: membership
                    .organization_roles
                    .into_iter()
                    .map(RoleRefResponse::from)
                    .collect(),
            })
            .collect(),
    ))
}
