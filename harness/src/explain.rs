//! `fedprobe explain CHECK-ID`: what a check does, the guideline
//! requirement it evidences, what makes it fail and how sites usually fix
//! it. The words live in `explain.toml`; the report's "what to fix first"
//! reads the same entries.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;

use crate::guideline::{Guideline, Selector};

const TEXT: &str = include_str!("explain.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub does: String,
    pub fails: String,
    pub fix: String,
}

/// Every entry by check id (`RUN` for the harness's own `RUN-*`).
pub fn entries() -> BTreeMap<String, Entry> {
    toml::from_str(TEXT).unwrap_or_default()
}

/// The entry of a check id (`VM-02`, `RUN-VM_LIFECYCLE`).
pub fn entry(check: &str) -> Option<Entry> {
    let key = if check.starts_with("RUN-") {
        "RUN"
    } else {
        check
    };
    entries().remove(key)
}

/// The probes that report `check` (the login's checks are in several).
fn probes_of(check: &str) -> Vec<(&'static probes::checks::Entry, probes::model::CheckId)> {
    probes::checks::ALL
        .iter()
        .filter_map(|e| {
            (e.checks)()
                .into_iter()
                .find(|c| c.id == check)
                .map(|c| (e, c))
        })
        .collect()
}

/// The explanation as text; `Err` names the known ids when `id` is none.
pub fn explain(id: &str, g: &Guideline) -> Result<String, String> {
    // `probe:ID` is accepted too, as the guideline writes checks.
    let (probe_given, check) = match id.split_once(':') {
        Some((p, c)) => (Some(p), c),
        None => (None, id),
    };
    let check = check.to_ascii_uppercase();
    let Some(e) = entry(&check) else {
        let known: Vec<String> = entries().into_keys().collect();
        return Err(format!(
            "no check {id:?}; known: {} (RUN-<LABEL> for the harness's own)",
            known.join(", ")
        ));
    };
    let mut o = String::new();
    let owners: Vec<_> = probes_of(&check)
        .into_iter()
        .filter(|(p, _)| probe_given.is_none_or(|g| g == p.name))
        .collect();
    let probe = if check.starts_with("RUN-") || check == "RUN" {
        crate::grade::HARNESS_PROBE.to_string()
    } else {
        owners
            .first()
            .map(|(p, _)| p.name.to_string())
            .unwrap_or_default()
    };
    match owners.first() {
        Some((p, c)) => {
            let _ = writeln!(o, "{} {} ({}: {})", c.id, c.name, p.name, p.about);
            if owners.len() > 1 {
                let names: Vec<&str> = owners.iter().map(|(p, _)| p.name).collect();
                let _ = writeln!(o, "Reported by: {}", names.join(", "));
            }
            if let Some(opt) = p.optional.iter().find(|x| x.check == c.id) {
                let _ = writeln!(o, "Runs only when configured: {}", opt.how);
            }
        }
        None => {
            let _ = writeln!(o, "{check}: the harness's own check of a probe run");
        }
    }
    let caps: Vec<_> = g
        .capabilities
        .iter()
        .filter(|c| {
            c.checks.iter().any(|s| {
                Selector::parse(s).is_ok_and(|s| {
                    owners.iter().any(|(p, _)| s.matches(p.name, &check))
                        || (s.probe == probe && s.matches(&probe, &check))
                })
            })
        })
        .collect();
    for c in &caps {
        let title = g
            .requirements
            .iter()
            .find(|r| r.id == c.requirement)
            .map(|r| r.title.as_str())
            .unwrap_or("");
        let _ = writeln!(
            o,
            "Evidences requirement {} ({title}) through capability {} ({}) of guideline {}",
            c.requirement,
            c.id,
            c.level.as_str(),
            g.id
        );
    }
    if caps.is_empty() {
        let _ = writeln!(o, "No capability of guideline {} grades it", g.id);
    }
    let _ = writeln!(o, "What it does: {}", e.does);
    let _ = writeln!(o, "What makes it fail: {}", e.fails);
    let _ = writeln!(o, "How sites usually fix it: {}", e.fix);
    for c in caps.iter().filter(|c| !c.fix.is_empty()) {
        let _ = writeln!(o, "The guideline's fix for {}: {}", c.id, c.fix);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_of_every_probe_is_explained_and_nothing_else() {
        let e = entries();
        assert!(!e.is_empty(), "explain.toml parses");
        let mut ids: Vec<String> = probes::checks::ALL
            .iter()
            .flat_map(|p| (p.checks)())
            .map(|c| c.id.to_string())
            .collect();
        ids.push("RUN".into());
        for id in &ids {
            assert!(e.contains_key(id), "{id} has no entry in explain.toml");
        }
        for k in e.keys() {
            assert!(ids.contains(k), "explain.toml names {k}, no probe has it");
        }
    }

    #[test]
    fn an_explanation_names_the_requirement_and_the_fix() {
        let g = Guideline::embedded();
        let t = explain("VM-02", &g).unwrap();
        assert!(t.starts_with("VM-02 find image (check_vm_lifecycle"), "{t}");
        assert!(t.contains("requirement EOSC-IAAS-API"), "{t}");
        assert!(t.contains("How sites usually fix it:"), "{t}");
        let u = explain("check_usage:USAGE-04", &g).unwrap();
        assert!(u.contains("Runs only when configured: --apel-dir"), "{u}");
        assert!(explain("RUN-VM_LIFECYCLE", &g)
            .unwrap()
            .contains("EGI-MONITORING"));
        assert!(explain("NOPE-1", &g).unwrap_err().contains("known: "));
    }
}
