//! Why a step (and so a probe) failed.

use crate::model::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// The site answered wrongly or not at all.
    Site,
    /// The monitor's own trouble: bad arguments, unusable credential.
    Monitor,
    /// A request ran out of the overall deadline.
    Timeout,
}

#[derive(Clone, Debug)]
pub struct Fail {
    pub status: Status,
    pub kind: FailKind,
    pub message: String,
    /// Set once a step has recorded this failure, so outer steps do not repeat it.
    pub recorded: bool,
}

impl Fail {
    pub fn critical(message: impl Into<String>) -> Fail {
        Fail {
            status: Status::Critical,
            kind: FailKind::Site,
            message: message.into(),
            recorded: false,
        }
    }

    pub fn warning(message: impl Into<String>) -> Fail {
        Fail {
            status: Status::Warning,
            ..Fail::critical(message)
        }
    }

    /// The monitor's own problem (bad arguments, expired monitor credential).
    pub fn unknown(message: impl Into<String>) -> Fail {
        Fail {
            status: Status::Unknown,
            kind: FailKind::Monitor,
            ..Fail::critical(message)
        }
    }

    pub fn timeout(message: impl Into<String>) -> Fail {
        Fail {
            status: Status::Unknown,
            kind: FailKind::Timeout,
            ..Fail::critical(message)
        }
    }

    pub fn with_status(mut self, status: Status) -> Fail {
        self.status = status;
        self
    }

    /// Prefix the message with context, e.g. the endpoint tried.
    pub fn context(mut self, what: impl std::fmt::Display) -> Fail {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

pub type Result<T, E = Fail> = std::result::Result<T, E>;
