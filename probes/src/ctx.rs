//! What a probe works with: the HTTP client, the deadline, and the recorder
//! that collects steps, perfdata and created resources as they happen (so a
//! deadline or signal in the middle still yields everything done so far).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::fail::Fail;
use crate::http::Http;
use crate::model::{CheckId, Cleanup, Resource, Status, Step};
use crate::nagios::{Perf, Range};

/// Deletes a created resource and waits until it is gone.
pub type CleanupFn =
    Box<dyn FnOnce(Http) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// A step's successful outcome: a value, a status (OK or WARNING) and a message.
pub struct Done<T> {
    pub value: T,
    pub status: Status,
    pub message: String,
}

impl<T> Done<T> {
    pub fn ok(value: T, message: impl Into<String>) -> Done<T> {
        Done {
            value,
            status: Status::Ok,
            message: message.into(),
        }
    }

    pub fn warn(value: T, message: impl Into<String>) -> Done<T> {
        Done {
            value,
            status: Status::Warning,
            message: message.into(),
        }
    }

    pub fn with(status: Status, value: T, message: impl Into<String>) -> Done<T> {
        Done {
            value,
            status,
            message: message.into(),
        }
    }
}

struct Tracked {
    resource: Resource,
    cleanup: Option<CleanupFn>,
    settled: bool,
    /// A placeholder that turned out not to be needed: not reported.
    hidden: bool,
}

#[derive(Default)]
struct State {
    steps: Vec<Step>,
    perf: Vec<Perf>,
    tracked: Vec<Tracked>,
    stage: Option<(CheckId, Instant)>,
    details: Vec<String>,
    requests: u64,
}

/// Collects what a probe does. Shared by the probe task and the runner.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<State>,
    trace: bool,
}

impl Recorder {
    pub fn new(trace: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            state: Mutex::default(),
            trace,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not hide the result.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn tracing(&self) -> bool {
        self.trace
    }

    pub fn count_request(&self) {
        self.lock().requests += 1;
    }

    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    pub fn detail(&self, line: impl Into<String>) {
        self.lock().details.push(line.into());
    }

    pub fn current_stage(&self) -> Option<(CheckId, Duration)> {
        self.lock().stage.map(|(c, t)| (c, t.elapsed()))
    }

    fn begin(&self, check: CheckId) {
        self.lock().stage = Some((check, Instant::now()));
    }

    pub fn push_step(&self, step: Step) {
        let mut st = self.lock();
        st.stage = None;
        st.steps.push(step);
    }

    pub fn push_perf(&self, p: Perf) {
        let mut st = self.lock();
        st.perf.retain(|q| q.label != p.label);
        st.perf.push(p);
    }

    pub fn steps(&self) -> Vec<Step> {
        self.lock().steps.clone()
    }

    pub fn perfdata(&self) -> Vec<Perf> {
        self.lock().perf.clone()
    }

    pub fn details(&self) -> Vec<String> {
        self.lock().details.clone()
    }

    pub fn resources(&self) -> Vec<Resource> {
        self.lock()
            .tracked
            .iter()
            .filter(|t| !t.hidden)
            .map(|t| t.resource.clone())
            .collect()
    }

    /// Cleanups still owed: resources neither deleted by the probe nor settled.
    pub fn take_pending(&self) -> Vec<(usize, String, CleanupFn)> {
        let mut st = self.lock();
        st.tracked
            .iter_mut()
            .enumerate()
            .filter(|(_, t)| !t.settled)
            .filter_map(|(i, t)| {
                let label = format!("{} {}", t.resource.kind, t.resource.id);
                t.cleanup.take().map(|f| (i, label, f))
            })
            .collect()
    }

    pub fn settle(&self, index: usize, outcome: Cleanup) {
        if let Some(t) = self.lock().tracked.get_mut(index) {
            t.resource.cleanup = outcome;
            t.settled = true;
            t.cleanup = None;
        }
    }
}

/// Handle to a created resource.
#[derive(Clone, Copy, Debug)]
pub struct ResourceId(usize);

/// The probe's view: HTTP client bounded by the deadline, plus the recorder.
#[derive(Clone)]
pub struct Ctx {
    pub http: Http,
    pub verbosity: u8,
    /// `-w`/`-c` for the probe's main measured value.
    pub warning: Option<Range>,
    pub critical: Option<Range>,
    /// `-H`, also the default monitoring host name for tagging resources.
    pub hostname: Option<String>,
    rec: Arc<Recorder>,
}

impl Ctx {
    pub fn new(http: Http, rec: Arc<Recorder>, verbosity: u8) -> Ctx {
        Ctx {
            http,
            verbosity,
            warning: None,
            critical: None,
            hostname: None,
            rec,
        }
    }

    pub fn deadline(&self) -> Deadline {
        self.http.deadline()
    }

    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.rec
    }

    /// Run one step: time it, record its outcome, name it if it fails.
    pub async fn step<T, F>(&self, check: CheckId, fut: F) -> Result<T, Fail>
    where
        F: Future<Output = Result<Done<T>, Fail>>,
    {
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
            Err(mut f) => {
                if !f.recorded {
                    self.rec
                        .push_step(step(check, f.status, f.message.clone(), duration));
                    f.message = format!("{} {}: {}", check.id, check.name, f.message);
                    f.recorded = true;
                }
                Err(f)
            }
        }
    }

    /// `-w`/`-c` applied to the probe's main measurement.
    pub fn threshold_status(&self, value: f64) -> Status {
        crate::nagios::verdict(value, self.warning, self.critical)
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

    /// Register a created resource with the code that deletes it. The runner
    /// calls `cleanup` on every exit path unless the probe settles it first.
    pub fn track(
        &self,
        kind: &str,
        id: &str,
        name: Option<&str>,
        cleanup: CleanupFn,
    ) -> ResourceId {
        let mut st = self.rec.lock();
        st.tracked.push(Tracked {
            resource: Resource {
                kind: kind.into(),
                id: id.into(),
                name: name.map(Into::into),
                cleanup: Cleanup::Leaked,
            },
            cleanup: Some(cleanup),
            settled: false,
            hidden: false,
        });
        ResourceId(st.tracked.len() - 1)
    }

    /// The probe deleted the resource itself (or failed to, with a reason).
    pub fn settle(&self, id: ResourceId, outcome: Cleanup) {
        self.rec.settle(id.0, outcome);
    }

    /// Drop a placeholder (e.g. "whatever this create request made") once the
    /// real resource is tracked: no cleanup, not reported.
    pub fn forget(&self, id: ResourceId) {
        if let Some(t) = self.rec.lock().tracked.get_mut(id.0) {
            t.settled = true;
            t.hidden = true;
            t.cleanup = None;
        }
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
    }
}
