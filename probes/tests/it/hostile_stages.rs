//! A hostile site at every stage, not only at login: for each stage of
//! check_vm_lifecycle and check_image_upload, one request of that stage is
//! answered with garbage (huge, endless, deeply nested, wrongly typed, badly
//! encoded, path-like ids, redirects, resets) by a front that forwards all
//! else to the mock cloud. Every run must end as a valid Nagios result
//! under 16 KB, within -t, naming the stage, with cleanup attempted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::mockcloud::{run, MockCloud};
use probes::checks::image_upload::ImageUpload;
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::model::Cleanup;
use probes::render::nagios;
use probes::{ProbeResult, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: u64 = 6;

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

/// (stage id, method, path) of the first request of each stage.
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

/// One JSON object with every field a client reads, each of a wrong type.
const WRONG_TYPES: &str = r#"{"version": 7, "versions": "x", "flavors": {"id": 1},
  "servers": 3, "server": [true], "images": {"a": 1}, "id": 5, "status": [],
  "networks": "none", "size": "big", "checksum": 9}"#;

/// The same fields with ids a naive client would put in a path as is.
const PATH_IDS: &str = r#"{"version": {"id": "v2.1", "version": "2.90", "min_version": "2.1"},
  "flavors": [{"id": "../8", "name": "m1.probe", "vcpus": 1, "ram": 512, "disk": 8}],
  "servers": [{"id": "../../flavors/8", "name": "fedprobe-0000000001", "status": "ACTIVE",
    "metadata": {"argo-mon-host": "mon.test.example", "fedprobe-created": "1"}}],
  "server": {"id": "../srv-1?x=1#", "status": "ACTIVE", "name": "n"},
  "images": [{"id": "../../v3/x", "name": "egi-monitoring", "status": "active", "ad:appid": "1017",
    "APPLIANCE_ATTRIBUTES": "{\"eu.egi.cloud.image_ref\": \"registry.egi.eu/egi_vm_images/monitoring:1.0\"}"}],
  "networks": [{"id": "../ports/x", "name": "n", "status": "ACTIVE", "project_id": "0f5c2aa1b7e84d0c9a3d6f00c0ffee01"}],
  "id": "../images/img-appliance", "status": "active"}"#;

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

async fn hostile(s: &mut TcpStream, a: Answer, own: &str, other: SocketAddr) {
    let json = "application/json";
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
        Answer::WrongTypes => reply("200 OK", json, WRONG_TYPES.as_bytes()),
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
        Answer::PathIds => reply("200 OK", json, PATH_IDS.as_bytes()),
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

/// A front on 127.0.0.1: the first `method path` request gets `answer`
/// (a redirect loop: every one), everything else goes to `upstream`.
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
    let fired = Arc::new(AtomicBool::new(false));
    let (seen2, base2) = (seen.clone(), base.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (seen, fired, base) = (seen2.clone(), fired.clone(), base2.clone());
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
                    && path_only.trim_end_matches('/') == target.1
                    && (answer == Answer::RedirectLoop || !fired.swap(true, Ordering::SeqCst));
                if hit {
                    hostile(&mut s, answer, &format!("{base}{target_path}"), other).await;
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

/// The mock cloud behind a front hostile at `stage`.
async fn cloud(stage: (&'static str, &'static str), answer: Answer) -> (MockCloud, Front) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let c = MockCloud::start_at(Some(base), None).await;
    let f = front(listener, c.server.uri(), stage, answer).await;
    (c, f)
}

/// `later`: the ids of this stage and those after it. A 2xx with a garbage
/// body to a request whose body is not read (an upload, a delete) shows
/// only in a later stage.
fn check(probe: &str, later: &[&str], a: Answer, r: &ProbeResult, f: &Front, label: &str) {
    let stage = later[0];
    let out = nagios::render(r, 1);
    let case = format!("{probe} {stage} {a:?}");
    assert!(out.len() < 16 * 1024, "{case}: {} bytes", out.len());
    let first = out.lines().next().unwrap_or("");
    assert!(first.starts_with(&format!("{label} ")), "{case}: {first}");
    assert!(
        r.duration <= Duration::from_secs(T) + Duration::from_millis(500),
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
            let rest = p
                .trim_start_matches("/compute/v2.1/servers/")
                .trim_start_matches("/image/v2/images/");
            assert!(!rest.contains('/') && !rest.contains('?'), "{case}: {line}");
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

async fn run_stage<P: probes::probe::Probe>(
    probe: &'static str,
    label: &'static str,
    stages: &'static [(&'static str, &'static str, &'static str)],
    i: usize,
    a: Answer,
    extra: &'static [&'static str],
) {
    let (_, m, p) = stages[i];
    let later: Vec<&str> = stages[i..].iter().map(|s| s.0).collect();
    let (c, f) = cloud((m, p), a).await;
    let t = T.to_string();
    let mut argv = c.argv(extra);
    argv[1] = t;
    let r = run::<P>(&argv).await;
    check(probe, &later, a, &r, &f, label);
}

async fn all_stages(
    probe: &'static str,
    label: &'static str,
    stages: &'static [(&'static str, &'static str, &'static str)],
    extra: &'static [&'static str],
    vm: bool,
) {
    // A few at a time: the huge answers each stream 70 MB.
    let gate = Arc::new(tokio::sync::Semaphore::new(6));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..stages.len() {
        for a in ANSWERS {
            let gate = gate.clone();
            set.spawn(async move {
                let _p = gate.acquire().await.unwrap();
                if vm {
                    run_stage::<VmLifecycle>(probe, label, stages, i, a, extra).await
                } else {
                    run_stage::<ImageUpload>(probe, label, stages, i, a, extra).await
                }
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
    all_stages(
        "check_vm_lifecycle",
        "VM_LIFECYCLE",
        VM_STAGES,
        &[
            "--registry-image",
            "registry.egi.eu/egi_vm_images/monitoring:1.0",
            "--argo-host-name",
            "mon.test.example",
        ],
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_upload_survives_a_hostile_answer_at_every_stage() {
    all_stages(
        "check_image_upload",
        "IMAGE_UPLOAD",
        IMG_STAGES,
        &["--size", "4K"],
        false,
    )
    .await;
}
