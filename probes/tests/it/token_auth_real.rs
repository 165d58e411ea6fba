//! check_token_auth end-to-end against the real peers (oidc-provider, Apache +
//! mod_auth_openidc, Keystone) described by /tmp/fedprobe-peers/peers.env
//! (override: FEDPROBE_PEERS_ENV). Without them every test prints
//! `SKIP <test>: <reason>` and returns.

use crate::token_auth_support;

use std::collections::HashMap;
use std::time::Instant;

use token_auth_support::{run, Run};

const OK: i32 = 0;
const CRITICAL: i32 = 2;

struct Peers(HashMap<String, String>);

impl Peers {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The peers, or the reason to skip.
fn peers(test: &str) -> Option<Peers> {
    let file = std::env::var("FEDPROBE_PEERS_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIP {test}: no peers ({file}: {e})");
            return None;
        }
    };
    let map: HashMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let p = Peers(map);
    if p.get("KEYSTONE_URL").is_none() {
        eprintln!("SKIP {test}: {file} has no KEYSTONE_URL");
        return None;
    }
    Some(p)
}

/// `host:port` of an http(s) URL.
fn host_port(url: &str) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.split("://").nth(1)?;
    let hp = rest.split('/').next()?;
    let with_port = if hp.contains(':') {
        hp.to_string()
    } else if url.starts_with("https") {
        format!("{hp}:443")
    } else {
        format!("{hp}:80")
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// Whether the services behind `keys` (URLs in peers.env) accept connections.
fn reachable(p: &Peers, test: &str, keys: &[&str]) -> bool {
    for k in keys {
        let Some(url) = p.get(k) else { continue };
        let ok = host_port(url).is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok()
        });
        if !ok {
            eprintln!("SKIP {test}: {k} {url} is not reachable");
            return false;
        }
    }
    true
}

/// What these tests need from peers.env, or a loud skip naming what is missing.
fn need<'a>(p: &'a Peers, test: &str, keys: &[&str]) -> Option<Vec<&'a str>> {
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| p.get(k).is_none())
        .collect();
    if !missing.is_empty() {
        eprintln!("SKIP {test}: peers.env lacks {}", missing.join(", "));
        return None;
    }
    let mut urls: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| k.ends_with("_URL") || *k == "OIDC_ISSUER")
        .collect();
    urls.push("KEYSTONE_URL");
    if !reachable(p, test, &urls) {
        return None;
    }
    Some(keys.iter().filter_map(|k| p.get(k)).collect())
}

/// Only the optional services the peers run (the peers have no Cinder).
fn optional(p: &Peers) -> String {
    if p.get("NEUTRON_URL").is_some() {
        "network".into()
    } else {
        String::new()
    }
}

async fn timed(test: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let t0 = Instant::now();
    let r = run(args, env).await;
    eprintln!(
        "TIMING {test}: exit {} in {:.3}s\n{}",
        r.code,
        t0.elapsed().as_secs_f64(),
        r.stdout
    );
    r
}

fn check(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.code, code, "exit code; output:\n{}", r.all());
    for n in needles {
        assert!(r.stdout.contains(n), "missing {n:?} in:\n{}", r.all());
    }
}

fn oidc_args<'a>(v: &[&'a str], opt: &'a str) -> Vec<&'a str> {
    // KEYSTONE_URL OIDC_ISSUER OIDC_CLIENT_ID OIDC_CLIENT_SECRET_FILE CA_CERT REGION
    vec![
        "-v",
        "-t",
        "60",
        "--endpoint",
        v[0],
        "--oidc-issuer",
        v[1],
        "--client-id",
        v[2],
        "--client-secret",
        v[3],
        "--ca-cert",
        v[4],
        "--region",
        v[5],
        "--optional-services",
        opt,
    ]
}

const OIDC_KEYS: &[&str] = &[
    "KEYSTONE_URL",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET_FILE",
    "CA_CERT",
    "REGION",
];

#[tokio::test(flavor = "multi_thread")]
async fn real_client_credentials_login_through_mod_auth_openidc() {
    let t = "real_client_credentials_login_through_mod_auth_openidc";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, OIDC_KEYS) else {
        return;
    };
    let opt = optional(&p);
    let r = timed(t, &oidc_args(&v, &opt), &[]).await;
    let ops = p.get("OPS_PROJECT_NAME").unwrap_or("ops");
    check(
        &r,
        OK,
        &[
            "client_credentials grant",
            "[OK] AUTH-02",
            "openid: unscoped token",
            ops,
            "[OK] AUTH-06",
            "[OK] AUTH-07",
            "[OK] AUTH-09",
            "HTTP 401 (refused)",
        ],
    );
    // the same at -vvv and as JSON: nothing of the peers' secrets comes out
    let secrets = peer_secrets(&p);
    assert!(!secrets.is_empty(), "no secret files found in peers.env");
    for fmt in ["nagios", "json"] {
        let mut args = vec!["-vvv", "--output", fmt];
        args.extend(oidc_args(&v, &opt).into_iter().skip(1));
        let r = run(&args, &[]).await;
        assert_eq!(r.code, OK, "{}", r.all());
        let out = r.all();
        for s in &secrets {
            for w in s.as_bytes().windows(8) {
                let frag = String::from_utf8_lossy(w);
                assert!(
                    !out.contains(frag.as_ref()),
                    "secret fragment leaked:\n{out}"
                );
            }
        }
    }
}

/// The contents of every `*_FILE` secret peers.env points at.
fn peer_secrets(p: &Peers) -> Vec<String> {
    p.0.iter()
        .filter(|(k, _)| k.ends_with("_FILE") && k.as_str() != "CA_CERT")
        .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() >= 8)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn real_garbage_token_file_is_refused_by_apache() {
    let t = "real_garbage_token_file_is_refused_by_apache";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, &["KEYSTONE_URL", "CA_CERT"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = token_auth_support::file(&dir, "oidc", "this-is-not-a-token-0123456789");
    let r = timed(
        t,
        &[
            "-v",
            "--endpoint",
            v[0],
            "--access-token",
            &bad,
            "--ca-cert",
            v[1],
        ],
        &[],
    )
    .await;
    check(
        &r,
        CRITICAL,
        &[
            "AUTH-02 OIDC token exchange",
            "openid: HTTP 401 Unauthorized",
            "protocols/openid/auth)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_wrong_identity_provider_is_critical() {
    let t = "real_wrong_identity_provider_is_critical";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, OIDC_KEYS) else {
        return;
    };
    let opt = optional(&p);
    let mut args = oidc_args(&v, &opt);
    args.extend(["--identity-provider", "no-such-idp.example"]);
    let r = timed(t, &args, &[]).await;
    check(
        &r,
        CRITICAL,
        &[
            "AUTH-02",
            "identity provider no-such-idp.example",
            "openid: HTTP 404 Not Found",
            "identity_providers/no-such-idp.example/protocols/openid/auth)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_keystone_down_is_critical() {
    let t = "real_keystone_down_is_critical";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, OIDC_KEYS) else {
        return;
    };
    // a port nobody listens on: bind, note, release
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let down = format!("https://127.0.0.1:{port}/v3");
    let mut v = v.clone();
    v[0] = &down;
    let opt = optional(&p);
    let r = timed(t, &oidc_args(&v, &opt), &[]).await;
    check(&r, CRITICAL, &["AUTH-02", "connection refused"]);
    // the credential itself was fine: the OP step passed
    assert!(r.stdout.contains("[OK] AUTH-01"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn real_password_login() {
    let t = "real_password_login";
    let Some(p) = peers(t) else { return };
    let keys = [
        "KEYSTONE_URL",
        "PASSWORD_USER",
        "PASSWORD_FILE",
        "CA_CERT",
        "REGION",
    ];
    let Some(v) = need(&p, t, &keys) else { return };
    let opt = optional(&p);
    let mut args = vec![
        "-v",
        "--endpoint",
        v[0],
        "--username",
        v[1],
        "--password-file",
        v[2],
        "--ca-cert",
        v[3],
        "--region",
        v[4],
        "--optional-services",
        &opt,
    ];
    if let Some(d) = p.get("USER_DOMAIN_NAME") {
        args.extend(["--user-domain", d]);
    }
    let base = args.clone();
    if let Some(proj) = p.get("PASSWORD_PROJECT_NAME") {
        args.extend(["--project", proj]);
    }
    let r = timed(t, &args, &[]).await;
    check(
        &r,
        OK,
        &["[OK] AUTH-12 password authentication", "[OK] AUTH-06"],
    );
    // password logins do not probe the federation endpoint
    assert!(!r.stdout.contains("AUTH-09"), "{}", r.stdout);

    // and scoped directly when the project's domain is given
    if let (Some(proj), Some(pd)) = (p.get("PASSWORD_PROJECT_NAME"), p.get("PROJECT_DOMAIN_NAME")) {
        let mut args = base;
        args.extend(["--project", proj, "--project-domain", pd]);
        let r = timed(&format!("{t} (direct scope)"), &args, &[]).await;
        check(&r, OK, &["[OK] AUTH-04", proj]);
        assert!(!r.stdout.contains("AUTH-03"), "{}", r.stdout);
    } else {
        eprintln!(
            "SKIP {t} (direct scope): peers.env lacks PASSWORD_PROJECT_NAME or PROJECT_DOMAIN_NAME"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_application_credential_login() {
    let t = "real_application_credential_login";
    let Some(p) = peers(t) else { return };
    let keys = [
        "KEYSTONE_URL",
        "APP_CRED_ID",
        "APP_CRED_SECRET_FILE",
        "CA_CERT",
        "REGION",
    ];
    let Some(v) = need(&p, t, &keys) else { return };
    let opt = optional(&p);
    let r = timed(
        t,
        &[
            "-v",
            "--endpoint",
            v[0],
            "--app-cred-id",
            v[1],
            "--app-cred-secret",
            v[2],
            "--ca-cert",
            v[3],
            "--region",
            v[4],
            "--optional-services",
            &opt,
        ],
        &[],
    )
    .await;
    check(
        &r,
        OK,
        &[
            "[OK] AUTH-13 application credential authentication",
            "[OK] AUTH-06",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_os_cloud_from_clouds_yaml() {
    let t = "real_os_cloud_from_clouds_yaml";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, &["CLOUDS_YAML", "OS_CLOUD_NAME"]) else {
        return;
    };
    let opt = optional(&p);
    let env = [("OS_CLIENT_CONFIG_FILE", v[0])];
    let mut clouds = vec![v[1]];
    for k in ["OS_CLOUD_APPCRED_NAME", "OS_CLOUD_OIDC_NAME"] {
        match p.get(k) {
            Some(c) if k == "OS_CLOUD_OIDC_NAME" && !reachable(&p, t, &["OIDC_ISSUER"]) => {
                eprintln!("SKIP {t} ({c}): the OP is not reachable")
            }
            Some(c) => clouds.push(c),
            None => eprintln!("SKIP {t} ({k}): not in peers.env"),
        }
    }
    for cloud in clouds {
        let r = timed(
            &format!("{t} ({cloud})"),
            &["-v", "--os-cloud", cloud, "--optional-services", &opt],
            &env,
        )
        .await;
        check(
            &r,
            OK,
            &["[OK] AUTH-06", &format!("clouds.yaml cloud {cloud}")],
        );
    }
    // OS_CLOUD works like --os-cloud
    let r = timed(
        &format!("{t} (OS_CLOUD)"),
        &["-v", "--optional-services", &opt],
        &[("OS_CLIENT_CONFIG_FILE", v[0]), ("OS_CLOUD", v[1])],
    )
    .await;
    check(&r, OK, &["[OK] AUTH-06"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn real_refresh_token_grant() {
    let t = "real_refresh_token_grant";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, OIDC_KEYS) else {
        return;
    };
    let Some(rt) = p.get("OIDC_REFRESH_TOKEN_FILE") else {
        eprintln!("SKIP {t}: peers.env lacks OIDC_REFRESH_TOKEN_FILE");
        return;
    };
    let opt = optional(&p);
    let mut args = oidc_args(&v, &opt);
    args.extend(["--refresh-token", rt]);
    let r = timed(t, &args, &[]).await;
    check(
        &r,
        OK,
        &[
            "[OK] AUTH-10",
            "refresh-token grant",
            "[OK] AUTH-02",
            "[OK] AUTH-09",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_plain_http_loopback_keystone() {
    let t = "real_plain_http_loopback_keystone";
    let Some(p) = peers(t) else { return };
    let Some(v) = need(&p, t, OIDC_KEYS) else {
        return;
    };
    let Some(http_url) = p.get("KEYSTONE_HTTP_URL") else {
        eprintln!("SKIP {t}: peers.env lacks KEYSTONE_HTTP_URL");
        return;
    };
    let mut v = v.clone();
    v[0] = http_url;
    let opt = optional(&p);
    let r = timed(t, &oidc_args(&v, &opt), &[]).await;
    // loopback http is accepted (traffic stays on the host) and the login works
    check(&r, OK, &["plain http on loopback", "[OK] AUTH-06"]);
}
