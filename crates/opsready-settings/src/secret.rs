//! [`Secret<T>`]: a value that never prints.
//!
//! # Example
//!
//! ```
//! use opsready_settings::Secret;
//!
//! let token = Secret::new(String::from("hunter2"));
//! assert_eq!(format!("{token:?}"), "Secret([REDACTED])");
//! assert_eq!(token.to_string(), "[REDACTED]");
//! assert_eq!(serde_json::to_string(&token).unwrap(), "\"[REDACTED]\"");
//! assert_eq!(token.expose_secret(), "hunter2");
//! ```
//!
//! # What it guarantees
//!
//! `Debug`, `Display` and `Serialize` print `[REDACTED]`, so a secret is safe
//! in logs, in `--print-config` and in `/admin/config`. When a loaded value
//! cannot be parsed, the settings error names the key and its origin but not
//! the value, nor the parser's message, which could quote it. Reading the value
//! takes an explicit [`Secret::expose_secret`], easy to find in a review.
//!
//! It does not make comparisons constant-time: compare tokens with a
//! constant-time function.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// What every redacted value prints as: the mask every crate of opsready
/// uses.
pub use opsready_vocab::REDACTED;

/// The newtype name through which the settings deserializer recognises a
/// secret, so that its errors are redacted too. Other deserializers treat it
/// as an ordinary newtype.
pub(crate) const SECRET_MARKER: &str = "$opsready_settings::Secret";

/// A value that prints as `[REDACTED]` everywhere and is read only through
/// [`Secret::expose_secret`].
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// Reads the secret. Every call is a place where the value may leave the
    /// process: keep them few.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SecretVisitor<T> {
            type Value = Secret<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret value")
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Secret<T>, D::Error> {
                T::deserialize(deserializer).map(Secret)
            }

            // Self-describing formats that do not support newtypes hand the
            // inner value over directly.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret<T>, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(Secret)
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Secret<T>, E> {
                T::deserialize(de::value::StringDeserializer::new(v)).map(Secret)
            }
        }

        deserializer
            .deserialize_newtype_struct(SECRET_MARKER, SecretVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("s3cr3t-value");
        for printed in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            secret.to_string(),
            serde_json::to_string(&secret).unwrap(),
        ] {
            assert!(!printed.contains("s3cr3t"), "{printed}");
            assert!(printed.contains(REDACTED), "{printed}");
        }
    }

    #[test]
    fn a_secret_deserializes_from_ordinary_formats() {
        let secret: Secret<String> = serde_json::from_str("\"s3cr3t\"").unwrap();
        assert_eq!(secret.expose_secret(), "s3cr3t");
        let secret: Secret<u32> = serde_json::from_str("42").unwrap();
        assert_eq!(*secret.expose_secret(), 42);
    }
}
