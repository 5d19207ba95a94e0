//! Logto's Management API: one module per resource, each exposing its routes with their
//! OpenAPI description. Every route here requires a Management API token, except the public
//! ones `router` adds after the authentication layer.

mod appid;
pub mod applications;
pub mod audit;
mod command;
mod configs;
mod connectors;
pub mod custom_data_policy;
pub mod events;
pub mod hooks;
pub mod listing;
mod lockout;
mod logs;
pub mod one_time_tokens;
mod organization_roles;
mod organizations;
pub mod roles;
mod sign_in_exp;
pub mod subject_tokens;
pub mod users;
mod verification_codes;

use axum::Router;
use axum::middleware::from_fn_with_state;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::http::auth::require_management;
use crate::http::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idledger Management API",
        description = "Logto-compatible Management API of idledger, an event-sourced identity server.",
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Every Management API route can answer these, whatever else it documents: bad input,
/// authentication, authorisation, absence, conflicts, refusals and outages.
struct ErrorResponses;

const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "The request is invalid."),
    ("401", "The Management API token is missing or invalid."),
    ("403", "The token lacks the `all` scope."),
    ("404", "The resource does not exist."),
    ("405", "The method is not allowed on this route."),
    ("409", "Concurrent modification; retry."),
    ("413", "The request body is too large."),
    ("422", "The request conflicts with existing data."),
    ("503", "The database is unavailable; retry."),
];

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, description) in COMMON_ERRORS {
                    let response = operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                    also_error_body(response);
                }
            }
        }
    }
}

/// A route that documents a body of its own for a shared error status (check-password's 400
/// with the policy's issues) can still answer that status with the error shape (a body that
/// does not parse): the documented schema becomes "either".
fn also_error_body(response: &mut utoipa::openapi::RefOr<utoipa::openapi::Response>) {
    use utoipa::openapi::schema::OneOfBuilder;
    use utoipa::openapi::{Ref, RefOr};
    let RefOr::T(response) = response else {
        return;
    };
    let Some(RefOr::T(content)) = response.content.get_mut("application/json") else {
        return;
    };
    let own = match content.schema.take() {
        Some(RefOr::Ref(reference)) if reference.ref_location.ends_with("/ErrorBody") => {
            RefOr::Ref(reference)
        }
        Some(own) => OneOfBuilder::new()
            .item(own)
            .item(Ref::from_schema_name("ErrorBody"))
            .into(),
        None => return,
    };
    content.schema = Some(own);
}

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
        .merge(users::routes())
        .merge(organizations::routes())
        .merge(organization_roles::routes())
        .merge(logs::routes())
        .merge(one_time_tokens::routes())
        .merge(subject_tokens::routes())
        .merge(configs::routes())
        .merge(custom_data_policy::routes())
        .merge(appid::routes())
        .merge(sign_in_exp::routes())
        .merge(connectors::routes())
        .merge(verification_codes::routes())
        .merge(events::routes())
        .merge(audit::routes())
        .merge(hooks::routes())
}

/// The routes, behind authentication, and their OpenAPI document.
pub fn router(state: AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = documented().split_for_parts();
    // The routes join the document only now, so the shared responses are added after them.
    ErrorResponses.modify(&mut openapi);
    // Merged after `route_layer`, which only wraps the routes already there: these stay public.
    let (public, public_openapi) = sign_in_exp::public_routes().split_for_parts();
    openapi.merge(public_openapi);
    (
        router
            .route_layer(from_fn_with_state(state, require_management))
            .merge(public),
        openapi,
    )
}
