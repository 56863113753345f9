//! The HTTP layer: extract, call the domain and the data layer, map
//! errors to problems. One module per domain, each with its own router,
//! merged by [`router`].
//!
//! Request and response bodies are plain structs beside their handlers
//! and the handlers are named functions, so that OpenAPI annotations
//! (`utoipa::ToSchema`, `#[utoipa::path]`) can be added to each without
//! moving code.

mod billing;
mod idempotency;
mod pagination;
mod problems;
mod users;

use axum::Router;

use crate::AppState;

/// Every route of the service.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(users::router())
        .merge(billing::router())
}
