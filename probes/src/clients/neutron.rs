//! Neutron v2.0 client: the networks a server may be booted on.

use reqwest::Url;
use serde::Deserialize;

use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

#[derive(Clone, Debug, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl Network {
    pub fn owner(&self) -> Option<&str> {
        self.project_id.as_deref().or(self.tenant_id.as_deref())
    }
}

#[derive(Deserialize)]
struct Networks {
    networks: Vec<Network>,
}

/// `GET /v2.0/networks` on the catalog's `network` endpoint.
pub async fn networks(http: &Http, base: &Url, token: &Secret) -> Result<Vec<Network>, Fail> {
    let b = base.as_str().trim_end_matches('/');
    let b = b.strip_suffix("/v2.0").unwrap_or(b);
    let url = Url::parse(&format!("{b}/v2.0/networks"))
        .map_err(|e| Fail::critical(format!("bad network endpoint {base}: {e}")))?;
    let req = http
        .get(url)
        .header("X-Auth-Token", token.expose())
        .header("Accept", "application/json");
    let n: Networks = http.json(req).await?;
    Ok(n.networks)
}
