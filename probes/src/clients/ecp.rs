//! SAML2 ECP (Enhanced Client or Proxy, SAML V2.0 profiles §4.2) against a
//! Keystone behind a SAML service provider: the four HTTP exchanges, no
//! verdicts. The client must not follow redirects (it reads the SP's 303
//! and its session cookie itself): use [`Http::without_redirects`].

pub mod xml;

use reqwest::{Method, Url};

use crate::fail::Fail;
use crate::http::{Http, Reply};
use crate::secret::Secret;

/// The media type of PAOS messages.
pub const PAOS_TYPE: &str = "application/vnd.paos+xml";
/// The PAOS header announcing that this client speaks the ECP profile.
pub const PAOS_HEADER: &str =
    "ver=\"urn:liberty:paos:2003-08\";\"urn:oasis:names:tc:SAML:2.0:profiles:SSO:ecp\"";

/// Step 1: ask the SP for the protected URL as an ECP client; an SP that
/// offers ECP answers a PAOS AuthnRequest. (mod_auth_mellon wants commas
/// in Accept: `text/html; application/...` is refused with 400.)
pub async fn start(http: &Http, url: &Url) -> Result<Reply, Fail> {
    let req = http
        .request(Method::GET, url.clone())
        .header("Accept", format!("text/html, {PAOS_TYPE}"))
        .header("PAOS", PAOS_HEADER);
    http.send(req).await
}

/// Step 2: the AuthnRequest envelope to the IdP's SOAP endpoint, with the
/// monitor's user and password (HTTP Basic).
pub async fn to_idp(
    http: &Http,
    idp: &Url,
    envelope: Vec<u8>,
    user: &str,
    password: &Secret,
) -> Result<Reply, Fail> {
    let req = http
        .request(Method::POST, idp.clone())
        .header(
            reqwest::header::AUTHORIZATION,
            crate::http::basic_header(user, password)?,
        )
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("Accept", "text/xml, application/soap+xml")
        .body(envelope);
    http.send(req).await
}

/// Step 3: the IdP's response to the SP's assertion consumer (PAOS).
pub async fn to_sp(http: &Http, consumer: &Url, envelope: Vec<u8>) -> Result<Reply, Fail> {
    let req = http
        .request(Method::POST, consumer.clone())
        .header("Content-Type", PAOS_TYPE)
        .body(envelope);
    http.send(req).await
}

/// Step 4: the protected URL again, with the SP's session cookie: Keystone's token.
pub async fn finish(http: &Http, url: &Url, cookie: &Secret) -> Result<Reply, Fail> {
    let req = http
        .request(Method::GET, url.clone())
        .header("Accept", "application/json")
        .header("Cookie", cookie.expose());
    http.send(req).await
}

/// The `name=value` pairs of the reply's Set-Cookie headers, as one Cookie
/// header value. Attributes (Path, Secure, ...) are dropped: the cookie
/// goes back only to the SP that set it, within this one login. (A cookie
/// jar crate would add a store for the one header this flow needs.)
pub fn session_cookie(reply: &Reply) -> Option<Secret> {
    let pairs: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|p| p.split_once('=').is_some_and(|(n, _)| !n.trim().is_empty()))
        .collect();
    (!pairs.is_empty()).then(|| Secret::new(pairs.join("; ")))
}

/// Same scheme, host and port: the assertion and the cookie stay with the SP.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn reply_with(cookies: &[&str]) -> Reply {
        let mut headers = HeaderMap::new();
        for c in cookies {
            headers.append("set-cookie", HeaderValue::from_str(c).unwrap());
        }
        Reply {
            method: Method::POST,
            url: Url::parse("https://sp.example/v3/mellon/paosResponse").unwrap(),
            status: reqwest::StatusCode::SEE_OTHER,
            headers,
            body: vec![],
            streamed: 0,
            elapsed: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn cookies_keep_name_and_value_only() {
        let r = reply_with(&[
            "mellon-cookie=abc123; Version=1; Path=/; Domain=127.0.0.1; Secure",
            "other=x",
            "=novalue",
            "garbage",
        ]);
        assert_eq!(
            session_cookie(&r).unwrap().expose(),
            "mellon-cookie=abc123; other=x"
        );
        assert!(session_cookie(&reply_with(&[])).is_none());
        assert!(session_cookie(&reply_with(&["; Path=/"])).is_none());
    }

    #[test]
    fn origin_is_scheme_host_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://sp.example/v3/a"),
            &u("https://sp.example:443/v3/mellon/paosResponse")
        ));
        assert!(!same_origin(
            &u("https://sp.example/v3"),
            &u("http://sp.example/v3")
        ));
        assert!(!same_origin(
            &u("https://sp.example/v3"),
            &u("https://evil.example/v3")
        ));
        assert!(!same_origin(
            &u("https://sp.example/v3"),
            &u("https://sp.example:8443/v3")
        ));
    }
}
