//! Prometheus text exposition for the node_exporter textfile collector:
//! probe success and durations, per-stage durations, per-check status.
//! `fedprobe serve` renders one probe run per scrape with the same families.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use probes::model::Status;

use super::text::label_value;
use super::{Report, SiteReport};
use crate::model::ProbeRun;

pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(String, f64)>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: vec![],
        }
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

pub fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

/// The families every probe run fills: success, duration, stages, checks.
fn probe_families() -> Vec<Family> {
    vec![
        Family::new(
            "probe_success",
            "1 when the probe ended OK or WARNING, else 0",
        ),
        Family::new(
            "probe_duration_seconds",
            "Wall time of the probe run, cleanup included",
        ),
        Family::new(
            "fedprobe_stage_duration_seconds",
            "Time spent in one probe stage (check)",
        ),
        Family::new(
            "fedprobe_check_status",
            "Status code of a check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
        ),
    ]
}

/// Add one run's samples to the families of [`probe_families`].
fn add_probe(fams: &mut [Family], site: &str, p: &ProbeRun) {
    let res = &p.result;
    let l = labels(&[("site", site), ("probe", &p.probe)]);
    let ok = matches!(res.status, Status::Ok | Status::Warning);
    fams[0]
        .samples
        .push((l.clone(), if ok { 1.0 } else { 0.0 }));
    fams[1].samples.push((l, res.duration.as_secs_f64()));
    // A check may be recorded more than once: one series per check.
    let mut stages: BTreeMap<&str, (f64, Status)> = BTreeMap::new();
    for st in &res.steps {
        let e = stages.entry(st.check.as_str()).or_insert((0.0, Status::Ok));
        e.0 += st.duration.as_secs_f64();
        e.1 = e.1.max(st.status);
    }
    for (check, (d, status)) in stages {
        let l = labels(&[("site", site), ("probe", &p.probe), ("check", check)]);
        fams[2].samples.push((l.clone(), d));
        fams[3].samples.push((l, status.exit_code() as f64));
    }
}

/// One probe run as the families of a report, without the closing `# EOF`.
pub fn probe_run(site: &str, p: &ProbeRun) -> Vec<Family> {
    let mut fams = probe_families();
    add_probe(&mut fams, site, p);
    fams
}

/// Families as exposition text (gauges), each series once; `# EOF` not added.
pub fn write_families(fams: &[Family]) -> String {
    let mut out = String::new();
    for f in fams.iter().filter(|f| !f.samples.is_empty()) {
        out.push_str(&family_head(f));
        out.push_str(&samples(f, &mut BTreeSet::new()));
    }
    out
}

fn family_head(f: &Family) -> String {
    format!("# HELP {} {}\n# TYPE {} gauge\n", f.name, f.help, f.name)
}

/// The family's samples as lines, each label set once.
fn samples(f: &Family, seen: &mut BTreeSet<String>) -> String {
    let mut out = String::new();
    for (l, v) in &f.samples {
        if seen.insert(l.clone()) {
            let _ = writeln!(out, "{}{l} {}", f.name, num(*v));
        }
    }
    out
}

pub fn render(r: &Report) -> String {
    let mut fams = families();
    for s in &r.sites {
        add_site(&mut fams, s);
    }
    let mut out = write_families(&fams);
    out.push_str(EOF);
    out
}

pub const EOF: &str = "# EOF\n";

/// How many metric families [`site_chunks`] gives.
pub fn family_count() -> usize {
    families().len()
}

/// One site's samples, family by family (in [`families`]' order), as lines:
/// a report spooled site by site is written from these.
pub fn site_chunks(s: &SiteReport) -> Vec<String> {
    let mut fams = families();
    add_site(&mut fams, s);
    fams.iter()
        .map(|f| samples(f, &mut BTreeSet::new()))
        .collect()
}

/// HELP and TYPE lines of family `i` of [`families`].
pub fn head_of(i: usize) -> String {
    families().get(i).map(family_head).unwrap_or_default()
}

/// Every family of a harness report: the probe runs' and the site's.
fn families() -> Vec<Family> {
    let mut fams = probe_families();
    fams.extend([
        Family::new(
            "fedprobe_guideline_passed",
            "1 when every required capability of the guideline passes",
        ),
        Family::new(
            "fedprobe_guideline_required_ratio",
            "Share of required capabilities that pass",
        ),
        Family::new(
            "fedprobe_guideline_unflagged_ratio",
            "Share of unflagged checks that pass",
        ),
        Family::new(
            "fedprobe_external_status",
            "Exit status of an external plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
        ),
        Family::new(
            "fedprobe_run_timestamp_seconds",
            "Unix time the site's run started",
        ),
    ]);
    fams
}

fn add_site(fams: &mut [Family], s: &SiteReport) {
    let site = s.run.site.as_str();
    let g = &s.grade;
    for p in &s.run.probes {
        add_probe(fams, site, p);
    }
    for ch in crate::grade::harness_checks(&s.run) {
        let l = labels(&[("site", site), ("probe", &ch.probe), ("check", &ch.check)]);
        fams[3].samples.push((l, ch.status.exit_code() as f64));
    }
    let l = labels(&[("site", site), ("guideline", &g.guideline)]);
    fams[4]
        .samples
        .push((l.clone(), if g.passed { 1.0 } else { 0.0 }));
    fams[5].samples.push((l.clone(), g.required_pct / 100.0));
    fams[6].samples.push((l, g.unflagged_pct / 100.0));
    for e in &s.run.externals {
        let l = labels(&[("site", site), ("plugin", &e.name)]);
        fams[7].samples.push((l, e.status.exit_code() as f64));
    }
    fams[8]
        .samples
        .push((labels(&[("site", site)]), s.run.started_at.floor()));
}
