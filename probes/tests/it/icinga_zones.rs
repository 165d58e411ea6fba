//! Beyond one machine: a real distributed Icinga 2 (ci/icinga-zones.sh), a
//! master and two satellite zones as three processes on loopback. The master
//! syncs each satellite its half of 20 fakecloud sites; the satellites run
//! check_token_auth and check_vm_lifecycle through the shipped CheckCommands;
//! the master's REST API must then hold every result, each executed by the
//! satellite of its zone.
//!
//! Needs `icinga2` (Debian `icinga2-bin`) and openssl; skips loudly without.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fakecloud::{FakeCloud, Options};
use serde_json::Value;

const TEST: &str = "icinga_satellites_run_the_checks_and_the_master_gets_every_result";
const SITES: usize = 20;
const BOUND: Duration = Duration::from_secs(180);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/icinga-zones.sh")
}

/// Stops the three daemons however the test ends.
struct Zones(PathBuf);

impl Drop for Zones {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.0)
            .status();
    }
}

fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icinga_satellites_run_the_checks_and_the_master_gets_every_result() {
    let have = |p: &str| Path::new(p).exists();
    if !have("/usr/sbin/icinga2") && !have("/usr/bin/icinga2") {
        eprintln!("SKIP {TEST}: icinga2 not installed (apt-get install icinga2-bin)");
        return;
    }
    let cloud = FakeCloud::start(Options {
        sites: SITES,
        boot_delay: Duration::from_millis(300),
        ..Options::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("oidc");
    std::fs::write(&token, &cloud.cloud.access_token).unwrap();
    let sites = dir.path().join("sites");
    let list: String = (0..SITES)
        .map(|i| format!("{} {}\n", fakecloud::site_name(i), cloud.keystone(i)))
        .collect();
    std::fs::write(&sites, list).unwrap();
    let plugins = Path::new(env!("CARGO_BIN_EXE_check_token_auth"))
        .parent()
        .unwrap()
        .to_path_buf();
    let run = dir.path().join("zones");
    let _zones = Zones(run.clone());
    let started = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&run)
            .arg(&sites)
            .arg(&token)
            .arg(&plugins)
            .env("FEDPROBE_ZONES_INTERVAL", "5s")
            .output(),
    )
    .await
    .expect("icinga-zones.sh start within 120 s")
    .unwrap();
    assert!(
        started.status.success(),
        "icinga-zones.sh start: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let facts = env_file(&run.join("zones.env"));
    // Three processes, three ports.
    let pids: Vec<&String> = ["PID_MASTER", "PID_SAT1", "PID_SAT2"]
        .iter()
        .map(|k| &facts[*k])
        .collect();
    assert!(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
    let client = probes::http::build_client(&probes::http::TlsOptions {
        ca_certs: vec![PathBuf::from(&facts["CA_CERT"])],
        ..Default::default()
    })
    .unwrap();
    let password = std::fs::read_to_string(&facts["API_PASSWORD_FILE"]).unwrap();
    let services = || async {
        let r = client
            .get(format!(
                "{}/v1/objects/services?attrs=zone&attrs=host_name&attrs=last_check_result",
                facts["MASTER_API"]
            ))
            .basic_auth(&facts["API_USER"], Some(password.trim()))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        v["results"].as_array().cloned()
    };
    // Every service checked once at least, as the master sees it (bounded).
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while t0.elapsed() < BOUND {
        seen = services().await.unwrap_or_default();
        let done = seen
            .iter()
            .filter(|s| !s["attrs"]["last_check_result"].is_null())
            .count();
        if seen.len() == 2 * SITES && done == 2 * SITES {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let log = |node: &str| {
        std::fs::read_to_string(run.join(node).join("icinga2.out"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        seen.len(),
        2 * SITES,
        "services known to the master\nmaster:\n{}",
        log("master")
    );
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for s in &seen {
        let a = &s["attrs"];
        let name = s["name"].as_str().unwrap_or_default();
        let r = &a["last_check_result"];
        assert!(
            !r.is_null(),
            "{name}: no result at the master within {BOUND:?}\nsat1:\n{}\nsat2:\n{}",
            log("sat1"),
            log("sat2")
        );
        let zone = a["zone"].as_str().unwrap_or_default();
        assert!(zone == "sat1" || zone == "sat2", "{name} in zone {zone}");
        // Executed by its own zone's satellite, not by the master.
        assert_eq!(r["check_source"].as_str(), Some(zone), "{name}: {r}");
        assert_eq!(r["exit_status"], 0, "{name}: {}", r["output"]);
        let out = r["output"].as_str().unwrap_or_default();
        assert!(
            out.starts_with("TOKEN_AUTH OK") || out.starts_with("VM_LIFECYCLE OK"),
            "{name}: {out}"
        );
        assert!(
            !out.contains(&cloud.cloud.access_token),
            "{name}: token in the output"
        );
        *per_zone.entry(zone.to_string()).or_default() += 1;
    }
    assert_eq!(per_zone["sat1"], SITES, "{per_zone:?}");
    assert_eq!(per_zone["sat2"], SITES, "{per_zone:?}");
    // The VM lifecycles ran at the sites and cleaned up.
    for i in 0..SITES {
        let site = cloud.cloud.site(i).unwrap();
        assert!(!site.servers.is_empty(), "site {i}: no VM created");
        assert!(
            site.servers
                .values()
                .all(|s| s.deleted.is_some() || s.created.elapsed() < Duration::from_secs(10)),
            "site {i}: a server left behind"
        );
    }
}
