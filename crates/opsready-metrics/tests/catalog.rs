//! `docs/metrics.md` is rendered from the catalog; this fails when it drifts.

#![allow(clippy::unwrap_used)]

#[test]
fn the_metrics_reference_matches_the_catalog() {
    let rendered = opsready_metrics::catalog::render_markdown(opsready_metrics::catalog::CATALOG);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    if std::env::var_os("OPSREADY_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/metrics.md is out of date; regenerate it with\n\n    OPSREADY_BLESS=1 cargo test -p opsready-metrics --test catalog\n"
    );
}
