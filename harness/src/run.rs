//! Running many probes over many sites at once, bounded per site and
//! overall, each probe under its own deadline, plus external plugins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::checks::{self, Cancel, Planned};
use probes::model::Status;
use probes::probe::Link;
use probes::runner::Stop;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::budget::{Room, Seat};
use crate::model::{ExternalRun, ProbeRun, SiteRun};
use crate::progress::Progress;
use crate::shelf::{Shelf, Ticket};
use crate::stages::{Stage, STAGES};

/// One probe of a site's plan: its command line (for display and reports)
/// and the invocation parsed from it, once, at plan time.
pub struct ProbePlan {
    pub name: String,
    pub argv: Vec<String>,
    /// The typed invocation, or why the argv does not parse (UNKNOWN at run).
    pub invocation: Result<Box<dyn Planned>, String>,
}

impl ProbePlan {
    /// Parse `argv` (argv[0] is the probe name).
    pub fn parse(argv: Vec<String>) -> ProbePlan {
        let name = argv.first().cloned().unwrap_or_default();
        let invocation = match checks::find(&name) {
            Some(e) => (e.parse)(&argv),
            None => Err(format!("unknown probe {name:?}")),
        };
        ProbePlan {
            name,
            argv,
            invocation,
        }
    }
}

impl Clone for ProbePlan {
    fn clone(&self) -> Self {
        ProbePlan {
            name: self.name.clone(),
            argv: self.argv.clone(),
            invocation: match &self.invocation {
                Ok(p) => Ok(p.clone_box()),
                Err(e) => Err(e.clone()),
            },
        }
    }
}

impl std::fmt::Debug for ProbePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbePlan")
            .field("argv", &self.argv)
            .field("parsed", &self.invocation.is_ok())
            .finish()
    }
}

/// A declared dependency between two probes of one site: `to` waits for
/// `from` to finish and takes what it offers for `link` (the VM probe's
/// server for check_usage's strong check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub from: usize,
    pub to: usize,
    pub link: Link,
}

/// What to run for one site.
#[derive(Debug, Clone)]
pub struct SitePlan {
    pub site: String,
    pub guideline: String,
    /// The cloud API the probes speak (`--cloud`).
    pub cloud: probes::auth::cloud::CloudKind,
    pub probes: Vec<ProbePlan>,
    pub chains: Vec<Chain>,
    pub externals: Vec<ExternalPlan>,
}

impl SitePlan {
    /// A plan whose chains are found from what the probes want and offer.
    pub fn new(
        site: String,
        guideline: String,
        probes: Vec<ProbePlan>,
        externals: Vec<ExternalPlan>,
    ) -> SitePlan {
        let chains = chains_of(&probes);
        SitePlan {
            site,
            guideline,
            cloud: Default::default(),
            probes,
            chains,
            externals,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExternalPlan {
    pub name: String,
    pub command: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub jobs: usize,
    pub jobs_per_site: usize,
    /// Extra time past a probe's own `-t` before the harness cancels it.
    pub margin: Duration,
    /// Resident memory past which no new job starts (`budget.rs`).
    pub memory_budget: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            jobs: 16,
            jobs_per_site: 2,
            margin: Duration::from_secs(30),
            memory_budget: None,
        }
    }
}

enum Job {
    Probe(ProbePlan),
    External(ExternalPlan),
}

/// Every probe that wants something is chained to the first probe of the
/// site whose kind provides it.
pub fn chains_of(probes: &[ProbePlan]) -> Vec<Chain> {
    let mut out = Vec::new();
    for (to, p) in probes.iter().enumerate() {
        let Some(link) = p.invocation.as_ref().ok().and_then(|i| i.wants()) else {
            continue;
        };
        let from = probes.iter().position(|q| {
            q.invocation.is_ok()
                && checks::find(&q.name).is_some_and(|e| e.provides.contains(&link))
        });
        if let Some(from) = from.filter(|f| *f != to) {
            out.push(Chain { from, to, link });
        }
    }
    out
}

/// How a job hooks into its site's chains.
#[derive(Default)]
struct Hooks {
    /// Providers: tell these waiting jobs what this run offers.
    tell: Vec<(Link, oneshot::Sender<Option<String>>)>,
    /// Consumers: wait for these before starting.
    wait: Vec<(Link, oneshot::Receiver<Option<String>>)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Done {
    Probe(ProbeRun),
    External(ExternalRun),
}

impl Done {
    /// What stands for a run whose result could not be read back.
    fn lost(name: &str, external: bool, why: String) -> Done {
        let why = format!("the harness lost this result: {why}");
        if external {
            return Done::External(ExternalRun::unknown(name, &[], why));
        }
        let label = checks::find(name).map(|e| e.label).unwrap_or("UNKNOWN");
        let mut result = probes::runner::not_started(name, label, why.clone());
        result.outcome = probes::model::Outcome::Panicked {
            message: why,
            stage: None,
        };
        Done::Probe(ProbeRun {
            probe: name.to_string(),
            argv: vec![],
            result,
        })
    }
}

/// A finished job's run, in memory or on the shelf.
enum Held {
    Here(Box<Done>),
    Shelved {
        ticket: Ticket,
        name: String,
        external: bool,
    },
}

impl Held {
    /// On the shelf if it will take it, else here.
    fn shelve(d: Done, shelf: &mut Shelf) -> Held {
        match shelf.put(&d) {
            Some(ticket) => {
                let (name, external) = match &d {
                    Done::Probe(p) => (p.probe.clone(), false),
                    Done::External(e) => (e.name.clone(), true),
                };
                Held::Shelved {
                    ticket,
                    name,
                    external,
                }
            }
            None => Held::Here(Box::new(d)),
        }
    }

    fn take(self, shelf: &mut Shelf) -> Done {
        match self {
            Held::Here(d) => *d,
            Held::Shelved {
                ticket,
                name,
                external,
            } => shelf
                .take(ticket)
                .unwrap_or_else(|why| Done::lost(&name, external, why)),
        }
    }
}

/// Run every plan; `stop` turning true cancels what still runs (probes then
/// clean up within their grace). Each site's run goes to `on_site` as soon
/// as its last job ends (in plan order: a finished site waits for the ones
/// before it), so nothing of a site is kept here once it is reported; the
/// results that wait are on the run's [`Shelf`], not in memory.
pub async fn run_all(
    plans: Vec<SitePlan>,
    limits: Limits,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
    mut on_site: impl FnMut(SiteRun),
) {
    let room = Room::unbounded();
    run_all_within(plans, limits, progress, stop, &room, |run, _| on_site(run)).await
}

/// [`run_all`] for a consumer that holds each site until it gives its
/// [`Seat`] back: a site is taken off the shelf only when `room` has a seat
/// for it; until then its results stay on the shelf, not in memory.
pub async fn run_all_within(
    plans: Vec<SitePlan>,
    limits: Limits,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
    room: &Room,
    mut on_site: impl FnMut(SiteRun, Seat),
) {
    let global = Arc::new(Semaphore::new(limits.jobs.max(1)));
    let gate = crate::budget::Gate::new(limits.memory_budget, limits.jobs_per_site);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, usize, Done)>();
    let mut sites: Vec<Pending> = Vec::with_capacity(plans.len());
    for (si, plan) in plans.into_iter().enumerate() {
        let site_sem = Arc::new(Semaphore::new(limits.jobs_per_site.max(1)));
        let n = plan.probes.len() + plan.externals.len();
        progress.site(&plan.site, n);
        let mut hooks: Vec<Hooks> = (0..n).map(|_| Hooks::default()).collect();
        for c in &plan.chains {
            let (tx, rx) = oneshot::channel();
            hooks[c.from].tell.push((c.link, tx));
            hooks[c.to].wait.push((c.link, rx));
        }
        let jobs = plan
            .probes
            .into_iter()
            .map(Job::Probe)
            .chain(plan.externals.into_iter().map(Job::External));
        for ((ji, job), hook) in jobs.enumerate().zip(hooks) {
            let (global, site_sem, gate) = (global.clone(), site_sem.clone(), gate.clone());
            let (progress, stop) = (progress.clone(), stop.clone());
            let site = plan.site.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut job = job;
                // Wait before taking a slot: the provider may need it.
                for (link, rx) in hook.wait {
                    if let (Ok(Some(value)), Job::Probe(p)) = (rx.await, &mut job) {
                        if let Ok(inv) = &mut p.invocation {
                            let words = inv.give(link, value);
                            p.argv.extend(words);
                        }
                    }
                }
                let _s = STAGES
                    .during(Stage::SiteSlot, site_sem.acquire_owned())
                    .await;
                let _g = STAGES.during(Stage::JobSlot, global.acquire_owned()).await;
                let _m = STAGES.during(Stage::Gate, gate.admit()).await;
                let running = STAGES.at(Stage::Running);
                // Boxed: the task is small while it waits for its slots (a run
                // over a thousand sites spawns every job up front).
                let done = Box::pin(probes::poll::paced(
                    gate.clone(),
                    run_job(&site, job, limits, &progress, stop),
                ))
                .await;
                for (link, tx) in hook.tell {
                    let offered = match &done {
                        Done::Probe(p) => checks::find(&p.probe).and_then(|e| {
                            (e.offers)(&p.result)
                                .into_iter()
                                .find(|(l, _)| *l == link)
                                .map(|(_, v)| v)
                        }),
                        Done::External(_) => None,
                    };
                    let _ = tx.send(offered);
                }
                drop(running);
                STAGES.job_done();
                let _ = tx.send((si, ji, done));
            });
        }
        sites.push(Pending {
            site: plan.site,
            guideline: plan.guideline,
            cloud: plan.cloud,
            left: n,
            done: BTreeMap::new(),
        });
    }
    drop(tx);
    let mut shelf = Shelf::new();
    let mut next = 0;
    // Jobs end when every job has sent (a job that panicked drops its
    // sender without sending: its site is reported with what it has).
    let mut open = true;
    loop {
        let ready = sites.get(next).is_some_and(|p| p.left == 0 || !open);
        tokio::select! {
            biased;
            seat = room.seat(), if ready => {
                on_site(sites[next].take(&mut shelf), seat);
                STAGES.site_out();
                next += 1;
            }
            msg = rx.recv(), if open => match msg {
                Some((si, ji, d)) => {
                    if let Some(p) = sites.get_mut(si) {
                        p.left = p.left.saturating_sub(1);
                        if p.left == 0 {
                            STAGES.site_done();
                        }
                        // Kept here only if it ends its site and that site is next.
                        let held = if p.left == 0 && si == next {
                            Held::Here(Box::new(d))
                        } else {
                            Held::shelve(d, &mut shelf)
                        };
                        p.done.insert(ji, held);
                    }
                }
                None => {
                    open = false;
                    progress.finish();
                }
            },
            else => break,
        }
    }
}

/// A site whose jobs are still running: what came back so far.
struct Pending {
    site: String,
    guideline: String,
    cloud: probes::auth::cloud::CloudKind,
    left: usize,
    done: BTreeMap<usize, Held>,
}

impl Pending {
    /// The site's run, in job order; leaves the pending entry empty.
    fn take(&mut self, shelf: &mut Shelf) -> SiteRun {
        let mut run = SiteRun {
            site: std::mem::take(&mut self.site),
            guideline: std::mem::take(&mut self.guideline),
            cloud: self.cloud,
            started_at: f64::MAX,
            duration: Duration::ZERO,
            probes: vec![],
            externals: vec![],
        };
        let mut end: f64 = 0.0;
        for (_, d) in std::mem::take(&mut self.done) {
            match d.take(shelf) {
                Done::Probe(p) => {
                    run.started_at = run.started_at.min(p.result.started_at);
                    end = end.max(p.result.started_at + p.result.duration.as_secs_f64());
                    run.probes.push(p);
                }
                Done::External(e) => run.externals.push(e),
            }
        }
        if run.started_at == f64::MAX {
            run.started_at = probes::clock::now_unix();
        } else {
            run.duration = Duration::from_secs_f64((end - run.started_at).max(0.0));
        }
        run
    }
}

async fn run_job(
    site: &str,
    job: Job,
    limits: Limits,
    progress: &Arc<Progress>,
    stop: watch::Receiver<bool>,
) -> Done {
    match job {
        Job::Probe(plan) => {
            let name = plan.name.clone();
            progress.started(site, &name);
            let events = progress.sink(site, &name);
            let run = run_probe(plan, limits.margin, stop, Some(events)).await;
            progress.finished(site, &name, run.result.status);
            Done::Probe(run)
        }
        Job::External(plan) => {
            progress.started(site, &plan.name);
            let e = run_external(&plan, stop).await;
            progress.finished(site, &plan.name, e.status);
            Done::External(e)
        }
    }
}

/// Run one planned probe in-process. The probe keeps its own deadline; the
/// harness only steps in `margin` past it (or on shutdown).
pub async fn run_probe(
    plan: ProbePlan,
    margin: Duration,
    stop: watch::Receiver<bool>,
    events: Option<probes::record::StageSink>,
) -> ProbeRun {
    let ProbePlan {
        name,
        argv,
        invocation,
    } = plan;
    let inv = match invocation {
        Ok(inv) => inv,
        Err(why) => {
            let label = checks::find(&name).map(|e| e.label).unwrap_or("UNKNOWN");
            return ProbeRun {
                probe: name.clone(),
                argv,
                result: probes::runner::not_started(&name, label, why),
            };
        }
    };
    let hard = inv.timeout() + margin;
    let cancel: Cancel = Box::pin(async move {
        let mut stop = stop;
        tokio::select! {
            _ = tokio::time::sleep(hard) => Stop::Deadline(hard),
            _ = stop.wait_for(|s| *s) => Stop::Shutdown,
        }
    });
    let mut result = inv.start(cancel, events).await;
    bound_details(&mut result.details, MAX_DETAILS);
    ProbeRun {
        probe: name,
        argv,
        result,
    }
}

/// Evidence lines kept per result. Probes run at `-vvv` here, and a
/// thousand sites' traces held until the reports are out cost more memory
/// than the runs; the first lines (what was asked) and the last (where it
/// ended) are what a reader needs.
pub const MAX_DETAILS: usize = 120;

/// Keep the first and last lines of `details` within `max`, saying how many
/// were left out between them.
pub fn bound_details(details: &mut Vec<String>, max: usize) {
    if details.len() <= max || max < 2 {
        return;
    }
    let tail = max / 4;
    let head = max - tail - 1;
    let omitted = details.len() - head - tail;
    details.drain(head..head + omitted);
    details.insert(
        head,
        format!("[... {omitted} evidence lines left out: the harness keeps {max} per result ...]"),
    );
    details.shrink_to_fit();
}

/// Run a Nagios-compatible plugin: status from the exit code, text parsed
/// as ARGO reads it, killed at its timeout.
pub async fn run_external(plan: &ExternalPlan, stop: watch::Receiver<bool>) -> ExternalRun {
    let t0 = Instant::now();
    let mut out = ExternalRun::unknown(&plan.name, &plan.command, String::new());
    let Some((prog, args)) = plan.command.split_first() else {
        out.summary = "empty command".into();
        return out;
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            out.summary = format!("cannot start {prog}: {e}");
            return out;
        }
    };
    let mut stop = stop;
    // Dropping the child (timeout or stop) kills it: kill_on_drop.
    let waited = tokio::select! {
        r = tokio::time::timeout(plan.timeout, child.wait_with_output()) => r.map_err(|_| false),
        _ = stop.wait_for(|s| *s) => Err(true),
    };
    out.duration = t0.elapsed();
    match waited {
        Err(false) => {
            out.summary = format!(
                "no result within {}s; plugin killed",
                plan.timeout.as_secs_f64()
            );
        }
        Err(true) => out.summary = "harness stopped (signal); plugin killed".into(),
        Ok(Err(e)) => out.summary = format!("waiting for {prog}: {e}"),
        Ok(Ok(o)) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let parsed = probes::render::parse::parse_output(&text);
            out.exit_code = o.status.code();
            out.status = match o.status.code() {
                Some(c) => Status::from_exit_code(c),
                None => Status::Unknown,
            };
            out.summary = if parsed.summary.is_empty() {
                let err = probes::text::one_line(&String::from_utf8_lossy(&o.stderr), 200);
                let err = if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                };
                let code = o
                    .status
                    .code()
                    .map(|c| format!("exit {c}"))
                    .unwrap_or_else(|| "killed by a signal".into());
                format!("no output ({code}){err}")
            } else {
                parsed.summary
            };
            out.long = parsed.long;
            out.perfdata = parsed.perfdata;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::model::ResourceKind;

    #[test]
    fn evidence_is_bounded_keeping_both_ends() {
        let mut d: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        bound_details(&mut d, 120);
        assert_eq!(d.len(), 120);
        assert_eq!(d[0], "line 0");
        assert_eq!(d[88], "line 88");
        assert!(d[89].contains("881 evidence lines left out"), "{}", d[89]);
        assert_eq!(d[90], "line 970");
        assert_eq!(d[119], "line 999");
        let mut short: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        bound_details(&mut short, 120);
        assert_eq!(short.len(), 5);
    }

    /// A probe run shelved while its site runs comes back equal (durations
    /// to the millisecond, as the reports have them).
    #[test]
    fn a_shelved_probe_run_comes_back_equal() {
        use probes::model::{Cleanup, HttpFacts, Outcome, Perf, Resource, Step, Transport, Uom};
        let mut result =
            probes::runner::not_started("check_vm_lifecycle", "VM_LIFECYCLE", "x".into());
        result.status = Status::Critical;
        result.outcome = Outcome::TimedOut {
            stage: Some("VM-04".into()),
        };
        result.summary = "CRITICAL - VM-04 \"BUILD\" <é> & 1/3".into();
        result.started_at = 1_796_152_315.634_123;
        result.duration = Duration::from_millis(61_234);
        result.http_requests = 17;
        result.details = vec!["GET https://n/servers -> 200".into(), "é \u{1}".into()];
        result.steps = vec![Step {
            check: "VM-04".into(),
            requirement: "EOSC-IAAS-02".into(),
            name: "server active".into(),
            status: Status::Critical,
            message: "still BUILD after 60 s".into(),
            duration: Duration::from_millis(60_001),
            http: Some(HttpFacts {
                status: Some(500),
                method: "GET".into(),
                url: "https://n/servers/1".into(),
            }),
            transport: Some(Transport::Reset),
            cut_by_deadline: true,
        }];
        result.perfdata = vec![
            Perf::new("boot", 0.1 + 0.2, Uom::Seconds)
                .thresholds("~:30".parse().ok(), "@10:20".parse().ok())
                .min(0.0)
                .max(1e-300),
            Perf::count("polls", 11),
        ];
        result.resources = vec![Resource {
            kind: ResourceKind::Server,
            id: "5e2d".into(),
            name: None,
            cleanup: Cleanup::Failed("HTTP 409".into()),
            transport: Some(Transport::Timeout),
        }];
        let run = ProbeRun {
            probe: "check_vm_lifecycle".into(),
            argv: vec!["check_vm_lifecycle".into(), "-vvv".into()],
            result: result.clone(),
        };
        let mut shelf = Shelf::new();
        let held = Held::shelve(Done::Probe(run), &mut shelf);
        assert!(matches!(held, Held::Shelved { .. }), "not shelved");
        let Done::Probe(back) = held.take(&mut shelf) else {
            panic!("came back as another kind");
        };
        assert_eq!(back.probe, "check_vm_lifecycle");
        assert_eq!(back.argv, ["check_vm_lifecycle", "-vvv"]);
        assert_eq!(back.result, result);
    }

    fn plan(v: &[&str]) -> ProbePlan {
        ProbePlan::parse(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn chains_vm_and_usage_only_when_usage_can_take_the_server() {
        let k = "https://k.example/v3";
        let vm = || plan(&["check_vm_lifecycle", "--endpoint", k, "--image", "i"]);
        let usage = || plan(&["check_usage", "--endpoint", k]);
        let glue = || plan(&["check_glue", "--glue-file", "f"]);
        let chain = |from, to| Chain {
            from,
            to,
            link: Link::Server,
        };
        assert_eq!(chains_of(&[glue(), usage(), vm()]), vec![chain(2, 1)]);
        assert_eq!(chains_of(&[glue(), usage()]), vec![]);
        assert_eq!(chains_of(&[vm(), glue()]), vec![]);
        // Without the API part there is nothing to look the server up in.
        let apel_only = plan(&["check_usage", "--apel-dir", "d"]);
        assert_eq!(chains_of(&[vm(), apel_only]), vec![]);
        let no_api = plan(&[
            "check_usage",
            "--endpoint",
            k,
            "--no-api",
            "--apel-dir",
            "d",
        ]);
        assert_eq!(chains_of(&[vm(), no_api]), vec![]);
        let given = plan(&[
            "check_usage",
            "--endpoint=https://k.example/v3",
            "--server-id=x",
        ]);
        assert_eq!(chains_of(&[vm(), given]), vec![]);
    }

    fn vm_result(active: Status, kinds: &[ResourceKind]) -> probes::model::ProbeResult {
        let mut r =
            probes::runner::not_started("check_vm_lifecycle", "VM_LIFECYCLE", String::new());
        let c = probes::checks::vm_lifecycle::ACTIVE;
        r.steps.push(probes::model::Step {
            check: c.id.into(),
            requirement: c.requirement.into(),
            name: c.name.into(),
            status: active,
            message: String::new(),
            duration: Duration::ZERO,
            http: None,
            transport: None,
            cut_by_deadline: false,
        });
        for (i, k) in kinds.iter().enumerate() {
            r.resources.push(probes::model::Resource {
                kind: k.clone(),
                id: format!("{k}-{i}"),
                name: None,
                cleanup: probes::model::Cleanup::Deleted,
                transport: None,
            });
        }
        r
    }

    #[test]
    fn the_server_is_passed_only_when_it_went_active() {
        let offers = checks::find("check_vm_lifecycle").unwrap().offers;
        let r = vm_result(
            Status::Ok,
            &[ResourceKind::ServerRequest, ResourceKind::Server],
        );
        assert_eq!(offers(&r), vec![(Link::Server, "server-1".to_string())]);
        assert_eq!(
            offers(&vm_result(Status::Ok, &[ResourceKind::ServerRequest])),
            vec![]
        );
        // A server that went to ERROR never ran: no usage to compare.
        assert_eq!(
            offers(&vm_result(Status::Critical, &[ResourceKind::Server])),
            vec![]
        );
    }

    #[test]
    fn the_probe_timeout_is_read_from_the_typed_invocation() {
        let p = plan(&["check_glue", "--glue-file", "f", "--timeout", "90s"]);
        assert_eq!(p.invocation.unwrap().timeout(), Duration::from_secs(90));
        let p = plan(&["check_glue", "--glue-file", "f", "-t", "5"]);
        assert_eq!(p.invocation.unwrap().timeout(), Duration::from_secs(5));
        let p = plan(&["check_glue", "--glue-file", "f"]);
        assert_eq!(p.invocation.unwrap().timeout(), Duration::from_secs(120));
        assert!(plan(&["check_glue", "--bogus"]).invocation.is_err());
        assert!(plan(&["check_nothing"]).invocation.is_err());
    }
}
