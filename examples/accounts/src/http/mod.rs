//! The HTTP layer: extract, call the domain and the data layer, map
//! errors to problems. One module per domain, each with its own router,
//! merged by [`router`].
//!
//! Request and response bodies are plain structs beside their handlers,
//! deriving `utoipa::ToSchema`; each handler carries `#[utoipa::path]`
//! and is registered with `utoipa_axum::routes!`, which adds the route
//! and its description together. [`router`] also serves the document
//! (`/openapi.json`) and Swagger UI over it (`/docs`).

mod billing;
mod idempotency;
mod openapi;
mod pagination;
mod problems;
mod users;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;

/// The routes of the service with their description, before it is split
/// into a router and a document.
fn described() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(users::router())
        .merge(billing::router())
}

/// The OpenAPI document, rendered as answered at `/openapi.json`.
pub(crate) fn openapi_json() -> String {
    let (_, document) = described().split_for_parts();
    openapi::render(&document)
}

/// Every route of the service, `/openapi.json` and `/docs`.
pub(crate) fn router() -> Router<AppState> {
    let (router, document) = described().split_for_parts();
    let json = openapi::render(&document);
    router
        .route(
            "/openapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], json).into_response()
            }),
        )
        .merge(swagger_ui())
}

/// Swagger UI at `/docs`, every asset served from the binary: the crate's
/// `vendored` feature takes them from a registry crate at build time (no
/// download), `debug-embed` embeds them in debug builds too. It reads the
/// document served above rather than serving a copy of its own, and its
/// validator badge, which would fetch from another host, is off.
fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs").config(Config::new(["/openapi.json"]).validator_url("none"))
}
