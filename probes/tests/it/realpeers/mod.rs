//! The real peers (Keystone behind Apache + mod_auth_openidc, Nova with the
//! fake virt driver, Glance, Neutron, an OIDC provider) as described by
//! `/tmp/fedprobe-peers/peers.env`. Tests SKIP LOUDLY when it is missing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use probes::http::{build_client, TlsOptions};
use serde_json::{json, Value};

pub struct Peers {
    pub env: HashMap<String, String>,
    pub client: reqwest::Client,
}

impl Peers {
    /// The peers, or `None` after printing `SKIP <test>: <reason>`.
    pub fn load(test: &str) -> Option<Peers> {
        let file = std::env::var("FEDPROBE_PEERS_ENV")
            .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
        let Ok(text) = std::fs::read_to_string(&file) else {
            eprintln!("SKIP {test}: no peers file {file} (start them with ci/peers/up.sh)");
            return None;
        };
        let env: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for k in [
            "KEYSTONE_URL",
            "OIDC_TOKEN_ENDPOINT",
            "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET_FILE",
            "CA_CERT",
        ] {
            if !env.contains_key(k) {
                eprintln!("SKIP {test}: {file} has no {k}");
                return None;
            }
        }
        let tls = TlsOptions {
            ca_certs: vec![PathBuf::from(&env["CA_CERT"])],
            ..Default::default()
        };
        let client = build_client(&tls).expect("client with the peers' CA");
        Some(Peers { env, client })
    }

    pub fn get(&self, k: &str) -> &str {
        self.env.get(k).map(String::as_str).unwrap_or("")
    }

    /// A client_credentials access token from the real OIDC provider, as
    /// `curl -u id:secret -d grant_type=client_credentials TOKEN_ENDPOINT`.
    /// `None` (after a SKIP line) when the provider cannot be reached.
    pub async fn access_token(&self, test: &str) -> Option<String> {
        let secret = std::fs::read_to_string(self.get("OIDC_CLIENT_SECRET_FILE"))
            .expect("client secret file");
        let scope = self.get("OIDC_SCOPES").replace(',', " ");
        let sent = self
            .client
            .post(self.get("OIDC_TOKEN_ENDPOINT"))
            .basic_auth(self.get("OIDC_CLIENT_ID"), Some(secret.trim()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
            ])
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                eprintln!(
                    "SKIP {test}: peers.env exists but the OIDC provider {} is not reachable (peers restarting?)",
                    self.get("OIDC_TOKEN_ENDPOINT")
                );
                return None;
            }
            Err(e) => panic!("OIDC token endpoint: {e}"),
        };
        assert!(
            resp.status().is_success(),
            "token endpoint: {}",
            resp.status()
        );
        let v: Value = resp.json().await.expect("token JSON");
        Some(
            v["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
        )
    }

    /// An admin Keystone token (password, direct Keystone) for inspecting Nova.
    pub async fn admin_token(&self) -> String {
        let pw = std::fs::read_to_string(self.get("ADMIN_PASSWORD_FILE")).expect("admin password");
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.get("ADMIN_USER"), "domain": {"name": "Default"}, "password": pw.trim()}}},
            "scope": {"project": {"name": self.get("ADMIN_PROJECT_NAME"), "domain": {"name": "Default"}}}}});
        let resp = self
            .client
            .post(format!("{}/auth/tokens", self.get("KEYSTONE_DIRECT_URL")))
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("keystone answers");
        assert!(resp.status().is_success(), "admin login: {}", resp.status());
        resp.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string()
    }

    /// Every project's servers, as the admin sees them in Nova.
    pub async fn all_servers(&self, admin: &str) -> Vec<Value> {
        let resp = self
            .client
            .get(format!(
                "{}/servers/detail?all_tenants=1",
                self.get("NOVA_DIRECT_URL")
            ))
            .header("X-Auth-Token", admin)
            .header("OpenStack-API-Version", "compute 2.37")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("nova answers");
        assert!(resp.status().is_success(), "nova list: {}", resp.status());
        let v: Value = resp.json().await.unwrap();
        v["servers"].as_array().cloned().unwrap_or_default()
    }

    /// Status of one image as the admin sees it (None on 404).
    pub async fn image_status(&self, admin: &str, id: &str) -> Option<String> {
        let resp = self
            .client
            .get(format!("{}/v2/images/{id}", self.get("GLANCE_DIRECT_URL")))
            .header("X-Auth-Token", admin)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("glance answers");
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let v: Value = resp.json().await.unwrap();
        v["status"].as_str().map(String::from)
    }
}

/// Fail if `output` holds any 12-character piece of `secret`, anything
/// token-shaped, or the scrubber's mark (which would mean a secret reached
/// the renderer at all).
pub fn assert_no_token(output: &str, secret: &str) {
    let b = secret.as_bytes();
    for w in b.windows(12) {
        let piece = std::str::from_utf8(w).unwrap_or("");
        assert!(
            piece.is_empty() || !output.contains(piece),
            "token fragment {piece:?} in output"
        );
    }
    assert!(!output.contains("eyJ"), "JWT-shaped text in output");
    assert!(!output.contains("gAAAAA"), "fernet-shaped text in output");
    assert!(!output.contains("***"), "a secret reached the renderer");
}

/// Run a probe binary with `args`; (exit code, stdout, user+sys CPU seconds,
/// wall seconds). Whatever it wrote to stderr is checked for `secret` too.
pub async fn run_bin(bin: &str, args: &[String]) -> (i32, String, f64, f64) {
    let t0 = std::time::Instant::now();
    let rusage_file = tempfile::NamedTempFile::new().unwrap();
    let out = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S")
        .arg("-o")
        .arg(rusage_file.path())
        .arg(bin)
        .args(args)
        .output()
        .await
        .expect("run probe");
    let wall = t0.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("eyJ") && !stderr.contains("gAAAAA"),
        "token-shaped text on stderr: {stderr}"
    );
    let cpu: f64 = std::fs::read_to_string(rusage_file.path())
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse::<f64>().ok())
        .sum();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        cpu,
        wall,
    )
}

/// Run `bin` and sample its peak resident set (VmHWM, kB) from
/// /proc/PID/status until it exits; (exit code, stdout, peak kB).
pub async fn run_sampling_rss(bin: &str, args: &[String]) -> (i32, String, u64) {
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run probe");
    let status_file = format!("/proc/{}/status", child.id().unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        stdout.read_to_string(&mut out).await.unwrap();
        out
    });
    let mut peak_kb = 0u64;
    // Bounded: the probe's own -t ends it long before this.
    for _ in 0..60_000 {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code().unwrap_or(-1), reader.await.unwrap(), peak_kb);
        }
        let hwm = std::fs::read_to_string(&status_file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        peak_kb = peak_kb.max(hwm.unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{bin} still running after 10 minutes");
}
