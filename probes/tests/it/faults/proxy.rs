//! A CONNECT proxy on 127.0.0.1 that the probe reaches through
//! `HTTPS_PROXY` (reqwest honours it), standing in for a bad network where
//! `tc netem` is not available: it delays every chunk, or resets tunnels to
//! one port at random. It tunnels to 127.0.0.1 only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to each tunnel.
#[derive(Clone, Debug)]
pub enum Weather {
    /// Each chunk waits this long, both ways (latency on every round trip).
    Slow(Duration),
    /// Tunnels to `port`: with probability `per_mille` the tunnel is reset
    /// at a random point, after answer chunk 3 + (0..`span`); chunks 1-2 are
    /// the TLS handshake, so `span` 1 cuts the first answer. A tunnel that
    /// ends before its point passes whole.
    Resets {
        port: u16,
        per_mille: u32,
        span: u32,
    },
}

pub struct Proxy {
    pub url: String,
    task: JoinHandle<()>,
    pub tunnels: Arc<AtomicU64>,
    pub resets: Arc<AtomicU64>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A small deterministic generator (xorshift), seeded per proxy: the soak
/// prints its seed so a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

pub async fn start(weather: Weather, seed: u64) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tunnels = Arc::new(AtomicU64::new(0));
    let resets = Arc::new(AtomicU64::new(0));
    let rng = Arc::new(Mutex::new(Rng(seed | 1)));
    let (t, r) = (tunnels.clone(), resets.clone());
    let task = tokio::spawn(async move {
        // Ends when the proxy is dropped (the task is aborted).
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let roll = rng.lock().unwrap().next();
            let (weather, t, r) = (weather.clone(), t.clone(), r.clone());
            tokio::spawn(async move {
                let _ = tunnel(client, weather, roll, t, r).await;
            });
        }
    });
    Proxy {
        url,
        task,
        tunnels,
        resets,
    }
}

async fn tunnel(
    mut client: TcpStream,
    weather: Weather,
    roll: u64,
    tunnels: Arc<AtomicU64>,
    resets: Arc<AtomicU64>,
) -> std::io::Result<()> {
    // The CONNECT request head, at most 8 KiB.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    let port: u16 = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    let loopback = target.starts_with("127.0.0.1:") || target.starts_with("localhost:");
    if !loopback || port == 0 {
        client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let upstream = TcpStream::connect(("127.0.0.1", port)).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tunnels.fetch_add(1, Ordering::Relaxed);
    let (delay, reset) = match weather {
        Weather::Slow(d) => (d, None),
        Weather::Resets {
            port: p,
            per_mille,
            span,
        } => {
            let cut = p == port && ((roll % 1000) as u32) < per_mille;
            let at = 3 + (roll / 1000 % span.max(1) as u64) as u32;
            (Duration::ZERO, cut.then_some(at))
        }
    };
    if reset.is_some() {
        // closed with RST, not FIN, when the tunnel is cut
        client.set_zero_linger()?;
    }
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let up = pump(cr, uw, delay, None);
    let down = pump(ur, cw, delay, reset);
    tokio::pin!(up, down);
    tokio::select! {
        d = &mut down => {
            if matches!(d, Ok(true)) {
                // dropping `up` drops the client's read half: the socket closes now
                resets.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = up.await;
            }
        }
        _ = &mut up => {
            let _ = down.await;
        }
    }
    Ok(())
}

/// Copy `from` to `to`, each chunk after `delay`. With `reset` Some(n), stop
/// at chunk n, not sending it (an answer cut short), leaving the close to
/// the caller. True when it reset.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    reset: Option<u32>,
) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut chunks = 0u32;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(false);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        chunks += 1;
        // Chunks 1-2 are the server's handshake flights; the third carries
        // (part of) the first HTTP answer.
        if reset.is_some_and(|at| chunks >= at) {
            // no FIN first: the socket is reset when the read half drops too
            to.forget();
            return Ok(true);
        }
        to.write_all(&buf[..n]).await?;
    }
}
