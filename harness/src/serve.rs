//! `fedprobe serve`: a Prometheus exporter in blackbox_exporter's
//! multi-target pattern. `/probe?target=SITE&module=PROBE` runs the probe
//! in-process for that scrape, under the scrape's own timeout
//! (`X-Prometheus-Scrape-Timeout-Seconds` minus an offset, at most the
//! probe's configured `-t`), and answers the run as the harness's
//! OpenMetrics families. `/metrics` is the exporter's own health.
//!
//! Scrapes of one site and probe that arrive while a run is going share
//! that run (coalesced): a site never sees two VM lifecycles from one
//! exporter at once, and a run always ends (cleanup included) before the
//! next one starts.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use probes::model::Status;
use tokio::sync::watch;

use crate::guideline::Guideline;
use crate::model::ProbeRun;
use crate::profile::Profile;
use crate::report::metrics::{self, labels, num, Family};
use crate::run::{self, ProbePlan, SitePlan};

/// The header Prometheus sends with every scrape.
pub const TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";
/// Extra time past a run's own `-t` before the exporter cancels it; the
/// probes keep their deadline themselves, this only guards against a bug.
const MARGIN: Duration = Duration::from_millis(300);
/// The longest wait for running probes to clean up at shutdown: the
/// longest cleanup grace (60 s) and some.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(90);
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long the secrets of a finished run (its Keystone tokens) stay known
/// to the scrub: far longer than a run, so whatever it rendered was scrubbed
/// with them; without forgetting, an exporter that runs for months would
/// keep every token it was ever given.
const FORGET_SECRETS_AFTER: Duration = Duration::from_secs(3600);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (HOST:PORT); bind loopback unless a proxy or
    /// firewall stands in front
    #[arg(long, default_value = "127.0.0.1:9469")]
    pub listen: SocketAddr,
    /// Site profile (TOML); repeat for many sites. The site name is the target
    #[arg(long = "site", value_name = "FILE")]
    pub sites: Vec<PathBuf>,
    /// Guideline id or file, overriding the profiles' (it names the modules)
    #[arg(long)]
    pub guideline: Option<String>,
    /// Serve the embedded demo sites too (a reference cloud in-process on 127.0.0.1)
    #[cfg(feature = "demo")]
    #[arg(long)]
    pub demo: bool,
    /// Number of demo sites (with --demo)
    #[cfg(feature = "demo")]
    #[arg(long, default_value_t = 2)]
    pub demo_sites: usize,
    /// Time a new demo VM stays in BUILD (with --demo)
    #[cfg(feature = "demo")]
    #[arg(long, default_value = "1s", value_parser = probes::units::parse_duration)]
    pub boot_delay: Duration,
    /// Scrape timeout when a request carries no X-Prometheus-Scrape-Timeout-Seconds
    #[arg(long, default_value = "120s", value_parser = probes::units::parse_duration)]
    pub default_timeout: Duration,
    /// Taken off the scrape's timeout so the answer arrives before Prometheus gives up
    #[arg(long, default_value = "500ms", value_parser = probes::units::parse_duration)]
    pub timeout_offset: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub default_timeout: Duration,
    pub timeout_offset: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_timeout: Duration::from_secs(120),
            timeout_offset: Duration::from_millis(500),
        }
    }
}

/// A finished run and the `-t` it had.
struct Finished {
    run: ProbeRun,
    timeout: Duration,
}

type Flight = watch::Receiver<Option<Arc<Finished>>>;

/// What one scrape of `/probe` got.
enum Answer {
    Done {
        finished: Arc<Finished>,
        coalesced: bool,
    },
    /// The run did not end within this scrape's budget (a coalesced scrape
    /// with a shorter timeout than the run it joined).
    Unfinished { waited: Duration, coalesced: bool },
}

#[derive(Default)]
struct Stats {
    /// (module, result) -> scrapes
    scrapes: BTreeMap<(String, &'static str), u64>,
    /// (module, status) -> runs finished
    runs: BTreeMap<(String, &'static str), u64>,
    /// module -> seconds spent in runs
    run_seconds: BTreeMap<String, f64>,
}

/// The sites, their probes, the runs going on and the counters.
pub struct Exporter {
    sites: BTreeMap<String, BTreeMap<String, ProbePlan>>,
    opts: Options,
    inflight: Mutex<HashMap<(String, String), Flight>>,
    running: AtomicUsize,
    stats: Mutex<Stats>,
    started: f64,
    stop: watch::Sender<bool>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Exporter {
    /// One target per site plan; the modules are its probes' names.
    pub fn new(plans: Vec<SitePlan>, opts: Options) -> Result<Exporter, String> {
        let mut sites = BTreeMap::new();
        for plan in plans {
            let probes: BTreeMap<String, ProbePlan> = plan
                .probes
                .into_iter()
                .map(|mut p| {
                    // Nothing reads the evidence here: no HTTP trace.
                    if let Some(inv) = p.invocation_mut() {
                        inv.common_mut().verbose = 0;
                    }
                    (p.name.clone(), p)
                })
                .collect();
            if sites.insert(plan.site.clone(), probes).is_some() {
                return Err(format!("site {:?} given twice", plan.site));
            }
        }
        Ok(Exporter {
            sites,
            opts,
            inflight: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            stats: Mutex::new(Stats::default()),
            started: probes::clock::now_unix(),
            stop: watch::channel(false).0,
        })
    }

    /// Site name -> module names.
    pub fn targets(&self) -> BTreeMap<&str, Vec<&str>> {
        self.sites
            .iter()
            .map(|(s, p)| (s.as_str(), p.keys().map(String::as_str).collect()))
            .collect()
    }

    /// Runs going on now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The time a scrape may take: its header (else the default) less the offset.
    pub fn budget(&self, header: Option<&str>) -> Result<Duration, String> {
        let t = match header {
            None => self.opts.default_timeout,
            Some(h) => {
                let secs: f64 = h
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("{TIMEOUT_HEADER}: {h:?} is not a positive number"))?;
                Duration::try_from_secs_f64(secs).map_err(|e| format!("{TIMEOUT_HEADER}: {e}"))?
            }
        };
        // As blackbox_exporter: take the offset off only when there is room.
        Ok(if t > self.opts.timeout_offset {
            t - self.opts.timeout_offset
        } else {
            t
        })
    }

    fn count_scrape(&self, module: &str, result: &'static str) {
        *locked(&self.stats)
            .scrapes
            .entry((module.to_string(), result))
            .or_default() += 1;
    }

    /// Run (or join the run of) `module` at `site` within `budget`.
    /// `plan` is the site's plan for the module.
    async fn probe(self: &Arc<Self>, plan: &ProbePlan, site: &str, budget: Duration) -> Answer {
        let t0 = Instant::now();
        let module = plan.name.as_str();
        let key = (site.to_string(), module.to_string());
        let (mut rx, coalesced) = {
            let mut flights = locked(&self.inflight);
            match flights.get(&key) {
                Some(rx) => (rx.clone(), true),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key.clone(), rx.clone());
                    self.spawn_run(plan.clone(), key, budget, tx);
                    (rx, false)
                }
            }
        };
        let waited = tokio::time::timeout(budget + MARGIN, rx.wait_for(Option::is_some)).await;
        let finished = match waited {
            Ok(Ok(v)) => v.as_ref().cloned(),
            _ => None,
        };
        match finished {
            Some(finished) => {
                self.count_scrape(module, if coalesced { "coalesced" } else { "ran" });
                Answer::Done {
                    finished,
                    coalesced,
                }
            }
            None => {
                self.count_scrape(module, "unfinished");
                Answer::Unfinished {
                    waited: t0.elapsed(),
                    coalesced,
                }
            }
        }
    }

    /// Start the run in its own task: a scrape that goes away does not
    /// cut a VM lifecycle short, and the flight ends only after cleanup.
    fn spawn_run(
        self: &Arc<Self>,
        mut plan: ProbePlan,
        key: (String, String),
        budget: Duration,
        tx: watch::Sender<Option<Arc<Finished>>>,
    ) {
        let mut timeout = budget;
        if let Some(inv) = plan.invocation_mut() {
            timeout = inv.timeout().min(budget);
            inv.common_mut().timeout = Some(timeout);
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        let ex = self.clone();
        tokio::spawn(async move {
            let run = run::run_probe(plan, MARGIN, ex.stop.subscribe(), None).await;
            {
                let mut s = locked(&ex.stats);
                let status = status_name(run.result.status);
                *s.runs.entry((key.1.clone(), status)).or_default() += 1;
                *s.run_seconds.entry(key.1.clone()).or_default() +=
                    run.result.duration.as_secs_f64();
            }
            // Out of the table first: a scrape from now on starts afresh.
            locked(&ex.inflight).remove(&key);
            let _ = tx.send(Some(Arc::new(Finished { run, timeout })));
            ex.running.fetch_sub(1, Ordering::SeqCst);
            probes::secret::forget_unused(FORGET_SECRETS_AFTER.max(timeout * 2));
        });
    }

    /// Cancel what runs (the probes clean up first) and wait for it, bounded.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let t0 = Instant::now();
        while self.running() > 0 && t0.elapsed() < SHUTDOWN_BOUND {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exporter's own metrics (Prometheus text format).
    pub fn own_metrics(&self) -> String {
        let s = locked(&self.stats);
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}\n",
                num(v)
            ));
        };
        gauge(
            &mut out,
            "fedprobe_serve_start_time_seconds",
            "Unix time the exporter started",
            self.started.floor(),
        );
        gauge(
            &mut out,
            "fedprobe_serve_targets",
            "Sites served",
            self.sites.len() as f64,
        );
        gauge(
            &mut out,
            "fedprobe_serve_runs_in_progress",
            "Probe runs going on now",
            self.running() as f64,
        );
        let counter = |out: &mut String, name: &str, help: &str, rows: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (l, v) in rows {
                out.push_str(&format!("{name}{l} {}\n", num(v)));
            }
        };
        counter(
            &mut out,
            "fedprobe_serve_scrapes_total",
            "Probe scrapes answered, by module and result (ran, coalesced onto a running probe, unfinished within the scrape's timeout)",
            s.scrapes
                .iter()
                .map(|((m, r), n)| (labels(&[("module", m), ("result", r)]), *n as f64))
                .collect(),
        );
        counter(
            &mut out,
            "fedprobe_serve_probe_runs_total",
            "Probe runs finished, by module and status",
            s.runs
                .iter()
                .map(|((m, st), n)| (labels(&[("module", m), ("status", st)]), *n as f64))
                .collect(),
        );
        counter(
            &mut out,
            "fedprobe_serve_probe_run_seconds_total",
            "Time spent in probe runs, by module",
            s.run_seconds
                .iter()
                .map(|(m, v)| (labels(&[("module", m)]), *v))
                .collect(),
        );
        out
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Critical => "critical",
        Status::Unknown => "unknown",
    }
}

/// The exposition of one scrape's answer.
fn answer_text(site: &str, module: &str, a: &Answer) -> String {
    let coalesced_family = |c: bool| {
        let mut f = Family::new(
            "fedprobe_probe_coalesced",
            "1 when this scrape was answered by a run another scrape had started",
        );
        f.samples.push((
            labels(&[("site", site), ("probe", module)]),
            f64::from(u8::from(c)),
        ));
        f
    };
    let mut fams = match a {
        Answer::Done {
            finished,
            coalesced,
        } => {
            let mut fams = metrics::probe_run(site, &finished.run);
            let mut t = Family::new(
                "fedprobe_probe_timeout_seconds",
                "The -t the run had: the scrape's timeout less the offset, at most the probe's own",
            );
            t.samples.push((
                labels(&[("site", site), ("probe", module)]),
                finished.timeout.as_secs_f64(),
            ));
            fams.push(t);
            fams.push(coalesced_family(*coalesced));
            fams
        }
        Answer::Unfinished { waited, coalesced } => {
            let l = labels(&[("site", site), ("probe", module)]);
            let mut success = Family::new(
                "probe_success",
                "1 when the probe ended OK or WARNING, else 0",
            );
            success.samples.push((l.clone(), 0.0));
            let mut duration = Family::new(
                "probe_duration_seconds",
                "Wall time of the probe run, cleanup included",
            );
            duration.samples.push((l.clone(), waited.as_secs_f64()));
            let mut unfinished = Family::new(
                "fedprobe_probe_unfinished",
                "1 when the run this scrape joined had not ended within the scrape's timeout",
            );
            unfinished.samples.push((l, 1.0));
            vec![success, duration, unfinished, coalesced_family(*coalesced)]
        }
    };
    fams.retain(|f| !f.samples.is_empty());
    let mut out = metrics::write_families(&fams);
    out.push_str("# EOF\n");
    out
}

/// What `debug=true` answers instead of the exposition, in
/// blackbox_exporter's layout (the sections its users and tools look for):
/// the probe's own output at `-vvv`, the metrics, and the module (the
/// probe's command line). Scrubbed like every other output.
fn debug_text(site: &str, plan: &ProbePlan, a: &Answer) -> String {
    let (logs, timeout) = match a {
        Answer::Done { finished, .. } => (
            probes::render::output(&finished.run.result, probes::render::Format::Nagios, 3),
            format!("{:.3} s", finished.timeout.as_secs_f64()),
        ),
        Answer::Unfinished { waited, .. } => (
            format!(
                "the run had not ended after {:.3} s, this scrape's timeout; \
                 it goes on to its end (cleanup included) and is not reported here\n",
                waited.as_secs_f64()
            ),
            "the scrape's".into(),
        ),
    };
    let argv = match a {
        Answer::Done { finished, .. } => with_timeout(plan, finished.timeout),
        Answer::Unfinished { .. } => plan.argv.clone(),
    };
    let module = format!("{}\ntimeout: {timeout}\n", argv.join(" "));
    let mut out = String::from("Logs for the probe:\n");
    out.push_str(&logs);
    if !logs.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    out.push_str(&answer_text(site, &plan.name, a));
    out.push_str("\n\n\nModule configuration:\n");
    out.push_str(&probes::secret::scrub(&module));
    out
}

/// `argv` with the `-t` the run had (the scrape's timeout can shorten the
/// profile's) appended: an option given twice takes its last value, so the
/// command line shown is the one that ran, without reading its words back.
/// An argv that did not parse is shown as it is.
fn with_timeout(plan: &ProbePlan, timeout: Duration) -> Vec<String> {
    let mut argv = plan.argv.clone();
    if plan.invocation().is_ok() {
        let t = format!("{}s", probes::text::fmt_num(timeout.as_secs_f64()));
        argv.extend(["--timeout".to_string(), t]);
    }
    argv
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn bad_request(ex: &Exporter, module: &str, why: String) -> Response<Full<Bytes>> {
    ex.count_scrape(module, "bad_request");
    respond(
        StatusCode::BAD_REQUEST,
        "text/plain; charset=utf-8",
        format!("{why}\n"),
    )
}

fn index(ex: &Exporter) -> String {
    let mut out = String::from(
        "fedprobe serve: Prometheus exporter (blackbox_exporter's multi-target pattern)\n\
         GET /probe?target=SITE&module=PROBE   run PROBE against SITE for this scrape\n\
         GET /probe?...&debug=true             the same run: its output, metrics and command line\n\
         GET /metrics                          the exporter's own metrics\n\
         GET /-/healthy                        200 while the exporter answers\n\ntargets and modules:\n",
    );
    for (site, modules) in ex.targets() {
        out.push_str(&format!("  {site}: {}\n", modules.join(" ")));
    }
    out
}

async fn handle(
    ex: Arc<Exporter>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ));
    }
    let r = match req.uri().path() {
        "/" => respond(StatusCode::OK, "text/plain; charset=utf-8", index(&ex)),
        "/metrics" => respond(StatusCode::OK, TEXT_FORMAT, ex.own_metrics()),
        // What blackbox_exporter answers its orchestrators' liveness checks.
        "/-/healthy" => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "Healthy\n".into(),
        ),
        "/probe" => probe_route(&ex, &req).await,
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: see /\n".into(),
        ),
    };
    Ok(r)
}

async fn probe_route(ex: &Arc<Exporter>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("");
    let mut target = None;
    let mut module = None;
    let mut debug = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "target" => target = Some(v.into_owned()),
            "module" => module = Some(v.into_owned()),
            // blackbox_exporter's switch: exactly "true".
            "debug" => debug = v == "true",
            _ => {}
        }
    }
    let (Some(site), Some(module)) = (target, module) else {
        return bad_request(ex, "", "give target=SITE and module=PROBE".into());
    };
    let Some(modules) = ex.sites.get(&site) else {
        // Names a client made up are not counted by name: no label from them.
        return bad_request(ex, "", format!("unknown target {site:?}: see /"));
    };
    let Some(plan) = modules.get(&module) else {
        let known: Vec<&str> = modules.keys().map(String::as_str).collect();
        return bad_request(
            ex,
            "",
            format!(
                "unknown module {module:?} for {site}: one of {}",
                known.join(", ")
            ),
        );
    };
    let header = req
        .headers()
        .get(TIMEOUT_HEADER)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let budget = match ex.budget(header) {
        Ok(b) => b,
        Err(why) => return bad_request(ex, &module, why),
    };
    let answer = ex.probe(plan, &site, budget).await;
    if debug {
        return respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            debug_text(&site, plan, &answer),
        );
    }
    let openmetrics = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    respond(
        StatusCode::OK,
        if openmetrics {
            OPENMETRICS
        } else {
            TEXT_FORMAT
        },
        answer_text(&site, &module, &answer),
    )
}

/// A listening exporter; [`Server::stop`] ends it.
pub struct Server {
    pub addr: SocketAddr,
    pub exporter: Arc<Exporter>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Bind `addr` and serve `exporter` until stopped.
    pub async fn start(addr: SocketAddr, exporter: Arc<Exporter>) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(accept(listener, exporter.clone(), rx));
        Ok(Server {
            addr,
            exporter,
            shutdown,
        })
    }

    /// Stop accepting, cancel the runs and wait for their cleanup.
    pub async fn stop(self) {
        self.shutdown.send_replace(true);
        self.exporter.shutdown().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.exporter.stop.send_replace(true);
    }
}

async fn accept(listener: tokio::net::TcpListener, ex: Arc<Exporter>, rx: watch::Receiver<bool>) {
    let mut stop = rx.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, say: do not spin while it lasts.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (ex, mut stop) = (ex.clone(), rx.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(ex.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}

/// Plans for the sites of the profiles at `paths`.
pub fn plan_profiles(
    paths: &[PathBuf],
    guideline: Option<&str>,
    secrets: &std::path::Path,
) -> Result<Vec<SitePlan>, String> {
    let mut plans = Vec::new();
    let mut loaded: Vec<Guideline> = Vec::new();
    for path in paths {
        let p = Profile::load(path)?;
        let gname = match guideline {
            Some(g) => g.to_string(),
            None => crate::app::relative_to(path, &p.guideline),
        };
        let g = match loaded.iter().find(|g| g.id == gname) {
            Some(g) => g.clone(),
            None => Guideline::load(&gname)?,
        };
        plans.push(crate::app::plan_site(&p, &g, secrets)?);
        loaded.push(g);
    }
    Ok(plans)
}

pub async fn cmd_serve(a: ServeArgs) -> Result<u8, String> {
    let secrets = tempfile::Builder::new()
        .prefix("fedprobe-cred-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    #[allow(unused_mut)]
    let mut plans = plan_profiles(&a.sites, a.guideline.as_deref(), secrets.path())?;
    #[cfg(feature = "demo")]
    let demo = if a.demo {
        let demo = crate::demo::Demo::start(crate::demo::DemoOptions {
            sites: a.demo_sites,
            boot_delay: a.boot_delay,
            faults: Default::default(),
        })
        .await
        .map_err(|e| format!("starting the demo cloud: {e}"))?;
        let g = Guideline::embedded();
        for i in 0..demo.sites() {
            plans.push(crate::app::plan_site(
                &demo.profile(i, None)?,
                &g,
                demo.dir(),
            )?);
        }
        Some(demo)
    } else {
        None
    };
    if plans.is_empty() {
        return Err("nothing to serve: give --site FILE (or --demo)".into());
    }
    let opts = Options {
        default_timeout: a.default_timeout,
        timeout_offset: a.timeout_offset,
    };
    let ex = Arc::new(Exporter::new(plans, opts)?);
    let server = Server::start(a.listen, ex.clone())
        .await
        .map_err(|e| format!("listening on {}: {e}", a.listen))?;
    let example = ex
        .targets()
        .into_iter()
        .next()
        .and_then(|(s, m)| m.first().map(|m| format!("{s}&module={m}")))
        .unwrap_or_default();
    eprintln!(
        "fedprobe serve: listening on http://{addr}/ ({} target(s)); try: curl 'http://{addr}/probe?target={example}'",
        ex.targets().len(),
        addr = server.addr,
    );
    let why = probes::cli::signals().await;
    eprintln!("fedprobe serve: {why}: stopping (running probes clean up first)");
    server.stop().await;
    #[cfg(feature = "demo")]
    drop(demo);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_shown_has_the_timeout_the_run_had() {
        let plan = |a: &[&str]| ProbePlan::parse(a.iter().map(|s| s.to_string()).collect());
        let t = Duration::from_millis(59_500);
        let p = plan(&["check_glue", "--glue-file", "f", "--timeout", "5m"]);
        let shown = with_timeout(&p, t);
        assert_eq!(shown[5..], ["--timeout", "59.5s"]);
        // Parsed again, the last -t is the one that ran.
        let again = ProbePlan::parse(shown);
        assert_eq!(again.invocation().unwrap().timeout(), t);
        // A command line that does not parse is shown as it is.
        let bad = plan(&["check_glue", "--no-such-flag"]);
        assert_eq!(with_timeout(&bad, t), bad.argv);
    }
}
