//! Guideline files: requirements -> capabilities -> checks, RefStack style.
//! A versioned TOML data file; the default one is embedded in the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_ID: &str = "eosc-iaas-2026.1";
pub const DEFAULT_TEXT: &str = include_str!("../guidelines/eosc-iaas-2026.1.toml");
/// The guideline file format this binary reads.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Guideline {
    pub schema: u32,
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub source: String,
    /// Probe name -> how to run it. `fedprobe` is the harness's own checks.
    pub probes: BTreeMap<String, ProbeEntry>,
    #[serde(rename = "requirement", default)]
    pub requirements: Vec<Requirement>,
    #[serde(rename = "capability", default)]
    pub capabilities: Vec<Capability>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeEntry {
    /// Default deadline (`-t`) of the probe, e.g. "5m".
    #[serde(default)]
    pub timeout: Option<String>,
    /// Profile endpoints the probe needs (e.g. `orchestrator`): a site whose
    /// profile lacks one does not run it.
    #[serde(default)]
    pub needs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Required,
    Advisory,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Required => "required",
            Level::Advisory => "advisory",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    pub id: String,
    pub requirement: String,
    pub level: Level,
    pub title: String,
    pub checks: Vec<String>,
    #[serde(default)]
    pub flagged: Vec<Flag>,
    /// What a site should do when this capability fails.
    #[serde(default)]
    pub fix: String,
    /// What a site should do when one particular check fails: the report
    /// shows it beside that check (the capability's `fix` is general).
    #[serde(default)]
    pub hints: Vec<Hint>,
    /// Clouds where the capability does not apply (the federation's own
    /// services do not serve that API): graded `not-applicable`, the
    /// reason shown, never counted as passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<PerCloud>,
    /// Clouds where the capability applies but no probe can check it yet:
    /// what it did not check says why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<PerCloud>,
}

/// A note about some cloud APIs, with its reason.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PerCloud {
    pub clouds: Vec<probes::auth::cloud::CloudKind>,
    pub reason: String,
}

impl Capability {
    /// Why this capability does not apply to a site on `cloud`, if it does not.
    pub fn not_applicable_on(&self, cloud: probes::auth::cloud::CloudKind) -> Option<&str> {
        find_cloud(&self.not_applicable, cloud)
    }

    /// Why this capability cannot be checked on `cloud`, if it cannot.
    pub fn not_checked_on(&self, cloud: probes::auth::cloud::CloudKind) -> Option<&str> {
        find_cloud(&self.not_checked, cloud)
    }
}

fn find_cloud(list: &[PerCloud], cloud: probes::auth::cloud::CloudKind) -> Option<&str> {
    list.iter()
        .find(|n| n.clouds.contains(&cloud))
        .map(|n| n.reason.as_str())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    /// `probe:ID`, ID exact or a prefix ending in `*`.
    pub check: String,
    pub fix: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    pub check: String,
    pub reason: String,
}

/// `probe:ID`, ID exact or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub probe: String,
    pub pattern: String,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, String> {
        let (probe, pattern) = s
            .split_once(':')
            .ok_or_else(|| format!("check {s:?}: expected PROBE:ID (ID may end in *)"))?;
        let bad = |p: &str| p.is_empty() || p.chars().any(char::is_whitespace);
        if bad(probe) || bad(pattern) {
            return Err(format!("check {s:?}: empty or blank probe or id"));
        }
        if pattern[..pattern.len() - 1].contains('*') {
            return Err(format!("check {s:?}: `*` only at the end of the id"));
        }
        Ok(Selector {
            probe: probe.to_string(),
            pattern: pattern.to_string(),
        })
    }

    pub fn matches(&self, probe: &str, check: &str) -> bool {
        if probe != self.probe {
            return false;
        }
        match self.pattern.strip_suffix('*') {
            Some(prefix) => check.starts_with(prefix),
            None => check == self.pattern,
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.probe, self.pattern)
    }
}

/// Probe names a guideline may use: the probe table's, and the harness's own.
pub fn known_probes() -> Vec<&'static str> {
    probes::checks::ALL
        .iter()
        .map(|e| e.name)
        .chain([crate::grade::HARNESS_PROBE])
        .collect()
}

impl Guideline {
    /// Parse and validate; problems are returned all at once.
    pub fn parse(text: &str) -> Result<Guideline, Vec<String>> {
        let g: Guideline = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let problems = g.problems(&[]);
        if problems.is_empty() {
            Ok(g)
        } else {
            Err(problems)
        }
    }

    pub fn embedded() -> Guideline {
        // The embedded file is checked by a unit test; fall back to an empty
        // guideline rather than panic should that ever be bypassed.
        Guideline::parse(DEFAULT_TEXT).unwrap_or_else(|_| Guideline {
            schema: SCHEMA,
            id: DEFAULT_ID.into(),
            title: "invalid embedded guideline".into(),
            status: String::new(),
            source: String::new(),
            probes: BTreeMap::new(),
            requirements: vec![],
            capabilities: vec![],
        })
    }

    /// Load by embedded id or file path.
    pub fn load(name_or_path: &str) -> Result<Guideline, String> {
        if name_or_path == DEFAULT_ID {
            return Ok(Guideline::embedded());
        }
        let text = probes::files::read_to_string(
            std::path::Path::new(name_or_path),
            probes::files::DOCUMENT,
        )
        .map_err(|e| format!("guideline {name_or_path}: {e}"))?;
        Guideline::parse(&text).map_err(|p| format!("guideline {name_or_path}: {}", p.join("; ")))
    }

    /// Everything wrong with the file. `known_probes` (if not empty) are the
    /// probe names this binary can run.
    pub fn problems(&self, known_probes: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        if self.schema != SCHEMA {
            out.push(format!(
                "schema {} not supported (this fedprobe reads {SCHEMA})",
                self.schema
            ));
        }
        if self.id.trim().is_empty() {
            out.push("empty guideline id".into());
        }
        for (name, p) in &self.probes {
            if !known_probes.is_empty() && !known_probes.contains(&name.as_str()) {
                out.push(format!("probe {name:?} is not one this fedprobe knows"));
            }
            if let Some(t) = &p.timeout {
                if let Err(e) = probes::units::parse_duration(t) {
                    out.push(format!("probe {name}: timeout {e}"));
                }
            }
        }
        let mut req_ids = BTreeSet::new();
        for r in &self.requirements {
            if !req_ids.insert(r.id.as_str()) {
                out.push(format!("duplicate requirement id {:?}", r.id));
            }
        }
        let mut cap_ids = BTreeSet::new();
        let mut used_reqs = BTreeSet::new();
        let mut used_probes = BTreeSet::new();
        for c in &self.capabilities {
            if !cap_ids.insert(c.id.as_str()) {
                out.push(format!("duplicate capability id {:?}", c.id));
            }
            if !req_ids.contains(c.requirement.as_str()) {
                out.push(format!(
                    "capability {}: unknown requirement {:?}",
                    c.id, c.requirement
                ));
            }
            used_reqs.insert(c.requirement.as_str());
            if c.checks.is_empty() {
                out.push(format!("capability {} has no checks", c.id));
            }
            let mut seen = BTreeSet::new();
            let mut sels = Vec::new();
            for s in &c.checks {
                if !seen.insert(s.as_str()) {
                    out.push(format!("capability {}: duplicate check {s:?}", c.id));
                }
                match Selector::parse(s) {
                    Ok(sel) => {
                        if !self.probes.contains_key(&sel.probe) {
                            out.push(format!(
                                "capability {}: check {s:?} names probe {:?} missing from [probes]",
                                c.id, sel.probe
                            ));
                        }
                        used_probes.insert(sel.probe.clone());
                        sels.push(sel);
                    }
                    Err(e) => out.push(format!("capability {}: {e}", c.id)),
                }
            }
            for f in &c.flagged {
                if f.reason.trim().is_empty() {
                    out.push(format!(
                        "capability {}: flagged {:?} without a reason",
                        c.id, f.check
                    ));
                }
                match Selector::parse(&f.check) {
                    Ok(fs) => {
                        // A flag must cover something the capability selects.
                        let covered = sels.iter().any(|s| {
                            s.probe == fs.probe
                                && (fs.matches(&s.probe, s.pattern.trim_end_matches('*'))
                                    || s.matches(&fs.probe, fs.pattern.trim_end_matches('*')))
                        });
                        if !covered {
                            out.push(format!(
                                "capability {}: flagged {:?} is not among its checks",
                                c.id, f.check
                            ));
                        }
                    }
                    Err(e) => out.push(format!("capability {}: flagged {e}", c.id)),
                }
            }
            for hint in &c.hints {
                match Selector::parse(&hint.check) {
                    Ok(hs) if hint.fix.trim().is_empty() => {
                        out.push(format!("capability {}: hint for {hs} without a fix", c.id))
                    }
                    Ok(hs) => {
                        let covered = sels.iter().any(|s| {
                            s.probe == hs.probe
                                && (hs.matches(&s.probe, s.pattern.trim_end_matches('*'))
                                    || s.matches(&hs.probe, hs.pattern.trim_end_matches('*')))
                        });
                        if !covered {
                            out.push(format!(
                                "capability {}: hint for {:?} is not among its checks",
                                c.id, hint.check
                            ));
                        }
                    }
                    Err(e) => out.push(format!("capability {}: hint {e}", c.id)),
                }
            }
        }
        for c in &self.capabilities {
            for n in c.not_applicable.iter().chain(&c.not_checked) {
                if n.clouds.is_empty() || n.reason.trim().is_empty() {
                    out.push(format!(
                        "capability {}: a not_applicable/not_checked entry needs clouds and a reason",
                        c.id
                    ));
                }
            }
            let both = probes::auth::cloud::CloudKind::ALL
                .into_iter()
                .find(|k| c.not_applicable_on(*k).is_some() && c.not_checked_on(*k).is_some());
            if let Some(k) = both {
                out.push(format!(
                    "capability {}: {k} is both not applicable and not checked",
                    c.id
                ));
            }
        }
        for r in &self.requirements {
            if !used_reqs.contains(r.id.as_str()) {
                out.push(format!(
                    "requirement {} is evidenced by no capability",
                    r.id
                ));
            }
        }
        for name in self.probes.keys() {
            if !used_probes.contains(name) {
                out.push(format!(
                    "probe {name} is run but its checks are referenced by no capability"
                ));
            }
        }
        if !self.capabilities.iter().any(|c| c.level == Level::Required) {
            out.push("no required capability".into());
        }
        out
    }

    pub fn timeout_of(&self, probe: &str) -> Option<Duration> {
        self.probes
            .get(probe)
            .and_then(|p| p.timeout.as_deref())
            .and_then(|t| probes::units::parse_duration(t).ok())
    }

    pub fn requirement(&self, id: &str) -> Option<&Requirement> {
        self.requirements.iter().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_guideline_is_valid() {
        let g = Guideline::parse(DEFAULT_TEXT).unwrap();
        assert_eq!(g.id, DEFAULT_ID);
        assert!(g.problems(&known_probes()).is_empty());
    }

    #[test]
    fn selectors() {
        let s = Selector::parse("check_vm_lifecycle:VM-*").unwrap();
        assert!(s.matches("check_vm_lifecycle", "VM-03"));
        assert!(!s.matches("check_glue", "VM-03"));
        assert!(!s.matches("check_vm_lifecycle", "IMG-01"));
        let e = Selector::parse("check_token_auth:AUTH-04").unwrap();
        assert!(e.matches("check_token_auth", "AUTH-04"));
        assert!(!e.matches("check_token_auth", "AUTH-041"));
        assert!(Selector::parse("AUTH-04").is_err());
        assert!(Selector::parse("p:A*B*").is_err());
    }
}
