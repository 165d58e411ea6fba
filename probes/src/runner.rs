//! Runs one probe under the hard deadline: the probe body in its own task,
//! raced against the deadline and a cancel signal; then every cleanup owed,
//! inside the reserved grace; then one [`ProbeResult`], whatever happened.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::ctx::{Ctx, Settings};
use crate::deadline::{cleanup_reserve, Deadline};
use crate::fail::{Fail, FailKind};
use crate::http::{Http, TlsOptions};
use crate::model::{Cleanup, Outcome, Perf, ProbeResult, Status, Step};
use crate::record::{Recorder, StageSink};

#[derive(Clone)]
pub struct RunOptions {
    pub probe: String,
    pub label: String,
    pub timeout: Duration,
    /// What a blown `-t` reports (default UNKNOWN, per the guidelines).
    pub timeout_status: Status,
    /// Time kept for cleanup out of `timeout`; default [`cleanup_reserve`].
    pub cleanup_grace: Option<Duration>,
    pub tls: TlsOptions,
    pub settings: Settings,
    /// Where stage events go as they happen (a harness's progress display).
    pub events: Option<StageSink>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("probe", &self.probe)
            .field("timeout", &self.timeout)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a run is stopped from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A signal (`SIGTERM`, `SIGINT`).
    Signal(String),
    /// A harness gave up on it past its own `-t`: a timeout.
    Deadline(Duration),
    /// A harness is shutting down.
    Shutdown,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(s) => f.write_str(s),
            Stop::Deadline(d) => write!(f, "harness deadline ({}s)", d.as_secs()),
            Stop::Shutdown => f.write_str("harness shutdown"),
        }
    }
}

/// How the body ended, before cleanup and assembly.
enum End {
    Done(Result<String, Fail>),
    Panicked(String),
    TimedOut,
    Cancelled(Stop),
}

/// Run `body` and always return a result. `cancel` resolves (with a reason)
/// on SIGTERM/SIGINT or when a harness gives up.
pub async fn execute<B, F>(
    opts: RunOptions,
    cancel: impl Future<Output = Stop>,
    body: B,
) -> ProbeResult
where
    B: FnOnce(Ctx) -> F,
    F: Future<Output = Result<String, Fail>> + Send + 'static,
{
    let started_at = crate::clock::now_unix();
    let t0 = Instant::now();
    let total = Deadline::at(t0 + opts.timeout);
    let grace = opts
        .cleanup_grace
        .unwrap_or_else(|| cleanup_reserve(opts.timeout))
        .min(opts.timeout / 2);
    let work = Deadline::at(total.end() - grace);
    let rec = Recorder::paced(
        opts.settings.verbosity >= 3,
        opts.events.clone(),
        crate::poll::current_pace(),
    );

    let http = match Http::new(opts.tls.clone(), work, rec.clone()) {
        Ok(h) => h,
        Err(f) => {
            let mut r = assemble(&opts, &rec, started_at, t0, End::Done(Err(f.clone())));
            r.outcome = Outcome::NotStarted { reason: f.message };
            return r;
        }
    };
    let ctx = Ctx::new(http.clone(), rec.clone(), opts.settings.clone());

    let mut task = spawn_body(body, ctx, rec.clone());
    tokio::pin!(cancel);
    let end = tokio::select! {
        joined = &mut task => match joined {
            Ok(r) => End::Done(r),
            Err(e) if e.is_panic() => End::Panicked(panic_message(e.into_panic())),
            Err(_) => End::Done(Err(Fail::unknown("probe task was cancelled"))),
        },
        _ = tokio::time::sleep_until(work.end()) => End::TimedOut,
        why = &mut cancel => End::Cancelled(why),
    };
    if !task.is_finished() {
        task.abort();
        let _ = tokio::time::timeout(Duration::from_millis(200), task).await;
    }

    // Cleanup: after a signal only the grace; otherwise up to the hard end.
    let cleanup_deadline = match end {
        End::Cancelled(_) => total.within(grace),
        _ => total,
    };
    run_cleanups(&rec, cleanup_deadline).await;
    assemble(&opts, &rec, started_at, t0, end)
}

/// The body's future made and spawned outside `execute`'s own: an async
/// fn keeps room for every future it makes, even one moved away at once,
/// and a probe body is 13-25 KB (every probe in flight carried it twice).
fn spawn_body<B, F>(
    body: B,
    ctx: Ctx,
    rec: Arc<Recorder>,
) -> tokio::task::JoinHandle<Result<String, Fail>>
where
    B: FnOnce(Ctx) -> F,
    F: Future<Output = Result<String, Fail>> + Send + 'static,
{
    tokio::spawn(crate::secret::carry(crate::poll::as_run(rec, body(ctx))))
}

async fn run_cleanups(rec: &Arc<Recorder>, deadline: Deadline) {
    let mut handles = Vec::new();
    for owed in rec.take_owed() {
        let fut = (owed.cleanup)(deadline);
        handles.push((owed.id, owed.label, tokio::spawn(crate::secret::carry(fut))));
    }
    for (id, label, handle) in handles {
        match tokio::time::timeout_at(deadline.end(), handle).await {
            Ok(Ok(deleted)) => rec.settle_result(id, &deleted),
            Ok(Err(e)) if e.is_panic() => rec.settle(
                id,
                Cleanup::Failed(format!("internal error deleting {label}")),
            ),
            Ok(Err(_)) => rec.settle(id, Cleanup::Leaked),
            Err(_) => rec.settle(
                id,
                Cleanup::Failed("no time left to confirm deletion".into()),
            ),
        }
    }
}

fn assemble(
    opts: &RunOptions,
    rec: &Arc<Recorder>,
    started_at: f64,
    t0: Instant,
    end: End,
) -> ProbeResult {
    let stage = rec.current_stage();
    let mut steps = rec.steps();
    let stage_id = stage.map(|(c, _)| c.id.to_string());
    let stage_name = stage
        .map(|(c, d)| format!("{} {} (running {:.1}s)", c.id, c.name, d.as_secs_f64()))
        .unwrap_or_else(|| match steps.last() {
            Some(s) => format!("work after stage {} {}", s.check, s.name),
            None => "work before the first stage".into(),
        });
    // -t run out while the monitor got its own credential (its OIDC
    // provider, its token files): the monitor's trouble, UNKNOWN whatever
    // --timeout-status says of the site's.
    let timeout_status = |stage: Option<&str>| {
        if stage == Some(crate::model::MONITOR_CREDENTIAL_CHECK) {
            Status::Unknown
        } else {
            opts.timeout_status
        }
    };
    let mut push_stage_step = |status: Status, message: String| {
        if let Some((c, d)) = stage {
            steps.push(Step {
                check: c.id.into(),
                requirement: c.requirement.into(),
                name: c.name.into(),
                status,
                message,
                duration: d,
                http: None,
                transport: None,
                cut_by_deadline: false,
            });
        }
    };
    // The stage a failed body stopped in: its last failed step.
    let failed_stage = |steps: &[Step]| {
        steps
            .iter()
            .rev()
            .find(|s| s.status > Status::Warning)
            .map(|s| s.check.clone())
    };
    let (outcome, mut status, mut summary) = match end {
        End::Done(Ok(summary)) => (Outcome::Finished, Status::Ok, summary),
        // A request cut by the deadline and the deadline itself are one event,
        // whichever fired first: report both the same way.
        End::Done(Err(f)) if f.kind == FailKind::Timeout => (
            Outcome::TimedOut {
                stage: failed_stage(&steps),
            },
            timeout_status(failed_stage(&steps).as_deref()),
            format!(
                "Timeout: no result within {}s (-t): {}",
                fmt_secs(opts.timeout),
                f.message
            ),
        ),
        End::Done(Err(f)) => (Outcome::Finished, f.status, f.message),
        End::Panicked(msg) => {
            push_stage_step(Status::Unknown, format!("internal error: {msg}"));
            (
                Outcome::Panicked {
                    message: msg.clone(),
                    stage: stage_id,
                },
                Status::Unknown,
                format!("internal error in {stage_name}: {msg}"),
            )
        }
        End::TimedOut => {
            push_stage_step(timeout_status(stage_id.as_deref()), "timed out".into());
            // No stage running: a request cut by the deadline has just
            // recorded its stage's failure (the same event): name that stage.
            let cut = stage.is_none().then(|| failed_stage(&steps)).flatten();
            let (stage_id, stage_name) = match cut {
                Some(id) => {
                    let name = steps
                        .iter()
                        .rev()
                        .find(|s| s.check == id)
                        .map(|s| format!("{id} {}", s.name))
                        .unwrap_or_else(|| id.clone());
                    (Some(id), format!("stage {name}"))
                }
                None if stage.is_some() => (stage_id, format!("stage {stage_name}")),
                None => (stage_id, stage_name),
            };
            (
                Outcome::TimedOut {
                    stage: stage_id.clone(),
                },
                timeout_status(stage_id.as_deref()),
                format!(
                    "Timeout: no result within {}s (-t), {stage_name} did not finish",
                    fmt_secs(opts.timeout)
                ),
            )
        }
        End::Cancelled(why) => {
            push_stage_step(Status::Unknown, format!("interrupted by {why}"));
            let outcome = match why {
                // Given up on past its own deadline: a timeout, whoever noticed.
                Stop::Deadline(_) => Outcome::TimedOut { stage: stage_id },
                _ => Outcome::Cancelled {
                    by: why.to_string(),
                    stage: stage_id,
                },
            };
            (
                outcome,
                Status::Unknown,
                format!("Interrupted by {why} during {stage_name}"),
            )
        }
    };
    let worst = Status::worst(steps.iter().map(|s| s.status));
    if worst > status {
        if let Some(s) = steps.iter().find(|s| s.status == worst) {
            summary = format!("{} {}: {}; {summary}", s.check, s.name, s.message);
        }
        status = worst;
    }
    let resources = rec.resources();
    for r in &resources {
        match &r.cleanup {
            Cleanup::Deleted => {}
            Cleanup::Failed(why) => {
                status = status.max(Status::Critical);
                summary.push_str(&format!("; {} {} NOT deleted: {why}", r.kind, r.id));
            }
            Cleanup::Leaked => {
                status = status.max(Status::Warning);
                summary.push_str(&format!("; {} {} left behind", r.kind, r.id));
            }
        }
    }
    let duration = t0.elapsed();
    let mut perfdata = rec.perfdata();
    let (warn, crit) = (opts.settings.warning, opts.settings.critical);
    let mut total = Perf::seconds("total", duration);
    // -w/-c go to the probe's main measurement; a probe without one (or
    // that did not get as far) has them judge its run time, never ignore them.
    if (warn.is_some() || crit.is_some())
        && !perfdata.iter().any(|p| p.warn == warn && p.crit == crit)
    {
        total = total.thresholds(warn, crit);
    }
    perfdata.push(total);
    // Every perfdata item is judged by the thresholds it shows, as engines
    // read them: a value past its printed critical range is CRITICAL. Not
    // over a verdict already UNKNOWN or CRITICAL (a timeout stays one).
    if status < Status::Unknown {
        for p in &perfdata {
            let Some(value) = p.value else { continue };
            let v = crate::model::verdict(value, p.warn, p.crit);
            if v > status {
                let (range, which) = match v {
                    Status::Critical => (p.crit, "critical"),
                    _ => (p.warn, "warning"),
                };
                // `@a:b` alerts inside a:b; a plain range outside it.
                let place = if range.is_some_and(|r| r.inside) {
                    "inside"
                } else {
                    "outside"
                };
                let range = range.map(|r| r.to_string()).unwrap_or_default();
                let shown = match p.uom {
                    crate::model::Uom::Seconds => format!("{value:.3}"),
                    _ => crate::text::fmt_num(value),
                };
                summary = format!(
                    "{} {shown}{} {place} the {which} range {range}; {summary}",
                    p.label,
                    p.uom.as_str()
                );
                status = v;
            }
        }
    }
    ProbeResult {
        probe: opts.probe.clone(),
        label: opts.label.clone(),
        status,
        outcome,
        summary,
        steps,
        perfdata,
        resources,
        started_at,
        duration,
        http_requests: rec.requests(),
        details: rec.details(),
    }
}

/// A result for a probe that could not start (bad arguments, unknown name):
/// UNKNOWN, with the reason as its summary.
pub fn not_started(probe: &str, label: &str, reason: String) -> ProbeResult {
    ProbeResult {
        probe: probe.into(),
        label: label.into(),
        status: Status::Unknown,
        outcome: Outcome::NotStarted {
            reason: reason.clone(),
        },
        summary: reason,
        steps: vec![],
        perfdata: vec![],
        resources: vec![],
        started_at: crate::clock::now_unix(),
        duration: Duration::ZERO,
        http_requests: 0,
        details: vec![],
    }
}

fn fmt_secs(d: Duration) -> String {
    crate::text::fmt_num((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// What a caught panic said (its `&str` or `String` payload).
pub fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::Done;
    use crate::model::{CheckId, ResourceKind, Transport};

    const C1: CheckId = CheckId {
        id: "T-01",
        requirement: "REQ-1",
        name: "first",
    };
    const C2: CheckId = CheckId {
        id: "T-02",
        requirement: "REQ-1",
        name: "slow",
    };

    fn opts(timeout_ms: u64) -> RunOptions {
        RunOptions {
            probe: "check_test".into(),
            label: "TEST".into(),
            timeout: Duration::from_millis(timeout_ms),
            timeout_status: Status::Unknown,
            cleanup_grace: Some(Duration::from_millis(timeout_ms / 4)),
            tls: TlsOptions::default(),
            settings: Settings::default(),
            events: None,
        }
    }

    fn never() -> impl Future<Output = Stop> {
        std::future::pending()
    }

    #[tokio::test]
    async fn success_collects_steps_and_total() {
        let r = execute(opts(2000), never(), |ctx: Ctx| async move {
            ctx.step(C1, async { Ok(Done::ok((), "fine")) }).await?;
            Ok("all good".to_string())
        })
        .await;
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.summary, "all good");
        assert_eq!(r.steps.len(), 1);
        assert!(r.perfdata.iter().any(|p| p.label == "total"));
    }

    fn with_ranges(w: &str, c: &str) -> RunOptions {
        let mut o = opts(2000);
        o.settings.warning = Some(w.parse().unwrap());
        o.settings.critical = Some(c.parse().unwrap());
        o
    }

    #[tokio::test]
    async fn a_value_past_the_thresholds_it_shows_sets_the_status() {
        // The probe put -w/-c on its measurement but did not judge it.
        let r = execute(with_ranges("1", "1.5"), never(), |ctx: Ctx| async move {
            let (w, c) = (ctx.warning(), ctx.critical());
            ctx.perf(Perf::seconds("running", Duration::from_millis(2006)).thresholds(w, c));
            Ok("done".to_string())
        })
        .await;
        assert_eq!(r.status, Status::Critical);
        assert_eq!(
            r.summary,
            "running 2.006s outside the critical range 1.5; done"
        );
        let total = r.perfdata.iter().find(|p| p.label == "total").unwrap();
        assert_eq!((total.warn, total.crit), (None, None), "taken by running");

        // 1.2 s judged by -w/-c; `@` alerts inside its range, and says so.
        for (w, said) in [
            ("1", "running 1.200s outside the warning range 1;"),
            ("@1:1.5", "running 1.200s inside the warning range @1:1.5;"),
        ] {
            let r = execute(with_ranges(w, "9"), never(), |ctx: Ctx| async move {
                ctx.perf(
                    Perf::seconds("running", Duration::from_millis(1200))
                        .thresholds(ctx.warning(), ctx.critical()),
                );
                Ok("done".to_string())
            })
            .await;
            assert_eq!(r.status, Status::Warning, "{}", r.summary);
            assert!(r.summary.starts_with(said), "{}", r.summary);
        }
    }

    #[tokio::test]
    async fn without_a_main_measurement_the_thresholds_judge_the_run_time() {
        let r = execute(
            with_ranges("0.01", "0.02"),
            never(),
            |_ctx: Ctx| async move {
                tokio::time::sleep(Duration::from_millis(60)).await;
                Ok("done".to_string())
            },
        )
        .await;
        assert_eq!(r.status, Status::Critical);
        assert!(r.summary.starts_with("total 0.0"), "{}", r.summary);
        let total = r.perfdata.iter().find(|p| p.label == "total").unwrap();
        assert_eq!(total.crit.unwrap().to_string(), "0.02");
        // Not over a verdict already worse: a failed run keeps its reason.
        let r = execute(
            with_ranges("0.01", "0.02"),
            never(),
            |ctx: Ctx| async move {
                tokio::time::sleep(Duration::from_millis(60)).await;
                ctx.step(C2, async {
                    Err::<Done<()>, _>(Fail::unknown("OIDC provider down"))
                })
                .await?;
                Ok("unreachable".to_string())
            },
        )
        .await;
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.summary, "T-02 slow: OIDC provider down");
    }

    #[tokio::test]
    async fn a_timeout_getting_the_monitors_credential_stays_unknown() {
        let mut o = opts(300);
        o.timeout_status = Status::Critical;
        let r = execute(o.clone(), never(), |ctx: Ctx| async move {
            ctx.step(crate::auth::READ_TOKEN, async {
                std::future::pending::<()>().await;
                Ok(Done::ok((), "never"))
            })
            .await?;
            Ok("unreachable".to_string())
        })
        .await;
        assert_eq!(r.status, Status::Unknown, "{}", r.summary);
        assert!(r.summary.contains("stage AUTH-01"), "{}", r.summary);
        // The site's stage: as --timeout-status says.
        let r = execute(o.clone(), never(), |ctx: Ctx| async move {
            ctx.step(C2, async {
                std::future::pending::<()>().await;
                Ok(Done::ok((), "never"))
            })
            .await?;
            Ok("unreachable".to_string())
        })
        .await;
        assert_eq!(r.status, Status::Critical, "{}", r.summary);
        // Work outside any stage is named by the stage before it.
        let r = execute(o, never(), |ctx: Ctx| async move {
            ctx.step(C1, async { Ok(Done::ok((), "fine")) }).await?;
            std::future::pending::<()>().await;
            Ok("unreachable".to_string())
        })
        .await;
        assert!(
            r.summary
                .ends_with("work after stage T-01 first did not finish"),
            "{}",
            r.summary
        );
    }

    #[tokio::test]
    async fn failure_names_the_stage() {
        let r = execute(opts(2000), never(), |ctx: Ctx| async move {
            ctx.step(C1, async { Ok(Done::warn((), "meh")) }).await?;
            ctx.step(C2, async { Err::<Done<()>, _>(Fail::critical("HTTP 502")) })
                .await?;
            Ok("unreachable".to_string())
        })
        .await;
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.outcome, Outcome::Finished);
        assert_eq!(r.summary, "T-02 slow: HTTP 502");
        assert_eq!(r.steps[0].status, Status::Warning);
    }

    #[tokio::test]
    async fn timeout_names_stage_and_cleans_up() {
        let deleted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = deleted.clone();
        let r = execute(opts(800), never(), move |ctx: Ctx| async move {
            let http = ctx.http().clone();
            ctx.track(
                ResourceKind::Server,
                "abc",
                None,
                &http,
                move |_, _| async move {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                },
            );
            ctx.step(C2, async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Done::ok((), ""))
            })
            .await?;
            Ok("unreachable".to_string())
        })
        .await;
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(
            r.outcome,
            Outcome::TimedOut {
                stage: Some("T-02".into())
            }
        );
        assert!(r.summary.starts_with("Timeout"), "{}", r.summary);
        assert!(r.summary.contains("T-02 slow"), "{}", r.summary);
        assert!(deleted.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
        assert!(r.duration < Duration::from_millis(800));
    }

    #[tokio::test]
    async fn timeout_status_is_configurable() {
        let mut o = opts(300);
        o.timeout_status = Status::Critical;
        let r = execute(o, never(), |_ctx: Ctx| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(String::new())
        })
        .await;
        assert_eq!(r.status, Status::Critical);
    }

    #[tokio::test]
    async fn request_cut_by_deadline_reads_as_timeout() {
        let mut o = opts(2000);
        o.timeout_status = Status::Critical;
        let r = execute(o, never(), |ctx: Ctx| async move {
            ctx.step(C2, async {
                Err::<Done<()>, _>(Fail::timeout("no answer before the deadline"))
            })
            .await?;
            Ok(String::new())
        })
        .await;
        assert_eq!(r.status, Status::Critical);
        assert!(r.outcome.is_timeout(), "{:?}", r.outcome);
        assert!(
            r.summary
                .starts_with("Timeout: no result within 2s (-t): T-02 slow"),
            "{}",
            r.summary
        );
    }

    #[tokio::test]
    async fn panic_becomes_unknown() {
        let r = execute(opts(2000), never(), |ctx: Ctx| async move {
            ctx.step(C1, async {
                let v: Vec<u8> = Vec::new();
                let _ = v[3];
                Ok(Done::ok((), ""))
            })
            .await?;
            Ok(String::new())
        })
        .await;
        assert_eq!(r.status, Status::Unknown);
        assert!(
            matches!(&r.outcome, Outcome::Panicked { stage: Some(s), .. } if s == "T-01"),
            "{:?}",
            r.outcome
        );
        assert!(
            r.summary.starts_with("internal error in T-01 first"),
            "{}",
            r.summary
        );
    }

    #[tokio::test]
    async fn cancel_runs_cleanup_and_reports_failed_delete() {
        let r = execute(
            opts(5000),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Stop::Signal("SIGTERM".into())
            },
            |ctx: Ctx| async move {
                let http = ctx.http().clone();
                ctx.track(ResourceKind::Image, "img1", None, &http, |_, _| async {
                    Err(Fail::critical("HTTP 500"))
                });
                ctx.track(ResourceKind::Server, "s1", None, &http, |_, _| async {
                    Err(Fail::critical("connection reset").with_transport(Transport::Reset))
                });
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(String::new())
            },
        )
        .await;
        assert_eq!(r.status, Status::Critical);
        assert!(
            matches!(&r.outcome, Outcome::Cancelled { by, .. } if by == "SIGTERM"),
            "{:?}",
            r.outcome
        );
        assert!(
            r.summary.contains("Interrupted by SIGTERM"),
            "{}",
            r.summary
        );
        assert!(
            r.summary.contains("image img1 NOT deleted: HTTP 500"),
            "{}",
            r.summary
        );
        // The failed deletes keep their transport class as a fact.
        let transports: Vec<_> = r.resources.iter().map(|r| r.transport).collect();
        assert_eq!(transports, [None, Some(Transport::Reset)]);
    }

    /// A loopback HTTP/1.1 server that answers every request `200 ok` on a
    /// kept-alive connection and logs, in order, `open N`, `get N` (a
    /// request on connection N) and `close N` (the client let it go).
    async fn logging_server() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let events = log.clone();
        tokio::spawn(async move {
            for n in 0..20 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let log = events.clone();
                log.lock().unwrap().push(format!("open {n}"));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut have = Vec::new();
                    while let Ok(k) = s.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        have.extend_from_slice(&buf[..k]);
                        while let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            have.drain(..end + 4);
                            log.lock().unwrap().push(format!("get {n}"));
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                    log.lock().unwrap().push(format!("close {n}"));
                });
            }
        });
        (url, log)
    }

    /// Three looks `every` apart, each a GET of `url`.
    async fn three_looks(url: String, every: Duration) -> ProbeResult {
        execute(opts(10_000), never(), move |ctx: Ctx| async move {
            let url = reqwest::Url::parse(&url).unwrap();
            let mut looks = 0;
            let wait =
                crate::poll::Wait::bounded(ctx.deadline(), Duration::from_secs(5), Some(every));
            crate::poll::wait_for(wait, || {
                looks += 1;
                let (http, url, n) = (ctx.http().clone(), url.clone(), looks);
                async move {
                    http.send(http.get(url)).await?.success()?;
                    Ok(if n < 3 {
                        crate::poll::Poll::Pending(format!("look {n}"))
                    } else {
                        crate::poll::Poll::Ready(())
                    })
                }
            })
            .await?;
            Ok("ready".to_string())
        })
        .await
    }

    #[tokio::test]
    async fn a_wait_that_sleeps_long_holds_no_connection_while_it_sleeps() {
        let (url, log) = logging_server().await;
        let r = three_looks(url, crate::poll::REST_AFTER).await;
        assert_eq!(r.status, Status::Ok, "{}", r.summary);
        // The server sees the close (EOF) a moment after the client lets go.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = log.lock().unwrap().clone();
        let head: Vec<&str> = log.iter().map(String::as_str).take(8).collect();
        assert_eq!(
            head,
            ["open 0", "get 0", "close 0", "open 1", "get 1", "close 1", "open 2", "get 2"],
            "each look on its own connection, the last one closed before the next opens"
        );
    }

    /// Logs `turn N` when it gives its Nth turn, after `delay`, and `let
    /// go N` when that turn is dropped.
    struct LoggingPace {
        log: Arc<std::sync::Mutex<Vec<String>>>,
        given: std::sync::atomic::AtomicUsize,
        delay: Duration,
    }

    struct LoggedTurn(usize, Arc<std::sync::Mutex<Vec<String>>>);

    impl Drop for LoggedTurn {
        fn drop(&mut self) {
            self.1.lock().unwrap().push(format!("let go {}", self.0));
        }
    }

    impl crate::poll::Pace for LoggingPace {
        fn turn(
            self: Arc<Self>,
        ) -> std::pin::Pin<Box<dyn Future<Output = crate::poll::Turn> + Send>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let n = 1 + self.given.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                self.log.lock().unwrap().push(format!("turn {n}"));
                Box::new(LoggedTurn(n, self.log.clone())) as crate::poll::Turn
            })
        }
    }

    #[tokio::test]
    async fn a_rested_run_looks_again_only_with_a_turn_and_lets_it_go_when_it_rests() {
        let (url, log) = logging_server().await;
        let pace = Arc::new(LoggingPace {
            log: log.clone(),
            given: Default::default(),
            delay: Duration::from_millis(150),
        });
        let r = crate::poll::paced(pace, three_looks(url, crate::poll::REST_AFTER)).await;
        assert_eq!(r.status, Status::Ok, "{}", r.summary);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = log.lock().unwrap().clone();
        let seen: Vec<&str> = log
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("open") && !l.starts_with("close"))
            .collect();
        assert_eq!(
            seen,
            ["get 0", "turn 1", "get 1", "let go 1", "turn 2", "get 2", "let go 2"],
            "each look after a rest waits for a turn, held until the next rest or the end"
        );
        // Without a pace (a probe binary, `fedprobe serve`) nothing waits.
        let (url, log) = logging_server().await;
        let r = three_looks(url, crate::poll::REST_AFTER).await;
        assert_eq!(r.status, Status::Ok, "{}", r.summary);
        assert!(log.lock().unwrap().iter().all(|l| !l.starts_with("turn")));
    }

    #[tokio::test]
    async fn a_wait_that_looks_often_keeps_its_connection() {
        let (url, log) = logging_server().await;
        let r = three_looks(url, Duration::from_millis(50)).await;
        assert_eq!(r.status, Status::Ok, "{}", r.summary);
        let log = log.lock().unwrap().clone();
        let head: Vec<&str> = log.iter().map(String::as_str).take(4).collect();
        assert_eq!(head, ["open 0", "get 0", "get 0", "get 0"]);
    }
}
