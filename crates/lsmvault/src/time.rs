//! [`Timestamp`]: the one time type of reports and repository objects.
//!
//! On disk and in JSON a timestamp is RFC 3339 in UTC with nanoseconds
//! (`2026-11-23T14:32:05.123456789Z`), the form every object lsmvault writes
//! has always used; readers also accept fewer fraction digits. How a time is
//! shown to a person (seconds only, a space for the `T`) is the CLI's choice.
//!
//! [`Timestamp::parse`] reads full RFC 3339 (section 5.6): a `T`, `t` or
//! space between date and time, any number of fraction digits (beyond
//! nanoseconds they are truncated), and `Z`, `z` or a numeric offset
//! (`+01:00`, `-05:30`). A time without a zone is refused rather than
//! guessed: reading it as UTC or as local time would silently move a
//! point-in-time restore by hours.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A point in time, UTC, with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }

    /// Parses RFC 3339 (`Z`, `z` or an offset such as `+01:00`; `T`, `t`
    /// or a space; any fraction). A time without a zone is an error.
    pub fn parse(text: &str) -> Result<Timestamp> {
        parse_rfc3339(text.trim())
            .map_err(|problem| Error::InvalidArgument(format!("time {text:?}: {problem}")))
    }

    /// Parses a recorded time, falling back to the epoch for text that is
    /// not a time (a damaged or foreign object must not stop a listing).
    pub fn parse_or_epoch(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap_or(Timestamp(UNIX_EPOCH))
    }

    /// The time as a [`SystemTime`].
    pub fn system_time(self) -> SystemTime {
        self.0
    }

    /// Seconds since the Unix epoch (negative before it), with fraction.
    pub fn unix_seconds(self) -> f64 {
        match self.0.duration_since(UNIX_EPOCH) {
            Ok(after) => after.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        }
    }

    /// The time truncated to whole seconds, RFC 3339 (`2026-11-23T14:32:05Z`).
    pub fn to_seconds_string(self) -> String {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let whole = UNIX_EPOCH + Duration::from_secs(since.as_secs());
        humantime::format_rfc3339_seconds(whole).to_string()
    }
}

/// Digits at `range` of `text` as a number (ASCII digits only, no sign).
fn number(
    text: &str,
    range: std::ops::Range<usize>,
    what: &str,
) -> std::result::Result<u32, String> {
    let part = text
        .get(range)
        .filter(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()))
        .ok_or_else(|| format!("expected the {what} as digits ({EXAMPLE})"))?;
    part.parse()
        .map_err(|_| format!("expected the {what} as digits ({EXAMPLE})"))
}

/// What an RFC 3339 time looks like, for error messages.
const EXAMPLE: &str = "e.g. 2026-11-23T14:32:05Z or 2026-11-23T15:32:05+01:00";

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The RFC 3339 parser behind [`Timestamp::parse`]; the error is the
/// problem without the text (the caller adds it).
fn parse_rfc3339(text: &str) -> std::result::Result<Timestamp, String> {
    if !text.is_ascii() || text.len() < 19 {
        return Err(format!("not an RFC 3339 time ({EXAMPLE})"));
    }
    let bytes = text.as_bytes();
    if bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return Err(format!("not an RFC 3339 time ({EXAMPLE})"));
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(format!("expected T between date and time ({EXAMPLE})"));
    }
    let year = number(text, 0..4, "year")?;
    let month = number(text, 5..7, "month")?;
    let day = number(text, 8..10, "day")?;
    let hour = number(text, 11..13, "hour")?;
    let minute = number(text, 14..16, "minute")?;
    let second = number(text, 17..19, "second")?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!("no such date {year:04}-{month:02}-{day:02}"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "no such time of day {hour:02}:{minute:02}:{second:02}"
        ));
    }
    let mut rest = &text[19..];
    let mut nanoseconds = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected digits after the decimal point ({EXAMPLE})"
            ));
        }
        for (position, digit) in fraction.bytes().take(digits.min(9)).enumerate() {
            nanoseconds += u32::from(digit - b'0') * 10u32.pow(8 - position as u32);
        }
        rest = &fraction[digits..];
    }
    let offset_seconds: i64 = match rest.as_bytes() {
        [] => {
            return Err(
                "has no time zone: add Z for UTC or an offset such as +01:00 (a time without a zone is not guessed)"
                    .to_string(),
            )
        }
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = number(rest, 1..3, "offset hours")?;
            let minutes = number(rest, 4..6, "offset minutes")?;
            if hours > 23 || minutes > 59 {
                return Err(format!("no such offset {rest}"));
            }
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return Err(format!("expected Z or an offset such as +01:00 after the time, found {rest:?}")),
    };
    let seconds = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_seconds;
    let time = if seconds >= 0 {
        UNIX_EPOCH + Duration::new(seconds.unsigned_abs(), nanoseconds)
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
            + Duration::from_nanos(u64::from(nanoseconds))
    };
    Ok(Timestamp(time))
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Timestamp {
        Timestamp(time)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", humantime::format_rfc3339_nanos(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_written_form() {
        let text = "2026-11-23T14:32:05.123456789Z";
        let time = Timestamp::parse(text).unwrap();
        assert_eq!(time.to_string(), text);
        assert_eq!(serde_json::to_string(&time).unwrap(), format!("\"{text}\""));
        let back: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, time);
        assert_eq!(time.to_seconds_string(), "2026-11-23T14:32:05Z");
        assert!(Timestamp::parse("yesterday").is_err());
        assert_eq!(Timestamp::parse_or_epoch("yesterday").unix_seconds(), 0.0);
    }

    fn seconds(text: &str) -> f64 {
        Timestamp::parse(text).unwrap().unix_seconds()
    }

    #[test]
    fn offsets_lowercase_and_fractions_name_the_same_instant() {
        let utc = seconds("2026-11-23T14:32:05Z");
        assert_eq!(utc, 1_795_444_325.0);
        assert_eq!(seconds("2026-11-23T15:32:05+01:00"), utc);
        assert_eq!(seconds("2026-11-23T09:02:05-05:30"), utc);
        assert_eq!(seconds("2026-11-23t14:32:05z"), utc);
        assert_eq!(seconds("2026-11-23 14:32:05Z"), utc);
        assert_eq!(seconds("2026-11-23T14:32:05+00:00"), utc);
        assert_eq!(seconds("2026-11-23T14:32:05.5Z"), utc + 0.5);
        // Digits beyond nanoseconds are truncated, not an error.
        let long = Timestamp::parse("2026-11-23T14:32:05.1234567891Z").unwrap();
        assert_eq!(long.to_string(), "2026-11-23T14:32:05.123456789Z");
        // Across a date line and before the epoch.
        assert_eq!(
            seconds("2026-01-01T00:30:00+01:00"),
            seconds("2025-12-31T23:30:00Z")
        );
        assert_eq!(seconds("1969-12-31T23:59:59Z"), -1.0);
        assert_eq!(
            seconds("2024-02-29T00:00:00Z") + 86_400.0,
            seconds("2024-03-01T00:00:00Z")
        );
    }

    #[test]
    fn a_time_without_a_zone_or_malformed_is_refused_with_the_reason() {
        let message = Timestamp::parse("2026-11-23T14:32:05")
            .unwrap_err()
            .to_string();
        assert!(message.contains("no time zone"), "{message}");
        for bad in [
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T14:32:05+1:00",
            "2026-11-23T14:32:05+01:60",
            "2026-11-23T14:32:05.Z",
            "2026-11-23T14:32:05ZZ",
            "2026-11-23X14:32:05Z",
            "+026-11-23T14:32:05Z",
            "2026-11-23T14:32:05Zé",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_instant_round_trips_through_any_offset(
            seconds in 0i64..253_402_300_799,
            nanoseconds in 0u32..1_000_000_000,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i64),
        ) {
            let time = Timestamp(UNIX_EPOCH + Duration::new(seconds as u64, nanoseconds));
            let written = time.to_string();
            proptest::prop_assert_eq!(Timestamp::parse(&written).unwrap(), time);
            // The same instant written in local time at an offset.
            let local = Timestamp(UNIX_EPOCH + Duration::new(seconds as u64, nanoseconds))
                .system_time()
                .checked_add(Duration::from_secs(offset_minutes.max(0) as u64 * 60))
                .and_then(|time| time.checked_sub(Duration::from_secs((-offset_minutes).max(0) as u64 * 60)));
            if let Some(local) = local.filter(|local| *local >= UNIX_EPOCH) {
                let wall = humantime::format_rfc3339_nanos(local).to_string();
                let sign = if offset_minutes < 0 { '-' } else { '+' };
                let magnitude = offset_minutes.abs();
                let with_offset = format!(
                    "{}{sign}{:02}:{:02}",
                    wall.trim_end_matches('Z'),
                    magnitude / 60,
                    magnitude % 60
                );
                proptest::prop_assert_eq!(Timestamp::parse(&with_offset).unwrap(), time);
                proptest::prop_assert_eq!(Timestamp::parse(&with_offset.to_lowercase()).unwrap(), time);
            }
        }
    }
}
