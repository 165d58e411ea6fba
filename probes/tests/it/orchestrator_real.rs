//! check_orchestrator end to end against the real Infrastructure Manager
//! (ci/peers/im.sh) deploying on the real peers: the OIDC token from the real
//! OP, Keystone behind mod_auth_openidc, Nova, Glance, Neutron. What is left
//! behind is checked as the admin sees Nova and Neutron, and as IM lists the
//! monitor's deployments.

use std::time::Duration;

use serde_json::{json, Value};

use crate::realpeers;
use realpeers::{assert_no_token, run_bin, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_orchestrator");

/// One deployment at a time: leftovers are recognised by IM's server names
/// (`fedprobe-<run>-<uuid>`) and the monitor's IM account.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The peers with IM, or `None` when the peers are not there at all (then
/// `Peers::load` printed a SKIP line). Peers without IM fail: up.sh starts it.
fn peers(test: &str) -> Option<Peers> {
    let p = Peers::load(test)?;
    assert!(
        !p.get("IM_URL").is_empty(),
        "peers.env has no IM_URL: the Infrastructure Manager is not running (ci/peers/im.sh start)"
    );
    Some(p)
}

/// The probe's argv: the monitor's client credentials at the real OP, IM's
/// URL and account, the fixture image by AppDB id, then `extra`.
fn args(p: &Peers, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--client-id",
        p.get("OIDC_CLIENT_ID"),
        "--client-secret",
        p.get("OIDC_CLIENT_SECRET_FILE"),
        "--token-endpoint",
        p.get("OIDC_TOKEN_ENDPOINT"),
        "--ca-cert",
        p.get("CA_CERT"),
        "--project",
        p.get("OPS_PROJECT_NAME"),
        "--orchestrator-user",
        p.get("IM_USER"),
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for a in extra {
        v.push(a.to_string());
    }
    let has = |f: &str| extra.contains(&f);
    if !has("--orchestrator") {
        v.extend(["--orchestrator".into(), p.get("IM_URL").into()]);
    }
    if !has("--orchestrator-password-file") {
        v.extend([
            "--orchestrator-password-file".into(),
            p.get("IM_PASSWORD_FILE").into(),
        ]);
    }
    if !has("--image") {
        v.extend(["--appdb-image".into(), p.get("IMAGE_APPDB_ID").into()]);
    }
    v
}

/// IM's Authorization header for the monitor's account (no cloud line:
/// enough for listing).
fn im_auth(p: &Peers) -> String {
    let pw = std::fs::read_to_string(p.get("IM_PASSWORD_FILE")).expect("IM password file");
    format!(
        "id = im; type = InfrastructureManager; username = {}; password = {}",
        p.get("IM_USER"),
        pw.trim()
    )
}

/// The deployments IM lists for the monitor's account.
async fn im_deployments(p: &Peers) -> Vec<String> {
    let resp = p
        .client
        .get(format!("{}/infrastructures", p.get("IM_URL")))
        .header("Authorization", im_auth(p))
        .header("Accept", "application/json")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("IM answers");
    assert!(resp.status().is_success(), "IM list: {}", resp.status());
    let v: Value = resp.json().await.unwrap();
    v["uri-list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|u| u["uri"].as_str().map(String::from))
        .collect()
}

/// Servers IM made for a check_orchestrator run: `fedprobe-<10 hex>-<uuid>`
/// (check_vm_lifecycle's are `fedprobe-<10 hex>` alone).
fn is_im_server(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("fedprobe-") else {
        return false;
    };
    let (run, uuid) = rest.split_at(rest.len().min(10));
    run.len() == 10 && run.chars().all(|c| c.is_ascii_hexdigit()) && uuid.starts_with('-')
}

async fn im_servers(p: &Peers, admin: &str) -> Vec<String> {
    p.all_servers(admin)
        .await
        .iter()
        .filter_map(|s| s["name"].as_str().map(String::from))
        .filter(|n| is_im_server(n))
        .collect()
}

/// Security groups IM creates per deployment (`im-<infrastructure id>-<net>`).
async fn im_security_groups(p: &Peers, admin: &str) -> Vec<String> {
    let resp = p
        .client
        .get(format!(
            "{}/v2.0/security-groups",
            p.get("NEUTRON_DIRECT_URL")
        ))
        .header("X-Auth-Token", admin)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("neutron answers");
    assert!(resp.status().is_success(), "neutron: {}", resp.status());
    let v: Value = resp.json().await.unwrap();
    v["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g["name"].as_str().map(String::from))
        .filter(|n| n.starts_with("im-"))
        .collect()
}

/// Nothing of any orchestrator run left: IM's list, Nova, Neutron. Nova may
/// take a moment to drop a deleted server from its list.
async fn assert_nothing_left(p: &Peers, context: &str) {
    let admin = p.admin_token().await;
    let mut last = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..30 {
        last = (
            im_deployments(p).await,
            im_servers(p, &admin).await,
            im_security_groups(p, &admin).await,
        );
        if last.0.is_empty() && last.1.is_empty() && last.2.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!(
        "{context}: left behind: IM deployments {:?}, servers {:?}, security groups {:?}",
        last.0, last.1, last.2
    );
}

fn no_private_key(out: &str) {
    assert!(!out.contains("PRIVATE KEY"), "a key in the output: {out}");
    assert!(!out.contains("private_key"), "a key in the output: {out}");
}

async fn secret_of(p: &Peers, var: &str) -> String {
    std::fs::read_to_string(p.get(var))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn the_orchestrator_deploys_and_destroys_on_the_real_site() {
    let test = "orchestrator_real::deploys_and_destroys";
    let Some(p) = peers(test) else { return };
    let _one = SERIAL.lock().await;
    let (code, out, _cpu, wall) = run_bin(BIN, &args(&p, &["-t", "600"])).await;
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    for id in [
        "ORCH-01", "AUTH-02", "ORCH-04", "ORCH-05", "ORCH-06", "ORCH-07",
    ] {
        assert!(out.contains(&format!("[OK] {id}")), "{id}: {out}");
    }
    assert!(out.contains("IM 2."), "{out}");
    for perf in ["reach=", "deploy=", "running=", "destroy=", "gone="] {
        assert!(out.contains(perf), "{perf}: {out}");
    }
    assert!(out.contains("created infrastructure "), "{out}");
    assert!(out.contains("created server "), "{out}");
    assert!(!out.contains("NOT deleted"), "{out}");
    assert_no_token(&out, &secret_of(&p, "OIDC_CLIENT_SECRET_FILE").await);
    assert_no_token(&out, &secret_of(&p, "IM_PASSWORD_FILE").await);
    no_private_key(&out);
    assert!(out.len() < 16 * 1024);
    eprintln!("orchestrator round trip: {wall:.1}s wall");
    assert_nothing_left(&p, "after an OK run").await;
}

/// An image the site rejects for the flavor (min_ram above it): Nova says
/// 400 to IM, IM gives up, and the site is named with its own words.
#[tokio::test]
async fn a_vm_the_site_refuses_is_critical_in_the_sites_words() {
    let test = "orchestrator_real::site_refuses";
    let Some(p) = peers(test) else { return };
    let _one = SERIAL.lock().await;
    let admin = p.admin_token().await;
    let glance = p.get("GLANCE_DIRECT_URL").to_string();
    let resp = p
        .client
        .post(format!("{glance}/v2/images"))
        .header("X-Auth-Token", &admin)
        .json(
            &json!({"name": "fedprobe-orchestrator-too-big", "disk_format": "raw",
                      "container_format": "bare", "visibility": "public", "min_ram": 999_999}),
        )
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("glance answers");
    assert!(
        resp.status().is_success(),
        "create image: {}",
        resp.status()
    );
    let img: Value = resp.json().await.unwrap();
    let id = img["id"].as_str().unwrap().to_string();
    let up = p
        .client
        .put(format!("{glance}/v2/images/{id}/file"))
        .header("X-Auth-Token", &admin)
        .header("Content-Type", "application/octet-stream")
        .body(vec![0u8; 512])
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("glance answers");
    assert!(up.status().is_success(), "upload: {}", up.status());

    let (code, out, _, _) = run_bin(BIN, &args(&p, &["-t", "600", "--image", &id])).await;
    let _ = p
        .client
        .delete(format!("{glance}/v2/images/{id}"))
        .header("X-Auth-Token", &admin)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    eprintln!("{out}");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[OK] ORCH-02"), "{out}");
    assert!(out.contains("[CRITICAL] ORCH-04"), "{out}");
    let first = out.lines().next().unwrap_or("");
    assert!(first.contains("the site refused"), "{first}");
    assert!(out.contains("Flavor's memory is too small"), "{out}");
    no_private_key(&out);
    assert_nothing_left(&p, "after the site refused the VM").await;

    // An image the site does not have at all: the site stage before the
    // orchestrator is asked anything.
    let (code, out, _, _) =
        run_bin(BIN, &args(&p, &["-t", "120", "--image", "no-such-image"])).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[CRITICAL] ORCH-02"), "{out}");
    assert!(!out.contains("ORCH-04"), "{out}");
}

/// IM down (nothing listens) or refusing the monitor's IM password: the
/// orchestrator's trouble, not the site's: UNKNOWN, naming the orchestrator.
#[tokio::test]
async fn orchestrator_down_or_refusing_the_monitor_is_unknown() {
    let test = "orchestrator_real::orchestrator_trouble";
    let Some(p) = peers(test) else { return };
    // A port nothing listens on: bound, then released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = format!("http://127.0.0.1:{closed}");
    let (code, out, _, _) = run_bin(BIN, &args(&p, &["-t", "60", "--orchestrator", &down])).await;
    assert_eq!(code, 3, "{out}");
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.contains("ORCH-01") && first.contains("orchestrator unreachable"),
        "{first}"
    );
    assert!(
        !out.contains("AUTH-02"),
        "the site is not asked when IM is down: {out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("im-password");
    std::fs::write(&bad, "not-the-im-password").unwrap();
    let bad = bad.to_str().unwrap().to_string();
    let (code, out, _, _) = run_bin(
        BIN,
        &args(&p, &["-t", "60", "--orchestrator-password-file", &bad]),
    )
    .await;
    assert_eq!(code, 3, "{out}");
    let first = out.lines().next().unwrap_or("");
    assert!(
        first.contains("ORCH-04") && first.contains("refused the monitor's own credentials"),
        "{first}"
    );
    assert!(
        out.contains("[OK] AUTH-04"),
        "the site itself was fine: {out}"
    );
    assert!(!out.contains("not-the-im-password"), "{out}");
}

/// SIGTERM while IM is creating the deployment: the cleanup waits until IM
/// lets go of it (IM refuses a destroy mid-create, and one that comes before
/// the create reaches the cloud is forgotten while the VM still appears),
/// destroys it, and deletes its server at the site: nothing is left.
#[tokio::test]
async fn sigterm_during_the_deploy_leaves_nothing_behind() {
    let test = "orchestrator_real::sigterm_during_deploy";
    let Some(p) = peers(test) else { return };
    let _one = SERIAL.lock().await;
    let argv = args(&p, &["-t", "600", "--cleanup-grace", "240s"]);
    let child = tokio::process::Command::new(BIN)
        .args(&argv)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start probe");
    let pid = child.id().expect("pid");
    // During the deploy: as soon as IM lists the monitor's new deployment.
    let t0 = std::time::Instant::now();
    while im_deployments(&p).await.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "IM never listed the deployment"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("probe ends")
        .expect("probe output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    assert!(text.contains("Interrupted by SIGTERM"), "{text}");
    assert!(
        text.contains("ORCH-04"),
        "interrupted during the deploy: {text}"
    );
    assert!(!text.contains("NOT deleted"), "{text}");
    no_private_key(&text);
    assert_nothing_left(&p, "after SIGTERM during the deploy").await;
}

#[test]
fn im_server_names() {
    assert!(is_im_server(
        "fedprobe-0123456789-64bb769a-ecc1-11f1-815a-02fc00000001"
    ));
    assert!(!is_im_server("fedprobe-0123456789"));
    assert!(!is_im_server("cloudmonprobe-servertest"));
}
