//! `docs/openapi.json` is the service's contract, generated from the code;
//! this fails when the committed file drifts from it.

#![allow(clippy::unwrap_used)]

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let rendered = accounts::openapi_json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("OPSREADY_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/openapi.json is out of date; regenerate it with\n\n    OPSREADY_BLESS=1 cargo test -p accounts --test openapi\n"
    );
}
