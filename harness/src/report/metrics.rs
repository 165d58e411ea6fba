//! Prometheus text exposition for the node_exporter textfile collector:
//! probe success and durations, per-stage durations, per-check status.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use probes::model::Status;

use super::text::label_value;
use super::{Report, SiteReport};

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

pub fn render(r: &Report) -> String {
    let mut fams = families();
    for s in &r.sites {
        add_site(&mut fams, s);
    }
    let mut out = String::new();
    for f in fams.iter().filter(|f| !f.samples.is_empty()) {
        out.push_str(&family_head(f));
        out.push_str(&samples(f, &mut BTreeSet::new()));
    }
    out.push_str(EOF);
    out
}

/// How many metric families [`site_chunks`] gives.
pub fn family_count() -> usize {
    families().len()
}

pub const EOF: &str = "# EOF\n";

/// One site's samples, family by family (in [`families`]' order), as lines.
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

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "probe_success",
            help: "1 when the probe ended OK or WARNING, else 0",
            samples: vec![],
        },
        Family {
            name: "probe_duration_seconds",
            help: "Wall time of the probe run, cleanup included",
            samples: vec![],
        },
        Family {
            name: "fedprobe_stage_duration_seconds",
            help: "Time spent in one probe stage (check)",
            samples: vec![],
        },
        Family {
            name: "fedprobe_check_status",
            help: "Status code of a check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
            samples: vec![],
        },
        Family {
            name: "fedprobe_guideline_passed",
            help: "1 when every required capability of the guideline passes",
            samples: vec![],
        },
        Family {
            name: "fedprobe_guideline_required_ratio",
            help: "Share of required capabilities that pass",
            samples: vec![],
        },
        Family {
            name: "fedprobe_guideline_unflagged_ratio",
            help: "Share of unflagged checks that pass",
            samples: vec![],
        },
        Family {
            name: "fedprobe_external_status",
            help: "Exit status of an external plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
            samples: vec![],
        },
        Family {
            name: "fedprobe_run_timestamp_seconds",
            help: "Unix time the site's run started",
            samples: vec![],
        },
    ]
}

fn add_site(fams: &mut [Family], s: &SiteReport) {
    {
        let site = s.run.site.as_str();
        let g = &s.grade;
        for p in &s.run.probes {
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
}
