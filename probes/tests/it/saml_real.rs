//! SAML2 ECP logins against the real SAML peers (ci/peers/saml.sh: a
//! mod_auth_mellon SP in front of the real Keystone, a pysaml2 IdP), and
//! every fault made real: an IdP signing with a key the SP does not know,
//! an IdP issuing assertions for another audience, a user the IdP refuses,
//! the monitor's wrong password, an SP without ECP, an IdP stopped by PID.
//! The faulty IdPs are started here (own port, 127.0.0.1) and stopped by PID.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::realpeers::assert_no_token;
use crate::token_auth_support::{run, Run};

const OK: i32 = 0;
const CRITICAL: i32 = 2;
const UNKNOWN: i32 = 3;

const KEYS: &[&str] = &[
    "SAML_KEYSTONE_URL",
    "SAML_NOECP_KEYSTONE_URL",
    "SAML_IDP",
    "SAML_IDP_URL",
    "SAML_IDP_ENTITY_ID",
    "SAML_CREDENTIALS_FILE",
    "SAML_DENIED_CREDENTIALS_FILE",
    "SAML_DIR",
    "SAML_VENV",
    "CA_CERT",
    "FEDPROBE_PEERS_DIR",
];

struct Saml(HashMap<String, String>);

impl Saml {
    /// The SAML peers, or `None` after a loud SKIP line.
    fn load(test: &str) -> Option<Saml> {
        let file = std::env::var("FEDPROBE_PEERS_ENV")
            .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
        let Ok(text) = std::fs::read_to_string(&file) else {
            eprintln!("SKIP {test}: no peers file {file} (start them with ci/peers/up.sh)");
            return None;
        };
        let env: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        if let Some(k) = KEYS.iter().find(|k| !env.contains_key(**k)) {
            eprintln!("SKIP {test}: {file} has no {k} (SAML peers: ci/peers/saml.sh start)");
            return None;
        }
        Some(Saml(env))
    }

    fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }

    /// check_token_auth's arguments for a SAML login at `keystone` via `idp_url`.
    fn args(&self, keystone: &str, idp_url: &str, creds: &str) -> Vec<String> {
        [
            "-v",
            "-t",
            "60",
            "--endpoint",
            keystone,
            "--ca-cert",
            self.get("CA_CERT"),
            "--identity-provider",
            self.get("SAML_IDP"),
            "--saml-idp",
            idp_url,
            "--saml-credentials",
            creds,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn password(&self) -> String {
        let line = std::fs::read_to_string(self.get("SAML_CREDENTIALS_FILE")).unwrap();
        line.trim().split_once(':').unwrap().1.to_string()
    }

    /// A variant of the peers' IdP (same entityID, so the SP takes it for
    /// that IdP) on a free port, with `extra` environment.
    fn start_idp(&self, extra: &[(&str, String)]) -> Idp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = self.get("FEDPROBE_PEERS_DIR");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci/peers/saml_idp.py");
        let mut cmd = Command::new(format!("{}/bin/python", self.get("SAML_VENV")));
        cmd.args(["-W", "ignore", script, "serve"])
            .env("SAML_DIR", self.get("SAML_DIR"))
            .env("IDP_PORT", port.to_string())
            .env("IDP_ENTITY_ID", self.get("SAML_IDP_ENTITY_ID"))
            .env("IDP_TLS_CERT", format!("{p}/tls/server.crt"))
            .env("IDP_TLS_KEY", format!("{p}/tls/server.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start a pysaml2 IdP variant");
        let idp = Idp {
            child,
            url: format!("https://127.0.0.1:{port}/sso/ecp"),
            port,
        };
        // ready when it accepts connections (pysaml2 loads in 1-3 s)
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "IdP variant on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        idp
    }
}

/// An IdP variant this test started; stopped by its PID when dropped.
struct Idp {
    child: Child,
    url: String,
    port: u16,
}

impl Idp {
    fn stop(&mut self) {
        let _ = self.child.kill(); // SIGKILL to this child's PID only
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn probe(test: &str, args: &[String]) -> Run {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let r = run(&a, &[]).await;
    eprintln!(
        "TIMING {test}: exit {} in {:.3}s\n{}",
        r.code,
        t0.elapsed().as_secs_f64(),
        r.stdout
    );
    r
}

fn expect(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.code, code, "exit code; output:\n{}", r.all());
    for n in needles {
        assert!(r.stdout.contains(n), "missing {n:?} in:\n{}", r.all());
    }
}

#[tokio::test]
async fn saml_ecp_login_then_project_and_scoped_token() {
    let test = "saml_ecp_login_then_project_and_scoped_token";
    let Some(s) = Saml::load(test) else { return };
    let args = s.args(
        s.get("SAML_KEYSTONE_URL"),
        s.get("SAML_IDP_URL"),
        s.get("SAML_CREDENTIALS_FILE"),
    );
    let r = probe(test, &args).await;
    expect(
        &r,
        OK,
        &[
            "[OK] AUTH-14 SAML2 ECP",
            "[OK] AUTH-15 SAML2 ECP",
            "issued a signed response",
            "[OK] AUTH-16 SAML2 ECP",
            "[OK] AUTH-17 SAML2 ECP: Keystone token for the SAML session: unscoped token (HTTP 201)",
            "[OK] AUTH-03 list projects",
            "[OK] AUTH-04 project-scoped token: scoped to",
            "[OK] AUTH-06 validate scoped token",
            "[OK] AUTH-18",
            "via fedprobe-saml/mapped",
            "saml_idp=",
        ],
    );
    // no OIDC exchange, and no garbage bearer sent to a SAML login URL
    assert!(!r.stdout.contains("AUTH-02") && !r.stdout.contains("AUTH-09"));
    assert_no_token(&r.all(), &s.password());
    // the JSON result carries the same stages
    let mut json = args.clone();
    json.extend(["--output".to_string(), "json".to_string()]);
    let r = probe(test, &json).await;
    assert_eq!(r.code, OK, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let ids: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["check"].as_str())
        .collect();
    for id in ["AUTH-14", "AUTH-15", "AUTH-16", "AUTH-17", "AUTH-04"] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
}

#[tokio::test]
async fn saml_login_serves_every_probe() {
    // the login is auth::login's: another probe logs in the same way
    let test = "saml_login_serves_every_probe";
    let Some(s) = Saml::load(test) else { return };
    let args = s.args(
        s.get("SAML_KEYSTONE_URL"),
        s.get("SAML_IDP_URL"),
        s.get("SAML_CREDENTIALS_FILE"),
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_check_usage"))
        .args(&args)
        .env_clear()
        .output()
        .await
        .expect("run check_usage");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(OK), "{stdout}");
    assert!(stdout.contains("[OK] AUTH-17 SAML2 ECP"), "{stdout}");
    assert!(stdout.contains("[OK] USAGE-01"), "{stdout}");
}

#[tokio::test]
async fn idp_signing_with_an_unknown_key_fails_at_the_sp() {
    let test = "idp_signing_with_an_unknown_key_fails_at_the_sp";
    let Some(s) = Saml::load(test) else { return };
    let d = s.get("SAML_DIR");
    let idp = s.start_idp(&[
        ("IDP_SIGN_KEY", format!("{d}/idp-wrong.key")),
        ("IDP_SIGN_CERT", format!("{d}/idp-wrong.crt")),
    ]);
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            &idp.url,
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &[
            "[OK] AUTH-15",
            "[CRITICAL] AUTH-16 SAML2 ECP: service provider accepts the assertion: the SP refused \
             the IdP's assertion: its signature most likely does not verify",
            "HTTP 400",
        ],
    );
    assert!(!r.stdout.contains("AUTH-17"), "{}", r.stdout);
}

#[tokio::test]
async fn idp_issuing_for_another_audience_fails_at_the_sp() {
    let test = "idp_issuing_for_another_audience_fails_at_the_sp";
    let Some(s) = Saml::load(test) else { return };
    let idp = s.start_idp(&[(
        "IDP_AUDIENCE",
        "https://other-sp.example/metadata".to_string(),
    )]);
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            &idp.url,
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &[
            "assertion for https://other-sp.example/metadata",
            "[CRITICAL] AUTH-16",
            "the assertion's audience https://other-sp.example/metadata is not the SP's entity id",
        ],
    );
}

#[tokio::test]
async fn idp_refusing_the_user_is_critical_at_the_idp() {
    let test = "idp_refusing_the_user_is_critical_at_the_idp";
    let Some(s) = Saml::load(test) else { return };
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            s.get("SAML_IDP_URL"),
            s.get("SAML_DENIED_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &[
            "[OK] AUTH-14",
            "[CRITICAL] AUTH-15 SAML2 ECP: identity provider login (SOAP)",
            "refused the login: Responder/RequestDenied",
        ],
    );
}

#[tokio::test]
async fn monitors_own_wrong_password_is_unknown() {
    let test = "monitors_own_wrong_password_is_unknown";
    let Some(s) = Saml::load(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("saml");
    std::fs::write(&bad, "probe-saml:Wr0ngWr0ng-4711").unwrap();
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            s.get("SAML_IDP_URL"),
            bad.to_str().unwrap(),
        ),
    )
    .await;
    expect(
        &r,
        UNKNOWN,
        &[
            "TOKEN_AUTH UNKNOWN",
            "[UNKNOWN] AUTH-15",
            "refused the monitor's user:password for probe-saml (HTTP 401)",
        ],
    );
    assert_no_token(&r.all(), "Wr0ngWr0ng-4711");
}

#[tokio::test]
async fn sp_without_ecp_is_critical_at_the_sp() {
    let test = "sp_without_ecp_is_critical_at_the_sp";
    let Some(s) = Saml::load(test) else { return };
    let r = probe(
        test,
        &s.args(
            s.get("SAML_NOECP_KEYSTONE_URL"),
            s.get("SAML_IDP_URL"),
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &[
            "[CRITICAL] AUTH-14 SAML2 ECP: service provider's authentication request (PAOS)",
            "does not offer SAML2 ECP",
        ],
    );
    assert!(!r.stdout.contains("AUTH-15"), "{}", r.stdout);
    // an OIDC-only front (mod_auth_openidc) is no SAML SP either
    let r = probe(
        test,
        &s.args(
            s.0.get("KEYSTONE_URL").map(String::as_str).unwrap_or(""),
            s.get("SAML_IDP_URL"),
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &["[CRITICAL] AUTH-14", "does not offer SAML2 ECP"],
    );
}

#[tokio::test]
async fn idp_stopped_is_critical_at_the_idp() {
    let test = "idp_stopped_is_critical_at_the_idp";
    let Some(s) = Saml::load(test) else { return };
    let mut idp = s.start_idp(&[]);
    let url = idp.url.clone();
    // it works while it runs ...
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            &url,
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(&r, OK, &["[OK] AUTH-17"]);
    // ... and not once stopped
    idp.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", idp.port)).is_err());
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            &url,
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        CRITICAL,
        &[
            "[CRITICAL] AUTH-15 SAML2 ECP: identity provider login (SOAP)",
            "unreachable: connection refused",
        ],
    );
}

#[tokio::test]
async fn site_advertises_oidc_and_saml_protocols() {
    // listing identity providers needs admin rights: the peers' admin does it
    let test = "site_advertises_oidc_and_saml_protocols";
    let Some(s) = Saml::load(test) else { return };
    let (Some(ks), Some(pw)) = (s.0.get("KEYSTONE_URL"), s.0.get("ADMIN_PASSWORD_FILE")) else {
        eprintln!("SKIP {test}: peers.env has no KEYSTONE_URL/ADMIN_PASSWORD_FILE");
        return;
    };
    let args: Vec<String> = [
        "-v",
        "--endpoint",
        ks,
        "--ca-cert",
        s.get("CA_CERT"),
        "--username",
        "admin",
        "--password-file",
        pw,
        "--project",
        "admin",
        "--project-domain",
        "Default",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = probe(test, &args).await;
    expect(
        &r,
        OK,
        &[
            "[OK] AUTH-18 federation protocols advertised (OIDC, SAML)",
            "offering OIDC and SAML",
            "egi.eu: openid (OIDC)",
            "fedprobe-saml: mapped (SAML)",
        ],
    );
    // a member may not list them: reported, not failed
    let r = probe(
        test,
        &s.args(
            s.get("SAML_KEYSTONE_URL"),
            s.get("SAML_IDP_URL"),
            s.get("SAML_CREDENTIALS_FILE"),
        ),
    )
    .await;
    expect(
        &r,
        OK,
        &[
            "[OK] AUTH-18",
            "HTTP 403); this login used fedprobe-saml/mapped",
        ],
    );
}
