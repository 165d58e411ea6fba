//! Running many probes over many sites at once, bounded per site and
//! overall, each probe under its own deadline, plus external plugins.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::checks::{self, Cancel, Planned};
use probes::model::Status;
use probes::probe::Link;
use probes::runner::Stop;
use probes::secret::Scope;
use tokio::sync::{mpsc, watch};

use crate::budget::{Admitted, Room, Seat};
use crate::model::{ExternalRun, ProbeRun, SiteRun};
use crate::progress::Progress;
use crate::shelf::{Shelf, Ticket};
use crate::stages::STAGES;

/// One probe of a site's plan: its command line (for display and reports)
/// and the invocation parsed from it, once, at plan time.
pub struct ProbePlan {
    pub name: String,
    pub argv: Vec<String>,
    /// The typed invocation, or why the argv does not parse (UNKNOWN at run).
    invocation: Result<Box<dyn Planned>, String>,
    /// Changed since it was parsed: `argv` alone no longer gives it.
    edited: bool,
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
            edited: false,
        }
    }

    /// A probe that cannot run: UNKNOWN at run, saying `why`.
    pub fn failed(name: String, argv: Vec<String>, why: String) -> ProbePlan {
        ProbePlan {
            name,
            argv,
            invocation: Err(why),
            edited: false,
        }
    }

    /// The typed invocation, or why there is none.
    pub fn invocation(&self) -> Result<&dyn Planned, &str> {
        match &self.invocation {
            Ok(i) => Ok(i.as_ref()),
            Err(e) => Err(e),
        }
    }

    /// The typed invocation to change (none if the argv did not parse).
    pub fn invocation_mut(&mut self) -> Option<&mut dyn Planned> {
        self.edited = true;
        match &mut self.invocation {
            Ok(i) => Some(i.as_mut()),
            Err(_) => None,
        }
    }

    /// Parsing `argv` again gives the same invocation: a job waiting to
    /// start may keep the argv alone ([`Job::Argv`]).
    fn reparses(&self) -> bool {
        self.invocation.is_ok() && !self.edited
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
            edited: self.edited,
        }
    }
}

impl std::fmt::Debug for ProbePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbePlan")
            .field("argv", &self.argv)
            .field("parsed", &self.invocation.is_ok())
            .field("edited", &self.edited)
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
    /// A probe whose argv alone gives its invocation, waiting to start: a
    /// parsed invocation (every cloud's login options with their defaults)
    /// is a few KB more, times the jobs of every admitted site. Parsed
    /// again when it starts, or when a chained probe feeds it.
    Argv(String, Vec<String>),
    External(ExternalPlan),
}

/// Every probe that wants something is chained to the first probe of the
/// site whose kind provides it.
pub fn chains_of(probes: &[ProbePlan]) -> Vec<Chain> {
    let mut out = Vec::new();
    for (to, p) in probes.iter().enumerate() {
        let Some(link) = p.invocation().ok().and_then(|i| i.wants()) else {
            continue;
        };
        let from = probes.iter().position(|q| {
            q.invocation().is_ok()
                && checks::find(&q.name).is_some_and(|e| e.provides.contains(&link))
        });
        if let Some(from) = from.filter(|f| *f != to) {
            out.push(Chain { from, to, link });
        }
    }
    out
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

    /// What this run offers for `link` to the probe chained to it.
    fn offer(&self, link: Link) -> Option<String> {
        let Done::Probe(p) = self else { return None };
        let entry = checks::find(&p.probe)?;
        (entry.offers)(&p.result)
            .into_iter()
            .find(|(l, _)| *l == link)
            .map(|(_, v)| v)
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
pub async fn run_all<I>(
    plans: I,
    limits: Limits,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
    mut on_site: impl FnMut(SiteRun),
) where
    I: IntoIterator<Item = SitePlan>,
{
    let room = Room::unbounded();
    run_all_within(plans, limits, progress, stop, &room, |run, _, _| {
        on_site(run)
    })
    .await
}

/// [`run_all`] for a consumer that holds each site until it gives its
/// [`Seat`] back: a site is taken off the shelf only when `room` has a seat
/// for it; until then its results stay on the shelf, not in memory. The
/// site comes with the [`Scope`] of the secrets its plan and jobs made:
/// the consumer closes it once the site's outputs are scrubbed ([`run_all`]
/// never closes one, so every secret stays known to the end).
///
/// Jobs start one at a time, each when the gate admits one (`budget.rs`)
/// and fewer than `--jobs` run, at the site whose next start is due first
/// ([`Queue`], [`SKEW`]). A site is admitted, and its plan taken from
/// `plans` (which may make it only then), only when no admitted site's
/// start is due before it: the run works through the sites in order, they
/// end and go to the reports while later ones have not begun, and what is
/// live is the sites in flight, not the whole run.
pub async fn run_all_within<I>(
    plans: I,
    limits: Limits,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
    room: &Room,
    mut on_site: impl FnMut(SiteRun, Seat, Scope),
) where
    I: IntoIterator<Item = SitePlan>,
{
    let gate = crate::budget::Gate::new(limits.memory_budget, limits.jobs_per_site);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, usize, Done)>();
    let plans = plans.into_iter();
    let mut queue = Queue {
        sites: Vec::with_capacity(plans.size_hint().0),
        plans,
        more: true,
        due: Default::default(),
        per_site: limits.jobs_per_site.max(1),
        skew: SKEW,
        took: Default::default(),
    };
    let (mut running, mut next) = (0usize, 0usize);
    let mut shelf = Shelf::new();
    let mut admitting: Option<Pin<Box<dyn Future<Output = Admitted> + Send>>> = None;
    while next < queue.sites.len() || queue.more {
        if admitting.is_none() && running < limits.jobs.max(1) && queue.can_start() {
            let gate = gate.clone();
            admitting = Some(Box::pin(async move { gate.admit().await }));
        }
        // Nothing runs, nothing may start, and the next site is not done:
        // only a chain that loops can leave it so; its jobs start unfed.
        if admitting.is_none() && running == 0 && !queue.ready(next) {
            queue.unblock();
            continue;
        }
        tokio::select! {
            biased;
            seat = room.seat(), if queue.ready(next) => {
                let secrets = queue.sites[next].secrets;
                on_site(queue.sites[next].take(&mut shelf), seat, secrets);
                STAGES.site_out();
                next += 1;
            }
            msg = rx.recv() => {
                // The dispatcher holds a sender: the channel never closes here.
                let Some((si, ji, d)) = msg else { break };
                running -= 1;
                queue.finished(si, ji, d, next, &mut shelf);
            }
            admitted = async {
                match admitting.as_mut() {
                    Some(admit) => admit.await,
                    None => std::future::pending().await,
                }
            }, if admitting.is_some() => {
                admitting = None;
                let admitted_before = queue.sites.len();
                let picked = queue.pick();
                for p in &queue.sites[admitted_before..] {
                    progress.site(&p.site, p.jobs.len());
                }
                let Some((si, ji, job)) = picked else { continue };
                running += 1;
                let end = Ender::new(tx.clone(), (si, ji), job.name(), job.is_external());
                let site = queue.sites[si].site.clone();
                let how = (limits, progress.clone(), stop.clone());
                let secrets = queue.sites[si].secrets;
                tokio::spawn(secrets.enter(start_job(site, job, admitted, gate.clone(), how, end)));
            }
        }
    }
    progress.finish();
}

/// Run one job, admitted by the gate, and send its run back.
async fn start_job(
    site: String,
    job: Job,
    admitted: Admitted,
    gate: Arc<crate::budget::Gate>,
    (limits, progress, stop): (Limits, Arc<Progress>, watch::Receiver<bool>),
    end: Ender,
) {
    let counted = STAGES.start();
    let done = probes::poll::paced(gate, run_job(&site, job, limits, &progress, stop)).await;
    drop((counted, admitted));
    STAGES.job_done();
    end.send(done);
}

/// How many sites later a site's next job comes due than its previous one.
/// 0 would run the sites strictly one after another: the least memory, but
/// the last sites' slow probes (a server booting) would then start only as
/// the CPU runs out of work, leaving it idle for their whole length (7 s
/// at 1,000 demo sites). Starting a site's probes longest first and its
/// later ones this many sites on overlaps those waits with other sites'
/// work; runs of up to this many sites start everything at once, as
/// before. Measured at 1,000 demo sites (BENCHMARKS.md, 2026-12-02
/// evening): 0, 30 and 70 gave 7.5, 5.4 and 4.4 s of wall time past the
/// CPU's share, at 145, 146 and 150-160 MB peak RSS.
const SKEW: usize = 30;

/// Sends a job's run back to the dispatcher; a job that panicked sends, as
/// it unwinds, a run saying so (its site is still reported whole).
struct Ender {
    tx: mpsc::UnboundedSender<(usize, usize, Done)>,
    si: usize,
    ji: usize,
    /// The job's name until its run is sent.
    job: Option<String>,
    external: bool,
}

impl Ender {
    fn new(
        tx: mpsc::UnboundedSender<(usize, usize, Done)>,
        (si, ji): (usize, usize),
        name: &str,
        external: bool,
    ) -> Ender {
        Ender {
            tx,
            si,
            ji,
            job: Some(name.to_string()),
            external,
        }
    }

    fn send(mut self, done: Done) {
        self.job = None;
        let _ = self.tx.send((self.si, self.ji, done));
    }
}

impl Drop for Ender {
    fn drop(&mut self) {
        if let Some(name) = self.job.take() {
            let lost = Done::lost(&name, self.external, "its job panicked".into());
            let _ = self.tx.send((self.si, self.ji, lost));
        }
    }
}

impl Job {
    fn name(&self) -> &str {
        match self {
            Job::Probe(p) => &p.name,
            Job::Argv(name, _) => name,
            Job::External(e) => &e.name,
        }
    }

    /// A probe waiting with its argv alone, parsed again.
    fn parsed(self) -> Job {
        match self {
            Job::Argv(_, argv) => Job::Probe(ProbePlan::parse(argv)),
            other => other,
        }
    }

    fn is_external(&self) -> bool {
        matches!(self, Job::External(_))
    }
}

/// Per job name: the runs ended so far in this run and their total time.
type Took = std::collections::HashMap<String, (u32, Duration)>;

/// The sites admitted so far, in plan order, and the plans still to come
/// (made, by a lazy iterator, only when their site is admitted).
struct Queue<I> {
    plans: I,
    /// The plans may have more (until they answer `None`).
    more: bool,
    sites: Vec<Pending>,
    /// The sites with a free slot and a job that may start, by when their
    /// next start is due: `(site index + skew x jobs it has started, index)`.
    due: std::collections::BTreeSet<(usize, usize)>,
    per_site: usize,
    /// How many sites later a site's next start comes than its previous.
    skew: usize,
    took: Took,
}

impl<I: Iterator<Item = SitePlan>> Queue<I> {
    /// Site `si` is admitted and every job of it has ended.
    fn ready(&self, si: usize) -> bool {
        self.sites.get(si).is_some_and(|p| p.left == 0)
    }

    /// A job can start now, or a site is still to be admitted.
    fn can_start(&self) -> bool {
        self.more || !self.due.is_empty()
    }

    /// Put site `si` in `due`, or take it out, as it now stands.
    fn refresh(&mut self, si: usize) {
        let Some(p) = self.sites.get_mut(si) else {
            return;
        };
        if let Some(key) = p.due.take() {
            self.due.remove(&(key, si));
        }
        if p.may_start(self.per_site) {
            let key = si.saturating_add(self.skew.saturating_mul(p.started));
            p.due = Some(key);
            self.due.insert((key, si));
        }
    }

    /// The next job to start, admitting sites until one has it; `None` when
    /// no site has a job that may start and none is left to admit.
    fn pick(&mut self) -> Option<(usize, usize, Job)> {
        loop {
            let best = self.due.first().copied();
            // A site admitted now would be due at its index, `sites.len()`.
            if let Some((_, si)) = best.filter(|b| b.0 <= self.sites.len() || !self.more) {
                let ji = self.sites[si].startable(self.per_site, &self.took);
                let job = ji.and_then(|ji| self.sites[si].start(ji));
                self.refresh(si);
                if let (Some(ji), Some(job)) = (ji, job) {
                    return Some((si, ji, job));
                }
                // `due` held a site with nothing to start; refreshed, look again.
                continue;
            }
            // The plan's own secrets (a demo site's) are the site's too.
            let secrets = Scope::new();
            let plan = if self.more {
                secrets.sync(|| self.plans.next())
            } else {
                None
            };
            let Some(plan) = plan else {
                self.more = false;
                if best.is_some() {
                    continue;
                }
                return None;
            };
            self.sites.push(Pending::admit(plan, secrets));
            self.refresh(self.sites.len() - 1);
        }
    }

    /// Release the waits of the first site that still has unstarted jobs.
    fn unblock(&mut self) {
        let si = self
            .sites
            .iter()
            .position(|p| p.jobs.iter().any(Option::is_some));
        if let Some(si) = si {
            self.sites[si].waits.iter_mut().for_each(|w| *w = 0);
            self.refresh(si);
        }
    }

    /// Job `ji` of site `si` ended: feed the probes chained to it and keep
    /// its run (on the shelf unless it completes the next site).
    fn finished(&mut self, si: usize, ji: usize, d: Done, next: usize, shelf: &mut Shelf) {
        let Some(p) = self.sites.get_mut(si) else {
            return;
        };
        p.running = p.running.saturating_sub(1);
        p.left = p.left.saturating_sub(1);
        let (name, took) = match &d {
            Done::Probe(r) => (&r.probe, r.result.duration),
            Done::External(e) => (&e.name, e.duration),
        };
        match self.took.get_mut(name) {
            Some((n, total)) => {
                *n = n.saturating_add(1);
                *total = total.saturating_add(took);
            }
            None => {
                self.took.insert(name.clone(), (1, took));
            }
        }
        for c in p.chains.iter().filter(|c| c.from == ji) {
            if let Some(w) = p.waits.get_mut(c.to) {
                *w = w.saturating_sub(1);
            }
            let value = d.offer(c.link);
            let (Some(value), Some(slot)) = (value, p.jobs.get_mut(c.to)) else {
                continue;
            };
            // Parsed first if it waits as argv: the value is given typed,
            // never as words to parse (a value from the site is no option).
            if let Some(job) = slot.take() {
                let mut job = job.parsed();
                if let Job::Probe(plan) = &mut job {
                    if let Some(inv) = plan.invocation_mut() {
                        let words = inv.give(c.link, value);
                        plan.argv.extend(words);
                    }
                }
                *slot = Some(job);
            }
        }
        if p.left == 0 {
            STAGES.site_done();
        }
        let held = if p.left == 0 && si == next {
            Held::Here(Box::new(d))
        } else {
            Held::shelve(d, shelf)
        };
        p.done.insert(ji, held);
        self.refresh(si);
    }
}

/// An admitted site: its jobs not yet started, what they wait for, and
/// what came back so far.
struct Pending {
    site: String,
    guideline: String,
    cloud: probes::auth::cloud::CloudKind,
    /// Probes then externals, in plan order; `None` once started.
    jobs: Vec<Option<Job>>,
    /// Per job, the chained providers it still waits for.
    waits: Vec<usize>,
    chains: Vec<Chain>,
    running: usize,
    /// Jobs started so far.
    started: usize,
    /// Its key in [`Queue::due`], while it is there.
    due: Option<usize>,
    left: usize,
    done: BTreeMap<usize, Held>,
    /// The secrets its plan and jobs made ([`Scope`]).
    secrets: Scope,
}

impl Pending {
    fn admit(plan: SitePlan, secrets: Scope) -> Pending {
        let jobs: Vec<Option<Job>> = plan
            .probes
            .into_iter()
            .map(|p| {
                if p.reparses() {
                    Job::Argv(p.name, p.argv)
                } else {
                    Job::Probe(p)
                }
            })
            .chain(plan.externals.into_iter().map(Job::External))
            .map(Some)
            .collect();
        let mut waits = vec![0; jobs.len()];
        for c in &plan.chains {
            if let Some(w) = waits.get_mut(c.to) {
                *w += 1;
            }
        }
        STAGES.site_in(jobs.len());
        if jobs.is_empty() {
            STAGES.site_done();
        }
        Pending {
            site: plan.site,
            guideline: plan.guideline,
            cloud: plan.cloud,
            left: jobs.len(),
            jobs,
            waits,
            chains: plan.chains,
            running: 0,
            started: 0,
            due: None,
            done: BTreeMap::new(),
            secrets,
        }
    }

    /// A slot is free and a job waits for nothing but it.
    fn may_start(&self, per_site: usize) -> bool {
        self.running < per_site
            && self
                .jobs
                .iter()
                .zip(&self.waits)
                .any(|(j, w)| j.is_some() && *w == 0)
    }

    /// The job to start next, if the site has a free slot: of those that may
    /// start, the one whose runs took longest so far in this run (one that
    /// has not ended yet counts as longest), the first in plan order among
    /// equals.
    fn startable(&self, per_site: usize, took: &Took) -> Option<usize> {
        if self.running >= per_site {
            return None;
        }
        let mut best: Option<(usize, Duration)> = None;
        for (j, job) in self.jobs.iter().enumerate() {
            let Some(job) = job.as_ref().filter(|_| self.waits[j] == 0) else {
                continue;
            };
            let mean = took
                .get(job.name())
                .map_or(Duration::MAX, |(n, total)| *total / (*n).max(1));
            if best.is_none_or(|b| mean > b.1) {
                best = Some((j, mean));
            }
        }
        best.map(|b| b.0)
    }

    fn start(&mut self, ji: usize) -> Option<Job> {
        let job = self.jobs.get_mut(ji)?.take()?;
        self.running += 1;
        self.started += 1;
        Some(job)
    }

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
        self.jobs = Vec::new();
        self.waits = Vec::new();
        self.chains = Vec::new();
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
    let plan = match job {
        Job::Probe(plan) => plan,
        Job::Argv(_, argv) => ProbePlan::parse(argv),
        Job::External(plan) => {
            progress.started(site, &plan.name);
            let e = run_external(&plan, stop).await;
            progress.finished(site, &plan.name, e.status);
            return Done::External(e);
        }
    };
    let name = plan.name.clone();
    progress.started(site, &name);
    let events = progress.sink(site, &name);
    let run = run_probe(plan, limits.margin, stop, Some(events)).await;
    progress.finished(site, &name, run.result.status);
    Done::Probe(run)
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
        ..
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

    fn site(name: &str, jobs: &[&str]) -> SitePlan {
        let externals = jobs
            .iter()
            .map(|j| ExternalPlan {
                name: j.to_string(),
                command: vec![],
                timeout: Duration::from_secs(1),
            })
            .collect();
        SitePlan::new(name.into(), "g".into(), vec![], externals)
    }

    fn queue(
        plans: Vec<SitePlan>,
        per_site: usize,
        skew: usize,
    ) -> Queue<std::vec::IntoIter<SitePlan>> {
        Queue {
            sites: vec![],
            plans: plans.into_iter(),
            more: true,
            due: Default::default(),
            per_site,
            skew,
            took: Default::default(),
        }
    }

    fn ended(name: &str, secs: u64) -> Done {
        let mut e = ExternalRun::unknown(name, &[], String::new());
        e.duration = Duration::from_secs(secs);
        Done::External(e)
    }

    fn picked(q: &mut Queue<std::vec::IntoIter<SitePlan>>) -> Option<(usize, String)> {
        q.pick().map(|(si, _, job)| (si, job.name().to_string()))
    }

    /// Sites are planned and admitted only as their turn comes; a site's
    /// second start comes due `skew` sites after its first.
    #[test]
    fn sites_are_admitted_as_their_turn_comes_and_later_starts_come_due_skew_sites_on() {
        let plans = (0..4)
            .map(|i| site(&format!("S{i}"), &["a", "b"]))
            .collect();
        let mut q = queue(plans, 5, 2);
        let mut order = vec![];
        let first = q.pick().map(|p| p.0);
        assert_eq!(q.sites.len(), 1, "one site admitted for the first job");
        order.extend(first);
        while let Some((si, _, _)) = q.pick() {
            order.push(si);
        }
        assert_eq!(order, [0, 1, 0, 2, 1, 3, 2, 3]);
        assert!(!q.more && q.due.is_empty());
        // Skew 0: strictly one site after another.
        let plans = (0..3)
            .map(|i| site(&format!("S{i}"), &["a", "b"]))
            .collect();
        let mut q = queue(plans, 5, 0);
        let order: Vec<usize> = std::iter::from_fn(|| q.pick().map(|p| p.0)).collect();
        assert_eq!(order, [0, 0, 1, 1, 2, 2]);
    }

    /// Within its slots, a site starts the job whose runs took longest so
    /// far; one never seen to end counts as longest.
    #[test]
    fn a_site_starts_its_longest_job_first_within_its_slots() {
        let mut q = queue(vec![site("S0", &["quick", "slow", "mid"])], 2, 0);
        q.took.insert("quick".into(), (2, Duration::from_secs(2)));
        q.took.insert("mid".into(), (1, Duration::from_secs(5)));
        assert_eq!(picked(&mut q), Some((0, "slow".into())));
        assert_eq!(picked(&mut q), Some((0, "mid".into())));
        assert_eq!(picked(&mut q), None, "both slots taken");
        let mut shelf = Shelf::new();
        q.finished(0, 2, ended("mid", 4), 0, &mut shelf);
        assert_eq!(q.took["mid"], (2, Duration::from_secs(9)));
        assert_eq!(picked(&mut q), Some((0, "quick".into())));
        assert_eq!(picked(&mut q), None);
        q.finished(0, 1, ended("slow", 7), 0, &mut shelf);
        q.finished(0, 0, ended("quick", 1), 0, &mut shelf);
        assert!(q.ready(0));
        let run = q.sites[0].take(&mut shelf);
        let names: Vec<&str> = run.externals.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["quick", "slow", "mid"], "reported in plan order");
    }

    /// A chained job starts only once its provider has ended; a chain that
    /// loops is released rather than left to hang.
    #[test]
    fn a_chained_job_waits_for_its_provider_and_a_loop_is_released() {
        let mut plan = site("S0", &["provider", "consumer"]);
        plan.chains = vec![Chain {
            from: 0,
            to: 1,
            link: Link::Server,
        }];
        let mut q = queue(vec![plan], 5, 0);
        assert_eq!(picked(&mut q), Some((0, "provider".into())));
        assert_eq!(picked(&mut q), None, "the consumer waits");
        q.finished(0, 0, ended("provider", 1), 0, &mut Shelf::new());
        assert_eq!(picked(&mut q), Some((0, "consumer".into())));

        let mut plan = site("S0", &["a", "b"]);
        plan.chains = vec![
            Chain {
                from: 0,
                to: 1,
                link: Link::Server,
            },
            Chain {
                from: 1,
                to: 0,
                link: Link::Server,
            },
        ];
        let mut q = queue(vec![plan], 5, 0);
        assert_eq!(picked(&mut q), None);
        q.unblock();
        assert_eq!(picked(&mut q), Some((0, "a".into())));
        assert_eq!(picked(&mut q), Some((0, "b".into())));
    }

    /// A job that panics still reports: its site is not left waiting.
    #[test]
    fn a_job_that_unwinds_sends_a_lost_run() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let end = Ender::new(tx, (3, 1), "check_network", false);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _end = end;
            panic!("boom");
        }));
        assert!(r.is_err());
        let Ok((3, 1, Done::Probe(p))) = rx.try_recv() else {
            panic!("no lost run sent");
        };
        assert_eq!(p.probe, "check_network");
        assert_eq!(p.result.status, Status::Unknown);
        assert!(matches!(
            p.result.outcome,
            probes::model::Outcome::Panicked { .. }
        ));
        assert_eq!(
            p.result.summary,
            "the harness lost this result: its job panicked"
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let end = Ender::new(tx, (0, 0), "x", true);
        end.send(ended("x", 1));
        assert!(matches!(rx.try_recv(), Ok((0, 0, Done::External(_)))));
        assert!(rx.try_recv().is_err(), "sent once");
    }

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

    /// A probe whose argv alone gives its invocation waits as argv; one
    /// changed since it was parsed waits parsed. A chained probe is parsed
    /// when fed, and the value from the site is given typed: a server id
    /// shaped like an option is not read as one.
    #[test]
    fn a_waiting_probe_holds_its_argv_and_a_fed_one_takes_the_value_typed() {
        let k = "https://k.example/v3";
        let vm = plan(&["check_vm_lifecycle", "--endpoint", k, "--image", "i"]);
        let usage = plan(&["check_usage", "--endpoint", k]);
        let mut quiet = plan(&["check_glue", "--glue-file", "f"]);
        quiet.invocation_mut().unwrap().common_mut().verbose = 0;
        let site = SitePlan::new("S0".into(), "g".into(), vec![vm, usage, quiet], vec![]);
        let mut q = queue(vec![site], 5, 0);
        assert_eq!(picked(&mut q), Some((0, "check_vm_lifecycle".into())));
        let jobs = &q.sites[0].jobs;
        assert!(
            matches!(jobs[1], Some(Job::Argv(..))),
            "{:?}",
            jobs[1].as_ref().map(Job::name)
        );
        assert!(
            matches!(jobs[2], Some(Job::Probe(_))),
            "edited: kept parsed"
        );

        let mut r = vm_result(Status::Ok, &[ResourceKind::Server]);
        r.resources[0].id = "--timeout=1".into();
        let d = Done::Probe(ProbeRun {
            probe: "check_vm_lifecycle".into(),
            argv: vec![],
            result: r,
        });
        q.finished(0, 0, d, 0, &mut Shelf::new());
        let Some(Job::Probe(fed)) = &q.sites[0].jobs[1] else {
            panic!("the fed probe is parsed");
        };
        assert_eq!(
            fed.argv[fed.argv.len() - 2..],
            ["--server-id", "--timeout=1"]
        );
        let inv = fed.invocation().unwrap();
        assert_eq!(
            inv.timeout(),
            plan(&["check_usage", "--endpoint", k])
                .invocation()
                .unwrap()
                .timeout()
        );
        assert_eq!(inv.wants(), None, "it has its server");
    }

    #[test]
    fn the_probe_timeout_is_read_from_the_typed_invocation() {
        let p = plan(&["check_glue", "--glue-file", "f", "--timeout", "90s"]);
        assert_eq!(p.invocation().unwrap().timeout(), Duration::from_secs(90));
        let p = plan(&["check_glue", "--glue-file", "f", "-t", "5"]);
        assert_eq!(p.invocation().unwrap().timeout(), Duration::from_secs(5));
        let p = plan(&["check_glue", "--glue-file", "f"]);
        assert_eq!(p.invocation().unwrap().timeout(), Duration::from_secs(120));
        assert!(plan(&["check_glue", "--bogus"]).invocation().is_err());
        assert!(plan(&["check_nothing"]).invocation().is_err());
    }
}
