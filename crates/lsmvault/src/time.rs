//! [`Timestamp`]: the one time type of reports and repository objects.
//!
//! On disk and in JSON a timestamp is RFC 3339 in UTC with nanoseconds
//! (`2026-11-23T14:32:05.123456789Z`), the form every object lsmvault writes
//! has always used; readers also accept fewer fraction digits. How a time is
//! shown to a person (seconds only, a space for the `T`) is the CLI's choice.

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

    /// Parses RFC 3339 as written in repository objects (`Z` or an offset).
    pub fn parse(text: &str) -> Result<Timestamp> {
        humantime::parse_rfc3339(text)
            .map(Timestamp)
            .map_err(|error| Error::InvalidArgument(format!("time {text:?}: {error}")))
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
}
