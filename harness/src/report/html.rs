//! Self-certification report as one HTML file: per requirement, verdict,
//! evidence and what to fix; an inline SVG timing chart per probe.
//! Numbers carry classes and data attributes so tests can read them back.

use std::fmt::Write;

use super::text::html as h;
use super::{requirement_status, Report, SiteReport};
use crate::grade::{CapStatus, Verdict};
use crate::model::ProbeRun;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
.pass{color:#1a7f37}.warn{color:#9a6700}.fail{color:#cf222e;font-weight:bold}.skip{color:#6e7781}
code{font-size:90%;word-break:break-all}svg text{font-size:11px;font-family:sans-serif}
section.site{border-top:2px solid #444;margin-top:2em}.fix{background:#fff8c5;padding:.3em .6em}
section.overview{background:#f6f8fa;padding:.5em 1em;margin:1em 0}table.ov{width:100%}
.v-pass,.v-done{color:#1a7f37;font-weight:bold}.v-fail,.v-to-do{color:#cf222e;font-weight:bold}.v-advisory{color:#9a6700;font-weight:bold}.v-not-configured,.v-untested,.v-not-checked,.v-not-applicable{color:#6e7781;font-weight:bold}
ol.fixes li{margin:.4em 0}
@media (max-width:700px){body{margin:.5em}h1{font-size:1.3em}.ov b{white-space:nowrap}table{display:block;overflow-x:auto}table.ov{display:table}.rtitle{display:none}td,th{padding:.2em .3em;font-size:90%}svg.timing{max-width:100%;height:auto}pre{white-space:pre-wrap}}";

/// Counts the checks by outcome in the browser, so a headless render proves
/// the page's own numbers agree with its rows.
const SCRIPT: &str = "document.addEventListener('DOMContentLoaded',function(){
var c={pass:0,warn:0,fail:0,skip:0,flagged:0,'not-configured':0};
document.querySelectorAll('tr.check').forEach(function(r){c[r.dataset.outcome]++;});
Object.keys(c).forEach(function(k){var e=document.getElementById('js-count-'+k);if(e)e.textContent=String(c[k]);});
document.body.dataset.rendered='yes';});";

pub fn render(r: &Report) -> String {
    let mut o = top(r);
    for s in r.sites_worst_first() {
        site(&mut o, r, s);
    }
    o.push_str(TAIL);
    o
}

/// What follows the last site's section.
pub const TAIL: &str = "</body></html>\n";

/// One site's section (sections follow [`top`] worst site first).
pub fn section(r: &Report, s: &SiteReport) -> String {
    let mut o = String::new();
    site(&mut o, r, s);
    o
}

/// Everything before the sites' sections: title, totals, the sites table.
pub fn top(r: &Report) -> String {
    let mut o = String::new();
    let t = super::json::totals(r);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>fedprobe report: {}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body data-guideline=\"{}\" data-status=\"{}\">\n",
        h(&r.guideline_id),
        h(&r.guideline_id),
        r.status()
    );
    let _ = writeln!(
        o,
        "<h1>fedprobe self-certification report</h1><p>Guideline <b>{}</b> — {}. {} site(s); run took {:.1}s; overall status <b id=\"overall-status\">{}</b>.</p>",
        h(&r.guideline_id),
        h(&r.guideline_title),
        r.sites.len(),
        r.duration.as_secs_f64(),
        r.status()
    );
    let _ = writeln!(
        o,
        "<p>Unflagged checks: <span id=\"total-pass\">{}</span> pass, <span id=\"total-warn\">{}</span> warn, <span id=\"total-fail\">{}</span> fail, <span id=\"total-skip\">{}</span> skip; <span id=\"total-flagged\">{}</span> flagged. Rows counted in the page: <span id=\"js-count-pass\">?</span> pass, <span id=\"js-count-warn\">?</span> warn, <span id=\"js-count-fail\">?</span> fail, <span id=\"js-count-skip\">?</span> skip, <span id=\"js-count-flagged\">?</span> flagged.</p>",
        t.checks.pass, t.checks.warn, t.checks.fail, t.checks.skip, t.checks.flagged
    );
    let _ = writeln!(o, "<table><tr><th>site</th><th>result</th><th>status</th><th>required capabilities</th><th>unflagged checks</th></tr>");
    for s in r.sites_worst_first() {
        let g = &s.grade;
        let _ = writeln!(
            o,
            "<tr><td><a href=\"#site-{}\">{}</a></td><td class=\"{}\">{}</td><td>{}</td><td>{}/{} ({}%)</td><td>{}/{} ({}%)</td></tr>",
            anchor(&s.run.site),
            h(&s.run.site),
            if g.passed { "pass" } else { "fail" },
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
    let _ = writeln!(o, "</table>");
    o
}

fn anchor(s: &str) -> String {
    crate::profile::sanitise_name(s)
}

fn site(o: &mut String, r: &Report, s: &SiteReport) {
    let g = &s.grade;
    let _ = writeln!(
        o,
        "<section class=\"site\" id=\"site-{}\" data-site=\"{}\" data-passed=\"{}\"><h2>Site {}</h2><p class=\"{}\"><b>{}</b>: required capabilities <span class=\"required-passed\">{}</span>/<span class=\"required-total\">{}</span> (<span class=\"required-pct\">{}</span>%), unflagged checks <span class=\"unflagged-passed\">{}</span>/<span class=\"unflagged-total\">{}</span> (<span class=\"unflagged-pct\">{}</span>%).</p>",
        anchor(&s.run.site),
        h(&s.run.site),
        g.passed,
        h(&s.run.site_label()),
        if g.passed { "pass" } else { "fail" },
        if g.passed { "PASS" } else { "FAIL" },
        g.required_passed,
        g.required_total,
        g.required_pct,
        g.unflagged_passed,
        g.unflagged_total,
        g.unflagged_pct
    );
    o.push_str(&super::overview::render(r, s, true));
    for (rid, title) in &r.requirements {
        let st = requirement_status(g, rid);
        let _ = writeln!(
            o,
            "<h3 class=\"requirement\" id=\"{}\" data-requirement=\"{}\" data-verdict=\"{}\">{} {} — <span class=\"{}\">{}</span></h3>",
            h(&super::overview::evidence_id(&s.run.site, rid)),
            h(rid),
            st.css(),
            h(rid),
            h(title),
            st.css(),
            st.as_str()
        );
        for c in g.capabilities.iter().filter(|c| &c.requirement == rid) {
            let css = match c.status {
                CapStatus::Pass => "pass",
                CapStatus::Fail => "fail",
                CapStatus::Untested | CapStatus::NotApplicable => "skip",
            };
            let _ = writeln!(
                o,
                "<p class=\"capability\" data-capability=\"{}\" data-level=\"{}\" data-status=\"{css}\">Capability <code>{}</code> ({}): <span class=\"{css}\">{:?}</span> — {}</p>",
                h(&c.id),
                c.level.as_str(),
                h(&c.id),
                c.level.as_str(),
                c.status,
                h(&c.title)
            );
            if let Some(why) = &c.reason {
                let _ = writeln!(o, "<p class=\"reason\">{}</p>", h(why));
            }
            if c.status == CapStatus::Fail && c.reason.is_none() && !c.fix.is_empty() {
                let _ = writeln!(o, "<p class=\"fix\"><b>To fix:</b> {}</p>", h(&c.fix));
            }
            let _ = writeln!(
                o,
                "<table><tr><th>check</th><th>outcome</th><th>time (s)</th><th>evidence</th></tr>"
            );
            for ch in &c.checks {
                let na = c.status == CapStatus::NotApplicable;
                let outcome = if na {
                    "not-applicable"
                } else if ch.flagged.is_some() {
                    "flagged"
                } else {
                    ch.outcome.as_str()
                };
                let css = match (ch.flagged.is_some(), ch.outcome) {
                    (true, _) | (false, Verdict::Skip) => "skip",
                    (false, Verdict::Pass) => "pass",
                    (false, Verdict::Warn) => "warn",
                    (false, Verdict::Fail) => "fail",
                    (false, Verdict::NotConfigured | Verdict::NotApplicable) => "skip",
                };
                let flag = ch
                    .flagged
                    .as_ref()
                    .map(|w| {
                        let what = if na { "" } else { "flagged: " };
                        format!("<br><i>{what}{}</i>", h(w))
                    })
                    .unwrap_or_default();
                let flag = match &ch.hint {
                    Some(hint) => format!(
                        "{flag}<br><span class=\"fix\"><b>To fix:</b> {}</span>",
                        h(hint)
                    ),
                    None => flag,
                };
                let _ = writeln!(
                    o,
                    "<tr class=\"check\" data-probe=\"{}\" data-check=\"{}\" data-outcome=\"{outcome}\"><td><code>{}</code> {} {}</td><td class=\"{css}\">{} {}</td><td>{:.3}</td><td>{}{flag}</td></tr>",
                    h(&ch.probe),
                    h(&ch.check),
                    h(&ch.probe),
                    h(&ch.check),
                    h(&ch.name),
                    outcome,
                    ch.status,
                    ch.duration.as_secs_f64(),
                    h(&ch.message)
                );
            }
            let _ = writeln!(o, "</table>");
        }
    }
    let _ = writeln!(o, "<h3>Evidence: what was called, what came back</h3>");
    for p in &s.run.probes {
        probe(o, p);
    }
    if !s.run.externals.is_empty() {
        let _ = writeln!(o, "<h4>External plugins</h4><table><tr><th>command</th><th>status</th><th>time (s)</th><th>output</th></tr>");
        for e in &s.run.externals {
            let _ = writeln!(
                o,
                "<tr class=\"external\" data-status=\"{}\"><td><code>{}</code></td><td>{} (exit {:?})</td><td>{:.3}</td><td>{}<br>{}</td></tr>",
                e.status,
                h(&e.command.join(" ")),
                e.status,
                e.exit_code,
                e.duration.as_secs_f64(),
                h(&e.summary),
                h(&e.long.join("\n")).replace('\n', "<br>")
            );
        }
        let _ = writeln!(o, "</table>");
    }
    let _ = writeln!(o, "</section>");
}

fn probe(o: &mut String, p: &ProbeRun) {
    let r = &p.result;
    let _ = writeln!(
        o,
        "<h4>{} — {} in <span class=\"probe-duration\" data-probe=\"{}\">{:.3}</span>s, {} HTTP request(s)</h4><p><code>{}</code></p><p>{}</p>",
        h(&p.probe),
        r.status,
        h(&p.probe),
        r.duration.as_secs_f64(),
        r.http_requests,
        h(&p.argv.join(" ")),
        h(&r.summary)
    );
    o.push_str(&timing_svg(p));
    if !r.resources.is_empty() {
        let _ = writeln!(o, "<ul>");
        for x in &r.resources {
            let _ = writeln!(
                o,
                "<li>created {} <code>{}</code>: {}</li>",
                h(x.kind.as_str()),
                h(&x.id),
                h(&format!("{:?}", x.cleanup))
            );
        }
        let _ = writeln!(o, "</ul>");
    }
    if !r.details.is_empty() {
        let _ = writeln!(
            o,
            "<details><summary>trace: {} line(s), every HTTP call with its answer and time</summary><pre>{}</pre></details>",
            r.details.len(),
            h(&r.details.join("\n"))
        );
    }
}

/// A bar per stage, laid end to end on the probe's timeline.
pub fn timing_svg(p: &ProbeRun) -> String {
    let r = &p.result;
    let steps = &r.steps;
    let total = r
        .duration
        .as_secs_f64()
        .max(steps.iter().map(|s| s.duration.as_secs_f64()).sum())
        .max(0.001);
    let (w, label_w, row) = (720.0, 220.0, 18.0);
    let height = row * (steps.len() as f64 + 1.0) + 6.0;
    let mut o = format!(
        "<svg class=\"timing\" data-probe=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" role=\"img\"><title>stage timings of {}</title>",
        h(&p.probe),
        h(&p.probe)
    );
    let scale = (w - label_w - 60.0) / total;
    let mut x = 0.0;
    for (i, s) in steps.iter().enumerate() {
        let d = s.duration.as_secs_f64();
        let y = row * i as f64 + 4.0;
        let colour = match s.status {
            probes::model::Status::Ok => "#2da44e",
            probes::model::Status::Warning => "#bf8700",
            probes::model::Status::Critical => "#cf222e",
            probes::model::Status::Unknown => "#8c959f",
        };
        let _ = write!(
            o,
            "<text x=\"0\" y=\"{:.1}\">{} {}</text><rect class=\"stage\" data-check=\"{}\" data-seconds=\"{d:.3}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} {}: {:.3}s</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{d:.2}s</text>",
            y + 12.0,
            h(&s.check),
            h(&probes::text::one_line(&s.name, 24)),
            h(&s.check),
            label_w + x * scale,
            (d * scale).max(1.0),
            row - 4.0,
            h(&s.check),
            h(&s.status.to_string()),
            d,
            label_w + (x + d) * scale + 4.0,
            y + 12.0
        );
        x += d;
    }
    let y = row * steps.len() as f64 + 4.0;
    let _ = writeln!(
        o,
        "<text x=\"0\" y=\"{:.1}\">total</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d0d7de\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.2}s</text></svg>",
        y + 12.0,
        r.duration.as_secs_f64() * scale,
        row - 4.0,
        label_w + r.duration.as_secs_f64() * scale + 4.0,
        y + 12.0,
        r.duration.as_secs_f64()
    );
    o
}
