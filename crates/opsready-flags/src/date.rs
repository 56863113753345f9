//! A calendar date, `YYYY-MM-DD`, for a flag's `expires`.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar date (proleptic Gregorian, UTC), written `YYYY-MM-DD`.
///
/// ```
/// use opsready_flags::Date;
///
/// let date: Date = "2030-02-28".parse().unwrap();
/// assert_eq!(date.to_string(), "2030-02-28");
/// assert!("2030-02-30".parse::<Date>().is_err());
/// assert!(date < "2030-03-01".parse().unwrap());
/// ```
///
/// In TOML both `expires = "2030-02-28"` and the bare date
/// `expires = 2030-02-28` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// The date `year-month-day`, or `None` when there is no such day.
    #[must_use]
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// Today's date in UTC.
    #[must_use]
    pub fn today() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// The UTC date of `time` (times before 1970 give 1970-01-01).
    #[must_use]
    pub fn from_system_time(time: SystemTime) -> Self {
        let days = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() / 86_400);
        civil_from_days(days)
    }

    /// The year.
    #[must_use]
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, `1..=12`.
    #[must_use]
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, `1..=31`.
    #[must_use]
    pub fn day(self) -> u8 {
        self.day
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to a date, by counting whole years then months:
/// plenty fast for a date computed once per call, and obviously correct.
fn civil_from_days(mut days: u64) -> Date {
    let mut year: u16 = 1970;
    loop {
        let in_year = if is_leap(year) { 366 } else { 365 };
        if days < in_year || year == u16::MAX {
            break;
        }
        days -= in_year;
        year += 1;
    }
    let mut month = 1;
    while month < 12 && days >= u64::from(days_in_month(year, month)) {
        days -= u64::from(days_in_month(year, month));
        month += 1;
    }
    // Fewer days remain than the month has, so this fits in a u8.
    let day = u8::try_from(days + 1).unwrap_or(1);
    Date { year, month, day }
}

/// A string that is not a `YYYY-MM-DD` date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDateError {
    input: String,
}

impl fmt::Display for ParseDateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a date in the form YYYY-MM-DD", self.input)
    }
}

impl std::error::Error for ParseDateError {}

impl FromStr for Date {
    type Err = ParseDateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ParseDateError {
            input: s.to_owned(),
        };
        let bytes = s.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(error());
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u16> {
            let part = &s[range];
            if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10))
        else {
            return Err(error());
        };
        let month = u8::try_from(month).map_err(|_| error())?;
        let day = u8::try_from(day).map_err(|_| error())?;
        Self::new(year, month, day).ok_or_else(error)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` so that a TOML bare date, which arrives as a
        // one-entry map holding its text, reads as well as a string.
        deserializer.deserialize_any(DateVisitor)
    }
}

struct DateVisitor;

impl<'de> Visitor<'de> for DateVisitor {
    type Value = Date;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a date in the form YYYY-MM-DD")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Date, A::Error> {
        let Some((_, text)) = map.next_entry::<String, String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_valid_date_round_trips_through_text() {
        let date: Date = "2024-02-29".parse().unwrap();
        assert_eq!((date.year(), date.month(), date.day()), (2024, 2, 29));
        assert_eq!(date.to_string(), "2024-02-29");
    }

    #[test]
    fn days_that_do_not_exist_are_rejected() {
        for input in [
            "2023-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-00-10",
            "2024-01-00",
        ] {
            assert!(input.parse::<Date>().is_err(), "{input}");
        }
    }

    #[test]
    fn other_shapes_are_rejected() {
        for input in [
            "",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-01T00:00:00Z",
            "+024-01-01",
        ] {
            assert!(input.parse::<Date>().is_err(), "{input}");
        }
    }

    #[test]
    fn a_system_time_becomes_its_utc_date() {
        let epoch = Date::from_system_time(UNIX_EPOCH);
        assert_eq!(epoch.to_string(), "1970-01-01");
        // 2024-02-29T12:00:00Z
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(Date::from_system_time(leap).to_string(), "2024-02-29");
        // 2000-12-31T23:59:59Z
        let end = UNIX_EPOCH + Duration::from_secs(978_307_199);
        assert_eq!(Date::from_system_time(end).to_string(), "2000-12-31");
    }

    #[test]
    fn a_toml_bare_date_reads_like_a_string() {
        #[derive(Deserialize)]
        struct Doc {
            bare: Date,
            quoted: Date,
        }
        let doc: Doc = toml::from_str("bare = 2030-01-15\nquoted = \"2030-01-16\"").unwrap();
        assert_eq!(doc.bare.to_string(), "2030-01-15");
        assert_eq!(doc.quoted.to_string(), "2030-01-16");
    }
}
