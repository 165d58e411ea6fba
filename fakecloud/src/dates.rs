//! Times as the emulated services write and read them, on `jiff`.

use std::time::SystemTime;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Unit};

/// Unix seconds of a wall-clock time (truncated; 0 before the epoch).
pub fn unix(t: SystemTime) -> i64 {
    Timestamp::try_from(t).map_or(0, |ts| ts.as_second().max(0))
}

/// Unix seconds rounded to the nearest second, as MariaDB stores a DATETIME.
pub fn unix_rounded(t: SystemTime) -> i64 {
    Timestamp::try_from(t)
        .and_then(|ts| ts.round(Unit::Second))
        .map_or(0, |ts| ts.as_second().max(0))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (Keystone, Glance, GLUE).
pub fn iso_secs(secs: i64) -> String {
    at(secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a wall-clock time.
pub fn iso(t: SystemTime) -> String {
    iso_secs(unix(t))
}

/// `YYYY-MM-DDTHH:MM:SS.000000`, no offset (Nova's usage and launch times).
pub fn nova_time(secs: i64) -> String {
    at(secs).strftime("%Y-%m-%dT%H:%M:%S.000000").to_string()
}

/// `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z`, an offset or none (then UTC),
/// into Unix seconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_second());
    }
    let dt: DateTime = s.parse().ok()?;
    TimeZone::UTC.to_timestamp(dt).ok().map(|ts| ts.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_secs(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_iso("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_iso("2023-11-14T22:13:20.123456"), Some(1_700_000_000));
        assert_eq!(parse_iso("2024-02-29T00:00:00+00:00"), Some(1_709_164_800));
        assert_eq!(parse_iso("2024-02-29T01:00:00+01:00"), Some(1_709_164_800));
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn nova_times_and_rounding() {
        assert_eq!(nova_time(1_700_000_000), "2023-11-14T22:13:20.000000");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_600);
        assert_eq!(unix(t), 1_700_000_000);
        assert_eq!(unix_rounded(t), 1_700_000_001);
        assert_eq!(iso(t), "2023-11-14T22:13:20Z");
    }
}
