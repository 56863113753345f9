//! `docs/errors.md` must be what the catalog renders.
//!
//! Regenerate it with:
//! `OPSREADY_BLESS=1 cargo test -p opsready-problem --test catalog`

use std::path::PathBuf;

use opsready_problem::{catalog, codes};

const BLESS: &str = "OPSREADY_BLESS=1 cargo test -p opsready-problem --test catalog";

fn errors_md() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors.md")
}

#[test]
fn the_error_reference_page_matches_the_catalog() {
    let rendered = catalog::render_markdown(codes::CATALOG);
    let path = errors_md();

    if std::env::var_os("OPSREADY_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }

    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read docs/errors.md ({e}); create it with `{BLESS}`"));
    // Compare line by line to name the first difference, not just "differs".
    if on_disk != rendered {
        let first = on_disk
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "the files differ in length".to_owned(),
                |i| format!("line {} differs", i + 1),
            );
        panic!(
            "docs/errors.md is out of date with the catalog ({first}); regenerate it with `{BLESS}`"
        );
    }
}

#[test]
fn every_catalog_code_is_on_the_page() {
    let page = catalog::render_markdown(codes::CATALOG);
    for code in codes::CATALOG {
        assert!(
            page.contains(&format!("| `{}` |", code.code())),
            "{}",
            code.code()
        );
    }
}
