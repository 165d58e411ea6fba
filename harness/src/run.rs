//! Running many probes over many sites at once, bounded per site and
//! overall, each probe under its own deadline, plus external plugins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use probes::model::{ProbeResult, Status};
use tokio::sync::{oneshot, watch, Semaphore};

use crate::catalog::{self, Cancel};
use crate::model::{ExternalRun, ProbeRun, SiteRun};
use crate::progress::Progress;

/// What to run for one site.
#[derive(Debug, Clone)]
pub struct SitePlan {
    pub site: String,
    pub guideline: String,
    /// argv per probe; argv[0] is the probe name.
    pub probes: Vec<Vec<String>>,
    pub externals: Vec<ExternalPlan>,
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            jobs: 16,
            jobs_per_site: 2,
            margin: Duration::from_secs(30),
        }
    }
}

enum Job {
    Probe(Vec<String>),
    External(ExternalPlan),
}

/// The probe whose server check_usage then looks up, and the one that does.
const VM_PROBE: &str = "check_vm_lifecycle";
const USAGE_PROBE: &str = "check_usage";
const SERVER_ID_FLAG: &str = "server-id";

/// Where in a site's probes the VM -> usage chain applies: (vm, usage)
/// indexes, when both run, check_usage takes `--server-id`, reads the API
/// and was not given a server already.
pub fn chain_of(probes: &[Vec<String>]) -> Option<(usize, usize)> {
    let at = |name: &str| {
        probes
            .iter()
            .position(|a| a.first().is_some_and(|n| n == name))
    };
    let (vm, usage) = (at(VM_PROBE)?, at(USAGE_PROBE)?);
    let accepts =
        catalog::find(USAGE_PROBE).is_some_and(|e| (e.flags)().iter().any(|f| f == SERVER_ID_FLAG));
    let argv = &probes[usage];
    let has = |flag: &str| {
        argv.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let usable = accepts && has("--endpoint") && !has("--no-api") && !has("--server-id");
    usable.then_some((vm, usage))
}

/// The server the VM probe created and saw ACTIVE, if any: a server that
/// never ran has no usage to compare.
pub fn created_server(r: &ProbeResult) -> Option<String> {
    let active = probes::checks::vm_lifecycle::ACTIVE.id;
    let ran = r
        .steps
        .iter()
        .any(|s| s.check == active && matches!(s.status, Status::Ok | Status::Warning));
    if !ran {
        return None;
    }
    r.resources
        .iter()
        .find(|x| x.kind == "server")
        .map(|x| x.id.clone())
}

/// How a job hooks into the VM -> usage chain.
enum Link {
    None,
    /// The VM probe: report its server when done.
    Tell(oneshot::Sender<Option<String>>),
    /// check_usage: wait for the VM probe, then ask for its server.
    Wait(oneshot::Receiver<Option<String>>),
}

enum Done {
    Probe(ProbeRun),
    External(ExternalRun),
}

/// Run every plan; `stop` turning true cancels what still runs (probes then
/// clean up within their grace).
pub async fn run_all(
    plans: Vec<SitePlan>,
    limits: Limits,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
) -> Vec<SiteRun> {
    let global = Arc::new(Semaphore::new(limits.jobs.max(1)));
    let mut handles = Vec::new();
    for (si, plan) in plans.iter().enumerate() {
        let site_sem = Arc::new(Semaphore::new(limits.jobs_per_site.max(1)));
        let jobs = plan
            .probes
            .iter()
            .cloned()
            .map(Job::Probe)
            .chain(plan.externals.iter().cloned().map(Job::External));
        progress.site(&plan.site, plan.probes.len() + plan.externals.len());
        let chain = chain_of(&plan.probes);
        let (mut tell, mut wait) = match chain {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        for (ji, job) in jobs.enumerate() {
            let (global, site_sem) = (global.clone(), site_sem.clone());
            let (progress, stop) = (progress.clone(), stop.clone());
            let site = plan.site.clone();
            let link = match chain {
                Some((vm, _)) if vm == ji => tell.take().map_or(Link::None, Link::Tell),
                Some((_, usage)) if usage == ji => wait.take().map_or(Link::None, Link::Wait),
                _ => Link::None,
            };
            handles.push(tokio::spawn(async move {
                let mut job = job;
                // Wait before taking a slot: the VM probe may need it.
                let link = match (link, &mut job) {
                    (Link::Wait(rx), Job::Probe(argv)) => {
                        if let Ok(Some(id)) = rx.await {
                            argv.extend([format!("--{SERVER_ID_FLAG}"), id]);
                        }
                        Link::None
                    }
                    (l, _) => l,
                };
                let _s = site_sem.acquire_owned().await;
                let _g = global.acquire_owned().await;
                let done = run_job(&site, job, limits, &progress, stop).await;
                if let (Link::Tell(tx), Done::Probe(p)) = (link, &done) {
                    let _ = tx.send(created_server(&p.result));
                }
                (si, ji, done)
            }));
        }
    }
    // On a terminal, redraw twice a second: stages move between events.
    let ticker = progress.is_bars().then(|| {
        let p = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                p.tick();
            }
        })
    });
    let mut done: BTreeMap<(usize, usize), Done> = BTreeMap::new();
    for h in handles {
        if let Ok((si, ji, d)) = h.await {
            done.insert((si, ji), d);
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }
    progress.finish();
    plans
        .into_iter()
        .enumerate()
        .map(|(si, plan)| {
            let mut run = SiteRun {
                site: plan.site,
                guideline: plan.guideline,
                started_at: f64::MAX,
                duration: Duration::ZERO,
                probes: vec![],
                externals: vec![],
            };
            let mut end: f64 = 0.0;
            let keys: Vec<(usize, usize)> =
                done.range((si, 0)..(si + 1, 0)).map(|(k, _)| *k).collect();
            for k in keys {
                match done.remove(&k) {
                    Some(Done::Probe(p)) => {
                        run.started_at = run.started_at.min(p.result.started_at);
                        end = end.max(p.result.started_at + p.result.duration.as_secs_f64());
                        run.probes.push(p);
                    }
                    Some(Done::External(e)) => run.externals.push(e),
                    None => {}
                }
            }
            if run.started_at == f64::MAX {
                run.started_at = catalog::now();
            } else {
                run.duration = Duration::from_secs_f64((end - run.started_at).max(0.0));
            }
            run
        })
        .collect()
}

async fn run_job(
    site: &str,
    job: Job,
    limits: Limits,
    progress: &Progress,
    stop: watch::Receiver<bool>,
) -> Done {
    match job {
        Job::Probe(argv) => {
            let name = argv.first().cloned().unwrap_or_default();
            let slot = progress.started_probe(site, &name);
            let run = run_probe_argv(argv, limits.margin, stop, slot).await;
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

/// The probe's own `-t` from its argv, if given.
fn timeout_in(argv: &[String]) -> Option<Duration> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let v = if a == "-t" || a == "--timeout" {
            it.next().cloned()
        } else {
            a.strip_prefix("--timeout=").map(str::to_string)
        };
        if let Some(v) = v {
            return probes::cli::parse_duration(&v).ok();
        }
    }
    None
}

/// Run one probe in-process from its argv.
pub async fn run_probe_argv(
    argv: Vec<String>,
    margin: Duration,
    stop: watch::Receiver<bool>,
    slot: catalog::StageSlot,
) -> ProbeRun {
    let name = argv.first().cloned().unwrap_or_default();
    let Some(entry) = catalog::find(&name) else {
        return ProbeRun {
            probe: name.clone(),
            argv: argv.clone(),
            result: catalog::unknown_result(&name, &name, format!("unknown probe {name:?}")),
        };
    };
    // The probe keeps its own deadline; the harness only steps in past it.
    let hard = timeout_in(&argv).unwrap_or(Duration::from_secs(900)) + margin;
    let cancel: Cancel = Box::pin(async move {
        let mut stop = stop;
        tokio::select! {
            _ = tokio::time::sleep(hard) => format!("harness deadline ({}s)", hard.as_secs()),
            _ = stop.wait_for(|s| *s) => "harness shutdown".to_string(),
        }
    });
    let result = (entry.start)(argv.clone(), cancel, slot).await;
    ProbeRun {
        probe: entry.name.to_string(),
        argv,
        result,
    }
}

/// Run a Nagios-compatible plugin: status from the exit code, text parsed
/// as ARGO reads it, killed at its timeout.
pub async fn run_external(plan: &ExternalPlan, stop: watch::Receiver<bool>) -> ExternalRun {
    let t0 = Instant::now();
    let mut out = ExternalRun {
        name: plan.name.clone(),
        command: plan.command.clone(),
        status: Status::Unknown,
        exit_code: None,
        summary: String::new(),
        long: vec![],
        perfdata: vec![],
        duration: Duration::ZERO,
    };
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
            let parsed = probes::nagios::parse::parse_output(&text);
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

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chains_vm_and_usage_only_when_usage_can_take_the_server() {
        let vm = argv(&["check_vm_lifecycle", "--endpoint", "k"]);
        let usage = argv(&["check_usage", "--endpoint", "k"]);
        let glue = argv(&["check_glue"]);
        let plan = vec![glue.clone(), usage.clone(), vm.clone()];
        assert_eq!(chain_of(&plan), Some((2, 1)));
        assert_eq!(chain_of(&[glue.clone(), usage.clone()]), None);
        assert_eq!(chain_of(&[vm.clone(), glue]), None);
        // Without the API part there is nothing to look the server up in.
        let apel_only = argv(&["check_usage", "--apel-dir", "d"]);
        assert_eq!(chain_of(&[vm.clone(), apel_only]), None);
        let no_api = argv(&["check_usage", "--endpoint", "k", "--no-api"]);
        assert_eq!(chain_of(&[vm.clone(), no_api]), None);
        let given = argv(&["check_usage", "--endpoint=k", "--server-id=x"]);
        assert_eq!(chain_of(&[vm, given]), None);
    }

    fn vm_result(active: Status, kinds: &[&str]) -> ProbeResult {
        let mut r = catalog::unknown_result("check_vm_lifecycle", "VM_LIFECYCLE", String::new());
        let c = probes::checks::vm_lifecycle::ACTIVE;
        r.steps.push(probes::model::Step {
            check: c.id.into(),
            requirement: c.requirement.into(),
            name: c.name.into(),
            status: active,
            message: String::new(),
            duration: Duration::ZERO,
        });
        for (i, k) in kinds.iter().enumerate() {
            r.resources.push(probes::model::Resource {
                kind: k.to_string(),
                id: format!("{k}-{i}"),
                name: None,
                cleanup: probes::model::Cleanup::Deleted,
            });
        }
        r
    }

    #[test]
    fn the_server_is_passed_only_when_it_went_active() {
        let r = vm_result(Status::Ok, &["server request", "server"]);
        assert_eq!(created_server(&r).as_deref(), Some("server-1"));
        assert_eq!(
            created_server(&vm_result(Status::Ok, &["server request"])),
            None
        );
        // A server that went to ERROR never ran: no usage to compare.
        assert_eq!(
            created_server(&vm_result(Status::Critical, &["server"])),
            None
        );
    }

    #[test]
    fn finds_probe_timeout() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            timeout_in(&a(&["p", "--timeout", "90s"])),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            timeout_in(&a(&["p", "-t", "5"])),
            Some(Duration::from_secs(5))
        );
        assert_eq!(timeout_in(&a(&["p", "--endpoint", "x"])), None);
    }
}
