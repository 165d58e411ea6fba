//! Neutron v2.0 client: the networks a server may be booted on.

use reqwest::Url;
use serde::Deserialize;

use super::service::Service;
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

/// Neutron at the catalog's `network` endpoint, with or without `/v2.0`.
#[derive(Clone)]
pub struct Neutron {
    svc: Service,
}

impl Neutron {
    pub fn new(http: Http, url: &Url, token: Secret) -> Neutron {
        Neutron {
            svc: Service::new(http, url, Some("v2.0"), Some(token)),
        }
    }

    /// `GET /v2.0/networks`.
    pub async fn networks(&self) -> Result<Vec<Network>, Fail> {
        let n: Networks = self
            .svc
            .get_json(self.svc.url(&["v2.0", "networks"])?)
            .await?;
        Ok(n.networks)
    }
}
