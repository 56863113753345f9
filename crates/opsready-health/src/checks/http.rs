use axum::http::StatusCode;

use crate::check::{Check, Reading};

/// Passes when a `GET` of `url` answers with a 2xx status; 3xx and 4xx warn
/// (the upstream is up but not answering as expected); 5xx and connection
/// errors fail.
pub fn http(url: impl Into<String>) -> impl Check {
    let url = url.into();
    // One client for every run: it keeps connections for the next probe.
    let client = reqwest::Client::new();
    move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            match client.get(&url).send().await {
                Err(error) => Reading::fail(format!("GET {url}: {error}")),
                Ok(response) => {
                    let status = StatusCode::from_u16(response.status().as_u16())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    if status.is_success() {
                        Reading::pass()
                    } else if status.is_server_error() {
                        Reading::fail(format!("GET {url} answered {status}"))
                    } else {
                        Reading::warn(format!("GET {url} answered {status}"))
                    }
                }
            }
        }
    }
}
