//! The floor of a demo run's traffic: the HTTP requests a site's guideline
//! run makes (read from a one-site run's report by `ci/bench-harness-floor.sh`),
//! sent by reqwest to a bare hyper server on 127.0.0.1 that answers each
//! with a JSON body of the recorded size, for N sites in one process. The
//! image is uploaded as generated, hashed (MD5, SHA-512) on both ends, and
//! downloaded and compared, as the probe and Glance must. Nothing else: no
//! cloud state, no probe logic, no evidence, no reports. What a run costs
//! above this is what fedprobe and fakecloud add.
//!
//! `traffic_floor TABLE SITES [RUNS_AT_ONCE] [RUNS_PER_SITE]`; TABLE has one
//! request per line: `run<TAB>method<TAB>request bytes<TAB>answer bytes<TAB>repeat<TAB>kind<TAB>pause ms`
//! (kind: json, upload, download; the pause follows each repetition).
//! Prints `requests=N failures=N`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use md5::Md5;
use sha2::{Digest, Sha512};
use tokio::sync::Semaphore;

const CHUNK: usize = 16 * 1024;

#[derive(Clone)]
struct Call {
    method: reqwest::Method,
    req_bytes: usize,
    resp_bytes: usize,
    repeat: usize,
    kind: String,
    /// Sleep after each repetition: the run's recorded time spread over its
    /// requests, so a run lasts about as long as the probe's did.
    pause: std::time::Duration,
}

/// xorshift64* bytes, as the probe's payload generator makes them.
struct Gen {
    state: u64,
    left: usize,
}

impl Gen {
    fn new(seed: u64, len: usize) -> Gen {
        Gen {
            state: seed | 1,
            left: len,
        }
    }

    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.left == 0 {
            return None;
        }
        let n = self.left.min(CHUNK);
        let mut out = vec![0u8; n];
        for w in out.chunks_mut(8) {
            let mut x = self.state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.state = x;
            let b = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            w.copy_from_slice(&b[..w.len()]);
        }
        self.left -= n;
        Some(out)
    }
}

/// The upload: generated as it is sent, hashed on the way out.
struct Upload {
    gen: Gen,
    md5: Md5,
    sha: Sha512,
}

impl hyper::body::Body for Upload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.gen.next_chunk().map(|c| {
            this.md5.update(&c);
            this.sha.update(&c);
            Ok(Frame::data(Bytes::from(c)))
        }))
    }
}

fn json_of(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n.max(8));
    v.extend_from_slice(b"{\"p\":\"");
    v.resize(n.max(8) - 2, b'a');
    v.extend_from_slice(b"\"}");
    v
}

async fn answer(req: Request<Incoming>, image: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
    let q = req.uri().query().unwrap_or("");
    let n: usize = q
        .strip_prefix("n=")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let upload = req.uri().path() == "/upload";
    let download = req.uri().path() == "/download";
    let mut body = req.into_body();
    let (mut md5, mut sha) = (Md5::new(), Sha512::new());
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(d) = frame.data_ref() {
            if upload {
                md5.update(d);
                sha.update(d);
            }
        }
    }
    if upload {
        std::hint::black_box((md5.finalize(), sha.finalize()));
        return Ok(Response::new(Full::new(Bytes::new())));
    }
    if download {
        return Ok(Response::new(Full::new(image)));
    }
    Ok(Response::new(Full::new(Bytes::from(json_of(n)))))
}

async fn serve(listener: tokio::net::TcpListener, image: Bytes) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let image = image.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |r| answer(r, image.clone()));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.max_buf_size(16 * 1024);
            let _ = http
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// One probe run: its own client (its own connection), its calls in order.
async fn run(
    base: String,
    calls: Vec<Call>,
    seed: u64,
    tls: rustls::ClientConfig,
    sent: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
) {
    // TLS built once per process and handed to every client, as the probes
    // do (loading the root store per client costs more than a run's traffic).
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(tls)
        .build()
    else {
        bad.fetch_add(1, Ordering::Relaxed);
        return;
    };
    for c in &calls {
        for _ in 0..c.repeat {
            sent.fetch_add(1, Ordering::Relaxed);
            let ok = match c.kind.as_str() {
                "upload" => {
                    let body = Upload {
                        gen: Gen::new(seed, c.req_bytes),
                        md5: Md5::new(),
                        sha: Sha512::new(),
                    };
                    client
                        .put(format!("{base}/upload"))
                        .body(reqwest::Body::wrap(body))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
                "download" => download(&client, &base, seed, c.resp_bytes).await,
                _ => {
                    let mut rb = client
                        .request(c.method.clone(), format!("{base}/r?n={}", c.resp_bytes))
                        .header("X-Auth-Token", "x".repeat(180));
                    if c.req_bytes > 0 {
                        rb = rb
                            .header("Content-Type", "application/json")
                            .body(json_of(c.req_bytes));
                    }
                    match rb.send().await {
                        Ok(r) => match r.bytes().await {
                            Ok(b) if c.method == reqwest::Method::HEAD || b.is_empty() => true,
                            Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).is_ok(),
                            Err(_) => false,
                        },
                        Err(_) => false,
                    }
                }
            };
            if !ok {
                bad.fetch_add(1, Ordering::Relaxed);
            }
            if !c.pause.is_zero() {
                tokio::time::sleep(c.pause).await;
            }
        }
    }
}

/// The download, compared on the way in against the regenerated payload.
async fn download(client: &reqwest::Client, base: &str, seed: u64, len: usize) -> bool {
    let Ok(mut r) = client.get(format!("{base}/download?n={len}")).send().await else {
        return false;
    };
    let mut gen = Gen::new(seed, len);
    let mut want: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut same = true;
    while let Ok(Some(chunk)) = r.chunk().await {
        let mut i = 0;
        while i < chunk.len() {
            if at == want.len() {
                want = gen.next_chunk().unwrap_or_default();
                at = 0;
                if want.is_empty() {
                    return false;
                }
            }
            let take = (want.len() - at).min(chunk.len() - i);
            same &= want[at..at + take] == chunk[i..i + take];
            at += take;
            i += take;
        }
    }
    same
}

fn parse(table: &str) -> Vec<Vec<Call>> {
    let mut runs: Vec<(String, Vec<Call>)> = Vec::new();
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [run, method, req, resp, repeat, kind, pause_ms] = f[..] else {
            panic!("bad table line: {line}");
        };
        let call = Call {
            method: method.parse().expect("method"),
            req_bytes: req.parse().expect("request bytes"),
            resp_bytes: resp.parse().expect("answer bytes"),
            repeat: repeat.parse().expect("repeat"),
            kind: kind.to_string(),
            pause: std::time::Duration::from_secs_f64(
                pause_ms.parse::<f64>().expect("pause") / 1000.0,
            ),
        };
        match runs.last_mut() {
            Some((r, calls)) if r == run => calls.push(call),
            _ => runs.push((run.to_string(), vec![call])),
        }
    }
    runs.into_iter().map(|(_, c)| c).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let table = std::fs::read_to_string(&args[1]).expect("table");
    let sites: usize = args[2].parse().expect("sites");
    let at_once: usize = args
        .get(3)
        .map_or(800, |a| a.parse().expect("runs at once"));
    let per_site: usize = args.get(4).map_or(5, |a| a.parse().expect("runs per site"));
    let runs = parse(&table);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (sent, bad) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let image_len = runs
            .iter()
            .flatten()
            .filter(|c| c.kind == "download")
            .map(|c| c.resp_bytes)
            .max()
            .unwrap_or(0);
        // What the server stores: the bytes the upload generates (seed 1).
        let mut g = Gen::new(1, image_len);
        let mut image = Vec::with_capacity(image_len);
        while let Some(c) = g.next_chunk() {
            image.extend_from_slice(&c);
        }
        tokio::spawn(serve(listener, Bytes::from(image)));
        let (sent, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let all = Arc::new(Semaphore::new(at_once));
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut sites_done = tokio::task::JoinSet::new();
        for _ in 0..sites {
            let (runs, base, sent, bad, all, tls) = (
                runs.clone(),
                base.clone(),
                sent.clone(),
                bad.clone(),
                all.clone(),
                tls.clone(),
            );
            sites_done.spawn(async move {
                let mine = Arc::new(Semaphore::new(per_site));
                let mut set = tokio::task::JoinSet::new();
                for calls in runs {
                    let (base, sent, bad) = (base.clone(), sent.clone(), bad.clone());
                    let (all, mine, tls) = (all.clone(), mine.clone(), tls.clone());
                    set.spawn(async move {
                        let _m = mine.acquire_owned().await;
                        let _a = all.acquire_owned().await;
                        run(base, calls, 1, tls, sent, bad).await;
                    });
                }
                while set.join_next().await.is_some() {}
            });
        }
        while sites_done.join_next().await.is_some() {}
        (sent.load(Ordering::Relaxed), bad.load(Ordering::Relaxed))
    });
    println!("requests={sent} failures={bad}");
    if bad > 0 {
        std::process::exit(1);
    }
}
