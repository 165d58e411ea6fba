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
use crate::model::{CheckId, Cleanup, Perf, Resource, Step, Transport};

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

/// Something a run holds that it lets go of while it waits, and makes again
/// when it next needs it: its HTTP clients, with their idle connections (a
/// harness has thousands of runs waiting on server boots at once).
pub trait Rest: Send + Sync {
    fn rest(&self);
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
    /// Stages begun and not finished (independent lookups run at once),
    /// with their place in the result.
    stages: Vec<(CheckId, Instant, u64)>,
    /// Each step's place: the order its stage began, so steps run at once
    /// are reported in the order the probe wrote them.
    order: Vec<u64>,
    next: u64,
    details: Vec<String>,
    /// The last detail's key and how many times in a row it came
    /// ([`Recorder::detail_repeated`]).
    repeat: Option<(String, u32)>,
    /// Trace lines beyond [`MAX_DETAILS`], counted, not kept.
    dropped: u64,
    requests: u64,
    rests: Vec<std::sync::Weak<dyn Rest>>,
    /// The turn this run goes on with since its last rest ([`crate::poll::Pace`]).
    turn: Option<crate::poll::Turn>,
}

/// The evidence one result keeps is bounded whatever a site sends: trace
/// lines, and the length of each (a harness holds a thousand sites' results).
pub const MAX_DETAILS: usize = 400;
pub const MAX_DETAIL_CHARS: usize = 2000;
/// A step's message (often what the site answered), at most.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Keep `line` (cut to [`MAX_DETAIL_CHARS`]) unless [`MAX_DETAILS`] are
/// kept already; true if kept.
fn push_detail(st: &mut State, mut line: String) -> bool {
    if st.details.len() < MAX_DETAILS {
        cut(&mut line, MAX_DETAIL_CHARS);
        st.details.push(line);
        true
    } else {
        st.dropped += 1;
        false
    }
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
    pace: Option<Arc<dyn crate::poll::Pace>>,
}

impl Recorder {
    pub fn new(trace: bool, sink: Option<StageSink>) -> Arc<Recorder> {
        Recorder::paced(trace, sink, None)
    }

    /// A recorder whose waits go on after a rest at `pace`'s turns.
    pub fn paced(
        trace: bool,
        sink: Option<StageSink>,
        pace: Option<Arc<dyn crate::poll::Pace>>,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            state: Mutex::default(),
            trace,
            sink,
            pace,
        })
    }

    pub(crate) fn pace(&self) -> Option<Arc<dyn crate::poll::Pace>> {
        self.pace.clone()
    }

    /// Keep `turn` until the next rest (or the end of the run).
    pub(crate) fn hold_turn(&self, turn: crate::poll::Turn) {
        self.lock().turn = Some(turn);
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

    /// Register what [`Recorder::rest`] lets go of; kept while it lives.
    pub fn on_rest(&self, r: std::sync::Weak<dyn Rest>) {
        let mut s = self.lock();
        s.rests.retain(|w| w.strong_count() > 0);
        s.rests.push(r);
    }

    /// Let go of what the run can make again (called while it waits).
    pub fn rest(&self) {
        let (live, turn): (Vec<_>, _) = {
            let mut s = self.lock();
            let live = s.rests.iter().filter_map(|w| w.upgrade()).collect();
            (live, s.turn.take())
        };
        drop(turn);
        for r in live {
            r.rest();
        }
    }

    /// A trace line `key` + `tail` that may come many times in a row (a
    /// wait's looks at one URL, answered the same way): one that comes
    /// again right after itself replaces its line, counted, and keeps the
    /// last tail. A ten-minute boot wait is one line of evidence, not 300.
    pub fn detail_repeated(&self, key: String, tail: &str) {
        let mut st = self.lock();
        let again = match &mut st.repeat {
            Some((k, n)) if *k == key => {
                *n += 1;
                Some(*n)
            }
            _ => None,
        };
        match again {
            Some(n) => {
                let mut line = format!("{key}{tail}; {n} times in a row");
                cut(&mut line, MAX_DETAIL_CHARS);
                if let Some(last) = st.details.last_mut() {
                    *last = line;
                }
            }
            // Only a line that was kept can be counted on.
            None => st.repeat = push_detail(&mut st, format!("{key}{tail}")).then_some((key, 1)),
        }
    }

    pub fn detail(&self, line: impl Into<String>) {
        let mut st = self.lock();
        st.repeat = None;
        push_detail(&mut st, line.into());
    }

    /// The stage running longest, when any runs.
    pub fn current_stage(&self) -> Option<(CheckId, Duration)> {
        self.lock()
            .stages
            .first()
            .map(|(c, t, _)| (*c, t.elapsed()))
    }

    pub fn begin(&self, check: CheckId) {
        {
            let mut st = self.lock();
            let seq = st.next;
            st.next += 1;
            st.stages.push((check, Instant::now(), seq));
        }
        if let Some(sink) = &self.sink {
            sink(StageEvent::Started(check));
        }
    }

    /// `check`'s stage ends with no result of its own (a part of it run
    /// ahead, which went well); the last one begun of it, if any runs.
    pub fn end(&self, check: CheckId) {
        let mut st = self.lock();
        if let Some(i) = st.stages.iter().rposition(|(c, _, _)| c.id == check.id) {
            st.stages.remove(i);
        }
    }

    pub fn push_step(&self, mut step: Step) {
        cut(&mut step.message, MAX_MESSAGE_CHARS);
        {
            let mut st = self.lock();
            let seq = match st.stages.iter().position(|(c, _, _)| c.id == step.check) {
                Some(i) => st.stages.remove(i).2,
                None => {
                    st.next += 1;
                    st.next - 1
                }
            };
            st.steps.push(step.clone());
            st.order.push(seq);
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

    /// The steps in the order their stages began.
    pub fn steps(&self) -> Vec<Step> {
        let st = self.lock();
        let mut v: Vec<(u64, &Step)> = st.order.iter().copied().zip(st.steps.iter()).collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, s)| s.clone()).collect()
    }

    pub fn perfdata(&self) -> Vec<Perf> {
        self.lock().perf.clone()
    }

    /// The trace, ending with how many lines were dropped, if any.
    pub fn details(&self) -> Vec<String> {
        let st = self.lock();
        let mut d = st.details.clone();
        if st.dropped > 0 {
            d.push(format!(
                "... {} more trace line(s) dropped (at most {MAX_DETAILS} are kept)",
                st.dropped
            ));
        }
        d
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
        self.settle_with(id, outcome, None);
    }

    /// The outcome of a delete: deleted, or failed with the failure's
    /// message and transport class.
    pub fn settle_result<T>(&self, id: ResourceId, deleted: &Result<T, Fail>) {
        match deleted {
            Ok(_) => self.settle(id, Cleanup::Deleted),
            Err(f) => self.settle_with(id, Cleanup::Failed(f.message.clone()), f.transport),
        }
    }

    fn settle_with(&self, id: ResourceId, outcome: Cleanup, transport: Option<Transport>) {
        if let Some(t) = self.lock().tracked.get_mut(id.0) {
            t.resource.cleanup = outcome;
            t.resource.transport = transport;
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

/// Shorten `s` to at most `max` bytes, on a character boundary, marking the cut.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max.saturating_sub(3);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_repeated_with_the_same_answer_is_one_line_counted() {
        let r = Recorder::new(true, None);
        let get =
            |n: u32| r.detail_repeated("http: GET /s/1 -> 200 OK".into(), &format!(" ({n} bytes)"));
        get(10);
        get(11);
        get(12);
        r.detail_repeated("http: GET /s/1 -> 404 Not Found".into(), " (5 bytes)");
        get(13);
        r.detail("note");
        get(14);
        assert_eq!(
            r.details(),
            [
                "http: GET /s/1 -> 200 OK (12 bytes); 3 times in a row",
                "http: GET /s/1 -> 404 Not Found (5 bytes)",
                "http: GET /s/1 -> 200 OK (13 bytes)",
                "note",
                "http: GET /s/1 -> 200 OK (14 bytes)",
            ]
        );
    }

    #[test]
    fn a_repeat_past_the_bound_is_not_counted_on_another_line() {
        let r = Recorder::new(true, None);
        for i in 0..MAX_DETAILS {
            r.detail(format!("line {i}"));
        }
        r.detail_repeated("http: GET /x -> 200 OK".into(), "");
        r.detail_repeated("http: GET /x -> 200 OK".into(), "");
        let d = r.details();
        assert_eq!(d[MAX_DETAILS - 1], format!("line {}", MAX_DETAILS - 1));
        assert_eq!(d.len(), MAX_DETAILS + 1, "{:?}", d.last());
    }

    #[test]
    fn evidence_is_bounded_whatever_the_site_sends() {
        let r = Recorder::new(true, None);
        for i in 0..MAX_DETAILS + 25 {
            r.detail(format!("{i} {}", "é".repeat(MAX_DETAIL_CHARS)));
        }
        let d = r.details();
        assert_eq!(d.len(), MAX_DETAILS + 1);
        assert!(d[..MAX_DETAILS].iter().all(|l| l.len() <= MAX_DETAIL_CHARS));
        assert!(d[0].ends_with("..."), "{}", &d[0][d[0].len() - 10..]);
        assert!(d[MAX_DETAILS].contains("25 more trace line(s) dropped"));
        let r = Recorder::new(false, None);
        r.push_step(crate::model::Step {
            check: "X-01".into(),
            requirement: String::new(),
            name: "x".into(),
            status: crate::model::Status::Critical,
            message: "x".repeat(MAX_MESSAGE_CHARS * 3),
            duration: Duration::ZERO,
            http: None,
            transport: None,
            cut_by_deadline: false,
        });
        assert!(r.steps()[0].message.len() <= MAX_MESSAGE_CHARS);
    }

    fn step(check: &str) -> crate::model::Step {
        crate::model::Step {
            check: check.into(),
            requirement: String::new(),
            name: String::new(),
            status: crate::model::Status::Ok,
            message: String::new(),
            duration: Duration::ZERO,
            http: None,
            transport: None,
            cut_by_deadline: false,
        }
    }

    #[test]
    fn stages_run_at_once_are_reported_in_the_order_they_began() {
        const A: CheckId = CheckId {
            id: "A",
            requirement: "",
            name: "a",
        };
        const B: CheckId = CheckId {
            id: "B",
            requirement: "",
            name: "b",
        };
        let r = Recorder::new(false, None);
        r.begin(A);
        r.begin(B);
        assert_eq!(r.current_stage().unwrap().0.id, "A", "the longest running");
        r.push_step(step("B"));
        assert_eq!(r.current_stage().unwrap().0.id, "A");
        r.push_step(step("A"));
        assert!(r.current_stage().is_none());
        r.push_step(step("NOTE"));
        let ids: Vec<String> = r.steps().into_iter().map(|s| s.check).collect();
        assert_eq!(ids, ["A", "B", "NOTE"]);
    }

    #[test]
    fn a_stage_ended_without_a_step_is_no_longer_running() {
        const A: CheckId = CheckId {
            id: "A",
            requirement: "",
            name: "a",
        };
        let r = Recorder::new(false, None);
        r.begin(A);
        assert_eq!(r.current_stage().unwrap().0.id, "A");
        r.end(A);
        assert!(r.current_stage().is_none());
        assert!(r.steps().is_empty());
        r.begin(A);
        r.push_step(step("A"));
        assert!(r.current_stage().is_none());
    }
}
