//! One REST layer for every OpenStack-style service: the base URL, the token
//! header, URLs built from escaped segments, JSON calls and paging that stays
//! on the service. Identifiers a site answers (server, image ids, names, next
//! links) go through here, so a hostile answer cannot steer a request to
//! another API path.

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::fail::Fail;
use crate::http::{show_url, Http, Reply};
use crate::secret::Secret;
use crate::text;

/// One service endpoint: where it is and how to authenticate to it.
#[derive(Clone)]
pub struct Service {
    pub http: Http,
    /// No query, no fragment, no trailing slash.
    base: Url,
    token: Option<Secret>,
    headers: Vec<(&'static str, String)>,
}

/// `url` without query, fragment, trailing slash and a trailing `suffix`
/// (such as `v2`, so both `https://h/image` and `https://h/image/v2/` work).
pub fn base_url(url: &Url, suffix: Option<&str>) -> Url {
    let mut b = url.clone();
    b.set_query(None);
    b.set_fragment(None);
    let trimmed = b.path().trim_end_matches('/').to_string();
    let path = match suffix {
        Some(s) => trimmed
            .strip_suffix(&format!("/{s}"))
            .unwrap_or(&trimmed)
            .to_string(),
        None => trimmed,
    };
    b.set_path(&path);
    b
}

/// `{base}/{segments...}`, each segment escaped as one path segment. A
/// segment that cannot be one (empty, `.`, `..`, or holding a control
/// character: the URL parser drops tabs and line breaks unescaped, so `.\n.`
/// would become `..`) is a CRITICAL: such an id would name another resource.
pub fn join(base: &Url, segments: &[&str]) -> Result<Url, Fail> {
    let unusable = |s: &str| matches!(s, "" | "." | "..") || s.chars().any(char::is_control);
    if let Some(bad) = segments.iter().find(|s| unusable(s)) {
        return Err(Fail::critical(format!(
            "malformed id {:?}: not usable as a path segment under {}",
            text::one_line(bad, 80),
            show_url(base)
        )));
    }
    let mut u = base.clone();
    u.path_segments_mut()
        .map_err(|_| Fail::unknown(format!("bad endpoint URL {}", show_url(base))))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

impl Service {
    /// `base` as the catalog gives it; see [`base_url`] for `suffix`.
    pub fn new(http: Http, base: &Url, suffix: Option<&str>, token: Option<Secret>) -> Service {
        Service {
            http,
            base: base_url(base, suffix),
            token,
            headers: Vec::new(),
        }
    }

    /// A header sent on every request (e.g. a microversion).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Service {
        self.headers.push((name, value.into()));
        self
    }

    /// The same service at another base (e.g. with a project appended).
    pub fn rebase(mut self, base: &Url) -> Service {
        self.base = base.clone();
        self
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `{base}/{segments...}`, see [`join`].
    pub fn url(&self, segments: &[&str]) -> Result<Url, Fail> {
        join(&self.base, segments)
    }

    /// A request with the token and the service's headers.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.header("X-Auth-Token", t.expose());
        }
        for (k, v) in &self.headers {
            r = r.header(*k, v.as_str());
        }
        r
    }

    /// [`Service::request`] asking for JSON.
    pub fn json_request(&self, method: Method, url: Url) -> RequestBuilder {
        self.request(method, url)
            .header("Accept", "application/json")
    }

    pub async fn send(&self, req: RequestBuilder) -> Result<Reply, Fail> {
        self.http.send(req).await
    }

    /// `GET`, 2xx required, JSON into `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, Fail> {
        self.http.json(self.json_request(Method::GET, url)).await
    }

    /// `GET`: `None` on 404, else 2xx required.
    pub async fn get_opt<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, Fail> {
        let reply = self.send(self.json_request(Method::GET, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        reply.success()?.json().map(Some)
    }

    /// `DELETE`: true if accepted, false if already gone (404).
    pub async fn delete(&self, url: Url) -> Result<bool, Fail> {
        let reply = self.send(self.json_request(Method::DELETE, url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        reply.success()?;
        Ok(true)
    }

    /// A paging link as the site gave it: absolute, or relative to the
    /// service root. It must stay on this service (scheme, host, port, under
    /// the base path); anything else is a CRITICAL, never a request.
    pub fn follow(&self, href: &str) -> Result<Url, Fail> {
        let refuse = |why: &str| {
            Fail::critical(format!(
                "next link {:?} {why} {}",
                text::one_line(href, 120),
                show_url(&self.base)
            ))
        };
        let url = match Url::parse(href) {
            Ok(u) => u,
            Err(_) => {
                // Relative to the service root, as Glance writes `/v2/images?marker=`;
                // `//host/..` stays protocol-relative and is refused below.
                let root = format!("{}/", self.base.as_str().trim_end_matches('/'));
                let rel = href.strip_prefix('/').unwrap_or(href);
                Url::parse(&root)
                    .and_then(|r| r.join(rel))
                    .map_err(|_| refuse("is not a URL under"))?
            }
        };
        if url.origin() != self.base.origin() {
            return Err(refuse("leaves the service"));
        }
        let base_path = self.base.path().trim_end_matches('/');
        let inside = url.path() == base_path
            || url
                .path()
                .strip_prefix(base_path)
                .is_some_and(|rest| rest.starts_with('/'));
        if !inside || url.username() != "" || url.password().is_some() {
            return Err(refuse("leaves the service"));
        }
        Ok(url)
    }

    /// Read pages from `first`: `take` consumes each page and returns the
    /// next link (see [`Service::follow`]), if any. At most `max` pages; a
    /// link that repeats is a loop. Returns the number of pages read.
    pub async fn paged<P, F>(&self, first: Url, max: usize, mut take: F) -> Result<usize, Fail>
    where
        P: DeserializeOwned,
        F: FnMut(P) -> Option<String>,
    {
        let mut url = first;
        let mut seen = std::collections::HashSet::new();
        for page in 1..=max {
            seen.insert(url.clone());
            let p: P = self.get_json(url.clone()).await?;
            match take(p).filter(|n| !n.is_empty()) {
                None => return Ok(page),
                Some(next) => {
                    url = self.follow(&next)?;
                    if seen.contains(&url) {
                        return Err(Fail::critical(format!(
                            "paging loops: next link {} repeats",
                            show_url(&url)
                        )));
                    }
                }
            }
        }
        Err(Fail::critical(format!(
            "more than {max} pages from {}",
            show_url(&self.base)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(base: &str, suffix: Option<&str>) -> Service {
        let http = crate::http::test_client();
        Service::new(http, &Url::parse(base).unwrap(), suffix, None)
    }

    #[tokio::test]
    async fn segments_are_escaped_one_by_one() {
        let s = svc("https://h:8774/v2.1/", None);
        let u = |segs: &[&str]| s.url(segs).map(|u| u.to_string());
        assert_eq!(
            u(&["servers", "x"]).unwrap(),
            "https://h:8774/v2.1/servers/x"
        );
        assert_eq!(
            u(&["servers", "../flavors/8"]).unwrap(),
            "https://h:8774/v2.1/servers/..%2Fflavors%2F8"
        );
        assert_eq!(
            u(&["servers", "x?a=1#b"]).unwrap(),
            "https://h:8774/v2.1/servers/x%3Fa=1%23b"
        );
        assert_eq!(
            u(&["servers", "a%2Fb"]).unwrap(),
            "https://h:8774/v2.1/servers/a%252Fb"
        );
        assert_eq!(
            u(&["servers", "a\\b"]).unwrap(),
            "https://h:8774/v2.1/servers/a%5Cb"
        );
        assert_eq!(
            u(&["servers", "%2e%2e"]).unwrap(),
            "https://h:8774/v2.1/servers/%252e%252e"
        );
        for bad in ["", ".", ".."] {
            let e = u(&["servers", bad]).unwrap_err();
            assert!(e.message.contains(&format!("{bad:?}")), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn base_suffix_is_optional() {
        for b in [
            "https://h/image",
            "https://h/image/",
            "https://h/image/v2",
            "https://h/image/v2/?x=1",
        ] {
            assert_eq!(
                svc(b, Some("v2")).url(&["v2", "images"]).unwrap().as_str(),
                "https://h/image/v2/images"
            );
        }
        assert_eq!(
            svc("https://h:9292", Some("v2"))
                .url(&["v2", "images"])
                .unwrap()
                .as_str(),
            "https://h:9292/v2/images"
        );
    }

    #[test]
    fn ids_that_would_name_another_resource_are_refused() {
        let base = Url::parse("https://h:8774/compute/v2.1").unwrap();
        for bad in [
            "", ".", "..", ".\n.", "\r..", "..\n", ".\t.", "srv-1\n", "a\u{7f}b", "x\u{85}",
        ] {
            let e = join(&base, &["servers", bad]).unwrap_err();
            assert_eq!(e.status, crate::model::Status::Critical, "{bad:?}");
            assert!(
                e.message.starts_with("malformed id"),
                "{bad:?}: {}",
                e.message
            );
        }
        assert_eq!(
            join(&base, &["servers", "a/../b?c#d%2e"]).unwrap().as_str(),
            "https://h:8774/compute/v2.1/servers/a%2F..%2Fb%3Fc%23d%252e"
        );
    }

    #[tokio::test]
    async fn next_links_stay_on_the_service() {
        let s = svc("https://h:9292/image/v2", Some("v2"));
        assert_eq!(
            s.follow("/v2/images?marker=a").unwrap().as_str(),
            "https://h:9292/image/v2/images?marker=a"
        );
        assert_eq!(
            s.follow("https://h:9292/image/v2/images?marker=a")
                .unwrap()
                .as_str(),
            "https://h:9292/image/v2/images?marker=a"
        );
        for bad in [
            "/v2/../../identity/v3/x",
            "/v2/.\t./.\n./identity/v3/x",
            "../x",
            "%2e%2e/x",
            "//evil.example/image/v2/images",
            "\\\\evil.example/image/v2/images",
            "http://h:9292/image/v2/images",
            "https://h:9293/image/v2/images",
            "https://evil.example/image/v2/images",
            "https://h:9292/imagex/v2/images",
            "https://u:p@h:9292/image/v2/images",
            "javascript:alert(1)",
        ] {
            let e = s.follow(bad).unwrap_err();
            assert!(e.message.contains("next link"), "{bad}: {}", e.message);
        }
    }
}
