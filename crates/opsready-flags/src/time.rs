//! RFC 3339 timestamps in UTC for the audit log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `time` as RFC 3339 in UTC with milliseconds: enough to order changes
/// made by people, short enough to read.
///
/// Times outside 1970..=9999, which the formatter cannot write (it would
/// panic), are clamped: an audit log must never fail to print.
pub(crate) fn format(time: SystemTime) -> String {
    let latest = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    let time = time.clamp(UNIX_EPOCH, latest);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Serde for a `SystemTime` field as an RFC 3339 string.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(|error| {
            de::Error::custom(format!("`{text}` is not an RFC 3339 time in UTC: {error}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_the_writable_range_are_clamped_instead_of_panicking() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(format(before), "1970-01-01T00:00:00.000Z");
        let after = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(format(after), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn times_are_written_in_utc_with_milliseconds() {
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_007);
        assert_eq!(format(time), "2023-11-14T22:13:20.007Z");
    }
}
