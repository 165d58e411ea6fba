//! check_usage: a site's usage as its APIs report it (per-VM usage, block
//! storage), the APEL records its accounting producer writes, and how fresh
//! its accounting is. Each part runs when its inputs are given.
//!
//! Hook for a short-lived server: the compute backend that creates servers
//! (check_vm_lifecycle) or the harness passes `--server-id` after a VM
//! lifecycle, or calls [`check_server`] in-process with the id it created.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;

use crate::auth::{self, AuthArgs, Session};
use crate::backend::openstack::OpenStack;
use crate::backend::{Usage as _, UsageRecord};
use crate::clients::nova::Nova;
use crate::clients::usage::{self as api, VOLUME_TYPES};
use crate::clock::{nova_time, now_secs, now_unix, unix_of};
use crate::formats::{apel, freshness};
use crate::model::Status;
use crate::model::{Perf, Range, Uom};
use crate::probe::{Link, Optional, Probe};
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-ACCOUNTING";
    TENANT_USAGE = "USAGE-01", "per-VM usage via the API";
    SERVER_USAGE = "USAGE-02", "usage of a known server";
    VOLUME_USAGE = "USAGE-03", "block storage usage";
    APEL_RECORDS = "USAGE-04", "APEL records well formed";
    FRESHNESS = "USAGE-05", "accounting freshness";
}

/// Bytes in a GiB: volume sizes (GB in the clouds' APIs) as perfdata bytes.
pub const GIB: f64 = (1u64 << 30) as f64;

/// Production's policy (check_fedcloud_accnt).
pub const DEFAULT_WARN_DAYS: f64 = 7.0;
pub const DEFAULT_CRIT_DAYS: f64 = 30.0;
/// Findings listed in the output, at most.
const SHOW: usize = 20;

#[derive(clap::Args, Clone, Debug, Default)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["endpoint", "apel_dir", "apel_file", "last_update_url"])))]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Usage window length back from now (per-VM usage)
    #[arg(long = "window", value_name = "DURATION", default_value = "1d", value_parser = crate::units::parse_duration)]
    pub window: Duration,
    /// Require this server in the usage with its flavor's sizes and sane times
    #[arg(long = "server-id", value_name = "ID", requires = "endpoint")]
    pub server_id: Option<String>,
    /// Make a short-lived volume of this run and require it in the volume
    /// usage (USAGE-03); deleted before the probe ends, on every exit path
    #[arg(long = "own-volume", requires = "endpoint")]
    pub own_volume: bool,
    /// Size of the own volume in GiB
    #[arg(long = "volume-size", value_name = "GIB", default_value = "1", value_parser = clap::value_parser!(u64).range(1..=crate::checks::block_storage::MAX_SIZE_GB))]
    pub volume_size: u64,
    /// Volume type of the own volume; default: the cloud's
    #[arg(long = "volume-type", value_name = "TYPE")]
    pub volume_type: Option<String>,
    /// Longest wait for the own volume to become available, and to go
    #[arg(long = "volume-timeout", value_name = "DURATION", default_value = "120", value_parser = crate::units::parse_duration)]
    pub volume_timeout: Duration,
    /// Monitoring host name put on the own volume; default: this machine's name
    #[arg(long = "argo-host-name", value_name = "HOST")]
    pub argo_host_name: Option<String>,
    /// Servers asked per os-simple-tenant-usage page
    #[arg(long = "usage-page-size", value_name = "N", default_value_t = api::PAGE)]
    pub page_size: usize,
    /// Skip the per-VM and block-storage API checks even with credentials
    #[arg(long = "no-api")]
    pub no_api: bool,
    /// Directory of APEL messages (cASO's dirq spool), checked recursively
    #[arg(long = "apel-dir", value_name = "DIR")]
    pub apel_dir: Option<PathBuf>,
    /// One APEL message file (repeatable)
    #[arg(long = "apel-file", value_name = "FILE")]
    pub apel_file: Vec<PathBuf>,
    /// Site name the records must carry (also filters freshness)
    #[arg(long = "site", value_name = "NAME")]
    pub site: Option<String>,
    /// URL answering the site's last accounting update (JSON or a plain date)
    #[arg(long = "last-update-url", value_name = "URL")]
    pub last_update_url: Option<Url>,
    /// Freshness WARNING after this many days (or -w RANGE in days)
    #[arg(long = "warn-days", value_name = "DAYS")]
    pub warn_days: Option<f64>,
    /// Freshness CRITICAL after this many days (or -c RANGE in days)
    #[arg(long = "crit-days", value_name = "DAYS")]
    pub crit_days: Option<f64>,
}

pub struct Usage;

impl Probe for Usage {
    const BIN: &'static str = "check_usage";
    const LABEL: &'static str = "USAGE";
    const ABOUT: &'static str = "Check per-VM usage, block storage usage and accounting records";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    const OPTIONAL: &'static [Optional] = &[
        Optional {
            check: "USAGE-01",
            flags: &["endpoint"],
            how: "--endpoint URL with a credential (profile: endpoints.keystone and a credential)",
        },
        Optional {
            check: "USAGE-02",
            flags: &["server-id"],
            how: "--server-id ID; the harness gives it when check_vm_lifecycle runs for the site",
        },
        Optional {
            check: "USAGE-03",
            flags: &["endpoint", "own-volume"],
            how: "--endpoint URL with a credential (profile: endpoints.keystone and a credential); --own-volume (profile: [probe.check_usage] own-volume = true) also requires a volume of this run in the usage",
        },
        Optional {
            check: "USAGE-04",
            flags: &["apel-dir", "apel-file"],
            how: "--apel-dir DIR, cASO's APEL spool (profile: [probe.check_usage] apel-dir = \"/var/spool/apel/outgoing/openstack\"), or --apel-file FILE",
        },
        Optional {
            check: "USAGE-05",
            flags: &["last-update-url", "apel-dir"],
            how: "--last-update-url URL, the accounting portal's last update for the site (profile: [probe.check_usage] last-update-url = \"...\"), or --apel-dir DIR",
        },
    ];

    /// The server the VM probe of the same site created: the strong check.
    fn wants(args: &Args) -> Option<Link> {
        let api = args.auth.endpoint.is_some() && !args.no_api;
        (api && args.server_id.is_none()).then_some(Link::Server)
    }

    fn give(args: &mut Args, link: Link, value: String) -> Vec<String> {
        match link {
            Link::Server => {
                args.server_id = Some(value.clone());
                vec!["--server-id".into(), value]
            }
        }
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let api = args.auth.endpoint.is_some() && !args.no_api;
        let apel = args.apel_dir.is_some() || !args.apel_file.is_empty();
        let fresh = args.last_update_url.is_some() || args.apel_dir.is_some();
        // clap's ArgGroup asks for at least one source; --no-api can still leave none.
        if !api && !apel && !fresh {
            return Err(Fail::unknown(
                "nothing to check: give --endpoint/--access-token, --apel-dir/--apel-file or --last-update-url",
            ));
        }
        if args.server_id.is_some() && !api {
            return Err(Fail::unknown(
                "--server-id needs --endpoint and --access-token",
            ));
        }
        // Independent parts: a failure in one does not hide the others'
        // verdicts; the first failure (after all ran) is the summary.
        let mut parts = Vec::new();
        let mut failed: Option<Fail> = None;
        let mut keep = |r: Result<String, Fail>| -> Result<(), Fail> {
            match r {
                Ok(s) => parts.push(s),
                Err(f) if f.kind == crate::fail::FailKind::Site => {
                    failed.get_or_insert(f);
                }
                Err(f) => return Err(f),
            }
            Ok(())
        };
        if api && args.auth.cloud != crate::auth::cloud::CloudKind::OpenStack {
            keep(cloud_usage::checks(&ctx, &args).await)?;
        } else if api {
            let r = async {
                let session = auth::login(&ctx, &args.auth).await?;
                api_checks(&ctx, &args, &session).await
            }
            .await;
            keep(r)?;
        }
        if apel {
            keep(apel_check(&ctx, &args).await)?;
        }
        if fresh {
            keep(freshness(&ctx, &args).await)?;
        }
        if let Some(f) = failed {
            return Err(f);
        }
        Ok(parts.join("; "))
    }
}

mod cloud_usage;
pub mod own_volume;

/// The own volume `--own-volume` asks for, if it does.
fn own_plan(args: &Args) -> Option<own_volume::Own> {
    args.own_volume.then(|| {
        let host = args
            .argo_host_name
            .clone()
            .or_else(crate::checks::vm_lifecycle::machine_hostname)
            .unwrap_or_else(|| "unknown-host".into());
        own_volume::Own::new(
            args.volume_size.max(1),
            args.volume_type.clone(),
            args.volume_timeout,
            host,
        )
    })
}

async fn api_checks(ctx: &Ctx, args: &Args, session: &Session) -> Result<String, Fail> {
    let nova = session.endpoint("compute")?;
    let end = now_secs() + 3600; // Nova shows running servers only with an end ahead.
    let start = end - 3600 - args.window.as_secs() as i64;
    let usages = ctx
        .step(TENANT_USAGE, async {
            let (u, pages) =
                api::TenantUsage::new(session.http.clone(), &nova, session.token.clone())
                    .servers(&session.project_id, start, end, args.page_size)
                    .await
                    .map_err(|f| forbidden(f, "reading the project's own usage"))?;
            ctx.perf(Perf::count("servers", u.len() as u64));
            ctx.perf(Perf::count("usage_pages", pages as u64));
            let msg = format!(
                "{} server(s) in the last {}, {pages} page(s)",
                u.len(),
                humantime::format_duration(args.window)
            );
            Ok(Done::ok(u, msg))
        })
        .await?;
    let mut summary = format!("{} server(s) in usage", usages.len());
    if let Some(id) = &args.server_id {
        let usages = until_listed(ctx, session, &nova, usages, id, (start, end), args).await;
        check_server(ctx, session, &nova, &usages, id).await?;
        summary.push_str(&format!(", server {id} accounted"));
    }
    summary.push_str(&volumes(ctx, args, session).await?);
    Ok(summary)
}

/// Times a missing `--server-id` is asked for again, and the pause between.
const RELIST: u32 = 3;
const RELIST_PAUSE: Duration = Duration::from_millis(700);

/// The usage once it lists `id`, or as last read. Nova caps `end` at now
/// and MariaDB rounds launched_at to the second: a server launched under a
/// second ago can be missing, so a fresh one gets a few more reads.
async fn until_listed(
    ctx: &Ctx,
    session: &Session,
    nova: &Url,
    mut usages: Vec<api::ServerUsage>,
    id: &str,
    (start, end): (i64, i64),
    args: &Args,
) -> Vec<api::ServerUsage> {
    for _ in 0..RELIST {
        if usages.iter().any(|u| u.instance_id == id) {
            break;
        }
        tokio::time::sleep(RELIST_PAUSE).await;
        let again = api::TenantUsage::new(session.http.clone(), nova, session.token.clone())
            .servers(&session.project_id, start, end, args.page_size)
            .await;
        match again {
            Ok((u, _)) => {
                ctx.detail(format!("server {id} missing from usage; read it again"));
                usages = u;
            }
            Err(_) => break,
        }
    }
    usages
}

/// A 403 on the project's own usage is a site policy problem: CRITICAL,
/// with a hint.
fn forbidden(f: Fail, what: &str) -> Fail {
    if f.http_status() == Some(403) {
        Fail::critical(format!("{what} is forbidden by policy: {}", f.message))
    } else {
        f
    }
}

/// The strong check: `server_id` appears with its flavor's sizes and sane
/// times. Public so the compute backend or harness can run it right after
/// creating and deleting a server of its own.
pub async fn check_server(
    ctx: &Ctx,
    session: &Session,
    nova: &Url,
    usages: &[api::ServerUsage],
    server_id: &str,
) -> Result<(), Fail> {
    ctx.step(SERVER_USAGE, async {
        let Some(u) = usages.iter().find(|u| u.instance_id == server_id) else {
            return Err(Fail::critical(format!(
                "server {server_id} is missing from os-simple-tenant-usage ({} servers listed)",
                usages.len()
            )));
        };
        // Every flavor the project may see: public and private.
        let flavors = Nova::new(session.http.clone(), nova, session.token.clone(), None)
            .flavors(&[("is_public", "None")])
            .await?;
        let flavor = u
            .flavor
            .as_deref()
            .and_then(|name| flavors.iter().find(|f| f.name == name || f.id == name));
        let v = api::judge_server(u, flavor, now_secs());
        if !v.bad.is_empty() {
            return Err(Fail::critical(format!(
                "server {server_id}: {}",
                v.bad.join("; ")
            )));
        }
        let sizes = format!(
            "vcpus {} memory {} MB disk {} GB",
            u.vcpus.unwrap_or(0),
            u.memory_mb.unwrap_or(0),
            u.local_gb.unwrap_or(0)
        );
        if !v.mismatch.is_empty() {
            return Ok(Done::warn(
                (),
                format!("server {server_id}: {}", v.mismatch.join("; ")),
            ));
        }
        match flavor {
            Some(f) => Ok(Done::ok(
                (),
                format!("server {server_id}: {sizes} = flavor {}", f.name),
            )),
            None => Ok(Done::warn(
                (),
                format!(
                    "server {server_id}: {sizes}; flavor {:?} not listed, sizes not compared",
                    u.flavor.as_deref().unwrap_or("")
                ),
            )),
        }
    })
    .await
}

async fn volumes(ctx: &Ctx, args: &Args, session: &Session) -> Result<String, Fail> {
    let found = VOLUME_TYPES.iter().find_map(|t| session.listed(t));
    let Some(cinder) = found else {
        ctx.note(
            VOLUME_USAGE,
            Status::Ok,
            format!(
                "skipped: no {} service in the catalog",
                VOLUME_TYPES.join("/")
            ),
        );
        return Ok(String::new());
    };
    let own = own_plan(args);
    let s = ctx
        .step(VOLUME_USAGE, async {
            let cinder = cinder?;
            let c = api::Cinder::new(
                session.http.clone(),
                &cinder,
                session.token.clone(),
                &session.project_id,
            )?;
            let Some(own) = &own else {
                let s = c
                    .volume_summary()
                    .await
                    .map_err(|f| forbidden(f, "reading the volume summary"))?;
                let msg = format!("{} volume(s), {} GB", s.total_count, s.total_size);
                return Ok(Done::ok(s, msg));
            };
            let os = OpenStack::from_session(session);
            let made = own_volume::create(ctx, &os, own).await?;
            let (s, list, stable) = summary_and_list(&c, &os).await?;
            let listed = own_volume::judge(&list, &made.id, own.size_gb, made.asked, now_unix())
                .map_err(Fail::critical)?;
            let counted =
                own_volume::judge_summary(&s, &list, stable, own.size_gb).map_err(Fail::critical)?;
            let ready = made.ready_secs;
            ctx.perf(Perf::new("own_volume_available", ready, Uom::Seconds).min(0.0));
            let gone = own_volume::delete(ctx, &os, own, made).await?;
            ctx.perf(Perf::new("own_volume_delete", gone, Uom::Seconds).min(0.0));
            let msg = format!(
                "{} volume(s), {} GB; {listed}, {counted}; available after {ready:.2}s, deleted in {gone:.2}s",
                s.total_count, s.total_size
            );
            Ok(Done::ok(s, msg))
        })
        .await?;
    ctx.perf(Perf::count("volumes", s.total_count));
    // Bytes: the guidelines' units are B, KB, MB and TB, not GB.
    ctx.perf(Perf::new("volume_size", s.total_size * GIB, Uom::Bytes).min(0.0));
    let own = if args.own_volume {
        ", own volume accounted"
    } else {
        ""
    };
    Ok(format!(", {} volume(s){own}", s.total_count))
}

/// Cinder's summary read between two reads of the volume list. When the
/// lists differ (the project changed meanwhile) all is read again, up to
/// RELIST times; the flag says whether the last two lists agreed.
async fn summary_and_list(
    c: &api::Cinder,
    os: &OpenStack,
) -> Result<(api::VolumeSummary, Vec<UsageRecord>, bool), Fail> {
    let key = |l: &[UsageRecord]| {
        let mut k: Vec<(String, Option<u64>)> =
            l.iter().map(|r| (r.id.clone(), r.size_gb)).collect();
        k.sort();
        k
    };
    let mut before = os.volume_usage().await?;
    let mut tries = 0;
    loop {
        tries += 1;
        let s = c
            .volume_summary()
            .await
            .map_err(|f| forbidden(f, "reading the volume summary"))?;
        let after = os.volume_usage().await?;
        let stable = key(&before) == key(&after);
        if stable || tries >= RELIST {
            return Ok((s, after, stable));
        }
        before = after;
    }
}

/// Message files under `dir` (dirq layout: `<dir>/<8 hex>/<name>`), skipping
/// dirq's temporary and lock files. With their modification times.
pub fn spool_files(dir: &Path) -> Result<Vec<(PathBuf, SystemTime)>, String> {
    crate::files::blocking(|| walk_spool(dir))
}

fn walk_spool(dir: &Path) -> Result<Vec<(PathBuf, SystemTime)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in rd.flatten() {
            let p = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".lck") {
                continue;
            }
            if meta.is_dir() {
                if depth < 4 {
                    stack.push((p, depth + 1));
                }
            } else if meta.is_file() {
                out.push((p, meta.modified().unwrap_or(UNIX_EPOCH)));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn apel_check(ctx: &Ctx, args: &Args) -> Result<String, Fail> {
    let summary = ctx
        .step(APEL_RECORDS, async {
            let mut files: Vec<PathBuf> = args.apel_file.clone();
            if let Some(dir) = &args.apel_dir {
                let found =
                    spool_files(dir).map_err(|e| Fail::unknown(format!("--apel-dir {e}")))?;
                files.extend(found.into_iter().map(|(p, _)| p));
            }
            if files.is_empty() {
                return Err(Fail::critical("no APEL message found"));
            }
            let mut sum = apel::Summary::default();
            for f in &files {
                let bytes = crate::files::read(f, crate::files::DOCUMENT)
                    .map_err(|e| Fail::unknown(format!("cannot read {}: {e}", f.display())))?;
                sum.add(apel::check_message(&f.display().to_string(), &bytes));
            }
            if let Some(site) = &args.site {
                let others: Vec<&String> = sum.sites.iter().filter(|s| *s != site).collect();
                if !others.is_empty() {
                    sum.problems.push(apel::Problem {
                        file: args
                            .apel_dir
                            .as_ref()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default(),
                        record: 0,
                        line: 0,
                        message: format!("records for other sites: {others:?}, expected {site}"),
                    });
                }
            }
            ctx.perf(Perf::count("messages", sum.messages as u64));
            ctx.perf(Perf::count("records", sum.records as u64));
            ctx.perf(
                Perf::count("bad_records", sum.bad_records as u64).thresholds(None, Some(zero())),
            );
            for (k, n) in &sum.by_kind {
                ctx.perf(Perf::count(format!("records_{}", k.as_str()), *n as u64));
            }
            for p in sum.problems.iter().skip(3).take(SHOW) {
                ctx.detail(format!("APEL: {p}"));
            }
            if sum.problems.len() > SHOW + 3 {
                ctx.detail(format!("APEL: ... {} more", sum.problems.len() - SHOW - 3));
            }
            if !sum.problems.is_empty() {
                let first: Vec<String> =
                    sum.problems.iter().take(3).map(|p| p.to_string()).collect();
                return Err(Fail::critical(format!(
                    "{} problem(s) in {} of {} record(s) ({} message(s)): {}",
                    sum.problems.len(),
                    sum.bad_records,
                    sum.records,
                    sum.messages,
                    first.join("; ")
                )));
            }
            let kinds: Vec<String> = sum
                .by_kind
                .iter()
                .map(|(k, n)| format!("{n} {}", k.as_str()))
                .collect();
            let msg = format!(
                "{} record(s) in {} message(s) valid ({})",
                sum.records,
                sum.messages,
                kinds.join(", ")
            );
            Ok(Done::ok(sum, msg))
        })
        .await?;
    Ok(format!("{} APEL record(s) valid", summary.records))
}

fn zero() -> Range {
    Range {
        start: Some(0.0),
        end: Some(0.0),
        inside: false,
    }
}

/// Warning and critical ranges for the age in days: -w/-c win, then
/// --warn-days/--crit-days, then production's 7/30.
pub fn age_ranges(ctx: &Ctx, args: &Args) -> (Range, Range) {
    let upto = |d: f64| Range {
        start: Some(0.0),
        end: Some(d),
        inside: false,
    };
    let w = ctx
        .warning()
        .unwrap_or_else(|| upto(args.warn_days.unwrap_or(DEFAULT_WARN_DAYS)));
    let c = ctx
        .critical()
        .unwrap_or_else(|| upto(args.crit_days.unwrap_or(DEFAULT_CRIT_DAYS)));
    (w, c)
}

async fn freshness(ctx: &Ctx, args: &Args) -> Result<String, Fail> {
    let (warn, crit) = age_ranges(ctx, args);
    let (last, source) = ctx
        .step(FRESHNESS, async {
            let (last, source) = match &args.last_update_url {
                Some(u) => {
                    let reply = ctx
                        .http()
                        .send(ctx.http().get(u.clone()))
                        .await?
                        .success()?;
                    let t = freshness::parse_last_update(&reply.body).map_err(|e| {
                        Fail::critical(format!("{}: {e}", crate::http::show_url(u)))
                    })?;
                    (t, crate::http::show_url(u))
                }
                None => {
                    let dir = args
                        .apel_dir
                        .as_ref()
                        .ok_or_else(|| Fail::unknown("no source"))?;
                    let t = newest_message(dir, args.site.as_deref())?;
                    (t, format!("spool {}", dir.display()))
                }
            };
            let raw = (now_secs() - last) as f64 / 86400.0;
            if raw < -1.0 {
                return Err(Fail::critical(format!(
                    "last update {} is {:.1} days in the future ({source})",
                    nova_time(last).trim_end_matches(".000000"),
                    -raw
                )));
            }
            // Minutes of clock skew must not read as "outside 0..7 days".
            let age_days = raw.max(0.0);
            let status = crate::model::verdict(age_days, Some(warn), Some(crit));
            ctx.perf(
                Perf::new("age_days", (age_days * 1000.0).round() / 1000.0, Uom::None)
                    .thresholds(Some(warn), Some(crit)),
            );
            let msg = format!(
                "last record {} ({:.1} days ago) from {source}",
                nova_time(last).trim_end_matches(".000000"),
                age_days
            );
            if status == Status::Critical {
                return Err(Fail::critical(msg));
            }
            Ok(Done::with(status, (last, source), msg))
        })
        .await?;
    Ok(format!(
        "accounting updated {:.1} days ago ({source})",
        (now_secs() - last) as f64 / 86400.0
    ))
}

/// The modification time of the newest message (for `site`, when given).
fn newest_message(dir: &Path, site: Option<&str>) -> Result<i64, Fail> {
    let files = spool_files(dir).map_err(|e| Fail::unknown(format!("--apel-dir {e}")))?;
    let mut newest: Option<SystemTime> = None;
    for (p, t) in &files {
        if let Some(site) = site {
            let Ok(bytes) = crate::files::read(p, crate::files::DOCUMENT) else {
                continue;
            };
            let r = apel::check_message("", &bytes);
            if !r.sites.contains(site) {
                continue;
            }
        }
        newest = Some(newest.map_or(*t, |n| n.max(*t)));
    }
    let newest = newest.ok_or_else(|| {
        Fail::critical(match site {
            Some(s) => format!("no message for site {s} in {}", dir.display()),
            None => format!("no message in {}", dir.display()),
        })
    })?;
    Ok(unix_of(newest))
}
