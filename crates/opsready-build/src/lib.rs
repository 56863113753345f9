//! Records the git commit and build time of a service at build time, with no
//! network, for `opsready::build_info!()` and `/admin/info`.
//!
//! # Example
//!
//! In the service's `build.rs` (with `opsready-build` as a build dependency):
//!
//! ```no_run
//! // build.rs
//! opsready_build::emit();
//! ```
//!
//! It sets `OPSREADY_GIT_SHA` (the commit of `HEAD`, with `-dirty` when the
//! work tree has changes to tracked files) and `OPSREADY_BUILD_TIME`
//! (seconds since the Unix epoch; the value of `SOURCE_DATE_EPOCH` when
//! set, for reproducible builds).
//!
//! Where the commit comes from, first found first:
//!
//! 1. `OPSREADY_GIT_SHA` in the build environment (a CI that builds from an
//!    archive sets it);
//! 2. the git checkout the crate is part of: its `Cargo.toml` must be
//!    tracked there, so that a crate unpacked inside some other repository
//!    (a dotfiles repository holding the cargo home, say) does not report
//!    that repository's commit;
//! 3. `.cargo_vcs_info.json`, which `cargo package` writes with the commit
//!    a published crate was packaged from;
//! 4. `unknown`, with a `cargo:warning` saying why.
//!
//! # When it runs again
//!
//! Cargo reruns the build script, and so refreshes the commit, the `-dirty`
//! mark and the build time, when `HEAD` moves (a checkout, a commit, a
//! reset, also of a branch's ref or of `packed-refs`), when the index
//! changes (`git add`), and when the crate's own `Cargo.toml`, `build.rs`
//! or a file under `src/` changes. An edit to another crate of the
//! workspace, not staged, does not make it run: the mark can lag behind
//! such an edit until the next `git add` or commit.
//!
//! `git status` runs with `--no-optional-locks`, so a build never takes the
//! index lock that a `git commit` running at the same moment needs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints the `cargo:` instructions that set `OPSREADY_GIT_SHA` and
/// `OPSREADY_BUILD_TIME` for the crate being built.
#[allow(clippy::print_stdout)] // cargo reads a build script's instructions from stdout
pub fn emit() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let environment = Environment {
        sha: std::env::var("OPSREADY_GIT_SHA").ok(),
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
        now,
    };
    for line in instructions(&dir, &environment) {
        println!("{line}");
    }
}

/// What [`instructions`] reads from the build's environment.
struct Environment {
    sha: Option<String>,
    source_date_epoch: Option<String>,
    now: u64,
}

/// The `cargo:` lines for the crate in `dir`.
fn instructions(dir: &Path, environment: &Environment) -> Vec<String> {
    let mut lines = Vec::new();
    let checkout = Checkout::of(dir);
    let sha = match environment.sha.as_deref().map(str::trim) {
        Some(sha) if !sha.is_empty() => sha.to_owned(),
        _ => match checkout.as_ref().and_then(Checkout::sha) {
            Some(sha) => sha,
            None => vcs_info_sha(dir).unwrap_or_else(|| {
                lines.push(format!(
                    "cargo:warning=opsready-build: no git commit for {}: it is not a tracked \
                     part of a git checkout (or git cannot run) and has no .cargo_vcs_info.json; \
                     /admin/info will say `unknown`. Set OPSREADY_GIT_SHA to name the commit.",
                    dir.display()
                ));
                "unknown".to_owned()
            }),
        },
    };
    let time = match environment.source_date_epoch.as_deref() {
        None => environment.now,
        Some(epoch) => epoch.trim().parse::<u64>().unwrap_or_else(|_| {
            lines.push(format!(
                "cargo:warning=opsready-build: SOURCE_DATE_EPOCH={epoch:?} is not a number of \
                 seconds; the build time is the current time"
            ));
            environment.now
        }),
    };
    lines.push(format!("cargo:rustc-env=OPSREADY_GIT_SHA={sha}"));
    lines.push(format!("cargo:rustc-env=OPSREADY_BUILD_TIME={time}"));
    lines.push("cargo:rerun-if-env-changed=OPSREADY_GIT_SHA".to_owned());
    lines.push("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH".to_owned());
    // Once a build script names what it depends on, cargo reruns it for
    // nothing else: the crate's own files are named too, those that exist
    // (cargo reruns a script on every build for a path that does not).
    for own in ["Cargo.toml", "build.rs", "src"] {
        let path = dir.join(own);
        if path.exists() {
            lines.push(format!("cargo:rerun-if-changed={}", path.display()));
        }
    }
    // Inside a repository, tracked or not yet: a crate reported `unknown`
    // until its first commit runs again once it is committed.
    if checkout.is_some() || git(dir, &["rev-parse", "--git-dir"]).is_some() {
        for path in watched(dir) {
            lines.push(format!("cargo:rerun-if-changed={}", path.display()));
        }
    } else if dir.join(".cargo_vcs_info.json").is_file() {
        lines.push(format!(
            "cargo:rerun-if-changed={}",
            dir.join(".cargo_vcs_info.json").display()
        ));
    }
    lines
}

/// The git checkout whose tracked files include `dir/Cargo.toml`.
struct Checkout {
    dir: PathBuf,
}

impl Checkout {
    fn of(dir: &Path) -> Option<Self> {
        // Tracked here, not merely below some repository's top.
        git(dir, &["ls-files", "--error-unmatch", "--", "Cargo.toml"])?;
        Some(Self {
            dir: dir.to_owned(),
        })
    }

    fn sha(&self) -> Option<String> {
        let sha = git(&self.dir, &["rev-parse", "--verify", "HEAD"])?;
        let dirty = git(
            &self.dir,
            &[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
        )
        .is_some_and(|status| !status.is_empty());
        Some(if dirty { format!("{sha}-dirty") } else { sha })
    }
}

/// The files whose change moves `HEAD` or the index of the repository
/// `dir` is in, each where git keeps it (a linked worktree keeps its refs
/// in the common directory), those that exist: `HEAD`, its reflog (written
/// by every commit, reset and checkout), the ref `HEAD` points to,
/// `packed-refs` and the index.
fn watched(dir: &Path) -> Vec<PathBuf> {
    let mut names = vec![
        "HEAD".to_owned(),
        "logs/HEAD".to_owned(),
        "index".to_owned(),
        "packed-refs".to_owned(),
    ];
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        names.push(reference);
    }
    names
        .iter()
        .filter_map(|name| git(dir, &["rev-parse", "--git-path", name]))
        .map(|path| dir.join(path))
        .filter(|path| path.exists())
        .collect()
}

/// The commit `cargo package` recorded in `dir/.cargo_vcs_info.json`,
/// with `-dirty` when it packaged uncommitted changes.
fn vcs_info_sha(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let sha = json_string_after(&text, "\"sha1\"")?;
    if !sha.bytes().all(|b| b.is_ascii_hexdigit()) || sha.is_empty() {
        return None;
    }
    let dirty = text.split_once("\"dirty\"").is_some_and(|(_, rest)| {
        rest.trim_start()
            .trim_start_matches(':')
            .trim_start()
            .starts_with("true")
    });
    Some(if dirty {
        format!("{sha}-dirty")
    } else {
        sha.to_owned()
    })
}

/// The string value of the first member named by `key` (quoted) in
/// `text`: enough for the flat file cargo writes, with no JSON parser in
/// a build script.
fn json_string_after<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let (_, rest) = text.split_once(key)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split_once('"').map(|(value, _)| value)
}

/// The trimmed standard output of `git ARGS` run in `dir`, when it
/// succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=Build",
                "-c",
                "user.email=build@example.com",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    fn environment() -> Environment {
        Environment {
            sha: None,
            source_date_epoch: None,
            now: 1_700_000_000,
        }
    }

    fn value<'l>(lines: &'l [String], prefix: &str) -> &'l str {
        lines
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {lines:?}"))
    }

    /// A repository with a crate at `service/`, one commit.
    fn repository() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        run(root.path(), &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(root.path().join("service/src")).unwrap();
        std::fs::write(root.path().join("service/Cargo.toml"), "[package]\n").unwrap();
        std::fs::write(root.path().join("service/src/main.rs"), "fn main() {}\n").unwrap();
        run(root.path(), &["add", "."]);
        run(root.path(), &["commit", "-q", "-m", "first"]);
        root
    }

    #[test]
    fn a_tracked_crate_reports_its_commit_and_marks_unstaged_edits_dirty() {
        let root = repository();
        let crate_dir = root.path().join("service");
        let head = git(root.path(), &["rev-parse", "HEAD"]).unwrap();

        let clean = instructions(&crate_dir, &environment());
        std::fs::write(crate_dir.join("src/main.rs"), "fn main() { }\n").unwrap();
        let edited = instructions(&crate_dir, &environment());

        assert_eq!(value(&clean, "cargo:rustc-env=OPSREADY_GIT_SHA="), head);
        assert_eq!(
            value(&edited, "cargo:rustc-env=OPSREADY_GIT_SHA="),
            format!("{head}-dirty")
        );
        assert_eq!(
            value(&clean, "cargo:rustc-env=OPSREADY_BUILD_TIME="),
            "1700000000"
        );
        assert!(!clean.iter().any(|line| line.starts_with("cargo:warning")));
    }

    #[test]
    fn it_reruns_when_the_branch_ref_moves_or_the_crate_changes() {
        let root = repository();
        let crate_dir = root.path().join("service");

        let lines = instructions(&crate_dir, &environment());

        let watched: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.strip_prefix("cargo:rerun-if-changed="))
            .collect();
        for path in [
            "service/Cargo.toml",
            "service/src",
            ".git/HEAD",
            ".git/logs/HEAD",
            ".git/index",
            ".git/refs/heads/main",
        ] {
            assert!(
                watched.iter().any(|w| Path::new(w)
                    .canonicalize()
                    .unwrap_or_else(|_| PathBuf::from(w))
                    .ends_with(path)
                    || w.ends_with(path)),
                "{path} not watched: {watched:?}"
            );
        }
        // A path that does not exist would rerun the script on every build.
        for path in &watched {
            assert!(Path::new(path).exists(), "{path} does not exist");
        }
    }

    #[test]
    fn a_crate_untracked_inside_another_repository_is_not_given_its_commit() {
        let root = repository();
        // Unpacked into the repository's work tree, never added.
        let unpacked = root.path().join("vendor/some-service");
        std::fs::create_dir_all(&unpacked).unwrap();
        std::fs::write(unpacked.join("Cargo.toml"), "[package]\n").unwrap();

        let lines = instructions(&unpacked, &environment());

        assert_eq!(
            value(&lines, "cargo:rustc-env=OPSREADY_GIT_SHA="),
            "unknown"
        );
        // Once it is committed, it runs again.
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("cargo:rerun-if-changed=") && line.ends_with("index")),
            "{lines:?}"
        );
        assert!(
            value(&lines, "cargo:warning=").contains("OPSREADY_GIT_SHA"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_packaged_crate_reports_the_commit_cargo_recorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        std::fs::write(
            dir.path().join(".cargo_vcs_info.json"),
            "{\n  \"git\": {\n    \"sha1\": \"0123456789abcdef0123456789abcdef01234567\",\n    \"dirty\": true\n  },\n  \"path_in_vcs\": \"service\"\n}\n",
        )
        .unwrap();

        let lines = instructions(dir.path(), &environment());

        assert_eq!(
            value(&lines, "cargo:rustc-env=OPSREADY_GIT_SHA="),
            "0123456789abcdef0123456789abcdef01234567-dirty"
        );
    }

    #[test]
    fn the_environment_overrides_and_a_bad_epoch_is_reported() {
        let root = repository();
        let environment = Environment {
            sha: Some("abc123".to_owned()),
            source_date_epoch: Some("yesterday".to_owned()),
            now: 42,
        };

        let lines = instructions(&root.path().join("service"), &environment);

        assert_eq!(value(&lines, "cargo:rustc-env=OPSREADY_GIT_SHA="), "abc123");
        assert_eq!(value(&lines, "cargo:rustc-env=OPSREADY_BUILD_TIME="), "42");
        assert!(
            value(&lines, "cargo:warning=").contains("SOURCE_DATE_EPOCH"),
            "{lines:?}"
        );
    }
}
