//! Self-certification report in Markdown: per requirement, pass/fail with
//! evidence (what was called, what came back, timings) and what to fix.

use std::fmt::Write;

use super::text::md_cell;
use super::{requirement_status, Report, SiteReport};
use crate::grade::{CapStatus, Verdict};

/// Trace lines shown per probe; the JSON report keeps them all.
const MAX_DETAILS: usize = 40;

pub fn render(r: &Report) -> String {
    let mut o = top(r);
    for s in r.sites_worst_first() {
        site(&mut o, r, s);
    }
    o
}

/// One site's section (sections follow [`top`] worst site first).
pub fn section(r: &Report, s: &SiteReport) -> String {
    let mut o = String::new();
    site(&mut o, r, s);
    o
}

/// Everything before the sites' sections: title and the sites table.
pub fn top(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# fedprobe self-certification report\n");
    let _ = writeln!(
        o,
        "Guideline **{}** ({}), {} site(s), run took {:.1}s, overall status **{}**.\n",
        md_cell(&r.guideline_id, 100),
        md_cell(&r.guideline_title, 200),
        r.sites.len(),
        r.duration.as_secs_f64(),
        r.status()
    );
    let _ = writeln!(
        o,
        "| site | result | status | required capabilities | unflagged checks |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for s in r.sites_worst_first() {
        let g = &s.grade;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {}/{} ({}%) | {}/{} ({}%) |",
            md_cell(&s.run.site, 100),
            if g.passed { "PASS" } else { "FAIL" },
            g.status,
            g.required_passed,
            g.required_total,
            g.required_pct,
            g.unflagged_passed,
            g.unflagged_total,
            g.unflagged_pct
        );
    }
    o
}

fn site(o: &mut String, r: &Report, s: &SiteReport) {
    let g = &s.grade;
    let _ = writeln!(o, "\n## Site {}\n", md_cell(&s.run.site_label(), 100));
    let _ = writeln!(
        o,
        "{} — required {}/{} ({}%), unflagged checks {}/{} ({}%).\n",
        if g.passed { "**PASS**" } else { "**FAIL**" },
        g.required_passed,
        g.required_total,
        g.required_pct,
        g.unflagged_passed,
        g.unflagged_total,
        g.unflagged_pct
    );
    o.push_str(&super::overview::render(r, s, false));
    let _ = writeln!(o, "\n### Evidence per requirement\n");
    for (rid, title) in &r.requirements {
        let st = requirement_status(g, rid);
        let _ = writeln!(
            o,
            "<a id=\"{}\"></a>\n",
            super::overview::evidence_id(&s.run.site, rid)
        );
        let _ = writeln!(
            o,
            "### {} {} — {}\n",
            md_cell(rid, 100),
            md_cell(title, 200),
            st.as_str()
        );
        for c in g.capabilities.iter().filter(|c| &c.requirement == rid) {
            let _ = writeln!(
                o,
                "- capability `{}` ({}): **{:?}** — {}",
                c.id,
                c.level.as_str(),
                c.status,
                md_cell(&c.title, 300)
            );
            if let Some(why) = &c.reason {
                let _ = writeln!(o, "  - {}", md_cell(why, 1000));
            }
            if c.status == CapStatus::Fail && c.reason.is_none() && !c.fix.is_empty() {
                let _ = writeln!(o, "  - **To fix:** {}", md_cell(&c.fix, 1000));
            }
        }
        let _ = writeln!(
            o,
            "\n| check | outcome | time | evidence |\n|---|---|---|---|"
        );
        for c in g.capabilities.iter().filter(|c| &c.requirement == rid) {
            for ch in &c.checks {
                let na = c.status == CapStatus::NotApplicable;
                let outcome = match (&ch.flagged, ch.outcome) {
                    (Some(_), _) if na => "not applicable".to_string(),
                    (Some(_), _) => "flagged".to_string(),
                    (None, Verdict::Pass) => "pass".into(),
                    (None, x) => format!("**{}**", x.as_str()),
                };
                let mut ev = match &ch.flagged {
                    Some(why) if na && ch.message == *why => why.clone(),
                    Some(why) if na => format!("{} ({why})", ch.message),
                    Some(why) => format!("{} (flagged: {})", ch.message, why),
                    None => ch.message.clone(),
                };
                if let Some(hint) = &ch.hint {
                    ev = format!("{ev} — **To fix:** {hint}");
                }
                let _ = writeln!(
                    o,
                    "| {} {} {} | {} | {:.3}s | {} |",
                    md_cell(&ch.probe, 50),
                    md_cell(&ch.check, 60),
                    md_cell(&ch.name, 100),
                    outcome,
                    ch.duration.as_secs_f64(),
                    md_cell(&ev, 1200)
                );
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "### Evidence: what was called\n");
    for p in &s.run.probes {
        let res = &p.result;
        let _ = writeln!(
            o,
            "- `{}` → **{}** in {:.3}s, {} HTTP request(s): {}",
            md_cell(&p.argv.join(" "), 600).replace('`', "'"),
            res.status,
            res.duration.as_secs_f64(),
            res.http_requests,
            md_cell(&res.summary, 600)
        );
        for st in &res.steps {
            let _ = writeln!(
                o,
                "  - {} {}: {} ({:.3}s) {}",
                md_cell(&st.check, 60),
                md_cell(&st.name, 100),
                st.status,
                st.duration.as_secs_f64(),
                md_cell(&st.message, 600)
            );
        }
        for d in res.details.iter().take(MAX_DETAILS) {
            let _ = writeln!(o, "  - `{}`", md_cell(d, 400).replace('`', "'"));
        }
        if res.details.len() > MAX_DETAILS {
            let _ = writeln!(
                o,
                "  - ... {} more trace lines in the JSON report",
                res.details.len() - MAX_DETAILS
            );
        }
        for x in &res.resources {
            let _ = writeln!(
                o,
                "  - created {} {}: {:?}",
                md_cell(x.kind.as_str(), 40),
                md_cell(&x.id, 80),
                x.cleanup
            );
        }
    }
    for e in &s.run.externals {
        let _ = writeln!(
            o,
            "- external `{}` → **{}** (exit {:?}) in {:.3}s: {}",
            md_cell(&e.command.join(" "), 600).replace('`', "'"),
            e.status,
            e.exit_code,
            e.duration.as_secs_f64(),
            md_cell(&e.summary, 600)
        );
    }
}
