//! check_object_storage end to end against the real peers: real OIDC token,
//! Apache + mod_auth_openidc, Keystone and Swift (keystoneauth) over https.
//! What is left is checked in the project's own account, as its password
//! user sees it on Swift's direct port.

use std::time::Duration;

use serde_json::{json, Value};

use crate::realpeers;
use realpeers::{assert_no_token, run_bin, run_sampling_rss, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_object_storage");

/// One real-Swift test at a time: the SIGTERM test finds its container as
/// the new `fedprobe-*` one in the account.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The probe's argv as ARGO runs swiftprobe, plus the peers' CA and `extra`.
fn argo_args(p: &Peers, token_file: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--access-token",
        token_file,
        "--cert",
        p.get("CA_CERT"),
        "--identity-provider",
        p.get("IDP"),
        "-t",
        "120",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// A token of the ops project's password user (direct Keystone).
async fn project_token(p: &Peers) -> String {
    let pw = std::fs::read_to_string(p.get("PASSWORD_FILE")).expect("password file");
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": p.get("PASSWORD_USER"), "domain": {"name": p.get("USER_DOMAIN_NAME")},
            "password": pw.trim()}}},
        "scope": {"project": {"id": p.get("OPS_PROJECT_ID")}}}});
    let resp = p
        .client
        .post(format!("{}/auth/tokens", p.get("KEYSTONE_DIRECT_URL")))
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("keystone answers");
    assert!(resp.status().is_success(), "login: {}", resp.status());
    resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_string()
}

/// The ops account's containers named `fedprobe-*`.
async fn probe_containers(p: &Peers, token: &str) -> Vec<String> {
    let resp = p
        .client
        .get(format!(
            "{}/AUTH_{}?format=json&prefix=fedprobe-",
            p.get("SWIFT_DIRECT_URL"),
            p.get("OPS_PROJECT_ID")
        ))
        .header("X-Auth-Token", token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("swift answers");
    assert!(resp.status().is_success(), "listing: {}", resp.status());
    if resp.status() == reqwest::StatusCode::NO_CONTENT {
        return Vec::new();
    }
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The container name in `OBJECT_STORAGE OK - container <name>: ...`.
fn container_of(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "container")
        .nth(1)
        .unwrap_or("")
        .trim_end_matches(':')
        .to_string()
}

struct Setup {
    peers: Peers,
    token: String,
    _dir: tempfile::TempDir,
    file: String,
}

async fn setup(test: &str) -> Option<Setup> {
    let peers = Peers::load(test)?;
    if peers.get("SWIFT_DIRECT_URL").is_empty() {
        eprintln!("SKIP {test}: peers.env has no SWIFT_DIRECT_URL (peers without Swift)");
        return None;
    }
    let token = peers.access_token(test).await?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc");
    std::fs::write(&file, &token).unwrap();
    Some(Setup {
        peers,
        token,
        file: file.display().to_string(),
        _dir: dir,
    })
}

#[tokio::test]
async fn object_cycle_ok() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("object_cycle_ok").await else {
        return;
    };
    let args = argo_args(&s.peers, &s.file, &["--size", "1M"]);
    let (code, out, cpu, wall) = run_bin(BIN, &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("OBJECT_STORAGE OK - container fedprobe-"),
        "{out}"
    );
    for want in [
        "OBJ-01 create container",
        "OBJ-03 read object back: 1048576 bytes identical, ETag = MD5",
        "OBJ-04 object listed in container",
        "OBJ-05 delete object",
        "OBJ-06 delete container",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert_no_token(&out, &s.token);
    let c = container_of(&out);
    assert!(
        out.contains(&format!("created container {c}: deleted")),
        "{out}"
    );
    let left = probe_containers(&s.peers, &project_token(&s.peers).await).await;
    assert!(!left.contains(&c), "container {c} left: {left:?}");
    eprintln!("BENCH check_object_storage 1M: wall {wall:.3}s, cpu {cpu:.3}s");
}

/// Past the old 48 MiB cap through the real Swift: the object is generated
/// while it is sent and compared while it is read back, so the probe's peak
/// RSS stays under 20 MB (it held the object twice before: 400 MB+ here).
#[tokio::test]
async fn large_object_streams_in_bounded_memory() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("large_object_streams_in_bounded_memory").await else {
        return;
    };
    let mut args = argo_args(&s.peers, &s.file, &["--size", "200M"]);
    // ARGO's -t 120 plus room for 200 MiB each way on a loaded machine.
    let t = args.iter().position(|a| a == "-t").unwrap();
    args[t + 1] = "600".into();
    let (code, out, peak_kb) = run_sampling_rss(BIN, &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OBJ-03 read object back: 209715200 bytes identical, ETag = MD5"),
        "{out}"
    );
    assert!(out.contains("OBJ-02 store object"), "{out}");
    assert!(out.contains(" put_rate="), "{out}");
    assert!(out.contains(" get_rate="), "{out}");
    assert_no_token(&out, &s.token);
    assert!(peak_kb > 0, "no VmHWM read");
    assert!(
        peak_kb < 20 * 1024,
        "peak RSS {peak_kb} kB for a 200 MiB object: {out}"
    );
    let c = container_of(&out);
    let left = probe_containers(&s.peers, &project_token(&s.peers).await).await;
    assert!(!left.contains(&c), "container {c} left: {left:?}");
    eprintln!("BENCH check_object_storage 200 MiB: peak RSS {peak_kb} kB");
}

/// The `swiftprobe` drop-in with ARGO's command line for
/// eu.egi.cloud.OpenStack-Swift, against the real Swift.
#[tokio::test]
async fn swiftprobe_binary_runs_argos_command_line_against_the_real_swift() {
    const TEST: &str = "swiftprobe_binary_runs_argos_command_line_against_the_real_swift";
    let _one = SERIAL.lock().await;
    let Some(s) = setup(TEST).await else {
        return;
    };
    let args: Vec<String> = [
        "-t",
        "300",
        "-v",
        "--access-token",
        &s.file,
        "--endpoint",
        s.peers.get("KEYSTONE_URL"),
        "--cert",
        s.peers.get("CA_CERT"),
        "--identity-provider",
        s.peers.get("IDP"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let (code, out, _, _) = run_bin(env!("CARGO_BIN_EXE_swiftprobe"), &args).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("OBJECT_STORAGE OK - container fedprobe-"),
        "{out}"
    );
    assert!(out.contains("[OK] OBJ-06 delete container"), "{out}");
    assert_no_token(&out, &s.token);
    let c = container_of(&out);
    let left = probe_containers(&s.peers, &project_token(&s.peers).await).await;
    assert!(!left.contains(&c), "container {c} left: {left:?}");
}

#[tokio::test]
async fn sigterm_during_put_leaves_nothing() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("sigterm_during_put_leaves_nothing").await else {
        return;
    };
    let user = project_token(&s.peers).await;
    let before = probe_containers(&s.peers, &user).await;
    // A large object keeps the probe in the put for a while (it is sent as
    // it is generated, at hundreds of MB/s).
    let args = argo_args(&s.peers, &s.file, &["--size", "200M"]);
    let child = tokio::process::Command::new(BIN)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut mine = None;
    for _ in 0..600 {
        let now = probe_containers(&s.peers, &user).await;
        if let Some(c) = now.into_iter().find(|c| !before.contains(c)) {
            mine = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mine = mine.expect("the probe's container appeared in the account");
    // The container exists: the probe is past OBJ-01 and sending the object.
    tokio::time::sleep(Duration::from_millis(100)).await;
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
        text.contains("Interrupted by SIGTERM during OBJ-02"),
        "{text}"
    );
    assert!(
        text.contains(&format!("created container {mine}: deleted")),
        "{text}"
    );
    assert_no_token(&text, &s.token);
    let left = probe_containers(&s.peers, &user).await;
    assert!(!left.contains(&mine), "container {mine} left: {left:?}");
}
