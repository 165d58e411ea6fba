//! The self-certification report's first screen, per site: one row per
//! requirement (pass / fail / not configured, with a link to its
//! evidence), what to fix first (required capabilities first, each item
//! with its failing stage, what came back and the fix), the provider
//! documentation's integration steps, the defaults in effect, and the
//! comparison with a previous report. Built once as data, rendered by the
//! minijinja templates beside this file for HTML and Markdown.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Report, SiteReport};
use crate::grade::{CapStatus, CheckGrade, SiteGrade, Verdict};
use crate::guideline::{Level, Selector};

/// Items shown under "what to fix first"; the full list is in the details.
const MAX_FIXES: usize = 12;

/// The provider documentation's integration steps and the checks that show
/// each is done.
const STEPS: &[(&str, &[&str])] = &[
    (
        "Network configuration: public https endpoints",
        &[
            "check_token_auth:AUTH-05",
            "check_token_auth:AUTH-07",
            "check_token_auth:AUTH-08",
            "check_vm_lifecycle:VM-04",
        ],
    ),
    (
        "Permissions: what project members may do",
        &[
            "check_vm_lifecycle:VM-06",
            "check_image_upload:IMG-01",
            "check_usage:USAGE-01",
            "check_object_storage:OBJ-01",
        ],
    ),
    (
        "AAI: federated login",
        &[
            "check_token_auth:AUTH-01",
            "check_token_auth:AUTH-02",
            "check_token_auth:AUTH-03",
            "check_token_auth:AUTH-04",
            "check_token_auth:AUTH-06",
            "check_token_auth:AUTH-09",
        ],
    ),
    (
        "Accounting: cASO records published",
        &["check_usage:USAGE-04", "check_usage:USAGE-05"],
    ),
    (
        "Information system: GLUE publication",
        &["check_glue:GLUE-*"],
    ),
    (
        "VM and appliance repository",
        &["check_vm_lifecycle:VM-02", "check_appliances:APPL-*"],
    ),
];

#[derive(Debug, Serialize)]
pub struct Overview {
    pub site: String,
    pub anchor: String,
    pub passed: bool,
    pub status: String,
    pub required_passed: usize,
    pub required_total: usize,
    pub required_pct: f64,
    pub rows: Vec<Row>,
    pub fixes: Vec<Fix>,
    pub more_fixes: usize,
    pub steps: Vec<StepRow>,
    pub defaults: Vec<Defaults>,
    pub compare: Option<Compare>,
}

/// One requirement's verdict.
#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub title: String,
    /// pass | fail | advisory | not-configured | untested | not-applicable
    pub verdict: &'static str,
    pub label: &'static str,
    pub evidence: String,
    /// "capability (level): status" for each of its capabilities.
    pub capabilities: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Fix {
    pub capability: String,
    pub level: &'static str,
    pub outcome: &'static str,
    pub stage: String,
    pub came_back: String,
    pub fix: String,
    pub evidence: String,
    #[serde(skip)]
    rank: u8,
}

#[derive(Debug, Serialize)]
pub struct StepRow {
    pub name: &'static str,
    /// done | to-do | not-configured | not-checked
    pub verdict: &'static str,
    pub label: &'static str,
    pub detail: String,
}

/// One default and the probes it applies to.
#[derive(Debug, Serialize)]
pub struct Defaults {
    pub probes: String,
    pub value: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Compare {
    pub previous_started_at: f64,
    pub required_pct_before: Option<f64>,
    pub new_failures: Vec<String>,
    pub fixed: Vec<String>,
    pub timing: Vec<String>,
}

pub fn anchor(s: &str) -> String {
    crate::profile::sanitise_name(s)
}

/// The id of a requirement's evidence section.
pub fn evidence_id(site: &str, req: &str) -> String {
    format!("req-{}-{}", anchor(site), anchor(req))
}

fn graded(c: &CheckGrade) -> bool {
    c.flagged.is_none()
}

/// A requirement's verdict from its capabilities.
fn verdict(g: &SiteGrade, req: &str) -> (&'static str, &'static str) {
    let mine = || g.capabilities.iter().filter(|c| c.requirement == req);
    let caps: Vec<_> = mine()
        .filter(|c| !matches!(c.status, CapStatus::Untested | CapStatus::NotApplicable))
        .collect();
    if caps.is_empty() && mine().any(|c| c.status == CapStatus::NotApplicable) {
        return ("not-applicable", "NOT APPLICABLE");
    }
    if caps.is_empty() {
        return ("untested", "UNTESTED");
    }
    let failing: Vec<_> = caps
        .iter()
        .filter(|c| c.status == CapStatus::Fail)
        .collect();
    if failing.is_empty() {
        return ("pass", "PASS");
    }
    let only_off = failing.iter().all(|c| {
        c.checks
            .iter()
            .filter(|x| graded(x) && !x.outcome.passes())
            .all(|x| x.outcome == Verdict::NotConfigured)
    });
    let required = failing.iter().any(|c| c.level == Level::Required);
    match (only_off, required) {
        (true, true) => ("not-configured", "NOT CONFIGURED"),
        (true, false) => ("not-configured", "NOT CONFIGURED (advisory)"),
        (false, true) => ("fail", "FAIL"),
        (false, false) => ("advisory", "ADVISORY FAIL"),
    }
}

fn outcome_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Fail => 0,
        Verdict::Skip => 1,
        Verdict::NotConfigured => 2,
        Verdict::Warn | Verdict::Pass | Verdict::NotApplicable => 3,
    }
}

fn fixes(s: &SiteReport) -> Vec<Fix> {
    let g = &s.grade;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for level in [Level::Required, Level::Advisory] {
        let start = out.len();
        for c in g
            .capabilities
            .iter()
            .filter(|c| c.level == level && c.status == CapStatus::Fail)
        {
            let mut bad: Vec<&CheckGrade> = c
                .checks
                .iter()
                .filter(|x| graded(x) && !x.outcome.passes())
                .collect();
            bad.sort_by_key(|x| outcome_rank(x.outcome));
            for x in bad {
                if !seen.insert((x.probe.clone(), x.check.clone())) {
                    continue;
                }
                let id = x.check.rsplit(':').next().unwrap_or(&x.check);
                let fix = if x.outcome == Verdict::NotConfigured {
                    x.message.clone()
                } else if let Some(why) = &c.reason {
                    // Not checkable on this API: the usual fix is for another one.
                    why.clone()
                } else {
                    let usual = crate::explain::entry(id).map(|e| e.fix).unwrap_or_default();
                    match (usual.is_empty(), c.fix.is_empty()) {
                        (false, _) => usual,
                        (true, false) => c.fix.clone(),
                        (true, true) => String::new(),
                    }
                };
                out.push(Fix {
                    capability: c.id.clone(),
                    level: c.level.as_str(),
                    outcome: x.outcome.as_str(),
                    stage: if x.check.contains(':') {
                        format!("{} ({})", x.check, x.name)
                    } else {
                        format!("{}:{} {}", x.probe, x.check, x.name)
                    },
                    came_back: if x.outcome == Verdict::NotConfigured {
                        "not run: the probe was not configured for it".into()
                    } else {
                        probes::text::one_line(&x.message, 400)
                    },
                    fix,
                    evidence: evidence_id(&s.run.site, &c.requirement),
                    rank: outcome_rank(x.outcome),
                });
            }
        }
        // Within a level, failures before checks not reached or not configured.
        out[start..].sort_by_key(|f| f.rank);
    }
    out
}

fn steps(g: &SiteGrade) -> Vec<StepRow> {
    let mut checks: BTreeMap<(String, String), &CheckGrade> = BTreeMap::new();
    for c in &g.capabilities {
        for x in c.checks.iter().filter(|x| graded(x)) {
            checks
                .entry((x.probe.clone(), x.check.clone()))
                .or_insert(x);
        }
    }
    STEPS
        .iter()
        .map(|(name, sels)| {
            let sels: Vec<(Selector, String)> = sels
                .iter()
                .filter_map(|s| Selector::parse(s).ok())
                .map(|s| {
                    let text = s.to_string();
                    (s, text)
                })
                .collect();
            let mine: Vec<&&CheckGrade> = checks
                .values()
                .filter(|x| {
                    sels.iter().any(|(s, text)| {
                        s.matches(&x.probe, &x.check)
                            || text.split_once(':') == Some((x.probe.as_str(), x.check.as_str()))
                            || *text == x.check
                    })
                })
                .collect();
            let bad: Vec<&&&CheckGrade> = mine.iter().filter(|x| !x.outcome.passes()).collect();
            let (verdict, label, detail) = if mine.is_empty() {
                (
                    "not-checked",
                    "not checked",
                    "no check of this step ran".to_string(),
                )
            } else if bad.is_empty() {
                ("done", "done", format!("{} check(s) pass", mine.len()))
            } else if bad.iter().all(|x| x.outcome == Verdict::NotConfigured) {
                let names: Vec<&str> = bad.iter().map(|x| x.check.as_str()).collect();
                (
                    "not-configured",
                    "not configured",
                    format!("not configured: {}", names.join(", ")),
                )
            } else {
                let names: Vec<String> = bad
                    .iter()
                    .map(|x| format!("{} {}", x.check, x.outcome.as_str()))
                    .collect();
                ("to-do", "to do", names.join(", "))
            };
            StepRow {
                name,
                verdict,
                label,
                detail,
            }
        })
        .collect()
}

/// (probe, check) -> passes, for the graded checks of one site of a JSON report.
fn outcomes(site: &Value) -> BTreeMap<String, bool> {
    let mut m = BTreeMap::new();
    for c in site["grade"]["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for x in c["checks"].as_array().into_iter().flatten() {
            if !x["flagged"].is_null() {
                continue;
            }
            let key = format!(
                "{}:{}",
                x["probe"].as_str().unwrap_or(""),
                x["check"].as_str().unwrap_or("")
            );
            let passes = matches!(x["outcome"].as_str(), Some("pass" | "warn"));
            m.insert(key, passes);
        }
    }
    m
}

fn compare(s: &SiteReport, previous: &Value) -> Option<Compare> {
    let old = previous["sites"]
        .as_array()?
        .iter()
        .find(|x| x["run"]["site"].as_str() == Some(s.run.site.as_str()))?;
    let before = outcomes(old);
    let now_doc = serde_json::to_value(s).ok()?;
    let now = outcomes(&now_doc);
    let mut c = Compare {
        previous_started_at: previous["started_at"].as_f64().unwrap_or(0.0),
        required_pct_before: old["grade"]["required_pct"].as_f64(),
        ..Compare::default()
    };
    for (k, passes) in &now {
        match (before.get(k), passes) {
            (Some(true) | None, false) => c.new_failures.push(k.clone()),
            (Some(false), true) => c.fixed.push(k.clone()),
            _ => {}
        }
    }
    for p in &s.run.probes {
        let old_p = old["run"]["probes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["probe"].as_str() == Some(p.probe.as_str()));
        let Some(was) = old_p.and_then(|x| x["result"]["duration"].as_f64()) else {
            continue;
        };
        let is = p.result.duration.as_secs_f64();
        // Changes under a second or a quarter are noise on a cloud.
        if (is - was).abs() >= 1.0 && (is - was).abs() >= 0.25 * was.max(0.001) {
            c.timing.push(format!(
                "{} {:.1}s to {:.1}s ({:+.0}%)",
                p.probe,
                was,
                is,
                (is - was) / was.max(0.001) * 100.0
            ));
        }
    }
    Some(c)
}

pub fn build(r: &Report, s: &SiteReport) -> Overview {
    let g = &s.grade;
    let rows = r
        .requirements
        .iter()
        .map(|(id, title)| {
            let (verdict, label) = verdict(g, id);
            Row {
                id: id.clone(),
                title: title.clone(),
                verdict,
                label,
                evidence: evidence_id(&s.run.site, id),
                capabilities: g
                    .capabilities
                    .iter()
                    .filter(|c| &c.requirement == id)
                    .map(|c| format!("{} ({}): {}", c.id, c.level.as_str(), cap_word(c.status)))
                    .collect(),
            }
        })
        .collect();
    let mut all_fixes = fixes(s);
    let more_fixes = all_fixes.len().saturating_sub(MAX_FIXES);
    all_fixes.truncate(MAX_FIXES);
    let mut by_value: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &s.run.probes {
        for v in crate::defaults::shown(&p.argv) {
            by_value.entry(v).or_default().push(p.probe.clone());
        }
    }
    let defaults = by_value
        .into_iter()
        .map(|(value, probes)| Defaults {
            probes: probes.join(", "),
            value,
        })
        .collect();
    Overview {
        site: s.run.site_label(),
        anchor: anchor(&s.run.site),
        passed: g.passed,
        status: g.status.to_string(),
        required_passed: g.required_passed,
        required_total: g.required_total,
        required_pct: g.required_pct,
        rows,
        fixes: all_fixes,
        more_fixes,
        steps: steps(g),
        defaults,
        compare: r.previous.as_ref().and_then(|p| compare(s, p)),
    }
}

fn cap_word(s: CapStatus) -> &'static str {
    s.as_str()
}

/// Render one site's overview with the named template.
pub fn render(r: &Report, s: &SiteReport, html: bool) -> String {
    let ov = build(r, s);
    let mut env = minijinja::Environment::new();
    env.add_filter("md", |v: String| super::text::md_cell(&v, 600));
    let (name, source) = if html {
        ("overview.html", include_str!("overview.html.j2"))
    } else {
        ("overview.md", include_str!("overview.md.j2"))
    };
    let rendered = env
        .add_template(name, source)
        .and_then(|()| env.get_template(name))
        .and_then(|t| t.render(minijinja::context! { o => minijinja::value::Serde(&ov) }));
    match rendered {
        Ok(t) => t,
        // The templates are compiled in and tested: this is a bug, said plainly.
        Err(e) => format!("(overview not rendered: {e})\n"),
    }
}
