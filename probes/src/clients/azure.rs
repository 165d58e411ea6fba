//! Azure Resource Manager over REST for Microsoft.Compute: resource URLs from
//! escaped names, the bearer token, ARM's error shape, throttling (429 with
//! `Retry-After`, retried while the deadline allows) and long-running
//! operations (`Azure-AsyncOperation` or `Location` polling). No verdicts.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::service::join;
use crate::fail::Fail;
use crate::http::{show_url, Http, Reply};
use crate::secret::Secret;
use crate::text;

/// The api-versions of the REST API specification the backend speaks
/// (testdata/azure-spec): virtual machines, images, sizes; disks.
pub const COMPUTE_API: &str = "2024-07-01";
pub const DISK_API: &str = "2024-03-02";
/// 429 answers retried per request, each after its Retry-After.
const THROTTLE_RETRIES: u32 = 3;
/// Longest Retry-After honoured (ARM may ask for minutes; a probe cannot wait that long).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);
/// LRO polls, at most (each waits its Retry-After, 1 s when absent).
const MAX_POLLS: u32 = 600;

#[derive(Clone)]
pub struct Arm {
    pub http: Http,
    base: Url,
    token: Secret,
    pub subscription: String,
    pub resource_group: String,
}

/// ARM's error body.
#[derive(serde::Deserialize)]
struct CloudError {
    error: Option<ApiError>,
}

#[derive(serde::Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// One page of a list (`x-ms-pageable`, `nextLink`).
#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

/// An operation status (`Azure-AsyncOperation`).
#[derive(serde::Deserialize)]
struct OpStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<ApiError>,
}

impl Arm {
    pub fn new(http: Http, base: &Url, token: Secret, subscription: &str, rg: &str) -> Arm {
        Arm {
            http,
            base: super::service::base_url(base, None),
            token,
            subscription: subscription.into(),
            resource_group: rg.into(),
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}[/{name}[/{action}]]`.
    pub fn resource_id(&self, kind: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/{kind}/{name}",
            self.subscription, self.resource_group
        )
    }

    /// The URL of a resource group's resource (or list, `name` None), names escaped.
    pub fn url(
        &self,
        kind: &str,
        name: Option<&str>,
        action: Option<&str>,
        api: &str,
    ) -> Result<Url, Fail> {
        let mut segs = vec![
            "subscriptions",
            self.subscription.as_str(),
            "resourceGroups",
            self.resource_group.as_str(),
            "providers",
            "Microsoft.Compute",
            kind,
        ];
        segs.extend(name);
        segs.extend(action);
        let mut u = join(&self.base, &segs)?;
        u.query_pairs_mut().append_pair("api-version", api);
        Ok(u)
    }

    /// `/subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/vmSizes`.
    pub fn sizes_url(&self, location: &str) -> Result<Url, Fail> {
        let mut u = join(
            &self.base,
            &[
                "subscriptions",
                &self.subscription,
                "providers",
                "Microsoft.Compute",
                "locations",
                location,
                "vmSizes",
            ],
        )?;
        u.query_pairs_mut().append_pair("api-version", COMPUTE_API);
        Ok(u)
    }

    /// Send with the token; a 429 is waited out (its Retry-After, bounded by
    /// the deadline) and retried a few times before it becomes the verdict.
    pub async fn send(&self, make: impl Fn() -> RequestBuilder) -> Result<Reply, Fail> {
        let mut throttled = 0;
        loop {
            let req = make()
                .bearer_auth(self.token.expose())
                .header("Accept", "application/json");
            let reply = self.http.send(req).await?;
            if reply.status != StatusCode::TOO_MANY_REQUESTS || throttled >= THROTTLE_RETRIES {
                return Ok(reply);
            }
            let wait = retry_after(&reply).unwrap_or(Duration::from_secs(1));
            if wait > MAX_RETRY_AFTER || wait >= self.http.deadline().remaining() {
                return Ok(reply);
            }
            throttled += 1;
            self.http.deadline().sleep(wait).await;
        }
    }

    /// `GET`: `None` on 404.
    pub async fn get_opt<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, Fail> {
        let reply = self.send(|| self.http.get(url.clone())).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        ok(reply)?.json().map(Some)
    }

    /// Every item of a list, following `nextLink` on this endpoint (at most `max` pages).
    pub async fn list(&self, url: Url, max: usize) -> Result<Vec<Value>, Fail> {
        let mut out = Vec::new();
        let mut next = Some(url);
        for _ in 0..max {
            let Some(u) = next.take() else { break };
            let reply = ok(self.send(|| self.http.get(u.clone())).await?)?;
            let page: Page = reply.json()?;
            out.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(l) if Url::parse(&l).ok().as_ref() == Some(&u) => {
                    return Err(Fail::critical(format!(
                        "paging loops: nextLink {} repeats",
                        show_url(&u)
                    )))
                }
                Some(l) => next = Some(self.follow(&l)?),
                None => break,
            }
        }
        Ok(out)
    }

    /// `PUT`/`POST` with a JSON body; 2xx required. The reply's headers carry the LRO.
    pub async fn write(&self, method: Method, url: Url, body: &Value) -> Result<Reply, Fail> {
        ok(self
            .send(|| self.http.request(method.clone(), url.clone()).json(body))
            .await?)
    }

    /// `DELETE`: true if accepted, false if it was already gone (404, 204).
    pub async fn delete(&self, url: Url) -> Result<(bool, Reply), Fail> {
        let reply = self
            .send(|| self.http.request(Method::DELETE, url.clone()))
            .await?;
        if matches!(reply.status, StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
            return Ok((false, reply));
        }
        Ok((true, ok(reply)?))
    }

    /// Wait for the long-running operation a reply started, if it started one;
    /// returns the final body (Location polling) when there is one. A failed
    /// operation is a CRITICAL with ARM's code and message. Bounded by the deadline.
    pub async fn wait_lro(&self, started: &Reply) -> Result<Option<Value>, Fail> {
        let async_op = started.header("azure-asyncoperation").map(str::to_string);
        let location = started.header("location").map(str::to_string);
        let mut wait = retry_after(started).unwrap_or(Duration::from_secs(1));
        if let Some(op) = async_op {
            let url = self.follow(&op)?;
            for _ in 0..MAX_POLLS {
                self.pause(wait).await?;
                let reply = ok(self.send(|| self.http.get(url.clone())).await?)?;
                let s: OpStatus = reply.json()?;
                match s.status.as_str() {
                    "Succeeded" => return Ok(None),
                    "Failed" | "Canceled" => {
                        let e = s.error.unwrap_or(ApiError {
                            code: String::new(),
                            message: "no error given".into(),
                        });
                        return Err(Fail::critical(format!(
                            "operation {}: {} ({})",
                            s.status,
                            text::one_line(&e.message, 300),
                            e.code
                        ))
                        .with_http(reply.facts()));
                    }
                    _ => wait = retry_after(&reply).unwrap_or(Duration::from_secs(1)),
                }
            }
            return Err(Fail::timeout(format!(
                "operation {} still running after {MAX_POLLS} polls",
                show_url(&url)
            )));
        }
        if let Some(loc) = location.filter(|_| started.status == StatusCode::ACCEPTED) {
            let url = self.follow(&loc)?;
            for _ in 0..MAX_POLLS {
                self.pause(wait).await?;
                let reply = self.send(|| self.http.get(url.clone())).await?;
                if reply.status == StatusCode::ACCEPTED {
                    wait = retry_after(&reply).unwrap_or(Duration::from_secs(1));
                    continue;
                }
                let reply = ok(reply)?;
                if reply.body.is_empty() {
                    return Ok(None);
                }
                return reply.json().map(Some);
            }
            return Err(Fail::timeout(format!(
                "operation {} still running after {MAX_POLLS} polls",
                show_url(&url)
            )));
        }
        Ok(None)
    }

    async fn pause(&self, wait: Duration) -> Result<(), Fail> {
        let d = self.http.deadline();
        if d.remaining() <= wait.min(MAX_RETRY_AFTER) {
            return Err(Fail::timeout(
                "deadline reached while an operation was running",
            ));
        }
        d.sleep(wait.min(MAX_RETRY_AFTER)).await;
        Ok(())
    }

    /// A URL the site gave (nextLink, operation status): it must stay on the ARM endpoint.
    pub fn follow(&self, href: &str) -> Result<Url, Fail> {
        let url = Url::parse(href).map_err(|_| {
            Fail::critical(format!(
                "ARM gave a link that is not a URL: {:?}",
                text::one_line(href, 120)
            ))
        })?;
        if url.origin() != self.base.origin() || url.username() != "" || url.password().is_some() {
            return Err(Fail::critical(format!(
                "ARM gave a link {} that leaves {}",
                show_url(&url),
                show_url(&self.base)
            )));
        }
        Ok(url)
    }
}

/// The reply if 2xx, else a CRITICAL with ARM's error code and message.
pub fn ok(reply: Reply) -> Result<Reply, Fail> {
    if reply.status.is_success() {
        return Ok(reply);
    }
    let e = serde_json::from_slice::<CloudError>(&reply.body)
        .ok()
        .and_then(|c| c.error);
    match e {
        Some(e) => {
            let mut msg = format!(
                "HTTP {} {}: {} ({})",
                reply.status.as_u16(),
                e.code,
                text::one_line(&e.message, 300),
                reply.request_line()
            );
            if reply.status == StatusCode::TOO_MANY_REQUESTS {
                msg = format!(
                    "throttled: {msg}; Retry-After {} after {THROTTLE_RETRIES} retries",
                    reply.header("retry-after").unwrap_or("not given")
                );
            }
            Err(Fail::critical(msg).with_http(reply.facts()))
        }
        None => Err(reply.unexpected()),
    }
}

/// `Retry-After` in seconds (ARM sends seconds, not dates).
pub fn retry_after(reply: &Reply) -> Option<Duration> {
    reply
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
