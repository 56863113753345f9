//! [`Password`] as a person typed it, and [`PasswordHash`], all the
//! service ever keeps of it.
//!
//! Hashing is argon2id with the parameters of the `passwords` settings. It
//! costs tens of milliseconds of CPU and memory by design, so callers run
//! [`Hasher::hash`] through the blocking-work pool, never on an async worker.

use std::fmt;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use opsready::settings::Secret;

/// A password that passed the length rules. Its `Debug` is redacted and it
/// has no `Display` or `Serialize`: it cannot reach a log or a response by
/// accident.
#[derive(Debug, Clone)]
pub(crate) struct Password(Secret<String>);

/// Why a string is not a [`Password`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PasswordError(&'static str);

/// NIST SP 800-63B: at least 8 characters, and accept long passphrases.
const MIN_LEN: usize = 8;
/// Bounds the hashing input; argon2 takes any length, the body limit would
/// too, but a megabyte password is an attack, not a passphrase.
const MAX_LEN: usize = 128;

impl Password {
    /// Checks the length of `input`, in characters. Nothing is trimmed:
    /// spaces are part of a passphrase.
    pub(crate) fn parse(input: Secret<String>) -> Result<Self, PasswordError> {
        let length = input.expose_secret().chars().count();
        if length < MIN_LEN {
            return Err(PasswordError("must be at least 8 characters"));
        }
        if length > MAX_LEN {
            return Err(PasswordError("must be at most 128 characters"));
        }
        Ok(Self(input))
    }
}

/// An argon2id hash in the PHC string format (`$argon2id$v=19$m=…`), which
/// carries its salt and parameters, so that changing the settings never
/// locks out people hashed with the old ones.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PasswordHash(String);

impl PasswordHash {
    /// The PHC string, for storage.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `password` is the one hashed. CPU-bound like hashing.
    #[cfg_attr(not(test), allow(dead_code))] // sign-in comes in a later slice
    pub(crate) fn verify(&self, password: &Password) -> bool {
        let Ok(parsed) = argon2::PasswordHash::new(&self.0) else {
            return false;
        };
        // The parameters come from the hash itself, not from the settings.
        Argon2::default()
            .verify_password(password.0.expose_secret().as_bytes(), &parsed)
            .is_ok()
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not the password, but an offline attack starts from it.
        f.write_str("PasswordHash([REDACTED])")
    }
}

/// Hashes passwords with fixed argon2id parameters.
#[derive(Clone)]
pub(crate) struct Hasher {
    params: Params,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("memory_kib", &self.params.m_cost())
            .field("iterations", &self.params.t_cost())
            .field("parallelism", &self.params.p_cost())
            .finish()
    }
}

/// Hashing failed: the parameters are out of argon2's range.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub(crate) struct HashError(String);

impl Hasher {
    /// A hasher using `memory_kib` KiB, `iterations` passes and
    /// `parallelism` lanes.
    pub(crate) fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|error| HashError(error.to_string()))?;
        Ok(Self { params })
    }

    /// Hashes `password` with a fresh random salt. CPU-bound: run it on the
    /// blocking pool.
    pub(crate) fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
            .hash_password(password.0.expose_secret().as_bytes(), &salt)
            .map(|hash| PasswordHash(hash.to_string()))
            .map_err(|error| HashError(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::parse(Secret::new(text.to_owned())).unwrap()
    }

    fn cheap() -> Hasher {
        Hasher::new(64, 1, 1).unwrap()
    }

    #[test]
    fn a_password_of_eight_characters_is_accepted() {
        assert!(Password::parse(Secret::new("12345678".to_owned())).is_ok());
    }

    #[test]
    fn a_password_shorter_than_eight_characters_is_rejected() {
        assert!(Password::parse(Secret::new("1234567".to_owned())).is_err());
    }

    #[test]
    fn a_password_longer_than_128_characters_is_rejected() {
        assert!(Password::parse(Secret::new("a".repeat(129))).is_err());
    }

    #[test]
    fn spaces_count_as_characters_of_a_passphrase() {
        assert!(Password::parse(Secret::new("   a   b".to_owned())).is_ok());
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let debug = format!("{:?}", password("correct horse battery"));
        assert!(!debug.contains("horse"), "{debug}");
    }

    #[test]
    fn a_hash_is_an_argon2id_phc_string_that_verifies_the_password() {
        let hash = cheap().hash(&password("correct horse battery")).unwrap();

        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hash.verify(&password("correct horse battery")));
        assert!(!hash.verify(&password("correct horse battery!")));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let hasher = cheap();
        let first = hasher.hash(&password("correct horse battery")).unwrap();
        let second = hasher.hash(&password("correct horse battery")).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn a_hash_never_shows_in_debug_output() {
        let hash = cheap().hash(&password("correct horse battery")).unwrap();
        assert_eq!(format!("{hash:?}"), "PasswordHash([REDACTED])");
    }

    #[test]
    fn parameters_argon2_refuses_are_an_error() {
        assert!(Hasher::new(1, 1, 1).is_err());
        assert!(Hasher::new(64, 0, 1).is_err());
    }
}
