//! The one clock and date module: now, the timestamps OpenStack, GLUE and
//! APEL write, and Nova's query format. All on `jiff`, all UTC.

use jiff::tz::TimeZone;
use jiff::{civil, Timestamp};

/// Now as Unix seconds.
pub fn now_unix() -> f64 {
    secs_f64(Timestamp::now())
}

/// Now as whole Unix seconds.
pub fn now_secs() -> i64 {
    Timestamp::now().as_second()
}

/// Now as Unix nanoseconds (for ids, not for arithmetic).
pub fn now_nanos() -> i128 {
    Timestamp::now().as_nanosecond()
}

/// Unix seconds of a file time; times before 1970 or unrepresentable: 0.
pub fn unix_of(t: std::time::SystemTime) -> i64 {
    Timestamp::try_from(t).map(|t| t.as_second()).unwrap_or(0)
}

fn secs_f64(t: Timestamp) -> f64 {
    t.as_second() as f64 + f64::from(t.subsec_nanosecond()) / 1e9
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM|±HHMM]`; no zone means UTC
/// (Nova writes none, cloud-info-provider `+00:00`, LDAP often `Z`).
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    let b = s.as_bytes();
    // The shape first: jiff also takes shorter forms we never accepted.
    if b.len() < 19
        || !s.is_ascii()
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let rest = &s[19..];
    let zone = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if zone.is_empty() {
        let dt: civil::DateTime = s.parse().ok()?;
        TimeZone::UTC.to_timestamp(dt).ok()
    } else {
        s.parse().ok()
    }
}

/// Unix seconds of an ISO 8601 time as GLUE and APEL write them.
pub fn parse_iso(s: &str) -> Option<i64> {
    parse_timestamp(s).map(|t| t.as_second())
}

/// Unix seconds (with the fraction) of a time as OpenStack writes them
/// (`2026-11-24T08:00:00Z`, `...00.123456`, `...+00:00`).
pub fn parse_utc(s: &str) -> Option<f64> {
    parse_timestamp(s).map(secs_f64)
}

/// `YYYY-MM-DD` as midnight UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let d: civil::Date = s.trim().parse().ok()?;
    if s.trim().len() != 10 {
        return None;
    }
    TimeZone::UTC
        .to_timestamp(d.to_datetime(civil::Time::midnight()))
        .ok()
        .map(|t| t.as_second())
}

/// Nova's query time: `2024-01-01T00:00:00.000000` (UTC, no zone).
pub fn nova_time(epoch: i64) -> String {
    match Timestamp::from_second(epoch) {
        Ok(t) => {
            let d = TimeZone::UTC.to_datetime(t);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            )
        }
        // Beyond year 9999: say what it was rather than invent a date.
        Err(_) => format!("@{epoch}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openstack_timestamps() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Some(951868800.0));
        assert_eq!(parse_utc("2026-11-24T08:15:29.500000"), Some(1795508129.5));
        assert_eq!(parse_utc("2026-11-24T08:15:29+00:00"), Some(1795508129.0));
        assert_eq!(parse_utc("yesterday"), None);
        assert_eq!(parse_utc("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn iso_times_with_offsets() {
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso("2024-02-29T12:00:00+00:00"), Some(1709208000));
        assert_eq!(
            parse_iso("2024-02-29T13:00:00.123456+01:00"),
            Some(1709208000)
        );
        assert_eq!(parse_iso("2024-02-29 12:00:00"), Some(1709208000));
        assert_eq!(
            parse_iso("2024-02-29T12:00:00-0130"),
            Some(1709208000 + 5400)
        );
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00+1",
            "2024-01-01T00:00:00.Z",
            "2024-02-30T00:00:00Z",
            "2024-02-29T12:00",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_are_midnight_utc() {
        assert_eq!(parse_date("2024-02-29"), Some(1709164800));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("2024-2-29"), None);
    }

    #[test]
    fn nova_times_round_trip() {
        assert_eq!(nova_time(0), "1970-01-01T00:00:00.000000");
        for t in [0, 951782400, 1709208000, 4102444799] {
            assert_eq!(parse_iso(&nova_time(t)), Some(t));
        }
        assert_eq!(nova_time(i64::MAX), format!("@{}", i64::MAX));
    }

    #[test]
    fn now_is_after_2026() {
        assert!(now_secs() > 1_767_225_600);
        assert!((now_unix() - now_secs() as f64).abs() < 2.0);
    }
}
