//! Nova (compute v2.1) client: versions, flavors, servers, volume attachments, absolute limits.

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde::Deserialize;

use super::service::Service;
use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

/// The microversion we speak when the site offers it: `networks` is then
/// required and may be `none`/`auto` (2.37).
pub const MICROVERSION: (u32, u32) = (2, 37);

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
    svc: Service,
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
    /// Listed from microversion 2.61 on.
    #[serde(default)]
    pub extra_specs: Option<BTreeMap<String, serde_json::Value>>,
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
struct VolumeAttachments {
    #[serde(rename = "volumeAttachments", default)]
    volume_attachments: Vec<VolumeAttachment>,
}

#[derive(Deserialize)]
struct VolumeAttachment {
    #[serde(rename = "volumeId")]
    volume_id: String,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    rel: String,
    #[serde(default)]
    href: String,
}

/// `GET /limits`'s absolute part: the compute quota and its use (`-1`: unlimited).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbsoluteLimits {
    pub max_total_instances: Option<i64>,
    pub total_instances_used: Option<i64>,
    pub max_total_cores: Option<i64>,
    pub total_cores_used: Option<i64>,
    #[serde(rename = "maxTotalRAMSize")]
    pub max_total_ram_size: Option<i64>,
    #[serde(rename = "totalRAMUsed")]
    pub total_ram_used: Option<i64>,
}

#[derive(Deserialize)]
struct LimitsDoc {
    limits: LimitsBody,
}

#[derive(Deserialize)]
struct LimitsBody {
    absolute: AbsoluteLimits,
}

impl Nova {
    pub fn new(http: Http, url: &Url, token: Secret, microversion: Option<&str>) -> Nova {
        let mut svc = Service::new(http, url, None, Some(token));
        if let Some(v) = microversion {
            svc = svc
                .with_header("OpenStack-API-Version", format!("compute {v}"))
                .with_header("X-OpenStack-Nova-API-Version", v);
        }
        Nova { svc }
    }

    /// `GET` on the versioned endpoint: its `version`/`min_version`.
    pub async fn version(&self) -> Result<Version, Fail> {
        let doc: VersionDoc = self.svc.get_json(self.svc.url(&[])?).await?;
        if let Some(v) = doc.version {
            return Ok(v);
        }
        // An unversioned root: take the CURRENT v2.1 entry.
        doc.versions
            .into_iter()
            .find(|v| v.id == "v2.1")
            .ok_or_else(|| {
                Fail::critical(format!(
                    "GET {}: no v2.1 version listed",
                    crate::http::show_url(self.svc.base())
                ))
            })
    }

    /// Flavors with details; `query` pairs such as `minDisk` or `is_public`.
    pub async fn flavors(&self, query: &[(&str, &str)]) -> Result<Vec<Flavor>, Fail> {
        let mut url = self.svc.url(&["flavors", "detail"])?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let f: Flavors = self.svc.get_json(url).await?;
        Ok(f.flavors)
    }

    /// `GET /flavors/{id}/os-extra_specs` (before microversion 2.61); `None`
    /// once the flavor is gone.
    pub async fn extra_specs(
        &self,
        id: &str,
    ) -> Result<Option<BTreeMap<String, serde_json::Value>>, Fail> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            extra_specs: BTreeMap<String, serde_json::Value>,
        }
        let d: Option<Doc> = self
            .svc
            .get_opt(self.svc.url(&["flavors", id, "os-extra_specs"])?)
            .await?;
        Ok(d.map(|d| d.extra_specs))
    }

    /// `GET /limits`: the project's absolute compute limits and their use.
    pub async fn limits(&self) -> Result<AbsoluteLimits, Fail> {
        let d: LimitsDoc = self.svc.get_json(self.svc.url(&["limits"])?).await?;
        Ok(d.limits.absolute)
    }

    /// `POST /servers`; returns the new server's id (202 expected). An id
    /// that cannot name a server in a URL is refused here, before any use.
    pub async fn create_server(&self, body: &serde_json::Value) -> Result<String, Fail> {
        let req = self
            .svc
            .json_request(Method::POST, self.svc.url(&["servers"])?)
            .json(body);
        let reply = self.svc.send(req).await?.success()?;
        let c: Created = reply.json()?;
        self.svc
            .url(&["servers", &c.server.id])
            .map_err(|f| f.context("POST /servers answered"))?;
        Ok(c.server.id)
    }

    /// The server, or `None` once it is gone (404).
    pub async fn server(&self, id: &str) -> Result<Option<Server>, Fail> {
        let s: Option<OneServer> = self.svc.get_opt(self.svc.url(&["servers", id])?).await?;
        Ok(s.map(|s| s.server))
    }

    /// `DELETE /servers/{id}`: true if accepted, false if already gone.
    pub async fn delete_server(&self, id: &str) -> Result<bool, Fail> {
        self.svc.delete(self.svc.url(&["servers", id])?).await
    }

    /// `POST /servers/{id}/os-volume_attachments`: ask Nova to attach a volume.
    pub async fn attach_volume(&self, server_id: &str, volume_id: &str) -> Result<(), Fail> {
        let url = self
            .svc
            .url(&["servers", server_id, "os-volume_attachments"])?;
        let body = serde_json::json!({ "volumeAttachment": { "volumeId": volume_id } });
        let req = self.svc.json_request(Method::POST, url).json(&body);
        self.svc.send(req).await?.success()?;
        Ok(())
    }

    /// `DELETE /servers/{id}/os-volume_attachments/{volume}`: false when
    /// there was no such attachment (404).
    pub async fn detach_volume(&self, server_id: &str, volume_id: &str) -> Result<bool, Fail> {
        let url = self
            .svc
            .url(&["servers", server_id, "os-volume_attachments", volume_id])?;
        self.svc.delete(url).await
    }

    /// The ids of the volumes attached to a server, as Nova lists them;
    /// `None` when the server is gone.
    pub async fn volume_attachments(&self, server_id: &str) -> Result<Option<Vec<String>>, Fail> {
        let url = self
            .svc
            .url(&["servers", server_id, "os-volume_attachments"])?;
        let a: Option<VolumeAttachments> = self.svc.get_opt(url).await?;
        Ok(a.map(|a| {
            a.volume_attachments
                .into_iter()
                .map(|v| v.volume_id)
                .collect()
        }))
    }

    /// The project's servers with details (metadata included), all pages.
    pub async fn servers_detail(&self) -> Result<Vec<Server>, Fail> {
        let mut out = Vec::new();
        let first = self.svc.url(&["servers", "detail"])?;
        self.svc
            .paged(first, 50, |page: Servers| {
                out.extend(page.servers);
                page.servers_links
                    .into_iter()
                    .find(|l| l.rel == "next")
                    .map(|l| l.href)
            })
            .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.104"), Some((2, 104)));
        assert_eq!(parse_version(""), None);
        assert!(parse_version("2.37").unwrap() >= MICROVERSION);
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
