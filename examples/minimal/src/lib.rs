//! The routes of the `minimal` example: a greeting, a slow endpoint to try
//! timeouts and graceful shutdown, and a failing one to see the error
//! envelope and panic handling.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use opsready::problem::extract::{Path, Query};
use opsready::problem::{Problem, codes};
use opsready::settings::Validate;
use serde::{Deserialize, Serialize};

/// The example's own settings (beside opsready's `server`, `admin`, …).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// How `/hello` greets: `MINIMAL__GREETING=Bonjour`.
    pub greeting: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_owned(),
        }
    }
}

impl Validate for Settings {}

/// The longest `/work` waits, so that a typo cannot hold a connection for
/// hours.
pub const MAX_WORK: Duration = Duration::from_secs(60);

/// The example's routes.
pub fn app(settings: &Settings) -> Router {
    let greeting = settings.greeting.clone();
    let named = greeting.clone();
    Router::new()
        .route(
            "/hello",
            get(move || async move { Json(Greeting::new(&greeting, "world")) }),
        )
        .route(
            "/hello/{name}",
            get(move |Path(name): Path<String>| async move { Json(Greeting::new(&named, &name)) }),
        )
        .route("/work", get(work))
        .route("/fail", get(fail))
}

/// The answer of `/hello`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Greeting {
    /// `Hello, world!`
    pub message: String,
}

impl Greeting {
    fn new(greeting: &str, name: &str) -> Self {
        Self {
            message: format!("{greeting}, {name}!"),
        }
    }
}

#[derive(Debug, Deserialize)]
struct WorkQuery {
    ms: u64,
}

/// Waits `ms` milliseconds (at most a minute), then answers how long.
async fn work(Query(query): Query<WorkQuery>) -> Json<serde_json::Value> {
    let wait = Duration::from_millis(query.ms).min(MAX_WORK);
    tracing::info!(
        ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "work started"
    );
    tokio::time::sleep(wait).await;
    Json(serde_json::json!({ "waited_ms": wait.as_millis() }))
}

#[derive(Debug, Deserialize)]
struct FailQuery {
    kind: FailKind,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FailKind {
    Error,
    Panic,
}

/// Fails on purpose: `kind=error` answers a 500 problem whose cause stays in
/// the logs, `kind=panic` panics (and the service keeps serving).
#[allow(clippy::panic)] // panicking is this endpoint's purpose
async fn fail(Query(query): Query<FailQuery>) -> Result<(), Problem> {
    match query.kind {
        FailKind::Error => Err(Problem::new(codes::INTERNAL_ERROR).with_cause(
            std::io::Error::other("the database said: relation \"users\" does not exist"),
        )),
        FailKind::Panic => panic!("the /fail endpoint panicked on purpose"),
    }
}
