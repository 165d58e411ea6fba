//! `fedprobe demo` / `fedprobe run` drive the whole guideline against the
//! demo cloud end to end. (The demo is a fixture: the probes' own tests run
//! against the real services; the cloud's own API and faults are tested in
//! fakecloud/tests.)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fedprobe::demo::{Demo, DemoOptions, Faults};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn client() -> Client {
    probes::http::build_client(&Default::default()).unwrap()
}

async fn demo(faults: Faults) -> Demo {
    Demo::start(DemoOptions {
        sites: 2,
        boot_delay: Duration::from_millis(400),
        faults,
    })
    .await
    .unwrap()
}

/// The glue hands the monitor the cloud's own secrets, in files.
#[tokio::test]
async fn the_demo_writes_the_monitors_secret_files() {
    let d = demo(Faults::default()).await;
    let token = std::fs::read_to_string(&d.token_file).unwrap();
    assert_eq!(token, d.cloud.access_token);
    let secret = std::fs::read_to_string(&d.client_secret_file).unwrap();
    assert_eq!(secret, d.cloud.client_secret);
    // And the cloud's OIDC provider takes that secret.
    let r = client()
        .post(format!("{}/oidc/token", d.base()))
        .basic_auth("fedprobe-demo", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// ------------------------------------------------------- end to end

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fedprobe")
}

fn read_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("fedprobe.json")).unwrap()).unwrap()
}

/// Every graded check of a capability, from the JSON report.
fn checks<'a>(v: &'a Value, site: usize, cap: &str) -> Vec<&'a Value> {
    let caps = v["sites"][site]["grade"]["capabilities"]
        .as_array()
        .unwrap();
    let c = caps.iter().find(|c| c["id"] == cap).unwrap();
    c["checks"].as_array().unwrap().iter().collect()
}

fn cap_status(v: &Value, site: usize, cap: &str) -> String {
    let caps = v["sites"][site]["grade"]["capabilities"]
        .as_array()
        .unwrap();
    caps.iter().find(|c| c["id"] == cap).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn probe_status(v: &Value, site: usize, probe: &str) -> String {
    let ps = v["sites"][site]["run"]["probes"].as_array().unwrap();
    ps.iter().find(|p| p["probe"] == probe).unwrap()["result"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn fedprobe_demo_writes_every_report_and_grades_the_guideline() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "demo",
            "--sites",
            "2",
            "--boot-delay",
            "0.3s",
            "--probe-timeout",
            "30s",
            "--quiet",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "demo exits 0 by default: {stdout}"
    );
    // A fault-free demo is OK from its first line: every check, the
    // advisory ones included, is configured and passes.
    assert!(stdout.starts_with("FEDPROBE OK - "), "{stdout}");
    for f in [
        "fedprobe.nagios.txt",
        "fedprobe.json",
        "fedprobe.junit.xml",
        "fedprobe.prom",
        "fedprobe-report.md",
        "fedprobe-report.html",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let v = read_json(dir.path());
    assert_eq!(v["sites"].as_array().unwrap().len(), 2);
    assert_eq!(v["guideline"]["id"], "eosc-iaas-2026.1");
    // Whatever the probes' state of completion: every probe ran, every
    // capability is graded, and the login against the demo works.
    for site in 0..2 {
        for p in [
            "check_token_auth",
            "check_vm_lifecycle",
            "check_image_upload",
            "check_usage",
            "check_glue",
        ] {
            let st = probe_status(&v, site, p);
            assert!(["OK", "WARNING", "CRITICAL", "UNKNOWN"].contains(&st.as_str()));
            // The demo implements what every probe exercises, APEL spool
            // and accounting last update included.
            assert_ne!(
                st, "CRITICAL",
                "{p} finds a fault in the fault-free demo: {v}"
            );
        }
        // Every required capability passes, the usage ones included.
        let grade = &v["sites"][site]["grade"];
        assert_eq!(grade["required_pct"], 100.0, "{grade}");
        assert_eq!(grade["passed"], true);
        for (cap, check) in [
            ("usage-per-vm", "USAGE-02"),
            ("accounting-records", "USAGE-04"),
            ("accounting-records", "USAGE-05"),
        ] {
            let c = checks(&v, site, cap);
            let c = c
                .iter()
                .find(|c| c["check"] == check)
                .unwrap_or_else(|| panic!("{check} graded under {cap}: {c:?}"));
            assert_eq!(c["outcome"], "pass", "{c}");
            assert_eq!(cap_status(&v, site, cap), "pass");
        }
        // The demo's orchestrator deployed on the site and destroyed: graded
        // by check_orchestrator, not by the VM checks.
        assert_eq!(probe_status(&v, site, "check_orchestrator"), "OK");
        let orch = checks(&v, site, "orchestrator-api");
        assert!(
            orch.iter().all(|c| c["probe"] == "check_orchestrator"),
            "{orch:?}"
        );
        assert!(orch.iter().any(|c| c["check"] == "ORCH-07"), "{orch:?}");
        assert_eq!(cap_status(&v, site, "orchestrator-api"), "pass");
        assert_eq!(probe_status(&v, site, "check_token_auth"), "OK");
        for c in checks(&v, site, "identity-oidc-federation") {
            assert_eq!(c["outcome"], "pass", "{c}");
        }
        assert_eq!(cap_status(&v, site, "identity-oidc-federation"), "pass");
        // Every check of every capability is configured (graded, not
        // "not-configured"), the advisory ones included.
        for cap in v["sites"][site]["grade"]["capabilities"]
            .as_array()
            .unwrap()
        {
            for c in cap["checks"].as_array().unwrap() {
                assert_ne!(c["outcome"], "not-configured", "{c}");
            }
        }
        // The sites' base image is the synchronised copy of the ops VO's
        // image list the demo subscribes them to.
        assert_eq!(probe_status(&v, site, "check_appliances"), "OK");
        let appl = checks(&v, site, "appliance-repository");
        assert!(
            appl.iter()
                .any(|c| c["check"] == "APPL-03" && c["outcome"] == "pass"),
            "{appl:?}"
        );
        // No probe left anything behind on the demo cloud.
        for p in v["sites"][site]["run"]["probes"].as_array().unwrap() {
            for r in p["result"]["resources"].as_array().unwrap() {
                assert_eq!(r["cleanup"], "deleted", "{r}");
            }
        }
    }
    // Evidence: the probes ran with a full trace, every HTTP call recorded
    // with its answer and time, shown in the self-certification report.
    let auth = v["sites"][0]["run"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == "check_token_auth")
        .unwrap();
    assert!(auth["argv"].as_array().unwrap().contains(&json!("-vvv")));
    let trace = auth["result"]["details"].as_array().unwrap();
    assert!(
        trace.iter().any(|l| {
            let l = l.as_str().unwrap();
            l.starts_with("http: POST ") && l.contains("/OS-FEDERATION/") && l.contains("201")
        }),
        "{trace:?}"
    );
    let md = std::fs::read_to_string(dir.path().join("fedprobe-report.md")).unwrap();
    assert!(md.contains("http: POST "), "trace in the markdown evidence");
    let html = std::fs::read_to_string(dir.path().join("fedprobe-report.html")).unwrap();
    assert!(html.contains("every HTTP call"));
    let nagios = std::fs::read_to_string(dir.path().join("fedprobe.nagios.txt")).unwrap();
    assert_eq!(nagios, stdout, "stdout gets the Nagios report");
}

#[test]
fn fedprobe_demo_with_faults_reports_the_failing_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "demo",
            "--quiet",
            "--fault",
            "bad-token",
            "--fault",
            "error-state",
            "--fault",
            "stale-glue",
            "--fault",
            "wrong-checksum",
            "--fail-on",
            "critical",
            "--format",
            "json",
            "--probe-timeout",
            "20s",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let v = read_json(dir.path());
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stdout["totals"], v["totals"], "--format json on stdout");
    // A rejected token: AUTH-02 fails, the required identity capability fails.
    let auth = checks(&v, 0, "identity-oidc-federation");
    let a2 = auth
        .iter()
        .find(|c| c["check"] == "AUTH-02")
        .expect("AUTH-02 graded");
    assert_eq!(a2["outcome"], "fail");
    assert!(a2["message"].as_str().unwrap().contains("401"), "{a2}");
    assert_eq!(cap_status(&v, 0, "identity-oidc-federation"), "fail");
    assert_eq!(v["sites"][0]["grade"]["passed"], false);
    assert_eq!(v["status"], "CRITICAL");
    assert_eq!(out.status.code(), Some(2), "--fail-on critical");
    // The cloud probes log in first: none may pass with a rejected token.
    for cap in [
        "compute-vm-lifecycle",
        "image-upload-delete",
        "usage-per-vm",
    ] {
        assert_ne!(cap_status(&v, 0, cap), "pass", "{cap}");
        for c in checks(&v, 0, cap) {
            // Reading a public GLUE document needs no token; what follows
            // the login (the live comparison) is graded as not reached.
            if c["probe"] == "check_glue" && c["outcome"] == "pass" {
                continue;
            }
            assert_ne!(c["outcome"], "pass", "{cap}: {c}");
        }
    }
    // The GLUE publication is public and can be read, but it is stale, and
    // its consistency with the live site cannot pass without a login.
    assert_eq!(cap_status(&v, 0, "glue-publication"), "fail");
    for c in checks(&v, 0, "glue-publication") {
        if c["check"] == "GLUE-04" || c["check"] == "GLUE-05" {
            assert_ne!(c["outcome"], "pass", "{c}");
        }
    }
    let junit = std::fs::read_to_string(dir.path().join("fedprobe.junit.xml")).unwrap();
    assert!(junit.contains("<failure type=\"CRITICAL\""), "{junit}");
    let prom = std::fs::read_to_string(dir.path().join("fedprobe.prom")).unwrap();
    assert!(prom.contains("probe_success{site=\"DEMO-000\",probe=\"check_token_auth\"} 0"));
}

#[test]
fn fedprobe_demo_vm_and_image_faults_fail_those_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "demo",
            "--quiet",
            "--fault",
            "error-state",
            "--fault",
            "wrong-checksum",
            "--fault",
            "stale-glue",
            "--format",
            "json",
            "--probe-timeout",
            "20s",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "--fail-on never is the demo default");
    let v = read_json(dir.path());
    assert_eq!(cap_status(&v, 0, "identity-oidc-federation"), "pass");
    // A VM that goes to ERROR, an image whose checksum is wrong, a stale
    // publication: each capability must fail, never pass, with a real
    // probe (CRITICAL) or a placeholder (UNKNOWN, skipped).
    for (cap, probe) in [
        ("compute-vm-lifecycle", "check_vm_lifecycle"),
        ("image-upload-delete", "check_image_upload"),
        ("glue-publication", "check_glue"),
    ] {
        assert_eq!(cap_status(&v, 0, cap), "fail", "{cap}");
        let st = probe_status(&v, 0, probe);
        assert!(st == "CRITICAL" || st == "UNKNOWN", "{probe}: {st}");
        if st == "CRITICAL" {
            assert!(
                checks(&v, 0, cap).iter().any(|c| c["outcome"] == "fail"),
                "{cap}: a real probe must name the failing check"
            );
        }
    }
    // The orchestrator's VM goes to ERROR at the site too: CRITICAL, the
    // site named, the report's fix for the capability alongside.
    assert_eq!(cap_status(&v, 0, "orchestrator-api"), "fail");
    assert_eq!(probe_status(&v, 0, "check_orchestrator"), "CRITICAL");
    let failed: Vec<_> = checks(&v, 0, "orchestrator-api")
        .into_iter()
        .filter(|c| c["outcome"] == "fail")
        .collect();
    assert!(
        failed.iter().any(|c| c["check"] == "ORCH-05"
            && c["message"]
                .as_str()
                .unwrap()
                .contains("the site failed the orchestrator's VM")),
        "{failed:?}"
    );
    let md = std::fs::read_to_string(dir.path().join("fedprobe-report.md")).unwrap();
    assert!(
        md.contains("UNKNOWN means the orchestrator itself failed"),
        "the fix text"
    );
}

#[test]
fn fedprobe_run_with_a_profile_an_external_plugin_and_a_check_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = rt.block_on(demo(Faults::default()));
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("check_fake");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho 'FAKE WARNING - disk 91% \u{1b}[1m]]><b>|disk=91%;80;90'\necho 'long line one'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let slow = dir.path().join("check_slow");
    std::fs::write(&slow, "#!/bin/sh\nsleep 30\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let profile = format!(
        "{}\n[[external]]\nname = \"fake\"\ncommand = [\"{}\"]\n\n[[external]]\nname = \"slow\"\ncommand = [\"{}\"]\ntimeout = \"1s\"\n",
        d.profile_text(0, Some("20s")),
        plugin.display(),
        slow.display()
    );
    let pf = dir.path().join("site.toml");
    std::fs::write(&pf, profile).unwrap();
    let reports = dir.path().join("reports");
    let check = format!(
        "check_token_auth --endpoint {} --access-token '{}'",
        d.keystone(1),
        d.token_file.display()
    );
    let out = Command::new(bin())
        .args([
            "run",
            "--quiet",
            "--fail-on",
            "warning",
            "--jobs",
            "3",
            "--jobs-per-site",
            "1",
        ])
        .arg("--site")
        .arg(&pf)
        .arg("--check")
        .arg(&check)
        .arg("--check")
        .arg(format!("{} -H x", plugin.display()))
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code().unwrap() >= 1,
        "--fail-on warning: {stdout}"
    );
    let v = read_json(&reports);
    let sites = v["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2);
    let demo_site = sites
        .iter()
        .find(|s| s["run"]["site"] == "DEMO-000")
        .unwrap();
    let ext = demo_site["run"]["externals"].as_array().unwrap();
    let fake = ext.iter().find(|e| e["name"] == "fake").unwrap();
    assert_eq!(fake["status"], "WARNING");
    assert_eq!(fake["exit_code"], 1);
    assert_eq!(fake["perfdata"][0]["label"], "disk");
    assert_eq!(fake["long"][0], "long line one");
    let slow = ext.iter().find(|e| e["name"] == "slow").unwrap();
    assert_eq!(slow["status"], "UNKNOWN");
    assert!(slow["summary"].as_str().unwrap().contains("killed"));
    assert!(
        slow["duration"].as_f64().unwrap() < 20.0,
        "killed at its timeout"
    );
    // The command-line site: the probe line ran in-process and was graded.
    let cli = sites
        .iter()
        .find(|s| s["run"]["site"] == "command-line")
        .unwrap();
    assert_eq!(cli["run"]["probes"][0]["result"]["status"], "OK");
    assert_eq!(cli["grade"]["passed"], true);
    assert_eq!(cli["run"]["externals"][0]["status"], "WARNING");
    assert!(stdout.contains("external fake"), "{stdout}");
    assert!(
        !stdout.contains(&d.cloud.access_token),
        "secrets never printed"
    );
    let junit = std::fs::read_to_string(reports.join("fedprobe.junit.xml")).unwrap();
    assert!(junit.contains("command-line / external"));
    drop(d);
}

#[test]
fn check_guideline_accepts_the_embedded_one_and_names_problems() {
    let g = Path::new(env!("CARGO_MANIFEST_DIR")).join("guidelines/eosc-iaas-2026.1.toml");
    let out = Command::new(bin())
        .arg("check-guideline")
        .arg(&g)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK "));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("checks = [\"check_glue:GLUE-*\"]", "checks = []")
        .replace("[probes.check_glue]", "[probes.check_glue]\nretries = 3");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(bin())
        .arg("check-guideline")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("INVALID") && s.contains("retries"), "{s}");
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("checks = [\"check_glue:GLUE-*\"]", "checks = []")
        .replace("checks = [\"check_glue:ACCEL-*\"]", "checks = []");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(bin())
        .arg("check-guideline")
        .arg(&bad)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("glue-publication has no checks"), "{s}");
    assert!(
        s.contains("probe check_glue is run but its checks are referenced by no capability"),
        "{s}"
    );
}

#[test]
fn a_nagios_first_line_has_its_own_exit_code_other_formats_fail_on_critical() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("check_warn");
    std::fs::write(&plugin, "#!/bin/sh\necho 'DISK WARNING - 91%'\nexit 1\n").unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |extra: &[&str]| {
        Command::new(bin())
            .args(["run", "--quiet", "--check"])
            .arg(plugin.display().to_string())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("FEDPROBE WARNING"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "a plugin's exit code: {stdout}");
    let out = run(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "--fail-on critical for json");
    let out = run(&["--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(0), "an explicit --fail-on wins");
}

#[test]
fn sigterm_stops_the_run_kills_plugins_and_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("r");
    let child = Command::new(bin())
        .args([
            "run",
            "--quiet",
            "--check",
            "sleep 120",
            "--check-timeout",
            "300s",
        ])
        .arg("--report-dir")
        .arg(&reports)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(60), "stopped promptly");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("harness stopped (signal); plugin killed"),
        "{stdout}"
    );
    let v = read_json(&reports);
    assert_eq!(v["sites"][0]["run"]["externals"][0]["status"], "UNKNOWN");
    assert_eq!(out.status.code(), Some(3));
}

/// Real Monitoring Plugins (Debian `monitoring-plugins-basic`) as externals.
#[tokio::test]
async fn real_nagios_plugins_run_as_externals() {
    use fedprobe::run::{run_external, ExternalPlan};
    let dir = Path::new("/usr/lib/nagios/plugins");
    if !dir.join("check_http").is_file() || !dir.join("check_tcp").is_file() {
        eprintln!(
            "SKIP real_nagios_plugins_run_as_externals: monitoring-plugins-basic not installed"
        );
        return;
    }
    let d = demo(Faults::default()).await;
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let plan = |name: &str, args: Vec<String>| ExternalPlan {
        name: name.into(),
        command: std::iter::once(dir.join(name).display().to_string())
            .chain(args)
            .collect(),
        timeout: Duration::from_secs(30),
    };
    let port = d.addr.port().to_string();
    let ok = run_external(
        &plan(
            "check_http",
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.clone(),
                "-u".into(),
                "/s0/identity/v3".into(),
                "-e".into(),
                "200".into(),
            ],
        ),
        stop.clone(),
    )
    .await;
    assert_eq!(ok.status, probes::model::Status::Ok, "{ok:?}");
    assert!(ok.summary.starts_with("HTTP OK"), "{}", ok.summary);
    assert!(
        ok.perfdata.iter().any(|p| p.label == "time"),
        "{:?}",
        ok.perfdata
    );
    assert!(
        ok.perfdata.iter().any(|p| p.label == "size"),
        "{:?}",
        ok.perfdata
    );
    // Keystone's root answers 300 Multiple Choices: -e 200 makes it CRITICAL.
    let bad = run_external(
        &plan(
            "check_http",
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port,
                "-u".into(),
                "/s0/identity/".into(),
                "-e".into(),
                "200".into(),
            ],
        ),
        stop.clone(),
    )
    .await;
    assert_eq!(bad.status, probes::model::Status::Critical, "{bad:?}");
    assert_eq!(bad.exit_code, Some(2));
    // A closed port: CRITICAL from check_tcp.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().port().to_string();
    drop(listener);
    let tcp = run_external(
        &plan(
            "check_tcp",
            vec!["-H".into(), "127.0.0.1".into(), "-p".into(), closed],
        ),
        stop,
    )
    .await;
    assert_eq!(tcp.status, probes::model::Status::Critical, "{tcp:?}");
    assert!(tcp.summary.contains("refused"), "{}", tcp.summary);
}

#[test]
fn slow_boot_and_hanging_uploads_fail_monitoring_friendliness_not_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new(bin())
        .args([
            "demo",
            "--quiet",
            "--fault",
            "slow-boot",
            "--fault",
            "hang",
            "--probe-timeout",
            "6s",
            "--format",
            "json",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    // Every probe is bounded by its own -t; the harness never waits on a hang.
    assert!(
        t0.elapsed() < Duration::from_secs(120),
        "{:?}",
        t0.elapsed()
    );
    let v = read_json(dir.path());
    for p in v["sites"][0]["run"]["probes"].as_array().unwrap() {
        let d = p["result"]["duration"].as_f64().unwrap();
        assert!(d < 30.0, "{} took {d}s with -t 6s", p["probe"]);
        for r in p["result"]["resources"].as_array().unwrap() {
            assert_eq!(
                r["cleanup"], "deleted",
                "cleaned up despite the timeout: {r}"
            );
        }
    }
    // The VM probe cuts its wait for ACTIVE to what -t leaves: the site fails
    // (slow boot), the probe stays monitoring-friendly. The hanging upload
    // runs the image probe into -t: that one is not.
    for (cap, probe, friendly) in [
        ("compute-vm-lifecycle", "check_vm_lifecycle", true),
        ("image-upload-delete", "check_image_upload", false),
    ] {
        assert_eq!(cap_status(&v, 0, cap), "fail", "{cap}");
        let run = checks(&v, 0, "monitoring-friendly")
            .into_iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(probe))
            .unwrap()
            .clone();
        assert_eq!(run["outcome"] == "pass", friendly, "{run}");
    }
}

fn probe_run<'a>(v: &'a Value, site: usize, probe: &str) -> &'a Value {
    v["sites"][site]["run"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == probe)
        .unwrap()
}

fn run_demo(args: &[&str]) -> (std::process::Output, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("demo")
        .args(args)
        .args(["--quiet", "--probe-timeout", "30s"])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let v = read_json(dir.path());
    (out, v, dir)
}

#[test]
fn check_usage_runs_after_the_vm_probe_and_finds_its_server() {
    let (out, v, _dir) = run_demo(&["--sites", "2", "--boot-delay", "0.5s"]);
    assert!(out.status.success());
    let mut ids = Vec::new();
    for site in 0..2 {
        let vm = probe_run(&v, site, "check_vm_lifecycle");
        let servers: Vec<&str> = vm["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "server")
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(servers.len(), 1, "{vm}");
        let id = servers[0];
        let usage = probe_run(&v, site, "check_usage");
        let argv: Vec<&str> = usage["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = argv
            .iter()
            .position(|a| *a == "--server-id")
            .expect("--server-id passed");
        assert_eq!(argv[at + 1], id, "this site's own VM server");
        // The server was created and deleted by then: Nova still accounts it
        // (terminated) with its flavor's sizes.
        let vm_end = vm["result"]["started_at"].as_f64().unwrap()
            + vm["result"]["duration"].as_f64().unwrap();
        assert!(
            usage["result"]["started_at"].as_f64().unwrap() >= vm_end - 0.01,
            "check_usage waits for check_vm_lifecycle"
        );
        let step = usage["result"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["check"] == "USAGE-02")
            .expect("USAGE-02 ran");
        assert_eq!(step["status"], "OK", "{step}");
        let msg = step["message"].as_str().unwrap();
        assert!(msg.contains(id), "{msg}");
        assert!(msg.contains("= flavor m1.small"), "{msg}");
        ids.push(id.to_string());
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn one_job_per_site_still_chains_vm_and_usage() {
    // check_usage waits for the VM probe before taking the site's only slot.
    let (out, v, _dir) = run_demo(&["--jobs-per-site", "1", "--boot-delay", "0.3s"]);
    assert!(out.status.success());
    assert_eq!(v["sites"][0]["grade"]["required_pct"], 100.0);
    let usage = probe_run(&v, 0, "check_usage");
    assert!(usage["argv"]
        .as_array()
        .unwrap()
        .contains(&json!("--server-id")));
}

#[test]
fn a_memory_budget_below_the_process_runs_only_its_floor_of_probes_and_passes() {
    // Always over a 1-byte budget: past the floor (one site's --jobs-per-site)
    // a probe starts only when another ends.
    let (out, v, _dir) = run_demo(&[
        "--sites",
        "2",
        "--jobs",
        "20",
        "--jobs-per-site",
        "1",
        "--boot-delay",
        "0.2s",
        "--memory-budget",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for site in 0..2 {
        assert_eq!(v["sites"][site]["grade"]["required_pct"], 100.0);
        for p in v["sites"][site]["run"]["probes"].as_array().unwrap() {
            let start = p["result"]["started_at"].as_f64().unwrap();
            spans.push((start, start + p["result"]["duration"].as_f64().unwrap()));
        }
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        // Timestamps are rounded in the report: allow 10 ms.
        assert!(w[1].0 >= w[0].1 - 0.01, "two probes ran at once: {w:?}");
    }
}

#[test]
fn stale_accounting_fails_accounting_records_only() {
    let (out, v, _dir) = run_demo(&["--fault", "stale-accounting", "--boot-delay", "0.3s"]);
    assert!(out.status.success(), "--fail-on never is the demo default");
    assert_eq!(cap_status(&v, 0, "accounting-records"), "fail");
    let c = checks(&v, 0, "accounting-records");
    let fresh = c.iter().find(|c| c["check"] == "USAGE-05").unwrap();
    assert_eq!(fresh["outcome"], "fail", "{fresh}");
    assert_eq!(fresh["status"], "CRITICAL", "{fresh}");
    let msg = fresh["message"].as_str().unwrap();
    assert!(msg.contains("40.0 days ago"), "{msg}");
    // The records themselves are still well formed, just old.
    let apel = c.iter().find(|c| c["check"] == "USAGE-04").unwrap();
    assert_eq!(apel["outcome"], "pass", "{apel}");
    for cap in [
        "usage-per-vm",
        "compute-vm-lifecycle",
        "identity-oidc-federation",
    ] {
        assert_eq!(cap_status(&v, 0, cap), "pass", "{cap}");
    }
    // Accounting is advisory: the site still passes, its status warns.
    let grade = &v["sites"][0]["grade"];
    assert_eq!(grade["passed"], true, "{grade}");
    assert_eq!(grade["status"], "WARNING");
    assert_eq!(probe_status(&v, 0, "check_usage"), "CRITICAL");
}

#[test]
fn a_rejected_token_fails_glue_publication_though_the_document_reads_fine() {
    let (_out, v, _dir) = run_demo(&["--fault", "bad-token"]);
    // GLUE-01..03 need no token and pass; the live comparison after the
    // login was never reached, so the capability cannot pass.
    assert_eq!(cap_status(&v, 0, "glue-publication"), "fail");
    let glue = checks(&v, 0, "glue-publication");
    assert!(
        glue.iter().any(|c| c["outcome"] == "fail"
            && c["message"].as_str().unwrap().contains("not reached")
            && c["message"].as_str().unwrap().contains("AUTH-02")),
        "{glue:?}"
    );
}

#[test]
fn quota_exhausted_fails_the_vm_lifecycle_at_the_quota_stage() {
    let (out, v, _dir) = run_demo(&["--fault", "quota-exhausted", "--boot-delay", "0.3s"]);
    assert!(out.status.success(), "--fail-on never is the demo default");
    assert_eq!(cap_status(&v, 0, "compute-vm-lifecycle"), "fail");
    let c = checks(&v, 0, "compute-vm-lifecycle");
    let quota = c.iter().find(|c| c["check"] == "VM-09").unwrap();
    assert_eq!(quota["status"], "CRITICAL", "{quota}");
    let msg = quota["message"].as_str().unwrap();
    assert!(
        msg.contains("no room for one more server of flavor")
            && msg.contains("in use, limit 0, one more server needs 1; nothing created"),
        "{msg}"
    );
    assert!(
        !c.iter()
            .any(|c| c["check"] == "VM-06" && c["outcome"] == "pass"),
        "{c:?}"
    );
    assert_eq!(probe_status(&v, 0, "check_vm_lifecycle"), "CRITICAL");
}

#[test]
fn certificates_probe_runs_in_the_demo_and_finds_no_https_to_check() {
    // The demo's site serves plain http on loopback: nothing to check, OK.
    let (_out, v, _dir) = run_demo(&["--boot-delay", "0.3s"]);
    assert_eq!(probe_status(&v, 0, "check_certificates"), "OK");
    assert_eq!(cap_status(&v, 0, "endpoint-certificates"), "pass");
    let c = checks(&v, 0, "endpoint-certificates");
    let list = c.iter().find(|c| c["check"] == "CERT-01").unwrap();
    assert!(
        list["message"]
            .as_str()
            .unwrap()
            .starts_with("no https endpoint to check"),
        "{list}"
    );
}

#[test]
fn certificate_expiring_fault_serves_https_and_fails_the_days_left_check() {
    // The site is served over https with a certificate 5 days from expiry,
    // signed by the demo's own CA, which the profile makes every probe trust.
    let (out, v, _dir) = run_demo(&["--fault", "certificate-expiring", "--boot-delay", "0.3s"]);
    assert!(out.status.success(), "--fail-on never is the demo default");
    assert_eq!(probe_status(&v, 0, "check_certificates"), "CRITICAL");
    assert_eq!(cap_status(&v, 0, "endpoint-certificates"), "fail");
    let c = checks(&v, 0, "endpoint-certificates");
    let list = c.iter().find(|c| c["check"] == "CERT-01").unwrap();
    assert!(
        list["message"]
            .as_str()
            .unwrap()
            .starts_with("1 distinct https host:port"),
        "{list}"
    );
    let chain = c.iter().find(|c| c["check"] == "CERT-02").unwrap();
    assert_eq!(chain["status"], "OK", "{chain}");
    let days = c.iter().find(|c| c["check"] == "CERT-03").unwrap();
    assert_eq!(days["status"], "CRITICAL", "{days}");
    let msg = days["message"].as_str().unwrap();
    assert!(msg.contains("identity, compute, image"), "{msg}");
    assert!(
        msg.contains(" 4.9 days") || msg.contains(" 5.0 days"),
        "{msg}"
    );
    // Everything else still works over https: the site passes.
    assert_eq!(cap_status(&v, 0, "compute-vm-lifecycle"), "pass");
    assert_eq!(cap_status(&v, 0, "glue-publication"), "pass");
}

#[test]
fn object_storage_passes_in_the_demo_and_fails_at_the_read_back_when_corrupted() {
    let (_out, v, _dir) = run_demo(&["--boot-delay", "0.3s"]);
    assert_eq!(probe_status(&v, 0, "check_object_storage"), "OK");
    assert_eq!(cap_status(&v, 0, "object-storage"), "pass");
    let c = checks(&v, 0, "object-storage");
    for id in ["OBJ-01", "OBJ-02", "OBJ-03", "OBJ-04", "OBJ-05", "OBJ-06"] {
        let step = c.iter().find(|c| c["check"] == id).unwrap();
        assert_eq!(step["status"], "OK", "{step}");
    }

    let (out, v, _dir) = run_demo(&[
        "--fault",
        "object-corrupted-on-read",
        "--boot-delay",
        "0.3s",
    ]);
    assert!(out.status.success(), "--fail-on never is the demo default");
    assert_eq!(probe_status(&v, 0, "check_object_storage"), "CRITICAL");
    assert_eq!(cap_status(&v, 0, "object-storage"), "fail");
    let c = checks(&v, 0, "object-storage");
    let read = c.iter().find(|c| c["check"] == "OBJ-03").unwrap();
    assert_eq!(read["status"], "CRITICAL", "{read}");
    let msg = read["message"].as_str().unwrap();
    assert!(
        msg.starts_with("object corrupted: read 4096 bytes")
            && msg.contains("first difference at byte 2048")
            && msg.contains("the ETag still claims the MD5 of what was sent"),
        "{msg}"
    );
    let put = c.iter().find(|c| c["check"] == "OBJ-02").unwrap();
    assert_eq!(put["status"], "OK", "{put}");
    // The container and object the failed run made were still deleted.
    let res = probe_run(&v, 0, "check_object_storage")["result"]["resources"]
        .as_array()
        .unwrap();
    assert_eq!(res.len(), 2, "{res:?}");
    for r in res {
        assert_eq!(r["cleanup"], "deleted", "{r}");
    }
    // Nothing else of the site is touched by the fault.
    assert_eq!(cap_status(&v, 0, "compute-vm-lifecycle"), "pass");
}

/// `fedprobe demo --serve` stops on SIGTERM (what kill, systemd and test
/// rigs send), not only on Ctrl-C.
#[test]
fn demo_serve_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["demo", "--serve", "--boot-delay", "0.3s", "--quiet"])
        .arg("--report-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let serving = stderr
        .lines()
        .map_while(Result::ok)
        .take(400)
        .any(|l| l.contains("serving until"));
    assert!(serving, "demo --serve never said it was serving");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.code().is_some(), "ended by a signal: {status:?}");
            break;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("demo --serve still running 20 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A file that never answers (a FIFO nobody writes, like a hung mount) given
/// to check_glue at three sites: three reads blocked, more than the
/// runtime's workers on this machine. Each run ends at its -t naming the
/// stage, the other probes run, and the process exits though the reads
/// never return.
#[test]
fn files_that_never_answer_end_at_the_deadline_and_do_not_hold_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("glue.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reports = dir.path().join("r");
    let mut child = Command::new(bin())
        .args(["demo", "--quiet", "--sites", "3", "--boot-delay", "0.5s"])
        .arg("--probe-opt")
        .arg(format!("check_glue:glue-file={}", fifo.display()))
        .args(["--probe-timeout", "5s", "--format", "json"])
        .arg("--report-dir")
        .arg(&reports)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.is_some(), "still running after 120 s");
    let v = read_json(&reports);
    for site in 0..3 {
        let glue = probe_run(&v, site, "check_glue");
        assert_eq!(glue["result"]["status"], "UNKNOWN", "{glue}");
        let summary = glue["result"]["summary"].as_str().unwrap();
        assert!(summary.contains("GLUE-01"), "{summary}");
        assert_eq!(
            probe_run(&v, site, "check_vm_lifecycle")["result"]["status"],
            "OK"
        );
    }
}

/// The profile `fedprobe demo --serve` shows a user is one
/// `fedprobe check-profile` accepts: every key names a flag some probe takes.
#[tokio::test]
async fn the_profile_the_demo_prints_passes_check_profile() {
    let d = demo(Faults::default()).await;
    let text = d.profile_text(0, Some("30s"));
    let problems = fedprobe::checkprofile::problems(&text, Path::new("demo.toml"));
    assert!(problems.is_empty(), "{problems:?}\n{text}");
}
