//! Where a setting's value came from.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::value::Tag;
use figment::{Figment, Profile, Source};
use serde::{Serialize, Serializer};

/// The layer a value came from, as shown in errors and in the settings dump.
///
/// It displays as `default`, `file config/local.toml`,
/// `environment variable MINIMAL__HTTP__PORT` or `--set http.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// No layer set it: the default in code.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A `--set key=value` override, by key.
    CommandLine(String),
}

pub(crate) const ENV_SOURCE_NAME: &str = "environment variable";
pub(crate) const COMMAND_LINE_SOURCE_NAME: &str = "--set";

impl Origin {
    /// The origin of the value tagged `tag` at `path` in `figment`.
    pub(crate) fn of(figment: &Figment, tag: Tag, path: &str) -> Self {
        if tag.is_default() {
            return Self::Default;
        }
        let Some(metadata) = figment.get_metadata(tag) else {
            return Self::Default;
        };
        if let Some(Source::File(file)) = &metadata.source {
            return Self::File(file.clone());
        }
        // An item of a list given as `a,b,c` (`ports[1]`) came from the
        // list's variable or `--set`.
        let keys: Vec<&str> = path
            .split('.')
            .map(|key| key.split_once('[').map_or(key, |(key, _)| key))
            .collect();
        match metadata.name.as_ref() {
            ENV_SOURCE_NAME => Self::Env(metadata.interpolate(&Profile::Default, &keys)),
            COMMAND_LINE_SOURCE_NAME => Self::CommandLine(keys.join(".")),
            _ => Self::Default,
        }
    }

    /// The file the value came from, if any.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::CommandLine(key) => write!(f, "--set {key}"),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
