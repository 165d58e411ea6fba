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
    /// Every site's checks by how they ended: the sites' tallies summed.
    #[serde(flatten)]
    pub checks: crate::grade::Tally,
}

pub fn totals(r: &Report) -> Totals {
    let mut checks = crate::grade::Tally::default();
    for s in &r.sites {
        checks.add(&s.grade.tally);
    }
    Totals {
        sites: r.sites.len(),
        sites_passed: r.sites.iter().filter(|s| s.grade.passed).count(),
        checks,
    }
}

pub fn render(r: &Report) -> String {
    doc(r, r.sites.iter().collect())
}

/// The document without its sites, ending in an empty `"sites": []`:
/// [`splice`] puts the sites' [`site_chunk`]s in.
pub fn head(r: &Report) -> String {
    doc(r, vec![])
}

/// One site as an element of the document's `sites` array, indented as in
/// the whole document.
pub fn site_chunk(s: &SiteReport) -> String {
    let text = serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("    ");
        out.push_str(line);
    }
    out
}

/// Where the site chunks go in [`head`]'s text: what comes before them and
/// what after; `None` if the head is not the expected shape.
pub fn splice(head: &str) -> Option<(&str, &'static str)> {
    let before = head.strip_suffix("\"sites\": []\n}\n")?;
    Some((before, "\n  ]\n}\n"))
}

/// The text that opens the sites array after [`splice`]'s first part.
pub const OPEN_SITES: &str = "\"sites\": [\n";

fn doc(r: &Report, sites: Vec<&SiteReport>) -> String {
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
        sites,
    };
    let text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"schema\":\"{SCHEMA}\",\"error\":\"{e}\"}}"));
    text + "\n"
}
