//! The recorder: what a probe did, collected as it happens (steps, perfdata,
//! created resources, details), so a deadline or signal in the middle still
//! yields everything done so far. Stage events are pushed to an optional
//! sink (a harness's progress display) as they happen.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::fail::Fail;
use crate::model::{CheckId, Cleanup, Perf, Resource, Step};

/// Deletes a created resource and waits until it is gone, within the deadline given.
pub type CleanupFn =
    Box<dyn FnOnce(Deadline) -> Pin<Box<dyn Future<Output = Result<(), Fail>> + Send>> + Send>;

/// What a running probe reports as it goes.
#[derive(Clone, Debug)]
pub enum StageEvent {
    Started(CheckId),
    Finished(Step),
}

/// Receives stage events; called on the probe's task, so keep it quick.
pub type StageSink = Arc<dyn Fn(StageEvent) + Send + Sync>;

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

/// Handle to a tracked resource.
#[derive(Clone, Copy, Debug)]
pub struct ResourceId(usize);

/// A cleanup still owed when the probe body has ended.
pub struct Owed {
    pub id: ResourceId,
    /// `server 1234`, for messages.
    pub label: String,
    pub cleanup: CleanupFn,
}

/// Collects what a probe does. Shared by the probe task and the runner.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<State>,
    trace: bool,
    sink: Option<StageSink>,
}

impl Recorder {
    pub fn new(trace: bool, sink: Option<StageSink>) -> Arc<Recorder> {
        Arc::new(Recorder {
            state: Mutex::default(),
            trace,
            sink,
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

    pub fn begin(&self, check: CheckId) {
        self.lock().stage = Some((check, Instant::now()));
        if let Some(sink) = &self.sink {
            sink(StageEvent::Started(check));
        }
    }

    pub fn push_step(&self, step: Step) {
        {
            let mut st = self.lock();
            st.stage = None;
            st.steps.push(step.clone());
        }
        if let Some(sink) = &self.sink {
            sink(StageEvent::Finished(step));
        }
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

    pub fn track(&self, resource: Resource, cleanup: CleanupFn) -> ResourceId {
        let mut st = self.lock();
        st.tracked.push(Tracked {
            resource,
            cleanup: Some(cleanup),
            settled: false,
            hidden: false,
        });
        ResourceId(st.tracked.len() - 1)
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
    pub fn take_owed(&self) -> Vec<Owed> {
        let mut st = self.lock();
        st.tracked
            .iter_mut()
            .enumerate()
            .filter(|(_, t)| !t.settled)
            .filter_map(|(i, t)| {
                let label = format!("{} {}", t.resource.kind, t.resource.id);
                t.cleanup.take().map(|cleanup| Owed {
                    id: ResourceId(i),
                    label,
                    cleanup,
                })
            })
            .collect()
    }

    pub fn settle(&self, id: ResourceId, outcome: Cleanup) {
        if let Some(t) = self.lock().tracked.get_mut(id.0) {
            t.resource.cleanup = outcome;
            t.settled = true;
            t.cleanup = None;
        }
    }

    /// Drop a placeholder once the real resource is tracked: no cleanup, not reported.
    pub fn forget(&self, id: ResourceId) {
        if let Some(t) = self.lock().tracked.get_mut(id.0) {
            t.settled = true;
            t.hidden = true;
            t.cleanup = None;
        }
    }
}
