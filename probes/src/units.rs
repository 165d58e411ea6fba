//! Units on the command line: durations and sizes.

use std::time::Duration;

/// The longest duration taken: far past any deadline, and far below where
/// adding it to a clock reading would overflow (a panic, not a result).
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// `90` (seconds), `1.5`, or humantime (`90s`, `5m`, `1h 30m`); positive
/// and at most [`MAX_DURATION`] (a year).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if let Ok(secs) = t.parse::<f64>() {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(format!("{s:?}: must be a positive number of seconds"));
        }
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(format!("{s:?}: more than a year"));
        }
        Duration::from_secs_f64(secs)
    } else {
        match humantime::parse_duration(t) {
            Ok(d) if d.is_zero() => return Err(format!("{s:?}: must be positive")),
            Ok(d) => d,
            Err(e) => return Err(format!("{s:?}: {e}")),
        }
    };
    if d > MAX_DURATION {
        return Err(format!("{s:?}: more than a year"));
    }
    Ok(d)
}

/// As [`parse_duration`], and `0` for "never" (a cache that is not used).
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_duration(s),
    }
}

/// `1048576`, `64K`, `1M`, `1MiB`, `2MB`, `10G` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))?;
    if v == 0 {
        return Err(format!("{s:?}: must be at least 1 byte"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_humantime() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration_or_zero("-1").is_err());
        // Past a year: refused, not a panic when added to a clock reading.
        assert_eq!(parse_duration("366d").unwrap(), MAX_DURATION);
        for huge in [
            "1e19",
            "1e20",
            "9223372036854775807",
            "292277024626y",
            "367d",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("more than a year"), "{huge}: {e}");
        }
    }

    #[test]
    fn sizes_in_binary_multiples() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
