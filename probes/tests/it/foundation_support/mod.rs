//! Shared by the foundation robustness tests: run the real `check_token_auth`
//! binary, raw TCP fixtures for faults wiremock cannot produce (hangs,
//! trickles, resets), and the demo site's Keystone (fakecloud) for the login.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_check_token_auth");
pub const EXCHANGE_PATH: &str = "/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth";

/// What one probe run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }

    /// Properties every run must have, whatever happened.
    pub fn assert_well_formed(&self, label: &str) {
        assert!(
            self.first_line().starts_with(&format!("{label} ")),
            "first line does not start with {label}: {self:#?}"
        );
        assert!(self.stdout.len() < 16 * 1024, "stdout over 16 KB");
        for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!self.stdout.contains(bad), "{bad} in stdout: {self:#?}");
            assert!(!self.stderr.contains(bad), "{bad} in stderr: {self:#?}");
        }
    }
}

/// A token file in `dir`.
pub fn token_file(dir: &tempfile::TempDir, token: &str) -> PathBuf {
    let p = dir.path().join("token");
    std::fs::write(&p, token).expect("write token file");
    p
}

pub fn command(args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE")
        .kill_on_drop(true);
    cmd
}

/// Run the probe to completion (with a generous safety bound).
pub async fn run(args: &[String]) -> Run {
    let t0 = Instant::now();
    let child = command(args).spawn().expect("spawn check_token_auth");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("probe did not end within 60 s")
        .expect("wait for probe");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: t0.elapsed(),
    }
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Base arguments: endpoint, token file, identity provider and protocol fixed.
pub fn probe_args(endpoint: &str, token: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[
        "--endpoint",
        endpoint,
        "--access-token",
        &token.to_string_lossy(),
        "--identity-provider",
        "egi.eu",
        "--protocol",
        "openid",
    ]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A raw TCP server on 127.0.0.1; `serve` handles each connection.
pub async fn tcp_server<F, Fut>(serve: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock));
        }
    });
    format!("http://{addr}/v3")
}

/// Read (and discard) until the request head is in.
pub async fn read_head(sock: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Accepts, reads the request, never answers (keeps the socket open).
pub async fn hanging_server() -> String {
    hanging_server_counted().await.0
}

/// [`hanging_server`], also counting the requests that came in.
pub async fn hanging_server_counted() -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let endpoint = tcp_server(move |mut sock| {
        let count = count.clone();
        async move {
            read_head(&mut sock).await;
            count.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(600)).await;
            drop(sock);
        }
    })
    .await;
    (endpoint, seen)
}

/// Sends a 201 with a subject token and a 1000-byte body, one byte a second.
pub async fn trickling_server() -> String {
    tcp_server(|mut sock| async move {
        read_head(&mut sock).await;
        let head = "HTTP/1.1 201 Created\r\nX-Subject-Token: trickle-token-value-0001\r\n\
                    Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..1000 {
            if sock.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
}

/// Reads the request, then resets the connection (SO_LINGER 0 close).
pub async fn resetting_server() -> String {
    tcp_server(|mut sock| async move {
        read_head(&mut sock).await;
        let _ = sock.set_zero_linger();
        drop(sock);
    })
    .await
}

/// The demo site's Keystone (fakecloud, on 127.0.0.1), which logs in the
/// monitor holding `access_token` of its cloud: federated exchange, the
/// project list, a scoped token with a full catalog, token validation.
/// `hook` answers first, for a test that puts a fault at one path.
/// The endpoint is `keystone(0)`.
pub async fn fake_keystone(hook: Option<fakecloud::Override>) -> fakecloud::FakeCloud {
    fakecloud::FakeCloud::start_with(fakecloud::Options::default(), hook)
        .await
        .expect("start fakecloud on 127.0.0.1")
}
