//! check_vm_lifecycle end to end against the real peers: a real OIDC token,
//! Apache + mod_auth_openidc in front of Keystone, real Nova (fake virt
//! driver), Glance and Neutron, all over https with the peers' CA.

use crate::realpeers;

use std::time::Duration;

use realpeers::{assert_no_token, run_bin, Peers};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_check_vm_lifecycle");

struct Setup {
    peers: Peers,
    token: String,
    _dir: tempfile::TempDir,
    token_file: String,
}

async fn setup(test: &str) -> Option<Setup> {
    let peers = Peers::load(test)?;
    let token = peers.access_token(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oidc");
    std::fs::write(&path, &token).unwrap();
    Some(Setup {
        peers,
        token,
        token_file: path.display().to_string(),
        _dir: dir,
    })
}

/// ARGO's command line for eu.egi.cloud.OpenStack-VM, unchanged, plus `extra`.
fn argo_args(s: &Setup, host: &str, extra: &[&str]) -> Vec<String> {
    let p = &s.peers;
    let mut v: Vec<String> = [
        "-t",
        "300",
        "-v",
        "--access-token",
        &s.token_file,
        "--appdb-image",
        p.get("IMAGE_APPDB_ID"),
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--region",
        p.get("REGION"),
        "--cert",
        p.get("CA_CERT"),
        "--argo-host-name",
        host,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

async fn servers_of(p: &Peers, admin: &str, host: &str) -> Vec<Value> {
    p.all_servers(admin)
        .await
        .into_iter()
        .filter(|s| s["metadata"]["argo-mon-host"] == host)
        .collect()
}

#[tokio::test]
async fn argo_command_line_is_ok_and_leaks_no_token() {
    let Some(s) = setup("argo_command_line_is_ok_and_leaks_no_token").await else {
        return;
    };
    let host = format!("real-argo-{}", std::process::id());
    let (code, out, _, _) = run_bin(BIN, &argo_args(&s, &host, &["-vvv"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("VM_LIFECYCLE OK - Compute instance="),
        "{out}"
    );
    assert!(out.contains("[OK] VM-07 server becomes ACTIVE"), "{out}");
    assert!(
        out.contains("http: POST https://"),
        "-vvv shows the trace: {out}"
    );
    assert_no_token(&out, &s.token);
    let admin = s.peers.admin_token().await;
    assert!(servers_of(&s.peers, &admin, &host).await.is_empty());
}

#[tokio::test]
async fn image_by_id_and_by_registry_reference() {
    let Some(s) = setup("image_by_id_and_by_registry_reference").await else {
        return;
    };
    let p = &s.peers;
    let host = format!("real-img-{}", std::process::id());
    let by_id = argo_args(
        &s,
        &host,
        &[
            "--image",
            p.get("IMAGE_ID"),
            "--flavor",
            p.get("FLAVOR_NAME"),
        ],
    );
    let (code, out, _, _) = run_bin(BIN, &by_id).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(p.get("IMAGE_ID")), "{out}");
    let by_ref = argo_args(
        &s,
        &host,
        &["--registry-image", p.get("IMAGE_REGISTRY_REF")],
    );
    let (code, out, _, _) = run_bin(BIN, &by_ref).await;
    assert_eq!(code, 0, "{out}");
    let missing = argo_args(&s, &host, &["--registry-image", "registry.invalid/none:0"]);
    let (code, out, _, _) = run_bin(BIN, &missing).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("VM-02 find image: no image with"), "{out}");
}

/// The numbers for the benchmark table, from a full run's JSON.
#[tokio::test]
async fn benchmark_full_run() {
    let Some(s) = setup("benchmark_full_run").await else {
        return;
    };
    let host = format!("real-bench-{}", std::process::id());
    let (code, out, cpu, wall) =
        run_bin(BIN, &argo_args(&s, &host, &["-vvv", "--output", "json"])).await;
    assert_eq!(code, 0, "{out}");
    assert_no_token(&out, &s.token);
    let v: Value = serde_json::from_str(&out).expect("JSON output");
    let requests = v["http_requests"].as_u64().unwrap();
    assert!(requests >= 10, "{requests}");
    let lag = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .find(|d| d.starts_with("active lag:"))
        .expect("lag detail")
        .to_string();
    let perf = |l: &str| {
        v["perfdata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["label"] == l)
            .map(|p| p["value"].as_f64().unwrap_or(-1.0))
            .unwrap_or(-1.0)
    };
    eprintln!(
        "BENCH check_vm_lifecycle: wall {wall:.3}s, cpu(user+sys) {cpu:.3}s, http_requests {requests}, \
         auth {}s, create-to-ACTIVE {}s, delete {}s, polls {}, total {}s; {lag}",
        perf("auth"),
        perf("create"),
        perf("delete"),
        perf("polls"),
        perf("total")
    );
}

#[tokio::test]
async fn sigterm_while_waiting_deletes_the_server() {
    let Some(s) = setup("sigterm_while_waiting_deletes_the_server").await else {
        return;
    };
    let host = format!("real-sigterm-{}", std::process::id());
    // A long fixed poll interval keeps the probe waiting in VM-07.
    let args = argo_args(&s, &host, &["--poll-interval", "120"]);
    let child = tokio::process::Command::new(BIN)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let admin = s.peers.admin_token().await;
    let mut server_id = None;
    for _ in 0..240 {
        if let Some(srv) = servers_of(&s.peers, &admin, &host).await.first() {
            server_id = srv["id"].as_str().map(String::from);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let server_id = server_id.expect("the probe's server appeared in Nova");
    // Past the 202 (ctx.track) and into the wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("probe exits after SIGTERM")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("Interrupted by SIGTERM during VM-07"),
        "{text}"
    );
    assert!(
        text.contains(&format!("created server {server_id}: deleted")),
        "{text}"
    );
    // Nova agrees: nothing of this host is left.
    let left = servers_of(&s.peers, &admin, &host).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// SIGKILL leaves a VM behind (no process can clean up after that); the
/// next run of the same monitoring host deletes it and says so (WARNING).
#[tokio::test]
async fn next_run_reaps_what_a_killed_run_left() {
    let Some(s) = setup("next_run_reaps_what_a_killed_run_left").await else {
        return;
    };
    let host = format!("real-reap-{}", std::process::id());
    let mut child = tokio::process::Command::new(BIN)
        .args(argo_args(&s, &host, &["--poll-interval", "120"]))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin = s.peers.admin_token().await;
    let mut leftover = None;
    for _ in 0..240 {
        if let Some(srv) = servers_of(&s.peers, &admin, &host).await.first() {
            leftover = srv["id"].as_str().map(String::from);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let leftover = leftover.expect("the first run's server appeared");
    child.kill().await.unwrap(); // SIGKILL
    let (code, out, _, _) = run_bin(BIN, &argo_args(&s, &host, &[])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("from earlier runs: {leftover}")),
        "{out}"
    );
    assert!(out.contains("[OK] VM-08 delete server"), "{out}");
    let left = servers_of(&s.peers, &admin, &host).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The first server of `host` to appear in Nova (admin view), within 60 s.
async fn first_server_of(p: &Peers, admin: &str, host: &str) -> Option<String> {
    for _ in 0..240 {
        if let Some(srv) = servers_of(p, admin, host).await.first() {
            return srv["id"].as_str().map(String::from);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Two runs of one monitoring host overlap (a retry over a scheduled run,
/// two schedulers): the second must not reap the first's live server.
#[tokio::test]
async fn overlapping_runs_of_one_host_leave_each_other_alone() {
    let Some(s) = setup("overlapping_runs_of_one_host_leave_each_other_alone").await else {
        return;
    };
    let host = format!("real-overlap-{}", std::process::id());
    let admin = s.peers.admin_token().await;
    // A long first poll keeps the first run in VM-07 while the second runs.
    let first = tokio::process::Command::new(BIN)
        .args(argo_args(&s, &host, &["--poll-interval", "8"]))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let first_id = first_server_of(&s.peers, &admin, &host)
        .await
        .expect("the first run's server appeared in Nova");
    let (code, second_out, _, _) = run_bin(BIN, &argo_args(&s, &host, &[])).await;
    let first_out = tokio::time::timeout(Duration::from_secs(120), first.wait_with_output())
        .await
        .expect("first run ends")
        .unwrap();
    let first_text = String::from_utf8_lossy(&first_out.stdout);
    assert_eq!(code, 0, "second run: {second_out}");
    assert!(second_out.contains("[OK] VM-05"), "{second_out}");
    assert!(
        !second_out.contains(&first_id.to_string()),
        "the second run touched the first's server {first_id}: {second_out}"
    );
    assert_eq!(first_out.status.code(), Some(0), "first run: {first_text}");
    assert!(
        first_text.contains("[OK] VM-08 delete server"),
        "{first_text}"
    );
    assert!(
        first_text.contains(&format!("created server {first_id}: deleted")),
        "{first_text}"
    );
    let left = servers_of(&s.peers, &admin, &host).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Two monitoring hosts probe the same project at the same moment.
#[tokio::test]
async fn simultaneous_runs_of_two_hosts_leave_each_other_alone() {
    let Some(s) = setup("simultaneous_runs_of_two_hosts_leave_each_other_alone").await else {
        return;
    };
    let a = format!("real-twin-a-{}", std::process::id());
    let b = format!("real-twin-b-{}", std::process::id());
    let (args_a, args_b) = (argo_args(&s, &a, &[]), argo_args(&s, &b, &[]));
    let ((code_a, out_a, _, _), (code_b, out_b, _, _)) =
        tokio::join!(run_bin(BIN, &args_a), run_bin(BIN, &args_b));
    assert_eq!(code_a, 0, "{out_a}");
    assert_eq!(code_b, 0, "{out_b}");
    for out in [&out_a, &out_b] {
        assert!(out.contains("[OK] VM-05"), "{out}");
        assert!(out.contains("[OK] VM-08 delete server"), "{out}");
    }
    let admin = s.peers.admin_token().await;
    for host in [&a, &b] {
        let left = servers_of(&s.peers, &admin, host).await;
        assert!(left.is_empty(), "left behind by {host}: {left:?}");
    }
}
