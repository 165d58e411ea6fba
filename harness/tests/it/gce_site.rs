//! `fedprobe run` on a Google Compute Engine site: testdata/sites/gce.toml
//! pointed at a private GCE fixture (ci/peers/gce_fixture.py, from the venv
//! ci/peers/gce.sh installs; without it this test FAILS). The guideline's
//! probes that speak GCE run and are graded like on OpenStack.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> String {
    if let Ok(p) = std::env::var("FEDPROBE_GCE_PYTHON") {
        return p;
    }
    let dir = std::env::var("FEDPROBE_PEERS_DIR").unwrap_or_else(|_| "/tmp/fedprobe-peers".into());
    format!("{dir}/cache/venv-gce/bin/python")
}

#[test]
fn fedprobe_run_grades_a_gce_site() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let script = format!("{root}/ci/peers/gce_fixture.py");
    let py = python();
    assert!(
        std::path::Path::new(&py).exists(),
        "no python with google-api-python-client at {py}: run ci/peers/gce.sh install"
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.json");
    assert!(Command::new(&py)
        .args([&script, "--make-key", key.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let mut fixture = Command::new(&py)
        .args([&script, "--port", "0", "--key", key.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fixture.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let site = std::fs::read_to_string(format!("{root}/testdata/sites/gce.toml"))
        .unwrap()
        .replace("127.0.0.1:15080", &addr)
        .replace("/tmp/fedprobe-peers/gce/sa.json", key.to_str().unwrap());
    let profile = dir.path().join("gce.toml");
    std::fs::write(&profile, site).unwrap();
    let reports = dir.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "json"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let _ = fixture.kill();
    let _ = fixture.wait();
    let text = std::fs::read_to_string(reports.join("fedprobe.json")).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: Value = serde_json::from_str(&text).unwrap();
    let site = &v["sites"][0];
    assert_eq!(site["run"]["cloud"], "gce", "{}", site["run"]);
    let probes = site["run"]["probes"].as_array().unwrap();
    let status = |name: &str| {
        probes
            .iter()
            .find(|p| p["probe"] == name)
            .map(|p| p["result"]["status"].clone())
            .unwrap_or_else(|| panic!("{name} not run: {}", site["run"]))
    };
    assert_eq!(status("check_vm_lifecycle"), "OK", "{}", site["run"]);
    // the image's MD5 is the staged archive's; GCE reports no os_hash: WARNING
    assert_ne!(status("check_image_upload"), "CRITICAL", "{}", site["run"]);
    // the VM probe's server is deleted: GCE keeps no usage of it (WARNING)
    assert_ne!(status("check_usage"), "CRITICAL", "{}", site["run"]);
    let caps = site["grade"]["capabilities"].as_array().unwrap();
    let cap = |id: &str| caps.iter().find(|c| c["id"] == id).unwrap()["status"].clone();
    for id in [
        "compute-vm-lifecycle",
        "image-upload-delete",
        "usage-per-vm",
        "usage-block-storage",
        "monitoring-friendly",
    ] {
        assert_eq!(cap(id), "pass", "{id}: {}", site["grade"]);
    }
    // Keystone federation is not what a GCE site offers: not run, not passed
    assert_ne!(cap("identity-oidc-federation"), "pass");
}
