//! A hostile site at every stage, not only at login: for each stage of
//! check_vm_lifecycle, check_image_upload (behind the wiremock cloud),
//! check_block_storage, check_object_storage, check_network, check_usage,
//! check_orchestrator, check_token_auth (its Keystone stages, and its OIDC
//! grant), check_glue (its GLUE document, information system and live site)
//! and check_appliances (its registry image list and the site's images)
//! (behind fakecloud, the demo's site, for its Cinder, Swift, Neutron,
//! usage APIs, Infrastructure Manager, OIDC provider and information
//! system), one request of that stage is
//! answered with garbage (huge, endless, deeply nested, wrongly typed, badly
//! encoded, path-like ids, redirects, resets) by a front that forwards all
//! else to the site. Every run must end as a valid Nagios result under
//! 16 KB, within -t, naming the stage, with cleanup attempted, the token
//! kept from other hosts and no DELETE steered by an id.
//!
//! Not here: check_glue's LDAP BDII (no HTTP: `hostile_ldap.rs`) and
//! check_certificates, whose stages are TLS handshakes, not HTTP answers a
//! front could spoil (`certificates::hostile_tls_servers_are_critical_and_named`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::mockcloud::{run, MockCloud};
use probes::checks::appliances::Appliances;
use probes::checks::block_storage::BlockStorage;
use probes::checks::glue::Glue;
use probes::checks::image_upload::ImageUpload;
use probes::checks::network::NetworkProbe;
use probes::checks::object_storage::ObjectStorage;
use probes::checks::orchestrator::Orchestrator;
use probes::checks::token_auth::TokenAuth;
use probes::checks::usage::Usage;
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::model::Cleanup;
use probes::probe::Probe;
use probes::render::nagios;
use probes::{ProbeResult, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `-t` of a run against the mock cloud, and against fakecloud (whose
/// volumes and servers take a few 300 ms steps each).
const T: u64 = 6;
const T_BLOCK: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Huge,
    Endless,
    Deep,
    WrongTypes,
    Latin1Page,
    BadUtf8,
    PathIds,
    RedirectLoop,
    RedirectAway,
    Reset,
}

const ANSWERS: [Answer; 10] = [
    Answer::Huge,
    Answer::Endless,
    Answer::Deep,
    Answer::WrongTypes,
    Answer::Latin1Page,
    Answer::BadUtf8,
    Answer::PathIds,
    Answer::RedirectLoop,
    Answer::RedirectAway,
    Answer::Reset,
];

/// The method of a table row for a stage that sends nothing but judges
/// what earlier ones read: no case of its own, a stage a result may name.
const NO_REQUEST: &str = "-";

/// (stage id, method, path) of the first request of each stage, in the
/// order they are sent; in a path `*` is one id (see [`path_matches`]), and
/// a final `#N` picks the Nth request to that path (see [`ordinal`]).
const VM_STAGES: &[(&str, &str, &str)] = &[
    ("VM-01", "GET", "/compute/v2.1"),
    ("VM-02", "GET", "/image/v2/images"),
    ("VM-03", "GET", "/compute/v2.1/flavors/detail"),
    ("VM-04", "GET", "/network/v2.0/networks"),
    ("VM-05", "GET", "/compute/v2.1/servers/detail"),
    ("VM-09", "GET", "/compute/v2.1/limits"),
    ("VM-06", "POST", "/compute/v2.1/servers"),
    ("VM-07", "GET", "/compute/v2.1/servers/srv-1"),
    ("VM-08", "DELETE", "/compute/v2.1/servers/srv-1"),
];

const IMG_STAGES: &[(&str, &str, &str)] = &[
    ("IMG-07", "GET", "/image/v2/images"),
    ("IMG-01", "POST", "/image/v2/images"),
    ("IMG-02", "PUT", "/image/v2/images/img-1/file"),
    ("IMG-03", "GET", "/image/v2/images/img-1"),
    ("IMG-05", "GET", "/image/v2/images/img-1/file"),
    ("IMG-06", "DELETE", "/image/v2/images/img-1"),
];

/// fakecloud's site 0 lives under `/s0`. The compute version is asked
/// first of all, and a failure there is BLK-04's (the server's); BLK-04 is
/// also hit at its image lookup and at the server's creation.
const BLK_STAGES: &[(&str, &str, &str)] = &[
    ("BLK-04", "GET", "/s0/compute/v2.1"),
    ("BLK-01", "GET", "/s0/volume/v3/*/limits"),
    ("BLK-02", "POST", "/s0/volume/v3/*/volumes"),
    ("BLK-03", "GET", "/s0/volume/v3/*/volumes/*"),
    ("BLK-04", "GET", "/s0/image/v2/images"),
    ("BLK-04", "POST", "/s0/compute/v2.1/servers"),
    (
        "BLK-05",
        "POST",
        "/s0/compute/v2.1/servers/*/os-volume_attachments",
    ),
    (
        "BLK-06",
        "GET",
        "/s0/compute/v2.1/servers/*/os-volume_attachments",
    ),
    (
        "BLK-07",
        "DELETE",
        "/s0/compute/v2.1/servers/*/os-volume_attachments/*",
    ),
    ("BLK-08", "DELETE", "/s0/volume/v3/*/volumes/*"),
    ("BLK-09", "DELETE", "/s0/compute/v2.1/servers/*"),
];

/// Swift's account, container and object, each one `*`.
const OBJ_STAGES: &[(&str, &str, &str)] = &[
    ("OBJ-01", "PUT", "/s0/swift/v1/*/*"),
    ("OBJ-02", "PUT", "/s0/swift/v1/*/*/*"),
    ("OBJ-03", "GET", "/s0/swift/v1/*/*/*"),
    ("OBJ-04", "GET", "/s0/swift/v1/*/*"),
    ("OBJ-05", "DELETE", "/s0/swift/v1/*/*/*"),
    ("OBJ-06", "DELETE", "/s0/swift/v1/*/*"),
];

/// check_network's stages. NET-04 reads NET-02's network list, NET-07
/// repeats NET-03's port listing and NET-10 NET-09's update: a hostile
/// answer to those requests is NET-02's, NET-03's and NET-09's.
const NET_STAGES: &[(&str, &str, &str)] = &[
    ("NET-06", "GET", "/s0/compute/v2.1"),
    ("NET-01", "GET", "/s0/network/v2.0/quotas/*/details"),
    ("NET-02", "GET", "/s0/network/v2.0/networks"),
    ("NET-02", "GET", "/s0/network/v2.0/subnets"),
    ("NET-03", "GET", "/s0/network/v2.0/routers"),
    ("NET-03", "GET", "/s0/network/v2.0/ports"),
    ("NET-05", "POST", "/s0/network/v2.0/security-groups"),
    ("NET-05", "POST", "/s0/network/v2.0/security-group-rules"),
    ("NET-05", "GET", "/s0/network/v2.0/security-groups/*"),
    ("NET-06", "POST", "/s0/compute/v2.1/servers"),
    ("NET-06", "GET", "/s0/compute/v2.1/servers/*"),
    ("NET-08", "POST", "/s0/network/v2.0/floatingips"),
    ("NET-09", "PUT", "/s0/network/v2.0/floatingips/*"),
    ("NET-09", "GET", "/s0/network/v2.0/floatingips/*"),
    ("NET-11", "DELETE", "/s0/network/v2.0/floatingips/*"),
    ("NET-12", "DELETE", "/s0/compute/v2.1/servers/*"),
    ("NET-13", "DELETE", "/s0/network/v2.0/security-groups/*"),
];

/// check_usage's API stages (USAGE-04/05 read a spool and a URL not given
/// here, USAGE-02 a server not given; an empty usage needs no flavors).
const USAGE_STAGES: &[(&str, &str, &str)] = &[
    (
        "USAGE-01",
        "GET",
        "/s0/compute/v2.1/os-simple-tenant-usage/*",
    ),
    ("USAGE-03", "GET", "/s0/volume/v3/*/volumes/summary"),
];

/// check_orchestrator's: the Infrastructure Manager's and the site's.
const ORCH_STAGES: &[(&str, &str, &str)] = &[
    ("ORCH-01", "GET", "/im/version"),
    ("ORCH-02", "GET", "/s0/image/v2/images"),
    ("ORCH-03", "GET", "/s0/compute/v2.1/flavors/detail"),
    ("ORCH-04", "POST", "/im/infrastructures"),
    ("ORCH-05", "GET", "/im/infrastructures/*/state"),
    ("ORCH-05", "GET", "/im/infrastructures/*"),
    ("ORCH-05", "GET", "/im/infrastructures/*/vms/*/instance_id"),
    ("ORCH-06", "DELETE", "/im/infrastructures/*"),
    ("ORCH-07", "GET", "/s0/compute/v2.1/servers/*"),
];

/// check_token_auth's, all at fakecloud's Keystone (AUTH-05 and AUTH-01
/// send nothing: the URL policy and the token file); AUTH-18's listings
/// are an admin's view, served beside fakecloud ([`beside_fakecloud`]).
/// AUTH-09 posts a garbage token to AUTH-02's path: its row is that
/// path's second POST.
const TOKEN_STAGES: &[(&str, &str, &str)] = &[
    (
        "AUTH-02",
        "POST",
        "/s0/identity/v3/OS-FEDERATION/identity_providers/*/protocols/*/auth",
    ),
    ("AUTH-03", "GET", "/s0/identity/v3/auth/projects"),
    ("AUTH-04", "POST", "/s0/identity/v3/auth/tokens"),
    ("AUTH-06", "GET", "/s0/identity/v3/auth/tokens"),
    (
        "AUTH-18",
        "GET",
        "/s0/identity/v3/OS-FEDERATION/identity_providers",
    ),
    (
        "AUTH-18",
        "GET",
        "/s0/identity/v3/OS-FEDERATION/identity_providers/*/protocols",
    ),
    (
        "AUTH-09",
        "POST",
        "/s0/identity/v3/OS-FEDERATION/identity_providers/*/protocols/*/auth#2",
    ),
];

/// check_token_auth by an OIDC client_credentials grant at fakecloud's
/// OP: AUTH-01 finds the token endpoint and is granted the token (the
/// stages after it are [`TOKEN_STAGES`]').
const TOKEN_GRANT_STAGES: &[(&str, &str, &str)] = &[
    ("AUTH-01", "GET", "/oidc/.well-known/openid-configuration"),
    ("AUTH-01", "POST", "/oidc/token"),
];

/// check_appliances': the registry's image list (served beside the site,
/// see [`beside_fakecloud`]) and the site's images (the login between
/// them is the shared one, [`TOKEN_STAGES`]').
const APPL_STAGES: &[(&str, &str, &str)] = &[
    ("APPL-01", "GET", "/registry/ops.json"),
    ("APPL-02", "GET", "/s0/image/v2/images"),
];

/// check_glue's over http (`--glue-url`, `--is-url`, the live site; an
/// LDAP BDII is no HTTP a front can spoil): GLUE-02 validates what GLUE-01
/// read, GLUE-04 compares the VO's project the sources publish with the
/// login's (the login between is the shared one, [`TOKEN_STAGES`]').
/// GLUE-03 asks the site's own route (the whole list only when that
/// misses: not sent unprovoked, so no row).
const GLUE_STAGES: &[(&str, &str, &str)] = &[
    ("GLUE-01", "GET", "/s0/glue.json"),
    ("GLUE-02", NO_REQUEST, ""),
    ("GLUE-03", "GET", "/is/site/*"),
    ("GLUE-03", "GET", "/is/site/*/*/project"),
    ("GLUE-03", "GET", "/is/site/*/*/images"),
    ("GLUE-04", NO_REQUEST, ""),
    ("GLUE-05", "GET", "/s0/compute/v2.1/flavors/detail"),
    ("GLUE-05", "GET", "/s0/image/v2/images"),
    ("ACCEL-01", "GET", "/s0/compute/v2.1/flavors/detail#2"),
];

/// Every DELETE the probes may send (after fakecloud's `/sN`), each `*`
/// exactly one id: an id from an answer must not reach another path.
const DELETE_PATHS: &[&str] = &[
    "/compute/v2.1/servers/*",
    "/compute/v2.1/servers/*/os-volume_attachments/*",
    "/image/v2/images/*",
    "/volume/v3/*/volumes/*",
    "/swift/v1/*/*",
    "/swift/v1/*/*/*",
    "/network/v2.0/floatingips/*",
    "/network/v2.0/security-groups/*",
    "/im/infrastructures/*",
];

/// A table's path without its `#N` suffix, and N (1 when there is none).
fn ordinal(pattern: &str) -> (&str, usize) {
    match pattern.rsplit_once('#') {
        Some((p, n)) => (p, n.parse().expect("a table's #N is a number")),
        None => (pattern, 1),
    }
}

/// Whether `path` is `pattern`, segment by segment; a `*` is one segment
/// that is not empty, `.`, `..` or a listing's `detail`.
fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let q: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    p.len() == q.len()
        && p.iter().zip(&q).all(|(a, b)| match *a {
            "*" => !matches!(*b, "" | "." | ".." | "detail"),
            a => a == *b,
        })
}

/// One JSON object with every field a client reads, each of a wrong type.
const WRONG_TYPES: &str = r#"{"version": 7, "versions": "x", "flavors": {"id": 1},
  "servers": 3, "server": [true], "images": {"a": 1}, "id": 5, "status": [],
  "networks": "none", "size": "big", "checksum": 9, "limits": [1],
  "volume": "x", "volumes": {"v": 1}, "volumes_links": 2,
  "volumeAttachments": {"a": 1}, "volumeAttachment": 3, "quota": [2],
  "subnets": "s", "routers": 4, "ports": {"p": 1}, "security_group": "g",
  "security_group_rule": [false], "floatingip": 6, "floatingips": {"f": 1}}"#;

/// Swift answers a container listing with an array: its entries mistyped.
const SWIFT_WRONG_TYPES: &str = r#"[{"name": 7, "bytes": "big", "hash": []}, "x", 3]"#;

/// A listing whose names a naive client would put in a path as they are.
const SWIFT_PATH_IDS: &str = r#"[{"name": "../../AUTH_other/c/o", "bytes": 4096, "hash": "00"},
  {"name": "..", "bytes": 1}, {"name": "a/../../b?x=1#", "bytes": 1}]"#;

/// The same fields with ids a naive client would put in a path as is.
const PATH_IDS: &str = r#"{"version": {"id": "v2.1", "version": "2.90", "min_version": "2.1"},
  "flavors": [{"id": "../8", "name": "m1.probe", "vcpus": 1, "ram": 512, "disk": 8}],
  "servers": [{"id": "../../flavors/8", "name": "fedprobe-0000000001", "status": "ACTIVE",
    "metadata": {"argo-mon-host": "mon.test.example", "fedprobe-created": "1"}}],
  "server": {"id": "../srv-1?x=1#", "status": "ACTIVE", "name": "n"},
  "images": [{"id": "../../v3/x", "name": "egi-monitoring", "status": "active", "ad:appid": "1017",
    "APPLIANCE_ATTRIBUTES": "{\"eu.egi.cloud.image_ref\": \"registry.egi.eu/egi_vm_images/monitoring:1.0\"}"}],
  "networks": [{"id": "../ports/x", "name": "n", "status": "ACTIVE", "project_id": "0f5c2aa1b7e84d0c9a3d6f00c0ffee01"}],
  "id": "../images/img-appliance", "status": "active",
  "limits": {"absolute": {"maxTotalVolumes": 10, "totalVolumesUsed": 0,
    "maxTotalVolumeGigabytes": 1000, "totalGigabytesUsed": 0}},
  "volume": {"id": "../../servers/srv-1", "name": "fedprobe-vol-x", "status": "in-use", "size": 1,
    "attachments": [{"server_id": "../images/x?y=1", "attachment_id": "../a"}],
    "metadata": {"fedprobe-run": "../r"}},
  "volumes": [{"id": "../../servers/srv-1", "name": "fedprobe-vol-x", "status": "in-use", "size": 1,
    "attachments": [{"server_id": "../images/x?y=1", "attachment_id": "../a"}],
    "metadata": {"fedprobe-run": "../r"}}],
  "volumeAttachments": [{"volumeId": "../../volumes/x", "serverId": "../s"}],
  "volumeAttachment": {"volumeId": "../v", "id": "../a"},
  "security_group": {"id": "../../ports/x", "name": "fedprobe-sg", "security_group_rules": []},
  "floatingip": {"id": "../x?y=1", "floating_ip_address": "192.0.2.7", "port_id": "../p", "status": "ACTIVE"},
  "ports": [{"id": "../../floatingips/x", "network_id": "../n", "device_id": "../d",
    "device_owner": "compute:nova", "security_groups": ["../../g"], "status": "ACTIVE"}]}"#;

struct Front {
    /// Every request line seen (`METHOD path?query`).
    seen: Arc<Mutex<Vec<String>>>,
    /// Whether the other host of a redirect saw the token.
    leaked: Arc<AtomicBool>,
}

/// Read one request (head and a Content-Length body); None on EOF.
async fn read_request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut raw = head
        .replacen("\r\n", "\r\nConnection: close\r\n", 1)
        .into_bytes();
    raw.extend_from_slice(&buf[head_end..]);
    Some((head, raw))
}

fn reply(code: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {code}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// A listener on 127.0.0.1 that notes whether a request carried a token.
async fn other_host(leaked: Arc<AtomicBool>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            if let Some((head, _)) = read_request(&mut s).await {
                if head.to_ascii_lowercase().contains("x-auth-token") {
                    leaked.store(true, Ordering::SeqCst);
                }
                let _ = s
                    .write_all(&reply("200 OK", "application/json", b"{}"))
                    .await;
            }
        }
    });
    addr
}

/// `swift`: a Swift request, whose JSON answers are arrays.
async fn hostile(s: &mut TcpStream, a: Answer, own: &str, other: SocketAddr, swift: bool) {
    let json = "application/json";
    let (wrong, ids) = match swift {
        true => (SWIFT_WRONG_TYPES, SWIFT_PATH_IDS),
        false => (WRONG_TYPES, PATH_IDS),
    };
    let bytes = match a {
        Answer::Huge => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 73400320\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b' '; 64 * 1024];
            for _ in 0..(70 * 16) {
                if s.write_all(&block).await.is_err() {
                    return;
                }
            }
            return;
        }
        Answer::Endless => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n[\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // Bounded: at most a minute of trickle.
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(b"1\r\n \r\n").await.is_err() {
                    return;
                }
            }
            return;
        }
        Answer::Deep => reply(
            "200 OK",
            json,
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes(),
        ),
        Answer::WrongTypes => reply("200 OK", json, wrong.as_bytes()),
        Answer::Latin1Page => reply(
            "500 Internal Server Error",
            "text/html; charset=iso-8859-1",
            b"<html><head><title>Erreur interne du serveur \xe9t\xe9</title></head></html>",
        ),
        Answer::BadUtf8 => reply(
            "200 OK",
            json,
            b"{\"id\": \"\xff\xfe\", \"server\": {\"id\": \"\xc3\x28\"}, \"version\": \"\xe9\"}",
        ),
        Answer::PathIds => reply("200 OK", json, ids.as_bytes()),
        Answer::RedirectLoop => {
            format!("HTTP/1.1 302 Found\r\nlocation: {own}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
        }
        Answer::RedirectAway => format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{other}/stolen\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .into_bytes(),
        Answer::Reset => {
            let _ = s.set_zero_linger();
            return;
        }
    };
    let _ = s.write_all(&bytes).await;
}

/// A front on 127.0.0.1: the first (or `#N`th, see [`ordinal`]) request of
/// `method` to a path [`path_matches`] `pattern` gets `answer` (a redirect
/// loop: that one and every later one), everything else goes to `upstream`.
async fn front(
    listener: TcpListener,
    upstream: String,
    target: (&'static str, &'static str),
    answer: Answer,
) -> Front {
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let leaked = Arc::new(AtomicBool::new(false));
    let other = other_host(leaked.clone()).await;
    let (pattern, nth) = ordinal(target.1);
    let matched = Arc::new(AtomicUsize::new(0));
    let (seen2, base2) = (seen.clone(), base.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (seen, matched, base) = (seen2.clone(), matched.clone(), base2.clone());
            tokio::spawn(async move {
                let Some((head, raw)) = read_request(&mut s).await else {
                    return;
                };
                let line = head.lines().next().unwrap_or("").to_string();
                let mut parts = line.split(' ');
                let (m, target_path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                seen.lock().unwrap().push(format!("{m} {target_path}"));
                let path_only = target_path.split('?').next().unwrap_or("");
                let hit = m == target.0
                    && path_matches(pattern, path_only)
                    && match matched.fetch_add(1, Ordering::SeqCst) + 1 {
                        n if answer == Answer::RedirectLoop => n >= nth,
                        n => n == nth,
                    };
                if hit {
                    let own = format!("{base}{target_path}");
                    let swift = path_only.contains("/swift/");
                    hostile(&mut s, answer, &own, other, swift).await;
                    return;
                }
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                if up.write_all(&raw).await.is_err() {
                    return;
                }
                let mut back = Vec::new();
                let _ = up.read_to_end(&mut back).await;
                let _ = s.write_all(&back).await;
            });
        }
    });
    Front { seen, leaked }
}

/// The emulated site behind the front.
#[derive(Clone, Copy, Debug)]
enum Site {
    /// The wiremock cloud: Keystone, Nova, Glance, Neutron.
    Mock,
    /// fakecloud: the same and Cinder and Swift, with state.
    Fake,
}

/// A running site, kept for the length of a run.
enum Behind {
    Mock(MockCloud),
    /// With the directory of the access-token file.
    Fake(fakecloud::FakeCloud, tempfile::TempDir),
}

impl Behind {
    /// The probe's command line, with `-t t`.
    fn argv(&self, t: u64, extra: &[&str]) -> Vec<String> {
        let mut argv = match self {
            Behind::Mock(c) => {
                let mut argv = c.argv(&[]);
                argv[1] = t.to_string();
                argv
            }
            Behind::Fake(c, dir) => {
                let mut argv: Vec<String> = vec![
                    "-t".into(),
                    t.to_string(),
                    "--endpoint".into(),
                    c.keystone(0),
                    "--identity-provider".into(),
                    fakecloud::fixtures::IDP.into(),
                ];
                // The access token, unless `extra` asks for an OIDC grant.
                if !extra.contains(&"--client-id") {
                    argv.push("--access-token".into());
                    argv.push(dir.path().join("oidc").display().to_string());
                }
                argv
            }
        };
        // `{base}`: the site's address (the front); `{dir}`: its files.
        let (base, dir) = match self {
            Behind::Mock(_) => (String::new(), String::new()),
            Behind::Fake(c, d) => (c.base().to_string(), d.path().display().to_string()),
        };
        argv.extend(
            extra
                .iter()
                .map(|s| s.replace("{base}", &base).replace("{dir}", &dir)),
        );
        argv
    }
}

/// What fakecloud does not serve, answered by its hook: an admin's view of
/// the identity providers (check_token_auth's AUTH-18 lists them and then
/// each one's protocols) and the registry's image list naming the site's
/// base image (check_appliances' APPL-01; fakecloud's own fixture).
fn beside_fakecloud() -> fakecloud::Override {
    Arc::new(move |r: &fakecloud::Req| {
        let json = |body: String| Some(fakecloud::http::raw(200, "application/json", body));
        let p: Vec<&str> = r.path.iter().map(String::as_str).collect();
        let idp = fakecloud::fixtures::IDP;
        match p.as_slice() {
            ["registry", "ops.json"] => json(fakecloud::fixtures::image_list("ops").to_string()),
            ["s0", "identity", "v3", "OS-FEDERATION", "identity_providers"] => json(
                serde_json::json!({"identity_providers": [{"id": idp, "enabled": true}]})
                    .to_string(),
            ),
            ["s0", "identity", "v3", "OS-FEDERATION", "identity_providers", i, "protocols"]
                if *i == idp =>
            {
                json(
                    r#"{"protocols": [{"id": "openid", "remote_id_attribute": "HTTP_OIDC_ISS"}]}"#
                        .into(),
                )
            }
            _ => None,
        }
    })
}

/// The site behind a front hostile at `stage`; the site's catalog names
/// the front.
async fn cloud(site: Site, stage: (&'static str, &'static str), answer: Answer) -> (Behind, Front) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    match site {
        Site::Mock => {
            let c = MockCloud::start_at(Some(base), None).await;
            let f = front(listener, c.server.uri(), stage, answer).await;
            (Behind::Mock(c), f)
        }
        Site::Fake => {
            let opts = fakecloud::Options {
                boot_delay: Duration::from_millis(200),
                ..fakecloud::Options::default()
            };
            let hook = beside_fakecloud();
            let c = fakecloud::FakeCloud::start_advertising(opts, Some(hook), Some(base))
                .await
                .expect("start fakecloud");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("oidc"), &c.cloud.access_token).unwrap();
            std::fs::write(dir.path().join("secret"), &c.cloud.client_secret).unwrap();
            let f = front(listener, format!("http://{}", c.addr), stage, answer).await;
            (Behind::Fake(c, dir), f)
        }
    }
}

/// A DELETE to one of [`DELETE_PATHS`] (fakecloud's `/sN` first or not),
/// with no query.
fn delete_path_ok(p: &str) -> bool {
    // The one query a probe adds itself: IM's forced destroy.
    let p = match p.strip_suffix("?force=true") {
        Some(q) if q.starts_with("/im/") => q,
        _ => p,
    };
    if p.contains('?') || p.contains('#') {
        return false;
    }
    let rest = match p.strip_prefix("/s").and_then(|r| r.split_once('/')) {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("/{rest}")
        }
        _ => p.to_string(),
    };
    DELETE_PATHS.iter().any(|t| path_matches(t, &rest))
}

/// `later`: the ids of this stage and those after it. A 2xx with a garbage
/// body to a request whose body is not read (an upload, a delete) shows
/// only in a later stage.
fn check<P: Probe>(
    t: u64,
    (m, p): (&str, &str),
    later: &[&str],
    a: Answer,
    r: &ProbeResult,
    f: &Front,
) {
    let (probe, label) = (P::BIN, P::LABEL);
    let stage = later[0];
    let out = nagios::render(r, 1);
    let case = format!("{probe} {stage} {m} {p} {a:?}");
    assert!(out.len() < 16 * 1024, "{case}: {} bytes", out.len());
    let first = out.lines().next().unwrap_or("");
    if std::env::var_os("HOSTILE_SHOW").is_some() {
        eprintln!("{case} ({:.1}s): {first}", r.duration.as_secs_f64());
    }
    assert!(first.starts_with(&format!("{label} ")), "{case}: {first}");
    assert!(
        r.duration <= Duration::from_secs(t) + Duration::from_millis(500),
        "{case}: took {:?}",
        r.duration
    );
    // Whatever was created had its deletion attempted.
    for res in &r.resources {
        assert_ne!(res.cleanup, Cleanup::Leaked, "{case}: {out}");
    }
    assert!(
        !f.leaked.load(Ordering::SeqCst),
        "{case}: token sent to another host: {out}"
    );
    // No request left its one path segment per id.
    for line in f.seen.lock().unwrap().iter() {
        assert!(
            !line.contains("/../") && !line.ends_with("/.."),
            "{case}: {line}"
        );
        if let Some(p) = line.strip_prefix("DELETE ") {
            assert!(delete_path_ok(p), "{case}: {line}");
        }
    }
    if a == Answer::PathIds {
        // Escaped ids may well be accepted: only the paths are checked.
        return;
    }
    assert!(
        matches!(r.status, Status::Critical | Status::Unknown),
        "{case}: {out}"
    );
    assert!(
        later.iter().any(|s| first.contains(s)),
        "{case}: stage not named: {first}"
    );
}

type Stages = &'static [(&'static str, &'static str, &'static str)];

async fn run_stage<P: Probe>(
    site: Site,
    t: u64,
    stages: Stages,
    i: usize,
    a: Answer,
    extra: &'static [&'static str],
) {
    let (_, m, p) = stages[i];
    let later: Vec<&str> = stages[i..].iter().map(|s| s.0).collect();
    let (c, f) = cloud(site, (m, p), a).await;
    let r = run::<P>(&c.argv(t, extra)).await;
    check::<P>(t, (m, p), &later, a, &r, &f);
}

/// Unprovoked, the probe passes behind the front within `-t`, and sends
/// every request the table names: each hostile case hits what it says.
async fn baseline<P: Probe>(site: Site, t: u64, stages: Stages, extra: &'static [&'static str]) {
    let (c, f) = cloud(site, ("NONE", "/"), Answer::Reset).await;
    let r = run::<P>(&c.argv(t, extra)).await;
    let out = nagios::render(&r, 1);
    assert!(matches!(r.status, Status::Ok), "{}: {out}", P::BIN);
    eprintln!("{} unprovoked behind the front: {:?}", P::BIN, r.duration);
    assert!(
        r.duration < Duration::from_secs(t) * 2 / 3,
        "{}: took {:?}",
        P::BIN,
        r.duration
    );
    let seen = f.seen.lock().unwrap();
    for (id, m, p) in stages.iter().filter(|s| s.1 != NO_REQUEST) {
        let (pattern, nth) = ordinal(p);
        let sent = seen
            .iter()
            .filter(|l| {
                l.split_once(' ').is_some_and(|(lm, lp)| {
                    lm == *m && path_matches(pattern, lp.split('?').next().unwrap_or(""))
                })
            })
            .count()
            >= nth;
        assert!(sent, "{}: {id} {m} {p} never sent: {seen:#?}", P::BIN);
    }
}

/// Every stage of `P` with every answer, `-t t`, behind `site`.
async fn all_stages<P: Probe>(site: Site, t: u64, stages: Stages, extra: &'static [&'static str]) {
    baseline::<P>(site, t, stages, extra).await;
    // A few at a time: the huge answers each stream 70 MB.
    let gate = Arc::new(tokio::sync::Semaphore::new(6));
    let mut set = tokio::task::JoinSet::new();
    for i in (0..stages.len()).filter(|i| stages[*i].1 != NO_REQUEST) {
        for a in ANSWERS {
            let gate = gate.clone();
            set.spawn(async move {
                let _p = gate.acquire().await.unwrap();
                run_stage::<P>(site, t, stages, i, a, extra).await
            });
        }
    }
    let mut failed = Vec::new();
    while let Some(j) = set.join_next().await {
        if let Err(e) = j {
            failed.push(
                e.try_into_panic()
                    .ok()
                    .and_then(|p| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "cancelled".into()),
            );
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_lifecycle_survives_a_hostile_answer_at_every_stage() {
    all_stages::<VmLifecycle>(
        Site::Mock,
        T,
        VM_STAGES,
        &[
            "--registry-image",
            "registry.egi.eu/egi_vm_images/monitoring:1.0",
            "--argo-host-name",
            "mon.test.example",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_upload_survives_a_hostile_answer_at_every_stage() {
    all_stages::<ImageUpload>(Site::Mock, T, IMG_STAGES, &["--size", "4K"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_storage_survives_a_hostile_answer_at_every_stage() {
    all_stages::<BlockStorage>(
        Site::Fake,
        T_BLOCK,
        BLK_STAGES,
        &[
            "--registry-image",
            "egi.ubuntu.22.04",
            "--argo-host-name",
            "blk-fake",
            "--volume-timeout",
            "3s",
            "--vm-timeout",
            "3s",
            "--poll-interval",
            "100ms",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_survives_a_hostile_answer_at_every_stage() {
    all_stages::<NetworkProbe>(
        Site::Fake,
        T_BLOCK,
        NET_STAGES,
        &[
            "--registry-image",
            "egi.ubuntu.22.04",
            "--hostname",
            "net-fake",
            "--vm-timeout",
            "3s",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_a_hostile_answer_at_every_stage() {
    all_stages::<Usage>(Site::Fake, T, USAGE_STAGES, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_survives_a_hostile_answer_at_every_stage() {
    all_stages::<Orchestrator>(
        Site::Fake,
        T_BLOCK,
        ORCH_STAGES,
        &[
            "--orchestrator",
            "{base}/im",
            "--orchestrator-user",
            fakecloud::im::USER,
            "--orchestrator-password-file",
            "{dir}/secret",
            "--registry-image",
            "egi.ubuntu.22.04",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_survives_a_hostile_answer_at_every_stage() {
    all_stages::<ObjectStorage>(Site::Fake, T, OBJ_STAGES, &["--size", "4K"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_survives_a_hostile_answer_at_every_stage() {
    all_stages::<TokenAuth>(Site::Fake, T, TOKEN_STAGES, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_by_an_oidc_grant_survives_a_hostile_answer_at_every_stage() {
    all_stages::<TokenAuth>(
        Site::Fake,
        T,
        TOKEN_GRANT_STAGES,
        &[
            "--client-id",
            fakecloud::fixtures::CLIENT_ID,
            "--client-secret",
            "{dir}/secret",
            "--oidc-issuer",
            "{base}/oidc",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_survives_a_hostile_answer_at_every_stage() {
    all_stages::<Glue>(
        Site::Fake,
        T,
        GLUE_STAGES,
        &[
            "--glue-url",
            "{base}/s0/glue.json",
            "--is-url",
            "{base}/is",
            "--site",
            "DEMO-000",
            "--vo",
            "ops",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliances_survives_a_hostile_answer_at_every_stage() {
    all_stages::<Appliances>(
        Site::Fake,
        T,
        APPL_STAGES,
        &["--appliances-list", "{base}/registry/ops.json"],
    )
    .await;
}

#[test]
fn a_delete_path_holds_one_id_per_segment() {
    for ok in [
        "/compute/v2.1/servers/srv-1",
        "/s0/compute/v2.1/servers/ab/os-volume_attachments/..%2Fv",
        "/s12/volume/v3/p/volumes/..%2F..%2Fservers%2Fsrv-1",
        "/s0/swift/v1/AUTH_p/fedprobe-1/probe-1.bin",
        "/s0/swift/v1/AUTH_p/fedprobe-1",
        "/image/v2/images/img-1",
        "/s0/network/v2.0/floatingips/f-1",
        "/s0/network/v2.0/security-groups/..%2Fports",
        "/im/infrastructures/inf-1?force=true",
    ] {
        assert!(delete_path_ok(ok), "{ok}");
    }
    for steered in [
        "/compute/v2.1/servers/srv-1/x",
        "/s0/volume/v3/p/servers/x",
        "/s0/volume/v3/p/volumes/..",
        "/s0/volume/v3/p/volumes/v?x=1",
        "/s0/swift/v1/AUTH_p/c/o/extra",
        "/s0/swift/v1/AUTH_p",
        "/sx/compute/v2.1/servers/srv-1",
        "/image/v2/images/",
        "/s0/network/v2.0/floatingips/f-1/x",
        "/s0/network/v2.0/ports/p-1",
        "/im/infrastructures/inf-1?force=false",
        "/s0/compute/v2.1/servers/srv-1?force=true",
    ] {
        assert!(!delete_path_ok(steered), "{steered}");
    }
}
