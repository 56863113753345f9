//! Human units for settings: durations (`250ms`, `30s`, `5m`, `1h`) and byte
//! sizes (`512KB`, `10MiB`).
//!
//! # Example
//!
//! ```
//! use opsready_settings::{ByteSize, Duration};
//!
//! let timeout: Duration = "1m30s".parse().unwrap();
//! assert_eq!(timeout.as_std(), std::time::Duration::from_secs(90));
//! assert_eq!(timeout.to_string(), "1m30s");
//!
//! let limit: ByteSize = "10MiB".parse().unwrap();
//! assert_eq!(limit.as_u64(), 10 * 1024 * 1024);
//! ```
//!
//! # Units
//!
//! | durations | |
//! |---|---|
//! | `ns`, `us` (or `µs`), `ms` | nano-, micro-, milliseconds |
//! | `s`, `m`, `h`, `d` | seconds, minutes, hours, days |
//!
//! Groups add up (`1h30m`, `1m 30s`), a group may carry a fraction (`1.5s`),
//! and a bare `0` is zero. Any other number needs its unit: `30` is refused
//! rather than guessed.
//!
//! | sizes | |
//! |---|---|
//! | `B` or no unit | bytes |
//! | `KB`, `MB`, `GB`, `TB` | powers of 1000 (SI) |
//! | `KiB`, `MiB`, `GiB`, `TiB` | powers of 1024 (IEC) |
//!
//! Size units are case-insensitive, so `10mb` is `10MB`. Both types serialize
//! back to the shortest exact form, so a dump of the effective settings reads
//! like the file it came from.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration or a size could not be parsed.
///
/// The message names what was wrong and what is accepted; it does not repeat
/// the whole input, so it is safe to show next to a redacted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseUnitError {
    message: String,
}

impl ParseUnitError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseUnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseUnitError {}

/// A span of time written for people: `250ms`, `30s`, `5m`, `1h30m`.
///
/// A thin wrapper over [`std::time::Duration`]; convert with
/// [`Duration::as_std`] or `std::time::Duration::from(d)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

const DURATION_UNITS: &str = "ns, us, ms, s, m, h or d";

impl Duration {
    /// The zero duration.
    pub const ZERO: Self = Self(std::time::Duration::ZERO);

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// The standard library's duration.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = ParseUnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ParseUnitError::new(
                "empty duration; write a number and a unit, as in `250ms` or `30s`",
            ));
        }
        if s == "0" {
            return Ok(Self::ZERO);
        }
        let mut total_nanos: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (number, after) = rest.split_at(number_len);
            if number.is_empty() {
                return Err(ParseUnitError::new(format!(
                    "expected a number where `{after}` starts; write durations as in `250ms`, `30s` or `1h30m`"
                )));
            }
            // `5 s` reads as `5s`.
            let after = after.trim_start();
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let per_unit: u128 = match unit {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3_600 * 1_000_000_000,
                "d" => 86_400 * 1_000_000_000,
                "" => {
                    return Err(ParseUnitError::new(format!(
                        "`{number}` has no unit; add one of {DURATION_UNITS}, as in `{number}s`"
                    )));
                }
                other => {
                    return Err(ParseUnitError::new(format!(
                        "unknown unit `{other}`; use {DURATION_UNITS}, as in `250ms` or `30s`"
                    )));
                }
            };
            let nanos = scale(number, per_unit).ok_or_else(|| {
                ParseUnitError::new(format!("`{number}{unit}` is not a valid amount"))
            })?;
            total_nanos = total_nanos
                .checked_add(nanos)
                .ok_or_else(|| ParseUnitError::new("duration is too long"))?;
            rest = after.trim_start();
        }
        let secs = u64::try_from(total_nanos / 1_000_000_000)
            .map_err(|_| ParseUnitError::new("duration is too long"))?;
        // The remainder of a division by 10^9 always fits in a u32.
        let nanos = (total_nanos % 1_000_000_000) as u32;
        Ok(Self(std::time::Duration::new(secs, nanos)))
    }
}

/// `number` (digits with at most one `.`) times `per_unit`, truncated to a
/// whole number; `None` on malformed numbers or overflow.
fn scale(number: &str, per_unit: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(per_unit)?;
    // Digits past the 18th cannot change a result in nanoseconds or bytes.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        let denominator = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        value = value.checked_add(digits.checked_mul(per_unit)? / denominator)?;
    }
    Some(value)
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PARTS: [(&str, u128); 7] = [
            ("d", 86_400 * 1_000_000_000),
            ("h", 3_600 * 1_000_000_000),
            ("m", 60 * 1_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
            ("ns", 1),
        ];
        let mut nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in PARTS {
            let count = nanos / size;
            if count > 0 {
                write!(f, "{count}{unit}")?;
                nanos %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `250ms`, `30s` or `5m`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::ZERO)
                } else {
                    Err(E::custom(format!(
                        "a duration needs a unit; write it as a string such as \"{v}s\" or \"{v}ms\""
                    )))
                }
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom("a duration cannot be negative")),
                }
            }
        }

        // `any` rather than `str`, so that a bare number reaches the visitor
        // and gets the "needs a unit" message instead of a type error.
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// An amount of bytes written for people: `512KB`, `10MiB`, `1GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

const SIZE_UNITS: &str = "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB";

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn b(bytes: u64) -> Self {
        Self(bytes)
    }

    /// A size of `n` kibibytes (1024 bytes each).
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }

    /// A size of `n` mebibytes (1024² bytes each).
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The number of bytes as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = ParseUnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let number_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(number_len);
        if number.is_empty() {
            return Err(ParseUnitError::new(
                "expected a number and a unit, as in `512KB` or `10MiB`",
            ));
        }
        let per_unit: u128 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => {
                return Err(ParseUnitError::new(format!(
                    "unknown unit `{}`; use {SIZE_UNITS}, as in `512KB` or `10MiB`",
                    unit.trim()
                )));
            }
        };
        let bytes = scale(number, per_unit)
            .ok_or_else(|| ParseUnitError::new(format!("`{number}` is not a valid amount")))?;
        u64::try_from(bytes)
            .map(Self)
            .map_err(|_| ParseUnitError::new("size is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 8] = [
            ("TB", 1_000_000_000_000),
            ("TiB", 1 << 40),
            ("GB", 1_000_000_000),
            ("GiB", 1 << 30),
            ("MB", 1_000_000),
            ("MiB", 1 << 20),
            ("KB", 1_000),
            ("KiB", 1 << 10),
        ];
        // The exact form with the fewest digits; SI first on a tie, so that
        // `512KB` stays `512KB` rather than becoming `500KiB`.
        let best = UNITS
            .iter()
            .filter(|(_, size)| self.0 >= *size && self.0.is_multiple_of(*size))
            .map(|(unit, size)| (self.0 / size, *unit))
            .min_by_key(|(count, _)| count.ilog10());
        match best {
            Some((count, unit)) => write!(f, "{count}{unit}"),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `512KB` or `10MiB`, or a number of bytes")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duration(s: &str) -> std::time::Duration {
        s.parse::<Duration>().unwrap().as_std()
    }

    #[test]
    fn every_documented_duration_unit_is_accepted() {
        assert_eq!(duration("250ms"), std::time::Duration::from_millis(250));
        assert_eq!(duration("30s"), std::time::Duration::from_secs(30));
        assert_eq!(duration("5m"), std::time::Duration::from_secs(300));
        assert_eq!(duration("1h"), std::time::Duration::from_secs(3600));
        assert_eq!(duration("2d"), std::time::Duration::from_secs(172_800));
        assert_eq!(duration("15us"), std::time::Duration::from_micros(15));
        assert_eq!(duration("15µs"), std::time::Duration::from_micros(15));
        assert_eq!(duration("7ns"), std::time::Duration::from_nanos(7));
    }

    #[test]
    fn duration_groups_add_up_and_fractions_are_exact() {
        assert_eq!(duration("1h30m"), std::time::Duration::from_secs(5400));
        assert_eq!(duration("1m 30s"), std::time::Duration::from_secs(90));
        assert_eq!(duration("1.5s"), std::time::Duration::from_millis(1500));
        assert_eq!(duration(".25s"), std::time::Duration::from_millis(250));
        assert_eq!(duration("0"), std::time::Duration::ZERO);
    }

    #[test]
    fn durations_without_a_unit_are_refused_with_a_hint() {
        let err = "30".parse::<Duration>().unwrap_err().to_string();
        assert!(err.contains("has no unit"), "{err}");
        assert!(err.contains("`30s`"), "{err}");
    }

    #[test]
    fn garbage_durations_are_refused_with_the_accepted_units() {
        for garbage in ["", "abc", "5 parsecs", "1..5s", "-3s", "s", "10sec"] {
            let err = garbage.parse::<Duration>();
            assert!(err.is_err(), "{garbage:?} was accepted");
        }
        let err = "5 parsecs".parse::<Duration>().unwrap_err().to_string();
        assert!(err.contains("unknown unit `parsecs`"), "{err}");
        assert!(err.contains("ms, s, m, h"), "{err}");
    }

    #[test]
    fn overflowing_durations_are_refused() {
        assert!("99999999999999999999999d".parse::<Duration>().is_err());
    }

    #[test]
    fn durations_print_in_their_shortest_exact_form() {
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
        assert_eq!(Duration::from_millis(250).to_string(), "250ms");
        assert_eq!(Duration::from_millis(1500).to_string(), "1s500ms");
        assert_eq!(Duration::ZERO.to_string(), "0s");
        for s in ["1h30m", "250ms", "2d3h", "7ns"] {
            assert_eq!(s.parse::<Duration>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn every_documented_size_unit_is_accepted() {
        let size = |s: &str| s.parse::<ByteSize>().unwrap().as_u64();
        assert_eq!(size("512"), 512);
        assert_eq!(size("512B"), 512);
        assert_eq!(size("512KB"), 512_000);
        assert_eq!(size("10MB"), 10_000_000);
        assert_eq!(size("2GB"), 2_000_000_000);
        assert_eq!(size("1TB"), 1_000_000_000_000);
        assert_eq!(size("512KiB"), 512 * 1024);
        assert_eq!(size("10MiB"), 10 << 20);
        assert_eq!(size("1GiB"), 1 << 30);
        assert_eq!(size("1TiB"), 1 << 40);
        assert_eq!(size("10mb"), 10_000_000);
        assert_eq!(size("1.5KiB"), 1536);
        assert_eq!(size("10 MB"), 10_000_000);
    }

    #[test]
    fn garbage_sizes_are_refused_with_the_accepted_units() {
        for garbage in ["", "MB", "ten MB", "10 parsecs", "1.2.3MB", "-1KB"] {
            assert!(
                garbage.parse::<ByteSize>().is_err(),
                "{garbage:?} was accepted"
            );
        }
        let err = "10 parsecs".parse::<ByteSize>().unwrap_err().to_string();
        assert!(err.contains("unknown unit `parsecs`"), "{err}");
        assert!(err.contains("KiB"), "{err}");
        assert!("99999999TB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_print_in_their_shortest_exact_form() {
        for s in ["10MB", "10MiB", "512KB", "1GiB", "1001B"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
        assert_eq!(ByteSize::b(0).to_string(), "0B");
    }

    #[test]
    fn units_round_trip_through_serde() {
        let d: Duration = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"5m\"");
        let s: ByteSize = serde_json::from_str("1048576").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"1MiB\"");
        let err = serde_json::from_str::<Duration>("30")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a unit"), "{err}");
    }
}
