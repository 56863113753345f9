//! The routes of the `minimal` example: a greeting (shouted when the
//! feature flag `greeting.shout` is on), a slow endpoint to try timeouts and
//! graceful shutdown, and a failing one to see the error envelope and panic
//! handling.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use opsready::flags::{EvaluationContext, Flag, Flags, Kind};
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

/// The flag that uppercases the greeting.
pub const SHOUT: &str = "greeting.shout";

/// The flags this service declares: created in the store on first start
/// (off), never overwriting what an operator changed since.
pub fn flags() -> Vec<Flag> {
    vec![
        Flag::boolean(SHOUT)
            .kind(Kind::Release)
            .owner("team-greetings")
            .description("Uppercases the greeting of /hello. Safe to kill: the greeting is then said normally."),
    ]
}

#[derive(Clone)]
struct AppState {
    greeting: String,
    flags: Flags,
}

/// The example's routes.
pub fn app(settings: &Settings, flags: Flags) -> Router {
    let state = AppState {
        greeting: settings.greeting.clone(),
        flags,
    };
    Router::new()
        .route("/hello", get(hello))
        .route("/hello/{name}", get(hello_name))
        .route("/work", get(work))
        .route("/fail", get(fail))
        .with_state(state)
}

async fn hello(State(state): State<AppState>) -> Json<Greeting> {
    Json(state.greet("world"))
}

async fn hello_name(State(state): State<AppState>, Path(name): Path<String>) -> Json<Greeting> {
    Json(state.greet(&name))
}

impl AppState {
    fn greet(&self, name: &str) -> Greeting {
        // The name is the targeting key, so a percentage rollout of the
        // flag shouts at the same people every time.
        let context = EvaluationContext::new().targeting_key(name);
        let greeting = Greeting::new(&self.greeting, name);
        if self.flags.bool_value(SHOUT, &context, false) {
            Greeting {
                message: greeting.message.to_uppercase(),
            }
        } else {
            greeting
        }
    }
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
/// the logs (with the password it quotes masked), `kind=panic` panics (and
/// the service keeps serving).
#[allow(clippy::panic)] // panicking is this endpoint's purpose
async fn fail(Query(query): Query<FailQuery>) -> Result<(), Problem> {
    match query.kind {
        FailKind::Error => Err(Problem::new(codes::INTERNAL_ERROR).with_cause(
            std::io::Error::other(
                "the database at postgres://app:hunter2@db/app said: relation \"users\" does not exist",
            ),
        )),
        FailKind::Panic => panic!("the /fail endpoint panicked on purpose"),
    }
}
