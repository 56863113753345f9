//! `docs/config.md` is rendered from the code; this fails when it drifts.

#[test]
fn the_settings_reference_matches_the_code() {
    let rendered = opsready::config_reference().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    if std::env::var_os("OPSREADY_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/config.md is out of date; regenerate it with\n\n    OPSREADY_BLESS=1 cargo test -p opsready --test reference\n"
    );
}
