//! Cinder (block storage v3) client: volumes create/show/list/delete, the
//! project's absolute limits and the user messages that say why a volume
//! failed. Every request carries the volume microversion.

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::service::Service;
use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

/// 3.3 has user messages, 3.12 the volume summary; every Cinder since Pike
/// speaks both.
pub const MICROVERSION: &str = "3.12";

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Attachment {
    #[serde(default)]
    pub server_id: Option<String>,
    #[serde(default)]
    pub attachment_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Volume {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Deserialize)]
struct OneVolume {
    volume: Volume,
}

#[derive(Deserialize)]
struct Volumes {
    volumes: Vec<Volume>,
    #[serde(default)]
    volumes_links: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    rel: String,
    #[serde(default)]
    href: String,
}

/// The absolute limits that bound one more volume; `None` max is unlimited
/// (Cinder says -1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_volumes: Option<u64>,
    pub used_volumes: u64,
    pub max_gb: Option<u64>,
    pub used_gb: u64,
}

#[derive(Clone)]
pub struct Cinder {
    svc: Service,
}

impl Cinder {
    /// The catalog URL normally ends in the project; a bare `/v3` gets it added.
    pub fn new(http: Http, url: &Url, token: Secret, project: &str) -> Result<Cinder, Fail> {
        let mut svc = Service::new(http, url, None, Some(token))
            .with_header("OpenStack-API-Version", format!("volume {MICROVERSION}"));
        if svc.base().path().ends_with("/v3") {
            let with_project = svc.url(&[project])?;
            svc = svc.rebase(&with_project);
        }
        Ok(Cinder { svc })
    }

    /// `POST /volumes`; returns the new volume's id, refused if it cannot
    /// name a volume in a URL.
    pub async fn create_volume(&self, body: &Value) -> Result<String, Fail> {
        let req = self
            .svc
            .json_request(Method::POST, self.svc.url(&["volumes"])?)
            .json(body);
        let v: OneVolume = self.svc.send(req).await?.success()?.json()?;
        self.svc
            .url(&["volumes", &v.volume.id])
            .map_err(|f| f.context("POST /volumes answered"))?;
        Ok(v.volume.id)
    }

    /// The volume, or `None` once it is gone (404).
    pub async fn volume(&self, id: &str) -> Result<Option<Volume>, Fail> {
        let v: Option<OneVolume> = self.svc.get_opt(self.svc.url(&["volumes", id])?).await?;
        Ok(v.map(|v| v.volume))
    }

    /// `DELETE /volumes/{id}`: true if accepted, false if already gone.
    pub async fn delete_volume(&self, id: &str) -> Result<bool, Fail> {
        self.svc.delete(self.svc.url(&["volumes", id])?).await
    }

    /// The project's volumes with details, all pages.
    pub async fn volumes_detail(&self) -> Result<Vec<Volume>, Fail> {
        let mut out = Vec::new();
        let first = self.svc.url(&["volumes", "detail"])?;
        self.svc
            .paged(first, 50, |page: Volumes| {
                out.extend(page.volumes);
                page.volumes_links
                    .into_iter()
                    .find(|l| l.rel == "next")
                    .map(|l| l.href)
            })
            .await?;
        Ok(out)
    }

    /// `GET /limits`: the absolute volume and gigabyte limits and usage.
    pub async fn limits(&self) -> Result<Limits, Fail> {
        let v: Value = self.svc.get_json(self.svc.url(&["limits"])?).await?;
        parse_limits(&v)
    }

    /// The user messages about `resource` (why a volume went to error),
    /// newest last. A Cinder without the messages API gives none.
    pub async fn messages(&self, resource: &str) -> Result<Vec<String>, Fail> {
        let mut url = self.svc.url(&["messages"])?;
        url.query_pairs_mut().append_pair("resource_uuid", resource);
        let v: Option<Value> = match self.svc.get_opt(url).await {
            Ok(v) => v,
            // Not offered (old API, policy): no reason to quote.
            Err(f) if matches!(f.http_status(), Some(400 | 403 | 405 | 406)) => None,
            Err(f) => return Err(f),
        };
        let mut out: Vec<(String, String)> = v
            .as_ref()
            .and_then(|v| v.get("messages"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|m| m.get("resource_uuid").and_then(Value::as_str) == Some(resource))
                    .filter_map(|m| {
                        let text = m.get("user_message")?.as_str()?.to_string();
                        let at = m
                            .get("created_at")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        Some((at, text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }
}

fn parse_limits(v: &Value) -> Result<Limits, Fail> {
    let abs = v
        .pointer("/limits/absolute")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fail::critical(format!(
                "limits: no \"limits.absolute\" in {}",
                crate::text::one_line(&v.to_string(), 120)
            ))
        })?;
    let num = |k: &str| abs.get(k).and_then(Value::as_i64);
    let max = |k: &str| num(k).and_then(|n| u64::try_from(n).ok());
    Ok(Limits {
        max_volumes: max("maxTotalVolumes"),
        used_volumes: max("totalVolumesUsed").unwrap_or(0),
        max_gb: max("maxTotalVolumeGigabytes"),
        used_gb: max("totalGigabytesUsed").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_with_unlimited_and_missing_usage() {
        let v: Value = serde_json::from_str(
            r#"{"limits":{"rate":[],"absolute":{"maxTotalVolumes":10,"totalVolumesUsed":3,
            "maxTotalVolumeGigabytes":-1}}}"#,
        )
        .unwrap();
        assert_eq!(
            parse_limits(&v).unwrap(),
            Limits {
                max_volumes: Some(10),
                used_volumes: 3,
                max_gb: None,
                used_gb: 0
            }
        );
        assert!(parse_limits(&serde_json::json!({"x": 1})).is_err());
    }

    #[test]
    fn volume_json_with_attachment() {
        let v: OneVolume = serde_json::from_str(
            r#"{"volume":{"id":"v","status":"in-use","size":1,"name":null,
            "attachments":[{"server_id":"s","attachment_id":"a","device":"/dev/sdb"}],
            "metadata":{"fedprobe-run":"r"}}}"#,
        )
        .unwrap();
        assert_eq!(v.volume.attachments[0].server_id.as_deref(), Some("s"));
        assert_eq!(v.volume.metadata["fedprobe-run"], "r");
    }
}
