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
//! work tree has changes; `unknown` outside a git checkout or without git)
//! and `OPSREADY_BUILD_TIME` (seconds since the Unix epoch; the value of
//! `SOURCE_DATE_EPOCH` when set, for reproducible builds).
//!
//! # Gotchas
//!
//! - Cargo reruns the build script when `HEAD` or the index changes, not on
//!   every edit: the `-dirty` mark can lag behind unsaved work.
//! - A build from a source archive without `.git` reports `unknown`; set
//!   `OPSREADY_GIT_SHA` in the build environment to override.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints the `cargo:` instructions that set `OPSREADY_GIT_SHA` and
/// `OPSREADY_BUILD_TIME` for the crate being built.
#[allow(clippy::print_stdout)] // cargo reads a build script's instructions from stdout
pub fn emit() {
    let sha = std::env::var("OPSREADY_GIT_SHA")
        .ok()
        .filter(|sha| !sha.is_empty())
        .or_else(git_sha)
        .unwrap_or_else(|| "unknown".to_owned());
    let time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|epoch| epoch.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=OPSREADY_GIT_SHA={sha}");
    println!("cargo:rustc-env=OPSREADY_BUILD_TIME={time}");
    println!("cargo:rerun-if-env-changed=OPSREADY_GIT_SHA");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/index");
    }
}

fn git_sha() -> Option<String> {
    let sha = git(&["rev-parse", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}
