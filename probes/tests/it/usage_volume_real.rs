//! check_usage --own-volume against the real peers: OIDC login through
//! Apache + mod_auth_openidc, the real Cinder (NFS driver on a local
//! directory). The probe's own volume must show in the project's volume list
//! and summary, and is gone afterwards (checked as admin). A volume the real
//! Cinder puts in `error` ends CRITICAL at USAGE-03. A usage answer that
//! lacks the volume cannot be had from the real Cinder: usage_probe.rs
//! scripts it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::realpeers::{assert_no_token, run_bin, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_usage");

/// One at a time: the shared peers run on two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    peers: Peers,
    token: String,
    admin: String,
    _dir: tempfile::TempDir,
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
        _dir: dir,
    })
}

fn args(s: &Setup, host: &str, extra: &[&str]) -> Vec<String> {
    let p = &s.peers;
    let mut v: Vec<String> = [
        "-t",
        "180",
        "-v",
        "--access-token",
        &s.token_file,
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--region",
        p.get("REGION"),
        "--cert",
        p.get("CA_CERT"),
        "--project",
        p.get("OPS_PROJECT_NAME"),
        "--own-volume",
        "--argo-host-name",
        host,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

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

/// Every project's volumes (deleted ones too when `deleted`) carrying
/// monitoring host `host`.
async fn volumes_of(s: &Setup, host: &str, deleted: bool) -> Vec<Value> {
    let q = if deleted { "&deleted=true" } else { "" };
    let resp = cinder(
        s,
        reqwest::Method::GET,
        &format!("volumes/detail?all_tenants=1{q}"),
    )
    .send()
    .await
    .expect("cinder answers");
    assert!(
        resp.status().is_success(),
        "admin volume list: {}",
        resp.status()
    );
    let v: Value = resp.json().await.unwrap();
    v["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v["metadata"]["argo-mon-host"] == host)
        .collect()
}

async fn assert_nothing_left(s: &Setup, host: &str) {
    let mut left = Vec::new();
    for _ in 0..30 {
        left = volumes_of(s, host, false).await;
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("volumes left behind for {host}: {left:?}");
}

#[tokio::test]
async fn own_volume_accounted_on_real_cinder() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("own_volume_accounted_on_real_cinder").await else {
        return;
    };
    let host = format!("usage-vol-ok-{}", std::process::id());
    let (code, out, cpu, wall) = run_bin(BIN, &args(&s, &host, &["--volume-size", "2"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("USAGE OK - "), "{out}");
    assert!(out.contains("own volume accounted"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("[OK] USAGE-03 block storage usage: "))
        .unwrap_or_else(|| panic!("no USAGE-03 line: {out}"));
    for want in [
        "listed with 2 GiB",
        "counted in the volume summary (",
        "deleted in ",
    ] {
        assert!(line.contains(want), "{want}: {line}");
    }
    // The volume really was made, and deleted by the probe itself.
    let made = out
        .lines()
        .find(|l| l.starts_with("created volume "))
        .unwrap_or_else(|| panic!("no created volume line: {out}"));
    assert!(made.ends_with(": deleted"), "{made}");
    let id = made
        .trim_start_matches("created volume ")
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(':');
    assert!(line.contains(id), "{id} not in {line}");
    for perf in ["own_volume_available=", "own_volume_delete=", "volumes="] {
        assert!(out.contains(perf), "perfdata {perf}: {out}");
    }
    assert_no_token(&out, &s.token);
    assert_nothing_left(&s, &host).await;
    // Cinder kept it as deleted, with the size the probe asked for.
    let gone = volumes_of(&s, &host, true).await;
    if let Some(v) = gone.iter().find(|v| v["id"] == id) {
        assert_eq!(v["size"], 2, "{v}");
    }
    eprintln!("BENCH check_usage --own-volume: wall {wall:.3}s, cpu {cpu:.3}s");
}

#[tokio::test]
async fn own_volume_in_error_is_critical_at_usage_03() {
    let _one = SERIAL.lock().await;
    let Some(s) = setup("own_volume_in_error_is_critical_at_usage_03").await else {
        return;
    };
    let tag = std::process::id();
    let host = format!("usage-vol-error-{tag}");
    let name = format!("fedprobe-usage-nobackend-{tag}");
    // A private type only the ops project sees: no other test notices it.
    let resp = cinder(&s, reqwest::Method::POST, "types")
        .json(&json!({"volume_type": {
            "name": name, "os-volume-type-access:is_public": false,
            "extra_specs": {"volume_backend_name": format!("no-such-backend-{tag}")}}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "create type: {}", resp.status());
    let t: Value = resp.json().await.unwrap();
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
        Some(run_bin(BIN, &args(&s, &host, &["--volume-type", &name])).await)
    } else {
        None
    };
    let left = volumes_of(&s, &host, false).await;
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
        out.starts_with("USAGE CRITICAL - USAGE-03 block storage usage: own volume "),
        "{out}"
    );
    assert!(
        out.contains("[CRITICAL] USAGE-03 block storage usage"),
        "{out}"
    );
    assert!(out.contains("went to error: "), "{out}");
    // USAGE-01 still ran and passed: one part's failure hides no other.
    assert!(out.contains("[OK] USAGE-01 "), "{out}");
    let made = out
        .lines()
        .find(|l| l.starts_with("created volume "))
        .unwrap_or_else(|| panic!("no created volume line: {out}"));
    assert!(made.ends_with(": deleted"), "{made}");
    assert_no_token(&out, &s.token);
    assert!(left.is_empty(), "volume in error left: {left:?}");
    assert!(
        matches!(&gone, Ok(st) if st.is_success()),
        "type delete: {gone:?}"
    );
}
