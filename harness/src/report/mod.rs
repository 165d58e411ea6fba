//! Every report is rendered from one [`Report`]: the runs and their grades.
//! [`Format`] is the one list of formats; secrets are scrubbed once, where a
//! rendering leaves the process ([`Report::output`], [`Report::write_all`]).

pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod metrics;
pub mod nagios;
pub mod overview;
pub mod spool;
pub mod text;

use std::path::Path;
use std::time::Duration;

use probes::model::Status;
use serde::{Deserialize, Serialize};

use crate::grade::{self, SiteGrade};
use crate::guideline::Guideline;
use crate::model::SiteRun;

/// The report formats, each with its file name in a report directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Nagios,
    Json,
    Junit,
    Openmetrics,
    Markdown,
    Html,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Nagios,
        Format::Json,
        Format::Junit,
        Format::Openmetrics,
        Format::Markdown,
        Format::Html,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Nagios => "fedprobe.nagios.txt",
            Format::Json => "fedprobe.json",
            Format::Junit => "fedprobe.junit.xml",
            Format::Openmetrics => "fedprobe.prom",
            Format::Markdown => "fedprobe-report.md",
            Format::Html => "fedprobe-report.html",
        }
    }

    /// The rendering, not yet scrubbed: use [`Report::output`] to print it.
    fn render(self, r: &Report) -> String {
        match self {
            Format::Nagios => nagios::render(r),
            Format::Json => json::render(r),
            Format::Junit => junit::render(r),
            Format::Openmetrics => metrics::render(r),
            Format::Markdown => markdown::render(r),
            Format::Html => html::render(r),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteReport {
    pub run: SiteRun,
    pub grade: SiteGrade,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub guideline_id: String,
    pub guideline_title: String,
    /// (id, title) of the guideline's requirements, in order.
    pub requirements: Vec<(String, String)>,
    pub started_at: f64,
    pub duration: Duration,
    pub sites: Vec<SiteReport>,
    /// A previous JSON report (`--compare`): new failures, fixed, timing.
    pub previous: Option<serde_json::Value>,
}

impl Report {
    /// Grade each run against its guideline (`guidelines` by id).
    pub fn build(
        guidelines: &[Guideline],
        runs: Vec<SiteRun>,
        started_at: f64,
        duration: Duration,
    ) -> Report {
        let mut r = Report::empty(guidelines, started_at);
        r.duration = duration;
        r.sites = runs
            .into_iter()
            .map(|run| grade_site(guidelines, run))
            .collect();
        r
    }

    /// A report with no site yet, titled by the first guideline.
    pub fn empty(guidelines: &[Guideline], started_at: f64) -> Report {
        let first = guidelines.first();
        Report {
            guideline_id: first.map(|g| g.id.clone()).unwrap_or_default(),
            guideline_title: first.map(|g| g.title.clone()).unwrap_or_default(),
            requirements: first
                .map(|g| {
                    g.requirements
                        .iter()
                        .map(|r| (r.id.clone(), r.title.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            started_at,
            duration: Duration::ZERO,
            sites: vec![],
            previous: None,
        }
    }

    /// Worst site status (OK for no site).
    pub fn status(&self) -> Status {
        Status::worst(self.sites.iter().map(|s| s.grade.status))
    }

    /// Sites, worst status first, then by name.
    pub fn sites_worst_first(&self) -> Vec<&SiteReport> {
        let mut v: Vec<&SiteReport> = self.sites.iter().collect();
        v.sort_by(|a, b| {
            b.grade
                .status
                .cmp(&a.grade.status)
                .then(a.grade.passed.cmp(&b.grade.passed))
                .then(a.run.site.cmp(&b.run.site))
        });
        v
    }

    /// The report in `format`, secrets scrubbed: what may leave the process.
    pub fn output(&self, format: Format) -> String {
        probes::secret::scrub(&format.render(self))
    }

    /// Write every format into `dir`.
    pub fn write_all(&self, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut out = Vec::new();
        for f in Format::ALL {
            let p = dir.join(f.file_name());
            std::fs::write(&p, self.output(f))?;
            out.push(p);
        }
        Ok(out)
    }
}

/// Grade one site's run against its guideline (by id; else the first).
pub fn grade_site(guidelines: &[Guideline], run: SiteRun) -> SiteReport {
    let g = guidelines
        .iter()
        .find(|g| g.id == run.guideline)
        .or(guidelines.first());
    let grade = match g {
        Some(g) => grade::grade(g, &run),
        None => grade::grade(&Guideline::embedded(), &run),
    };
    SiteReport { run, grade }
}

impl SiteReport {
    /// What the report's first screen and totals need once the site's own
    /// parts are spooled: the run without its probes' and plugins' results,
    /// the grade without its capabilities ([`SiteGrade::slim_copy`]). No
    /// text a site sent is left in it, so the site's secrets can be
    /// forgotten ([`probes::secret::Scope`]).
    pub fn slim(mut self) -> SiteReport {
        self.run.probes = Vec::new();
        self.run.externals = Vec::new();
        self.grade = self.grade.slim_copy();
        self
    }

    /// [`SiteReport::slim`] of a site still to be rendered.
    pub fn slim_copy(&self) -> SiteReport {
        let run = SiteRun {
            site: self.run.site.clone(),
            guideline: self.run.guideline.clone(),
            cloud: self.run.cloud,
            started_at: self.run.started_at,
            duration: self.run.duration,
            probes: Vec::new(),
            externals: Vec::new(),
        };
        SiteReport {
            run,
            grade: self.grade.slim_copy(),
        }
    }
}

/// A requirement's verdict for one site, from its capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqStatus {
    Pass,
    /// Only advisory capabilities fail.
    Advisory,
    Fail,
    Untested,
    /// Every capability of the requirement is not for this site's API.
    NotApplicable,
}

impl ReqStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReqStatus::Pass => "PASS",
            ReqStatus::Advisory => "ADVISORY FAIL (not required)",
            ReqStatus::Fail => "FAIL",
            ReqStatus::Untested => "UNTESTED",
            ReqStatus::NotApplicable => "NOT APPLICABLE",
        }
    }

    pub fn css(self) -> &'static str {
        match self {
            ReqStatus::Pass => "pass",
            ReqStatus::Advisory => "warn",
            ReqStatus::Fail => "fail",
            ReqStatus::Untested => "skip",
            ReqStatus::NotApplicable => "skip",
        }
    }
}

pub fn requirement_status(g: &SiteGrade, req: &str) -> ReqStatus {
    use crate::grade::CapStatus;
    use crate::guideline::Level;
    let mine = || g.capabilities.iter().filter(|c| c.requirement == req);
    let caps: Vec<_> = mine()
        .filter(|c| !matches!(c.status, CapStatus::Untested | CapStatus::NotApplicable))
        .collect();
    if caps.is_empty() && mine().any(|c| c.status == CapStatus::NotApplicable) {
        ReqStatus::NotApplicable
    } else if caps.is_empty() {
        ReqStatus::Untested
    } else if caps
        .iter()
        .any(|c| c.status == CapStatus::Fail && c.level == Level::Required)
    {
        ReqStatus::Fail
    } else if caps.iter().any(|c| c.status == CapStatus::Fail) {
        ReqStatus::Advisory
    } else {
        ReqStatus::Pass
    }
}

/// Seconds with millisecond precision, as text.
pub fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}
