//! The guideline through the harness on every other cloud API: `fedprobe run`
//! with a site profile per cloud (moto for EC2, the Azure, GCE and OpenNebula
//! fixtures), federated logins where the cloud has one. Each site is graded
//! the same way: what applies passes, what does not apply says why, and the
//! API is named in every report. One injected fault per cloud fails the
//! right capability at the right stage.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_dir() -> String {
    std::env::var("FEDPROBE_PEERS_DIR").unwrap_or_else(|_| "/tmp/fedprobe-peers".into())
}

/// A fixture process, killed (by its PID, through the handle) on drop.
struct Fixture(Child);

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one `fedprobe run` wrote: the JSON document and every report.
struct Reports {
    json: Value,
    dir: PathBuf,
}

impl Reports {
    fn site(&self) -> &Value {
        &self.json["sites"][0]
    }

    fn cap(&self, id: &str) -> &Value {
        self.site()["grade"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no capability {id}"))
    }

    fn status(&self, id: &str) -> String {
        self.cap(id)["status"].as_str().unwrap_or("").to_string()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The API's name is in the Nagios, JUnit, Markdown and HTML reports.
    fn name_the_api(&self, api: &str) {
        for f in [
            "fedprobe.nagios.txt",
            "fedprobe.junit.xml",
            "fedprobe-report.md",
            "fedprobe-report.html",
        ] {
            assert!(self.file(f).contains(api), "{f} does not name {api}");
        }
    }
}

fn run(profile_text: &str, dir: &Path, env: &[(&str, &str)]) -> Reports {
    let profile = dir.join("site.toml");
    std::fs::write(&profile, profile_text).unwrap();
    let reports = dir.join("reports");
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "json"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(reports.join("fedprobe.json")).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap();
    // Shown with --nocapture: the wall time of the guideline on this API.
    eprintln!(
        "{} ({}): guideline run {}s",
        json["sites"][0]["run"]["site"],
        json["sites"][0]["run"]["cloud"],
        json["sites"][0]["run"]["duration"]
    );
    Reports { json, dir: reports }
}

/// The grading every API shares: the capabilities that apply pass, those that
/// do not are `not-applicable` with the reason and are not counted.
fn graded_like_everywhere(r: &Reports, cloud: &str, passing: &[&str], not_applicable: &[&str]) {
    let site = r.site();
    assert_eq!(site["run"]["cloud"], cloud, "{}", site["run"]);
    for id in passing {
        assert_eq!(r.status(id), "pass", "{id}: {:#}", r.cap(id));
    }
    for id in not_applicable {
        let c = r.cap(id);
        assert_eq!(c["status"], "not-applicable", "{id}: {c:#}");
        let why = c["reason"].as_str().unwrap_or("");
        assert!(why.starts_with("not applicable on "), "{id}: {why}");
        // shown, never counted as passed or failed
        for ch in c["checks"].as_array().unwrap() {
            assert!(ch["flagged"].is_string(), "{id}: {ch}");
        }
    }
    let g = &site["grade"];
    let required_na = g["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "required" && c["status"] == "not-applicable")
        .count();
    let required = g["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "required")
        .count();
    assert_eq!(
        g["required_total"].as_u64().unwrap() as usize,
        required - required_na,
        "{g:#}"
    );
}

/// A check of a capability, by id.
fn check<'a>(r: &'a Reports, cap: &str, id: &str) -> &'a Value {
    r.cap(cap)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == id)
        .unwrap_or_else(|| panic!("{cap} has no {id}: {:#}", r.cap(cap)))
}

// ---------------------------------------------------------------- EC2 (moto)

fn moto_url(test: &str) -> String {
    let file =
        std::env::var("FEDPROBE_MOTO_ENV").unwrap_or_else(|_| format!("{}/moto.env", peers_dir()));
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MOTO_URL="))
                .map(|u| u.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{test}: no MOTO_URL in {file} (ci/peers/moto.sh start)"))
}

fn ec2_profile(url: &str) -> String {
    std::fs::read_to_string(repo().join("testdata/sites/ec2.toml"))
        .unwrap()
        .replace("http://127.0.0.1:15050", url)
}

const EC2_TOKEN: &str = "eyJhbGciOiJub25lIn0.Wb3Kq8Zt2Lx5Rn7V.sig";

#[test]
fn the_guideline_passes_on_moto() {
    let url = moto_url("clouds::the_guideline_passes_on_moto");
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        &ec2_profile(&url),
        dir.path(),
        &[("FEDPROBE_EC2_OIDC_TOKEN", EC2_TOKEN)],
    );
    graded_like_everywhere(
        &r,
        "ec2",
        &[
            "identity-oidc-federation",
            "compute-vm-lifecycle",
            "image-upload-delete",
            "usage-per-vm",
            "usage-block-storage",
            "monitoring-friendly",
        ],
        &[
            "glue-publication",
            "accounting-records",
            "appliance-repository",
        ],
    );
    assert_eq!(r.site()["grade"]["passed"], true, "{:#}", r.site()["grade"]);
    // the federated login is STS with the OIDC token
    let sts = check(&r, "identity-oidc-federation", "AUTH-02");
    assert!(
        sts["message"]
            .as_str()
            .unwrap()
            .contains("AssumeRoleWithWebIdentity"),
        "{sts}"
    );
    // Swift only: S3 is not checked, and the report says so (advisory)
    let obj = r.cap("object-storage");
    assert_eq!(obj["status"], "fail", "{obj:#}");
    assert!(obj["reason"].as_str().unwrap().contains("S3"), "{obj:#}");
    r.name_the_api("Amazon EC2/EBS");
    assert!(!r.file("fedprobe.nagios.txt").contains(EC2_TOKEN));
}

/// An HTTP server on loopback refusing every STS call as AWS refuses a role
/// the web identity may not assume (403 AccessDenied); `n` connections at most.
fn refusing_sts(n: usize) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(n) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len.min(1 << 16)];
            let _ = r.read_exact(&mut body);
            let xml = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>";
            let _ = write!(
                s,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
    });
    format!("http://{addr}/")
}

#[test]
fn a_refused_sts_role_fails_the_federated_login_at_the_exchange() {
    let url = moto_url("clouds::a_refused_sts_role_fails_the_federated_login_at_the_exchange");
    let sts = refusing_sts(32);
    let dir = tempfile::tempdir().unwrap();
    let profile = ec2_profile(&url).replace(
        "[defaults]\n",
        &format!("[defaults]\nec2-sts-endpoint = \"{sts}\"\n"),
    );
    let r = run(
        &profile,
        dir.path(),
        &[("FEDPROBE_EC2_OIDC_TOKEN", EC2_TOKEN)],
    );
    assert_eq!(r.site()["grade"]["passed"], false);
    assert_eq!(r.status("identity-oidc-federation"), "fail");
    let x = check(&r, "identity-oidc-federation", "AUTH-02");
    // the monitor's own credential refused: UNKNOWN, in STS's words
    assert_eq!(x["status"], "UNKNOWN", "{x}");
    assert!(
        x["message"].as_str().unwrap().contains("AccessDenied"),
        "{x}"
    );
    // the VM probe never got past the login: not passed, and says where it stopped
    assert_eq!(r.status("compute-vm-lifecycle"), "fail");
    let vm = r.cap("compute-vm-lifecycle")["checks"].to_string();
    assert!(vm.contains("AUTH-02"), "{vm}");
}

// ---------------------------------------------------------------- Azure

fn azure_fixture(dir: &Path, faults: &[&str]) -> (Fixture, String) {
    let port_file = dir.join("port");
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
    let fx = Fixture(cmd.spawn().expect("python3 runs the Azure fixture"));
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
    (fx, format!("http://127.0.0.1:{port}"))
}

/// The federated Azure login: the OIDC access token as client assertion.
fn azure_profile(url: &str, token: &Path) -> String {
    format!(
        r#"site = "AZURE-FIXTURE"
cloud = "azure"
skip = ["check_object_storage", "check_network", "check_glue"]
[endpoints]
api = "{url}"
[credentials.access_token]
file = "{token}"
[defaults]
azure-authority = "{url}"
azure-tenant = "fedprobe-tenant"
azure-client-id = "fedprobe-app"
azure-subscription = "0000-sub"
azure-resource-group = "fedprobe-rg"
azure-location = "westeurope"
timeout = "60s"
[probe.check_vm_lifecycle]
image = "egi-monitoring"
"#,
        token = token.display()
    )
}

fn jwt_token(dir: &Path) -> PathBuf {
    let exp = probes::clock::now_unix() as i64 + 3600;
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let tok = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"iss":"https://aai.example.org/oidc/","sub":"monitor","exp":{exp}}}"#
        ))
    );
    let p = dir.join("oidc-token");
    std::fs::write(&p, tok).unwrap();
    p
}

#[test]
fn the_guideline_passes_on_the_azure_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, url) = azure_fixture(dir.path(), &[]);
    let token = jwt_token(dir.path());
    let r = run(&azure_profile(&url, &token), dir.path(), &[]);
    graded_like_everywhere(
        &r,
        "azure",
        &[
            "identity-oidc-federation",
            "compute-vm-lifecycle",
            "image-upload-delete",
            "usage-per-vm",
            "usage-block-storage",
            "monitoring-friendly",
        ],
        &[
            "glue-publication",
            "accounting-records",
            "appliance-repository",
        ],
    );
    assert_eq!(r.site()["grade"]["passed"], true, "{:#}", r.site()["grade"]);
    let login = r.cap("identity-oidc-federation")["checks"].to_string();
    assert!(login.contains("federated"), "{login}");
    r.name_the_api("Azure Virtual Machines/Disks");
}

#[test]
fn a_vm_azure_fails_to_allocate_fails_the_lifecycle_at_active() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, url) = azure_fixture(dir.path(), &["vm-failed"]);
    let token = jwt_token(dir.path());
    let r = run(&azure_profile(&url, &token), dir.path(), &[]);
    assert_eq!(r.site()["grade"]["passed"], false);
    assert_eq!(r.status("compute-vm-lifecycle"), "fail");
    let x = check(&r, "compute-vm-lifecycle", "VM-07");
    assert_eq!(x["status"], "CRITICAL", "{x}");
    assert!(
        x["message"].as_str().unwrap().contains("AllocationFailed"),
        "{x}"
    );
    // the rest of the site is unaffected
    assert_eq!(r.status("identity-oidc-federation"), "pass");
    assert_eq!(r.status("image-upload-delete"), "pass");
}

// ---------------------------------------------------------------- GCE

fn gce_python() -> String {
    std::env::var("FEDPROBE_GCE_PYTHON")
        .unwrap_or_else(|_| format!("{}/cache/venv-gce/bin/python", peers_dir()))
}

fn gce_fixture(dir: &Path) -> (Fixture, String, PathBuf) {
    let py = gce_python();
    assert!(
        Path::new(&py).exists(),
        "no python with google-api-python-client at {py}: run ci/peers/gce.sh install"
    );
    let script = repo().join("ci/peers/gce_fixture.py");
    let key = dir.join("sa.json");
    assert!(Command::new(&py)
        .arg(&script)
        .arg("--make-key")
        .arg(&key)
        .status()
        .unwrap()
        .success());
    let mut child = Command::new(&py)
        .arg(&script)
        .args(["--port", "0", "--key"])
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.split_whitespace().nth(1).unwrap_or("").to_string();
    (Fixture(child), addr, key)
}

/// testdata/sites/gce.toml on this fixture; check_token_auth logs in through
/// workload identity federation (the OIDC token exchanged at STS).
fn gce_profile(addr: &str, key: &Path, token: &Path, project: &str) -> String {
    std::fs::read_to_string(repo().join("testdata/sites/gce.toml"))
        .unwrap()
        .replace("127.0.0.1:15080", addr)
        .replace("/tmp/fedprobe-peers/gce/sa.json", key.to_str().unwrap())
        .replace("\"fedprobe-ci\"", &format!("\"{project}\""))
        .replace(
            "skip = [\"check_token_auth\", \"check_glue\", \"check_object_storage\", \"check_network\"]",
            "skip = [\"check_glue\", \"check_object_storage\", \"check_network\"]",
        )
        + &format!(
            r#"
[probe.check_token_auth]
gce-key = false
gce-wif-audience = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/egi/providers/checkin"
access-token = "{}"
"#,
            token.display()
        )
}

#[test]
fn the_guideline_passes_on_the_gce_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, addr, key) = gce_fixture(dir.path());
    let token = jwt_token(dir.path());
    let r = run(
        &gce_profile(&addr, &key, &token, "fedprobe-ci"),
        dir.path(),
        &[],
    );
    graded_like_everywhere(
        &r,
        "gce",
        &[
            "identity-oidc-federation",
            "compute-vm-lifecycle",
            "image-upload-delete",
            "usage-per-vm",
            "usage-block-storage",
            "monitoring-friendly",
        ],
        &[
            "glue-publication",
            "accounting-records",
            "appliance-repository",
        ],
    );
    assert_eq!(r.site()["grade"]["passed"], true, "{:#}", r.site()["grade"]);
    let wif = r.cap("identity-oidc-federation")["checks"].to_string();
    assert!(wif.contains("AUTH-GCE-02"), "{wif}");
    r.name_the_api("Google Compute Engine");
}

#[test]
fn a_terminated_gce_instance_fails_the_lifecycle_at_active() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, addr, key) = gce_fixture(dir.path());
    let token = jwt_token(dir.path());
    let profile = gce_profile(&addr, &key, &token, "fedprobe-terminated");
    let r = run(&profile, dir.path(), &[]);
    assert_eq!(r.site()["grade"]["passed"], false);
    assert_eq!(r.status("compute-vm-lifecycle"), "fail");
    let x = check(&r, "compute-vm-lifecycle", "VM-07");
    assert_eq!(x["status"], "CRITICAL", "{x}");
    assert!(
        x["message"]
            .as_str()
            .unwrap()
            .contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "{x}"
    );
    assert_eq!(r.status("identity-oidc-federation"), "pass");
}

// ---------------------------------------------------------------- OpenNebula

fn one_fixture(session: &Path, fault: Option<&str>) -> (Fixture, String) {
    let py = std::env::var("FEDPROBE_ONE_PYTHON")
        .unwrap_or_else(|_| format!("{}/cache/venv-one/bin/python", peers_dir()));
    let mut cmd = Command::new(py);
    cmd.arg(repo().join("ci/peers/one_fixture.py"))
        .arg("--session-file")
        .arg(session)
        .stdout(Stdio::piped());
    if let Some(f) = fault {
        cmd.args(["--fault", f]);
    }
    let mut child = cmd.spawn().expect(
        "start the OpenNebula fixture (bash ci/peers/opennebula.sh install makes its venv)",
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("PORT line")
        .to_string();
    (Fixture(child), port)
}

fn one_profile(port: &str, session: &Path) -> String {
    std::fs::read_to_string(repo().join("testdata/sites/opennebula.toml"))
        .unwrap()
        .replace(
            "https://one.example.org:2633/RPC2",
            &format!("http://127.0.0.1:{port}/RPC2"),
        )
        .replace("/etc/fedprobe/one_auth", &session.display().to_string())
        + "poll-interval = \"0.2s\"\n"
}

/// The site's GLUE 2.1 JSON as its producer writes it: cloud-info-provider
/// 1.2.0's objects and glue21json formatter with the OpenNebula provider of
/// ci/producers/cip_opennebula.py, run against the fixture (venv of
/// ci/producers/lib.sh). `group` is the OpenNebula group the site maps VO
/// ops to.
fn one_glue(dir: &Path, port: &str, session: &Path, group: &str) -> PathBuf {
    let py = std::env::var("FEDPROBE_CIP_PYTHON")
        .unwrap_or_else(|_| "/tmp/fedprobe-producers/venv/bin/python".into());
    let url = format!("http://127.0.0.1:{port}/RPC2");
    let site = dir.join("cip-site.yaml");
    std::fs::write(
        &site,
        format!("gocdb: EXAMPLE-ONE\nendpoint: {url}\nvos:\n  - name: ops\n    auth:\n      group: {group}\n"),
    )
    .unwrap();
    let out = Command::new(&py)
        .arg(repo().join("ci/producers/cip_opennebula.py"))
        .arg("EXAMPLE-ONE")
        .arg(&site)
        .arg("--on-auth")
        .arg(std::fs::read_to_string(session).unwrap().trim())
        .args(["--on-rpcxml-endpoint", &url])
        .output()
        .unwrap_or_else(|e| {
            panic!("{py}: {e} (ci/producers/lib.sh ensure_venv installs cloud-info-provider 1.2.0)")
        });
    assert!(
        out.status.success(),
        "cloud-info-provider: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let glue = dir.join("glue.json");
    std::fs::write(&glue, &out.stdout).unwrap();
    glue
}

/// The OpenNebula profile with check_glue on: the producer's publication,
/// compared with oned through the profile's session.
fn one_profile_with_glue(port: &str, session: &Path, glue: &Path) -> String {
    one_profile(port, session).replace(
        "skip = [\"check_object_storage\", \"check_network\", \"check_glue\"]",
        "skip = [\"check_object_storage\", \"check_network\"]",
    ) + &format!(
        "\n[probe.check_glue]\nglue-file = {:?}\n",
        glue.display().to_string()
    )
}

#[test]
fn the_guideline_passes_on_the_opennebula_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:clouds-fixture-pass-7").unwrap();
    let (_fx, port) = one_fixture(&session, None);
    let glue = one_glue(dir.path(), &port, &session, "ops");
    let r = run(
        &one_profile_with_glue(&port, &session, &glue),
        dir.path(),
        &[],
    );
    graded_like_everywhere(
        &r,
        "opennebula",
        &[
            "compute-vm-lifecycle",
            "image-upload-delete",
            "usage-per-vm",
            "usage-block-storage",
            "monitoring-friendly",
            "glue-publication",
        ],
        &["identity-oidc-federation", "object-storage"],
    );
    // the session login ran and is shown, not graded
    let login = check(&r, "identity-oidc-federation", "AUTH-19");
    assert_eq!(login["status"], "OK", "{login}");
    // the publication compared with oned: the share's group is the user's,
    // the published image is a VM template oned lists
    let p = check(&r, "glue-publication", "GLUE-04");
    assert_eq!(p["status"], "OK", "{p}");
    assert!(p["message"].as_str().unwrap().contains("group ops"), "{p}");
    let d = check(&r, "glue-publication", "GLUE-05");
    assert_eq!(d["status"], "OK", "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("1 VM templates live"),
        "{d}"
    );
    assert_eq!(check(&r, "glue-publication", "GLUE-02")["status"], "OK");
    assert_eq!(r.site()["grade"]["passed"], true, "{:#}", r.site()["grade"]);
    r.name_the_api("OpenNebula XML-RPC");
    assert!(!r
        .file("fedprobe-report.md")
        .contains("clouds-fixture-pass-7"));
}

#[test]
fn a_stale_opennebula_publication_fails_glue_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:clouds-fixture-pass-9").unwrap();
    let (_fx, port) = one_fixture(&session, None);
    let glue = one_glue(dir.path(), &port, &session, "ops");
    // what the producer wrote 13 hours ago and has not renewed since
    // (cloud-info-provider's Validity is 12 hours)
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&glue).unwrap()).unwrap();
    let old = format!(
        "{}+00:00",
        probes::clock::nova_time(probes::clock::now_secs() - 13 * 3600)
    );
    for (_, objects) in doc.as_object_mut().unwrap() {
        for o in objects.as_array_mut().unwrap() {
            o["CreationTime"] = Value::String(old.clone());
        }
    }
    std::fs::write(&glue, doc.to_string()).unwrap();
    let r = run(
        &one_profile_with_glue(&port, &session, &glue),
        dir.path(),
        &[],
    );
    assert_eq!(r.status("glue-publication"), "fail");
    let v = check(&r, "glue-publication", "GLUE-02");
    assert_eq!(v["status"], "CRITICAL", "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(r.status("compute-vm-lifecycle"), "pass");
    assert_eq!(r.site()["grade"]["passed"], false);
}

#[test]
fn an_opennebula_share_of_another_group_fails_glue_at_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:clouds-fixture-pass-10").unwrap();
    let (_fx, port) = one_fixture(&session, None);
    // the site maps VO ops to a group its monitoring user is not in
    let glue = one_glue(dir.path(), &port, &session, "biomed");
    let r = run(
        &one_profile_with_glue(&port, &session, &glue),
        dir.path(),
        &[],
    );
    assert_eq!(r.status("glue-publication"), "fail");
    let p = check(&r, "glue-publication", "GLUE-04");
    assert_eq!(p["status"], "CRITICAL", "{p}");
    let m = p["message"].as_str().unwrap();
    assert!(
        m.contains("project biomed, not a group of this login"),
        "{p}"
    );
    assert!(m.contains("ops (100)"), "{p}");
}

#[test]
fn a_template_oned_no_longer_has_is_a_glue_warning() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:clouds-fixture-pass-11").unwrap();
    let (_fx, port) = one_fixture(&session, None);
    let glue = one_glue(dir.path(), &port, &session, "ops");
    // the same publication against an oned whose VM template was deleted
    drop(_fx);
    let (_fx2, port2) = one_fixture(&session, Some("template-gone"));
    let text = std::fs::read_to_string(&glue)
        .unwrap()
        .replace(&format!(":{port}/"), &format!(":{port2}/"));
    std::fs::write(&glue, text).unwrap();
    let r = run(
        &one_profile_with_glue(&port2, &session, &glue),
        dir.path(),
        &[],
    );
    let d = check(&r, "glue-publication", "GLUE-05");
    assert_eq!(d["status"], "WARNING", "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("1 published image(s) not among the site's VM templates: ttylinux@ops (0)"),
        "{d}"
    );
    // drift within the Validity is churn, as on OpenStack: the check warns,
    // the capability is not failed
    assert_eq!(r.status("glue-publication"), "pass");
}

#[test]
fn an_opennebula_boot_failure_fails_the_lifecycle_at_active() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("one_auth");
    std::fs::write(&session, "fedprobe:clouds-fixture-pass-8").unwrap();
    let (_fx, port) = one_fixture(&session, Some("failed"));
    let r = run(&one_profile(&port, &session), dir.path(), &[]);
    assert_eq!(r.status("compute-vm-lifecycle"), "fail");
    let x = check(&r, "compute-vm-lifecycle", "VM-07");
    assert_eq!(x["status"], "CRITICAL", "{x}");
    assert!(
        x["message"]
            .as_str()
            .unwrap()
            .contains("dummy host out of disk"),
        "{x}"
    );
    assert_eq!(r.status("image-upload-delete"), "pass");
}

/// `fedprobe demo --cloud azure`: the Azure fixture run with python3 from
/// the binary's own copy, graded like any Azure site, stopped afterwards.
#[cfg(feature = "demo")]
#[test]
fn demo_shows_an_azure_site() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["demo", "--cloud", "azure", "--quiet", "--format", "json"])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let site = &v["sites"][0];
    assert_eq!(site["run"]["site"], "DEMO-AZURE", "{v}");
    assert_eq!(site["run"]["cloud"], "azure");
    assert_eq!(site["grade"]["passed"], true, "{:#}", site["grade"]);
    let md = std::fs::read_to_string(dir.path().join("fedprobe-report.md")).unwrap();
    assert!(md.contains("DEMO-AZURE (Azure Virtual Machines/Disks)"));
    assert!(md.contains("NOT APPLICABLE"), "{md}");
}

/// `fedprobe demo --cloud NAME`, its JSON document and Markdown report.
#[cfg(feature = "demo")]
fn demo(cloud: &str, extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["demo", "--cloud", cloud, "--quiet", "--format", "json"])
        .args(extra)
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let md = std::fs::read_to_string(dir.path().join("fedprobe-report.md")).unwrap();
    (v, md)
}

/// `fedprobe demo --cloud opennebula`: the OpenNebula fixture run with
/// python3 alone (answers not checked against pyone), graded like any
/// OpenNebula site, its GLUE publication compared with it.
#[cfg(feature = "demo")]
#[test]
fn demo_shows_an_opennebula_site() {
    let (v, md) = demo("opennebula", &[]);
    let site = &v["sites"][0];
    assert_eq!(site["run"]["site"], "DEMO-ONE", "{v}");
    assert_eq!(site["run"]["cloud"], "opennebula");
    assert_eq!(site["grade"]["passed"], true, "{:#}", site["grade"]);
    let glue = site["grade"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "glue-publication")
        .unwrap();
    assert_eq!(glue["status"], "pass", "{glue:#}");
    assert!(md.contains("DEMO-ONE (OpenNebula XML-RPC)"));
    assert!(
        md.contains("published project is the login's file: group ops"),
        "{md}"
    );
    assert!(md.starts_with("# fedprobe "), "{}", &md[..80]);
}

/// `fedprobe demo --cloud gce`: the GCE fixture, run with the python of
/// ci/peers/gce.sh's venv, graded like any GCE site; without that python the
/// demo says what to install.
#[cfg(feature = "demo")]
#[test]
fn demo_shows_a_gce_site() {
    let py = gce_python();
    let (v, md) = demo("gce", &["--gce-python", &py]);
    let site = &v["sites"][0];
    assert_eq!(site["run"]["site"], "DEMO-GCE", "{v}");
    assert_eq!(site["run"]["cloud"], "gce");
    assert_eq!(site["grade"]["passed"], true, "{:#}", site["grade"]);
    assert!(md.contains("DEMO-GCE (Google Compute Engine)"));
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args([
            "demo",
            "--cloud",
            "gce",
            "--quiet",
            "--gce-python",
            "/nonexistent/python",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash ci/peers/gce.sh install"), "{err}");
}
