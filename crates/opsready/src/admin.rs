//! The admin router: `/admin/info` and `/metrics` for anyone who can reach
//! the admin listener; `/admin/config` and the flags API (`/admin/flags`)
//! behind the bearer token of `admin.token`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opsready_flags::Flags;
use opsready_metrics::{Format, Metrics};
use opsready_problem::Problem;
use opsready_settings::{Dump, Secret};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::BuildInfo;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) token: Option<Secret<String>>,
    pub(crate) dump: Arc<Dump>,
    pub(crate) info: Arc<BuildInfo>,
    pub(crate) metrics: Metrics,
    pub(crate) flags: Option<Flags>,
}

/// The admin routes, all under `/admin`.
pub(crate) fn router(state: AdminState) -> Router {
    let mut guarded: Router = Router::new()
        .route("/admin/config", get(config))
        .with_state(state.clone());
    if let Some(flags) = &state.flags {
        guarded = guarded.merge(crate::flags_admin::router(flags.clone()));
    }
    // `layer`, not `route_layer`: a method a route does not have is asked
    // for the token too (401, or 404 without `admin.token`, as documented)
    // rather than answered 405 to anyone. The catch-all the layer wrapped
    // too is reset: a path no route has stays a plain 404 for everyone, on
    // the admin listener and in a service's router it is merged into.
    let guarded = guarded
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .reset_fallback();
    Router::new()
        .route("/admin/info", get(info))
        // Open like every Prometheus target: it shows counts, not
        // configuration, and the admin listener is not public.
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(guarded)
}

async fn metrics(State(state): State<AdminState>, headers: HeaderMap) -> impl IntoResponse {
    // Runtime and pool gauges as of this scrape.
    state.metrics.collect();
    // OpenMetrics (with exemplars) when the scraper prefers it, as
    // Prometheus does. Several `Accept` lines are one list (RFC 9110).
    let mut accept = headers.get_all(header::ACCEPT).iter();
    let format = match (accept.next(), accept.next()) {
        (first, None) => Format::negotiate(first),
        (Some(first), Some(second)) => {
            let mut joined = first.as_bytes().to_vec();
            for value in std::iter::once(second).chain(accept) {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(value.as_bytes());
            }
            Format::negotiate(HeaderValue::from_bytes(&joined).ok().as_ref())
        }
        (None, Some(_)) => Format::Prometheus,
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::VARY, HeaderValue::from_static("accept")),
        ],
        state.metrics.render_as(format),
    )
}

async fn info(State(state): State<AdminState>) -> Json<BuildInfo> {
    Json((*state.info).clone())
}

async fn config(State(state): State<AdminState>) -> Json<Dump> {
    Json((*state.dump).clone())
}

/// Lets a request through only with `Authorization: Bearer <admin.token>`.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        // Disabled rather than open: a service that forgot its token must
        // not serve its configuration to whoever asks.
        return Problem::not_found(
            "this admin endpoint is disabled: it needs admin.token to be set",
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        // The scheme is case-insensitive (RFC 7235).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let authorized =
        presented.is_some_and(|presented| token_matches(presented, token.expose_secret()));
    if authorized {
        next.run(request).await
    } else {
        let problem = if presented.is_some() {
            Problem::unauthorized("the bearer token is wrong")
        } else {
            Problem::unauthorized("this admin endpoint needs `Authorization: Bearer <admin.token>`")
        };
        problem
            .header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"admin\""),
            )
            .into_response()
    }
}

/// Whether `presented` is `token`, in a time that reveals neither how much
/// of a guess was right nor the token's length: the two SHA-256 digests,
/// of one length whatever the inputs', are compared in constant time.
fn token_matches(presented: &str, token: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let token = Sha256::digest(token.as_bytes());
    bool::from(presented.as_slice().ct_eq(token.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_token_itself_matches() {
        let token = "a-token-that-is-long-enough";
        assert!(token_matches(token, token));
        assert!(!token_matches("a-token-that-is-long-enougH", token));
        assert!(!token_matches("a-token", token));
        assert!(!token_matches("", token));
        assert!(!token_matches(&format!("{token}x"), token));
    }
}
