//! Swift (object-store v1) client: containers and objects of the token's
//! account. Container and object names are escaped as one path segment each,
//! so a name with `/`, `?` or `..` names exactly that object.

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::service::Service;
use crate::fail::Fail;
use crate::http::{BodyStream, Http, Reply, Sink};
use crate::secret::Secret;

/// The account at the catalog's `object-store` URL (`.../v1/AUTH_<project>`).
#[derive(Clone)]
pub struct Swift {
    svc: Service,
}

/// One entry of a container listing (`?format=json`).
#[derive(Clone, Debug, Deserialize)]
pub struct Listed {
    pub name: String,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub hash: Option<String>,
}

/// An object as read back (its bytes went to the caller's sink): how many
/// came, and the ETag header.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: u64,
    pub etag: Option<String>,
}

/// Entries asked per listing page; a probe's container holds a handful.
const PAGE: usize = 1000;
const MAX_PAGES: usize = 100;

/// An ETag without the quotes some proxies add.
pub fn bare_etag(v: &str) -> String {
    v.trim().trim_matches('"').to_ascii_lowercase()
}

impl Swift {
    pub fn new(http: Http, account: &Url, token: Secret) -> Swift {
        Swift {
            svc: Service::new(http, account, None, Some(token)),
        }
    }

    pub fn account(&self) -> &Url {
        self.svc.base()
    }

    fn container_url(&self, c: &str) -> Result<Url, Fail> {
        self.svc.url(&[c])
    }

    fn object_url(&self, c: &str, o: &str) -> Result<Url, Fail> {
        self.svc.url(&[c, o])
    }

    /// `PUT /{container}` with `X-Container-Meta-*` headers.
    pub async fn put_container(&self, c: &str, meta: &[(&str, &str)]) -> Result<(), Fail> {
        let mut req = self.svc.request(Method::PUT, self.container_url(c)?);
        for (k, v) in meta {
            req = req.header(format!("X-Container-Meta-{k}"), *v);
        }
        self.svc.send(req).await?.success()?;
        Ok(())
    }

    /// `HEAD /{container}`: false on 404.
    pub async fn container_exists(&self, c: &str) -> Result<bool, Fail> {
        let url = self.container_url(c)?;
        exists(self.svc.send(self.svc.request(Method::HEAD, url)).await?)
    }

    /// `PUT /{container}/{object}`, the data streamed from `body` (its
    /// length declared); returns the ETag the site answered.
    pub async fn put_object(
        &self,
        c: &str,
        o: &str,
        body: BodyStream,
        meta: &[(&str, &str)],
    ) -> Result<Option<String>, Fail> {
        let mut req = self
            .svc
            .request(Method::PUT, self.object_url(c, o)?)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", body.len());
        for (k, v) in meta {
            req = req.header(format!("X-Object-Meta-{k}"), *v);
        }
        let reply = self.svc.send(req.body(body.into_body())).await?.success()?;
        Ok(reply.header("etag").map(bare_etag))
    }

    /// `GET /{container}/{object}`, each piece handed to `sink` as it
    /// arrives: `None` on 404.
    pub async fn get_object(
        &self,
        c: &str,
        o: &str,
        sink: Sink<'_>,
    ) -> Result<Option<Fetched>, Fail> {
        let url = self.object_url(c, o)?;
        let reply = self
            .svc
            .http
            .send_into(self.svc.request(Method::GET, url), sink)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let reply = reply.success()?;
        let etag = reply.header("etag").map(bare_etag);
        Ok(Some(Fetched {
            bytes: reply.streamed,
            etag,
        }))
    }

    /// `HEAD /{container}/{object}`: false on 404.
    pub async fn object_exists(&self, c: &str, o: &str) -> Result<bool, Fail> {
        let url = self.object_url(c, o)?;
        exists(self.svc.send(self.svc.request(Method::HEAD, url)).await?)
    }

    /// The container's objects, all pages (bounded); `None` on 404.
    pub async fn list(&self, c: &str) -> Result<Option<Vec<Listed>>, Fail> {
        let mut out: Vec<Listed> = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut url = self.container_url(c)?;
            url.query_pairs_mut()
                .append_pair("format", "json")
                .append_pair("limit", &PAGE.to_string());
            if let Some(last) = out.last() {
                url.query_pairs_mut().append_pair("marker", &last.name);
            }
            let reply = self
                .svc
                .send(self.svc.json_request(Method::GET, url))
                .await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let reply = reply.success()?;
            // An empty container may answer 204 with no body.
            let page: Vec<Listed> = if reply.body.is_empty() {
                Vec::new()
            } else {
                reply.json()?
            };
            let n = page.len();
            out.extend(page);
            if n < PAGE {
                return Ok(Some(out));
            }
        }
        Err(Fail::critical(format!(
            "container {c} lists more than {} objects",
            PAGE * MAX_PAGES
        )))
    }

    /// `DELETE /{container}/{object}`: false if already gone.
    pub async fn delete_object(&self, c: &str, o: &str) -> Result<bool, Fail> {
        self.svc.delete(self.object_url(c, o)?).await
    }

    /// `DELETE /{container}`: false if already gone. A non-empty container
    /// answers 409, a CRITICAL here.
    pub async fn delete_container(&self, c: &str) -> Result<bool, Fail> {
        self.svc.delete(self.container_url(c)?).await
    }
}

fn exists(reply: Reply) -> Result<bool, Fail> {
    if reply.status == StatusCode::NOT_FOUND {
        return Ok(false);
    }
    reply.success()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swift(account: &str) -> Swift {
        let http = crate::http::test_client();
        Swift::new(http, &Url::parse(account).unwrap(), Secret::new("t"))
    }

    #[tokio::test]
    async fn names_are_one_segment_each() {
        let s = swift("https://h:8080/v1/AUTH_p/");
        assert_eq!(
            s.object_url("c", "a/b c?.bin").unwrap().as_str(),
            "https://h:8080/v1/AUTH_p/c/a%2Fb%20c%3F.bin"
        );
        assert_eq!(
            s.container_url("../AUTH_other").unwrap().as_str(),
            "https://h:8080/v1/AUTH_p/..%2FAUTH_other"
        );
        assert!(s.object_url("c", "..").is_err());
    }

    #[test]
    fn etags_lose_quotes_and_case() {
        assert_eq!(bare_etag("\"ABC\""), "abc");
        assert_eq!(bare_etag("abc"), "abc");
    }
}
