//! Targeting rules: conditions on context attributes and the variant they
//! serve.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A targeting rule: when every condition holds, the flag serves
/// `variant`. A rule without conditions always holds (a catch-all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rule {
    /// The conditions, all of which must hold; tested in order, stopping at
    /// the first that does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The variant served when the rule holds.
    pub variant: String,
    /// Fields this version does not know, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Rule {
    /// A rule serving `variant`, with no conditions yet.
    #[must_use]
    pub fn new(variant: impl Into<String>) -> Self {
        Self {
            conditions: Vec::new(),
            variant: variant.into(),
            extra: Map::new(),
        }
    }

    /// Adds a condition that must hold too.
    #[must_use]
    pub fn when(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }
}

/// A test of one context attribute (or, for [`Operator::Percentage`], of
/// the targeting key's bucket).
///
/// A condition on an attribute the context lacks, or holds with another
/// type (a number compared with text), does not hold, whatever the
/// operator: `not_equals` on a missing attribute is false too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Condition {
    /// The attribute tested; `targeting_key` names the targeting key.
    /// Not used by `percentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The test.
    pub op: Operator,
    /// The operand: a string, number or boolean; a list of them for
    /// `one_of`; a version string for the `semver_*` operators; a
    /// percentage for `percentage`.
    #[serde(default)]
    pub value: Value,
    /// Fields this version does not know, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Condition {
    /// A condition from its parts, as a definition spells it.
    #[must_use]
    pub fn new(attribute: Option<String>, op: Operator, value: Value) -> Self {
        Self {
            attribute,
            op,
            value,
            extra: Map::new(),
        }
    }

    fn on(attribute: impl Into<String>, op: Operator, value: impl Into<Value>) -> Self {
        Self::new(Some(attribute.into()), op, value.into())
    }

    /// The attribute equals `value` (same type and value).
    #[must_use]
    pub fn equals(attribute: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::on(attribute, Operator::Equals, value)
    }

    /// The attribute is present and differs from `value`.
    #[must_use]
    pub fn not_equals(attribute: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::on(attribute, Operator::NotEquals, value)
    }

    /// The attribute equals one of `values`.
    #[must_use]
    pub fn one_of<V: Into<Value>>(
        attribute: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let list: Vec<Value> = values.into_iter().map(Into::into).collect();
        Self::on(attribute, Operator::OneOf, list)
    }

    /// The attribute is present and equals none of `values`.
    #[must_use]
    pub fn not_one_of<V: Into<Value>>(
        attribute: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let list: Vec<Value> = values.into_iter().map(Into::into).collect();
        Self::on(attribute, Operator::NotOneOf, list)
    }

    /// The numeric attribute is less than `value`.
    #[must_use]
    pub fn lt(attribute: impl Into<String>, value: f64) -> Self {
        Self::on(attribute, Operator::Lt, value)
    }

    /// The numeric attribute is at most `value`.
    #[must_use]
    pub fn lte(attribute: impl Into<String>, value: f64) -> Self {
        Self::on(attribute, Operator::Lte, value)
    }

    /// The numeric attribute is greater than `value`.
    #[must_use]
    pub fn gt(attribute: impl Into<String>, value: f64) -> Self {
        Self::on(attribute, Operator::Gt, value)
    }

    /// The numeric attribute is at least `value`.
    #[must_use]
    pub fn gte(attribute: impl Into<String>, value: f64) -> Self {
        Self::on(attribute, Operator::Gte, value)
    }

    /// The attribute, a semantic version, compares with `version` as `op`
    /// says (one of the `Semver*` operators).
    #[must_use]
    pub fn semver(attribute: impl Into<String>, op: Operator, version: &str) -> Self {
        Self::on(attribute, op, version)
    }

    /// The targeting key is in the flag's first `percentage` percent of
    /// buckets.
    #[must_use]
    pub fn percentage(percentage: f64) -> Self {
        Self::new(None, Operator::Percentage, Value::from(percentage))
    }
}

/// How a [`Condition`] tests its attribute.
///
/// An operator this version does not know reads as [`Operator::Other`]
/// and is written back as it was; a flag using one evaluates to the
/// caller's default with `PARSE_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operator {
    /// `equals`: same type and value.
    Equals,
    /// `not_equals`: present, of the operand's type, and another value.
    NotEquals,
    /// `one_of`: equals an element of a list.
    OneOf,
    /// `not_one_of`: present, of the type of an element of the list, and
    /// equal to none.
    NotOneOf,
    /// `lt`: a number less than the operand.
    Lt,
    /// `lte`: a number at most the operand.
    Lte,
    /// `gt`: a number greater than the operand.
    Gt,
    /// `gte`: a number at least the operand.
    Gte,
    /// `semver_eq`: a semantic version equal to the operand.
    SemverEq,
    /// `semver_lt`: a semantic version lower than the operand.
    SemverLt,
    /// `semver_lte`: a semantic version at most the operand.
    SemverLte,
    /// `semver_gt`: a semantic version higher than the operand.
    SemverGt,
    /// `semver_gte`: a semantic version at least the operand.
    SemverGte,
    /// `percentage`: the targeting key's bucket is within the operand's
    /// percentage.
    Percentage,
    /// An operator this version does not know, as written.
    Other(String),
}

impl Operator {
    /// Every operator this version knows, by name.
    pub const KNOWN: [&'static str; 14] = [
        "equals",
        "not_equals",
        "one_of",
        "not_one_of",
        "lt",
        "lte",
        "gt",
        "gte",
        "semver_eq",
        "semver_lt",
        "semver_lte",
        "semver_gt",
        "semver_gte",
        "percentage",
    ];

    /// The name used in definitions.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Equals => "equals",
            Self::NotEquals => "not_equals",
            Self::OneOf => "one_of",
            Self::NotOneOf => "not_one_of",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::SemverEq => "semver_eq",
            Self::SemverLt => "semver_lt",
            Self::SemverLte => "semver_lte",
            Self::SemverGt => "semver_gt",
            Self::SemverGte => "semver_gte",
            Self::Percentage => "percentage",
            Self::Other(other) => other,
        }
    }

    /// The operator named `name`; unknown names give [`Operator::Other`].
    #[must_use]
    pub fn parse(name: &str) -> Self {
        match name {
            "equals" => Self::Equals,
            "not_equals" => Self::NotEquals,
            "one_of" => Self::OneOf,
            "not_one_of" => Self::NotOneOf,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "semver_eq" => Self::SemverEq,
            "semver_lt" => Self::SemverLt,
            "semver_lte" => Self::SemverLte,
            "semver_gt" => Self::SemverGt,
            "semver_gte" => Self::SemverGte,
            "percentage" => Self::Percentage,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::parse(&name))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_known_operator_parses_back_to_itself() {
        for name in Operator::KNOWN {
            let op = Operator::parse(name);
            assert!(!matches!(op, Operator::Other(_)), "{name}");
            assert_eq!(op.as_str(), name);
        }
    }

    #[test]
    fn an_unknown_operator_is_kept_as_written() {
        let condition: Condition = serde_json::from_value(
            json!({ "attribute": "ip", "op": "in_cidr", "value": "10.0.0.0/8" }),
        )
        .unwrap();
        assert_eq!(condition.op, Operator::Other("in_cidr".to_owned()));
        assert_eq!(serde_json::to_value(&condition).unwrap()["op"], "in_cidr");
    }

    #[test]
    fn the_builders_write_what_a_person_would() {
        let rule = Rule::new("on")
            .when(Condition::one_of("country", ["nz", "au"]))
            .when(Condition::semver(
                "app_version",
                Operator::SemverGte,
                "2.1.0",
            ))
            .when(Condition::percentage(20.0));
        assert_eq!(
            serde_json::to_value(&rule).unwrap(),
            json!({
                "variant": "on",
                "conditions": [
                    { "attribute": "country", "op": "one_of", "value": ["nz", "au"] },
                    { "attribute": "app_version", "op": "semver_gte", "value": "2.1.0" },
                    { "op": "percentage", "value": 20.0 }
                ]
            })
        );
    }

    #[test]
    fn a_rule_without_conditions_reads() {
        let rule: Rule = serde_json::from_value(json!({ "variant": "on" })).unwrap();
        assert!(rule.conditions.is_empty());
    }
}
