//! [`Dump`]: the effective settings, redacted, with the origin of each value.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use figment::Figment;
use figment::value::Value;
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::de::is_within;
use crate::origin::Origin;
use crate::secret::REDACTED;
use opsready_vocab::{is_sensitive_name, redact_secrets_in};

/// The effective settings, one entry per dotted key, redacted, each with the
/// layer its value came from. Serializes to JSON as
/// `{"http.port": {"value": 8080, "origin": "environment variable APP__HTTP__PORT"}}`,
/// keys in order; this is what `--print-config` prints and `/admin/config`
/// serves.
///
/// Values are redacted when their type is [`crate::Secret`], when their key
/// looks like a credential (`password`, `token`, `secret`, `api_key`, …),
/// and passwords inside URLs (`postgres://user:…@host`) are masked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dump {
    entries: BTreeMap<String, DumpEntry>,
}

/// One effective setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DumpEntry {
    /// The value, redacted where needed.
    pub value: serde_json::Value,
    /// Where it came from.
    pub origin: Origin,
}

impl Dump {
    /// Builds the dump from the serialized settings and the layers they were
    /// loaded from.
    pub(crate) fn build(
        serialized: &serde_json::Value,
        figment: &Figment,
        root: &Value,
        secrets: &HashSet<String>,
        aliases: &Aliases,
    ) -> Self {
        let mut entries = BTreeMap::new();
        let mut leaves = Vec::new();
        flatten(serialized, String::new(), &mut leaves);
        for (key, value) in leaves {
            let given = aliases.input_key(&key);
            let origin = find(root, &given).map_or(Origin::Default, |node| {
                Origin::of(figment, node.tag(), &given)
            });
            let secret = secrets.iter().any(|s| is_within(&key, s));
            let value = redact_json(&key, value, secret);
            entries.insert(key, DumpEntry { value, origin });
        }
        Self { entries }
    }

    /// The entry of a dotted key.
    pub fn get(&self, key: &str) -> Option<&DumpEntry> {
        self.entries.get(key)
    }

    /// Every entry, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DumpEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The dump as pretty-printed JSON, as `--print-config` prints it.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl Serialize for Dump {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, entry) in &self.entries {
            map.serialize_entry(key, entry)?;
        }
        map.end()
    }
}

fn flatten(value: &serde_json::Value, key: String, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(v, crate::de::join(&key, k), out);
            }
        }
        other => out.push((key, other.clone())),
    }
}

/// Keys given under a `#[serde(alias)]`: each key as the settings
/// serialize it, with the key the input gave instead. Found by comparing
/// the two trees: at one level, an input key the settings took but do not
/// serialize, beside a serialized key the input lacks.
#[derive(Debug, Default)]
pub(crate) struct Aliases(Vec<(String, String)>);

impl Aliases {
    /// The aliases `input` used, given what the settings took (`accepted`)
    /// and how they serialize (`output`).
    pub(crate) fn find(
        input: &Value,
        output: &serde_json::Value,
        accepted: &HashSet<String>,
    ) -> Self {
        let mut found = Vec::new();
        walk(input, output, "", "", accepted, &mut found);
        Self(found)
    }

    /// `key` as the input spells it: its longest aliased part replaced.
    pub(crate) fn input_key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        self.0
            .iter()
            .filter(|(canonical, _)| is_within(key, canonical))
            .max_by_key(|(canonical, _)| canonical.len())
            .map_or(Cow::Borrowed(key), |(canonical, given)| {
                Cow::Owned(format!("{given}{}", &key[canonical.len()..]))
            })
    }
}

fn walk(
    input: &Value,
    output: &serde_json::Value,
    in_path: &str,
    out_path: &str,
    accepted: &HashSet<String>,
    found: &mut Vec<(String, String)>,
) {
    let (Value::Dict(_, dict), serde_json::Value::Object(fields)) = (input, output) else {
        return;
    };
    for (name, out) in fields {
        if let Some(value) = dict.get(name) {
            let (inner_in, inner_out) = (
                crate::de::join(in_path, name),
                crate::de::join(out_path, name),
            );
            walk(value, out, &inner_in, &inner_out, accepted, found);
        }
    }
    // Taken, but not serialized under that name: an alias (or a field
    // that is not serialized at all, which matches nothing below).
    let given = dict
        .iter()
        .filter(|(name, _)| !fields.contains_key(*name))
        .filter(|(name, _)| accepted.contains(&crate::de::join(in_path, name)));
    let lacking: Vec<(&String, &serde_json::Value)> = fields
        .iter()
        .filter(|(name, _)| !dict.contains_key(*name))
        .collect();
    for (alias, value) in given {
        // The field it set: the one serialized key the input lacks whose
        // value is the one given (the others kept their defaults).
        let mut matching = lacking.iter().filter(|(_, out)| same_value(value, out));
        let (Some((canonical, out)), None) = (matching.next(), matching.next()) else {
            continue;
        };
        let inner_in = crate::de::join(in_path, alias);
        let inner_out = crate::de::join(out_path, canonical);
        walk(value, out, &inner_in, &inner_out, accepted, found);
        found.push((inner_out, inner_in));
    }
}

/// Whether the input's `value` is what a field serialized as `output`:
/// the same text for a scalar (`"8080"` from a variable is `8080`), the
/// same length for a list, keys all there for a table.
fn same_value(value: &Value, output: &serde_json::Value) -> bool {
    match (value, output) {
        (Value::Dict(_, dict), serde_json::Value::Object(fields)) => {
            dict.keys().all(|key| fields.contains_key(key))
        }
        (Value::Array(_, items), serde_json::Value::Array(out)) => items.len() == out.len(),
        (value, output) => {
            let Some(text) = crate::de::scalar_text(value) else {
                return false;
            };
            match output {
                serde_json::Value::String(out) => *out == text,
                serde_json::Value::Number(n) => text.trim().parse::<f64>().ok() == n.as_f64(),
                serde_json::Value::Bool(b) => text.trim().eq_ignore_ascii_case(&b.to_string()),
                _ => false,
            }
        }
    }
}

/// The node at a dotted key (with `[i]` for list items) in figment's tree.
pub(crate) fn find<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    let mut node = root;
    if key.is_empty() {
        return Some(node);
    }
    for part in key.split('.') {
        let (name, indices) = part.split_once('[').unwrap_or((part, ""));
        node = node.as_dict()?.get(name)?;
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            node = node.as_array()?.get(i)?;
        }
    }
    Some(node)
}

/// Whether the last part of a dotted key names a credential (a safety net
/// for settings that should have been a `Secret` and are not): see
/// [`opsready_vocab::is_sensitive_name`].
pub(crate) fn is_sensitive_key(key: &str) -> bool {
    is_sensitive_name(key.rsplit('.').next().unwrap_or(key))
}

/// Whether a part of a dotted key before its last names a credential:
/// the entries of a map of them (`api_keys.partner_a`, `tokens.github`),
/// whose own names say nothing. Their text is masked; their numbers and
/// booleans are not (`passwords.memory_kib` is a hashing cost).
pub(crate) fn is_under_sensitive_key(key: &str) -> bool {
    let mut parts = key.split('.');
    parts.next_back();
    parts.any(|part| is_sensitive_name(part.split('[').next().unwrap_or(part)))
}

fn redact_json(key: &str, value: serde_json::Value, secret: bool) -> serde_json::Value {
    redact_value(key, value, secret, is_under_sensitive_key(key))
}

/// [`redact_json`] below the top: `hides_text` says that the value sits in
/// a table or map named like a credential, whose text is masked at any
/// depth (a list of keys under `api_keys.partner_a`).
fn redact_value(
    key: &str,
    value: serde_json::Value,
    secret: bool,
    hides_text: bool,
) -> serde_json::Value {
    // An unset secret reveals nothing but its absence, which an operator
    // needs to see (no admin token: admin routes disabled).
    if value.is_null() {
        return value;
    }
    if secret || is_sensitive_key(key) || (value.is_string() && hides_text) {
        return serde_json::Value::String(REDACTED.to_owned());
    }
    match value {
        serde_json::Value::String(mut s) => {
            redact_secrets_in(&mut s);
            serde_json::Value::String(s)
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(|item| redact_value("", item, false, hides_text))
                .collect(),
        ),
        // Tables inside lists (`[[replicas]]`) are not flattened into keys:
        // their fields are judged by their own names.
        serde_json::Value::Object(fields) => serde_json::Value::Object(
            fields
                .into_iter()
                .map(|(name, item)| {
                    let item = redact_value(&name, item, false, hides_text);
                    (name, item)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_in_a_plain_setting_shows_without_its_password() {
        assert_eq!(
            redact_json(
                "database.url",
                serde_json::json!("postgres://app:hunter2@db:5432/accounts"),
                false
            ),
            serde_json::json!("postgres://app:[REDACTED]@db:5432/accounts")
        );
    }

    #[test]
    fn unset_secrets_show_as_null_and_set_ones_as_redacted() {
        assert_eq!(
            redact_json("admin.token", serde_json::Value::Null, true),
            serde_json::Value::Null
        );
        assert_eq!(
            redact_json("admin.token", serde_json::json!("abc"), false),
            serde_json::json!(REDACTED)
        );
    }

    #[test]
    fn credentials_inside_tables_in_lists_are_redacted() {
        let value = serde_json::json!([
            { "url": "postgres://u:pw@h/db", "password": "pw", "name": "a" }
        ]);
        assert_eq!(
            redact_json("replicas", value, false),
            serde_json::json!([
                { "url": "postgres://u:[REDACTED]@h/db", "password": REDACTED, "name": "a" }
            ])
        );
    }

    #[test]
    fn the_text_in_a_map_of_credentials_is_redacted_and_its_numbers_kept() {
        assert_eq!(
            redact_json("api_keys.partner_a", serde_json::json!("k-123"), false),
            serde_json::json!(REDACTED)
        );
        assert_eq!(
            redact_json("tokens.github", serde_json::json!("ghp_abc"), false),
            serde_json::json!(REDACTED)
        );
        assert_eq!(
            redact_json("passwords.memory_kib", serde_json::json!(19_456), false),
            serde_json::json!(19_456)
        );
        assert_eq!(
            redact_json(
                "api_keys.partner_a",
                serde_json::json!(["k-1", {"key": "k-2", "weight": 3}]),
                false
            ),
            serde_json::json!([REDACTED, {"key": REDACTED, "weight": 3}])
        );
        assert_eq!(
            redact_json(
                "token_endpoint.url",
                serde_json::json!("https://idp/t"),
                false
            ),
            serde_json::json!("https://idp/t")
        );
    }

    #[test]
    fn credential_key_names_are_sensitive() {
        assert!(is_sensitive_key("headers.x-api-key"));
        assert!(is_sensitive_key("headers.Authorization"));
        assert!(is_sensitive_key("database.password"));
        assert!(is_sensitive_key("admin.token"));
        assert!(is_sensitive_key("telemetry.sentry.dsn"));
        assert!(!is_sensitive_key("server.addr"));
    }
}
