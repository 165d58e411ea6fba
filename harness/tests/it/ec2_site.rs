//! `fedprobe run` on an EC2 site (testdata/sites/ec2.toml) against the real
//! moto server ci/peers/moto.sh starts: the guideline's VM, image and usage
//! probes run through the EC2 backend with a federated (STS) login and are
//! graded like on OpenStack; the report names the API.

use std::process::Command;

use serde_json::Value;

fn moto_url(test: &str) -> Option<String> {
    let file = std::env::var("FEDPROBE_MOTO_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/moto.env".into());
    let url = std::fs::read_to_string(&file).ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MOTO_URL="))
            .map(|u| u.trim().to_string())
    });
    if url.is_none() {
        eprintln!("SKIP {test}: no MOTO_URL in {file} (ci/peers/moto.sh start)");
    }
    url
}

#[test]
fn fedprobe_run_grades_an_ec2_site() {
    let Some(url) = moto_url("ec2_site::fedprobe_run_grades_an_ec2_site") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let site = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/sites/ec2.toml"),
    )
    .unwrap()
    .replace("http://127.0.0.1:15050", &url);
    let profile = dir.path().join("ec2.toml");
    std::fs::write(&profile, site).unwrap();
    let reports = dir.path().join("r");
    // moto takes any web identity token; the probe must not show it.
    let token = "eyJhbGciOiJub25lIn0.Qx8Lm3Vz7Kp2Rw9T.sig";
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "nagios"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .env("FEDPROBE_EC2_OIDC_TOKEN", token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("fedprobe-ec2-site-test"),
        "token in output"
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("fedprobe.json")).unwrap())
            .unwrap();
    let site = &v["sites"][0];
    assert_eq!(site["run"]["cloud"], "ec2", "{}", site["run"]);
    let probes = site["run"]["probes"].as_array().unwrap();
    let status = |name: &str| {
        probes
            .iter()
            .find(|p| p["probe"] == name)
            .map(|p| p["result"]["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("{name} not run: {probes:?}"))
    };
    assert_eq!(status("check_vm_lifecycle"), "OK", "{probes:#?}");
    // EBS stores no whole-image checksum: IMG-04 warns, the rest is verified.
    assert_eq!(status("check_image_upload"), "WARNING", "{probes:#?}");
    assert_eq!(status("check_usage"), "OK", "{probes:#?}");
    let usage = probes.iter().find(|p| p["probe"] == "check_usage").unwrap();
    let steps = usage["result"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["check"] == "USAGE-02" && s["status"] == "OK"),
        "the VM probe's server is found in the usage: {steps:#?}"
    );
    let caps = site["grade"]["capabilities"].as_array().unwrap();
    let cap = |id: &str| {
        caps.iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    for id in [
        "compute-vm-lifecycle",
        "image-upload-delete",
        "usage-per-vm",
        "usage-block-storage",
    ] {
        assert_eq!(cap(id), "pass", "{id}: {caps:#?}");
    }
    // EC2's federated login is STS AssumeRoleWithWebIdentity, which
    // check_token_auth now checks (it was skipped here before).
    assert_eq!(cap("identity-oidc-federation"), "pass");
}

/// `fedprobe demo --cloud ec2` runs the guideline against moto.
#[cfg(feature = "demo")]
#[test]
fn demo_runs_on_moto() {
    if moto_url("ec2_site::demo_runs_on_moto").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args([
            "demo",
            "--cloud",
            "ec2",
            "--quiet",
            "--format",
            "json",
            "--report-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let site = &v["sites"][0];
    assert_eq!(site["run"]["site"], "DEMO-EC2", "{v}");
    assert_eq!(site["run"]["cloud"], "ec2");
    let caps = site["grade"]["capabilities"].as_array().unwrap();
    let vm = caps
        .iter()
        .find(|c| c["id"] == "compute-vm-lifecycle")
        .unwrap();
    assert_eq!(vm["status"], "pass", "{vm}");
}
