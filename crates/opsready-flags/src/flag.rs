//! Flag definitions.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::date::Date;
use crate::rule::Rule;

/// A flag definition, as stored and as written by people (JSON or TOML):
/// its type, named variants, kill switch, targeting rules, percentage
/// rollout and ownership.
///
/// Fields are public so that stores and admin APIs can read and adjust
/// them; build new definitions with [`Flag::new`] or [`Flag::boolean`]
/// and the builder methods, since fields will be added.
///
/// # Example
///
/// ```
/// use opsready_flags::{Condition, Flag, FlagType, Kind, Rollout, Rule};
///
/// let json = r#"{
///     "key": "checkout.new-flow",
///     "type": "bool",
///     "variants": { "on": true, "off": false },
///     "default_variant": "off",
///     "rules": [
///         { "conditions": [{ "attribute": "plan", "op": "one_of", "value": ["pro", "team"] }],
///           "variant": "on" }
///     ],
///     "rollout": { "variant": "on", "percentage": 5 },
///     "kind": "release",
///     "owner": "team-checkout",
///     "expires": "2030-06-30",
///     "ticket": "SHOP-123"
/// }"#;
/// let flag: Flag = serde_json::from_str(json).unwrap();
/// assert_eq!(flag.flag_type, FlagType::Bool);
/// assert!(flag.validate().is_ok());
/// // A field this version does not know is kept, and written back.
/// assert_eq!(flag.extra["ticket"], "SHOP-123");
///
/// // The same definition, built in code.
/// let built = Flag::boolean("checkout.new-flow")
///     .rule(Rule::new("on").when(Condition::one_of("plan", ["pro", "team"])))
///     .rollout(Rollout::new("on", 5.0))
///     .kind(Kind::Release)
///     .owner("team-checkout")
///     .expires("2030-06-30".parse().unwrap());
/// assert_eq!(built.rules, flag.rules);
/// ```
///
/// # Gotchas
///
/// - `enabled: false` is a kill switch: it serves the default variant and
///   wins over every rule and the rollout.
/// - Rules are tried in order; the first whose conditions all hold serves
///   its variant. The rollout applies only when no rule matched.
/// - Fields this version does not know land in `extra` (at every level:
///   flag, rule, condition, rollout) and are written back unchanged, so a
///   binary rolled back to an older release still reads, and keeps, what a
///   newer one stored. An unknown operator makes the flag evaluate to the
///   caller's default (`PARSE_ERROR`) rather than guess.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Flag {
    /// The flag's key: lowercase ASCII letters, digits, `.`, `_` and `-`,
    /// starting with a letter or digit, 1 to 128 characters
    /// (`greeting.shout`).
    pub key: String,
    /// The type of every variant's value.
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// The named values the flag can serve.
    pub variants: BTreeMap<String, Value>,
    /// The variant served when the flag is disabled, or when no rule and no
    /// rollout chose another.
    pub default_variant: String,
    /// The kill switch: `false` serves the default variant whatever the
    /// rules say. Defaults to `true`.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Targeting rules, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// A variant served to a sticky percentage of targeting keys when no
    /// rule matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// What the flag is for. Defaults to [`Kind::Release`].
    #[serde(default)]
    pub kind: Kind,
    /// Who answers for the flag (a team or a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What the flag does, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The day the flag is due for removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Date>,
    /// Fields this version does not know, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn enabled_by_default() -> bool {
    true
}

impl Flag {
    /// A flag of `flag_type` with no variants yet; add them with
    /// [`variant`](Self::variant) and name the default with
    /// [`default_variant`](Self::default_variant).
    #[must_use]
    pub fn new(key: impl Into<String>, flag_type: FlagType) -> Self {
        Self {
            key: key.into(),
            flag_type,
            variants: BTreeMap::new(),
            default_variant: String::new(),
            enabled: true,
            rules: Vec::new(),
            rollout: None,
            kind: Kind::default(),
            owner: None,
            description: None,
            expires: None,
            extra: Map::new(),
        }
    }

    /// A boolean flag with the variants `on` (`true`) and `off` (`false`),
    /// `off` by default.
    #[must_use]
    pub fn boolean(key: impl Into<String>) -> Self {
        Self::new(key, FlagType::Bool)
            .variant("on", true)
            .variant("off", false)
            .default_variant("off")
    }

    /// Adds (or replaces) a variant.
    #[must_use]
    pub fn variant(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.variants.insert(name.into(), value.into());
        self
    }

    /// Names the default variant.
    #[must_use]
    pub fn default_variant(mut self, name: impl Into<String>) -> Self {
        self.default_variant = name.into();
        self
    }

    /// Sets the kill switch (`false` disables the flag).
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Appends a targeting rule.
    #[must_use]
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sets the percentage rollout.
    #[must_use]
    pub fn rollout(mut self, rollout: Rollout) -> Self {
        self.rollout = Some(rollout);
        self
    }

    /// Sets the kind.
    #[must_use]
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the owner.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the expiry date.
    #[must_use]
    pub fn expires(mut self, date: Date) -> Self {
        self.expires = Some(date);
        self
    }

    /// Whether the flag's expiry date is `today` or earlier.
    #[must_use]
    pub fn is_expired_on(&self, today: Date) -> bool {
        self.expires.is_some_and(|expires| expires <= today)
    }
}

/// The type of a flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagType {
    /// `true` or `false`.
    Bool,
    /// Text.
    String,
    /// A number (`f64`).
    Number,
    /// Any JSON value.
    Json,
}

impl FlagType {
    /// The name used in definitions: `bool`, `string`, `number`, `json`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::String => "string",
            Self::Number => "number",
            Self::Json => "json",
        }
    }

    /// Whether `value` is a value of this type.
    #[must_use]
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            Self::Bool => value.is_boolean(),
            Self::String => value.is_string(),
            Self::Number => value.is_number(),
            Self::Json => true,
        }
    }
}

impl fmt::Display for FlagType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a flag is for, which says how long it should live.
///
/// A kind this version does not know reads as [`Kind::Other`] and is
/// written back as it was; [`Flag::validate`] refuses it in new writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Kind {
    /// Hides unfinished work; removed once the release is complete.
    #[default]
    Release,
    /// Compares variants; removed once the experiment concludes.
    Experiment,
    /// An operational switch (degrade a feature under load); long-lived.
    Ops,
    /// Grants a feature to some users; long-lived.
    Permission,
    /// A kind this version does not know, as written.
    Other(String),
}

impl Kind {
    /// The name used in definitions.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Release => "release",
            Self::Experiment => "experiment",
            Self::Ops => "ops",
            Self::Permission => "permission",
            Self::Other(other) => other,
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "release" => Self::Release,
            "experiment" => Self::Experiment,
            "ops" => Self::Ops,
            "permission" => Self::Permission,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::parse(&name))
    }
}

/// A variant served to a sticky percentage of targeting keys when no rule
/// matched; everyone else gets the default variant.
///
/// See [`bucket`](crate::bucket) for how keys are assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rollout {
    /// The variant served to the keys in the percentage.
    pub variant: String,
    /// The share of targeting keys that get the variant, `0..=100`, with
    /// two decimals of resolution.
    pub percentage: f64,
    /// Fields this version does not know, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Rollout {
    /// Serves `variant` to `percentage` percent of targeting keys.
    #[must_use]
    pub fn new(variant: impl Into<String>, percentage: f64) -> Self {
        Self {
            variant: variant.into(),
            percentage,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rule::Condition;

    fn example() -> Flag {
        Flag::boolean("greeting.shout")
            .rule(Rule::new("on").when(Condition::equals("plan", "pro")))
            .rollout(Rollout::new("on", 25.0))
            .kind(Kind::Experiment)
            .owner("team-greetings")
            .description("Shout the greeting")
            .expires(Date::new(2030, 1, 31).unwrap())
    }

    #[test]
    fn a_boolean_flag_has_on_and_off_and_is_off_by_default() {
        let flag = Flag::boolean("a");
        assert_eq!(flag.variants["on"], json!(true));
        assert_eq!(flag.variants["off"], json!(false));
        assert_eq!(flag.default_variant, "off");
        assert!(flag.enabled);
        assert_eq!(flag.kind, Kind::Release);
    }

    #[test]
    fn a_definition_round_trips_through_json() {
        let flag = example();
        let text = serde_json::to_string(&flag).unwrap();
        let back: Flag = serde_json::from_str(&text).unwrap();
        assert_eq!(back, flag);
    }

    #[test]
    fn a_definition_round_trips_through_toml() {
        let flag = example();
        let text = toml::to_string(&flag).unwrap();
        let back: Flag = toml::from_str(&text).unwrap();
        assert_eq!(back, flag);
    }

    #[test]
    fn a_hand_written_toml_definition_reads() {
        let text = r#"
            key = "search.ranking"
            type = "string"
            default_variant = "classic"
            expires = 2031-03-01

            [variants]
            classic = "bm25"
            neural = "dense-v2"

            [[rules]]
            variant = "neural"
            conditions = [{ attribute = "country", op = "equals", value = "nz" }]

            [rollout]
            variant = "neural"
            percentage = 10
        "#;
        let flag: Flag = toml::from_str(text).unwrap();
        assert_eq!(flag.flag_type, FlagType::String);
        assert_eq!(flag.rollout.as_ref().unwrap().percentage, 10.0);
        assert_eq!(flag.expires.unwrap().to_string(), "2031-03-01");
        assert!(flag.validate().is_ok(), "{:?}", flag.validate());
    }

    #[test]
    fn unknown_fields_at_every_level_survive_a_round_trip() {
        let stored = json!({
            "key": "a",
            "type": "bool",
            "variants": { "on": true, "off": false },
            "default_variant": "off",
            "stages": [{ "percentage": 1 }, { "percentage": 10 }],
            "rules": [{
                "variant": "on",
                "name": "pro users",
                "conditions": [{ "attribute": "plan", "op": "equals", "value": "pro", "negate": false }]
            }],
            "rollout": { "variant": "on", "percentage": 5, "guard": { "metric": "errors" } }
        });
        let flag: Flag = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(flag.extra["stages"][1]["percentage"], 10);
        assert_eq!(flag.rules[0].extra["name"], "pro users");
        assert_eq!(flag.rules[0].conditions[0].extra["negate"], false);
        assert_eq!(
            flag.rollout.as_ref().unwrap().extra["guard"]["metric"],
            "errors"
        );

        let written = serde_json::to_value(&flag).unwrap();
        for pointer in [
            "/stages/1/percentage",
            "/rules/0/name",
            "/rules/0/conditions/0/negate",
            "/rollout/guard/metric",
        ] {
            assert_eq!(
                written.pointer(pointer),
                stored.pointer(pointer),
                "{pointer}"
            );
        }
    }

    #[test]
    fn an_unknown_kind_is_kept_as_written() {
        let flag: Flag = serde_json::from_value(json!({
            "key": "a", "type": "bool", "variants": { "off": false },
            "default_variant": "off", "kind": "migration"
        }))
        .unwrap();
        assert_eq!(flag.kind, Kind::Other("migration".to_owned()));
        assert_eq!(serde_json::to_value(&flag).unwrap()["kind"], "migration");
    }

    #[test]
    fn a_missing_enabled_means_enabled() {
        let flag: Flag = serde_json::from_value(json!({
            "key": "a", "type": "bool", "variants": { "off": false }, "default_variant": "off"
        }))
        .unwrap();
        assert!(flag.enabled);
    }

    #[test]
    fn a_flag_expires_on_its_date() {
        let flag = example();
        assert!(!flag.is_expired_on(Date::new(2030, 1, 30).unwrap()));
        assert!(flag.is_expired_on(Date::new(2030, 1, 31).unwrap()));
        assert!(!Flag::boolean("a").is_expired_on(Date::new(9999, 1, 1).unwrap()));
    }
}
