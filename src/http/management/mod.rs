//! Logto's Management API: one module per resource, each exposing its routes.

use axum::Router;

use crate::app::AppState;

pub fn router(_state: AppState) -> Router<AppState> {
    Router::new()
}
