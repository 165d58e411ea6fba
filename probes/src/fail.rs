//! Why a step (and so a probe) failed: a verdict with its facts.

use crate::model::{HttpFacts, Status, Transport};

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
    /// The HTTP answer behind the failure, if there was one.
    pub http: Option<HttpFacts>,
    /// The transport failure behind it, if there was one.
    pub transport: Option<Transport>,
    /// Set once a step has recorded this failure, so outer steps do not repeat it.
    pub recorded: bool,
    /// A wait that ended here was cut short by what `-t` left, not by its
    /// own limit (`--vm-timeout` and the like): the site had not got there
    /// yet, and a longer `-t` might have seen it do so.
    pub cut_by_deadline: bool,
}

impl Fail {
    pub fn critical(message: impl Into<String>) -> Fail {
        Fail {
            status: Status::Critical,
            kind: FailKind::Site,
            message: message.into(),
            http: None,
            transport: None,
            recorded: false,
            cut_by_deadline: false,
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
            transport: Some(Transport::Timeout),
            ..Fail::critical(message)
        }
    }

    /// Mark a wait's failure as cut short by `-t` when `cut` (the
    /// `cut_by_deadline` of the poll module's `Waited::TimedOut`).
    pub fn cut_by_deadline(mut self, cut: bool) -> Fail {
        self.cut_by_deadline = cut;
        self
    }

    pub fn with_status(mut self, status: Status) -> Fail {
        self.status = status;
        self
    }

    pub fn with_http(mut self, facts: HttpFacts) -> Fail {
        self.http = Some(facts);
        self
    }

    pub fn with_transport(mut self, t: Transport) -> Fail {
        self.transport = Some(t);
        self
    }

    /// The HTTP status of the answer that failed, if one did.
    pub fn http_status(&self) -> Option<u16> {
        self.http.as_ref().and_then(|h| h.status)
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

impl std::error::Error for Fail {}

pub type Result<T, E = Fail> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_travel_with_the_verdict() {
        let f = Fail::critical("HTTP 403 Forbidden").with_http(HttpFacts {
            status: Some(403),
            method: "PUT".into(),
            url: "https://image.example/v2/images/x/file".into(),
        });
        assert_eq!(f.http_status(), Some(403));
        let e: &dyn std::error::Error = &f;
        assert_eq!(e.to_string(), "HTTP 403 Forbidden");
        assert_eq!(Fail::timeout("t").transport, Some(Transport::Timeout));
    }
}
