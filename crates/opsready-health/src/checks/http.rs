use axum::http::StatusCode;

use crate::check::{Check, Reading};

/// Passes when a `GET` of `url` answers with a 2xx status; 3xx and 4xx warn
/// (the upstream is up but not answering as expected); 5xx and connection
/// errors fail.
///
/// Readings name the URL without its credentials and query string: they are
/// served on `/readyz` to whoever can reach it.
pub fn http(url: impl Into<String>) -> impl Check {
    let url = url.into();
    let shown = shown_url(&url);
    // One client for every run: it keeps connections for the next probe.
    // Redirects are not followed: a 3xx is the answer to judge (it warns),
    // not a login page's 200 behind it.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    move || {
        let (client, url, shown) = (client.clone(), url.clone(), shown.clone());
        async move {
            match client.get(&url).send().await {
                // reqwest's error names the URL too: keep only its kind.
                Err(error) => Reading::fail(format!("GET {shown}: {}", error_kind(&error))),
                Ok(response) => {
                    let status = StatusCode::from_u16(response.status().as_u16())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    if status.is_success() {
                        Reading::pass()
                    } else if status.is_server_error() {
                        Reading::fail(format!("GET {shown} answered {status}"))
                    } else {
                        Reading::warn(format!("GET {shown} answered {status}"))
                    }
                }
            }
        }
    }
}

/// `url` without `user:password@` and without the query string.
fn shown_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => without_query.to_owned(),
            }
        }
        None => without_query.to_owned(),
    }
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_builder() {
        "not a valid URL"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn credentials_and_queries_are_left_out_of_readings() {
        assert_eq!(
            shown_url("https://svc:token@up.internal/health?api_key=k"),
            "https://up.internal/health"
        );
        assert_eq!(shown_url("http://up:8080/health"), "http://up:8080/health");
    }
}
