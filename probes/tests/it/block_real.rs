//! check_block_storage end to end against the real peers: OIDC login through
//! Apache + mod_auth_openidc, real Cinder (NFS driver on a local directory)
//! and Nova (fake driver) attaching its volumes. What is left is checked as
//! admin: every project's volumes and servers carrying the run's monitoring
//! host. The same probe also runs against moto (EC2/EBS): written once.

use std::time::Duration;

use serde_json::{json, Value};

use crate::realpeers;
use probes::checks::block_storage::BlockStorage;
use probes::model::Cleanup;
use probes::Status;
use realpeers::{assert_no_token, run_bin, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_block_storage");

/// One real-Cinder test at a time: each boots a server and the shared
/// peers run on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    peers: Peers,
    token: String,
    admin: String,
    dir: tempfile::TempDir,
    token_file: String,
}

async fn setup(test: &str) -> Option<Setup> {
    let peers = Peers::load(test)?;
    assert!(
        !peers.get("CINDER_DIRECT_URL").is_empty(),
        "{test}: peers.env has no CINDER_DIRECT_URL (peers without Cinder)"
    );
    let token = peers.access_token(test).await?;
    let admin = peers.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oidc");
    std::fs::write(&path, &token).unwrap();
    Some(Setup {
        peers,
        token,
        admin,
        token_file: path.display().to_string(),
        dir,
    })
}

/// The OIDC command line (as ARGO runs the VM probe) plus `extra`.
fn oidc_args(s: &Setup, host: &str, extra: &[&str]) -> Vec<String> {
    let p = &s.peers;
    let mut v: Vec<String> = [
        "-t",
        "300",
        "-v",
        "--access-token",
        &s.token_file,
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--region",
        p.get("REGION"),
        "--cert",
        p.get("CA_CERT"),
        "--argo-host-name",
        host,
        "--appdb-image",
        p.get("IMAGE_APPDB_ID"),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

/// Cinder as admin, project-less URLs (3.67+).
fn cinder(s: &Setup, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    s.peers
        .client
        .request(
            method,
            format!("{}/{path}", s.peers.get("CINDER_DIRECT_URL")),
        )
        .header("X-Auth-Token", &s.admin)
        .header("OpenStack-API-Version", "volume 3.67")
        .timeout(Duration::from_secs(30))
}

fn keystone(s: &Setup, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    s.peers
        .client
        .request(
            method,
            format!("{}/{path}", s.peers.get("KEYSTONE_DIRECT_URL")),
        )
        .header("X-Auth-Token", &s.admin)
        .timeout(Duration::from_secs(30))
}

async fn ok_json(r: reqwest::RequestBuilder, what: &str) -> Value {
    let resp = r.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{what}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Every project's volumes tagged with monitoring host `host`.
async fn volumes_of(s: &Setup, host: &str) -> Vec<Value> {
    let v = ok_json(
        cinder(s, reqwest::Method::GET, "volumes/detail?all_tenants=1"),
        "admin volume list",
    )
    .await;
    v["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v["metadata"]["argo-mon-host"] == host)
        .collect()
}

async fn servers_of(s: &Setup, host: &str) -> Vec<Value> {
    s.peers
        .all_servers(&s.admin)
        .await
        .into_iter()
        .filter(|x| x["metadata"]["argo-mon-host"] == host)
        .collect()
}

/// Nothing of `host` left, allowing the cloud a few seconds to finish
/// deletions the probe saw accepted.
async fn assert_nothing_left(s: &Setup, host: &str) {
    let mut left = (Vec::new(), Vec::new());
    for _ in 0..30 {
        left = (volumes_of(s, host).await, servers_of(s, host).await);
        if left.0.is_empty() && left.1.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!(
        "left behind for {host}: volumes {:?}, servers {:?}",
        left.0, left.1
    );
}

#[tokio::test]
async fn block_cycle_ok_through_oidc() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("block_cycle_ok_through_oidc").await else {
        return;
    };
    let host = format!("blk-ok-{}", std::process::id());
    let (code, out, cpu, wall) = run_bin(BIN, &oidc_args(&s, &host, &[])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("BLOCK_STORAGE OK - volume "), "{out}");
    for want in [
        "[OK] BLK-01 room for one more volume: volumes ",
        "[OK] BLK-02 create volume",
        "[OK] BLK-03 volume becomes available: available after",
        "[OK] BLK-04 server to attach to: own server",
        "[OK] BLK-05 attach volume: in-use, attached to",
        "[OK] BLK-06 attachment seen from the server: server",
        "[OK] BLK-07 detach volume: available again",
        "[OK] BLK-08 delete volume: gone (404)",
        "[OK] BLK-09 delete own server",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    for perf in [
        "quota=",
        "available=",
        "attach=",
        "detach=",
        "delete=",
        "server=",
    ] {
        assert!(out.contains(perf), "perfdata {perf}: {out}");
    }
    assert_no_token(&out, &s.token);
    assert_nothing_left(&s, &host).await;
    eprintln!("BENCH check_block_storage own server: wall {wall:.3}s, cpu {cpu:.3}s");
}

/// Start the probe, wait until the admin sees its volume in one of
/// `statuses`, SIGTERM it; return its exit code and output.
async fn sigterm_when(s: &Setup, host: &str, statuses: &[&str], extra: &[&str]) -> (i32, String) {
    let child = tokio::process::Command::new(BIN)
        .args(oidc_args(s, host, extra))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut seen = None;
    for _ in 0..600 {
        let v = volumes_of(s, host).await;
        if let Some(st) = v
            .iter()
            .filter_map(|v| v["status"].as_str())
            .find(|st| statuses.contains(st))
        {
            seen = Some(st.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.is_some(),
        "the probe's volume never reached {statuses:?}"
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(150), child.wait_with_output())
        .await
        .expect("probe exits after SIGTERM")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn sigterm_during_the_available_wait_leaves_nothing() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("sigterm_during_the_available_wait_leaves_nothing").await else {
        return;
    };
    let host = format!("blk-term-avail-{}", std::process::id());
    // A long fixed poll keeps the probe sleeping inside BLK-03.
    let (code, out) = sigterm_when(
        &s,
        &host,
        &["creating", "available"],
        &["--poll-interval", "60"],
    )
    .await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("Interrupted by SIGTERM during BLK-03"),
        "{out}"
    );
    assert!(out.contains("created volume "), "{out}");
    assert!(out.contains(": deleted"), "{out}");
    assert_no_token(&out, &s.token);
    assert_nothing_left(&s, &host).await;
}

#[tokio::test]
async fn sigterm_during_the_attach_detaches_and_leaves_nothing() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("sigterm_during_the_attach_detaches_and_leaves_nothing").await else {
        return;
    };
    let host = format!("blk-term-attach-{}", std::process::id());
    // The volume is attaching or in-use while the probe sleeps in BLK-05.
    let (code, out) = sigterm_when(
        &s,
        &host,
        &["attaching", "reserved", "in-use"],
        &["--poll-interval", "20"],
    )
    .await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("Interrupted by SIGTERM during BLK-05"),
        "{out}"
    );
    for kind in ["created volume ", "created server "] {
        let line = out
            .lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind:?} line: {out}"));
        assert!(line.ends_with(": deleted"), "{line}: {out}");
    }
    assert_no_token(&out, &s.token);
    assert_nothing_left(&s, &host).await;
}

#[tokio::test]
async fn volume_in_error_is_critical_naming_the_stage() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("volume_in_error_is_critical_naming_the_stage").await else {
        return;
    };
    let tag = std::process::id();
    let host = format!("blk-error-{tag}");
    let name = format!("fedprobe-nobackend-{tag}");
    // A private type only the ops project sees: no other test notices it.
    let t = ok_json(
        cinder(&s, reqwest::Method::POST, "types").json(&json!({"volume_type": {
            "name": name, "os-volume-type-access:is_public": false,
            "extra_specs": {"volume_backend_name": format!("no-such-backend-{tag}")}}})),
        "create volume type",
    )
    .await;
    let type_id = t["volume_type"]["id"].as_str().unwrap().to_string();
    let access = cinder(
        &s,
        reqwest::Method::POST,
        &format!("types/{type_id}/action"),
    )
    .json(&json!({"addProjectAccess": {"project": s.peers.get("OPS_PROJECT_ID")}}))
    .send()
    .await
    .map(|r| r.status());
    let ran = if matches!(&access, Ok(st) if st.is_success()) {
        Some(run_bin(BIN, &oidc_args(&s, &host, &["--volume-type", &name])).await)
    } else {
        None
    };
    let left = volumes_of(&s, &host).await;
    // The type goes whatever the asserts say.
    let gone = cinder(&s, reqwest::Method::DELETE, &format!("types/{type_id}"))
        .send()
        .await
        .map(|r| r.status());
    assert!(
        matches!(&access, Ok(st) if st.is_success()),
        "type access: {access:?}"
    );
    let (code, out, _, _) = ran.unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("BLOCK_STORAGE CRITICAL - BLK-03 volume becomes available: volume "),
        "{out}"
    );
    assert!(
        out.contains("[CRITICAL] BLK-03 volume becomes available"),
        "{out}"
    );
    assert!(out.contains("went to error: "), "{out}");
    // Cinder's user message, the scheduler's reason.
    assert!(
        !out.contains("the cloud gives no reason"),
        "Cinder's user message quoted: {out}"
    );
    assert!(
        !out.contains("BLK-04"),
        "no server after the failure: {out}"
    );
    assert_no_token(&out, &s.token);
    assert!(left.is_empty(), "volume in error left: {left:?}");
    assert!(
        matches!(&gone, Ok(st) if st.is_success()),
        "type delete: {gone:?}"
    );
    assert_nothing_left(&s, &host).await;
}

/// The quota test's own project and user (password login: the OIDC user's
/// projects are the federated group's, shared with the other tests).
struct OwnProject {
    project: String,
    user: String,
}

async fn own_project(s: &Setup, tag: &str, password: &str) -> OwnProject {
    let p = ok_json(
        keystone(s, reqwest::Method::POST, "projects").json(&json!({"project": {
            "name": format!("fedprobe-blkq-{tag}"), "domain_id": "default",
            "description": "check_block_storage quota test"}})),
        "create project",
    )
    .await;
    let project = p["project"]["id"].as_str().unwrap().to_string();
    let u = ok_json(
        keystone(s, reqwest::Method::POST, "users").json(&json!({"user": {
            "name": format!("fedprobe-blkq-{tag}"), "domain_id": "default",
            "password": password, "default_project_id": project}})),
        "create user",
    )
    .await;
    let user = u["user"]["id"].as_str().unwrap().to_string();
    OwnProject { project, user }
}

async fn drop_own_project(s: &Setup, o: &OwnProject) {
    let _ = cinder(
        s,
        reqwest::Method::DELETE,
        &format!("os-quota-sets/{}", o.project),
    )
    .send()
    .await;
    for path in [
        format!("users/{}", o.user),
        format!("projects/{}", o.project),
    ] {
        let r = keystone(s, reqwest::Method::DELETE, &path).send().await;
        assert!(
            matches!(&r, Ok(x) if x.status().is_success()),
            "delete {path}: {r:?}"
        );
    }
}

#[tokio::test]
async fn exhausted_volume_quota_is_critical_before_creating() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("exhausted_volume_quota_is_critical_before_creating").await else {
        return;
    };
    let tag = format!("{}", std::process::id());
    let host = format!("blk-quota-{tag}");
    let password = format!("Pw-{tag}-{}", probes::backend::run_id());
    let o = own_project(&s, &tag, &password).await;
    let roles = ok_json(
        keystone(&s, reqwest::Method::GET, "roles?name=member"),
        "roles",
    )
    .await;
    let role = roles["roles"][0]["id"].as_str().unwrap_or("").to_string();
    let granted = keystone(
        &s,
        reqwest::Method::PUT,
        &format!("projects/{}/users/{}/roles/{role}", o.project, o.user),
    )
    .send()
    .await
    .map(|r| r.status());
    let quota = cinder(
        &s,
        reqwest::Method::PUT,
        &format!("os-quota-sets/{}", o.project),
    )
    .json(&json!({"quota_set": {"volumes": 0}}))
    .send()
    .await
    .map(|r| r.status());
    let pw_file = s.dir.path().join("pw");
    std::fs::write(&pw_file, &password).unwrap();
    let args: Vec<String> = [
        "-t",
        "120",
        "-v",
        "--endpoint",
        s.peers.get("KEYSTONE_URL"),
        "--username",
        &format!("fedprobe-blkq-{tag}"),
        "--password-file",
        &pw_file.display().to_string(),
        "--user-domain",
        "Default",
        "--project",
        &format!("fedprobe-blkq-{tag}"),
        "--project-domain",
        "Default",
        "--region",
        s.peers.get("REGION"),
        "--cert",
        s.peers.get("CA_CERT"),
        "--argo-host-name",
        &host,
        "--image",
        s.peers.get("IMAGE_ID"),
        "--size",
        "2",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    let ready =
        matches!(&granted, Ok(x) if x.is_success()) && matches!(&quota, Ok(x) if x.is_success());
    let ran = if ready {
        Some(run_bin(BIN, &args).await)
    } else {
        None
    };
    let left = volumes_of(&s, &host).await;
    drop_own_project(&s, &o).await;
    assert!(ready, "role {granted:?}, quota {quota:?}");
    let (code, out, _, _) = ran.unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("BLOCK_STORAGE CRITICAL - BLK-01 room for one more volume: quota exhausted: no room for one more volume of 2 GiB: volumes 0 of 0 used"),
        "{out}"
    );
    assert!(
        out.contains("[CRITICAL] BLK-01 room for one more volume"),
        "{out}"
    );
    assert!(!out.contains("BLK-02"), "nothing created: {out}");
    assert!(!out.contains(&password), "{out}");
    assert!(left.is_empty(), "{left:?}");
}

/// The same probe on EC2/EBS (moto): `--cloud ec2`, nothing else changes.
#[tokio::test]
async fn the_same_probe_runs_on_ec2_moto() {
    let file = std::env::var("FEDPROBE_MOTO_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/moto.env".into());
    let moto = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MOTO_URL=").map(|u| u.trim().to_string()))
        })
        .unwrap_or_else(|| {
            panic!("no MOTO_URL in {file} (start moto with ci/peers/moto.sh start)")
        });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ak"), "AKIDFEDPROBEBLOCK").unwrap();
    std::fs::write(dir.path().join("sk"), "Qm2Jx8Zt2Xr6Vb1Ny5Kd").unwrap();
    let f = |n: &str| dir.path().join(n).display().to_string();
    let argv: Vec<String> = [
        "--cloud",
        "ec2",
        "--endpoint",
        &moto,
        "--ec2-access-key-file",
        &f("ak"),
        "--ec2-secret-key-file",
        &f("sk"),
        "--image",
        "ami-760aaa0f",
        "--volume-type",
        "gp3",
        "-t",
        "90",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = crate::mockcloud::run::<BlockStorage>(&argv).await;
    assert_eq!(r.status, Status::Ok, "{}: {:#?}", r.summary, r.steps);
    let msg = |id: &str| {
        r.steps
            .iter()
            .find(|s| s.check == id)
            .map(|s| s.message.clone())
            .unwrap_or_else(|| panic!("no {id}: {:#?}", r.steps))
    };
    assert!(
        msg("BLK-01").contains("no volume limits API"),
        "{}",
        msg("BLK-01")
    );
    assert!(msg("BLK-02").contains("vol-"), "{}", msg("BLK-02"));
    assert!(
        msg("BLK-05").contains("attached to i-"),
        "{}",
        msg("BLK-05")
    );
    assert!(
        msg("BLK-06").contains("no server-side list"),
        "{}",
        msg("BLK-06")
    );
    assert!(msg("BLK-08").contains("gone"), "{}", msg("BLK-08"));
    assert_eq!(r.resources.len(), 2, "{:#?}", r.resources);
    for x in &r.resources {
        assert_eq!(x.cleanup, Cleanup::Deleted, "{x:?}");
    }
}
