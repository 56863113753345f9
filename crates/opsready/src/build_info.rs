//! [`BuildInfo`]: what is running, for `/admin/info`.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

/// The name, version, commit and build time of the running service.
///
/// Make it with [`build_info!`](crate::build_info) in the service's crate,
/// so that the name and version are the service's, not opsready's; add
/// `opsready-build` as a build dependency with `opsready_build::emit()` in
/// `build.rs` for the commit and build time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// The package name.
    pub name: String,
    /// The package version.
    pub version: String,
    /// The git commit, `unknown` when not recorded.
    pub git_sha: String,
    /// The build time (RFC 3339), `unknown` when not recorded.
    pub build_time: String,
}

impl BuildInfo {
    /// Assembles build information; `build_time` is seconds since the Unix
    /// epoch, as `opsready-build` records it. Prefer
    /// [`build_info!`](crate::build_info).
    pub fn new(name: &str, version: &str, git_sha: Option<&str>, build_time: Option<&str>) -> Self {
        // RFC 3339 reaches the year 9999: a time past it (milliseconds
        // given for seconds) is `unknown`, not a panic at start.
        const YEAR_10000: u64 = 253_402_300_800;
        let build_time = build_time
            .and_then(|secs| secs.parse::<u64>().ok())
            .filter(|secs| *secs < YEAR_10000)
            .map(|secs| {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                    .to_string()
            });
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            git_sha: git_sha.unwrap_or("unknown").to_owned(),
            build_time: build_time.unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

impl BuildInfo {
    /// The release name error trackers file events under:
    /// `name@version+gitsha`, without the commit when it is unknown.
    pub fn release(&self) -> String {
        if self.git_sha == "unknown" {
            format!("{}@{}", self.name, self.version)
        } else {
            format!("{}@{}+{}", self.name, self.version, self.git_sha)
        }
    }
}

impl Default for BuildInfo {
    /// What is known without [`build_info!`](crate::build_info): the
    /// executable's name.
    fn default() -> Self {
        let name = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        Self::new(&name, "unknown", None, None)
    }
}

/// The [`BuildInfo`] of the crate this is written in.
///
/// ```
/// let info = opsready::build_info!();
/// assert_eq!(info.name, "opsready");
/// assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
/// ```
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::BuildInfo::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            option_env!("OPSREADY_GIT_SHA"),
            option_env!("OPSREADY_BUILD_TIME"),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::BuildInfo;

    #[test]
    fn a_build_time_past_the_year_9999_is_unknown_not_a_panic() {
        for secs in ["1732406400000", "253402300800", "18446744073709551615"] {
            let info = BuildInfo::new("svc", "1.0.0", None, Some(secs));
            assert_eq!(info.build_time, "unknown", "{secs}");
        }
        let info = BuildInfo::new("svc", "1.0.0", None, Some("1732406400"));
        assert_eq!(info.build_time, "2024-11-24T00:00:00Z");
    }
}
