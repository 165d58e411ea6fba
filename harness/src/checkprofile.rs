//! `fedprobe check-profile FILE`: everything wrong with a site profile,
//! found without contacting the site, each problem at its line and column
//! (toml's spans).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::guideline::Guideline;
use crate::profile::Profile;

/// The parts of a profile whose keys name probes and flags, with spans.
#[derive(Deserialize, Default)]
struct Spans {
    #[serde(default)]
    probe: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, toml::Value>>,
    #[serde(default)]
    skip: Vec<Spanned<String>>,
    #[serde(default)]
    defaults: BTreeMap<Spanned<String>, toml::Value>,
    #[serde(default)]
    credentials: BTreeMap<Spanned<String>, toml::Value>,
    #[serde(default)]
    guideline: Option<Spanned<String>>,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// 1-based line and column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

fn at<T>(text: &str, s: &Spanned<T>, message: String) -> Problem {
    let (line, column) = position(text, s.span().start);
    Problem {
        line,
        column,
        message,
    }
}

/// Every problem of the profile `text` (read from `path`); none means it plans.
pub fn problems(text: &str, path: &Path) -> Vec<Problem> {
    // Syntax and unknown keys: toml's own error carries the span.
    if let Err(e) = toml::from_str::<Profile>(text) {
        let (line, column) = e.span().map(|s| position(text, s.start)).unwrap_or((1, 1));
        return vec![Problem {
            line,
            column,
            message: e.message().to_string(),
        }];
    }
    let spans: Spans = toml::from_str(text).unwrap_or_default();
    let mut out = Vec::new();
    let flags_of = |name: &str| probes::checks::find(name).map(probes::checks::long_flags);
    for (probe, table) in &spans.probe {
        let Some(flags) = flags_of(probe.get_ref()) else {
            out.push(at(text, probe, unknown_probe(probe.get_ref())));
            continue;
        };
        for flag in table.keys() {
            if !flags.contains(flag.get_ref()) {
                out.push(at(
                    text,
                    flag,
                    format!(
                        "{} has no flag --{}{}",
                        probe.get_ref(),
                        flag.get_ref(),
                        near(flag.get_ref(), flags)
                    ),
                ));
            }
        }
    }
    for s in &spans.skip {
        if flags_of(s.get_ref()).is_none() {
            out.push(at(text, s, unknown_probe(s.get_ref())));
        }
    }
    let all: Vec<String> = probes::checks::ALL
        .iter()
        .flat_map(|e| probes::checks::long_flags(e).iter().cloned())
        .collect();
    for f in spans.defaults.keys() {
        if !all.contains(f.get_ref()) {
            out.push(at(
                text,
                f,
                format!(
                    "no probe takes --{}{}",
                    f.get_ref(),
                    near(f.get_ref(), &all)
                ),
            ));
        }
    }
    for c in spans.credentials.keys() {
        let flag = c.get_ref().replace('_', "-");
        if !all.contains(&flag) {
            out.push(at(
                text,
                c,
                format!("credential {}: no probe takes --{flag}", c.get_ref()),
            ));
        }
    }
    if !out.is_empty() {
        return out;
    }
    // The profile's own rules (credential sources and so on), then a plan
    // of every probe, parsed as it would run: without reading any secret.
    let profile = match Profile::parse(text, &path.display().to_string()) {
        Ok(p) => p,
        Err(e) => {
            return vec![Problem {
                line: 1,
                column: 1,
                message: e,
            }]
        }
    };
    let g = match Guideline::load(&crate::app::relative_to(path, &profile.guideline)) {
        Ok(g) => g,
        Err(e) => {
            let p = spans.guideline.as_ref().map_or(
                Problem {
                    line: 1,
                    column: 1,
                    message: e.clone(),
                },
                |s| at(text, s, e.clone()),
            );
            return vec![p];
        }
    };
    let creds: BTreeMap<String, PathBuf> = profile
        .credentials
        .keys()
        .map(|k| (k.clone(), PathBuf::from(format!("<credential {k}>"))))
        .collect();
    for name in g.probes.keys() {
        if name == crate::grade::HARNESS_PROBE || profile.skip.contains(name) {
            continue;
        }
        let Some(entry) = probes::checks::find(name) else {
            continue;
        };
        // A probe needing an endpoint the profile does not name is not
        // planned (the harness skips it the same way).
        let needs = g
            .probes
            .get(name)
            .map(|e| e.needs.as_slice())
            .unwrap_or(&[]);
        if needs.iter().any(|n| !profile.endpoints.contains_key(n)) {
            continue;
        }
        let timeout = g.probes.get(name).and_then(|e| e.timeout.clone());
        let argv = profile.argv(
            name,
            probes::checks::long_flags(entry),
            &creds,
            timeout.as_deref(),
        );
        let mut argv = match argv {
            Ok(a) => a,
            Err(e) => {
                out.push(table_problem(text, &spans, name, e));
                continue;
            }
        };
        crate::defaults::apply(&mut argv);
        // Not configured at all: not planned, graded "not configured".
        if let Some(f) = entry.requires {
            if !argv.iter().any(|a| a == &format!("--{f}")) {
                continue;
            }
        }
        if let Err(e) = (entry.parse)(&argv) {
            out.push(table_problem(
                text,
                &spans,
                name,
                format!("{name} would not start: {e}"),
            ));
        }
    }
    out
}

/// A problem of one probe's plan: at its `[probe.NAME]` table when there is one.
fn table_problem(text: &str, spans: &Spans, name: &str, message: String) -> Problem {
    match spans.probe.keys().find(|k| k.get_ref() == name) {
        Some(k) => at(text, k, message),
        None => Problem {
            line: 1,
            column: 1,
            message: format!("{message} (add a [probe.{name}] table, or skip = [\"{name}\"])"),
        },
    }
}

fn unknown_probe(name: &str) -> String {
    let known: Vec<&str> = probes::checks::ALL.iter().map(|e| e.name).collect();
    format!("unknown probe {name:?} (known: {})", known.join(", "))
}

/// " (did you mean --x?)" for a flag sharing a long prefix with `flag`.
fn near(flag: &str, flags: &[String]) -> String {
    let common = |a: &str, b: &str| a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    flags
        .iter()
        .map(|f| (common(flag, f), f))
        .filter(|(n, _)| *n >= 3)
        .max_by_key(|(n, _)| *n)
        .map(|(_, f)| format!(" (did you mean --{f}?)"))
        .unwrap_or_default()
}

/// The command: problems as `FILE:LINE:COL: message`; exit 0 or 2.
pub fn run(path: &Path) -> Result<u8, String> {
    let text = probes::files::read_to_string(path, probes::files::DOCUMENT)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let found = problems(&text, path);
    if found.is_empty() {
        let p = Profile::parse(&text, &path.display().to_string())?;
        println!(
            "OK {}: site {}, guideline {}, VO(s) {}",
            path.display(),
            p.site,
            p.guideline,
            if p.vos.is_empty() {
                "none (default project rule)".into()
            } else {
                p.vos.join(", ")
            }
        );
        return Ok(0);
    }
    for p in &found {
        println!("{}:{}:{}: {}", path.display(), p.line, p.column, p.message);
    }
    Ok(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        assert_eq!(position("ab\ncd", 0), (1, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
    }
}
