//! The string layers: environment variables and `--set` overrides, as figment
//! providers that keep every value a string (the field's type decides how to
//! read it) and remember which variable set which key.

use std::collections::BTreeMap;
use std::sync::Arc;

use figment::value::{Dict, Map, Tag, Value};
use figment::{Metadata, Profile, Provider};

use crate::error::{Diagnostic, DiagnosticKind};
use crate::origin::{COMMAND_LINE_SOURCE_NAME, ENV_SOURCE_NAME, Origin};

/// A layer of string values keyed by dotted paths.
#[derive(Debug, Clone)]
pub(crate) struct StringLayer {
    name: &'static str,
    dict: Dict,
    /// Dotted key → what set it (a variable name, or the key for `--set`).
    names: Arc<BTreeMap<String, String>>,
}

impl StringLayer {
    /// The variables `{PREFIX}__SECTION__KEY`, split on `__` only so that
    /// snake_case keys stay whole, lower-cased to match field names.
    pub(crate) fn from_env(prefix: &str, vars: &[(String, String)]) -> (Self, Vec<Diagnostic>) {
        let start = format!("{prefix}__");
        let mut layer = Self::new(ENV_SOURCE_NAME);
        let mut problems = Vec::new();
        let mut names = BTreeMap::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(&start) else {
                continue;
            };
            let keys: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if keys.iter().any(String::is_empty) {
                problems.push(source_problem(
                    Origin::Env(name.clone()),
                    "malformed variable name: an empty key between `__` separators",
                    format!(
                        "write {start}SECTION__KEY, with exactly two underscores between parts"
                    ),
                ));
                continue;
            }
            // Two spellings of one key (`APP__HTTP__PORT`, `APP__http__port`)
            // leave no telling which was meant.
            match insert(&mut layer.dict, &keys, value, false) {
                Ok(()) => {
                    names.insert(keys.join("."), name.clone());
                }
                Err(other) => {
                    let by = names.get(&other).map_or(other.as_str(), String::as_str);
                    let message = if other == keys.join(".") {
                        format!("sets the same key `{other}` as {by}")
                    } else {
                        format!(
                            "conflicts with {by}: one sets `{other}` to a value, the other a key inside it"
                        )
                    };
                    problems.push(source_problem(
                        Origin::Env(name.clone()),
                        &message,
                        "unset one of the two variables".to_owned(),
                    ));
                }
            }
        }
        layer.names = Arc::new(names);
        (layer, problems)
    }

    /// Overrides given as `key=value` pairs with dotted keys.
    pub(crate) fn from_overrides(pairs: &[(String, String)]) -> (Self, Vec<Diagnostic>) {
        let mut layer = Self::new(COMMAND_LINE_SOURCE_NAME);
        let mut problems = Vec::new();
        let mut names = BTreeMap::new();
        for (key, value) in pairs {
            let keys: Vec<String> = key.split('.').map(|k| k.trim().to_owned()).collect();
            if keys.iter().any(String::is_empty) {
                problems.push(source_problem(
                    Origin::CommandLine(key.clone()),
                    "malformed key: an empty part between dots",
                    "write --set section.key=value".to_owned(),
                ));
                continue;
            }
            // The same key again takes the later value, as a variable given
            // twice does: a `--set` on the command line over a `Loader::set`
            // in code, or the second of two `--set`s.
            match insert(&mut layer.dict, &keys, value, true) {
                Ok(()) => {
                    names.insert(keys.join("."), key.clone());
                }
                Err(other) => {
                    // The earlier override: of the clashing key itself, or
                    // of a key inside it.
                    let inside = format!("{other}.");
                    let by = names.get(&other).map_or_else(
                        || {
                            // The first name from `other.` on is inside it, if any is.
                            names
                                .range(inside.clone()..)
                                .next()
                                .filter(|(name, _)| name.starts_with(&inside))
                                .map_or(other.as_str(), |(_, by)| by.as_str())
                        },
                        String::as_str,
                    );
                    problems.push(source_problem(
                        Origin::CommandLine(key.clone()),
                        &format!(
                            "conflicts with the override of `{by}`: one sets `{other}` to a value, the other a key inside it"
                        ),
                        "keep one of the two overrides".to_owned(),
                    ));
                }
            }
        }
        layer.names = Arc::new(names);
        (layer, problems)
    }

    fn new(name: &'static str) -> Self {
        Self {
            name,
            dict: Dict::new(),
            names: Arc::default(),
        }
    }
}

fn source_problem(origin: Origin, message: &str, help: String) -> Diagnostic {
    Diagnostic {
        kind: DiagnosticKind::Source,
        key: None,
        origin,
        message: message.to_owned(),
        value: None,
        help: Some(help),
    }
}

/// Sets the key path `keys` to `value`; on a clash (a value and a table at
/// one key, or, without `later_wins`, one key set twice), returns the
/// dotted key of the clash.
fn insert(dict: &mut Dict, keys: &[String], value: &str, later_wins: bool) -> Result<(), String> {
    let mut node = dict;
    for (depth, key) in keys.iter().enumerate() {
        let last = depth + 1 == keys.len();
        let here = || keys[..=depth].join(".");
        if last {
            // With `later_wins`, the same key again takes the later value.
            // A key inside it set before is a conflict either way.
            match node.get(key) {
                Some(Value::Dict(..)) => return Err(here()),
                Some(_) if !later_wins => return Err(here()),
                _ => {}
            }
            node.insert(key.clone(), Value::String(Tag::Default, value.to_owned()));
            return Ok(());
        }
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        node = match entry {
            Value::Dict(_, inner) => inner,
            _ => return Err(here()),
        };
    }
    Ok(())
}

impl Provider for StringLayer {
    fn metadata(&self) -> Metadata {
        let names = Arc::clone(&self.names);
        Metadata::named(self.name).interpolater(move |_profile: &Profile, keys: &[&str]| {
            let key = keys.join(".");
            if let Some(name) = names.get(&key) {
                return name.clone();
            }
            // A section (an unknown one, say: `APP__HTPP__PORT` makes
            // `htpp`): the variables that set keys below it.
            let below = format!("{key}.");
            let names: Vec<&str> = names
                .range(below.clone()..)
                .take_while(|(name, _)| name.starts_with(&below))
                .map(|(_, variable)| variable.as_str())
                .collect();
            if names.is_empty() {
                key
            } else {
                names.join(", ")
            }
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut map = Map::new();
        map.insert(Profile::Default, self.dict.clone());
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_double_underscores_nest_so_snake_case_keys_stay_whole() {
        let (layer, problems) =
            StringLayer::from_env("APP", &vars(&[("APP__HTTP__READ_TIMEOUT", "5s")]));
        assert!(problems.is_empty());
        let http = layer.dict["http"].as_dict().unwrap();
        assert_eq!(http["read_timeout"].as_str(), Some("5s"));
    }

    #[test]
    fn variables_of_other_prefixes_and_the_environment_selector_are_ignored() {
        let (layer, problems) = StringLayer::from_env(
            "APP",
            &vars(&[("APP_ENV", "prod"), ("APPLE__X", "1"), ("OTHER__X", "1")]),
        );
        assert!(problems.is_empty());
        assert!(layer.dict.is_empty());
    }

    #[test]
    fn an_empty_key_between_separators_is_reported_with_the_variable_name() {
        let (_, problems) = StringLayer::from_env("APP", &vars(&[("APP__HTTP____PORT", "1")]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].origin, Origin::Env("APP__HTTP____PORT".into()));
    }

    #[test]
    fn two_spellings_of_one_key_conflict_and_say_so() {
        let (_, problems) = StringLayer::from_env(
            "APP",
            &vars(&[("APP__HTTP__PORT", "1"), ("APP__http__port", "2")]),
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].message,
            "sets the same key `http.port` as APP__HTTP__PORT"
        );
    }

    #[test]
    fn a_value_and_a_table_at_the_same_key_conflict() {
        let (_, problems) = StringLayer::from_env(
            "APP",
            &vars(&[("APP__HTTP", "x"), ("APP__HTTP__PORT", "1")]),
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("APP__HTTP"),
            "{}",
            problems[0].message
        );
    }
}
