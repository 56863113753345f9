//! A service whose route `/stuck` starts a blocking job that never ends, and
//! says so on standard output: what `tests/deadline.rs` shuts down to check
//! that `Ops::serve` exits within `shutdown.deadline` even then. Settings
//! come from `STUCK__*` variables, like any opsready service.
//!
//! ```sh
//! STUCK__SHUTDOWN__DEADLINE=1s STUCK__SHUTDOWN__DRAIN_DELAY=100ms \
//!   cargo run -p bare --bin stuck
//! ```

use std::io::Write as _;

use axum::Router;
use axum::routing::get;

/// What the binary prints once the blocking job runs.
const STARTED: &str = "stuck job started";

/// The service has no settings of its own.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
struct NoSettings {}

impl opsready::settings::Validate for NoSettings {}

#[tokio::main]
async fn main() -> Result<(), opsready::ServeError> {
    let settings = opsready::settings::<NoSettings>("STUCK");
    let ops = opsready::Ops::new(&settings);
    let blocking = ops.blocking();
    let app = Router::new().route(
        "/stuck",
        get(move || {
            let blocking = blocking.clone();
            async move {
                let _ = blocking
                    .run(|| {
                        // One write of one line: whole among the log lines.
                        let _ = writeln!(std::io::stdout(), "{STARTED}");
                        // Parked for good: nothing unparks this thread.
                        loop {
                            std::thread::park();
                        }
                    })
                    .await;
                "never answered"
            }
        }),
    );
    ops.serve(app).await
}
