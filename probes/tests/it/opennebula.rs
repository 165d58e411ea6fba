//! The probes with `--cloud opennebula` against the OpenNebula fixture
//! (ci/peers/one_fixture.py: oned's XML-RPC methods, documents checked
//! against pyone's XSD-generated bindings), each fault included. The
//! fixture's Python is the venv ci/peers/opennebula.sh makes; without it
//! these tests FAIL (the fixture runs everywhere).

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::realpeers::run_bin;

const VM: &str = env!("CARGO_BIN_EXE_check_vm_lifecycle");
const IMG: &str = env!("CARGO_BIN_EXE_check_image_upload");
const USAGE: &str = env!("CARGO_BIN_EXE_check_usage");

pub struct Fixture {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    pub url: String,
    pub session: String,
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("FEDPROBE_ONE_PYTHON") {
        return p.into();
    }
    let peers = std::env::var("FEDPROBE_PEERS_DIR").unwrap_or("/tmp/fedprobe-peers".into());
    PathBuf::from(peers).join("cache/venv-one/bin/python")
}

pub async fn fixture(fault: &str) -> Fixture {
    let py = python();
    assert!(
        py.exists(),
        "no pyone venv at {} (make it with: bash ci/peers/opennebula.sh install)",
        py.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:fixture-pass-0123456789").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/peers/one_fixture.py");
    let mut child = tokio::process::Command::new(py)
        .arg(script)
        .arg("--session-file")
        .arg(&session)
        .arg("--fault")
        .arg(fault)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the OpenNebula fixture");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("fixture did not start in 30 s")
        .unwrap()
        .unwrap_or_default();
    let port = first.strip_prefix("PORT ").expect("fixture's PORT line");
    Fixture {
        _child: child,
        url: format!("http://127.0.0.1:{port}/RPC2"),
        session: session.display().to_string(),
        _dir: dir,
    }
}

fn args(f: &Fixture, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--cloud",
        "opennebula",
        "--endpoint",
        &f.url,
        "--opennebula-session",
        &f.session,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn vm_args(f: &Fixture, extra: &[&str]) -> Vec<String> {
    let mut v = args(
        f,
        &[
            "--image",
            "ttylinux",
            "--poll-interval",
            "0.2s",
            "--argo-host-name",
            "one-test",
        ],
    );
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[tokio::test]
async fn vm_lifecycle_runs_on_opennebula() {
    let f = fixture("").await;
    let (code, out, _, _) = run_bin(VM, &vm_args(&f, &["-t", "60", "-v"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("VM_LIFECYCLE OK"), "{out}");
    assert!(out.contains("oned 7.4.0"), "{out}");
    assert!(
        out.contains("user fedprobe (group oneadmin, auth driver core)"),
        "{out}"
    );
    assert!(!out.contains("fixture-pass-0123456789"), "{out}");
}

#[tokio::test]
async fn login_token_from_one_user_login() {
    let f = fixture("").await;
    let (code, out, _, _) = run_bin(
        VM,
        &vm_args(&f, &["-t", "60", "-v", "--opennebula-login-token", "120"]),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("login token valid 120s"), "{out}");
}

/// (fault, exit code, text the output must hold)
async fn fault(name: &str, want_code: i32, want: &[&str]) -> String {
    let f = fixture(name).await;
    let (code, out, _, _) =
        run_bin(VM, &vm_args(&f, &["-t", "20", "--vm-timeout", "3", "-v"])).await;
    assert_eq!(code, want_code, "{name}: {out}");
    for w in want {
        assert!(out.contains(w), "{name}: no {w:?} in {out}");
    }
    out
}

#[tokio::test]
async fn vm_stuck_pending_is_critical_at_active() {
    let out = fault("pending", 2, &["VM-07", "PENDING"]).await;
    // the VM was still deleted by the cleanup
    assert!(!out.contains("leaked"), "{out}");
}

#[tokio::test]
async fn vm_failed_carries_oneds_error_message() {
    fault(
        "failed",
        2,
        &["VM-07", "went to ERROR", "dummy host out of disk"],
    )
    .await;
}

#[tokio::test]
async fn delete_never_completing_is_named() {
    fault("stuck-delete", 2, &["VM-08"]).await;
}

#[tokio::test]
async fn refused_session_is_unknown() {
    let out = fault("auth", 3, &["AUTH-19", "credential was refused"]).await;
    assert!(!out.contains("fixture-pass-0123456789"), "{out}");
}

#[tokio::test]
async fn garbage_answer_is_critical_naming_the_call() {
    fault("garbage", 2, &["one.vm.info", "not an XML-RPC answer"]).await;
}

#[tokio::test]
async fn throttled_allocate_is_critical_with_retry_after() {
    fault("throttle", 2, &["VM-06", "429", "Retry-After: 30"]).await;
}

#[tokio::test]
async fn missing_credential_is_unknown() {
    let f = fixture("").await;
    let mut a = vm_args(&f, &["-t", "20"]);
    let i = a.iter().position(|x| x == "--opennebula-session").unwrap();
    a.drain(i..i + 2);
    let (code, out, _, _) = run_bin(VM, &a).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("--opennebula-session"), "{out}");
}

#[tokio::test]
async fn image_upload_is_fetched_by_the_datastore_and_deleted() {
    let f = fixture("").await;
    let (code, out, _, _) = run_bin(
        IMG,
        &args(
            &f,
            &[
                "-t",
                "60",
                "-v",
                "--size",
                "300KiB",
                "--poll-interval",
                "0.2s",
            ],
        ),
    )
    .await;
    // oned gives no bytes back: the download stage is a WARNING
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no call that returns an image's bytes"),
        "{out}"
    );
    assert!(
        out.contains("300 KiB") || out.contains("307200 bytes"),
        "{out}"
    );
    assert!(!out.contains("leaked"), "{out}");
}

#[tokio::test]
async fn usage_reads_accounting_and_the_vm_of_a_lifecycle() {
    let f = fixture("").await;
    let (code, out, _, _) = run_bin(VM, &vm_args(&f, &["-t", "60"])).await;
    assert_eq!(code, 0, "{out}");
    let (code, out, _, _) =
        run_bin(USAGE, &args(&f, &["-t", "30", "-v", "--server-id", "0"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("server 0: vcpus 1 memory 128 MB"), "{out}");
    assert!(
        out.contains("1 volume(s)") || out.contains("0 volume(s)"),
        "{out}"
    );
    let (code, out, _, _) = run_bin(USAGE, &args(&f, &["-t", "30", "--server-id", "7"])).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("server 7 is missing"), "{out}");
}

/// The `Volumes` and `Usage` sides of the backend, through the library
/// (check_block_storage is on another branch): a persistent DATABLOCK image
/// created, attached, detached and deleted; usage lists VM and volume.
#[tokio::test]
async fn volumes_attach_detach_and_usage_through_the_backend() {
    use probes::auth::cloud::CloudKind;
    use probes::auth::AuthArgs;
    use probes::backend::{
        Compute, NetworkChoice, ServerPhase, ServerSpec, Usage, VolumePhase, VolumeSpec, Volumes,
    };
    use probes::ctx::Settings;
    use probes::http::TlsOptions;
    use probes::runner::{execute, RunOptions};
    use probes::Status;
    use std::collections::BTreeMap;

    let f = fixture("").await;
    let mut auth = AuthArgs {
        endpoint: Some(f.url.parse().unwrap()),
        cloud: CloudKind::OpenNebula,
        ..AuthArgs::default()
    };
    auth.opennebula.session = Some(f.session.clone().into());
    auth.opennebula.memory_mb = 256;
    let opts = RunOptions {
        probe: "volumes".into(),
        label: "VOLUMES".into(),
        timeout: std::time::Duration::from_secs(30),
        timeout_status: Status::Unknown,
        cleanup_grace: None,
        tls: TlsOptions::default(),
        settings: Settings::default(),
        events: None,
    };
    let r = execute(opts, std::future::pending(), move |ctx| async move {
        let b = probes::backend::opennebula::login(&ctx, &auth).await?;
        let wait = |what: &'static str| async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            what
        };
        let mut meta = BTreeMap::new();
        meta.insert("fedprobe-run".to_string(), "vol-test".to_string());
        let vm = b
            .create_server(&ServerSpec {
                name: "vol-vm".into(),
                image_id: "0".into(),
                flavor_id: String::new(),
                network: NetworkChoice::None,
                metadata: meta.clone(),
            })
            .await?;
        for _ in 0..50 {
            if b.server(&vm).await?.unwrap().phase == ServerPhase::Active {
                break;
            }
            wait("vm").await;
        }
        let vol = b
            .create_volume(&VolumeSpec {
                name: "vol-1".into(),
                size_gb: 1,
                volume_type: None,
                metadata: meta.clone(),
            })
            .await?;
        let v = b.volume(&vol).await?.unwrap();
        assert_eq!(v.phase, VolumePhase::Available);
        assert_eq!(v.size_gb, Some(1));
        assert_eq!(b.volumes_tagged("fedprobe-run").await?.len(), 1);
        b.attach_volume(&vm, &vol).await?;
        let v = b.volume(&vol).await?.unwrap();
        assert_eq!(v.phase, VolumePhase::InUse, "{}", v.status_text);
        assert_eq!(v.attached_to, vec![vm.clone()]);
        // the VM is in HOTPLUG until the attach is done
        for _ in 0..50 {
            if b.server(&vm).await?.unwrap().phase == ServerPhase::Active {
                break;
            }
            wait("hotplug").await;
        }
        // in use: oned refuses to delete it
        let e = b.delete_volume(&vol).await.unwrap_err();
        assert!(
            e.message.contains("one.image.delete refused"),
            "{}",
            e.message
        );
        b.detach_volume(&vm, &vol).await?;
        assert_eq!(b.volume(&vol).await?.unwrap().phase, VolumePhase::Available);
        let usage = b
            .server_usage(0.0, probes::clock::now_unix() + 60.0)
            .await?;
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].id, vm);
        assert_eq!(usage[0].ram_mb, Some(256));
        let vols = b.volume_usage().await?;
        assert_eq!(vols.len(), 1);
        assert!(b.delete_volume(&vol).await?);
        assert!(b.volume(&vol).await?.is_none());
        assert!(!b.delete_volume(&vol).await?);
        assert!(b.delete_server(&vm).await?);
        Ok("done".to_string())
    })
    .await;
    assert_eq!(r.status, Status::Ok, "{} {:?}", r.summary, r.steps);
}

#[tokio::test]
async fn token_auth_checks_the_opennebula_login() {
    const TA: &str = env!("CARGO_BIN_EXE_check_token_auth");
    let f = fixture("").await;
    let (code, out, _, _) = run_bin(TA, &args(&f, &["-t", "30", "-v"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("AUTH-19"), "{out}");
    assert!(
        out.contains("AUTH-09") && out.contains("was refused"),
        "{out}"
    );
    let f = fixture("auth").await;
    let (code, out, _, _) = run_bin(TA, &args(&f, &["-t", "30"])).await;
    assert_eq!(code, 3, "{out}");
}
