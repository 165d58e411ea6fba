//! `cloudinfo`: production's eu.egi.cloud.InfoProvider probe, on check_glue's
//! information-system check (GLUE-03, the same IS API client). Production's
//! flags and defaults: `-e/--endpoint` (the site's Keystone URL as GOCDB
//! lists it), `--is-endpoint https://is.cloud.egi.eu`, `--is-cache
//! /tmp/cloud_is.json`, `--is-cache-ttl 600`. The cache holds the `/sites/`
//! answer as sent, as production writes it, so both can share one file.
//!
//! Verdicts as production: the endpoint not listed is CRITICAL, listed
//! without any VO is WARNING; the information system itself failing is
//! UNKNOWN (it is not the site's fault).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;

use crate::checks::glue::IS_SITE;
use crate::clients::is_api::{IsApi, Site};
use crate::formats::glue::normalise_url;
use crate::model::{CheckId, Perf, Status};
use crate::probe::Probe;
use crate::units::parse_duration_or_zero;
use crate::{Ctx, Done, Fail};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Keystone URL of the site, as GOCDB lists it (`:443` may be added)
    #[arg(short = 'e', long = "endpoint", value_name = "URL", value_parser = endpoint_url)]
    pub endpoint: String,
    /// Information-system API base URL
    #[arg(
        long = "is-endpoint",
        value_name = "URL",
        default_value = "https://is.cloud.egi.eu"
    )]
    pub is_endpoint: Url,
    /// File caching the information system's list of sites
    #[arg(
        long = "is-cache",
        value_name = "FILE",
        default_value = "/tmp/cloud_is.json"
    )]
    pub is_cache: PathBuf,
    /// How long the cached list is used before asking again (seconds or a duration; 0: no cache)
    #[arg(long = "is-cache-ttl", value_name = "DURATION", default_value = "600", value_parser = parse_duration_or_zero)]
    pub is_cache_ttl: Duration,
}

/// The endpoint as given (it is compared as GOCDB lists it), once it is
/// an http(s) URL with a host: anything else is the monitor's mistake
/// (UNKNOWN), not a site missing from the information system.
fn endpoint_url(s: &str) -> Result<String, String> {
    match Url::parse(s) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(s.to_string())
        }
        Ok(_) => Err(format!("{s:?}: not an http(s) URL with a host")),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

pub struct Cloudinfo;

impl Probe for Cloudinfo {
    const BIN: &'static str = "cloudinfo";
    const LABEL: &'static str = "GLUE";
    const ABOUT: &'static str =
        "Drop-in for production's cloudinfo (eu.egi.cloud.InfoProvider): the site in the information system";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    type Args = Args;

    fn checks() -> Vec<CheckId> {
        vec![IS_SITE]
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let site = ctx
            .step(IS_SITE, async {
                let (sites, from) = sites(&ctx, &args).await?;
                let Some(site) = find(&sites, &args.endpoint) else {
                    return Err(Fail::critical(format!(
                        "endpoint {} is not listed by the information system ({} sites, {from})",
                        args.endpoint,
                        sites.len()
                    )));
                };
                let n = site.projects.len();
                let status = if n == 0 { Status::Warning } else { Status::Ok };
                let msg = format!("{} listed with {n} VO(s) ({from})", site.name);
                Ok(Done::with(status, site.clone(), msg))
            })
            .await?;
        let n = site.projects.len();
        ctx.perf(Perf::count("is_projects", n as u64));
        // No VO: the step's WARNING is the verdict.
        Ok(format!(
            "Endpoint publishing information for {n} VO(s) (site {})",
            site.name
        ))
    }
}

/// The site whose URL is `endpoint`, default ports ignored (ARGO adds `:443`).
pub fn find<'a>(sites: &'a [Site], endpoint: &str) -> Option<&'a Site> {
    let want = normalise_url(endpoint);
    sites
        .iter()
        .find(|s| s.url.as_deref().is_some_and(|u| normalise_url(u) == want))
}

/// The list of sites, from a fresh cache or from the information system;
/// and where it came from.
async fn sites(ctx: &Ctx, args: &Args) -> Result<(Vec<Site>, String), Fail> {
    if let Some((v, age)) = read_cache(&args.is_cache, args.is_cache_ttl) {
        // A cache that does not parse is asked again, not trusted.
        if let Ok(s) = IsApi::parse_sites_answer(&v) {
            return Ok((s, format!("cached {}s ago", age.as_secs())));
        }
        ctx.detail(format!(
            "cache {} does not hold a list of sites; asking again",
            args.is_cache.display()
        ));
    }
    let is = IsApi::new(ctx.http().clone(), &args.is_endpoint);
    let v = is.sites_json().await.map_err(is_down)?;
    let sites = IsApi::parse_sites_answer(&v).map_err(is_down)?;
    if let Err(e) = write_cache(&args.is_cache, &v) {
        ctx.detail(format!(
            "cannot write cache {}: {e}",
            args.is_cache.display()
        ));
    }
    let from = crate::http::show_url(&args.is_endpoint);
    Ok((sites, format!("from {from}")))
}

/// The information system failing says nothing about the site.
fn is_down(f: Fail) -> Fail {
    let f = f.context("information system");
    f.with_status(Status::Unknown)
}

/// The cached answer and its age, if younger than `ttl`.
pub fn read_cache(path: &Path, ttl: Duration) -> Option<(Value, Duration)> {
    let age = std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age >= ttl {
        return None;
    }
    let text = crate::files::read(path, crate::files::DOCUMENT).ok()?;
    Some((serde_json::from_slice(&text).ok()?, age))
}

/// Write beside the cache, then rename: a concurrent reader sees the old
/// file or the new one, never half of one.
pub fn write_cache(path: &Path, v: &Value) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, v.to_string())?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::is_api::parse_sites;

    #[test]
    fn a_malformed_endpoint_is_a_usage_error() {
        for bad in [
            "not-a-url",
            "",
            "http://",
            "ftp://a.example.org/v3",
            "file:///etc",
        ] {
            assert!(endpoint_url(bad).is_err(), "{bad:?}");
        }
        let ok = "https://a.example.org:443/v3";
        assert_eq!(endpoint_url(ok).unwrap(), ok);
    }

    #[test]
    fn endpoint_found_with_or_without_default_port() {
        let v = serde_json::json!([
            {"id": "1", "name": "A", "url": "https://a.example.org/v3", "projects": []},
            {"id": "2", "name": "B", "url": "https://b.example.org:5000/v3/",
             "projects": [{"id": "p", "name": "ops"}]},
        ]);
        let sites = parse_sites(&v).unwrap();
        assert_eq!(
            find(&sites, "https://a.example.org:443/v3").unwrap().name,
            "A"
        );
        assert_eq!(
            find(&sites, "https://b.example.org:5000/v3").unwrap().name,
            "B"
        );
        assert!(find(&sites, "https://c.example.org/v3").is_none());
    }

    #[test]
    fn cache_is_used_only_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("is.json");
        assert!(read_cache(&file, Duration::from_secs(600)).is_none());
        let v = serde_json::json!([{"name": "A"}]);
        write_cache(&file, &v).unwrap();
        let (got, _) = read_cache(&file, Duration::from_secs(600)).unwrap();
        assert_eq!(got, v);
        assert!(read_cache(&file, Duration::ZERO).is_none());
        std::fs::write(&file, "not json").unwrap();
        assert!(read_cache(&file, Duration::from_secs(600)).is_none());
    }
}
