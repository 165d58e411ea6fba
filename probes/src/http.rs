//! The one place the HTTP client is built and requests are sent: rustls,
//! system CAs plus `--ca-cert`/`--ca-path`, every request bounded by the
//! deadline, every failure turned into a [`Fail`] naming what came back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::deadline::{Deadline, WithDeadline};
use crate::fail::Fail;
use crate::model::{HttpFacts, Transport};
use crate::record::Recorder;
use crate::secret::Secret;
use crate::text;

pub const USER_AGENT: &str = concat!("fedprobe/", env!("CARGO_PKG_VERSION"));
/// Largest body we read; larger answers are an error, not an OOM.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    pub ca_certs: Vec<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub insecure: bool,
}

/// Build a client for `tls`. The TLS configuration (root store, verifier) is
/// built once per process and shared: a harness runs thousands of probes.
/// Clients are not shared: their pooled connections belong to the runtime
/// that opened them. Errors are the monitor's (a bad CA file): UNKNOWN.
pub fn build_client(tls: &TlsOptions) -> Result<reqwest::Client, Fail> {
    new_client(cached_tls_config(tls)?, redirect_policy())
}

fn cached_tls_config(tls: &TlsOptions) -> Result<rustls::ClientConfig, Fail> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CONFIGS: Mutex<Option<HashMap<TlsOptions, rustls::ClientConfig>>> = Mutex::new(None);
    let config = {
        let mut configs = CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
        let map = configs.get_or_insert_with(HashMap::new);
        match map.get(tls) {
            Some(c) => c.clone(),
            None => {
                let c = tls_config(tls)?;
                map.insert(tls.clone(), c.clone());
                c
            }
        }
    };
    Ok(config)
}

fn new_client(
    config: rustls::ClientConfig,
    redirects: reqwest::redirect::Policy,
) -> Result<reqwest::Client, Fail> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .use_preconfigured_tls(config)
        .connect_timeout(Duration::from_secs(30))
        .redirect(redirects)
        .build()
        .map_err(|e| Fail::unknown(format!("cannot build HTTP client: {}", chain(&e))))
}

/// Headers that carry the monitor's credentials to a site.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "x-auth-token",
    "x-subject-token",
    "cookie",
    "proxy-authorization",
];

/// What following a redirect to another host would expose: whatever the
/// request carries, no other host is sent it; the refusal says what was at
/// stake.
fn at_stake(req: &reqwest::Request) -> &'static str {
    if CREDENTIAL_HEADERS
        .iter()
        .any(|h| req.headers().contains_key(*h))
    {
        "it would be sent the token"
    } else {
        "requests to a site are not sent to other hosts"
    }
}

/// At most 5 redirects, and only on the same host and port (or from http
/// on port 80 to https on 443 of the same host): reqwest strips
/// `Authorization` on a cross-host redirect but not `X-Auth-Token`, so a
/// hostile site could collect it, on another host or on another port of
/// its own (another service, another tenant).
/// For clients built here for others ([`build_client`]); [`Http`] follows
/// redirects itself by the same rule.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        if attempt.previous().len() > 5 {
            return attempt.error("too many redirects (more than 5)");
        }
        // The policy does not see the request's headers: say what it may hold.
        match cross_host(first, attempt.url(), "it may carry credentials") {
            None => attempt.follow(),
            Some(why) => attempt.error(why),
        }
    })
}

/// Why a redirect from a request first sent to `first` may not go to `to`:
/// another host; another port of the same host, but for the upgrade from
/// http (80) to https (443); or from https to http. `risk`: what following
/// would expose, as the caller knows it.
fn cross_host(first: &Url, to: &Url, risk: &str) -> Option<String> {
    if to.host_str() != first.host_str() {
        return Some(format!(
            "redirect to another host not followed ({}): {risk}",
            show_url(to)
        ));
    }
    if first.scheme() == "https" && to.scheme() != "https" {
        return Some(format!(
            "redirect from https to {} not followed ({}): {risk} in clear",
            to.scheme(),
            show_url(to)
        ));
    }
    let (from_port, to_port) = (first.port_or_known_default(), to.port_or_known_default());
    let upgrade = first.scheme() == "http"
        && to.scheme() == "https"
        && from_port == Some(80)
        && to_port == Some(443);
    if from_port == to_port || upgrade {
        None
    } else {
        Some(format!(
            "redirect to another port not followed ({}): {risk}",
            show_url(to)
        ))
    }
}

/// Where a 301, 302, 303, 307 or 308 answer sends the request, resolved
/// against the request's URL; `None` for any other answer or a bad Location.
fn redirect_target(reply: &Reply) -> Option<Url> {
    if !matches!(reply.status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let loc = reply
        .headers
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    let to = reply.url.join(loc).ok()?;
    matches!(to.scheme(), "http" | "https").then_some(to)
}

fn tls_config(tls: &TlsOptions) -> Result<rustls::ClientConfig, Fail> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Fail::unknown(format!("TLS setup: {e}")))?;
    if tls.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::NoVerify(provider)))
            .with_no_client_auth());
    }
    Ok(builder
        .with_root_certificates(trust_roots(tls)?)
        .with_no_client_auth())
}

/// The trust roots `tls` names (system store, `--ca-cert`, `--ca-path`),
/// whatever its `insecure` says: check_certificates verifies with them even
/// under `--insecure`, since the certificate is what it checks.
pub fn trust_roots(tls: &TlsOptions) -> Result<rustls::RootCertStore, Fail> {
    let mut roots = rustls::RootCertStore::empty();
    // The system store; federation sites use IGTF CAs installed there.
    roots.add_parsable_certificates(system_roots().iter().cloned());
    for file in &tls.ca_certs {
        let n = add_pem_file(&mut roots, file)?;
        if n == 0 {
            return Err(Fail::unknown(format!(
                "--ca-cert {}: no certificate found",
                file.display()
            )));
        }
    }
    if let Some(dir) = &tls.ca_path {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Fail::unknown(format!("--ca-path {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            // IGTF dirs hold `<hash>.0` links and `.pem`; skip CRLs, policies, namespaces.
            if matches!(ext, "pem" | "crt" | "0" | "1") {
                let _ = add_pem_file(&mut roots, &p);
            }
        }
    }
    Ok(roots)
}

/// The system store, read once per process (the harness builds a client per
/// probe run; reading /etc/ssl/certs each time dominated its cost).
fn system_roots() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> =
        std::sync::OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

fn add_pem_file(roots: &mut rustls::RootCertStore, file: &Path) -> Result<usize, Fail> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let data = crate::files::read(file, crate::files::DOCUMENT)
        .map_err(|e| Fail::unknown(format!("CA file {}: {e}", file.display())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .filter_map(|c| c.ok())
        .collect();
    let (added, _) = roots.add_parsable_certificates(certs);
    Ok(added)
}

mod insecure {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use std::sync::Arc;

    /// `--insecure`: accept any certificate, still check handshake signatures.
    #[derive(Debug)]
    pub struct NoVerify(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for NoVerify {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// The client an [`Http`] sends with: made when first needed, dropped by
/// [`Rest::rest`] while the run waits, so a run waiting on a server boot
/// holds no connection (each is two hyper buffers of 8 KiB or more and a
/// dispatch channel, and the site keeps its end open too). A request in
/// flight holds its own handle, so a rest never cuts it short.
struct Lazy {
    tls: rustls::ClientConfig,
    client: std::sync::Mutex<Option<reqwest::Client>>,
}

impl Lazy {
    /// Made at once, so a client that cannot be built fails the run up front.
    fn new(tls: rustls::ClientConfig) -> Result<Lazy, Fail> {
        let client = new_client(tls.clone(), reqwest::redirect::Policy::none())?;
        Ok(Lazy {
            tls,
            client: std::sync::Mutex::new(Some(client)),
        })
    }

    fn get(&self) -> Result<reqwest::Client, Fail> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = new_client(self.tls.clone(), reqwest::redirect::Policy::none())?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

impl crate::record::Rest for Lazy {
    fn rest(&self) {
        let old = self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
    }
}

/// What [`Http::request`] builds requests with. A `RequestBuilder` needs a
/// client, but [`Http`] sends the built request with its own ([`Lazy`]), so
/// this one never sends and never holds a connection. `None` if it could
/// not be built (then no [`Http`] can be made either).
fn builder(tls: &rustls::ClientConfig) -> Option<&'static reqwest::Client> {
    static BUILDER: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    BUILDER
        .get_or_init(|| new_client(tls.clone(), reqwest::redirect::Policy::none()).ok())
        .as_ref()
}

/// A client bound to a deadline. Cheap to clone.
#[derive(Clone)]
pub struct Http {
    /// Never follows redirects itself: [`Http::send`] does, for GET and HEAD.
    client: Arc<Lazy>,
    /// Builds the requests [`Http::request`] hands out; never sends them.
    builder: &'static reqwest::Client,
    deadline: Deadline,
    rec: Arc<Recorder>,
    /// What the client trusts, so a derived client can extend it.
    tls: Arc<TlsOptions>,
    /// Whether GET and HEAD follow redirects (by [`redirect_target`]).
    follow: bool,
}

/// A client for unit tests: default trust, a short deadline, its own recorder.
#[cfg(test)]
pub fn test_client() -> Http {
    Http::new(
        TlsOptions::default(),
        Deadline::after(Duration::from_secs(1)),
        crate::record::Recorder::new(false, None),
    )
    .expect("test client")
}

impl WithDeadline for Http {
    fn with_deadline(&self, deadline: Deadline) -> Http {
        Http {
            deadline,
            ..self.clone()
        }
    }
}

/// Where a streamed answer goes, piece by piece; false stops reading.
pub type Sink<'a> = &'a mut (dyn FnMut(&[u8]) -> bool + Send);

/// One exchange in flight, boxed: every probe stage awaits a few, and
/// reqwest's futures inlined into each would make every probe run in flight
/// several KB larger.
pub type Exchange<'a> = Pin<Box<dyn Future<Output = Result<Reply, Fail>> + Send + 'a>>;

/// A whole answer: status, headers, body (bounded).
#[derive(Debug, Clone)]
pub struct Reply {
    pub method: Method,
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Bytes handed to a sink instead of kept in `body` ([`Http::send_into`]).
    pub streamed: u64,
    pub elapsed: Duration,
}

/// What came back, before it becomes a [`Reply`].
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    streamed: u64,
}

/// A request body produced while it is sent: the probe pushes chunks into
/// the [`BodySender`], the connection pulls them from here. The channel
/// holds a few chunks, so memory stays bounded whatever the length. The
/// length is declared up front (Content-Length); a producer that stops
/// short makes the request fail rather than send a truncated body.
pub struct BodyStream {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    len: u64,
    left: u64,
}

pub struct BodySender {
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
}

/// A streamed body of exactly `len` bytes and the handle that feeds it.
pub fn body_channel(len: u64) -> (BodySender, BodyStream) {
    // One chunk queued: hyper queues more while the socket is full, and a
    // harness running a thousand uploads at once holds every queued chunk.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    (BodySender { tx }, BodyStream { rx, len, left: len })
}

impl BodySender {
    /// Queue a chunk; waits while the connection is behind. False when the
    /// request is over (refused early, failed, deadline): stop producing.
    pub async fn send(&self, chunk: bytes::Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }
}

impl BodyStream {
    /// The declared length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// As a reqwest body, with its Content-Length.
    pub fn into_body(self) -> reqwest::Body {
        reqwest::Body::wrap(self)
    }
}

impl http_body::Body for BodyStream {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                let n = chunk.len() as u64;
                if n > self.left {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "body longer than declared",
                    ))));
                }
                self.left -= n;
                Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
            }
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::other(format!(
                "body ended {} bytes short",
                self.left
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

impl Http {
    /// A client trusting what `tls` says, bound to `deadline`, counting and
    /// tracing its requests in `rec`. Fails (UNKNOWN) on a bad CA file.
    pub fn new(tls: TlsOptions, deadline: Deadline, rec: Arc<Recorder>) -> Result<Http, Fail> {
        let client = Arc::new(Lazy::new(cached_tls_config(&tls)?)?);
        let builder = builder(&client.tls)
            .ok_or_else(|| Fail::unknown("cannot build HTTP client for requests"))?;
        let weak: std::sync::Weak<dyn crate::record::Rest> = Arc::downgrade(&client) as _;
        rec.on_rest(weak);
        Ok(Http {
            client,
            builder,
            deadline,
            rec,
            tls: Arc::new(tls),
            follow: true,
        })
    }

    /// The same run's client with other trust settings (e.g. a cloud's own CA).
    pub fn with_tls(&self, tls: TlsOptions) -> Result<Http, Fail> {
        Http::new(tls, self.deadline, self.rec.clone())
    }

    /// The same client, but redirects come back as answers: for flows that
    /// read a redirect's Location and cookies themselves (SAML ECP).
    pub fn without_redirects(&self) -> Result<Http, Fail> {
        Ok(Http {
            follow: false,
            ..self.clone()
        })
    }

    pub fn tls(&self) -> &TlsOptions {
        &self.tls
    }

    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    pub fn with_deadline(&self, deadline: Deadline) -> Http {
        WithDeadline::with_deadline(self, deadline)
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.builder.request(method, url)
    }

    pub fn get(&self, url: Url) -> RequestBuilder {
        self.builder.get(url)
    }

    /// Send and read the whole body, within the deadline. Any HTTP status is
    /// returned; transport problems become a [`Fail`].
    pub fn send(&self, req: RequestBuilder) -> Exchange<'_> {
        Box::pin(self.send_with(req, None))
    }

    /// Send and hand a 2xx body to `sink` piece by piece as it arrives (the
    /// reply's `body` stays empty, `streamed` counts the bytes); `sink`
    /// returns false to stop reading. Any other status is read whole
    /// (bounded) for its message. Within the deadline, like [`Http::send`].
    pub fn send_into<'a>(&'a self, req: RequestBuilder, sink: Sink<'a>) -> Exchange<'a> {
        Box::pin(self.send_with(req, Some(sink)))
    }

    async fn send_with(
        &self,
        req: RequestBuilder,
        mut sink: Option<Sink<'_>>,
    ) -> Result<Reply, Fail> {
        let left = self.deadline.remaining();
        if left.is_zero() {
            return Err(Fail::timeout("deadline reached before the request"));
        }
        // reqwest's timeout covers the whole exchange, a streamed body included.
        let mut req = req
            .timeout(left)
            .build()
            .map_err(|e| Fail::unknown(format!("cannot build request: {}", chain(&e))))?;
        let first = req.url().clone();
        // Redirects are followed here, not by reqwest, for GET and HEAD only:
        // reqwest turns a POST answered 301/302/303 into a GET of the new
        // place, which reads as a success of something the site never did.
        let mut hops = 0;
        loop {
            let again = match *req.method() {
                Method::GET | Method::HEAD if self.follow => req.try_clone(),
                _ => None,
            };
            let once: Option<Sink<'_>> = match &mut sink {
                Some(f) => Some(&mut **f),
                None => None,
            };
            let reply = self.send_once(req, once).await?;
            let (Some(mut next), Some(to)) = (again, redirect_target(&reply)) else {
                return Ok(reply);
            };
            hops += 1;
            let refused = if hops > 5 {
                Some("too many redirects (more than 5)".to_string())
            } else {
                cross_host(&first, &to, at_stake(&next))
            };
            if let Some(why) = refused {
                let mut f = Fail::critical(format!(
                    "redirect refused: {why} ({} {})",
                    reply.method,
                    show_url(&reply.url)
                ))
                .with_transport(Transport::TooManyRedirects);
                f.http = Some(HttpFacts {
                    status: Some(reply.status.as_u16()),
                    method: reply.method.to_string(),
                    url: show_url(&reply.url),
                });
                return Err(f);
            }
            let left = self.deadline.remaining();
            if left.is_zero() {
                return Err(Fail::timeout("deadline reached while following a redirect"));
            }
            if to.port_or_known_default() != reply.url.port_or_known_default() {
                // As browsers and reqwest do when the origin changes.
                for h in [
                    reqwest::header::AUTHORIZATION,
                    reqwest::header::COOKIE,
                    reqwest::header::PROXY_AUTHORIZATION,
                ] {
                    next.headers_mut().remove(h);
                }
            }
            *next.url_mut() = to;
            *next.timeout_mut() = Some(left);
            req = next;
        }
    }

    /// One request and its answer, traced and counted.
    async fn send_once(
        &self,
        req: reqwest::Request,
        sink: Option<Sink<'_>>,
    ) -> Result<Reply, Fail> {
        let (method, url) = (req.method().clone(), req.url().clone());
        let t0 = Instant::now();
        self.rec.count_request();
        let out = self.exchange(req, sink).await;
        let elapsed = t0.elapsed();
        if self.rec.tracing() {
            let (what, size) = match &out {
                Ok(a) => (
                    a.status.to_string(),
                    format!(" ({} bytes)", a.body.len() as u64 + a.streamed),
                ),
                Err(f) => (f.message.clone(), String::new()),
            };
            let key = format!("http: {method} {} -> {what}", show_url(&url));
            let tail = format!("{size} in {:.3}s", elapsed.as_secs_f64());
            self.rec.detail_repeated(key, &tail);
        }
        let a = out.map_err(|mut f| {
            f.message = format!("{} ({method} {})", f.message, show_url(&url));
            f.http = Some(HttpFacts {
                status: None,
                method: method.to_string(),
                url: show_url(&url),
            });
            f
        })?;
        Ok(Reply {
            method,
            url,
            status: a.status,
            headers: a.headers,
            body: a.body,
            streamed: a.streamed,
            elapsed,
        })
    }

    async fn exchange(
        &self,
        req: reqwest::Request,
        sink: Option<Sink<'_>>,
    ) -> Result<Answer, Fail> {
        let mut resp = self.client.get()?.execute(req).await.map_err(transport)?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
            streamed: 0,
        };
        // Only a 2xx body is the payload; anything else is a message.
        let mut sink = sink.filter(|_| status.is_success());
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if let Some(sink) = sink.as_mut() {
                a.streamed += chunk.len() as u64;
                if !sink(&chunk) {
                    break;
                }
                continue;
            }
            if a.body.len() + chunk.len() > MAX_BODY {
                return Err(Fail::critical(format!(
                    "HTTP {status}: body larger than {} MB",
                    MAX_BODY >> 20
                ))
                .with_transport(Transport::TooLarge));
            }
            a.body.extend_from_slice(&chunk);
        }
        Ok(a)
    }

    /// Send, require a 2xx, parse JSON into `T`.
    pub async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, Fail> {
        self.send(req).await?.success()?.json()
    }
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The reply if 2xx, else a CRITICAL naming status and body.
    pub fn success(self) -> Result<Reply, Fail> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.unexpected())
        }
    }

    /// A CRITICAL describing this reply as unexpected.
    pub fn unexpected(&self) -> Fail {
        // What came back first: summaries are cut at 200 characters.
        let mut msg = format!("HTTP {}", self.status);
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            if let Some(ra) = self.header("retry-after") {
                msg.push_str(&format!(" (Retry-After: {ra})"));
            }
        }
        if let Some(to) = redirect_target(self) {
            // Only GET and HEAD are sent again elsewhere (Http::send).
            msg.push_str(&format!(
                ", a redirect to {} not followed for a {}",
                show_url(&to),
                self.method
            ));
        }
        msg.push_str(&format!(
            ": {} ({})",
            self.describe_body(),
            self.request_line()
        ));
        Fail::critical(msg).with_http(self.facts())
    }

    /// The exchange as facts for a failure.
    pub fn facts(&self) -> HttpFacts {
        HttpFacts {
            status: Some(self.status.as_u16()),
            method: self.method.to_string(),
            url: show_url(&self.url),
        }
    }

    /// `GET https://host/path`, for the end of messages.
    pub fn request_line(&self) -> String {
        format!("{} {}", self.method, show_url(&self.url))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parse the body as JSON; a parse error says what was wrong and what came.
    /// An answer of more than [`MAX_JSON_VALUES`] values is refused unparsed:
    /// parsed, it could take many times its bytes and seconds of CPU.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Fail> {
        if json_values_over(&self.body, MAX_JSON_VALUES) {
            return Err(Fail::critical(format!(
                "HTTP {} with a JSON answer of more than {MAX_JSON_VALUES} values ({} bytes), \
                 refused unparsed ({})",
                self.status,
                self.body.len(),
                self.request_line()
            ))
            .with_http(self.facts()));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Fail::critical(format!(
                "HTTP {} with {}: {} ({})",
                self.status,
                json_error(&e),
                self.describe_body(),
                self.request_line()
            ))
            .with_http(self.facts())
        })
    }

    /// A short, safe description of the body: an HTML page's title, or the start of the text.
    pub fn describe_body(&self) -> String {
        text::describe_body(&self.body, self.header("content-type").unwrap_or(""))
    }
}

/// The most values (keys, elements, scalars) a JSON answer may hold. An API
/// answer a probe reads holds a few thousand; this bounds what parsing a
/// hostile one costs (a value kept as `serde_json::Value` can take 200 bytes)
/// to tens of MB, where the body bound alone allowed over a GB.
pub const MAX_JSON_VALUES: usize = 250_000;

/// `serde_json::from_slice` for what a site sent, within [`MAX_JSON_VALUES`].
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    if json_values_over(body, MAX_JSON_VALUES) {
        return Err(serde::de::Error::custom(format!(
            "more than {MAX_JSON_VALUES} values"
        )));
    }
    serde_json::from_slice(body)
}

/// Whether `body` holds more than `max` JSON values, counted as the
/// structural characters outside strings (`{ [ , :`) in one pass, without
/// parsing: a little over the real count, never under it by more than one.
pub fn json_values_over(body: &[u8], max: usize) -> bool {
    if body.len() <= max {
        return false;
    }
    let (mut n, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b'{' | b'[' | b',' | b':') {
            n += 1;
            if n > max {
                return true;
            }
        }
    }
    false
}

fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => format!("truncated JSON at line {} column {}", e.line(), e.column()),
        Category::Syntax => format!("not JSON: {e}"),
        Category::Data => format!("wrong JSON shape: {e}"),
        Category::Io => format!("read error: {e}"),
    }
}

/// URLs in messages: no query string, no credentials.
/// An HTTP Basic `Authorization` value whose encoded credentials are
/// themselves a known secret ([`Secret::basic_credentials`]), marked
/// sensitive. UNKNOWN if the user or password cannot be a header.
pub fn basic_header(user: &str, password: &Secret) -> Result<reqwest::header::HeaderValue, Fail> {
    let creds = Secret::basic_credentials(user, password);
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Basic {}", creds.expose()))
        .map_err(|_| Fail::unknown("the Basic credentials cannot be sent as a header"))?;
    v.set_sensitive(true);
    Ok(v)
}

pub fn show_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.set_query(None);
    u.to_string()
}

/// The error and its sources as one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn transport(e: reqwest::Error) -> Fail {
    // reqwest's outer messages repeat the URL; keep the causes.
    let full = chain(&e);
    let detail = full
        .split(": ")
        .filter(|p| !p.starts_with("error sending request") && !p.starts_with("client error ("))
        .collect::<Vec<_>>()
        .join(": ");
    let detail = if detail.is_empty() { full } else { detail };
    let lower = detail.to_ascii_lowercase();
    if e.is_timeout() {
        return Fail::timeout("no answer before the deadline");
    }
    if e.is_redirect() {
        return Fail::critical(format!("redirect refused: {detail}"))
            .with_transport(Transport::TooManyRedirects);
    }
    // reqwest's errors are opaque about their cause: classify by the text of
    // the cause chain, then by reqwest's own flags.
    let (class, what) = if lower.contains("close_notify") || lower.contains("unexpected eof") {
        (
            Transport::Closed,
            "connection closed by the server before the answer was complete",
        )
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        (
            Transport::Tls,
            "TLS failure (is the site's CA trusted? see --ca-cert/--ca-path)",
        )
    } else if lower.contains("connection refused") {
        (Transport::Refused, "connection refused")
    } else if lower.contains("reset") {
        (Transport::Reset, "connection reset")
    } else if lower.contains("dns") || lower.contains("resolve") || lower.contains("lookup") {
        (Transport::Dns, "name resolution failed")
    } else if e.is_body() || e.is_decode() {
        (
            Transport::Broken,
            "connection broken while reading the answer",
        )
    } else if e.is_connect() {
        (Transport::Connect, "cannot connect")
    } else {
        (Transport::Other, "request failed")
    };
    Fail::critical(format!("{what}: {}", text::one_line(&detail, 300))).with_transport(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_of_too_many_values_are_refused_unparsed() {
        assert!(!json_values_over(br#"{"a":[1,2,3]}"#, 5));
        assert!(json_values_over(br#"{"a":[1,2,3,4]}"#, 5));
        // Structure inside strings, escaped quotes included, is text.
        assert!(!json_values_over(br#"{"a":"[,,,:\",{{{,,,"}"#, 5));
        let reply = |body: Vec<u8>| Reply {
            method: Method::GET,
            url: Url::parse("http://nova.example/v2.1/flavors/detail?x=1").unwrap(),
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body,
            streamed: 0,
            elapsed: Duration::ZERO,
        };
        let mut body = br#"{"extra_specs":{"#.to_vec();
        for i in 0..MAX_JSON_VALUES / 2 {
            body.extend_from_slice(format!(r#""k{i}":"v","#).as_bytes());
        }
        body.extend_from_slice(br#""last":"v"}}"#);
        let f = reply(body.clone()).json::<serde_json::Value>().unwrap_err();
        assert_eq!(f.status, crate::Status::Critical);
        assert!(
            f.message.contains("more than 250000 values")
                && f.message
                    .contains("GET http://nova.example/v2.1/flavors/detail"),
            "{}",
            f.message
        );
        // Just under the bound it parses.
        let cut = body.len() - 30 * 1000;
        let mut fewer = body[..cut].to_vec();
        let end = fewer.iter().rposition(|&b| b == b',').unwrap();
        fewer.truncate(end);
        fewer.extend_from_slice(b"}}");
        let v: serde_json::Value = reply(fewer).json().unwrap();
        assert!(v["extra_specs"].as_object().unwrap().len() > 100_000);
    }

    #[test]
    fn basic_credentials_are_a_secret_in_their_encoded_form() {
        let password = Secret::new("ecp-pass-w0rd-4-basic");
        let v = basic_header("monitor", &password).unwrap();
        assert!(v.is_sensitive());
        let value = v.to_str().unwrap();
        let encoded = value.strip_prefix("Basic ").unwrap();
        assert_eq!(encoded, "bW9uaXRvcjplY3AtcGFzcy13MHJkLTQtYmFzaWM=");
        let said = format!("the IdP said: bad credentials {encoded}");
        assert!(
            !crate::secret::scrub(&said).contains(&encoded[..12]),
            "{said}"
        );
    }

    #[test]
    fn redirects_stay_on_the_first_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        let first = u("http://cloud.example.org/v3");
        let refused = |a: &Url, b: &str| cross_host(a, &u(b), "r");
        assert_eq!(refused(&first, "http://cloud.example.org/v3/x"), None);
        assert_eq!(refused(&first, "http://cloud.example.org:80/x"), None);
        // The upgrade to the same host's TLS endpoint.
        assert_eq!(refused(&first, "https://cloud.example.org/v3"), None);
        let k = u("http://127.0.0.1:5000/v3");
        assert_eq!(refused(&k, "https://127.0.0.1:5000/v3"), None);
        for (from, to, why) in [
            (&first, "http://other.example.org/x", "another host"),
            (&first, "http://cloud.example.org:8080/x", "another port"),
            (&first, "https://cloud.example.org:8443/x", "another port"),
            (&k, "https://127.0.0.1:5001/steal", "another port"),
            (&k, "https://127.0.0.1/x", "another port"),
        ] {
            let got = refused(from, to).unwrap_or_default();
            assert!(got.contains(why), "{from} -> {to}: {got}");
        }
        let tls = u("https://cloud.example.org/v3");
        let got = refused(&tls, "http://cloud.example.org:443/x").unwrap_or_default();
        assert!(got.contains("from https to http"), "{got}");
        assert_eq!(refused(&tls, "https://cloud.example.org:443/x"), None);
    }

    #[test]
    fn urls_lose_query_and_credentials() {
        let u = Url::parse("https://user:pw@host:5000/v3/auth?token=abc").unwrap();
        assert_eq!(show_url(&u), "https://host:5000/v3/auth");
    }
}
