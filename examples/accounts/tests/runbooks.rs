//! `runbooks/accounts/` is `runbooks/templates/` filled in for this
//! service, with the addresses its settings default to; this fails when a
//! generated page drifts from its template, when a template uses a
//! placeholder nobody fills, or when a page links to a file that does not
//! exist. `OPSREADY_BLESS=1` writes the pages again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use opsready::settings::Loader;

fn runbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runbooks")
}

/// The templates, by file name.
fn templates() -> BTreeMap<String, String> {
    let mut pages = BTreeMap::new();
    for entry in std::fs::read_dir(runbooks().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            pages.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(!pages.is_empty(), "no templates found");
    pages
}

/// Each placeholder and this service's value for it: the addresses are
/// the ones its settings default to.
fn values() -> Vec<(&'static str, String)> {
    let loader = Loader::new("ACCOUNTS")
        .config_dir("no-such-config-dir")
        .env(std::iter::empty::<(&str, &str)>());
    let settings = opsready::load::<accounts::Settings>(&loader).unwrap();
    let admin = settings
        .ops
        .admin
        .addr
        .expect("an admin listener by default");
    vec![
        ("{{service}}", "accounts".to_owned()),
        ("{{job}}", "accounts".to_owned()),
        ("{{main}}", format!("http://{}", settings.ops.server.addr)),
        ("{{admin}}", format!("http://{admin}")),
        ("{{prefix}}", "ACCOUNTS".to_owned()),
    ]
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |page, (placeholder, value)| {
            page.replace(placeholder, value)
        })
}

#[test]
fn the_generated_runbooks_of_the_example_match_their_templates() {
    let values = values();
    let dir = runbooks().join("accounts");
    let bless = std::env::var_os("OPSREADY_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for (name, template) in templates() {
        let page = fill(&template, &values);
        assert!(
            !page.contains("{{"),
            "runbooks/templates/{name} has a placeholder with no value: {}",
            page.lines().find(|line| line.contains("{{")).unwrap()
        );
        let path = dir.join(&name);
        if bless {
            std::fs::write(&path, &page).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(page.as_str()) {
            stale.push(name);
        }
    }
    // Nothing generated is left over from a template that is gone.
    let generated: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !templates().contains_key(name))
        .collect();
    assert!(
        generated.is_empty(),
        "runbooks/accounts/ has pages without a template: {generated:?}"
    );
    assert!(
        stale.is_empty(),
        "runbooks/accounts/ is out of date ({stale:?}); regenerate it with\n\n    OPSREADY_BLESS=1 cargo test -p accounts --test runbooks\n"
    );
}

#[test]
fn every_link_of_the_runbooks_leads_to_a_file() {
    let mut pages = vec![runbooks().join("README.md")];
    for dir in ["templates", "accounts"] {
        // A directory not generated yet is the other test's to report.
        let Ok(entries) = std::fs::read_dir(runbooks().join(dir)) else {
            continue;
        };
        for entry in entries {
            pages.push(entry.unwrap().path());
        }
    }
    let mut broken = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        // Markdown links: `](target)`, the target up to `)` or `#`.
        for link in text.split("](").skip(1) {
            let target = link.split([')', '#']).next().unwrap();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            if !page.parent().unwrap().join(target).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nowhere: {broken:#?}");
}
