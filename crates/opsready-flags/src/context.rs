//! What a flag is evaluated for: a targeting key and attributes.

use std::borrow::Cow;

/// The subject of an evaluation: an optional targeting key (the user,
/// account or device that percentages stick to) and attributes that rules
/// test.
///
/// ```
/// use opsready_flags::{AttributeValue, EvaluationContext};
///
/// let ctx = EvaluationContext::new()
///     .targeting_key("user-42")
///     .attribute("plan", "pro")
///     .attribute("seats", 12)
///     .attribute("beta", true);
/// assert_eq!(ctx.get_targeting_key(), Some("user-42"));
/// assert_eq!(ctx.get("seats"), Some(&AttributeValue::Number(12.0)));
/// ```
///
/// Attributes live in a small vector searched in order: a context has a
/// handful of them, and a scan of a few short names beats hashing.
/// Setting an attribute twice keeps the last value. A rule's attribute
/// named `targeting_key` reads the targeting key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationContext {
    targeting_key: Option<String>,
    attributes: Vec<(Cow<'static, str>, AttributeValue)>,
}

impl EvaluationContext {
    /// An empty context: no targeting key, no attributes.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            targeting_key: None,
            attributes: Vec::new(),
        }
    }

    /// Sets the targeting key, which percentages and rollouts need. An
    /// empty key counts as none: a rollout then answers
    /// `TARGETING_KEY_MISSING` rather than bucket every such caller alike.
    #[must_use]
    pub fn targeting_key(mut self, key: impl Into<String>) -> Self {
        self.targeting_key = Some(key.into());
        self
    }

    /// Sets an attribute, replacing a previous value of the same name.
    #[must_use]
    pub fn attribute(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<AttributeValue>,
    ) -> Self {
        self.set(name, value);
        self
    }

    /// Sets an attribute in place, replacing a previous value of the same name.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<AttributeValue>) {
        let name = name.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|(n, _)| *n == name) {
            Some((_, slot)) => *slot = value,
            None => self.attributes.push((name, value)),
        }
    }

    /// The targeting key, if any.
    #[must_use]
    pub fn get_targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    /// The value of an attribute, if set.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value)
    }

    /// Every attribute, in the order first set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.attributes.iter().map(|(n, v)| (n.as_ref(), v))
    }
}

/// The value of a context attribute.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttributeValue {
    /// Text, such as a plan name, a country or a version.
    String(String),
    /// A number; integers are held as `f64`.
    Number(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<f64> for AttributeValue {
    fn from(value: f64) -> Self {
        Self::Number(value)
    }
}

macro_rules! number_from {
    ($($t:ty),*) => {$(
        impl From<$t> for AttributeValue {
            fn from(value: $t) -> Self {
                Self::Number(f64::from(value))
            }
        }
    )*};
}

number_from!(f32, i8, i16, i32, u8, u16, u32);

macro_rules! number_from_wide {
    ($($t:ty),*) => {$(
        impl From<$t> for AttributeValue {
            /// Values beyond 2^53 lose precision, as in JSON.
            #[allow(clippy::cast_precision_loss)]
            fn from(value: $t) -> Self {
                Self::Number(value as f64)
            }
        }
    )*};
}

number_from_wide!(i64, u64, isize, usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_an_attribute_twice_keeps_the_last_value() {
        let ctx = EvaluationContext::new()
            .attribute("plan", "free")
            .attribute("plan", "pro");
        assert_eq!(
            ctx.get("plan"),
            Some(&AttributeValue::String("pro".to_owned()))
        );
        assert_eq!(ctx.attributes().count(), 1);
    }

    #[test]
    fn an_empty_context_has_no_key_and_no_attributes() {
        let ctx = EvaluationContext::new();
        assert_eq!(ctx.get_targeting_key(), None);
        assert_eq!(ctx.get("anything"), None);
    }

    #[test]
    fn integers_become_numbers() {
        let ctx = EvaluationContext::new()
            .attribute("a", 3_u8)
            .attribute("b", -7_i64)
            .attribute("c", 2.5);
        assert_eq!(ctx.get("a"), Some(&AttributeValue::Number(3.0)));
        assert_eq!(ctx.get("b"), Some(&AttributeValue::Number(-7.0)));
        assert_eq!(ctx.get("c"), Some(&AttributeValue::Number(2.5)));
    }
}
