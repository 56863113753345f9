//! Rules a value must keep beyond its type: [`Validate`].
//!
//! # Example
//!
//! ```
//! use opsready_settings::{Validate, Violations};
//!
//! struct Server { port: u16 }
//!
//! impl Validate for Server {
//!     fn validate(&self, v: &mut Violations) {
//!         if self.port <= 1024 {
//!             v.add("port", "must be > 1024: lower ports need root");
//!         }
//!     }
//! }
//!
//! let mut v = Violations::new();
//! v.nested("server", &Server { port: 80 });
//! assert_eq!(v.iter().next().unwrap().0, "server.port");
//! ```
//!
//! Validation runs after every value has parsed; while any value does not,
//! the rules are not checked, because they would see stand-ins for the values
//! that failed.

/// Semantic rules of a settings type, checked after it deserialized.
///
/// The default method accepts everything, so `impl Validate for Settings {}`
/// is all a type without rules needs.
pub trait Validate {
    /// Adds a violation to `v` for every rule that does not hold. Keys are
    /// relative to this value; [`Violations::nested`] prefixes them.
    fn validate(&self, v: &mut Violations) {
        let _ = v;
    }
}

/// The violations found by [`Validate::validate`], keyed by dotted key.
#[derive(Debug, Default)]
pub struct Violations {
    prefix: String,
    found: Vec<(String, String)>,
}

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the value at `key` breaks a rule. Write `message` as the
    /// rule, as in `must be > 1024`: it is shown after the key, its value
    /// and origin.
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        let key = crate::de::join(&self.prefix, key);
        self.found.push((key, message.into()));
    }

    /// Validates a section, with its keys under `key`.
    pub fn nested<T: Validate + ?Sized>(&mut self, key: &str, section: &T) {
        let inner = crate::de::join(&self.prefix, key);
        let outer = std::mem::replace(&mut self.prefix, inner);
        section.validate(self);
        self.prefix = outer;
    }

    /// Whether no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The violations as `(key, message)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.found.iter().map(|(k, m)| (k.as_str(), m.as_str()))
    }
}
