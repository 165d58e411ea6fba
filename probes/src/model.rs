//! The one result model every probe returns and every renderer reads.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::nagios::perf::Perf;

/// Check status. The derived order is "worst wins" (monitoring-plugins'
/// `max_state_alt`): OK < WARNING < UNKNOWN < CRITICAL.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Unknown,
    Critical,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn from_exit_code(code: i32) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Critical,
            _ => Status::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// The worst of several statuses; OK for none.
    pub fn worst<I: IntoIterator<Item = Status>>(it: I) -> Status {
        it.into_iter().max().unwrap_or(Status::Ok)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable check id (`VM-03`) and the guideline requirement it evidences.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CheckId {
    pub id: &'static str,
    pub requirement: &'static str,
    pub name: &'static str,
}

/// One step a probe took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub check: String,
    pub requirement: String,
    pub name: String,
    pub status: Status,
    pub message: String,
    #[serde(with = "secs")]
    pub duration: Duration,
}

/// What happened to a resource the probe created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    /// Deleted and confirmed gone.
    Deleted,
    /// Deletion was tried and failed; the message says why.
    Failed(String),
    /// Not deleted (no time or no way to try).
    Leaked,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// `server`, `image`, ...
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub cleanup: Cleanup,
}

/// Everything a probe run produced. Rendered as Nagios text, JSON, JUnit...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Probe binary name, e.g. `check_vm_lifecycle`.
    pub probe: String,
    /// Service label for the Nagios first line, e.g. `VM_LIFECYCLE`.
    pub label: String,
    pub status: Status,
    pub summary: String,
    pub steps: Vec<Step>,
    pub perfdata: Vec<Perf>,
    pub resources: Vec<Resource>,
    /// Unix time (seconds) when the run started.
    pub started_at: f64,
    #[serde(with = "secs")]
    pub duration: Duration,
    /// HTTP requests the probe made (cleanup included).
    #[serde(default)]
    pub http_requests: u64,
    /// Free-form detail lines shown at `-v` >= 2 (configuration, trace).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub details: Vec<String>,
}

impl ProbeResult {
    /// Status recomputed from the steps and cleanup outcomes, never better than `status`.
    pub fn worst_status(&self) -> Status {
        Status::worst(
            self.steps
                .iter()
                .map(|s| s.status)
                .chain(std::iter::once(self.status)),
        )
    }
}

/// Durations as fractional seconds in JSON.
pub mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_order() {
        use Status::*;
        assert_eq!(Status::worst([Ok, Warning]), Warning);
        assert_eq!(Status::worst([Ok, Unknown, Warning]), Unknown);
        assert_eq!(Status::worst([Unknown, Critical, Warning]), Critical);
        assert_eq!(Status::worst([]), Ok);
        assert_eq!(
            [Ok, Warning, Critical, Unknown].map(Status::exit_code),
            [0, 1, 2, 3]
        );
        for s in [Ok, Warning, Critical, Unknown] {
            assert_eq!(Status::from_exit_code(s.exit_code() as i32), s);
        }
        assert_eq!(Status::from_exit_code(127), Unknown);
    }
}
