//! Usage as the site's APIs report it: Nova `os-simple-tenant-usage` (paged,
//! microversion 2.40) and the Cinder volume summary (3.12). The judging of a
//! server's usage against its flavor is a pure function.

use reqwest::Url;
use serde::Deserialize;

use super::nova::Flavor;
use super::service::Service;
use crate::clock::{self, nova_time};
use crate::fail::Fail;
use crate::http::Http;
use crate::secret::Secret;

pub const NOVA_MICROVERSION: &str = "2.40";
pub const CINDER_MICROVERSION: &str = "3.12";
/// Catalog types a block-storage service goes by, newest first.
pub const VOLUME_TYPES: &[&str] = &["block-storage", "volumev3", "volume"];
/// Servers asked per page.
pub const PAGE: usize = 100;
const MAX_PAGES: usize = 1000;

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ServerUsage {
    pub instance_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub flavor: Option<String>,
    #[serde(default)]
    pub vcpus: Option<i64>,
    #[serde(default)]
    pub memory_mb: Option<i64>,
    #[serde(default)]
    pub local_gb: Option<i64>,
    #[serde(default)]
    pub hours: Option<f64>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Deserialize)]
struct UsageBody {
    #[serde(default)]
    server_usages: Vec<ServerUsage>,
}

#[derive(Deserialize, Clone)]
struct Link {
    href: String,
    #[serde(default)]
    rel: String,
}

#[derive(Deserialize)]
struct UsagePage {
    tenant_usage: UsageBody,
    #[serde(default)]
    tenant_usage_links: Vec<Link>,
}

/// Nova's `os-simple-tenant-usage` at microversion [`NOVA_MICROVERSION`].
#[derive(Clone)]
pub struct TenantUsage {
    svc: Service,
}

impl TenantUsage {
    pub fn new(http: Http, nova: &Url, token: Secret) -> TenantUsage {
        let svc = Service::new(http, nova, None, Some(token))
            .with_header(
                "OpenStack-API-Version",
                format!("compute {NOVA_MICROVERSION}"),
            )
            .with_header("X-OpenStack-Nova-API-Version", NOVA_MICROVERSION);
        TenantUsage { svc }
    }

    /// All server usages of `project` in `[start, end]`, following `next`
    /// links. Returns the usages and the number of pages read. `limit` 0:
    /// [`PAGE`].
    pub async fn servers(
        &self,
        project: &str,
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<(Vec<ServerUsage>, usize), Fail> {
        let mut first = self.svc.url(&["os-simple-tenant-usage", project])?;
        first
            .query_pairs_mut()
            .append_pair("start", &nova_time(start))
            .append_pair("end", &nova_time(end))
            .append_pair("detailed", "1")
            .append_pair(
                "limit",
                &(if limit == 0 { PAGE } else { limit }).to_string(),
            );
        let mut out: Vec<ServerUsage> = Vec::new();
        let pages = self
            .svc
            .paged(first.clone(), MAX_PAGES, |p: UsagePage| {
                let n = p.tenant_usage.server_usages.len();
                out.extend(p.tenant_usage.server_usages);
                // Only the next link's marker is used: some sites put an
                // internal host name in the href, so we keep our own base URL.
                let marker = p
                    .tenant_usage_links
                    .iter()
                    .find(|l| l.rel == "next")
                    .and_then(|l| Url::parse(&l.href).ok())
                    .and_then(|u| {
                        u.query_pairs()
                            .find(|(k, _)| k == "marker")
                            .map(|(_, v)| v.into_owned())
                    })
                    .filter(|_| n > 0)?;
                let mut next = first.clone();
                next.query_pairs_mut().append_pair("marker", &marker);
                Some(next.to_string())
            })
            .await
            .map_err(|f| f.context("os-simple-tenant-usage"))?;
        Ok((out, pages))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VolumeSummary {
    pub total_size: f64,
    pub total_count: u64,
}

/// Cinder v3 at microversion [`CINDER_MICROVERSION`], for the volume summary.
#[derive(Clone)]
pub struct Cinder {
    svc: Service,
}

impl Cinder {
    /// The catalog URL normally ends in the project; a bare `/v3` gets it added.
    pub fn new(http: Http, cinder: &Url, token: Secret, project: &str) -> Result<Cinder, Fail> {
        let mut svc = Service::new(http, cinder, None, Some(token)).with_header(
            "OpenStack-API-Version",
            format!("volume {CINDER_MICROVERSION}"),
        );
        if svc.base().path().ends_with("/v3") {
            let with_project = svc.url(&[project])?;
            svc = svc.rebase(&with_project);
        }
        Ok(Cinder { svc })
    }

    /// `GET {cinder}/volumes/summary`.
    pub async fn volume_summary(&self) -> Result<VolumeSummary, Fail> {
        let url = self.svc.url(&["volumes", "summary"])?;
        let v: serde_json::Value = self.svc.get_json(url).await?;
        let s = v.get("volume-summary").ok_or_else(|| {
            Fail::critical(format!(
                "volumes/summary: no \"volume-summary\" in {}",
                crate::text::one_line(&v.to_string(), 120)
            ))
        })?;
        let size = s.get("total_size").and_then(|x| x.as_f64());
        let count = s.get("total_count").and_then(|x| x.as_u64());
        match (size, count) {
            (Some(total_size), Some(total_count)) => Ok(VolumeSummary {
                total_size,
                total_count,
            }),
            _ => Err(Fail::critical(format!(
                "volumes/summary: total_size/total_count missing or not numbers in {}",
                crate::text::one_line(&s.to_string(), 120)
            ))),
        }
    }
}

/// What is wrong with a server's usage record. `mismatch`: sizes differ
/// from the flavor (a WARNING); `bad`: times or fields wrong (CRITICAL).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub mismatch: Vec<String>,
    pub bad: Vec<String>,
}

/// Judge one server's usage against its flavor and the clock.
pub fn judge_server(u: &ServerUsage, flavor: Option<&Flavor>, now: i64) -> Verdict {
    let parse_time = clock::parse_iso;
    let mut v = Verdict::default();
    if let Some(f) = flavor {
        for (what, got, want) in [
            ("vcpus", u.vcpus, f.vcpus),
            ("memory_mb", u.memory_mb, f.ram),
            ("local_gb", u.local_gb, f.disk),
        ] {
            match got {
                Some(g) if u64::try_from(g) == Ok(want) => {}
                Some(g) => v
                    .mismatch
                    .push(format!("{what} {g} but flavor {} has {want}", f.name)),
                None => v.bad.push(format!("{what} missing")),
            }
        }
    }
    let started = match u.started_at.as_deref() {
        None => {
            v.bad.push("started_at missing".into());
            None
        }
        Some(s) => match parse_time(s) {
            Some(t) => Some(t),
            None => {
                v.bad.push(format!("started_at {s:?} is not a time"));
                None
            }
        },
    };
    // A few minutes of clock skew between the site and us are fine.
    let skew = 300;
    if let Some(t) = started {
        if t > now + skew {
            v.bad
                .push(format!("started_at {} is in the future", nova_time(t)));
        }
    }
    let ended = u.ended_at.as_deref().and_then(|s| {
        let t = parse_time(s);
        if t.is_none() {
            v.bad.push(format!("ended_at {s:?} is not a time"));
        }
        t
    });
    if let (Some(s), Some(e)) = (started, ended) {
        if e < s {
            v.bad.push(format!(
                "ended_at {} is before started_at {}",
                nova_time(e),
                nova_time(s)
            ));
        }
    }
    if let Some(e) = ended {
        if e > now + skew {
            v.bad
                .push(format!("ended_at {} is in the future", nova_time(e)));
        }
    }
    let state = u.state.as_deref().unwrap_or("");
    if state == "terminated" && u.ended_at.is_none() {
        v.bad.push("state terminated but no ended_at".into());
    }
    if state != "terminated" && u.ended_at.is_some() && state != "deleted" {
        v.bad.push(format!("state {state} but ended_at is set"));
    }
    if let Some(h) = u.hours {
        if !h.is_finite() || h < 0.0 {
            v.bad.push(format!("hours {h} is negative"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> ServerUsage {
        ServerUsage {
            instance_id: "i".into(),
            name: None,
            flavor: Some("m1".into()),
            vcpus: Some(1),
            memory_mb: Some(512),
            local_gb: Some(8),
            hours: Some(0.01),
            started_at: Some("2024-01-01T00:00:00.000000".into()),
            ended_at: Some("2024-01-01T00:05:00.000000".into()),
            state: Some("terminated".into()),
        }
    }

    fn flavor() -> Flavor {
        Flavor {
            id: "f".into(),
            name: "m1".into(),
            vcpus: 1,
            ram: 512,
            disk: 8,
            extra_specs: None,
        }
    }

    #[test]
    fn judge() {
        let now = 1704067200 + 3600;
        assert_eq!(
            judge_server(&usage(), Some(&flavor()), now),
            Verdict::default()
        );
        let mut u = usage();
        u.memory_mb = Some(1024);
        let v = judge_server(&u, Some(&flavor()), now);
        assert_eq!(v.mismatch.len(), 1);
        assert!(v.bad.is_empty());
        let mut u = usage();
        u.ended_at = Some("2023-12-31T00:00:00".into());
        assert!(judge_server(&u, None, now).bad[0].contains("before started_at"));
        let mut u = usage();
        u.ended_at = None;
        assert!(judge_server(&u, None, now).bad[0].contains("terminated but no ended_at"));
    }
}
