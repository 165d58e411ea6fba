//! The Azure backend against the Azure fixture (ci/peers/azure_fixture.py:
//! routes and shapes from the vendored Compute REST spec subset, checked by
//! Microsoft's SDKs in CI). Each test starts its own fixture (plain http on
//! 127.0.0.1, a port of its own, its faults from the start) and stops it by PID.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use probes::checks::image_upload::ImageUpload;
use probes::checks::usage::Usage;
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::model::{Cleanup, ProbeResult};
use probes::probe::run_args;
use probes::render::nagios;
use probes::Status;
use serde_json::Value;

const SECRET: &str = "fixture-secret";

struct Fixture {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Fixture {
    fn start(faults: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("ci/peers/azure_fixture.py"))
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .env("AZURE_FIXTURE_SETTLE", "0.2")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for f in faults {
            cmd.args(["--fault", f]);
        }
        let child = cmd.spawn().expect("python3 runs the Azure fixture");
        let t0 = Instant::now();
        let port = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                if s.ends_with('\n') {
                    break s.trim().to_string();
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "Azure fixture did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut secret = std::fs::File::create(dir.path().join("secret")).unwrap();
        secret.write_all(SECRET.as_bytes()).unwrap();
        std::fs::write(dir.path().join("bad-secret"), "not-the-secret").unwrap();
        // A JWT-shaped OIDC access token, valid for an hour (the federated assertion).
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let exp = probes::clock::now_secs() + 3600;
        let jwt = format!(
            "{}.{}.c2ln",
            b64("{\"alg\":\"RS256\"}"),
            b64(&format!("{{\"sub\":\"probe\",\"exp\":{exp}}}"))
        );
        std::fs::write(dir.path().join("access-token"), jwt).unwrap();
        Fixture {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The login and site flags; `federated` sends the OIDC token as client assertion.
    fn argv(&self, federated: bool, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--cloud",
            "azure",
            "--endpoint",
            &self.url,
            "--azure-authority",
            &self.url,
            "--azure-tenant",
            "fedprobe-tenant",
            "--azure-client-id",
            "fedprobe-app",
            "--azure-subscription",
            "0000-sub",
            "--azure-resource-group",
            "fedprobe-rg",
            "--azure-location",
            "westeurope",
            "--output",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if federated {
            v.extend(["--access-token".into(), self.path("access-token")]);
        } else {
            v.extend(["--azure-client-secret".into(), self.path("secret")]);
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn state(&self) -> Value {
        let out = Command::new("python3")
            .args(["-c", "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1]).read().decode())"])
            .arg(format!("{}/fedprobe-fixture/state", self.url))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The operationIds the fixture served, in order.
    fn ops(&self) -> Vec<String> {
        self.state()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[2].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn vm_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--image",
        "egi-monitoring",
        "--argo-host-name",
        "mon.azure.test",
    ];
    if !extra.contains(&"-t") {
        v.extend(["-t", "60"]);
    }
    v.extend(extra);
    v
}

fn failed_step(r: &ProbeResult) -> (String, String) {
    r.steps
        .iter()
        .find(|s| s.status != Status::Ok)
        .map(|s| (s.check.clone(), s.message.clone()))
        .unwrap_or_default()
}

fn all_deleted(r: &ProbeResult) -> bool {
    r.resources.iter().all(|x| x.cleanup == Cleanup::Deleted)
}

#[tokio::test]
async fn vm_lifecycle_with_client_secret() {
    let fx = Fixture::start(&[]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&[]))).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Ok, "{out}");
    assert!(
        r.summary.starts_with("Compute instance=fedprobe-"),
        "{}",
        r.summary
    );
    assert!(all_deleted(&r), "{out}");
    assert!(!out.contains(SECRET), "the client secret never shows");
    let ops = fx.ops();
    for op in [
        "VirtualMachineSizes_List",
        "Images_Get",
        "VirtualMachines_List",
        "VirtualMachines_CreateOrUpdate",
        "VirtualMachines_Get",
        "VirtualMachines_Delete",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} not called: {ops:?}");
    }
    assert!(
        fx.state()["vms"].as_object().unwrap().is_empty(),
        "no VM left"
    );
    // The smallest size, tags from the probe's metadata.
    let vm1 = r.steps.iter().find(|s| s.check == "VM-03").unwrap();
    assert!(vm1.message.starts_with("Standard_B1s"), "{}", vm1.message);
}

#[tokio::test]
async fn vm_lifecycle_with_federated_credential() {
    let fx = Fixture::start(&[]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(
        true,
        &vm_args(&[
            "--registry-image",
            "registry.egi.eu/egi_vm_images/monitoring:1.0",
        ]),
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", nagios::render(&r, 2));
    let ex = r.steps.iter().find(|s| s.check == "AUTH-02").unwrap();
    assert!(
        ex.message.contains("federated credential"),
        "{}",
        ex.message
    );
}

#[tokio::test]
async fn refused_federated_credential_is_unknown() {
    let fx = Fixture::start(&["refuse-federated"]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(true, &vm_args(&[]))).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Unknown, "{}", nagios::render(&r, 2));
    assert_eq!(stage, "AUTH-02");
    assert!(
        msg.contains("AADSTS700213") && msg.contains("invalid_client"),
        "{msg}"
    );
    assert!(r.resources.is_empty());
}

#[tokio::test]
async fn refused_client_secret_is_unknown() {
    let fx = Fixture::start(&[]);
    let mut argv = fx.argv(false, &vm_args(&[]));
    let i = argv.iter().position(|a| a.ends_with("/secret")).unwrap();
    argv[i] = fx.path("bad-secret");
    let r = run_args::<VmLifecycle, _>(&argv).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Unknown, "{}", nagios::render(&r, 2));
    assert_eq!(stage, "AUTH-02");
    assert!(msg.contains("AADSTS7000215"), "{msg}");
}

#[tokio::test]
async fn expired_oidc_token_is_unknown_before_any_exchange() {
    let fx = Fixture::start(&[]);
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    std::fs::write(
        fx.path("access-token"),
        format!("{}.{}.x", b("{}"), b("{\"exp\":1000}")),
    )
    .unwrap();
    let r = run_args::<VmLifecycle, _>(&fx.argv(true, &vm_args(&[]))).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Unknown);
    assert_eq!(stage, "AUTH-01");
    assert!(msg.contains("expired"), "{msg}");
    assert!(!fx.ops().iter().any(|o| !o.is_empty()), "no ARM call");
}

#[tokio::test]
async fn vm_stuck_creating_times_out_and_is_deleted() {
    let fx = Fixture::start(&["vm-stuck"]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&["--vm-timeout", "3"]))).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Critical, "{}", nagios::render(&r, 2));
    assert_eq!(stage, "VM-07");
    assert!(
        msg.contains("not ACTIVE") && msg.contains("Creating"),
        "{msg}"
    );
    assert!(all_deleted(&r), "{}", nagios::render(&r, 2));
    assert!(fx.state()["vms"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn vm_failed_names_arms_reason_and_is_deleted() {
    let fx = Fixture::start(&["vm-failed"]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&[]))).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Critical);
    assert_eq!(stage, "VM-07");
    assert!(
        msg.contains("AllocationFailed") && msg.contains("sufficient capacity"),
        "{msg}"
    );
    assert!(all_deleted(&r));
}

#[tokio::test]
async fn delete_never_finishing_is_critical_at_the_delete() {
    let fx = Fixture::start(&["delete-stuck"]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&["-t", "12"]))).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Critical, "{out}");
    let stage = match &r.outcome {
        probes::model::Outcome::TimedOut { stage: Some(s) } => s.clone(),
        _ => failed_step(&r).0,
    };
    assert_eq!(stage, "VM-08", "{out}");
    assert_eq!(
        fx.state()["vms"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap(),
        "Deleting"
    );
}

#[tokio::test]
async fn throttling_is_waited_out_with_retry_after() {
    let fx = Fixture::start(&["throttle:2"]);
    let t0 = Instant::now();
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&[]))).await;
    assert_eq!(r.status, Status::Ok, "{}", nagios::render(&r, 2));
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 honoured twice"
    );
    let reqs = fx.state()["requests"].clone();
    assert_eq!(
        reqs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r[2] == "throttled")
            .count(),
        2
    );
}

#[tokio::test]
async fn throttling_that_lasts_is_critical_naming_429() {
    let fx = Fixture::start(&["throttle:1000"]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&["-t", "30"]))).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Critical, "{}", nagios::render(&r, 2));
    assert_eq!(stage, "VM-01");
    assert!(
        msg.contains("throttled") && msg.contains("429") && msg.contains("TooManyRequests"),
        "{msg}"
    );
}

#[tokio::test]
async fn garbage_answer_is_critical_and_cleanup_runs() {
    let fx = Fixture::start(&["garbage"]);
    let r = run_args::<VmLifecycle, _>(&fx.argv(false, &vm_args(&[]))).await;
    let (stage, msg) = failed_step(&r);
    assert_eq!(r.status, Status::Critical, "{}", nagios::render(&r, 2));
    assert_eq!(stage, "VM-07");
    assert!(msg.contains("not JSON"), "{msg}");
    // The delete does not need the broken GET to be accepted; the wait for
    // "gone" does: the VM is asked to be deleted, the cleanup reports what it saw.
    let ops = fx.ops();
    assert!(ops.iter().any(|o| o == "VirtualMachines_Delete"), "{ops:?}");
}

#[tokio::test]
async fn image_upload_through_a_disk_sas() {
    let fx = Fixture::start(&[]);
    let r = run_args::<ImageUpload, _>(&fx.argv(true, &["--size", "5MiB", "-t", "60"])).await;
    let out = nagios::render(&r, 2);
    // Azure reports no checksum of a disk: size verified, hashes not (WARNING).
    assert_eq!(r.status, Status::Warning, "{out}");
    let verify = r.steps.iter().find(|s| s.check == "IMG-04").unwrap();
    assert!(
        verify.message.contains("checksum not reported"),
        "{}",
        verify.message
    );
    let down = r.steps.iter().find(|s| s.check == "IMG-05").unwrap();
    assert_eq!(down.status, Status::Ok, "{}", down.message);
    assert!(all_deleted(&r), "{out}");
    let st = fx.state();
    assert!(
        st["images"].as_array().unwrap().is_empty() && st["disks"].as_object().unwrap().is_empty(),
        "{st}"
    );
    let ops = fx.ops();
    assert_eq!(
        ops.iter().filter(|o| *o == "Disks_GrantAccess").count(),
        2,
        "write, then read: {ops:?}"
    );
}

#[tokio::test]
async fn image_size_not_in_pages_is_unknown_and_nothing_is_left() {
    let fx = Fixture::start(&[]);
    let r = run_args::<ImageUpload, _>(&fx.argv(false, &["--size", "1000", "-t", "30"])).await;
    assert_eq!(r.status, Status::Unknown, "{}", nagios::render(&r, 2));
    assert!(fx.state()["disks"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn usage_lists_servers_and_disks() {
    let fx = Fixture::start(&[]);
    let r = run_args::<Usage, _>(&fx.argv(false, &["-t", "30"])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Ok, "{out}");
    for c in ["USAGE-01", "USAGE-03"] {
        assert!(
            r.steps
                .iter()
                .any(|s| s.check == c && s.status == Status::Ok),
            "{c}: {out}"
        );
    }
    // Deleted VMs are not listed by Microsoft.Compute: a server not there is a WARNING.
    let r = run_args::<Usage, _>(&fx.argv(false, &["-t", "30", "--server-id", "nope"])).await;
    assert_eq!(r.status, Status::Warning, "{}", nagios::render(&r, 2));
    let (stage, msg) = failed_step(&r);
    assert_eq!(stage, "USAGE-02");
    assert!(msg.contains("lists existing servers only"), "{msg}");
}

/// `Volumes` on Azure (check_block_storage drives it on another branch): a
/// disk created, attached to a VM, detached, deleted, found by its tag.
#[tokio::test]
async fn volumes_create_attach_detach_delete() {
    use clap::Parser;
    use probes::auth::AuthArgs;
    use probes::backend::{
        azure, Compute, NetworkChoice, ServerSpec, VolumePhase, VolumeSpec, Volumes,
    };
    use probes::ctx::Settings;
    use probes::http::TlsOptions;
    use probes::runner::{execute, RunOptions};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }
    let fx = Fixture::start(&[]);
    let mut argv = vec!["t".to_string()];
    argv.extend(
        fx.argv(false, &[])
            .into_iter()
            .filter(|a| a != "--output" && a != "json"),
    );
    let cli = Cli::parse_from(argv);
    let opts = RunOptions {
        probe: "azure_volumes".into(),
        label: "VOLUMES".into(),
        timeout: Duration::from_secs(40),
        timeout_status: Status::Unknown,
        cleanup_grace: None,
        tls: TlsOptions::default(),
        settings: Settings::default(),
        events: None,
    };
    let r = execute(opts, std::future::pending(), move |ctx| async move {
        let az = azure::login(&ctx, &cli.auth).await?;
        let tag =
            std::collections::BTreeMap::from([("fedprobe-run".to_string(), "vol1".to_string())]);
        let vm = az
            .create_server(&ServerSpec {
                name: "fedprobe-vol1".into(),
                image_id: az
                    .find_image(&probes::backend::ImageQuery::IdOrName(
                        "egi-monitoring".into(),
                    ))
                    .await?
                    .id,
                flavor_id: "Standard_B1s".into(),
                network: NetworkChoice::None,
                metadata: tag.clone(),
            })
            .await?;
        let vol = az
            .create_volume(&VolumeSpec {
                name: "fedprobe-vol1-data".into(),
                size_gb: 1,
                volume_type: None,
                metadata: tag,
            })
            .await?;
        let phase = |want: VolumePhase| {
            let az = az.clone();
            let vol = vol.clone();
            async move {
                for _ in 0..50 {
                    let v = az
                        .volume(&vol)
                        .await?
                        .ok_or_else(|| probes::Fail::critical("volume gone"))?;
                    if v.phase == want {
                        return Ok(v);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(probes::Fail::critical(format!("volume never {want:?}")))
            }
        };
        phase(VolumePhase::Available).await?;
        az.attach_volume(&vm, &vol).await?;
        let attached = phase(VolumePhase::InUse).await?;
        assert_eq!(attached.attached_to, vec![vm.clone()]);
        assert_eq!(attached.size_gb, Some(1));
        assert_eq!(az.volumes_tagged("fedprobe-run").await?.len(), 1);
        az.detach_volume(&vm, &vol).await?;
        phase(VolumePhase::Available).await?;
        assert!(az.delete_volume(&vol).await?);
        assert!(az.delete_server(&vm).await?);
        for _ in 0..50 {
            if az.volume(&vol).await?.is_none() && az.server(&vm).await?.is_none() {
                return Ok("volume cycle done".to_string());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(probes::Fail::critical("volume or VM not gone"))
    })
    .await;
    assert_eq!(r.status, Status::Ok, "{}", nagios::render(&r, 2));
    let ops = fx.ops();
    assert_eq!(
        ops.iter()
            .filter(|o| *o == "VirtualMachines_AttachDetachDataDisks")
            .count(),
        2,
        "{ops:?}"
    );
}

#[tokio::test]
async fn token_auth_checks_the_federated_login_and_a_garbage_token() {
    use probes::checks::token_auth::TokenAuth;
    let fx = Fixture::start(&[]);
    let r = run_args::<TokenAuth, _>(&fx.argv(true, &["-t", "30"])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Ok, "{out}");
    for c in [
        "AUTH-05", "AUTH-01", "AUTH-02", "AUTH-06", "AUTH-09", "AUTH-11",
    ] {
        assert!(
            r.steps
                .iter()
                .any(|s| s.check == c && s.status == Status::Ok),
            "{c}: {out}"
        );
    }
    let g = r.steps.iter().find(|s| s.check == "AUTH-09").unwrap();
    assert!(g.message.contains("HTTP 401"), "{}", g.message);
    // The refused federated credential: UNKNOWN at AUTH-02.
    let fx = Fixture::start(&["refuse-federated"]);
    let r = run_args::<TokenAuth, _>(&fx.argv(true, &["-t", "30"])).await;
    assert_eq!(r.status, Status::Unknown, "{}", nagios::render(&r, 2));
    assert_eq!(failed_step(&r).0, "AUTH-02");
}
