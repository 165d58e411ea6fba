//! The one result model every probe returns and every renderer reads.

use serde::{Deserialize, Serialize};
use std::time::Duration;

mod perf;
mod range;

pub use perf::{Perf, Uom};
pub use range::{plain_number, verdict, Range};

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

/// The check of getting the monitor's own credential (`auth::READ_TOKEN`):
/// a timeout there is the monitor's trouble, UNKNOWN whatever
/// `--timeout-status` says. Named here so the runner, below `auth`, knows it.
pub const MONITOR_CREDENTIAL_CHECK: &str = "AUTH-01";

/// A stable check id (`VM-03`) and the guideline requirement it evidences.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CheckId {
    pub id: &'static str,
    pub requirement: &'static str,
    pub name: &'static str,
}

/// A probe's check ids in one table, each id used once:
///
/// ```
/// probes::check_ids! { "EOSC-IAAS-VM";
///     API = "VM-01", "compute API version";
///     URL = "VM-09", "endpoint URL" @ "EOSC-IAAS-API";
/// }
/// assert_eq!(ALL.len(), 2);
/// assert_eq!(URL.requirement, "EOSC-IAAS-API");
/// ```
#[macro_export]
macro_rules! check_ids {
    ($req:expr; $($(#[$m:meta])* $name:ident = $id:literal, $what:literal $(@ $own:expr)?;)+) => {
        $( $(#[$m])* pub const $name: $crate::model::CheckId = $crate::model::CheckId {
            id: $id,
            requirement: $crate::check_ids!(@req $req $(, $own)?),
            name: $what,
        }; )+
        /// Every check of this table, in order.
        pub const ALL: &[$crate::model::CheckId] = &[$($name),+];
    };
    (@req $req:expr) => { $req };
    (@req $req:expr, $own:expr) => { $own };
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
    /// The HTTP answer that failed this step, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http: Option<HttpFacts>,
    /// The transport failure that failed this step, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transport: Option<Transport>,
    /// The step's wait was cut short by what `-t` left, not by its own
    /// limit (`Fail::cut_by_deadline`, carried here by the step).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub cut_by_deadline: bool,
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

/// What a probe created. Extendable: a new cloud or probe adds its kinds here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResourceKind {
    Server,
    /// A create request whose answer has not come back: cleanup finds what
    /// it made by the run's tag.
    ServerRequest,
    Image,
    /// An image create whose answer has not come back: cleanup finds it by
    /// the run's unique image name.
    ImageRequest,
    Volume,
    VolumeAttachment,
    Container,
    Object,
    FloatingIp,
    Network,
    Port,
    SecurityGroup,
    /// An orchestrator's deployment.
    Infrastructure,
}

impl ResourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceKind::Server => "server",
            ResourceKind::ServerRequest => "server request",
            ResourceKind::Image => "image",
            ResourceKind::ImageRequest => "image request",
            ResourceKind::Volume => "volume",
            ResourceKind::VolumeAttachment => "volume attachment",
            ResourceKind::Container => "container",
            ResourceKind::Object => "object",
            ResourceKind::FloatingIp => "floating IP",
            ResourceKind::Network => "network",
            ResourceKind::Port => "port",
            ResourceKind::SecurityGroup => "security group",
            ResourceKind::Infrastructure => "infrastructure",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub cleanup: Cleanup,
    /// The transport failure that failed its cleanup, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transport: Option<Transport>,
}

/// How a run ended, whatever its status: the fact a harness grades on,
/// never read back from the summary text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The probe body returned, with a verdict.
    #[default]
    Finished,
    /// `-t` ran out (or a request was cut by it); `stage` is the check then running.
    TimedOut {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        stage: Option<String>,
    },
    /// Stopped from outside (a signal, the harness) while `stage` ran.
    Cancelled {
        by: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        stage: Option<String>,
    },
    /// An internal error (a panic) while `stage` ran.
    Panicked {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        stage: Option<String>,
    },
    /// The probe never ran: bad arguments, no HTTP client, unknown probe.
    NotStarted { reason: String },
}

impl Outcome {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Outcome::TimedOut { .. })
    }
}

/// The request behind a failure, when there was one, and its answer's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpFacts {
    /// None when no answer came (see the failure's transport class).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    pub method: String,
    /// Without query string or credentials.
    pub url: String,
}

/// Why a request got no (complete) answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Cut by the deadline.
    Timeout,
    Refused,
    Reset,
    /// Closed before the answer was complete.
    Closed,
    /// Certificate or handshake failure.
    Tls,
    Dns,
    TooManyRedirects,
    /// Broken while reading the body.
    Broken,
    Connect,
    /// A body over the size limit.
    TooLarge,
    Other,
}

/// Everything a probe run produced. Rendered as Nagios text, JSON, JUnit...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Probe binary name, e.g. `check_vm_lifecycle`.
    pub probe: String,
    /// Service label for the Nagios first line, e.g. `VM_LIFECYCLE`.
    pub label: String,
    pub status: Status,
    /// How the run ended (finished, timed out, cancelled, panicked, not started).
    #[serde(default)]
    pub outcome: Outcome,
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
