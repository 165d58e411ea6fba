//! Glance v2 client: images, upload, interoperable import, download.

use std::collections::BTreeMap;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

#[derive(Clone)]
pub struct Glance {
    pub http: Http,
    /// The catalog URL, with or without a trailing `/v2`.
    pub url: Url,
    pub token: Secret,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    /// Every other property (`ad:appid`, `APPLIANCE_ATTRIBUTES`, ...).
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Image {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(|v| v.as_str())
    }
}

#[derive(Deserialize)]
struct Images {
    images: Vec<Image>,
    #[serde(default)]
    next: Option<String>,
}

/// What an upload or stage request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    Done,
    /// HTTP 403: policy forbids it; the text is what the site said.
    Forbidden(String),
}

impl Glance {
    fn base(&self) -> String {
        let b = self.url.as_str().trim_end_matches('/');
        b.strip_suffix("/v2").unwrap_or(b).to_string()
    }

    fn url(&self, path: &str) -> Result<Url, Fail> {
        Url::parse(&format!("{}/{}", self.base(), path.trim_start_matches('/')))
            .map_err(|e| Fail::critical(format!("bad image endpoint {}: {e}", self.url)))
    }

    fn req(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .header("X-Auth-Token", self.token.expose())
    }

    /// The image, or `None` on 404.
    pub async fn image(&self, id: &str) -> Result<Option<Image>, Fail> {
        let url = self.url(&format!("v2/images/{id}"))?;
        let reply = self.http.send(self.req(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.success()?.json().map(Some)
    }

    /// Images matching the query pairs, all pages (bounded).
    pub async fn images(&self, query: &[(&str, &str)]) -> Result<Vec<Image>, Fail> {
        let mut url = self.url("v2/images")?;
        url.query_pairs_mut()
            .append_pair("limit", "200")
            .extend_pairs(query);
        let mut out = Vec::new();
        for _ in 0..50 {
            let page: Images = self.http.json(self.req(Method::GET, url.clone())).await?;
            out.extend(page.images);
            match page.next {
                Some(next) if !next.is_empty() => url = self.url(&next)?,
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn create(&self, body: &Value) -> Result<Image, Fail> {
        let req = self
            .req(Method::POST, self.url("v2/images")?)
            .header("Content-Type", "application/json")
            .json(body);
        self.http.json(req).await
    }

    async fn put_data(&self, path: &str, data: Vec<u8>) -> Result<Transfer, Fail> {
        let req = self
            .req(Method::PUT, self.url(path)?)
            .header("Content-Type", "application/octet-stream")
            .body(data);
        let reply = self.http.send(req).await?;
        if reply.status == StatusCode::FORBIDDEN {
            return Ok(Transfer::Forbidden(reply.describe_body()));
        }
        reply.success()?;
        Ok(Transfer::Done)
    }

    /// `PUT /v2/images/{id}/file`.
    pub async fn upload(&self, id: &str, data: Vec<u8>) -> Result<Transfer, Fail> {
        self.put_data(&format!("v2/images/{id}/file"), data).await
    }

    /// `PUT /v2/images/{id}/stage` (glance-direct, first half).
    pub async fn stage(&self, id: &str, data: Vec<u8>) -> Result<Transfer, Fail> {
        self.put_data(&format!("v2/images/{id}/stage"), data).await
    }

    /// `POST /v2/images/{id}/import` with a method name.
    pub async fn import(&self, id: &str, method: &str) -> Result<(), Fail> {
        let body = serde_json::json!({"method": {"name": method}});
        let req = self
            .req(Method::POST, self.url(&format!("v2/images/{id}/import"))?)
            .json(&body);
        self.http.send(req).await?.success()?;
        Ok(())
    }

    /// `GET /v2/info/import`: the advertised import methods.
    pub async fn import_methods(&self) -> Result<Vec<String>, Fail> {
        let req = self.req(Method::GET, self.url("v2/info/import")?);
        let reply = self.http.send(req).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let v: Value = reply.success()?.json()?;
        Ok(v.pointer("/import-methods/value")
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn download(&self, id: &str) -> Result<Vec<u8>, Fail> {
        let req = self.req(Method::GET, self.url(&format!("v2/images/{id}/file"))?);
        let reply = self.http.send(req).await?.success()?;
        Ok(reply.body)
    }

    /// `DELETE`: true if accepted, false if already gone.
    pub async fn delete(&self, id: &str) -> Result<bool, Fail> {
        let url = self.url(&format!("v2/images/{id}"))?;
        let reply = self.http.send(self.req(Method::DELETE, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        reply.success()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_properties_are_kept() {
        let i: Image = serde_json::from_str(
            r#"{"id":"x","status":"active","size":null,"ad:appid":"1017",
            "APPLIANCE_ATTRIBUTES":"{\"eu.egi.cloud.image_ref\":\"r:1\"}","tags":[]}"#,
        )
        .unwrap();
        assert_eq!(i.property("ad:appid"), Some("1017"));
        assert!(i.property("APPLIANCE_ATTRIBUTES").unwrap().contains("r:1"));
        assert_eq!(i.size, None);
    }
}
