//! The JSON results document: guideline, sites, durations, every check.

use serde::Serialize;

use super::{Report, SiteReport};

/// Bumped on any incompatible change of the document's shape.
pub const SCHEMA: &str = "fedprobe.harness-report/v1";

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    fedprobe_version: &'static str,
    guideline: Guide<'a>,
    status: probes::model::Status,
    started_at: f64,
    duration: f64,
    totals: Totals,
    sites: Vec<&'a SiteReport>,
}

#[derive(Serialize)]
struct Guide<'a> {
    id: &'a str,
    title: &'a str,
}

#[derive(Serialize, Default)]
pub struct Totals {
    pub sites: usize,
    pub sites_passed: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
    pub flagged: usize,
    /// Checks not run because their probe was not configured for them.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_configured: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn totals(r: &Report) -> Totals {
    let mut t = Totals {
        sites: r.sites.len(),
        sites_passed: r.sites.iter().filter(|s| s.grade.passed).count(),
        ..Totals::default()
    };
    for s in &r.sites {
        for c in &s.grade.capabilities {
            for ch in &c.checks {
                if ch.flagged.is_some() {
                    t.flagged += 1;
                    continue;
                }
                match ch.outcome {
                    crate::grade::Verdict::Pass => t.pass += 1,
                    crate::grade::Verdict::Warn => t.warn += 1,
                    crate::grade::Verdict::Fail => t.fail += 1,
                    crate::grade::Verdict::Skip => t.skip += 1,
                    crate::grade::Verdict::NotConfigured => t.not_configured += 1,
                }
            }
        }
    }
    t
}

pub fn render(r: &Report) -> String {
    let doc = Doc {
        schema: SCHEMA,
        fedprobe_version: env!("CARGO_PKG_VERSION"),
        guideline: Guide {
            id: &r.guideline_id,
            title: &r.guideline_title,
        },
        status: r.status(),
        started_at: r.started_at,
        duration: (r.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        totals: totals(r),
        sites: r.sites.iter().collect(),
    };
    let text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"schema\":\"{SCHEMA}\",\"error\":\"{e}\"}}"));
    text + "\n"
}
