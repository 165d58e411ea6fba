//! Monitoring Plugins threshold ranges: `[@]start:end`, inclusive.
//! `10` = alert outside 0..10, `10:` = below 10, `~:10` = above 10,
//! `10:20` = outside 10..20, `@10:20` = inside 10..20.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A bound as the user wrote it, in its shortest exact form: a threshold
/// of 0.0000001 is not shown (and so not judged by engines) as 0.
fn bound_text(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        v.to_string()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// `None` is negative infinity (`~`).
    pub start: Option<f64>,
    /// `None` is positive infinity (empty end).
    pub end: Option<f64>,
    /// `@`: alert when inside the range instead of outside.
    pub inside: bool,
}

impl Range {
    /// True when `value` should raise an alert.
    pub fn alerts(&self, value: f64) -> bool {
        let lo = self.start.is_none_or(|s| value >= s);
        let hi = self.end.is_none_or(|e| value <= e);
        let within = lo && hi;
        if self.inside {
            within
        } else {
            !within
        }
    }
}

/// The status of `value` against warning and critical ranges (the Monitoring
/// Plugins' `get_status`): CRITICAL if `crit` alerts, else WARNING if `warn` does.
pub fn verdict(value: f64, warn: Option<Range>, crit: Option<Range>) -> super::Status {
    use crate::model::Status;
    if crit.is_some_and(|r| r.alerts(value)) {
        Status::Critical
    } else if warn.is_some_and(|r| r.alerts(value)) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// A number as the plugin guidelines write it: plain decimals. Rust's own
/// float syntax would also take `1e999`, `inf` and `NaN`, which no plugin may
/// print and which render back as nothing parseable; so is a finite number
/// too long for an f64.
pub fn plain_number(t: &str) -> Option<f64> {
    let plain = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
    plain
        .then(|| t.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite())
}

impl FromStr for Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty range".into());
        }
        let (inside, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let num = |t: &str| -> Result<f64, String> {
            plain_number(t).ok_or_else(|| format!("invalid number {t:?} in range {s:?}"))
        };
        let range = match body.split_once(':') {
            None => Range {
                start: Some(0.0),
                end: Some(num(body)?),
                inside,
            },
            Some((a, b)) => Range {
                start: if a == "~" {
                    None
                } else if a.is_empty() {
                    Some(0.0)
                } else {
                    Some(num(a)?)
                },
                end: if b.is_empty() { None } else { Some(num(b)?) },
                inside,
            },
        };
        if let (Some(a), Some(b)) = (range.start, range.end) {
            if a > b {
                return Err(format!("range {s:?}: start is greater than end"));
            }
        }
        Ok(range)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        match (self.start, self.end) {
            (Some(s), Some(e)) if s == 0.0 && !self.inside => write!(f, "{}", bound_text(e)),
            (Some(s), Some(e)) => write!(f, "{}:{}", bound_text(s), bound_text(e)),
            (Some(s), None) => write!(f, "{}:", bound_text(s)),
            (None, Some(e)) => write!(f, "~:{}", bound_text(e)),
            (None, None) => f.write_str("~:"),
        }
    }
}

impl Serialize for Range {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Range {
        s.parse().unwrap()
    }

    #[test]
    fn simple_upper_bound() {
        let x = r("10");
        assert!(x.alerts(-1.0));
        assert!(!x.alerts(0.0));
        assert!(!x.alerts(10.0));
        assert!(x.alerts(10.01));
    }

    #[test]
    fn lower_bound_only() {
        let x = r("10:");
        assert!(x.alerts(9.99));
        assert!(!x.alerts(10.0));
        assert!(!x.alerts(1e9));
    }

    #[test]
    fn negative_infinity() {
        let x = r("~:10");
        assert!(!x.alerts(-1e9));
        assert!(!x.alerts(10.0));
        assert!(x.alerts(11.0));
    }

    #[test]
    fn outside_and_inside() {
        let x = r("10:20");
        assert!(x.alerts(9.0));
        assert!(!x.alerts(10.0));
        assert!(!x.alerts(20.0));
        assert!(x.alerts(21.0));
        let y = r("@10:20");
        assert!(!y.alerts(9.0));
        assert!(y.alerts(10.0));
        assert!(y.alerts(15.5));
        assert!(y.alerts(20.0));
        assert!(!y.alerts(20.5));
    }

    #[test]
    fn decimals_and_negatives() {
        let x = r("-5.5:-1.25");
        assert!(x.alerts(-6.0));
        assert!(!x.alerts(-3.0));
        assert!(x.alerts(0.0));
    }

    #[test]
    fn invalid_ranges_are_errors() {
        for bad in ["", "abc", "20:10", "1e3", "@", "10:x", "inf", "NaN"] {
            assert!(bad.parse::<Range>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn verdict_critical_wins() {
        use crate::model::Status;
        let (w, c) = (Some(r("10")), Some(r("20")));
        assert_eq!(verdict(5.0, w, c), Status::Ok);
        assert_eq!(verdict(15.0, w, c), Status::Warning);
        assert_eq!(verdict(25.0, w, c), Status::Critical);
        assert_eq!(verdict(25.0, None, None), Status::Ok);
        assert_eq!(verdict(25.0, None, c), Status::Critical);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10",
            "10:",
            "~:10",
            "10:20",
            "@10:20",
            "@0:5",
            "-1.5:3",
            "0.0000001",
            "0.1234567891:1234567890.5",
        ] {
            assert_eq!(r(s).to_string(), s);
            assert_eq!(r(&r(s).to_string()), r(s));
        }
    }
}
