//! Google Compute Engine v1 and Cloud Storage v1 over REST: bearer token,
//! URLs from escaped segments (names a site answers cannot steer a request
//! elsewhere), Google's error shape read into the failure, operations.
//! Field names as in Google's discovery documents; no verdicts.

use std::collections::BTreeMap;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::service;
use crate::fail::Fail;
use crate::http::{BodyStream, Http, Reply, Sink};
use crate::secret::Secret;
use crate::text;

/// One Google REST API root (compute `.../compute/v1`, storage `.../`).
#[derive(Clone)]
pub struct Api {
    pub http: Http,
    base: Url,
    token: Secret,
}

impl Api {
    pub fn new(http: Http, base: &Url, token: Secret) -> Api {
        Api {
            http,
            base: service::base_url(base, None),
            token,
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn with_http(&self, http: Http) -> Api {
        Api {
            http,
            ..self.clone()
        }
    }

    pub fn url(&self, segments: &[&str]) -> Result<Url, Fail> {
        service::join(&self.base, segments)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/json")
    }

    async fn send(&self, req: RequestBuilder) -> Result<Reply, Fail> {
        self.http.send(req).await
    }

    /// `GET`: `None` on 404.
    pub async fn get_opt<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, Fail> {
        let reply = self.send(self.request(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok(reply)?.json().map(Some)
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<T, Fail> {
        let reply = self
            .send(self.request(Method::GET, url).query(query))
            .await?;
        ok(reply)?.json()
    }

    /// `POST` a JSON body (or none) for an [`Operation`].
    pub async fn post(
        &self,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Operation, Fail> {
        let mut req = self.request(Method::POST, url).query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        ok(self.send(req).await?)?.json()
    }

    /// `DELETE` for an [`Operation`]; `None` if already gone (404).
    pub async fn delete(&self, url: Url) -> Result<Option<Operation>, Fail> {
        let reply = self.send(self.request(Method::DELETE, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let reply = ok(reply)?;
        // Storage answers 204 without a body.
        if reply.body.is_empty() {
            return Ok(Some(Operation::default()));
        }
        reply.json().map(Some)
    }

    /// Cloud Storage simple media upload of `body` as `bucket/name`.
    pub async fn upload_object(
        &self,
        bucket: &str,
        name: &str,
        body: BodyStream,
    ) -> Result<Reply, Fail> {
        let url = self.url(&["upload", "storage", "v1", "b", bucket, "o"])?;
        let n = body.len();
        let req = self
            .request(Method::POST, url)
            .query(&[("uploadType", "media"), ("name", name)])
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", n.to_string())
            .body(body.into_body());
        self.send(req).await
    }

    pub async fn object(&self, bucket: &str, name: &str) -> Result<Option<Object>, Fail> {
        self.get_opt(self.url(&["storage", "v1", "b", bucket, "o", name])?)
            .await
    }

    pub async fn download_object(
        &self,
        bucket: &str,
        name: &str,
        sink: Sink<'_>,
    ) -> Result<u64, Fail> {
        let url = self.url(&["storage", "v1", "b", bucket, "o", name])?;
        let req = self.request(Method::GET, url).query(&[("alt", "media")]);
        let reply = ok(self.http.send_into(req, sink).await?)?;
        Ok(reply.streamed)
    }

    pub async fn delete_object(&self, bucket: &str, name: &str) -> Result<bool, Fail> {
        let url = self.url(&["storage", "v1", "b", bucket, "o", name])?;
        Ok(self.delete(url).await?.is_some())
    }
}

/// The reply if 2xx, else a CRITICAL with Google's error reason and message.
pub fn ok(reply: Reply) -> Result<Reply, Fail> {
    if reply.is_success() {
        return Ok(reply);
    }
    Err(google_error(&reply))
}

/// `HTTP 403 rateLimitExceeded: Rate Limit Exceeded (GET url)`; the plain
/// description when the body is not Google's error shape.
pub fn google_error(reply: &Reply) -> Fail {
    #[derive(Deserialize)]
    struct Body {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        message: String,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        errors: Vec<Reason>,
    }
    #[derive(Deserialize)]
    struct Reason {
        #[serde(default)]
        reason: String,
    }
    let Ok(b) = serde_json::from_slice::<Body>(&reply.body) else {
        return reply.unexpected();
    };
    let reason = b
        .error
        .errors
        .first()
        .map(|r| r.reason.clone())
        .filter(|r| !r.is_empty())
        .or(b.error.status)
        .unwrap_or_default();
    let mut msg = format!("HTTP {} {reason}", reply.status.as_u16());
    if let Some(ra) = reply.header("retry-after") {
        msg.push_str(&format!(" (Retry-After: {ra})"));
    }
    msg.push_str(&format!(
        ": {} ({})",
        text::one_line(&b.error.message, 200),
        reply.request_line()
    ));
    Fail::critical(msg).with_http(reply.facts())
}

/// A zone or global operation (compute#operation).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub operation_type: Option<String>,
    #[serde(default)]
    pub error: Option<OperationErrors>,
    #[serde(default)]
    pub http_error_message: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct OperationErrors {
    #[serde(default)]
    pub errors: Vec<OperationError>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct OperationError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl Operation {
    pub fn done(&self) -> bool {
        self.status == "DONE"
    }

    /// The operation's errors in one line, if it failed.
    pub fn failure(&self) -> Option<String> {
        let e = self.error.as_ref().filter(|e| !e.errors.is_empty())?;
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|x| format!("{}: {}", x.code, text::one_line(&x.message, 200)))
            .collect();
        Some(parts.join("; "))
    }
}

/// compute#instance, the fields the probes read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub machine_type: Option<String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub last_start_timestamp: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub disks: Vec<AttachedDisk>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub items: Vec<MetadataItem>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct MetadataItem {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedDisk {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(default)]
    pub boot: Option<bool>,
}

/// compute#disk.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    /// int64 as a string, as Google sends it.
    #[serde(default)]
    pub size_gb: Option<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub self_link: Option<String>,
}

/// compute#image.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub archive_size_bytes: Option<String>,
    #[serde(default)]
    pub disk_size_gb: Option<String>,
    #[serde(default)]
    pub self_link: Option<String>,
}

/// compute#machineType.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineType {
    pub name: String,
    #[serde(default)]
    pub guest_cpus: u64,
    #[serde(default)]
    pub memory_mb: u64,
}

/// A list answer: `items` (absent when empty) and the next page's token.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// storage#object.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    #[serde(default)]
    pub size: Option<String>,
    /// Base64 of the MD5 digest.
    #[serde(default)]
    pub md5_hash: Option<String>,
}

/// Pages of a list, at most `max` (a token that repeats is a loop).
pub async fn list_all<T: DeserializeOwned>(
    api: &Api,
    url: Url,
    filter: Option<&str>,
    max: usize,
) -> Result<Vec<T>, Fail> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..max {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(f) = filter {
            q.push(("filter", f));
        }
        if let Some(t) = &token {
            q.push(("pageToken", t));
        }
        let page: List<T> = api.get(url.clone(), &q).await?;
        out.extend(page.items);
        match page.next_page_token.filter(|t| !t.is_empty()) {
            None => return Ok(out),
            Some(t) if !seen.insert(t.clone()) => {
                return Err(Fail::critical(format!(
                    "paging loops: pageToken {} repeats",
                    text::one_line(&t, 60)
                )))
            }
            Some(t) => token = Some(t),
        }
    }
    Err(Fail::critical(format!("more than {max} pages")))
}

/// The last segment of a resource URL (`.../machineTypes/e2-micro`).
pub fn last_segment(link: &str) -> &str {
    link.rsplit('/').next().unwrap_or(link)
}

/// A label value GCE accepts: lower case, `[a-z0-9_-]`, at most 63.
pub fn label_value(v: &str) -> String {
    v.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_what_gce_accepts() {
        assert_eq!(label_value("Mon.Example.ORG"), "mon_example_org");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
        assert_eq!(label_value("fedprobe-1a_2"), "fedprobe-1a_2");
    }

    #[test]
    fn operation_failure_reads_every_error() {
        let op: Operation = serde_json::from_str(
            r#"{"name":"op","status":"DONE","error":{"errors":[{"code":"QUOTA_EXCEEDED","message":"Quota 'CPUS' exceeded"}]}}"#,
        )
        .unwrap();
        assert!(op.done());
        assert_eq!(
            op.failure().unwrap(),
            "QUOTA_EXCEEDED: Quota 'CPUS' exceeded"
        );
        let fine: Operation = serde_json::from_str(r#"{"status":"RUNNING"}"#).unwrap();
        assert!(!fine.done() && fine.failure().is_none());
    }
}
