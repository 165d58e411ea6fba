//! One bare TLS handshake to a host:port, verified against given trust
//! roots by rustls's webpki verifier, and the leaf certificate's dates and
//! names read with x509-parser. Facts only; check_certificates decides.
//!
//! The verifier is wrapped so that its verdict is recorded and the
//! handshake still completes: the leaf of a bad certificate is read too
//! (how long ago it expired, which names it has). Nothing is ever sent on
//! the connection; it is closed right after the handshake.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::time::Instant;

use crate::fail::Fail;
use crate::text::one_line;

/// What is wrong with a certificate, as the verifier saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Expired,
    NotYetValid,
    WrongHost,
    /// Not signed by a trusted CA (or an incomplete chain).
    Untrusted,
    Other,
}

/// The leaf certificate, as far as it parsed.
#[derive(Clone, Debug, Default)]
pub struct Leaf {
    pub not_before: i64,
    pub not_after: i64,
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of its subjectAltName.
    pub names: Vec<String>,
}

/// One handshake's facts.
#[derive(Clone, Debug)]
pub struct Inspected {
    /// `None`: verified (chain to a trusted root, host name, dates).
    pub problem: Option<(Problem, String)>,
    pub leaf: Option<Leaf>,
    /// Certificates the server sent, leaf included.
    pub chain_len: usize,
    pub handshake: Duration,
}

/// Why no handshake happened.
#[derive(Clone, Debug)]
pub enum Unreachable {
    Connect(String),
    Handshake(String),
    Timeout,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::Connect(e) => write!(f, "cannot connect: {e}"),
            Unreachable::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            Unreachable::Timeout => write!(f, "no TLS handshake within the time allowed"),
        }
    }
}

/// The verifier used by every inspection of one run.
#[derive(Clone)]
pub struct Inspector {
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Inspector {
    /// Verify against `roots`; no roots at all is the monitor's trouble (UNKNOWN).
    pub fn new(roots: RootCertStore) -> Result<Inspector, Fail> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Fail::unknown(format!("no usable trust roots: {e}")))?;
        Ok(Inspector { webpki, provider })
    }

    /// Connect to `host:port` and shake hands, all before `until`.
    pub async fn inspect(
        &self,
        host: &str,
        port: u16,
        until: Instant,
    ) -> Result<Inspected, Unreachable> {
        match tokio::time::timeout_at(until, self.handshake(host, port)).await {
            Ok(r) => r,
            Err(_) => Err(Unreachable::Timeout),
        }
    }

    async fn handshake(&self, host: &str, port: u16) -> Result<Inspected, Unreachable> {
        let name = server_name(host)
            .ok_or_else(|| Unreachable::Connect(format!("{host:?} is not a host name")))?;
        let seen = Arc::new(Recording {
            inner: self.webpki.clone(),
            seen: Mutex::new(None),
        });
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Unreachable::Handshake(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(seen.clone())
            .with_no_client_auth();
        let t0 = Instant::now();
        let addr = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((addr, port))
            .await
            .map_err(|e| Unreachable::Connect(one_line(&e.to_string(), 120)))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| Unreachable::Handshake(one_line(&e.to_string(), 160)));
        let handshake = t0.elapsed();
        let taken = seen.seen.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((chain, verdict)) = taken else {
            // Failed before the server's certificate came.
            return Err(tls
                .err()
                .unwrap_or(Unreachable::Handshake("no certificate presented".into())));
        };
        let problem = match (verdict, tls) {
            (Err(e), _) => Some(classify(&e)),
            // Verified, but the handshake broke after (a bad signature).
            (Ok(()), Err(u)) => Some((Problem::Other, u.to_string())),
            (Ok(()), Ok(_)) => None,
        };
        Ok(Inspected {
            problem,
            leaf: chain.first().and_then(|der| parse_leaf(der)),
            chain_len: chain.len(),
            handshake,
        })
    }
}

fn server_name(host: &str) -> Option<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).ok()
}

/// A verifier's error as a problem class and words.
pub fn classify(e: &rustls::Error) -> (Problem, String) {
    let kind = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Problem::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Problem::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Problem::WrongHost
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Problem::Untrusted,
            _ => Problem::Other,
        },
        _ => Problem::Other,
    };
    (kind, one_line(&e.to_string(), 200))
}

/// The leaf's dates and names; `None` when it does not parse as X.509.
pub fn parse_leaf(der: &[u8]) -> Option<Leaf> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let v = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_of(b) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(Leaf {
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
        subject: one_line(&cert.subject().to_string(), 120),
        issuer: one_line(&cert.issuer().to_string(), 120),
        names,
    })
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

type Seen = (Vec<Vec<u8>>, Result<(), rustls::Error>);

/// Runs webpki's verification, records its verdict and the chain, and lets
/// the handshake finish whatever it said.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map(drop);
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((chain, verdict));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
