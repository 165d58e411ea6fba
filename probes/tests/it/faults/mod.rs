//! Support for the fault matrix: break a real peer and mend it on every exit
//! path (`Broken`), run a probe for its JSON result, count what is left as
//! the admin sees it, and print one `VERDICT {json}` line per row for
//! `ci/verdicts.py` (which writes docs/verdicts.md).
#![allow(dead_code)]

pub mod proxy;
pub mod soak;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::realpeers::Peers;

pub const VM_BIN: &str = env!("CARGO_BIN_EXE_check_vm_lifecycle");
pub const IMAGE_BIN: &str = env!("CARGO_BIN_EXE_check_image_upload");

fn ctl_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ci/peers/ctl.sh")
}

/// `ci/peers/ctl.sh VERB NAME` on the peers of `p`; panics when it fails.
pub fn ctl(p: &Peers, verb: &str, name: &str) {
    let out = Command::new("bash")
        .arg(ctl_script())
        .args([verb, name])
        .env("FEDPROBE_PEERS_DIR", p.get("FEDPROBE_PEERS_DIR"))
        .output()
        .expect("run ctl.sh");
    assert!(
        out.status.success(),
        "ctl.sh {verb} {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One peer broken by a test: mended when dropped, so a failing assertion
/// still leaves the peers whole for the next row.
pub struct Broken {
    dir: String,
    name: String,
    paused: bool,
    mended: bool,
}

impl Broken {
    /// Stop `name` (SIGTERM, as an operator or a crash-free shutdown would).
    pub fn stop(p: &Peers, name: &str) -> Broken {
        ctl(p, "stop", name);
        Broken::new(p, name, false)
    }

    /// SIGKILL `name` (a crash: no graceful shutdown, quicker than SIGTERM).
    pub fn kill(p: &Peers, name: &str) -> Broken {
        ctl(p, "kill", name);
        Broken::new(p, name, false)
    }

    /// SIGSTOP `name`: its port stays open, nothing answers.
    pub fn pause(p: &Peers, name: &str) -> Broken {
        ctl(p, "pause", name);
        Broken::new(p, name, true)
    }

    fn new(p: &Peers, name: &str, paused: bool) -> Broken {
        Broken {
            dir: p.get("FEDPROBE_PEERS_DIR").to_string(),
            name: name.to_string(),
            paused,
            mended: false,
        }
    }

    fn run_mend(&self) -> Result<(), String> {
        let verb = if self.paused { "resume" } else { "start" };
        let out = Command::new("bash")
            .arg(ctl_script())
            .args([verb, &self.name])
            .env("FEDPROBE_PEERS_DIR", &self.dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ctl.sh {verb} {}: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Start (or resume) the peer again; panics if it does not come back.
    pub fn mend(mut self) {
        self.mended = true;
        if let Err(e) = self.run_mend() {
            panic!("{e}");
        }
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        if !self.mended {
            if let Err(e) = self.run_mend() {
                eprintln!("FAULT-MATRIX could not mend {}: {e}", self.name);
            }
        }
    }
}

/// A probe run's result.
pub struct Run {
    pub code: i32,
    pub json: Value,
    pub secs: f64,
    pub stdout: String,
}

impl Run {
    pub fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or("?")
    }

    /// The check id the verdict names: the stage a timeout or signal cut,
    /// else the first step that was not OK.
    pub fn stage(&self) -> String {
        if let Some(s) = self.json["outcome"]["stage"].as_str() {
            return s.to_string();
        }
        self.bad_step()["check"].as_str().unwrap_or("-").to_string()
    }

    /// The first step that was not OK (Null when all were).
    pub fn bad_step(&self) -> &Value {
        self.json["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["status"] != "OK"))
            .unwrap_or(&Value::Null)
    }

    /// The step that decided the status: the first whose status is the
    /// run's (a WARNING reaping step can come before the CRITICAL one).
    pub fn deciding_step(&self) -> &Value {
        let status = &self.json["status"];
        self.json["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| &s["status"] == status))
            .unwrap_or_else(|| self.bad_step())
    }

    pub fn outcome(&self) -> &str {
        self.json["outcome"]["kind"].as_str().unwrap_or("?")
    }

    pub fn summary(&self) -> &str {
        self.json["summary"].as_str().unwrap_or("")
    }

    /// What the probe says about its own resources: `kind id: cleanup`.
    pub fn resources(&self) -> Vec<String> {
        self.json["resources"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        let c = match &r["cleanup"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        format!("{} {}: {c}", r["kind"].as_str().unwrap_or("?"), r["id"])
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every resource the probe created was deleted by the probe itself.
    pub fn cleaned_up(&self) -> bool {
        self.json["resources"]
            .as_array()
            .is_none_or(|rs| rs.iter().all(|r| r["cleanup"] == "deleted"))
    }
}

/// Run `bin` with `args` plus `--output json`; the output must be one valid
/// result whatever happened.
pub async fn run_json(bin: &str, args: &[String]) -> Run {
    let mut child = tokio::process::Command::new(bin);
    child.args(args).args(["--output", "json"]);
    run_cmd(child).await
}

pub async fn run_cmd(mut cmd: tokio::process::Command) -> Run {
    let t0 = Instant::now();
    let out = cmd.kill_on_drop(true).output().await.expect("run probe");
    let secs = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON result ({e}): {stdout}"));
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(
        json["exit_code"].as_i64(),
        Some(code as i64),
        "exit code and JSON agree: {stdout}"
    );
    assert!(stdout.len() < 64 * 1024, "output is bounded");
    Run {
        code,
        json,
        secs,
        stdout,
    }
}

/// The servers carrying `host` as their monitoring host, as the admin sees them.
pub async fn servers_of(p: &Peers, admin: &str, host: &str) -> Vec<Value> {
    p.all_servers(admin)
        .await
        .into_iter()
        .filter(|s| s["metadata"]["argo-mon-host"] == host)
        .collect()
}

/// Wait up to `limit` for Nova to hold no server of `host` (a delete the
/// probe asked for may finish after the broken service is back). Returns
/// what is still there, as `id (STATUS)`.
pub async fn servers_left(p: &Peers, host: &str, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let admin = p.admin_token().await;
        let left: Vec<String> = servers_of(p, &admin, host)
            .await
            .iter()
            .map(|s| format!("{} ({})", s["id"].as_str().unwrap_or("?"), s["status"]))
            .collect();
        if left.is_empty() || t0.elapsed() > limit {
            return left;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Delete, as admin, what a row left (so the next row starts clean), and
/// wait until Nova no longer lists it.
pub async fn admin_delete_servers(p: &Peers, host: &str) {
    let admin = p.admin_token().await;
    for s in servers_of(p, &admin, host).await {
        let id = s["id"].as_str().unwrap_or_default();
        let _ = p
            .client
            .delete(format!("{}/servers/{id}", p.get("NOVA_DIRECT_URL")))
            .header("X-Auth-Token", &admin)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
    }
    servers_left(p, host, Duration::from_secs(60)).await;
}

/// The images tagged with `host` as their monitoring host (check_image_upload's
/// `argo-mon-host` property), as the admin lists them: all pages, bounded.
pub async fn images_of(p: &Peers, admin: &str, host: &str) -> Vec<Value> {
    let glance = p.get("GLANCE_DIRECT_URL");
    let mut next = "/v2/images?limit=200".to_string();
    let mut found = Vec::new();
    for _ in 0..50 {
        let v: Value = p
            .client
            .get(format!("{glance}{next}"))
            .header("X-Auth-Token", admin)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("glance answers")
            .json()
            .await
            .expect("glance lists images");
        found.extend(
            v["images"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["argo-mon-host"] == host)
                .cloned(),
        );
        match v["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    found
}

/// Wait up to `limit` for Glance to hold no image of `host`; what is still
/// there, as `id (status)`.
pub async fn images_left(p: &Peers, host: &str, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let admin = p.admin_token().await;
        let left: Vec<String> = images_of(p, &admin, host)
            .await
            .iter()
            .map(|i| format!("{} ({})", i["id"].as_str().unwrap_or("?"), i["status"]))
            .collect();
        if left.is_empty() || t0.elapsed() > limit {
            return left;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Delete, as admin, every image of `host` (so a row leaves nothing).
pub async fn admin_delete_images_of(p: &Peers, host: &str) {
    let admin = p.admin_token().await;
    for i in images_of(p, &admin, host).await {
        let id = i["id"].as_str().unwrap_or_default();
        let _ = p
            .client
            .delete(format!("{}/v2/images/{id}", p.get("GLANCE_DIRECT_URL")))
            .header("X-Auth-Token", &admin)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
    }
}

/// The first image of `host` Glance lists in `status`, within `limit`.
pub async fn first_image(p: &Peers, host: &str, status: &str, limit: Duration) -> Option<String> {
    let admin = p.admin_token().await;
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let found = images_of(p, &admin, host).await;
        if let Some(i) = found.iter().find(|i| i["status"] == status) {
            return i["id"].as_str().map(String::from);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Wait until Nova reports every compute and conductor service up again
/// (after a restart the scheduler needs the compute's first report).
pub async fn nova_services_up(p: &Peers, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let admin = p.admin_token().await;
        let resp = p
            .client
            .get(format!("{}/os-services", p.get("NOVA_DIRECT_URL")))
            .header("X-Auth-Token", &admin)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = resp {
            if let Ok(v) = r.json::<Value>().await {
                let all = v["services"].as_array().cloned().unwrap_or_default();
                if !all.is_empty() && all.iter().all(|s| s["state"] == "up") {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// One row of docs/verdicts.md, printed as `VERDICT {json}` (the test's
/// own observation, never a constant).
pub struct Row<'a> {
    pub fault: &'a str,
    pub probe: &'a str,
    pub expected: &'a str,
    pub run: &'a Run,
    /// What the admin found afterwards, e.g. "none" or "1 server (ERROR)".
    pub left: String,
    pub secs: f64,
    pub note: String,
}

impl Row<'_> {
    pub fn print(&self) {
        let step = self.run.bad_step();
        let v = json!({
            "fault": self.fault,
            "probe": self.probe,
            "expected": self.expected,
            "status": self.run.status(),
            "exit_code": self.run.code,
            "outcome": self.run.outcome(),
            "stage": self.run.stage(),
            "message": step["message"].as_str().unwrap_or(self.run.summary()),
            "transport": step["transport"],
            "http_status": step["http"]["status"],
            "probe_cleanup": self.run.resources(),
            "left_after": self.left,
            "probe_secs": (self.run.secs * 10.0).round() / 10.0,
            "test_secs": (self.secs * 10.0).round() / 10.0,
            "note": self.note,
        });
        println!("VERDICT {v}");
    }
}

/// Left-over text for a row: "none" or the list.
pub fn left_text(left: &[String]) -> String {
    if left.is_empty() {
        "none".into()
    } else {
        left.join(", ")
    }
}
