//! What one harness run produced, before grading: per site, the probes'
//! results and the external plugins' outputs.

use std::time::Duration;

use probes::auth::cloud::CloudKind;
use probes::model::Perf;
use probes::model::{secs, ProbeResult, Status};
use serde::{Deserialize, Serialize};

impl SiteRun {
    /// The site name as reports show it: with its API when that is not
    /// OpenStack (an OpenStack site reads as before).
    pub fn site_label(&self) -> String {
        match self.cloud {
            CloudKind::OpenStack => self.site.clone(),
            other => format!("{} ({})", self.site, other.api()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteRun {
    pub site: String,
    pub guideline: String,
    /// The cloud API the site was checked through.
    #[serde(default)]
    pub cloud: CloudKind,
    /// Unix time (seconds) the first probe started.
    pub started_at: f64,
    #[serde(with = "secs")]
    pub duration: Duration,
    pub probes: Vec<ProbeRun>,
    #[serde(default)]
    pub externals: Vec<ExternalRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRun {
    pub probe: String,
    /// The probe's command line as the harness parsed it (credential paths, never secrets).
    pub argv: Vec<String>,
    pub result: ProbeResult,
}

/// A Nagios-compatible plugin run as a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalRun {
    pub name: String,
    pub command: Vec<String>,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub summary: String,
    pub long: Vec<String>,
    pub perfdata: Vec<Perf>,
    #[serde(with = "secs")]
    pub duration: Duration,
}

impl ExternalRun {
    /// A run with no result from the plugin: UNKNOWN, saying why.
    pub fn unknown(name: &str, command: &[String], summary: String) -> ExternalRun {
        ExternalRun {
            name: name.to_string(),
            command: command.to_vec(),
            status: Status::Unknown,
            exit_code: None,
            summary,
            long: vec![],
            perfdata: vec![],
            duration: Duration::ZERO,
        }
    }
}
