//! Request ids: keep a sane incoming `x-request-id`, else make a UUIDv7;
//! return it on every response.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use opsready_problem::layer::X_REQUEST_ID;

/// The longest incoming id kept.
const MAX_LEN: usize = 128;

/// Whether an incoming id can be kept: 1 to 128 visible ASCII characters.
/// Anything else (a log-injection attempt, a megabyte of text) is replaced.
fn is_sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_graphic())
}

pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(X_REQUEST_ID) {
        Some(id) if is_sane(id) => id.clone(),
        _ => {
            let id = uuid::Uuid::now_v7().hyphenated().to_string();
            // A UUID is always a valid header value.
            let id = HeaderValue::try_from(id).unwrap_or(HeaderValue::from_static("invalid"));
            request.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_ids_are_kept_and_others_replaced() {
        assert!(is_sane(&HeaderValue::from_static("req-1")));
        assert!(!is_sane(&HeaderValue::from_static("")));
        assert!(!is_sane(&HeaderValue::from_static("has space")));
        let long = HeaderValue::try_from("x".repeat(MAX_LEN + 1)).unwrap();
        assert!(!is_sane(&long));
    }
}
