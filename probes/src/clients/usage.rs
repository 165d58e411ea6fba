//! Usage as the site's APIs report it: Nova `os-simple-tenant-usage` (paged,
//! microversion 2.40) and the Cinder volume summary (3.12). The judging of a
//! server's usage against its flavor is a pure function.

use reqwest::Url;
use serde::Deserialize;

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
struct TenantUsage {
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
    tenant_usage: TenantUsage,
    #[serde(default)]
    tenant_usage_links: Vec<Link>,
}

fn join(base: &Url, rest: &str) -> Result<Url, Fail> {
    let b = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{b}/{rest}"))
        .map_err(|e| Fail::critical(format!("bad service URL {base}: {e}")))
}

/// Nova times: `2024-01-01T00:00:00.000000` (UTC, no zone).
pub fn nova_time(epoch: i64) -> String {
    let days = epoch.div_euclid(86400);
    let secs = epoch.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// All server usages of `project` in `[start, end]`, following `next` links.
/// Returns the usages and the number of pages read. `limit` 0: [`PAGE`].
pub async fn tenant_usage(
    http: &Http,
    nova: &Url,
    token: &Secret,
    project: &str,
    start: i64,
    end: i64,
    limit: usize,
) -> Result<(Vec<ServerUsage>, usize), Fail> {
    let first = join(nova, &format!("os-simple-tenant-usage/{project}"))?;
    let mut out: Vec<ServerUsage> = Vec::new();
    let mut marker: Option<String> = None;
    for page in 1..=MAX_PAGES {
        let mut u = first.clone();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("start", &nova_time(start))
                .append_pair("end", &nova_time(end))
                .append_pair("detailed", "1")
                .append_pair(
                    "limit",
                    &(if limit == 0 { PAGE } else { limit }).to_string(),
                );
            if let Some(m) = &marker {
                q.append_pair("marker", m);
            }
        }
        let req = http
            .get(u)
            .header("X-Auth-Token", token.expose())
            .header(
                "OpenStack-API-Version",
                format!("compute {NOVA_MICROVERSION}"),
            )
            .header("X-OpenStack-Nova-API-Version", NOVA_MICROVERSION)
            .header("Accept", "application/json");
        let p: UsagePage = http.json(req).await?;
        let n = p.tenant_usage.server_usages.len();
        out.extend(p.tenant_usage.server_usages);
        // The next link's marker, taken from its query: some sites put an
        // internal host name in the href, so we keep our own base URL.
        let next = p
            .tenant_usage_links
            .iter()
            .find(|l| l.rel == "next")
            .and_then(|l| Url::parse(&l.href).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "marker")
                    .map(|(_, v)| v.into_owned())
            });
        match next {
            Some(m) if n > 0 && marker.as_deref() != Some(m.as_str()) => marker = Some(m),
            Some(m) if n > 0 => {
                return Err(Fail::critical(format!(
                    "os-simple-tenant-usage paging loops: next marker {m} repeats"
                )))
            }
            _ => return Ok((out, page)),
        }
    }
    Err(Fail::critical(format!(
        "os-simple-tenant-usage: more than {MAX_PAGES} pages"
    )))
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
}

#[derive(Deserialize)]
struct Flavors {
    flavors: Vec<Flavor>,
}

/// Every flavor the project may see (`is_public=None`: public and private).
pub async fn flavors(http: &Http, nova: &Url, token: &Secret) -> Result<Vec<Flavor>, Fail> {
    let u = join(nova, "flavors/detail?is_public=None")?;
    let req = http
        .get(u)
        .header("X-Auth-Token", token.expose())
        .header("Accept", "application/json");
    let f: Flavors = http.json(req).await?;
    Ok(f.flavors)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Images {
    images: Vec<Image>,
    #[serde(default)]
    next: Option<String>,
}

/// Active images the project sees in Glance v2, following `next`.
pub async fn images(http: &Http, glance: &Url, token: &Secret) -> Result<Vec<Image>, Fail> {
    let root = {
        let s = glance.as_str().trim_end_matches('/');
        let s = s.strip_suffix("/v2").unwrap_or(s);
        Url::parse(&format!("{s}/"))
            .map_err(|e| Fail::critical(format!("bad image URL {glance}: {e}")))?
    };
    let mut u = root
        .join("v2/images?status=active&limit=200")
        .map_err(|e| Fail::critical(e.to_string()))?;
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let req = http
            .get(u.clone())
            .header("X-Auth-Token", token.expose())
            .header("Accept", "application/json");
        let page: Images = http.json(req).await?;
        let n = page.images.len();
        out.extend(page.images);
        match page.next {
            Some(next) if n > 0 => {
                u = root
                    .join(next.trim_start_matches('/'))
                    .map_err(|e| Fail::critical(format!("bad next link {next}: {e}")))?;
            }
            _ => return Ok(out),
        }
    }
    Err(Fail::critical("Glance image list: too many pages"))
}

#[derive(Clone, Debug, PartialEq)]
pub struct VolumeSummary {
    pub total_size: f64,
    pub total_count: u64,
}

/// `GET {cinder}/volumes/summary`; the catalog URL normally ends in the project.
pub async fn volume_summary(
    http: &Http,
    cinder: &Url,
    token: &Secret,
    project: &str,
) -> Result<VolumeSummary, Fail> {
    let base = cinder.as_str().trim_end_matches('/');
    let base = if base.ends_with("/v3") {
        format!("{base}/{project}")
    } else {
        base.to_string()
    };
    let u = Url::parse(&format!("{base}/volumes/summary"))
        .map_err(|e| Fail::critical(format!("bad volume URL {cinder}: {e}")))?;
    let req = http
        .get(u)
        .header("X-Auth-Token", token.expose())
        .header(
            "OpenStack-API-Version",
            format!("volume {CINDER_MICROVERSION}"),
        )
        .header("Accept", "application/json");
    let v: serde_json::Value = http.json(req).await?;
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

/// What is wrong with a server's usage record. `mismatch`: sizes differ
/// from the flavor (a WARNING); `bad`: times or fields wrong (CRITICAL).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub mismatch: Vec<String>,
    pub bad: Vec<String>,
}

/// Judge one server's usage against its flavor and the clock.
pub fn judge_server(u: &ServerUsage, flavor: Option<&Flavor>, now: i64) -> Verdict {
    use crate::clients::glue::parse_time;
    let mut v = Verdict::default();
    if let Some(f) = flavor {
        for (what, got, want) in [
            ("vcpus", u.vcpus, f.vcpus),
            ("memory_mb", u.memory_mb, f.ram),
            ("local_gb", u.local_gb, f.disk),
        ] {
            match got {
                Some(g) if g == want => {}
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
        }
    }

    #[test]
    fn nova_times_round_trip() {
        assert_eq!(nova_time(0), "1970-01-01T00:00:00.000000");
        for t in [0, 951782400, 1709208000, 4102444799] {
            assert_eq!(crate::clients::glue::parse_time(&nova_time(t)), Some(t));
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
