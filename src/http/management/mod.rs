//! Logto's Management API: one module per resource, each exposing its routes with their
//! OpenAPI description. Every route here requires a Management API token.

pub mod applications;
mod configs;
mod listing;
mod logs;
pub mod roles;

use axum::Router;
use axum::middleware::from_fn_with_state;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::http::auth::require_management;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idledger Management API",
        description = "Logto-compatible Management API of idledger, an event-sourced identity server.",
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(applications::routes())
        .merge(roles::routes())
        .merge(logs::routes())
        .merge(configs::routes())
}

/// The routes, behind authentication, and their OpenAPI document.
pub fn router(state: AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, openapi) = documented().split_for_parts();
    (
        router.route_layer(from_fn_with_state(state, require_management)),
        openapi,
    )
}
