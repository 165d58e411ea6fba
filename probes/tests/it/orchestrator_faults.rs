//! check_orchestrator's cleanup against the demo site's orchestrator made to
//! behave as IM 2.0 does mid-create (what the real IM only does under load):
//! a create that answers late, a deployment `pending` without VMs, and
//! `409 Invalid State` to a DELETE while it is adding VMs, and a DELETE
//! before that accepted and forgotten while the VM still appears. A signal
//! during the deploy must still leave nothing at the orchestrator or the site.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use probes::checks::orchestrator::Orchestrator;
use probes::model::Cleanup;
use probes::probe::{run, Invocation};
use probes::runner::Stop;

#[derive(Default)]
struct Seen {
    posted: AtomicBool,
    early_states: AtomicU32,
    conflicts: AtomicU32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_slow_create_waits_out_im_and_leaves_nothing() {
    let seen = Arc::new(Seen::default());
    let cloud: Arc<OnceLock<Arc<fakecloud::Cloud>>> = Arc::new(OnceLock::new());
    let (s, c) = (seen.clone(), cloud.clone());
    let hook: fakecloud::Override = Arc::new(move |r: &fakecloud::Req| {
        let p: Vec<&str> = r.path.iter().map(String::as_str).collect();
        match (r.method.as_str(), p.as_slice()) {
            // The create answers late (IM creating the VM at the site).
            ("POST", ["im", "infrastructures"]) => {
                s.posted.store(true, Ordering::SeqCst);
                // Blocking a worker would stall the tasks queued on it (the
                // probe's runner among them) and race the SIGTERM past the
                // create: hand the worker's tasks over first.
                tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(600)));
                None
            }
            // At first IM has no VM for it yet.
            ("GET", ["im", "infrastructures", _, "state"])
                if s.early_states.fetch_add(1, Ordering::SeqCst) < 2 =>
            {
                Some(fakecloud::http::reply(
                    reqwest::StatusCode::OK,
                    serde_json::json!({"state": {"state": "pending", "vm_states": {}}}),
                ))
            }
            // ... and lists none.
            ("GET", ["im", "infrastructures", _]) if s.early_states.load(Ordering::SeqCst) < 2 => {
                Some(fakecloud::http::reply(
                    reqwest::StatusCode::OK,
                    serde_json::json!({"uri-list": []}),
                ))
            }
            ("GET", ["im", "infrastructures", _, "vms", ..])
                if s.early_states.load(Ordering::SeqCst) < 2 =>
            {
                Some(fakecloud::http::reply(
                    reqwest::StatusCode::NOT_FOUND,
                    serde_json::json!({"message": "Error Getting VM. property: Invalid VM ID", "code": 404}),
                ))
            }
            // IM 2.0's bug: a destroy before the create reached the cloud
            // is accepted and forgotten, and the VM appears anyway.
            ("DELETE", ["im", "infrastructures", id])
                if s.early_states.load(Ordering::SeqCst) < 2 =>
            {
                if let Some(cloud) = c.get() {
                    cloud.deployments.lock().unwrap().retain(|d| d.id != *id);
                }
                Some(fakecloud::http::reply(
                    reqwest::StatusCode::OK,
                    serde_json::json!(""),
                ))
            }
            // Then it refuses destroys while it is still adding.
            ("DELETE", ["im", "infrastructures", _])
                if s.conflicts.fetch_add(1, Ordering::SeqCst) < 2 =>
            {
                Some(fakecloud::http::reply(
                    reqwest::StatusCode::CONFLICT,
                    serde_json::json!({"message": "Error Destroying Inf: Invalid State to perform this operation.", "code": 409}),
                ))
            }
            _ => None,
        }
    });
    let site = fakecloud::FakeCloud::start_with(
        fakecloud::Options {
            sites: 1,
            boot_delay: Duration::from_millis(200),
            faults: Default::default(),
        },
        Some(hook),
    )
    .await
    .unwrap();
    let _ = cloud.set(site.cloud.clone());
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, &site.cloud.access_token).unwrap();
    let pw = dir.path().join("im-password");
    std::fs::write(&pw, &site.cloud.client_secret).unwrap();
    let argv: Vec<String> = [
        "check_orchestrator",
        "--endpoint",
        &site.keystone(0),
        "--access-token",
        token.to_str().unwrap(),
        "--orchestrator",
        &format!("{}/im", site.base()),
        "--orchestrator-user",
        fakecloud::im::USER,
        "--orchestrator-password-file",
        pw.to_str().unwrap(),
        "--registry-image",
        "egi.ubuntu.22.04",
        "-t",
        "60",
        "--cleanup-grace",
        "30s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let inv = Invocation::<probes::checks::orchestrator::Args>::parse("check_orchestrator", &argv)
        .expect("argv parses");
    let s = seen.clone();
    // SIGTERM as soon as the create is on its way.
    let cancel = async move {
        while !s.posted.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Stop::Signal("SIGTERM".into())
    };
    let t0 = Instant::now();
    let r = run::<Orchestrator>(inv, cancel, None).await;
    let text = format!("{r:#?}");
    assert!(r.summary.contains("SIGTERM"), "{text}");
    assert!(
        r.summary.contains("ORCH-04"),
        "interrupted during the deploy: {text}"
    );
    eprintln!(
        "early states {}, conflicts {}, deployments {}",
        seen.early_states.load(Ordering::SeqCst),
        seen.conflicts.load(Ordering::SeqCst),
        site.cloud.deployments.lock().unwrap().len()
    );
    // The cleanup saw IM's answers: the early state and both 409s.
    assert!(seen.early_states.load(Ordering::SeqCst) >= 2, "{text}");
    assert!(seen.conflicts.load(Ordering::SeqCst) >= 3, "{text}");
    assert!(!r.resources.is_empty(), "{text}");
    for res in &r.resources {
        assert_eq!(res.cleanup, Cleanup::Deleted, "{res:?}: {text}");
    }
    // Nothing at the orchestrator, nothing at the site.
    assert!(site.cloud.deployments.lock().unwrap().is_empty());
    let s = site.cloud.site(0).unwrap();
    let left: Vec<&str> = s
        .servers
        .values()
        .filter(|v| v.deleted.is_none())
        .map(|v| v.name.as_str())
        .collect();
    assert!(left.is_empty(), "servers left: {left:?}");
    assert!(t0.elapsed() < Duration::from_secs(40));
}
