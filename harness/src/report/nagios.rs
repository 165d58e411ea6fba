//! One aggregate Nagios result: worst status first line with aggregate
//! perfdata, per-site and per-check long output, under 16 KB.

use probes::model::{Perf, Uom};
use probes::render::nagios;

use super::{Report, SiteReport};
use crate::grade::{CapStatus, Verdict};

pub fn render(r: &Report) -> String {
    let long: Vec<String> = r
        .sites_worst_first()
        .into_iter()
        .flat_map(site_lines)
        .collect();
    nagios::cap(first_line(r), &long)
}

/// The first line: worst status, summary and aggregate perfdata, from the
/// sites' figures and tallies alone (a slim report has them).
pub fn first_line(r: &Report) -> String {
    let status = r.status();
    let t = super::json::totals(r);
    let (n, passed, counts) = (t.sites, t.sites_passed, t.checks);
    let summary = match r.sites_worst_first().first() {
        Some(w) if n == 1 => format!(
            "{}: {} {} (required {}/{} = {}%, unflagged checks {}%)",
            w.run.site_label(),
            w.grade.guideline,
            if w.grade.passed { "passed" } else { "FAILED" },
            w.grade.required_passed,
            w.grade.required_total,
            w.grade.required_pct,
            w.grade.unflagged_pct
        ),
        Some(w) => format!(
            "{passed}/{n} sites pass {}; worst {} {} (required {}%)",
            r.guideline_id, w.run.site, w.grade.status, w.grade.required_pct
        ),
        None => "no site run".into(),
    };
    let min_req = r
        .sites
        .iter()
        .map(|s| s.grade.required_pct)
        .fold(f64::NAN, f64::min);
    let mut perf = vec![
        Perf::count("sites", n as u64),
        Perf::count("sites_passed", passed as u64),
        Perf::count("checks_pass", counts.pass as u64),
        Perf::count("checks_warn", counts.warn as u64),
        Perf::count("checks_fail", counts.fail as u64),
        Perf::count("checks_skip", counts.skip as u64),
    ];
    if counts.not_configured > 0 {
        perf.push(Perf::count(
            "checks_not_configured",
            counts.not_configured as u64,
        ));
    }
    if min_req.is_finite() {
        perf.push(
            Perf::new("required_pct_min", min_req, Uom::Percent)
                .min(0.0)
                .max(100.0),
        );
    }
    perf.push(Perf::seconds("duration", r.duration));
    let perf: Vec<String> = perf.iter().map(|p| p.to_string()).collect();
    nagios::first_line("FEDPROBE", status.as_str(), &summary, &perf.join(" "))
}

/// One site's long-output lines, each one line and at most 1,000
/// characters: its grade, then its checks and externals, failing first.
/// Sites follow each other worst first.
pub fn site_lines(s: &SiteReport) -> Vec<String> {
    let g = &s.grade;
    let mut long = vec![format!(
        "[{}] {}: {} {}, required {}/{} ({}%), unflagged checks {}/{} ({}%), {:.1}s",
        g.status,
        s.run.site_label(),
        g.guideline,
        if g.passed { "passed" } else { "FAILED" },
        g.required_passed,
        g.required_total,
        g.required_pct,
        g.unflagged_passed,
        g.unflagged_total,
        g.unflagged_pct,
        s.run.duration.as_secs_f64()
    )];
    let mut lines = Vec::new();
    for c in &g.capabilities {
        let na = c.status == CapStatus::NotApplicable;
        for ch in &c.checks {
            let flag = if ch.flagged.is_some() && !na {
                " (flagged)"
            } else {
                ""
            };
            // Not a status of the site: a capability its API does not have.
            let status = if na && ch.outcome == Verdict::NotApplicable {
                "N/A".to_string()
            } else {
                ch.status.to_string()
            };
            let line = format!(
                "  [{status}] {} {} {} {}{flag}: {} ({:.2}s)",
                s.run.site,
                c.id,
                ch.check,
                ch.name,
                ch.message,
                ch.duration.as_secs_f64()
            );
            let rank = if c.status == CapStatus::Fail && ch.flagged.is_none() {
                0
            } else if na {
                2
            } else {
                1
            };
            lines.push((rank, std::cmp::Reverse(ch.status), line));
        }
    }
    for e in &s.run.externals {
        lines.push((
            0,
            std::cmp::Reverse(e.status),
            format!(
                "  [{}] {} external {}: {} ({:.2}s)",
                e.status,
                s.run.site,
                e.name,
                e.summary,
                e.duration.as_secs_f64()
            ),
        ));
    }
    lines.sort_by_key(|l| (l.0, l.1));
    long.extend(lines.into_iter().map(|l| l.2));
    long.iter()
        .map(|l| {
            let indent = if l.starts_with("  ") { "  " } else { "" };
            format!("{indent}{}", probes::text::one_line(l, 1000))
        })
        .collect()
}
