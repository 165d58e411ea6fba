//! Nova (compute v2.1) client: versions, flavors, servers.

use std::collections::BTreeMap;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Deserialize;

use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

/// The microversion we speak when the site offers it: `networks` is then
/// required and may be `none`/`auto` (2.37).
pub const MICROVERSION: (u32, u32) = (2, 37);

/// `{base}/{path}` whatever the catalog URL ends with.
pub fn join(base: &Url, path: &str) -> Result<Url, Fail> {
    let b = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{b}/{}", path.trim_start_matches('/')))
        .map_err(|e| Fail::critical(format!("bad endpoint URL {base}: {e}")))
}

/// A parsed `X.Y` microversion.
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[derive(Deserialize)]
struct VersionDoc {
    #[serde(default)]
    version: Option<Version>,
    #[serde(default)]
    versions: Vec<Version>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Version {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub min_version: String,
}

/// Nova client for one endpoint and token. `microversion` is sent on every
/// request once negotiated.
#[derive(Clone)]
pub struct Nova {
    pub http: Http,
    pub url: Url,
    pub token: Secret,
    pub microversion: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub vcpus: u64,
    #[serde(default)]
    pub ram: u64,
    #[serde(default)]
    pub disk: u64,
}

#[derive(Deserialize)]
struct Flavors {
    flavors: Vec<Flavor>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub fault: Option<Fault>,
    #[serde(rename = "OS-SRV-USG:launched_at", default)]
    pub launched_at: Option<String>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
}

#[derive(Deserialize)]
struct OneServer {
    server: Server,
}

#[derive(Deserialize)]
struct Created {
    server: CreatedServer,
}

#[derive(Deserialize)]
struct CreatedServer {
    id: String,
}

#[derive(Deserialize)]
struct Servers {
    servers: Vec<Server>,
    #[serde(default)]
    servers_links: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    rel: String,
    #[serde(default)]
    href: String,
}

impl Nova {
    fn req(&self, method: Method, url: Url) -> RequestBuilder {
        let mut r = self
            .http
            .request(method, url)
            .header("X-Auth-Token", self.token.expose())
            .header("Accept", "application/json");
        if let Some(v) = &self.microversion {
            r = r
                .header("OpenStack-API-Version", format!("compute {v}"))
                .header("X-OpenStack-Nova-API-Version", v.as_str());
        }
        r
    }

    /// `GET` on the versioned endpoint: its `version`/`min_version`.
    pub async fn version(&self) -> Result<Version, Fail> {
        let req = self
            .http
            .get(self.url.clone())
            .header("X-Auth-Token", self.token.expose())
            .header("Accept", "application/json");
        let doc: VersionDoc = self.http.json(req).await?;
        if let Some(v) = doc.version {
            return Ok(v);
        }
        // An unversioned root: take the CURRENT v2.1 entry.
        doc.versions
            .into_iter()
            .find(|v| v.id == "v2.1")
            .ok_or_else(|| Fail::critical(format!("GET {}: no v2.1 version listed", self.url)))
    }

    pub async fn flavors(&self, min_disk: Option<u64>) -> Result<Vec<Flavor>, Fail> {
        let mut url = join(&self.url, "flavors/detail")?;
        if let Some(d) = min_disk {
            url.query_pairs_mut().append_pair("minDisk", &d.to_string());
        }
        let f: Flavors = self.http.json(self.req(Method::GET, url)).await?;
        Ok(f.flavors)
    }

    /// `POST /servers`; returns the new server's id (202 expected).
    pub async fn create_server(&self, body: &serde_json::Value) -> Result<String, Fail> {
        let req = self
            .req(Method::POST, join(&self.url, "servers")?)
            .json(body);
        let reply = self.http.send(req).await?.success()?;
        let c: Created = reply.json()?;
        Ok(c.server.id)
    }

    /// The server, or `None` once it is gone (404).
    pub async fn server(&self, id: &str) -> Result<Option<Server>, Fail> {
        let url = join(&self.url, &format!("servers/{id}"))?;
        let reply = self.http.send(self.req(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let s: OneServer = reply.success()?.json()?;
        Ok(Some(s.server))
    }

    /// `DELETE /servers/{id}`: true if accepted, false if already gone.
    pub async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        let url = join(&self.url, &format!("servers/{id}"))?;
        let reply = self.http.send(self.req(Method::DELETE, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        reply.success()?;
        Ok(true)
    }

    /// The project's servers with details (metadata included), all pages.
    pub async fn servers_detail(&self) -> Result<Vec<Server>, Fail> {
        let mut out = Vec::new();
        let mut url = join(&self.url, "servers/detail")?;
        for _ in 0..50 {
            let page: Servers = self.http.json(self.req(Method::GET, url.clone())).await?;
            out.extend(page.servers);
            match page.servers_links.iter().find(|l| l.rel == "next") {
                Some(l) => {
                    url = Url::parse(&l.href)
                        .map_err(|e| Fail::critical(format!("bad next link {:?}: {e}", l.href)))?
                }
                None => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_join() {
        assert_eq!(parse_version("2.104"), Some((2, 104)));
        assert_eq!(parse_version(""), None);
        assert!(parse_version("2.37").unwrap() >= MICROVERSION);
        let u = Url::parse("https://h:8774/v2.1/").unwrap();
        assert_eq!(
            join(&u, "/servers/x").unwrap().as_str(),
            "https://h:8774/v2.1/servers/x"
        );
    }

    #[test]
    fn server_json_with_fault() {
        let s: OneServer = serde_json::from_str(
            r#"{"server":{"id":"a","name":"n","status":"ERROR","metadata":{"k":"v"},
            "fault":{"code":500,"message":"No valid host was found.","created":"x"},
            "OS-SRV-USG:launched_at":null}}"#,
        )
        .unwrap();
        assert_eq!(
            s.server.fault.unwrap().message.as_deref(),
            Some("No valid host was found.")
        );
        assert_eq!(s.server.metadata["k"], "v");
    }
}
