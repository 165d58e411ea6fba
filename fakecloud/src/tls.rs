//! The certificate-expiring fault: the site is served over https with a
//! certificate for 127.0.0.1, signed by a CA made at start, that expires in
//! a few days. Whoever talks to the site trusts `ca_pem`.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Days the site's certificate has left at start (under check_certificates'
/// default CRITICAL of 7).
pub const EXPIRING_DAYS: u64 = 5;
const DAY: u64 = 86_400;

pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The CA that signed the site's certificate (PEM).
    pub ca_pem: String,
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("fakecloud TLS: {e}"))
}

/// A fresh CA and a leaf for 127.0.0.1 with `days` left.
pub fn expiring(days: u64) -> std::io::Result<Tls> {
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "fakecloud demo CA");
    let ca_pem = ca.self_signed(&ca_key).map_err(err)?.pem();

    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(err)?;
    // rcgen takes `time` dates; count from the epoch to stay clear of that crate.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = jiff::Timestamp::now().as_second().max(DAY as i64) as u64;
    leaf.not_before = epoch + Duration::from_secs(now - DAY);
    leaf.not_after = epoch + Duration::from_secs(now + days * DAY);
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(err)?;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem,
    })
}
