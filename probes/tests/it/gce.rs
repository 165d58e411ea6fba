//! The GCE backend against the GCE fixture (ci/peers/gce_fixture.py: routes,
//! parameters and answers from the compute v1 / storage v1 / STS discovery
//! documents google-api-python-client bundles). Each test starts its own
//! fixture on a free loopback port; faults are chosen by the project name.
//! The fixture's python comes from the venv ci/peers/gce.sh installs: without
//! it these tests FAIL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use probes::auth::AuthArgs;
use probes::backend::gce::connect;
use probes::backend::{Compute, ServerPhase, ServerSpec, VolumePhase, VolumeSpec, Volumes};
use probes::ctx::Settings;
use probes::http::TlsOptions;
use probes::model::{Cleanup, ResourceKind};
use probes::runner::{execute, RunOptions};
use probes::{Fail, Status};
use serde_json::Value;

use crate::realpeers::run_bin;

const VM: &str = env!("CARGO_BIN_EXE_check_vm_lifecycle");
const IMG: &str = env!("CARGO_BIN_EXE_check_image_upload");
const USAGE: &str = env!("CARGO_BIN_EXE_check_usage");
const ZONE: &str = "europe-west1-b";

fn python() -> String {
    if let Ok(p) = std::env::var("FEDPROBE_GCE_PYTHON") {
        return p;
    }
    let dir = std::env::var("FEDPROBE_PEERS_DIR").unwrap_or_else(|_| "/tmp/fedprobe-peers".into());
    format!("{dir}/cache/venv-gce/bin/python")
}

fn script() -> String {
    format!("{}/../ci/peers/gce_fixture.py", env!("CARGO_MANIFEST_DIR"))
}

pub struct Fixture {
    child: Child,
    pub root: String,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn start() -> Fixture {
        let py = python();
        assert!(
            std::path::Path::new(&py).exists(),
            "no python with google-api-python-client at {py}: run ci/peers/gce.sh install \
             (or set FEDPROBE_GCE_PYTHON)"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sa.json");
        let made = Command::new(&py)
            .args([&script(), "--make-key", key.to_str().unwrap()])
            .status()
            .expect("run the fixture's --make-key");
        assert!(made.success());
        let mut child = Command::new(&py)
            .args([&script(), "--port", "0", "--key", key.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the GCE fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.rsplit(':').next())
            .unwrap_or_else(|| panic!("fixture did not say its port: {line:?}"))
            .to_string();
        Fixture {
            child,
            root: format!("http://127.0.0.1:{port}/"),
            dir,
        }
    }

    pub fn key(&self) -> String {
        self.dir.path().join("sa.json").display().to_string()
    }

    /// The common GCE options for `project`, logging in with the key.
    pub fn args(&self, project: &str) -> Vec<String> {
        let mut v = self.base_args(project);
        v.extend(["--gce-key".into(), self.key()]);
        v.extend(["--gce-token-url".into(), format!("{}token", self.root)]);
        v
    }

    pub fn base_args(&self, project: &str) -> Vec<String> {
        [
            "--cloud",
            "gce",
            "--endpoint",
            &format!("{}compute/v1/", self.root),
            "--gce-project",
            project,
            "--gce-zone",
            ZONE,
            "--gce-storage-url",
            &self.root,
            "--gce-bucket",
            &format!("{project}-staging"),
            "--gce-sts-url",
            &format!("{}v1/token", self.root),
            "--gce-iam-url",
            &self.root,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// A JWT-shaped OIDC token (unsigned: STS here checks shape and expiry).
    pub fn oidc_token(&self, exp_in: i64) -> String {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let exp = probes::clock::now_secs() + exp_in;
        let t = format!(
            "{}.{}.c2ln",
            b(r#"{"alg":"RS256","typ":"JWT"}"#),
            b(&format!(
                r#"{{"iss":"https://aai.example","sub":"probe","aud":"gce","exp":{exp}}}"#
            ))
        );
        let path = self.dir.path().join(format!("oidc-{exp_in}"));
        std::fs::write(&path, t).unwrap();
        path.display().to_string()
    }

    pub async fn state(&self, project: &str) -> Value {
        probes::http::build_client(&TlsOptions::default())
            .unwrap()
            .get(format!("{}fixture/state?project={project}", self.root))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Nothing left in `project` (instances, disks, images) nor its bucket.
    pub async fn assert_clean(&self, project: &str) {
        let s = self.state(project).await;
        for k in ["instances", "disks", "images"] {
            assert_eq!(s[k], serde_json::json!([]), "{k} left in {project}: {s}");
        }
        let prefix = format!("{project}-staging/");
        let objects: Vec<&Value> = s["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o.as_str().unwrap().starts_with(&prefix))
            .collect();
        assert!(objects.is_empty(), "objects left: {objects:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // our own child, by its pid
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_args(f: &Fixture, project: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-t",
        "60",
        "-vvv",
        "--output",
        "json",
        "--image",
        "projects/debian-cloud/global/images/debian-12",
        "--argo-host-name",
        "mon.example.org",
        "--poll-interval",
        "0.05",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(f.args(project));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn parse(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn step<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {r}"))
}

/// The step that failed: the last one.
fn last_step(r: &Value) -> &Value {
    r["steps"].as_array().unwrap().last().unwrap()
}

#[tokio::test]
async fn vm_lifecycle_with_a_service_account_key() {
    let f = Fixture::start();
    let (code, out, _, _) = run_bin(VM, &vm_args(&f, "fedprobe-ok", &[])).await;
    let r = parse(&out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r["status"], "OK");
    assert_eq!(step(&r, "AUTH-GCE-01")["status"], "OK");
    assert!(step(&r, "VM-01")["message"]
        .as_str()
        .unwrap()
        .contains("zone UP"));
    assert_eq!(step(&r, "VM-07")["status"], "OK");
    assert_eq!(r["resources"][0]["cleanup"], "deleted");
    assert!(!out.contains("ya29."), "access token in the output");
    f.assert_clean("fedprobe-ok").await;
}

#[tokio::test]
async fn vm_lifecycle_with_workload_identity_federation_and_impersonation() {
    let f = Fixture::start();
    let tok = f.oidc_token(600);
    let mut args: Vec<String> = vm_args(&f, "fedprobe-wif", &[]);
    // replace the key login by the federated one
    let i = args.iter().position(|a| a == "--gce-key").unwrap();
    args.drain(i..i + 4);
    args.extend(
        [
            "--access-token",
            &tok,
            "--gce-wif-audience",
            "//iam.googleapis.com/projects/1049/locations/global/workloadIdentityPools/egi/providers/checkin",
            "--gce-impersonate",
            "fedprobe@fedprobe-ci.iam.gserviceaccount.com",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let (code, out, _, _) = run_bin(VM, &args).await;
    let r = parse(&out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(step(&r, "AUTH-01")["status"], "OK");
    assert_eq!(step(&r, "AUTH-GCE-02")["status"], "OK");
    assert!(step(&r, "AUTH-GCE-03")["message"]
        .as_str()
        .unwrap()
        .contains("fedprobe@fedprobe-ci"));
    f.assert_clean("fedprobe-wif").await;
}

fn federated(f: &Fixture, project: &str, audience: &str, token: &str) -> Vec<String> {
    let mut v = vec![
        "-t".to_string(),
        "20".into(),
        "--output".into(),
        "json".into(),
    ];
    v.extend(["--image".into(), "debian-12".into()]);
    v.extend(f.base_args(project));
    v.extend(
        ["--access-token", token, "--gce-wif-audience", audience]
            .iter()
            .map(|s| s.to_string()),
    );
    v
}

#[tokio::test]
async fn a_refused_sts_exchange_is_unknown_at_its_stage() {
    let f = Fixture::start();
    let tok = f.oidc_token(600);
    let aud = "//iam.googleapis.com/projects/1049/locations/global/workloadIdentityPools/egi/providers/refused";
    let (code, out, _, _) = run_bin(VM, &federated(&f, "fedprobe-sts", aud, &tok)).await;
    let r = parse(&out);
    assert_eq!(code, 3, "{out}");
    let s = last_step(&r);
    assert_eq!(s["check"], "AUTH-GCE-02", "{out}");
    assert!(
        s["message"].as_str().unwrap().contains("invalid_grant"),
        "{out}"
    );
}

#[tokio::test]
async fn an_expired_oidc_token_is_unknown_before_any_exchange() {
    let f = Fixture::start();
    let tok = f.oidc_token(-60);
    let aud =
        "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/egi/providers/x";
    let (code, out, _, _) = run_bin(VM, &federated(&f, "fedprobe-exp", aud, &tok)).await;
    let r = parse(&out);
    assert_eq!(code, 3, "{out}");
    assert_eq!(last_step(&r)["check"], "AUTH-01", "{out}");
    assert!(out.contains("expired"), "{out}");
}

#[tokio::test]
async fn a_key_the_site_does_not_know_is_unknown() {
    let f = Fixture::start();
    let other = Fixture::start();
    let mut args = vm_args(&f, "fedprobe-badkey", &[]);
    let i = args.iter().position(|a| a == "--gce-key").unwrap();
    args[i + 1] = other.key();
    let (code, out, _, _) = run_bin(VM, &args).await;
    let r = parse(&out);
    assert_eq!(code, 3, "{out}");
    let s = last_step(&r);
    assert_eq!(s["check"], "AUTH-GCE-01", "{out}");
    assert!(s["message"].as_str().unwrap().contains("refused"), "{out}");
}

#[tokio::test]
async fn an_instance_stuck_provisioning_is_critical_and_deleted() {
    let f = Fixture::start();
    let (code, out, _, _) =
        run_bin(VM, &vm_args(&f, "fedprobe-stuck", &["--vm-timeout", "2"])).await;
    let r = parse(&out);
    assert_eq!(code, 2, "{out}");
    let s = last_step(&r);
    assert_eq!(s["check"], "VM-07", "{out}");
    assert!(
        s["message"].as_str().unwrap().contains("PROVISIONING"),
        "{out}"
    );
    assert_eq!(r["resources"][0]["cleanup"], "deleted", "{out}");
    f.assert_clean("fedprobe-stuck").await;
}

#[tokio::test]
async fn a_terminated_instance_is_critical_with_googles_reason() {
    let f = Fixture::start();
    let (code, out, _, _) = run_bin(VM, &vm_args(&f, "fedprobe-terminated", &[])).await;
    let r = parse(&out);
    assert_eq!(code, 2, "{out}");
    let s = last_step(&r);
    assert_eq!(s["check"], "VM-07", "{out}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "{out}"
    );
    f.assert_clean("fedprobe-terminated").await;
}

#[tokio::test]
async fn a_delete_that_never_completes_fails_at_delete_and_says_cleanup_failed() {
    let f = Fixture::start();
    let mut args = vm_args(&f, "fedprobe-nodelete", &[]);
    args[1] = "8".into(); // -t
    let (code, out, _, _) = run_bin(VM, &args).await;
    let r = parse(&out);
    assert_ne!(code, 0, "{out}");
    let s = last_step(&r);
    assert_eq!(s["check"], "VM-08", "{out}");
    let cleanup = r["resources"][0]["cleanup"].clone();
    assert!(
        cleanup.get("failed").is_some()
            || cleanup == "not_attempted"
            || cleanup.get("not_deleted").is_some(),
        "{out}"
    );
    assert_eq!(
        f.state("fedprobe-nodelete").await["instances"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn throttling_is_critical_naming_rate_limit_exceeded() {
    for project in ["fedprobe-throttle", "fedprobe-throttle429"] {
        let f = Fixture::start();
        let (code, out, _, _) = run_bin(VM, &vm_args(&f, project, &[])).await;
        let r = parse(&out);
        assert_eq!(code, 2, "{out}");
        let s = last_step(&r);
        assert_eq!(s["check"], "VM-01", "{out}");
        let m = s["message"].as_str().unwrap();
        assert!(m.contains("rateLimitExceeded"), "{out}");
        if project.ends_with("429") {
            assert!(m.contains("Retry-After"), "{out}");
        }
    }
}

#[tokio::test]
async fn garbage_answers_are_critical_at_the_first_call() {
    let f = Fixture::start();
    let (code, out, _, _) = run_bin(VM, &vm_args(&f, "fedprobe-garbage", &[])).await;
    let r = parse(&out);
    assert_eq!(code, 2, "{out}");
    let s = last_step(&r);
    assert_eq!(s["check"], "VM-01", "{out}");
    assert!(s["message"].as_str().unwrap().contains("not JSON"), "{out}");
}

#[tokio::test]
async fn image_upload_stages_imports_reads_back_and_deletes() {
    let f = Fixture::start();
    let mut args: Vec<String> = ["-t", "60", "-vvv", "--output", "json", "--size", "256K"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(f.args("fedprobe-img"));
    let (code, out, _, _) = run_bin(IMG, &args).await;
    let r = parse(&out);
    // size verified; the MD5 is the staged archive's; no os_hash: WARNING at IMG-04
    assert!(code == 0 || code == 1, "{out}");
    assert_eq!(step(&r, "IMG-03")["status"], "OK", "{out}");
    let v = step(&r, "IMG-04");
    assert_ne!(v["status"], "CRITICAL", "{out}");
    assert_eq!(step(&r, "IMG-05")["status"], "OK", "{out}");
    assert_eq!(step(&r, "IMG-06")["status"], "OK", "{out}");
    f.assert_clean("fedprobe-img").await;
}

#[tokio::test]
async fn usage_lists_instances_and_disks_with_their_sizes() {
    let f = Fixture::start();
    // a VM left running by a lifecycle that is still going: start one and leave it
    let mut args: Vec<String> = ["-t", "30", "--output", "json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(f.args("fedprobe-usage"));
    let (code, out, _, _) = run_bin(USAGE, &args).await;
    let r = parse(&out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(step(&r, "USAGE-01")["status"], "OK", "{out}");
    assert_eq!(step(&r, "USAGE-03")["status"], "OK", "{out}");
    // a deleted server (what the VM probe hands over) cannot be seen on GCE: WARNING, said why
    args.extend(["--server-id".to_string(), "fedprobe-gone".to_string()]);
    let (code, out, _, _) = run_bin(USAGE, &args).await;
    let r = parse(&out);
    assert_eq!(code, 1, "{out}");
    let s = step(&r, "USAGE-02");
    assert_eq!(s["status"], "WARNING", "{out}");
    assert!(
        s["message"].as_str().unwrap().contains("billing export"),
        "{out}"
    );
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    auth: AuthArgs,
}

fn opts() -> RunOptions {
    RunOptions {
        probe: "gce_volumes".into(),
        label: "GCE".into(),
        timeout: Duration::from_secs(40),
        timeout_status: Status::Unknown,
        cleanup_grace: None,
        tls: TlsOptions::default(),
        settings: Settings::default(),
        events: None,
    }
}

/// The `Volumes` half of the backend in-process: create, attach, detach,
/// delete, each phase as GCE's disk and operations show it.
#[tokio::test]
async fn volumes_create_attach_detach_delete() {
    let f = Fixture::start();
    let mut argv = vec!["x".to_string()];
    argv.extend(f.args("fedprobe-vol"));
    let auth = Cli::parse_from(argv).auth;
    let r = execute(opts(), std::future::pending(), move |ctx| async move {
        let b = connect(&ctx, &auth).await?;
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("fedprobe-run".to_string(), "vol1".to_string());
        meta.insert("argo-mon-host".to_string(), "Mon.Example.org".to_string());
        let server = b
            .create_server(&ServerSpec {
                name: "fedprobe-vol1".into(),
                image_id: "projects/debian-cloud/global/images/debian-12".into(),
                flavor_id: "e2-micro".into(),
                network: probes::backend::NetworkChoice::None,
                metadata: meta.clone(),
            })
            .await?;
        ctx.track(
            ResourceKind::Server,
            &server,
            None,
            &b,
            |c, id| async move {
                probes::backend::delete_server_and_wait(&c, &id)
                    .await
                    .map(drop)
            },
        );
        let vol = b
            .create_volume(&VolumeSpec {
                name: "fedprobe-vol1-d".into(),
                size_gb: 1,
                volume_type: None,
                metadata: meta,
            })
            .await?;
        ctx.track(ResourceKind::Volume, &vol, None, &b, |c, id| async move {
            c.delete_volume(&id).await.map(drop)
        });
        let phase = |p: VolumePhase| p;
        let mut seen = Vec::new();
        for _ in 0..20 {
            let v = b
                .volume(&vol)
                .await?
                .ok_or_else(|| Fail::critical("gone"))?;
            seen.push(v.status_text.clone());
            if v.phase == phase(VolumePhase::Available) {
                break;
            }
        }
        b.attach_volume(&server, &vol).await?;
        let v = b.volume(&vol).await?.unwrap();
        if v.phase != VolumePhase::InUse || v.attached_to != vec![server.clone()] {
            return Err(Fail::critical(format!("after attach: {v:?}")));
        }
        let tagged = b.volumes_tagged("argo-mon-host").await?;
        if tagged.len() != 1 || tagged[0].metadata["argo-mon-host"] != "mon_example_org" {
            return Err(Fail::critical(format!("tagged: {tagged:?}")));
        }
        b.detach_volume(&server, &vol).await?;
        let v = b.volume(&vol).await?.unwrap();
        if v.phase != VolumePhase::Available {
            return Err(Fail::critical(format!("after detach: {v:?}")));
        }
        let servers = b.servers_tagged("argo-mon-host").await?;
        if servers.len() != 1
            || servers[0].metadata["argo-mon-host"] != "Mon.Example.org"
            || servers[0].phase == ServerPhase::Other
        {
            return Err(Fail::critical(format!("servers: {servers:?}")));
        }
        Ok(format!("volume seen {}", seen.join(">")))
    })
    .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(
        r.summary.contains("CREATING>READY") || r.summary.contains("READY"),
        "{}",
        r.summary
    );
    assert!(
        r.resources.iter().all(|x| x.cleanup == Cleanup::Deleted),
        "{:?}",
        r.resources
    );
    f.assert_clean("fedprobe-vol").await;
}

#[tokio::test]
async fn token_auth_checks_the_gce_login_and_a_garbage_token() {
    const AUTH: &str = env!("CARGO_BIN_EXE_check_token_auth");
    let f = Fixture::start();
    let tok = f.oidc_token(600);
    let aud = "//iam.googleapis.com/projects/1049/locations/global/workloadIdentityPools/egi/providers/checkin";
    let mut args = federated(&f, "fedprobe-auth", aud, &tok);
    // check_token_auth takes no --image
    let i = args.iter().position(|a| a == "--image").unwrap();
    args.drain(i..i + 2);
    let (code, out, _, _) = run_bin(AUTH, &args).await;
    let r = parse(&out);
    assert_eq!(code, 0, "{out}");
    for id in ["AUTH-01", "AUTH-GCE-02", "AUTH-06", "AUTH-09", "AUTH-11"] {
        assert_eq!(step(&r, id)["status"], "OK", "{id}: {out}");
    }
    assert!(step(&r, "AUTH-09")["message"]
        .as_str()
        .unwrap()
        .contains("401"));
    assert!(!out.contains("ya29."), "{out}");
}

#[tokio::test]
async fn no_token_is_sent_over_plain_http_off_this_host() {
    let f = Fixture::start();
    let mut args = vm_args(&f, "fedprobe-http", &[]);
    let i = args.iter().position(|a| a == "--gce-sts-url").unwrap();
    args[i + 1] = "http://sts.example.org/v1/token".into();
    let (code, out, _, _) = run_bin(VM, &args).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("plain http"), "{out}");
    assert_eq!(
        f.state("fedprobe-http").await["instances"],
        serde_json::json!([])
    );
}
