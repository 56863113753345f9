//! Runs requests through [`bare::app`] in process, behind the whole opsready
//! stack or bare, with no sockets: under `valgrind --tool=callgrind` the
//! difference of two runs is the stack's instructions per request, a count
//! that, unlike a time, is the same from run to run on a busy machine.
//!
//! ```sh
//! cargo build --release -p bare --bin requests
//! valgrind --tool=callgrind target/release/requests 5000 stack > /dev/null  # and 25000,
//! valgrind --tool=callgrind target/release/requests 5000 bare > /dev/null   # and 25000
//! ```
//!
//! (instructions of the 25,000 run - those of the 5,000 run) / 20,000 is
//! the count per request, start-up left out. Telemetry is installed as
//! `Ops::serve` installs it, so the JSON lines go to standard output.

use std::process::ExitCode;

use axum::body::Body;
use axum::http::Request;
use opsready::settings::{Loader, Validate};
use opsready::telemetry::ServiceInfo;
use tower::ServiceExt as _;

/// The route has no settings of its own.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
struct NoSettings {}

impl Validate for NoSettings {}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(which)) = (
        args.next().and_then(|count| count.parse::<usize>().ok()),
        args.next(),
    ) else {
        usage()
    };
    let stack = match which.as_str() {
        "stack" => true,
        "bare" => false,
        _ => usage(),
    };

    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("no temporary directory");
        return ExitCode::FAILURE;
    };
    // The facade's settings, JSON lines at the level of `LEVEL` (`info`).
    let level = std::env::var("LEVEL").unwrap_or_else(|_| "info".to_owned());
    let loader = Loader::new("REQUESTS")
        .config_dir(dir.path().join("no-config"))
        .env([
            ("REQUESTS__TELEMETRY__LOG__FORMAT", "json"),
            ("REQUESTS__TELEMETRY__LOG__LEVEL", level.as_str()),
        ]);
    let settings = match opsready::load::<NoSettings>(&loader) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    // As `Ops::serve` installs it: lines to standard output from a thread
    // of their own (send them to a file or /dev/null).
    let service = ServiceInfo::new("requests", env!("CARGO_PKG_VERSION"));
    let _telemetry = match opsready::telemetry::init(&settings.ops.telemetry, &service) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };

    let ops = opsready::Ops::new(&settings);
    // With the state given, as `axum::serve` does.
    let app = if stack {
        ops.router(bare::app()).with_state(())
    } else {
        bare::app().with_state(())
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        eprintln!("no runtime");
        return ExitCode::FAILURE;
    };
    let ok = runtime.block_on(async {
        for _ in 0..count {
            // A host header, as every HTTP/1.1 request has.
            let Ok(request) = Request::get("/hello")
                .header("host", "127.0.0.1:8080")
                .body(Body::empty())
            else {
                return false;
            };
            match app.clone().oneshot(request).await {
                Ok(response) if response.status().is_success() => {}
                _ => return false,
            }
        }
        true
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("a request failed");
        ExitCode::FAILURE
    }
}

fn usage() -> ! {
    eprintln!("usage: requests COUNT stack|bare");
    std::process::exit(2)
}
