//! Performance data: `'label'=value[UOM];[warn];[crit];[min];[max]`.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::range::Range;
use crate::text::fmt_num;

/// Units the Monitoring Plugins guidelines allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Uom {
    #[default]
    #[serde(rename = "")]
    None,
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "us")]
    Micros,
    #[serde(rename = "%")]
    Percent,
    #[serde(rename = "B")]
    Bytes,
    #[serde(rename = "KB")]
    KiloBytes,
    #[serde(rename = "MB")]
    MegaBytes,
    #[serde(rename = "GB")]
    GigaBytes,
    #[serde(rename = "TB")]
    TeraBytes,
    #[serde(rename = "c")]
    Counter,
}

impl Uom {
    pub fn as_str(self) -> &'static str {
        match self {
            Uom::None => "",
            Uom::Seconds => "s",
            Uom::Millis => "ms",
            Uom::Micros => "us",
            Uom::Percent => "%",
            Uom::Bytes => "B",
            Uom::KiloBytes => "KB",
            Uom::MegaBytes => "MB",
            Uom::GigaBytes => "GB",
            Uom::TeraBytes => "TB",
            Uom::Counter => "c",
        }
    }

    pub fn parse(s: &str) -> Option<Uom> {
        Some(match s {
            "" => Uom::None,
            "s" => Uom::Seconds,
            "ms" => Uom::Millis,
            "us" => Uom::Micros,
            "%" => Uom::Percent,
            "B" => Uom::Bytes,
            "KB" => Uom::KiloBytes,
            "MB" => Uom::MegaBytes,
            "GB" => Uom::GigaBytes,
            "TB" => Uom::TeraBytes,
            "c" => Uom::Counter,
            _ => return None,
        })
    }
}

/// One perfdata item. `value: None` renders as `U` (unknown).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perf {
    pub label: String,
    pub value: Option<f64>,
    #[serde(default)]
    pub uom: Uom,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warn: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crit: Option<Range>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<f64>,
}

impl Perf {
    pub fn new(label: impl Into<String>, value: f64, uom: Uom) -> Perf {
        Perf {
            label: label.into(),
            value: Some(value),
            uom,
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    /// A duration in seconds, millisecond precision.
    pub fn seconds(label: impl Into<String>, d: std::time::Duration) -> Perf {
        Perf::new(
            label,
            (d.as_secs_f64() * 1000.0).round() / 1000.0,
            Uom::Seconds,
        )
        .min(0.0)
    }

    /// A throughput in MB/s (10^6 bytes), two decimals, no unit: Monitoring
    /// Plugins perfdata has none for rates.
    pub fn mb_per_s(label: impl Into<String>, bytes: u64, d: std::time::Duration) -> Perf {
        let secs = d.as_secs_f64().max(1e-6);
        let v = (bytes as f64 / 1e6 / secs * 100.0).round() / 100.0;
        Perf::new(label, v, Uom::None).min(0.0)
    }

    pub fn count(label: impl Into<String>, n: u64) -> Perf {
        Perf::new(label, n as f64, Uom::None).min(0.0)
    }

    pub fn thresholds(mut self, warn: Option<Range>, crit: Option<Range>) -> Perf {
        self.warn = warn;
        self.crit = crit;
        self
    }

    pub fn min(mut self, min: f64) -> Perf {
        self.min = Some(min);
        self
    }

    pub fn max(mut self, max: f64) -> Perf {
        self.max = Some(max);
        self
    }
}

/// Quote a label when needed; `'` inside becomes `''`; `=` is not allowed.
pub fn fmt_label(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| if c == '=' || c.is_control() { '_' } else { c })
        .collect();
    let plain = !clean.is_empty()
        && clean
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c));
    if plain {
        clean
    } else {
        format!("'{}'", clean.replace('\'', "''"))
    }
}

impl fmt::Display for Perf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.map(fmt_num).unwrap_or_else(|| "U".into());
        let uom = if self.value.is_some() {
            self.uom.as_str()
        } else {
            ""
        };
        let mut fields = vec![
            format!("{}={}{}", fmt_label(&self.label), value, uom),
            self.warn.map(|r| r.to_string()).unwrap_or_default(),
            self.crit.map(|r| r.to_string()).unwrap_or_default(),
            self.min.map(fmt_num).unwrap_or_default(),
            self.max.map(fmt_num).unwrap_or_default(),
        ];
        while fields.len() > 1 && fields.last().is_some_and(|s| s.is_empty()) {
            fields.pop();
        }
        f.write_str(&fields.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_never_use_exponents() {
        assert_eq!(fmt_num(1e20), "100000000000000000000");
        assert_eq!(fmt_num(1e-7), "0");
        assert_eq!(fmt_num(0.000123), "0.000123");
        assert_eq!(fmt_num(12.5), "12.5");
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(-0.0000001), "0");
        assert_eq!(fmt_num(f64::NAN), "U");
        for v in [1e25, 1.5e-5, 123456789.123, -4.2e10] {
            let s = fmt_num(v);
            assert!(!s.contains('e') && !s.contains('E'), "{v} -> {s}");
        }
    }

    #[test]
    fn labels_are_quoted_when_needed() {
        assert_eq!(fmt_label("time"), "time");
        assert_eq!(fmt_label("create time"), "'create time'");
        assert_eq!(fmt_label("it's"), "'it''s'");
        assert_eq!(fmt_label("a=b"), "a_b");
        assert_eq!(fmt_label("site one's vm"), "'site one''s vm'");
    }

    #[test]
    fn perf_rendering() {
        let p = Perf::new("create", 12.3456, Uom::Seconds)
            .thresholds(
                Some("60".parse().unwrap()),
                Some("@120:300".parse().unwrap()),
            )
            .min(0.0);
        assert_eq!(p.to_string(), "create=12.3456s;60;@120:300;0");
        assert_eq!(Perf::count("records", 5).to_string(), "records=5;;;0");
        let p = Perf::new("used pct", 50.0, Uom::Percent)
            .min(0.0)
            .max(100.0);
        assert_eq!(p.to_string(), "'used pct'=50%;;;0;100");
        let mut u = Perf::new("age", 0.0, Uom::Seconds);
        u.value = None;
        assert_eq!(u.to_string(), "age=U");
        assert_eq!(Perf::new("x", 1.0, Uom::Counter).to_string(), "x=1c");
        assert_eq!(
            Perf::seconds("t", std::time::Duration::from_micros(1500)).to_string(),
            "t=0.002s;;;0"
        );
    }
}
