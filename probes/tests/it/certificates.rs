//! check_certificates: against the real peers' https front (every catalog
//! endpoint through the OIDC login), the fault-matrix's bad certificates
//! (ci/peers/badcert.py, signed by the peers' CA, served by openssl), and
//! certificates made here with rcgen (5, 20 and 90 days left) served by a
//! small rustls server on 127.0.0.1, and servers that break the handshake
//! (an HTTP answer, an alert, a handshake message without end, silence, a
//! reset).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::realpeers;
use realpeers::{assert_no_token, run_bin, Peers};

const BIN: &str = env!("CARGO_BIN_EXE_check_certificates");

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `label=value` from the perfdata of the first line.
fn perf(out: &str, label: &str) -> Option<f64> {
    let first = out.lines().next()?;
    let (_, data) = first.split_once(" | ")?;
    data.split_whitespace().find_map(|item| {
        let (l, rest) = item.split_once('=')?;
        (l == label).then(|| rest.split(';').next()?.parse().ok())?
    })
}

/// A test CA, and leaves it signs for 127.0.0.1.
struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "check_certificates test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A leaf for `names`, valid from a day ago for `days` more days.
    fn leaf(&self, names: &[&str], days: i64) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(strings(names)).unwrap();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(days);
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }
}

/// Serve TLS handshakes with `cert` on 127.0.0.1 until dropped.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(cert: Vec<u8>, key: Vec<u8>) -> Server {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Bounded: the test drops (aborts) the server after at most a few runs.
        for _ in 0..64 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
            });
        }
    });
    Server { addr, task }
}

/// Run the probe on `--check-endpoint` URLs only (no login), trusting `ca`.
async fn run_on(ca_file: &std::path::Path, urls: &[String], extra: &[&str]) -> (i32, String) {
    let mut args = strings(&["-v", "-t", "30", "--ca-cert"]);
    args.push(ca_file.display().to_string());
    for u in urls {
        args.push("--check-endpoint".into());
        args.push(u.clone());
    }
    args.extend(strings(extra));
    let (code, out, _, _) = run_bin(BIN, &args).await;
    (code, out)
}

struct Rig {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    ca: Ca,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    Rig {
        _dir: dir,
        ca_file,
        ca,
    }
}

#[tokio::test]
async fn five_days_left_is_critical_twenty_warning_ninety_ok() {
    let r = rig();
    let (c5, k5) = r.ca.leaf(&["127.0.0.1", "localhost"], 5);
    let (c20, k20) = r.ca.leaf(&["127.0.0.1", "localhost"], 20);
    let (c90, k90) = r.ca.leaf(&["127.0.0.1", "localhost"], 90);
    let (s5, s20, s90) = (
        serve(c5, k5).await,
        serve(c20, k20).await,
        serve(c90, k90).await,
    );
    let url = |s: &Server| format!("https://127.0.0.1:{}/v3", s.addr.port());
    let label = |s: &Server| format!("days_left_127.0.0.1_{}", s.addr.port());

    let (code, out) = run_on(&r.ca_file, &[url(&s90)], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("CERTIFICATES OK"), "{out}");
    let d = perf(&out, &label(&s90)).unwrap();
    assert!((89.8..=90.0).contains(&d), "{d}: {out}");
    assert!(
        out.contains(&format!("{}=", label(&s90))) && out.contains(";30:;7:"),
        "{out}"
    );

    let (code, out) = run_on(&r.ca_file, &[url(&s20)], &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("CERTIFICATES WARNING - CERT-03 certificate days left"),
        "{out}"
    );
    assert!(
        out.contains(&format!("127.0.0.1:{}", s20.addr.port())),
        "{out}"
    );
    let d = perf(&out, &label(&s20)).unwrap();
    assert!((19.8..=20.0).contains(&d), "{d}: {out}");

    // All three at once: the worst decides, each has its own perfdata.
    let (code, out) = run_on(&r.ca_file, &[url(&s5), url(&s20), url(&s90)], &[]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with(
            "CERTIFICATES CRITICAL - CERT-03 certificate days left: 2 certificate(s) under 30 days"
        ),
        "{out}"
    );
    let d = perf(&out, &label(&s5)).unwrap();
    assert!((4.8..=5.0).contains(&d), "{d}: {out}");
    for s in [&s5, &s20, &s90] {
        assert!(perf(&out, &label(s)).is_some(), "{}: {out}", label(s));
    }
    assert_eq!(perf(&out, "endpoints"), Some(3.0), "{out}");
    assert!(out.contains("[OK] CERT-02"), "{out}");

    // Thresholds are options.
    let (code, out) = run_on(
        &r.ca_file,
        &[url(&s5)],
        &["--cert-warning", "4", "--cert-critical", "2"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("days_left_127.0.0.1_") && out.contains(";4:;2:"),
        "{out}"
    );
}

#[tokio::test]
async fn wrong_host_untrusted_and_unreachable_are_critical_even_with_insecure() {
    let r = rig();
    let (c, k) = r.ca.leaf(&["other.fedprobe.invalid"], 90);
    let wrong = serve(c, k).await;
    // Signed by a CA the probe is not given.
    let (c, k) = Ca::new().leaf(&["127.0.0.1"], 90);
    let stranger = serve(c, k).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let urls = [
        format!("https://127.0.0.1:{}/", wrong.addr.port()),
        format!("https://127.0.0.1:{}/", stranger.addr.port()),
        format!("https://127.0.0.1:{closed_port}/"),
    ];
    let (code, out) = run_on(&r.ca_file, &urls, &["--insecure"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("CERTIFICATES CRITICAL - CERT-02 certificate chain and host name: 3 of 3 endpoint(s) failed"),
        "{out}"
    );
    let line = |port: u16| {
        out.lines()
            .find(|l| l.starts_with("[CRITICAL] CERT-02"))
            .unwrap_or("")
            .split("; 127.0.0.1:")
            .find(|p| p.contains(&format!("{port} (--check-endpoint)")))
            .unwrap_or("")
            .to_string()
    };
    let w = line(wrong.addr.port());
    assert!(
        w.contains("not valid for 127.0.0.1 (it names other.fedprobe.invalid)"),
        "{w}: {out}"
    );
    let s = line(stranger.addr.port());
    assert!(s.contains("chain not trusted"), "{s}: {out}");
    let u = line(closed_port);
    assert!(u.contains("cannot connect"), "{u}: {out}");
}

/// What a hostile or broken server sends back for the probe's ClientHello.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// An HTTP answer on the TLS port, then a close.
    Http,
    /// A fatal handshake_failure alert.
    Alert,
    /// A ServerHello claiming 16 MiB, its fragments without end.
    Endless,
    /// Nothing, with the connection kept open.
    Silent,
    /// A reset.
    Reset,
}

async fn hostile_tls(h: Hostile) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut hello = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut hello)).await;
                match h {
                    Hostile::Http => {
                        let _ = s
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                            .await;
                    }
                    Hostile::Alert => {
                        let _ = s
                            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
                            .await;
                    }
                    Hostile::Endless => {
                        // Handshake records of 16 KB: a ServerHello header claiming
                        // 16 MiB, then its body, until the probe hangs up.
                        let mut first = vec![0x16, 0x03, 0x03, 0x40, 0x00, 0x02, 0xff, 0xff, 0xff];
                        first.resize(5 + 0x4000, 0x41);
                        if s.write_all(&first).await.is_err() {
                            return;
                        }
                        let mut next = vec![0x16, 0x03, 0x03, 0x40, 0x00];
                        next.resize(5 + 0x4000, 0x41);
                        for _ in 0..100_000 {
                            if s.write_all(&next).await.is_err() {
                                return;
                            }
                        }
                    }
                    Hostile::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
                    Hostile::Reset => {
                        // A zero linger does not block on drop; it makes the close a reset.
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                }
            });
        }
    });
    (addr, task)
}

/// Servers that break the handshake in every way a front could: each
/// endpoint is CRITICAL, named with what came back, the run ends within -t
/// and its output under 16 KB; the silent one is told apart as a timeout.
#[tokio::test]
async fn hostile_tls_servers_are_critical_and_named() {
    let r = rig();
    let cases = [
        Hostile::Http,
        Hostile::Alert,
        Hostile::Endless,
        Hostile::Silent,
        Hostile::Reset,
    ];
    let mut servers = Vec::new();
    for h in cases {
        servers.push((h, hostile_tls(h).await));
    }
    let urls: Vec<String> = servers
        .iter()
        .map(|(_, (a, _))| format!("https://127.0.0.1:{}/", a.port()))
        .collect();
    let t0 = std::time::Instant::now();
    // run_on gives -t 30.
    let (code, out) = run_on(&r.ca_file, &urls, &[]).await;
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(
        out.len() <= probes::render::nagios::MAX_OUTPUT,
        "{}",
        out.len()
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("CERTIFICATES CRITICAL - CERT-02 certificate chain and host name: 5 of 5 endpoint(s) failed"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("[CRITICAL] CERT-02"))
        .unwrap_or("");
    for (h, (addr, task)) in &servers {
        let at = line
            .find(&format!("127.0.0.1:{} (", addr.port()))
            .unwrap_or(line.len());
        let part = &line[at..];
        let part = &part[..part.find("; 127.0.0.1:").unwrap_or(part.len())];
        let says = match h {
            Hostile::Http => "TLS handshake failed: received corrupt message",
            Hostile::Alert => "TLS handshake failed: received fatal alert",
            Hostile::Endless => "TLS handshake failed: received corrupt message",
            Hostile::Silent => "no TLS handshake within the time allowed",
            Hostile::Reset => "TLS handshake failed: Connection reset",
        };
        assert!(
            part.contains(says),
            "{h:?} should say {says:?}: {part:?}: {out}"
        );
        task.abort();
    }
}

// ------------------------------------------------------------- real peers

/// `notAfter` of the peers' server certificate as openssl reads it (unix seconds).
fn peers_not_after(p: &Peers) -> i64 {
    let crt = std::path::Path::new(p.get("CA_CERT"))
        .with_file_name("server.crt")
        .display()
        .to_string();
    let out = std::process::Command::new("openssl")
        .args([
            "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", &crt,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let when = text
        .trim()
        .trim_start_matches("notAfter=")
        .replace(' ', "T");
    when.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .as_second()
}

fn peers_args(p: &Peers, token_file: &str, extra: &[&str]) -> Vec<String> {
    let mut v = strings(&[
        "--endpoint",
        p.get("KEYSTONE_URL"),
        "--access-token",
        token_file,
        "--ca-cert",
        p.get("CA_CERT"),
        "--identity-provider",
        p.get("IDP"),
        "-t",
        "60",
        "-v",
    ]);
    v.extend(strings(extra));
    v
}

#[tokio::test]
async fn real_peers_catalog_endpoints_all_checked_through_the_oidc_login() {
    const TEST: &str = "real_peers_catalog_endpoints_all_checked_through_the_oidc_login";
    let Some(p) = Peers::load(TEST) else {
        panic!("{TEST}: the real peers are needed (ci/peers/up.sh)");
    };
    let Some(token) = p.access_token(TEST).await else {
        panic!("{TEST}: no OIDC token from the peers' provider");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc");
    std::fs::write(&file, &token).unwrap();
    let file = file.display().to_string();
    let not_after = peers_not_after(&p);
    // Every https port of the peers' catalog, as peers.env names them.
    let mut ports: Vec<u16> = [
        "KEYSTONE_URL",
        "NOVA_URL",
        "GLANCE_URL",
        "NEUTRON_URL",
        "CINDER_URL",
        "SWIFT_URL",
    ]
    .iter()
    .filter(|k| !p.get(k).is_empty())
    .filter_map(|k| reqwest::Url::parse(p.get(k)).ok()?.port())
    .collect();
    ports.sort();
    ports.dedup();

    // Thresholds below the peers' 30-day certificate: OK.
    let (code, out, _, wall) = run_bin(
        BIN,
        &peers_args(&p, &file, &["--cert-warning", "20", "--cert-critical", "5"]),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("CERTIFICATES OK"), "{out}");
    assert!(out.contains("[OK] AUTH-04"), "{out}");
    assert!(out.contains("[OK] CERT-02"), "{out}");
    assert_no_token(&out, &token);
    let want = (not_after - jiff::Timestamp::now().as_second()) as f64 / 86_400.0;
    for port in &ports {
        let d = perf(&out, &format!("days_left_127.0.0.1_{port}"))
            .unwrap_or_else(|| panic!("no days_left for port {port}: {out}"));
        assert!((d - want).abs() < 0.15, "port {port}: {d} vs {want}: {out}");
    }
    assert_eq!(perf(&out, "endpoints"), Some(ports.len() as f64), "{out}");
    eprintln!(
        "BENCH check_certificates real peers ({} endpoints): wall {wall:.3}s",
        ports.len()
    );

    // A warning threshold above what the peers' certificates have left
    // (ci/peers/tls.sh makes them for a year): WARNING at CERT-03.
    let (code, out, _, _) = run_bin(
        BIN,
        &peers_args(
            &p,
            &file,
            &["--cert-warning", "400", "--cert-critical", "5"],
        ),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("CERTIFICATES WARNING - CERT-03 certificate days left"),
        "{out}"
    );
}

/// The fault matrix's certificates (ci/peers/badcert.py, signed by the
/// peers' CA): expired and wrong-host, added to the real catalog's endpoints.
#[tokio::test]
async fn real_peers_with_badcert_servers_expired_and_wrong_host() {
    const TEST: &str = "real_peers_with_badcert_servers_expired_and_wrong_host";
    let Some(p) = Peers::load(TEST) else {
        panic!("{TEST}: the real peers are needed (ci/peers/up.sh)");
    };
    let Some(token) = p.access_token(TEST).await else {
        panic!("{TEST}: no OIDC token from the peers' provider");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc");
    std::fs::write(&file, &token).unwrap();
    let tls = std::path::Path::new(p.get("CA_CERT")).parent().unwrap();
    let py = format!("{}/cache/venv-os/bin/python", p.get("FEDPROBE_PEERS_DIR"));
    let mut servers = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut ports = Vec::new();
    for kind in ["expired", "wrong-host"] {
        let out = dir.path().join(kind);
        let made = std::process::Command::new(&py)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../ci/peers/badcert.py"
            ))
            .arg(kind)
            .arg(p.get("CA_CERT"))
            .arg(tls.join("ca.key"))
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = tokio::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(out.join("cert.pem"))
            .arg("-key")
            .arg(out.join("key.pem"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        servers.push(server);
        extra.push("--check-endpoint".to_string());
        extra.push(format!("https://127.0.0.1:{port}/"));
        ports.push(port);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (code, out, _, _) =
        run_bin(BIN, &peers_args(&p, &file.display().to_string(), &extra)).await;
    drop(servers);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("CERTIFICATES CRITICAL - CERT-02 certificate chain and host name: 2 of"),
        "{out}"
    );
    let chain = out
        .lines()
        .find(|l| l.starts_with("[CRITICAL] CERT-02"))
        .unwrap_or("");
    assert!(
        chain.contains(&format!(
            "127.0.0.1:{} (--check-endpoint): certificate expired",
            ports[0]
        )),
        "{chain}"
    );
    assert!(
        chain.contains(&format!(
            "127.0.0.1:{} (--check-endpoint): certificate not valid for 127.0.0.1 (it names wrong.fedprobe.invalid)",
            ports[1]
        )),
        "{chain}"
    );
    // The expired one: about a day past (badcert.py: until yesterday).
    let d = perf(&out, &format!("days_left_127.0.0.1_{}", ports[0])).unwrap();
    assert!((-1.2..=-0.9).contains(&d), "{d}: {out}");
    assert_no_token(&out, &token);
}

/// Another cloud has no catalog: its API endpoint (--endpoint) is checked,
/// without a login.
#[tokio::test]
async fn another_clouds_api_endpoint_is_checked_without_login() {
    let r = rig();
    let (c, k) = r.ca.leaf(&["127.0.0.1"], 20);
    let s = serve(c, k).await;
    let url = format!("https://127.0.0.1:{}/compute/v1/", s.addr.port());
    let args = strings(&[
        "-v",
        "-t",
        "30",
        "--cloud",
        "gce",
        "--endpoint",
        &url,
        "--ca-cert",
        &r.ca_file.display().to_string(),
    ]);
    let (code, out, _, _) = run_bin(BIN, &args).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("127.0.0.1:{} (gce API) 19.", s.addr.port())),
        "{out}"
    );
    assert!(!out.contains("AUTH-0"), "no login: {out}");
}

/// A check of nothing is the monitor's problem, not a pass.
#[tokio::test]
async fn no_endpoint_at_all_is_unknown() {
    let (code, out, _, _) = run_bin(BIN, &strings(&["-t", "10", "--cloud", "gce"])).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("nothing to check"), "{out}");
}
