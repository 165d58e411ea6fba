//! What a probe works with: the HTTP client bound to the work deadline, the
//! thresholds, and the recorder behind `step`, `note`, `perf` and `track`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::http::Http;
use crate::model::{CheckId, Cleanup, Perf, Range, Resource, ResourceKind, Status, Step};
use crate::record::{Recorder, ResourceId};

/// A step's successful outcome: a value, a status (OK or WARNING) and a message.
pub struct Done<T> {
    pub value: T,
    pub status: Status,
    pub message: String,
}

impl<T> Done<T> {
    pub fn ok(value: T, message: impl Into<String>) -> Done<T> {
        Done::with(Status::Ok, value, message)
    }

    pub fn warn(value: T, message: impl Into<String>) -> Done<T> {
        Done::with(Status::Warning, value, message)
    }

    pub fn with(status: Status, value: T, message: impl Into<String>) -> Done<T> {
        Done {
            value,
            status,
            message: message.into(),
        }
    }
}

/// Settings of one run that a probe reads.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub verbosity: u8,
    /// `-w`/`-c` for the probe's main measured value.
    pub warning: Option<Range>,
    pub critical: Option<Range>,
}

/// The probe's view of its run. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    http: Http,
    settings: Settings,
    rec: Arc<Recorder>,
}

impl Ctx {
    pub fn new(http: Http, rec: Arc<Recorder>, settings: Settings) -> Ctx {
        Ctx {
            http,
            settings,
            rec,
        }
    }

    /// The client, bound to the work deadline.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> Vec<Step> {
        self.rec.steps()
    }

    pub fn deadline(&self) -> Deadline {
        self.http.deadline()
    }

    pub fn verbosity(&self) -> u8 {
        self.settings.verbosity
    }

    pub fn warning(&self) -> Option<Range> {
        self.settings.warning
    }

    pub fn critical(&self) -> Option<Range> {
        self.settings.critical
    }

    /// Run one step: time it, record its outcome, name it if it fails.
    /// The step's future is boxed: a probe body holds the step running now,
    /// not room for its largest (async fns inline what they await).
    pub fn step<'s, T, F>(
        &'s self,
        check: CheckId,
        fut: F,
    ) -> impl Future<Output = Result<T, Fail>> + use<'s, T, F>
    where
        F: Future<Output = Result<Done<T>, Fail>>,
    {
        let fut = Box::pin(fut);
        async move {
            self.rec.begin(check);
            let t0 = Instant::now();
            let out = fut.await;
            let duration = t0.elapsed();
            match out {
                Ok(done) => {
                    self.rec
                        .push_step(step(check, done.status, done.message, duration));
                    Ok(done.value)
                }
                Err(f) => Err(self.record_fail(check, f, duration)),
            }
        }
    }

    /// Run part of `check` ahead of its step: while it runs, a run that
    /// times out names `check`; a failure is `check`'s result, a success
    /// records nothing (the step itself comes later). Boxed as `step` is.
    pub fn ahead<'s, T, F>(
        &'s self,
        check: CheckId,
        fut: F,
    ) -> impl Future<Output = Result<T, Fail>> + use<'s, T, F>
    where
        F: Future<Output = Result<T, Fail>>,
    {
        let fut = Box::pin(fut);
        async move {
            self.rec.begin(check);
            let t0 = Instant::now();
            match fut.await {
                Ok(v) => {
                    self.rec.end(check);
                    Ok(v)
                }
                Err(f) => Err(self.record_fail(check, f, t0.elapsed())),
            }
        }
    }

    /// Record a failure decided outside a step as `check`'s result (once).
    pub fn fail_at(&self, check: CheckId, f: Fail) -> Fail {
        self.record_fail(check, f, Duration::ZERO)
    }

    fn record_fail(&self, check: CheckId, mut f: Fail, duration: Duration) -> Fail {
        if !f.recorded {
            let mut s = step(check, f.status, f.message.clone(), duration);
            s.http = f.http.clone();
            s.transport = f.transport;
            s.cut_by_deadline = f.cut_by_deadline;
            self.rec.push_step(s);
            f.message = format!("{} {}: {}", check.id, check.name, f.message);
            f.recorded = true;
        }
        f
    }

    /// `-w`/`-c` applied to the probe's main measurement.
    pub fn threshold_status(&self, value: f64) -> Status {
        crate::model::verdict(value, self.settings.warning, self.settings.critical)
    }

    /// Record a check that needs no waiting (a verdict on data already fetched).
    pub fn note(&self, check: CheckId, status: Status, message: impl Into<String>) {
        self.rec
            .push_step(step(check, status, message.into(), Duration::ZERO));
    }

    pub fn perf(&self, p: Perf) {
        self.rec.push_perf(p);
    }

    pub fn detail(&self, line: impl Into<String>) {
        self.rec.detail(line);
    }

    /// Register a created resource and how to delete it. `delete` gets
    /// `via` re-bound to the cleanup deadline and the id; the runner calls it
    /// on every exit path (end, deadline, signal, panic) unless the probe
    /// settles the resource first.
    pub fn track<B, F, Fut>(
        &self,
        kind: ResourceKind,
        id: &str,
        name: Option<&str>,
        via: &B,
        delete: F,
    ) -> ResourceId
    where
        B: WithDeadline,
        F: FnOnce(B, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Fail>> + Send + 'static,
    {
        let b = via.clone();
        let rid = id.to_string();
        self.rec.track(
            untracked(kind, id, name),
            Box::new(move |d| Box::pin(delete(b.with_deadline(d), rid))),
        )
    }

    /// As [`Ctx::track`], for a delete that may be sent again: the cleanup
    /// tries it again while it fails in a way a retry may mend ([`retried`]).
    pub fn track_retried<B, F, Fut>(
        &self,
        kind: ResourceKind,
        id: &str,
        name: Option<&str>,
        via: &B,
        delete: F,
    ) -> ResourceId
    where
        B: WithDeadline,
        F: Fn(B, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Fail>> + Send + 'static,
    {
        let b = via.clone();
        let rid = id.to_string();
        self.rec.track(
            untracked(kind, id, name),
            Box::new(move |d| {
                Box::pin(retried(d, move |d| delete(b.with_deadline(d), rid.clone())))
            }),
        )
    }

    /// The probe deleted the resource itself (or failed to, with a reason).
    pub fn settle(&self, id: ResourceId, outcome: Cleanup) {
        self.rec.settle(id, outcome);
    }

    /// Settle from the delete's own result (keeps its transport class).
    pub fn settle_result<T>(&self, id: ResourceId, deleted: &Result<T, Fail>) {
        self.rec.settle_result(id, deleted);
    }

    /// Drop a placeholder (e.g. "whatever this create request made") once the
    /// real resource is tracked: no cleanup, not reported.
    pub fn forget(&self, id: ResourceId) {
        self.rec.forget(id);
    }
}

/// A cleanup delete, tried again while it fails in a way a retry may mend
/// (the connection dropped or reset, no answer, 429, 502-504), at most
/// three times and never past `deadline`: a site that closed an idle
/// keep-alive connection, or answered one 503, must not keep the probe's
/// server. A refusal of another kind is final.
async fn retried<F, Fut>(deadline: Deadline, attempt: F) -> Result<(), Fail>
where
    F: Fn(Deadline) -> Fut,
    Fut: Future<Output = Result<(), Fail>>,
{
    let mut pause = Duration::from_millis(250);
    let mut last = attempt(deadline).await;
    for _ in 0..2 {
        let again = match &last {
            Ok(()) => false,
            Err(f) => worth_retrying(f),
        };
        if !again || deadline.remaining() < pause + Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        last = attempt(deadline).await;
    }
    last
}

fn worth_retrying(f: &Fail) -> bool {
    use crate::model::Transport;
    let transport = matches!(
        f.transport,
        Some(Transport::Reset | Transport::Closed | Transport::Broken | Transport::Connect)
    );
    let status = f
        .http
        .as_ref()
        .and_then(|h| h.status)
        .is_some_and(|s| matches!(s, 429 | 502 | 503 | 504));
    transport || status
}

/// A resource as made, before any cleanup: leaked until settled.
fn untracked(kind: ResourceKind, id: &str, name: Option<&str>) -> Resource {
    Resource {
        kind,
        id: id.into(),
        name: name.map(Into::into),
        cleanup: Cleanup::Leaked,
        transport: None,
    }
}

fn step(check: CheckId, status: Status, message: String, duration: Duration) -> Step {
    Step {
        check: check.id.into(),
        requirement: check.requirement.into(),
        name: check.name.into(),
        status,
        message,
        duration,
        http: None,
        transport: None,
        cut_by_deadline: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HttpFacts, Transport};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn answered(status: u16) -> Fail {
        Fail::critical(format!("HTTP {status}")).with_http(HttpFacts {
            status: Some(status),
            method: "DELETE".into(),
            url: "http://127.0.0.1/servers/1".into(),
        })
    }

    /// Tries until `ok_at` (1-based), each try failing with `fail` before.
    async fn tries(fail: fn() -> Fail, ok_at: u32, left: Duration) -> (Result<(), Fail>, u32) {
        let n = AtomicU32::new(0);
        let r = retried(Deadline::after(left), |_| {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if i >= ok_at {
                    Ok(())
                } else {
                    Err(fail())
                }
            }
        })
        .await;
        (r, n.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_cleanup_delete_is_sent_again_after_a_failure_a_retry_may_mend() {
        let closed = || Fail::critical("connection closed").with_transport(Transport::Closed);
        let long = Duration::from_secs(30);
        let (r, n) = tries(closed, 2, long).await;
        assert!(r.is_ok() && n == 2, "{r:?} after {n}");
        let (r, n) = tries(|| answered(503), 3, long).await;
        assert!(r.is_ok() && n == 3, "{r:?} after {n}");
        // Three tries at most.
        let (r, n) = tries(|| answered(429), 9, long).await;
        assert!(r.is_err() && n == 3, "{r:?} after {n}");
        // A refusal of another kind is final.
        let (r, n) = tries(|| answered(403), 9, long).await;
        assert!(r.is_err() && n == 1, "{r:?} after {n}");
        // No time left for another try: the first answer stands.
        let (r, n) = tries(closed, 2, Duration::from_millis(500)).await;
        assert!(r.is_err() && n == 1, "{r:?} after {n}");
    }
}
