//! Grading like RefStack: a capability passes when all its unflagged checks
//! pass; a site passes when every required capability passes. Unlike
//! RefStack every outcome is kept (failures, skips, warnings), with evidence.

use std::collections::BTreeSet;
use std::time::Duration;

use probes::model::{secs, ProbeResult, Status};
use serde::{Deserialize, Serialize};

use crate::guideline::{Guideline, Level, Selector};
use crate::model::SiteRun;

/// The harness's own pseudo-probe (checks `RUN-<probe label>`).
pub const HARNESS_PROBE: &str = "fedprobe";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
    /// Not evaluated: the probe stopped before, could not run, or said UNKNOWN.
    Skip,
    /// Not run because the probe was not configured for it; the message
    /// names the flag or profile key that enables it.
    #[serde(rename = "not-configured")]
    NotConfigured,
    /// The capability does not apply to the site's cloud API (reason given).
    #[serde(rename = "not-applicable")]
    NotApplicable,
}

impl Verdict {
    pub fn from_status(s: Status) -> Verdict {
        match s {
            Status::Ok => Verdict::Pass,
            Status::Warning => Verdict::Warn,
            Status::Critical => Verdict::Fail,
            Status::Unknown => Verdict::Skip,
        }
    }

    pub fn passes(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Warn)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::NotConfigured => "not-configured",
            Verdict::NotApplicable => "not-applicable",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckGrade {
    pub probe: String,
    /// The check id (`VM-03`), or the selector when nothing matched.
    pub check: String,
    pub requirement: String,
    pub name: String,
    pub status: Status,
    pub outcome: Verdict,
    pub message: String,
    #[serde(with = "secs")]
    pub duration: Duration,
    /// Why this check is not graded, when it is flagged.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flagged: Option<String>,
    /// What the site should do, when this check did not pass and the
    /// guideline has a hint for it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapStatus {
    Pass,
    Fail,
    /// Every check is flagged: nothing to grade.
    Untested,
    /// Not for this site's cloud API: neither passed nor failed, with the
    /// reason (`CapGrade::reason`).
    #[serde(rename = "not-applicable")]
    NotApplicable,
}

impl CapStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CapStatus::Pass => "pass",
            CapStatus::Fail => "fail",
            CapStatus::Untested => "untested",
            CapStatus::NotApplicable => "not-applicable",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapGrade {
    pub id: String,
    pub requirement: String,
    pub level: Level,
    pub title: String,
    pub status: CapStatus,
    pub fix: String,
    /// Why the capability does not apply to, or cannot be checked on, the
    /// site's cloud API.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub checks: Vec<CheckGrade>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteGrade {
    pub site: String,
    pub guideline: String,
    /// Every required capability passes.
    pub passed: bool,
    /// Monitoring status: worst unflagged check of a required capability;
    /// advisory failures count as WARNING at most.
    pub status: Status,
    pub required_total: usize,
    pub required_passed: usize,
    /// Share of required capabilities that pass, 0..=100.
    pub required_pct: f64,
    pub unflagged_total: usize,
    pub unflagged_passed: usize,
    /// Share of distinct unflagged checks (all capabilities) that pass, 0..=100.
    pub unflagged_pct: f64,
    /// The checks below counted by how they ended: what a report's totals
    /// add up once the capabilities are gone ([`SiteGrade::slim_copy`]).
    /// Not in the JSON: its `totals` are the sum.
    #[serde(skip)]
    pub tally: Tally,
    pub capabilities: Vec<CapGrade>,
}

impl SiteGrade {
    /// The figures and the tally without the capabilities: what a report's
    /// first screen and totals need once the site's own sections are
    /// written (a thousand sites' checks were most of a run's memory at
    /// its end).
    pub fn slim_copy(&self) -> SiteGrade {
        SiteGrade {
            site: self.site.clone(),
            guideline: self.guideline.clone(),
            passed: self.passed,
            status: self.status,
            required_total: self.required_total,
            required_passed: self.required_passed,
            required_pct: self.required_pct,
            unflagged_total: self.unflagged_total,
            unflagged_passed: self.unflagged_passed,
            unflagged_pct: self.unflagged_pct,
            tally: self.tally,
            capabilities: Vec::new(),
        }
    }
}

/// A grade's checks by how they ended: the unflagged ones by outcome, the
/// flagged ones, and those of capabilities that do not apply to the site.
/// Serialized as the JSON report's totals (`report::json::Totals`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
    pub flagged: usize,
    /// Checks not run because their probe was not configured for them.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_configured: usize,
    /// Checks of capabilities that do not apply to the site's cloud API.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_applicable: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Tally {
    pub fn of(caps: &[CapGrade]) -> Tally {
        let mut t = Tally::default();
        for c in caps {
            if c.status == CapStatus::NotApplicable {
                t.not_applicable += c.checks.len();
                continue;
            }
            for ch in &c.checks {
                if ch.flagged.is_some() {
                    t.flagged += 1;
                    continue;
                }
                match ch.outcome {
                    Verdict::Pass => t.pass += 1,
                    Verdict::Warn => t.warn += 1,
                    Verdict::Fail => t.fail += 1,
                    Verdict::Skip => t.skip += 1,
                    Verdict::NotConfigured => t.not_configured += 1,
                    Verdict::NotApplicable => t.not_applicable += 1,
                }
            }
        }
        t
    }

    pub fn add(&mut self, o: &Tally) {
        self.pass += o.pass;
        self.warn += o.warn;
        self.fail += o.fail;
        self.skip += o.skip;
        self.flagged += o.flagged;
        self.not_configured += o.not_configured;
        self.not_applicable += o.not_applicable;
    }
}

/// The harness's own checks, one per probe run: finished within its
/// deadline and left nothing behind (the monitoring-friendliness evidence).
pub fn harness_checks(run: &SiteRun) -> Vec<CheckGrade> {
    run.probes
        .iter()
        .map(|p| {
            let r = &p.result;
            let (status, message) = run_verdict(r);
            CheckGrade {
                probe: HARNESS_PROBE.into(),
                check: format!("RUN-{}", r.label),
                requirement: "EGI-MONITORING".into(),
                name: format!("{} finishes in time and cleans up", r.probe),
                status,
                outcome: Verdict::from_status(status),
                message,
                duration: r.duration,
                flagged: None,
                hint: None,
            }
        })
        .collect()
}

fn run_verdict(r: &ProbeResult) -> (Status, String) {
    use probes::model::Cleanup;
    let left: Vec<String> = r
        .resources
        .iter()
        .filter(|x| x.cleanup != Cleanup::Deleted)
        .map(|x| format!("{} {}", x.kind, x.id))
        .collect();
    if !left.is_empty() {
        return (
            Status::Critical,
            format!("not deleted: {}", left.join(", ")),
        );
    }
    if r.outcome.is_timeout() {
        return (
            Status::Critical,
            format!("did not finish within its deadline: {}", r.summary),
        );
    }
    // Not started (bad arguments), or stopped on the monitor's own trouble
    // before its first step: nothing of the site was seen.
    let not_run = matches!(r.outcome, probes::model::Outcome::NotStarted { .. })
        || (r.status == Status::Unknown && r.steps.is_empty());
    if not_run {
        return (
            Status::Unknown,
            format!("probe could not run: {}", r.summary),
        );
    }
    let n = r.resources.len();
    (
        Status::Ok,
        format!(
            "finished in {:.1}s, {n} created resource(s) all deleted",
            r.duration.as_secs_f64()
        ),
    )
}

/// Grade one site's run against the guideline.
pub fn grade(g: &Guideline, run: &SiteRun) -> SiteGrade {
    let own = harness_checks(run);
    let mut caps = Vec::new();
    for c in &g.capabilities {
        let flags: Vec<(Selector, &str)> = c
            .flagged
            .iter()
            .filter_map(|f| Some((Selector::parse(&f.check).ok()?, f.reason.as_str())))
            .collect();
        let unchecked = c.not_checked_on(run.cloud);
        if let Some(why) = c.not_applicable_on(run.cloud) {
            caps.push(not_applicable(c, run, &own, why));
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut checks = Vec::new();
        for s in &c.checks {
            let Ok(sel) = Selector::parse(s) else {
                continue;
            };
            let found = matching(&sel, run, &own);
            let rest = if found.is_empty() || stopped_outside(&sel, run) {
                let mut r = not_reached(&sel, run);
                if let Some(why) = unchecked {
                    r.message =
                        format!("not checked on {}: {why} ({})", run.cloud.api(), r.message);
                }
                Some(r)
            } else {
                None
            };
            for cg in found {
                if seen.insert((cg.probe.clone(), cg.check.clone())) {
                    checks.push(cg);
                }
            }
            checks.extend(rest);
        }
        for cg in &mut checks {
            let probe = cg.probe.clone();
            let id = cg.check.clone();
            cg.flagged = flags
                .iter()
                .find(|(f, _)| f.matches(&probe, &id) || f.to_string() == id)
                .map(|(_, why)| why.to_string());
        }
        for cg in checks.iter_mut().filter(|c| !c.outcome.passes()) {
            cg.hint = c
                .hints
                .iter()
                .find(|h| Selector::parse(&h.check).is_ok_and(|s| s.matches(&cg.probe, &cg.check)))
                .map(|h| h.fix.clone());
        }
        let graded: Vec<&CheckGrade> = checks.iter().filter(|c| c.flagged.is_none()).collect();
        let status = if graded.is_empty() {
            CapStatus::Untested
        } else if graded.iter().all(|c| c.outcome.passes()) {
            CapStatus::Pass
        } else {
            CapStatus::Fail
        };
        caps.push(CapGrade {
            id: c.id.clone(),
            requirement: c.requirement.clone(),
            level: c.level,
            title: c.title.clone(),
            status,
            fix: c.fix.clone(),
            reason: unchecked.map(|w| format!("not checked on {}: {w}", run.cloud.api())),
            checks,
        });
    }
    summarise(g, run, caps)
}

/// A capability that does not apply to the site's API: the checks that ran
/// anyway are shown, not graded; without any, one line gives the reason.
fn not_applicable(
    c: &crate::guideline::Capability,
    run: &SiteRun,
    own: &[CheckGrade],
    why: &str,
) -> CapGrade {
    let reason = format!("not applicable on {}: {why}", run.cloud.api());
    let mut checks: Vec<CheckGrade> = Vec::new();
    for s in &c.checks {
        let Ok(sel) = Selector::parse(s) else {
            continue;
        };
        for mut cg in matching(&sel, run, own) {
            if !checks
                .iter()
                .any(|x| x.probe == cg.probe && x.check == cg.check)
            {
                cg.flagged = Some(reason.clone());
                checks.push(cg);
            }
        }
    }
    if checks.is_empty() {
        checks.push(CheckGrade {
            probe: c
                .checks
                .first()
                .and_then(|s| Selector::parse(s).ok())
                .map(|s| s.probe)
                .unwrap_or_default(),
            check: c.checks.join(", "),
            requirement: c.requirement.clone(),
            name: "not applicable".into(),
            status: Status::Unknown,
            outcome: Verdict::NotApplicable,
            message: reason.clone(),
            duration: Duration::ZERO,
            flagged: Some(reason.clone()),
            hint: None,
        });
    }
    CapGrade {
        id: c.id.clone(),
        requirement: c.requirement.clone(),
        level: c.level,
        title: c.title.clone(),
        status: CapStatus::NotApplicable,
        fix: String::new(),
        reason: Some(reason),
        checks,
    }
}

fn summarise(g: &Guideline, run: &SiteRun, caps: Vec<CapGrade>) -> SiteGrade {
    // A capability that does not apply is neither passed nor failed.
    let required: Vec<&CapGrade> = caps
        .iter()
        .filter(|c| c.level == Level::Required && c.status != CapStatus::NotApplicable)
        .collect();
    let required_passed = required
        .iter()
        .filter(|c| c.status == CapStatus::Pass)
        .count();
    let mut unflagged = std::collections::BTreeMap::new();
    for c in &caps {
        for ch in c.checks.iter().filter(|c| c.flagged.is_none()) {
            unflagged.insert((ch.probe.clone(), ch.check.clone()), ch.outcome.passes());
        }
    }
    let unflagged_passed = unflagged.values().filter(|p| **p).count();
    let mut status = Status::Ok;
    for c in &caps {
        for ch in c.checks.iter().filter(|c| c.flagged.is_none()) {
            let s = match c.level {
                Level::Required => ch.status,
                Level::Advisory => ch.status.min(Status::Warning),
            };
            status = status.max(s);
        }
    }
    for e in &run.externals {
        status = status.max(e.status);
    }
    SiteGrade {
        site: run.site.clone(),
        guideline: g.id.clone(),
        passed: required_passed == required.len(),
        status,
        required_total: required.len(),
        required_passed,
        required_pct: pct(required_passed, required.len()),
        unflagged_total: unflagged.len(),
        unflagged_passed,
        unflagged_pct: pct(unflagged_passed, unflagged.len()),
        tally: Tally::of(&caps),
        capabilities: caps,
    }
}

fn pct(n: usize, total: usize) -> f64 {
    if total == 0 {
        return 100.0;
    }
    (n as f64 * 1000.0 / total as f64).round() / 10.0
}

fn matching(sel: &Selector, run: &SiteRun, own: &[CheckGrade]) -> Vec<CheckGrade> {
    if sel.probe == HARNESS_PROBE {
        return own
            .iter()
            .filter(|c| sel.matches(&c.probe, &c.check))
            .cloned()
            .collect();
    }
    let mut out = Vec::new();
    for p in run.probes.iter().filter(|p| p.probe == sel.probe) {
        for s in &p.result.steps {
            if sel.matches(&p.probe, &s.check) {
                out.push(CheckGrade {
                    probe: p.probe.clone(),
                    check: s.check.clone(),
                    requirement: s.requirement.clone(),
                    name: s.name.clone(),
                    status: s.status,
                    outcome: Verdict::from_status(s.status),
                    message: s.message.clone(),
                    duration: s.duration,
                    flagged: None,
                    hint: None,
                });
            }
        }
    }
    out
}

/// A wildcard whose probe failed on a step outside it (a login after the
/// checks that need none): the wildcard's later checks were never reached.
fn stopped_outside(sel: &Selector, run: &SiteRun) -> bool {
    if !sel.pattern.ends_with('*') || sel.probe == HARNESS_PROBE {
        return false;
    }
    run.probes.iter().filter(|p| p.probe == sel.probe).any(|p| {
        let r = &p.result;
        matches!(r.status, Status::Critical | Status::Unknown)
            && r.steps
                .last()
                .is_some_and(|s| s.status == r.status && !sel.matches(&p.probe, &s.check))
    })
}

/// A selector nothing matched: say why, with the probe's own words.
fn not_reached(sel: &Selector, run: &SiteRun) -> CheckGrade {
    let entry = probes::checks::find(&sel.probe);
    if let Some(e) = entry.filter(|e| e.requires.is_some()) {
        if !run.probes.iter().any(|p| p.probe == sel.probe) {
            let how = e
                .optional
                .iter()
                .find(|o| sel.matches(&sel.probe, o.check))
                .map(|o| o.how)
                .unwrap_or("its required flag");
            return CheckGrade {
                probe: sel.probe.clone(),
                check: sel.to_string(),
                requirement: String::new(),
                name: "not configured".into(),
                status: Status::Unknown,
                outcome: Verdict::NotConfigured,
                message: format!("{} is not configured: enable with {how}", sel.probe),
                duration: Duration::ZERO,
                flagged: None,
                hint: None,
            };
        }
    }
    let (status, message, duration) = match run.probes.iter().find(|p| p.probe == sel.probe) {
        None => (
            Status::Unknown,
            format!("probe {} was not run for this site", sel.probe),
            Duration::ZERO,
        ),
        Some(p) => {
            let r = &p.result;
            let last = r
                .steps
                .last()
                .map(|s| format!(" after {}", s.check))
                .unwrap_or_default();
            // The probe has the check but this invocation does not enable it.
            if let Some(how) = not_configured(sel, p) {
                return CheckGrade {
                    probe: sel.probe.clone(),
                    check: sel.to_string(),
                    requirement: String::new(),
                    name: "not configured".into(),
                    status: Status::Unknown,
                    outcome: Verdict::NotConfigured,
                    message: how,
                    duration: Duration::ZERO,
                    flagged: None,
                    hint: None,
                };
            }
            // The probe finished fine without this check: the guideline
            // names a check the probe does not have (yet).
            if r.status == Status::Ok {
                (
                    Status::Unknown,
                    format!(
                        "{} ended OK{last} without running {}: the guideline names a check this probe does not have",
                        r.probe, sel.pattern
                    ),
                    r.duration,
                )
            } else {
                (
                    r.status,
                    format!(
                        "not reached: {} ended {}{last}: {}",
                        r.probe, r.status, r.summary
                    ),
                    r.duration,
                )
            }
        }
    };
    CheckGrade {
        probe: sel.probe.clone(),
        check: sel.to_string(),
        requirement: String::new(),
        name: "no matching check ran".into(),
        status,
        outcome: Verdict::from_status(status).min_skip(),
        message,
        duration,
        flagged: None,
        hint: None,
    }
}

/// The selector's checks that the probe has but its argv leaves off, and
/// how to enable each; `None` when every matching check is configured.
fn not_configured(sel: &Selector, p: &crate::model::ProbeRun) -> Option<String> {
    let entry = probes::checks::find(&p.probe)?;
    let off: Vec<String> = (entry.checks)()
        .iter()
        .filter(|c| sel.matches(&p.probe, c.id))
        .filter_map(|c| entry.not_configured(c.id, &p.argv))
        .map(|o| format!("{} not configured: enable with {}", o.check, o.how))
        .collect();
    (!off.is_empty()).then(|| off.join("; "))
}

impl Verdict {
    /// A check that never ran is at best skipped, even if its probe failed.
    fn min_skip(self) -> Verdict {
        match self {
            Verdict::Pass | Verdict::Warn => Verdict::Skip,
            o => o,
        }
    }
}
