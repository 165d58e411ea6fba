//! Keystone v3 client: OIDC federation exchange, projects, scoped tokens, catalog.

use reqwest::{Method, Url};

use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

/// The federated login URL for an identity provider and protocol.
pub fn federation_auth_url(keystone: &Url, idp: &str, protocol: &str) -> Result<Url, Fail> {
    let base = keystone.as_str().trim_end_matches('/');
    let base = base.strip_suffix("/v3").unwrap_or(base);
    Url::parse(&format!(
        "{base}/v3/OS-FEDERATION/identity_providers/{idp}/protocols/{protocol}/auth"
    ))
    .map_err(|e| Fail::unknown(format!("bad Keystone URL {keystone}: {e}")))
}

/// Exchange an OIDC access token for an unscoped Keystone token.
pub async fn exchange_oidc(
    http: &Http,
    keystone: &Url,
    idp: &str,
    protocol: &str,
    access_token: &Secret,
) -> Result<Secret, Fail> {
    let url = federation_auth_url(keystone, idp, protocol)?;
    let req = http
        .request(Method::POST, url)
        .bearer_auth(access_token.expose())
        .header("Accept", "application/json");
    let reply = http.send(req).await?.success()?;
    match reply.header("x-subject-token") {
        Some(t) if !t.is_empty() => Ok(Secret::new(t)),
        _ => Err(Fail::critical(format!(
            "HTTP {} but no X-Subject-Token header",
            reply.status
        ))),
    }
}
