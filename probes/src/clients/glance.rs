//! Glance v2 client: images, upload, interoperable import, download.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::service::Service;
use crate::fail::Fail;
use crate::http::{BodyStream, Http, Sink};
use crate::secret::Secret;

/// Glance v2 at a catalog URL given with or without a trailing `/v2`.
#[derive(Clone)]
pub struct Glance {
    svc: Service,
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

/// Images asked per page.
const PAGE: &str = "200";
const MAX_PAGES: usize = 1000;

impl Glance {
    pub fn new(http: Http, url: &Url, token: Secret) -> Glance {
        Glance {
            svc: Service::new(http, url, Some("v2"), Some(token)),
        }
    }

    fn image_url(&self, id: &str, sub: Option<&str>) -> Result<Url, Fail> {
        match sub {
            Some(sub) => self.svc.url(&["v2", "images", id, sub]),
            None => self.svc.url(&["v2", "images", id]),
        }
    }

    /// The image, or `None` on 404.
    pub async fn image(&self, id: &str) -> Result<Option<Image>, Fail> {
        self.svc.get_opt(self.image_url(id, None)?).await
    }

    /// Images matching the query pairs, all pages (bounded).
    pub async fn images(&self, query: &[(&str, &str)]) -> Result<Vec<Image>, Fail> {
        let mut url = self.svc.url(&["v2", "images"])?;
        url.query_pairs_mut()
            .append_pair("limit", PAGE)
            .extend_pairs(query);
        let mut out = Vec::new();
        self.svc
            .paged(url, MAX_PAGES, |page: Images| {
                let empty = page.images.is_empty();
                out.extend(page.images);
                // An empty page ends the list even if a `next` is given.
                page.next.filter(|_| !empty)
            })
            .await?;
        Ok(out)
    }

    /// `POST /v2/images`; the id it answers is refused if it cannot name an
    /// image in a URL.
    pub async fn create(&self, body: &Value) -> Result<Image, Fail> {
        let req = self
            .svc
            .request(Method::POST, self.svc.url(&["v2", "images"])?)
            .header("Content-Type", "application/json")
            .json(body);
        let img: Image = self.svc.http.json(req).await?;
        self.image_url(&img.id, None)
            .map_err(|f| f.context("POST /v2/images answered"))?;
        Ok(img)
    }

    async fn put_data(&self, url: Url, body: BodyStream) -> Result<Transfer, Fail> {
        let req = self
            .svc
            .request(Method::PUT, url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", body.len())
            .body(body.into_body());
        let reply = self.svc.send(req).await?;
        if reply.status == StatusCode::FORBIDDEN {
            return Ok(Transfer::Forbidden(reply.describe_body()));
        }
        reply.success()?;
        Ok(Transfer::Done)
    }

    /// `PUT /v2/images/{id}/file`, the data streamed from `body`.
    pub async fn upload(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        self.put_data(self.image_url(id, Some("file"))?, body).await
    }

    /// `PUT /v2/images/{id}/stage` (glance-direct, first half), streamed.
    pub async fn stage(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        self.put_data(self.image_url(id, Some("stage"))?, body)
            .await
    }

    /// `POST /v2/images/{id}/import` with a method name.
    pub async fn import(&self, id: &str, method: &str) -> Result<(), Fail> {
        let body = serde_json::json!({"method": {"name": method}});
        let req = self
            .svc
            .request(Method::POST, self.image_url(id, Some("import"))?)
            .json(&body);
        self.svc.send(req).await?.success()?;
        Ok(())
    }

    /// `GET /v2/info/import`: the advertised import methods.
    pub async fn import_methods(&self) -> Result<Vec<String>, Fail> {
        let v: Option<Value> = self
            .svc
            .get_opt(self.svc.url(&["v2", "info", "import"])?)
            .await?;
        Ok(v.as_ref()
            .and_then(|v| v.pointer("/import-methods/value"))
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET /v2/images/{id}/file`, each piece handed to `sink` as it
    /// arrives; returns the bytes received.
    pub async fn download(&self, id: &str, sink: Sink<'_>) -> Result<u64, Fail> {
        let req = self
            .svc
            .request(Method::GET, self.image_url(id, Some("file"))?);
        let reply = self.svc.http.send_into(req, sink).await?.success()?;
        Ok(reply.streamed)
    }

    /// DELETE the image; `Ok(false)` when it was already gone. Glance
    /// answers a delete that crossed another (one cut by a signal, then the
    /// cleanup's) with 400 "status transition from deleted to deleted": a
    /// look that finds it gone (404, or status `deleted`) says so instead.
    pub async fn delete(&self, id: &str) -> Result<bool, Fail> {
        match self.svc.delete(self.image_url(id, None)?).await {
            Err(e) if matches!(e.http_status(), Some(400 | 409)) => match self.image(id).await {
                Ok(None) => Ok(false),
                Ok(Some(i)) if i.status == "deleted" => Ok(false),
                _ => Err(e),
            },
            done => done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Glance answering DELETE with `delete` and GET with `look`
    /// (status and JSON body).
    async fn answering(
        delete: (u16, &str),
        look: Option<(u16, &str)>,
    ) -> (wiremock::MockServer, Url) {
        use wiremock::{matchers::method, Mock, ResponseTemplate};
        let server = wiremock::MockServer::start().await;
        let reply = |(status, body): (u16, &str)| {
            ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/json")
        };
        Mock::given(method("DELETE"))
            .respond_with(reply(delete))
            .mount(&server)
            .await;
        if let Some(look) = look {
            Mock::given(method("GET"))
                .respond_with(reply(look))
                .mount(&server)
                .await;
        }
        let url = Url::parse(&format!("{}/", server.uri())).unwrap();
        (server, url)
    }

    fn glance(url: &Url) -> Glance {
        Glance::new(crate::http::test_client(), url, Secret::new("t0ken"))
    }

    const CROSSED: (u16, &str) = (
        400,
        r#"{"message": "Image status transition from deleted to deleted is not allowed"}"#,
    );

    #[tokio::test]
    async fn a_delete_that_crossed_another_is_already_gone_once_a_look_agrees() {
        let (_s, url) = answering(CROSSED, Some((404, "{}"))).await;
        assert!(!glance(&url).delete("i1").await.unwrap());
        let (_s, url) = answering(CROSSED, Some((200, r#"{"id":"i1","status":"deleted"}"#))).await;
        assert!(!glance(&url).delete("i1").await.unwrap());
        // Still there: the 400 stands.
        let (_s, url) = answering(CROSSED, Some((200, r#"{"id":"i1","status":"active"}"#))).await;
        let e = glance(&url).delete("i1").await.unwrap_err();
        assert_eq!(e.http_status(), Some(400));
        let (_s, url) = answering((204, ""), None).await;
        assert!(glance(&url).delete("i1").await.unwrap());
    }

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
