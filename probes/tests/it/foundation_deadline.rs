//! The hard `-t` deadline and SIGTERM, end to end through the real binary:
//! a site that never answers, or answers one byte a second, must not keep a
//! probe past its deadline; a signal must still yield a valid Nagios line.
//! Plus the runner's cleanup making a real HTTP DELETE after a cancel.

use crate::foundation_support;

use std::sync::Arc;
use std::time::Duration;

use foundation_support::*;
use probes::model::Cleanup;
use probes::runner::{execute, RunOptions};
use probes::{Ctx, Done, Status};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Upper bound for a `-t 3` run: the deadline plus process start and exit.
const BOUND: Duration = Duration::from_secs(5);
const TOKEN: &str = "Dk4Rz9Qw2Nv7Lx5Tb8Hm3Jc";

fn assert_timeout_line(r: &Run, status: &str) {
    r.assert_well_formed("TOKEN_AUTH");
    let first = r.first_line();
    assert!(
        first.starts_with(&format!("TOKEN_AUTH {status} - ")),
        "{r:#?}"
    );
    assert!(first.contains("AUTH-02"), "stage not named: {first}");
    assert!(first.contains("Timeout"), "does not say Timeout: {first}");
    assert!(r.elapsed < BOUND, "took {:?}: {first}", r.elapsed);
}

#[tokio::test]
async fn hanging_site_ends_by_the_deadline_as_unknown() {
    let endpoint = hanging_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let r = run(&probe_args(&endpoint, &token, &["-t", "3"])).await;
    assert_eq!(r.code, 3, "{r:#?}");
    assert_timeout_line(&r, "UNKNOWN");
}

#[tokio::test]
async fn timeout_status_critical_is_honoured() {
    let endpoint = hanging_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let r = run(&probe_args(
        &endpoint,
        &token,
        &["-t", "3", "--timeout-status", "critical"],
    ))
    .await;
    assert_eq!(r.code, 2, "{r:#?}");
    assert_timeout_line(&r, "CRITICAL");
}

#[tokio::test]
async fn trickling_body_ends_by_the_deadline() {
    let endpoint = trickling_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let r = run(&probe_args(&endpoint, &token, &["-t", "3"])).await;
    assert_eq!(r.code, 3, "{r:#?}");
    assert_timeout_line(&r, "UNKNOWN");
}

#[tokio::test]
async fn sigterm_yields_a_valid_unknown_line() {
    let (endpoint, seen) = hanging_server_counted().await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let t0 = std::time::Instant::now();
    let child = command(&probe_args(&endpoint, &token, &["-t", "60"]))
        .spawn()
        .expect("spawn");
    let pid = child.id().expect("pid");
    // Once the request is in, the probe is inside AUTH-02 and handles signals.
    while seen.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "probe never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let signalled = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("probe ignored SIGTERM for 10 s")
        .expect("wait");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: t0.elapsed(),
    };
    assert_eq!(r.code, 3, "{r:#?}");
    r.assert_well_formed("TOKEN_AUTH");
    assert!(
        r.first_line()
            .starts_with("TOKEN_AUTH UNKNOWN - Interrupted by SIGTERM during AUTH-02"),
        "{r:#?}"
    );
    // From the signal to exit: well under -t 60 (nothing to clean up here).
    let after = signalled.elapsed();
    assert!(
        after < Duration::from_secs(5),
        "exit {after:?} after SIGTERM"
    );
}

fn opts(timeout: Duration, grace: Duration) -> RunOptions {
    RunOptions {
        probe: "check_test".into(),
        label: "TEST".into(),
        timeout,
        timeout_status: Status::Unknown,
        cleanup_grace: Some(grace),
        tls: Default::default(),
        settings: probes::ctx::Settings {
            verbosity: 0,
            ..Default::default()
        },
        events: None,
    }
}

const CREATE: probes::CheckId = probes::CheckId {
    id: "T-01",
    requirement: "REQ",
    name: "create thing",
};

/// A tracked resource whose cleanup sends `DELETE url` with the runner's client.
fn track_delete(ctx: &Ctx, url: String) {
    let http = ctx.http().clone();
    ctx.track(
        probes::model::ResourceKind::Server,
        "srv-1",
        Some("probe-vm"),
        &http,
        move |http, _id| async move {
            let url =
                reqwest::Url::parse(&url).map_err(|e| probes::Fail::unknown(e.to_string()))?;
            let req = http.request(reqwest::Method::DELETE, url);
            http.send(req).await.and_then(|r| r.success()).map(drop)
        },
    );
}

#[tokio::test]
async fn cancel_runs_a_real_http_delete() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/servers/srv-1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/servers/srv-1", server.uri());
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    let cancel = async move {
        signal.notified().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        probes::runner::Stop::Signal("SIGTERM".into())
    };
    let r = execute(
        opts(Duration::from_secs(30), Duration::from_secs(5)),
        cancel,
        move |ctx: Ctx| async move {
            ctx.step(CREATE, async {
                track_delete(&ctx, url);
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Done::ok((), "created"))
            })
            .await?;
            Ok("unreachable".to_string())
        },
    )
    .await;
    let deletes: Vec<_> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "DELETE not received: {r:#?}");
    assert_eq!(r.resources.len(), 1);
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted, "{r:#?}");
    assert_eq!(r.status, Status::Unknown, "{r:#?}");
    assert!(
        r.summary
            .starts_with("Interrupted by SIGTERM during T-01 create thing"),
        "{}",
        r.summary
    );
    assert!(r.http_requests >= 1);
}

#[tokio::test]
async fn cleanup_that_hangs_is_cut_at_the_grace_and_reported() {
    let endpoint = hanging_server().await;
    let url = endpoint.replace("/v3", "/servers/srv-1");
    let t0 = std::time::Instant::now();
    let r = execute(
        opts(Duration::from_secs(30), Duration::from_secs(2)),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            probes::runner::Stop::Signal("SIGTERM".into())
        },
        move |ctx: Ctx| async move {
            track_delete(&ctx, url);
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(String::new())
        },
    )
    .await;
    // 0.3 s to the signal, then at most the 2 s grace for the DELETE (which
    // would hang for 600 s); the bound is loose for busy machines.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(
        matches!(r.resources[0].cleanup, Cleanup::Failed(_)),
        "{r:#?}"
    );
    assert_eq!(r.status, Status::Critical, "{r:#?}");
    assert!(
        r.summary.contains("server srv-1 NOT deleted"),
        "{}",
        r.summary
    );
}

/// A credential "file" that never answers (a FIFO with no writer; a hung
/// NFS mount behaves the same) blocks the probe's thread in `open`, its
/// timers and signal handling with it: the watchdog still ends the run at
/// `-t` with a valid line.
#[tokio::test]
async fn a_file_that_never_answers_does_not_outlast_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("token-fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let r = run(&probe_args("http://127.0.0.1:9/v3", &fifo, &["-t", "2"])).await;
    r.assert_well_formed("TOKEN_AUTH");
    assert_eq!(r.code, 3, "{r:#?}");
    let first = r.first_line();
    assert!(first.starts_with("TOKEN_AUTH UNKNOWN - Timeout"), "{first}");
    assert!(first.contains("| total=2."), "{first}");
    assert!(r.elapsed < BOUND, "took {:?}", r.elapsed);
    // The monitor's own file: UNKNOWN even when a timeout is asked to be CRITICAL.
    let r = run(&probe_args(
        "http://127.0.0.1:9/v3",
        &fifo,
        &["-t", "1", "--timeout-status", "critical"],
    ))
    .await;
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.first_line().starts_with("TOKEN_AUTH UNKNOWN - Timeout"),
        "{r:#?}"
    );
}
