//! fakecloud: an emulated OpenStack federated cloud served in-process on
//! loopback (plain http on 127.0.0.1; https under the certificate-expiring
//! fault, `tls`): Keystone with OIDC federation and
//! its OIDC provider, Nova, Neutron, Cinder, Glance, Swift, GLUE JSON, the
//! information-system API, accounting and the federation's orchestrator
//! (IM's REST subset), in the shapes the real services
//! answer with. Any number of virtual sites, switchable faults. A fixture
//! for demos, benchmarks and tests, not a substitute for the real services.
//!
//! Layering (each module imports only those below it):
//! `lib` (listener) -> `router` -> services (`keystone nova neutron cinder
//! glance swift infosys accounting im`) -> `state` -> {`http`, `fixtures`, `faults`,
//! `dates`}.

pub mod accounting;
mod cinder;
pub mod dates;
pub mod faults;
pub mod fixtures;
mod glance;
pub mod http;
pub mod im;
mod infosys;
mod keystone;
mod neutron;
mod nova;
pub mod router;
pub mod state;
mod swift;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// Largest read buffer of a demo connection (hyper's floor is 8 KiB).
const READ_BUF_MAX: usize = 16 * 1024;

pub use faults::{Fault, Faults};
pub use http::{Req, Resp};
pub use router::Override;
pub use state::{site_name, Cloud};

#[derive(Debug, Clone)]
pub struct Options {
    pub sites: usize,
    /// Time a new server stays in BUILD.
    pub boot_delay: Duration,
    pub faults: Faults,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sites: 1,
            boot_delay: Duration::from_secs(1),
            faults: Faults::default(),
        }
    }
}

/// A running fake cloud; dropping it stops the server.
pub struct FakeCloud {
    pub addr: SocketAddr,
    pub cloud: Arc<Cloud>,
    /// The CA to trust when the site is served over https.
    pub ca_pem: Option<String>,
    shutdown: watch::Sender<bool>,
}

impl FakeCloud {
    /// Serve on 127.0.0.1 at a free port.
    pub async fn start(opts: Options) -> std::io::Result<FakeCloud> {
        FakeCloud::start_with(opts, None).await
    }

    /// As [`start`](Self::start), asking `hook` first for every request.
    pub async fn start_with(opts: Options, hook: Option<Override>) -> std::io::Result<FakeCloud> {
        FakeCloud::start_advertising(opts, hook, None).await
    }

    /// As [`start_with`](Self::start_with), with the catalog (and every other
    /// URL the cloud hands out) under `public_base` (`http://HOST:PORT`)
    /// instead of its own address: for a test's proxy in front of it. `None`
    /// is the own address.
    pub async fn start_advertising(
        opts: Options,
        hook: Option<Override>,
        public_base: Option<String>,
    ) -> std::io::Result<FakeCloud> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tls = if opts.faults.has(Fault::CertificateExpiring) {
            Some(tls::expiring(tls::EXPIRING_DAYS)?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let base = public_base
            .map(|b| b.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("{scheme}://{addr}"));
        let cloud = Arc::new(Cloud::new(base, opts.sites, opts.boot_delay, opts.faults));
        let (shutdown, rx) = watch::channel(false);
        let acceptor = tls.map(|t| t.acceptor);
        tokio::spawn(serve(listener, cloud.clone(), hook, acceptor, rx));
        Ok(FakeCloud {
            addr,
            cloud,
            ca_pem,
            shutdown,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` under the certificate-expiring
    /// fault), or the public base it was started with
    pub fn base(&self) -> &str {
        &self.cloud.base
    }

    pub fn sites(&self) -> usize {
        self.cloud.sites.len()
    }

    /// Site `i`'s Keystone v3 URL.
    pub fn keystone(&self, i: usize) -> String {
        self.cloud.keystone(i)
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// Accept until told to stop; each connection also ends on stop.
async fn serve(
    listener: tokio::net::TcpListener,
    cloud: Arc<Cloud>,
    hook: Option<Override>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    rx: watch::Receiver<bool>,
) {
    let mut stop = rx.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, say: do not spin while it lasts.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (c, h, mut stop) = (cloud.clone(), hook.clone(), rx.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| router::handle(c.clone(), h.clone(), req));
            // A small read buffer: hyper grows it to 400 KiB on a fast upload
            // and keeps it; a thousand demo sites uploading at once would hold
            // that much each.
            let mut http = hyper::server::conn::http1::Builder::new();
            http.max_buf_size(READ_BUF_MAX);
            let Some(acceptor) = tls else {
                let conn = http
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                return;
            };
            // A client that never finishes the handshake holds nothing for long.
            let shake = tokio::time::timeout(HANDSHAKE_WAIT, acceptor.accept(stream));
            let Ok(Ok(stream)) = shake.await else {
                return;
            };
            let conn = http
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}
