//! Parsing plugin output the way ARGO and Icinga read it: status from the
//! exit code, summary = first line before `|`, long output = following lines
//! up to a `|`, perfdata = both perfdata parts joined.

use crate::model::{plain_number, Perf, Range, Uom};

#[derive(Debug, Clone, PartialEq)]
pub struct PluginOutput {
    pub summary: String,
    pub long: Vec<String>,
    pub perfdata: Vec<Perf>,
    /// Perfdata items that did not parse, kept verbatim.
    pub bad_perfdata: Vec<String>,
}

pub fn parse_output(out: &str) -> PluginOutput {
    let mut lines = out.lines();
    let first = lines.next().unwrap_or("");
    let (summary, perf1) = match first.split_once('|') {
        Some((s, p)) => (s.trim(), p),
        None => (first.trim(), ""),
    };
    let mut long = Vec::new();
    let mut perf_text = perf1.to_string();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push(' ');
            perf_text.push_str(line);
        } else if let Some((l, p)) = line.split_once('|') {
            if !l.trim().is_empty() {
                long.push(l.trim_end().to_string());
            }
            perf_text.push(' ');
            perf_text.push_str(p);
            in_perf = true;
        } else {
            long.push(line.to_string());
        }
    }
    let (perfdata, bad_perfdata) = parse_perfdata(&perf_text);
    PluginOutput {
        summary: summary.to_string(),
        long,
        perfdata,
        bad_perfdata,
    }
}

/// Split perfdata text into items, honouring quoted labels with `''` escapes.
pub fn parse_perfdata(text: &str) -> (Vec<Perf>, Vec<String>) {
    let mut items = Vec::new();
    let mut bad = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        let mut label = String::new();
        if chars[i] == '\'' {
            i += 1;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        label.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                label.push(chars[i]);
                i += 1;
            }
        } else {
            while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
                label.push(chars[i]);
                i += 1;
            }
        }
        let rest_start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        let rest: String = chars[rest_start..i].iter().collect();
        match rest.strip_prefix('=').and_then(|r| parse_fields(&label, r)) {
            Some(p) => items.push(p),
            None => bad.push(chars[start..i].iter().collect()),
        }
    }
    (items, bad)
}

fn parse_fields(label: &str, text: &str) -> Option<Perf> {
    let mut fields = text.split(';');
    let value_uom = fields.next()?;
    let split = value_uom
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(value_uom.len());
    let (value, uom) = value_uom.split_at(split);
    let value = if value_uom == "U" {
        None
    } else {
        Some(plain_number(value)?)
    };
    let uom = if value.is_none() {
        Uom::None
    } else {
        Uom::parse(uom)?
    };
    let range = |s: Option<&str>| -> Option<Option<Range>> {
        match s {
            None | Some("") => Some(None),
            Some(t) => t.parse().ok().map(Some),
        }
    };
    let num = |s: Option<&str>| -> Option<Option<f64>> {
        match s {
            None | Some("") => Some(None),
            Some(t) => plain_number(t).map(Some),
        }
    };
    Some(Perf {
        label: label.to_string(),
        value,
        uom,
        warn: range(fields.next())?,
        crit: range(fields.next())?,
        min: num(fields.next())?,
        max: num(fields.next())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_the_guidelines_syntax_are_bad_perfdata() {
        let (ok, bad) = parse_perfdata("a=1;;;01e999 b=1;;;0;inf c=NaN d=1;;;-0.5;2.5 e=1E3");
        let labels: Vec<&str> = ok.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, vec!["d"]);
        assert_eq!(bad, vec!["a=1;;;01e999", "b=1;;;0;inf", "c=NaN", "e=1E3"]);
        let huge = format!("f={}", "9".repeat(400));
        assert_eq!(parse_perfdata(&huge).1, vec![huge.clone()]);
    }

    #[test]
    fn parses_both_perfdata_parts() {
        let out = "VM OK - fine | a=1s;2;3;0;10 'b c'=2%\nline one\nline two | 'it''s'=3c\nd=U\n";
        let p = parse_output(out);
        assert_eq!(p.summary, "VM OK - fine");
        assert_eq!(p.long, vec!["line one", "line two"]);
        let labels: Vec<&str> = p.perfdata.iter().map(|x| x.label.as_str()).collect();
        assert_eq!(labels, vec!["a", "b c", "it's", "d"]);
        assert_eq!(p.perfdata[0].warn.unwrap().to_string(), "2");
        assert_eq!(p.perfdata[0].max, Some(10.0));
        assert_eq!(p.perfdata[3].value, None);
        assert!(p.bad_perfdata.is_empty());
    }

    #[test]
    fn round_trips_our_rendering() {
        let items = vec![
            Perf::new("create time", 12.25, Uom::Seconds)
                .thresholds(
                    Some("~:60".parse().unwrap()),
                    Some("@120:300".parse().unwrap()),
                )
                .min(0.0),
            Perf::new("o'neil", 3.0, Uom::Counter),
            Perf::new("pct", 99.5, Uom::Percent).min(0.0).max(100.0),
        ];
        let text: Vec<String> = items.iter().map(|p| p.to_string()).collect();
        let (back, bad) = parse_perfdata(&text.join(" "));
        assert!(bad.is_empty());
        assert_eq!(back, items);
    }

    #[test]
    fn keeps_garbage_aside() {
        let (ok, bad) = parse_perfdata("a=1 b=xyz c=2furlongs d=3");
        assert_eq!(ok.len(), 2);
        assert_eq!(bad, vec!["b=xyz", "c=2furlongs"]);
    }
}
