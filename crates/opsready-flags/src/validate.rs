//! Checks of a definition before it is stored, each problem located by a
//! JSON Pointer into the definition.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flag::{Flag, Kind};
use crate::rule::{Condition, Operator};

/// The longest flag key.
pub const MAX_KEY_LEN: usize = 128;
/// The longest variant name.
pub const MAX_VARIANT_LEN: usize = 64;

/// One problem of a definition: where (a JSON Pointer into the
/// definition, e.g. `/rules/0/conditions/1/value`) and what.
///
/// An HTTP layer answers these as a 422 with one error per violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Violation {
    /// A JSON Pointer (RFC 6901) to the offending value; `""` is the whole
    /// definition.
    pub pointer: String,
    /// What is wrong, for people.
    pub message: String,
}

impl Violation {
    /// A violation at `pointer`.
    #[must_use]
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// Escapes one reference token of a JSON Pointer (RFC 6901 section 3).
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Why `key` is not a valid flag key, if it is not.
pub(crate) fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Some(format!("must be 1 to {MAX_KEY_LEN} characters long"));
    }
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if let Some(bad) = key.chars().find(|c| !allowed(*c)) {
        return Some(format!(
            "may hold only lowercase ASCII letters, digits, `.`, `_` and `-`, not `{}`",
            bad.escape_default()
        ));
    }
    // Keys starting with a letter or digit leave `_`-prefixed names such as
    // `_unknown` free for labels that must never collide with a flag.
    if !key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Some("must start with a lowercase letter or a digit".to_owned());
    }
    None
}

fn variant_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_VARIANT_LEN {
        return Some(format!(
            "a variant name must be 1 to {MAX_VARIANT_LEN} characters long"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.chars().all(allowed) {
        return Some(
            "a variant name may hold only ASCII letters, digits, `.`, `_` and `-`".to_owned(),
        );
    }
    None
}

/// Why `percentage` is not a percentage, if it is not.
pub(crate) fn percentage_problem(value: &Value) -> Option<String> {
    match value.as_f64() {
        Some(p) if (0.0..=100.0).contains(&p) => None,
        Some(p) => Some(format!("must be a percentage between 0 and 100, got {p}")),
        None => Some("must be a number between 0 and 100".to_owned()),
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

impl Flag {
    /// Checks the definition, reporting every problem at once.
    ///
    /// ```
    /// use opsready_flags::{Condition, Flag, Rule};
    ///
    /// let flag = Flag::boolean("Bad Key")
    ///     .default_variant("maybe")
    ///     .rule(Rule::new("on").when(Condition::lt("age", 18.0)))
    ///     .rule(Rule::new("sideways"));
    /// let violations = flag.validate().unwrap_err();
    /// let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
    /// assert_eq!(pointers, ["/key", "/default_variant", "/rules/1/variant"]);
    /// ```
    ///
    /// # Errors
    ///
    /// Every violation: a bad key or variant name, a value of the wrong
    /// type, a default, rule or rollout variant that does not exist, a
    /// condition whose operator is unknown or whose operand does not suit
    /// it (a bad semantic version, a percentage outside `0..=100`), an
    /// unknown kind.
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut violations = Vec::new();
        let mut add =
            |pointer: String, message: String| violations.push(Violation::new(pointer, message));

        if let Some(problem) = key_problem(&self.key) {
            add("/key".to_owned(), problem);
        }
        if self.variants.is_empty() {
            add(
                "/variants".to_owned(),
                "a flag needs at least one variant".to_owned(),
            );
        }
        for (name, value) in &self.variants {
            let pointer = format!("/variants/{}", pointer_token(name));
            if let Some(problem) = variant_problem(name) {
                add(pointer.clone(), problem);
            }
            if !self.flag_type.accepts(value) {
                add(
                    pointer,
                    format!(
                        "the flag's type is `{}`, but this value is {}",
                        self.flag_type,
                        describe(value)
                    ),
                );
            }
        }
        let known = |variant: &str| self.variants.contains_key(variant);
        if !known(&self.default_variant) {
            add(
                "/default_variant".to_owned(),
                format!(
                    "`{}` is not one of the flag's variants",
                    self.default_variant
                ),
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if !known(&rule.variant) {
                add(
                    format!("/rules/{i}/variant"),
                    format!("`{}` is not one of the flag's variants", rule.variant),
                );
            }
            for (j, condition) in rule.conditions.iter().enumerate() {
                check_condition(condition, &format!("/rules/{i}/conditions/{j}"), &mut add);
            }
        }
        if let Some(rollout) = &self.rollout {
            if !known(&rollout.variant) {
                add(
                    "/rollout/variant".to_owned(),
                    format!("`{}` is not one of the flag's variants", rollout.variant),
                );
            }
            if let Some(problem) = percentage_problem(&Value::from(rollout.percentage)) {
                add("/rollout/percentage".to_owned(), problem);
            }
        }
        if let Kind::Other(other) = &self.kind {
            add(
                "/kind".to_owned(),
                format!("unknown kind `{other}`; known: release, experiment, ops, permission"),
            );
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

fn check_condition(condition: &Condition, at: &str, add: &mut impl FnMut(String, String)) {
    let op = &condition.op;
    if let Operator::Other(name) = op {
        add(
            format!("{at}/op"),
            format!(
                "unknown operator `{name}`; known: {}",
                Operator::KNOWN.join(", ")
            ),
        );
        return;
    }
    if *op != Operator::Percentage {
        match condition.attribute.as_deref() {
            None | Some("") => add(
                format!("{at}/attribute"),
                format!("`{op}` needs an attribute to test"),
            ),
            Some(_) => {}
        }
    }
    let value = &condition.value;
    let at_value = format!("{at}/value");
    match op {
        Operator::Equals | Operator::NotEquals => {
            if !is_scalar(value) {
                add(
                    at_value,
                    format!(
                        "`{op}` needs a string, number or boolean, got {}",
                        describe(value)
                    ),
                );
            }
        }
        Operator::OneOf | Operator::NotOneOf => match value {
            Value::Array(items) if items.is_empty() => {
                add(at_value, format!("`{op}` needs at least one value"));
            }
            Value::Array(items) => {
                for (k, item) in items.iter().enumerate() {
                    if !is_scalar(item) {
                        add(
                            format!("{at_value}/{k}"),
                            format!(
                                "must be a string, number or boolean, got {}",
                                describe(item)
                            ),
                        );
                    }
                }
            }
            other => add(
                at_value,
                format!("`{op}` needs a list, got {}", describe(other)),
            ),
        },
        Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte => {
            if !value.is_number() {
                add(
                    at_value,
                    format!("`{op}` needs a number, got {}", describe(value)),
                );
            }
        }
        Operator::SemverEq
        | Operator::SemverLt
        | Operator::SemverLte
        | Operator::SemverGt
        | Operator::SemverGte => match value.as_str() {
            Some(text) => {
                if let Err(error) = semver::Version::parse(text) {
                    add(
                        at_value,
                        format!("`{text}` is not a semantic version (MAJOR.MINOR.PATCH): {error}"),
                    );
                }
            }
            None => add(
                at_value,
                format!("`{op}` needs a version string, got {}", describe(value)),
            ),
        },
        Operator::Percentage => {
            if let Some(problem) = percentage_problem(value) {
                add(at_value, problem);
            }
        }
        Operator::Other(_) => {}
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flag::{FlagType, Rollout};
    use crate::rule::Rule;

    fn pointers(flag: &Flag) -> Vec<String> {
        flag.validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.pointer)
            .collect()
    }

    #[test]
    fn a_sound_definition_has_no_violations() {
        let flag = Flag::boolean("greeting.shout")
            .rule(Rule::new("on").when(Condition::semver("app", Operator::SemverGte, "1.2.3")))
            .rollout(Rollout::new("on", 100.0));
        assert_eq!(flag.validate(), Ok(()));
    }

    #[test]
    fn keys_outside_the_alphabet_are_rejected() {
        for key in [
            "",
            "Upper",
            "with space",
            "ümlaut",
            "_unknown",
            ".dot",
            &"a".repeat(129),
        ] {
            assert!(key_problem(key).is_some(), "{key:?}");
        }
        for key in ["a", "greeting.shout", "a_b-c.9", "9lives", &"a".repeat(128)] {
            assert_eq!(key_problem(key), None, "{key:?}");
        }
    }

    #[test]
    fn an_unknown_default_variant_is_reported_at_its_pointer() {
        let flag = Flag::boolean("a").default_variant("maybe");
        assert_eq!(pointers(&flag), ["/default_variant"]);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_reported_at_the_variant() {
        let flag = Flag::new("a", FlagType::Number)
            .variant("small", 1)
            .variant("big", "huge")
            .default_variant("small");
        let violations = flag.validate().unwrap_err();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].pointer, "/variants/big");
        assert!(
            violations[0].message.contains("`number`"),
            "{}",
            violations[0]
        );
    }

    #[test]
    fn a_variant_name_with_a_slash_is_escaped_in_the_pointer() {
        let flag = Flag::boolean("a").variant("a/b", true);
        assert_eq!(pointers(&flag), ["/variants/a~1b"]);
    }

    #[test]
    fn rule_and_rollout_variants_must_exist() {
        let flag = Flag::boolean("a")
            .rule(Rule::new("on"))
            .rule(Rule::new("nope"))
            .rollout(Rollout::new("gone", 10.0));
        assert_eq!(pointers(&flag), ["/rules/1/variant", "/rollout/variant"]);
    }

    #[test]
    fn percentages_outside_zero_to_a_hundred_are_rejected() {
        let flag = Flag::boolean("a")
            .rule(Rule::new("on").when(Condition::percentage(101.0)))
            .rollout(Rollout::new("on", -1.0));
        assert_eq!(
            pointers(&flag),
            ["/rules/0/conditions/0/value", "/rollout/percentage"]
        );
    }

    #[test]
    fn a_bad_semantic_version_is_rejected() {
        let flag = Flag::boolean("a").rule(
            Rule::new("on")
                .when(Condition::equals("plan", "pro"))
                .when(Condition::semver("app", Operator::SemverLt, "1.2")),
        );
        let violations = flag.validate().unwrap_err();
        assert_eq!(violations[0].pointer, "/rules/0/conditions/1/value");
        assert!(violations[0].message.contains("`1.2`"), "{}", violations[0]);
    }

    #[test]
    fn operands_must_suit_their_operator() {
        let flag = Flag::boolean("a").rule(
            Rule::new("on")
                .when(Condition::new(Some("n".into()), Operator::Lt, json!("ten")))
                .when(Condition::new(
                    Some("c".into()),
                    Operator::OneOf,
                    json!(["nz", ["au"]]),
                ))
                .when(Condition::new(Some("c".into()), Operator::OneOf, json!([])))
                .when(Condition::new(
                    Some("c".into()),
                    Operator::Equals,
                    json!({ "a": 1 }),
                ))
                .when(Condition::new(None, Operator::Equals, json!("x")))
                .when(Condition::new(
                    Some("c".into()),
                    Operator::Other("near".into()),
                    json!(1),
                )),
        );
        assert_eq!(
            pointers(&flag),
            [
                "/rules/0/conditions/0/value",
                "/rules/0/conditions/1/value/1",
                "/rules/0/conditions/2/value",
                "/rules/0/conditions/3/value",
                "/rules/0/conditions/4/attribute",
                "/rules/0/conditions/5/op",
            ]
        );
    }

    #[test]
    fn a_flag_needs_a_variant() {
        let flag = Flag::new("a", FlagType::Json);
        assert_eq!(pointers(&flag), ["/variants", "/default_variant"]);
    }

    #[test]
    fn an_unknown_kind_is_refused_in_new_writes() {
        let flag = Flag::boolean("a").kind(Kind::Other("migration".into()));
        assert_eq!(pointers(&flag), ["/kind"]);
    }

    #[test]
    fn a_violation_displays_its_pointer_and_message() {
        let violation = Violation::new("/key", "must not be empty");
        assert_eq!(violation.to_string(), "/key: must not be empty");
    }
}
