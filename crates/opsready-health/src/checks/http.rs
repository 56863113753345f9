use axum::http::StatusCode;

use crate::check::{Check, Reading};

/// Passes when a `GET` of `url` answers with a 2xx status; 3xx and 4xx warn
/// (the upstream is up but not answering as expected); 5xx and connection
/// errors fail.
///
/// `https://` goes through the system's TLS library (OpenSSL on Linux) and
/// trusts the system's certificate authorities; for a private authority or
/// a client certificate, see [`http_with`].
///
/// Readings name the URL without its credentials and query string: they are
/// served on `/readyz` to whoever can reach it.
pub fn http(url: impl Into<String>) -> impl Check {
    http_with(url, reqwest::Client::builder())
}

/// [`http`] with a client of the service's own making: a private
/// certificate authority (`add_root_certificate`), a client certificate
/// (`identity`), a proxy. Redirects are turned off whatever the builder
/// says: a 3xx is the answer to judge (it warns), not a login page's 200
/// behind it. A builder that cannot build (an unreadable certificate)
/// makes every reading fail, saying so.
///
/// ```
/// # fn authority() -> Vec<u8> { Vec::new() }
/// use opsready_health::checks::{self, reqwest};
///
/// let mut client = reqwest::Client::builder();
/// if let Ok(authority) = reqwest::Certificate::from_pem(&authority()) {
///     client = client.add_root_certificate(authority);
/// }
/// let check = checks::http_with("https://billing.internal/health", client);
/// # let _ = check;
/// ```
pub fn http_with(url: impl Into<String>, client: reqwest::ClientBuilder) -> impl Check {
    let url = url.into();
    let shown = shown_url(&url);
    // One client for every run.
    let client = client
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| opsready_vocab::redact_secrets(&error.to_string()).into_owned());
    move || {
        let (client, url, shown) = (client.clone(), url.clone(), shown.clone());
        async move {
            let client = match client {
                Ok(client) => client,
                Err(error) => {
                    return Reading::fail(format!(
                        "GET {shown}: the HTTP client could not be built: {error}"
                    ));
                }
            };
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

/// `url` without `user:password@`, the query string and the fragment. A
/// URL that does not parse is not shown at all: where its credentials end
/// cannot be told (a password holding `?`, `#` or `/`).
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(a URL that does not parse)".to_owned(),
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
        assert_eq!(
            shown_url("https://up.internal/health#top"),
            "https://up.internal/health"
        );
    }

    #[test]
    fn a_url_whose_credentials_cannot_be_told_apart_is_not_shown() {
        // The password holds `?`, `#` or `/`: where it ends is unknown.
        for url in [
            "https://svc:s3cr?t@up.internal/health",
            "https://svc:s3cr#t@up.internal/health",
            "https://svc:s3/cr@up.internal/health",
        ] {
            let shown = shown_url(url);
            assert!(!shown.contains("s3"), "{shown}");
            assert_eq!(shown, "(a URL that does not parse)");
        }
    }
}
