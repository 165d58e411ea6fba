//! An Azure site: the example profile plans the guideline's probes with the
//! Azure flags, and `fedprobe run` grades a site served by the Azure fixture
//! (ci/peers/azure_fixture.py, started here on a port of its own, stopped by PID).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedprobe::app::plan_site;
use fedprobe::guideline::Guideline;
use fedprobe::profile::Profile;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_azure_profile_plans_the_probes_with_azure_flags() {
    let p = Profile::load(&repo().join("testdata/sites/azure.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_site(&p, &Guideline::embedded(), dir.path()).unwrap();
    let vm = plan
        .probes
        .iter()
        .find(|a| a.name == "check_vm_lifecycle")
        .unwrap();
    let joined = vm.argv.join(" ");
    for want in [
        "--cloud azure",
        "--endpoint https://management.azure.com",
        "--azure-tenant 00000000-0000-0000-0000-000000000000",
        "--azure-resource-group fedprobe-monitoring",
        "--access-token /etc/fedprobe/oidc-access-token",
    ] {
        assert!(joined.contains(want), "{want} missing: {joined}");
    }
    let names: Vec<&str> = plan.probes.iter().map(|a| a.name.as_str()).collect();
    assert!(!names.contains(&"check_object_storage"), "{names:?}");
    // check_token_auth checks the Entra ID login on Azure.
    let auth = plan
        .probes
        .iter()
        .find(|a| a.name == "check_token_auth")
        .unwrap();
    assert!(
        auth.argv.join(" ").contains("--cloud azure"),
        "{:?}",
        auth.argv
    );
}

struct Fixture(Child);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fedprobe_run_grades_an_azure_site() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let _fx = Fixture(
        Command::new("python3")
            .arg(repo().join("ci/peers/azure_fixture.py"))
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .env("AZURE_FIXTURE_SETTLE", "0.2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the Azure fixture"),
    );
    let t0 = Instant::now();
    let port = loop {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            if s.ends_with('\n') {
                break s.trim().to_string();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "fixture did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = format!("http://127.0.0.1:{port}");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "fixture-secret").unwrap();
    let profile = dir.path().join("azure.toml");
    std::fs::write(
        &profile,
        format!(
            r#"site = "AZURE-FIXTURE"
cloud = "azure"
skip = ["check_token_auth", "check_object_storage", "check_network", "check_glue"]
[endpoints]
api = "{url}"
[defaults]
azure-authority = "{url}"
azure-tenant = "fedprobe-tenant"
azure-client-id = "fedprobe-app"
azure-client-secret = "{secret}"
azure-subscription = "0000-sub"
azure-resource-group = "fedprobe-rg"
azure-location = "westeurope"
[probe.check_vm_lifecycle]
image = "egi-monitoring"
timeout = "60s"
[probe.check_image_upload]
timeout = "60s"
[probe.check_usage]
timeout = "60s"
"#,
            secret = secret.display()
        ),
    )
    .unwrap();
    let reports = dir.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "json"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("fixture-secret"), "the secret never shows");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("fedprobe.json")).unwrap())
            .unwrap();
    let site = &v["sites"][0];
    assert_eq!(site["run"]["cloud"], "azure", "{}", site["run"]);
    let status = |probe: &str| {
        site["run"]["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["probe"] == probe)
            .map(|p| p["result"]["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(status("check_vm_lifecycle"), "OK", "{}", site["run"]);
    // Azure reports no checksum of an uploaded disk: size checked, hashes not.
    assert_eq!(status("check_image_upload"), "WARNING", "{}", site["run"]);
    // The VM probe's server is gone when check_usage looks: Microsoft.Compute does not list it.
    assert_eq!(status("check_usage"), "WARNING", "{}", site["run"]);
    let caps = site["grade"]["capabilities"].as_array().unwrap();
    let cap = |id: &str| {
        caps.iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(cap("compute-vm-lifecycle"), "pass", "{caps:?}");
    assert_eq!(cap("usage-block-storage"), "pass", "{caps:?}");
    assert_ne!(cap("image-upload-delete"), "fail", "{caps:?}");
}
