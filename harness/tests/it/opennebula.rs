//! `fedprobe run` on an OpenNebula site (profile `cloud = "opennebula"`)
//! against the OpenNebula fixture: the guideline's probes run through the
//! OpenNebula backend and are graded; the report names the API.

use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> String {
    std::env::var("FEDPROBE_ONE_PYTHON").unwrap_or_else(|_| {
        let p = std::env::var("FEDPROBE_PEERS_DIR").unwrap_or("/tmp/fedprobe-peers".into());
        format!("{p}/cache/venv-one/bin/python")
    })
}

/// The fixture on a free port, killed on drop.
struct Fixture(std::process::Child);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fedprobe_run_grades_an_opennebula_site() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:harness-fixture-pass-42").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/peers/one_fixture.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg("--session-file")
        .arg(&session)
        .stdout(Stdio::piped())
        .spawn()
        .expect(
            "start the OpenNebula fixture (bash ci/peers/opennebula.sh install makes its venv)",
        );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _fixture = Fixture(child);
    let port = line.trim().strip_prefix("PORT ").expect("PORT line");
    // testdata/sites/opennebula.toml with this fixture's endpoint and session file
    let shape = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/sites/opennebula.toml"
    ))
    .unwrap();
    let profile_text = shape
        .replace(
            "https://one.example.org:2633/RPC2",
            &format!("http://127.0.0.1:{port}/RPC2"),
        )
        .replace("/etc/fedprobe/one_auth", &session.display().to_string())
        + "poll-interval = \"0.2s\"\n";
    let profile = dir.path().join("one.toml");
    std::fs::write(&profile, profile_text).unwrap();
    let reports = dir.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "json"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(reports.join("fedprobe.json")).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: Value = serde_json::from_str(&text).unwrap();
    let run = &v["sites"][0]["run"];
    assert_eq!(run["cloud"], "opennebula", "{run}");
    let probes = run["probes"].as_array().unwrap();
    let find = |name: &str| {
        probes
            .iter()
            .find(|x| x["probe"] == name)
            .unwrap_or_else(|| panic!("{name} ran: {run}"))
    };
    let login = find("check_token_auth");
    assert_eq!(login["result"]["status"], "OK", "{}", login["result"]);
    let vm = find("check_vm_lifecycle");
    assert_eq!(vm["result"]["status"], "OK", "{}", vm["result"]);
    let argv = vm["argv"].as_array().unwrap();
    assert!(argv.iter().any(|a| a == "opennebula"), "{argv:?}");
    // oned has no image download: WARNING, and the image is deleted
    let img = find("check_image_upload");
    assert_eq!(img["result"]["status"], "WARNING", "{}", img["result"]);
    for r in img["result"]["resources"].as_array().unwrap() {
        assert_eq!(r["cleanup"], "deleted", "{r}");
    }
    let usage = find("check_usage");
    assert_eq!(usage["result"]["status"], "OK", "{}", usage["result"]);
    let step = usage["result"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == "USAGE-02")
        .unwrap_or_else(|| panic!("USAGE-02 ran: {}", usage["result"]));
    assert_eq!(step["status"], "OK", "{step}");
    assert!(!text.contains("harness-fixture-pass-42"));
}
