//! check_usage on clouds other than OpenStack: per-VM and per-volume usage
//! through the backend's [`Usage`] (or the nearest equivalent its API offers),
//! with the same checks USAGE-01..03.

use crate::backend::cloud::{self, Connected};
use crate::backend::{Usage, UsageRecord, Volumes};
use crate::clock::now_unix;
use crate::model::{Perf, Uom};
use crate::{Ctx, Done, Fail};

use super::{own_plan, own_volume, Args, SERVER_USAGE, TENANT_USAGE, VOLUME_USAGE};

pub async fn checks(ctx: &Ctx, args: &Args) -> Result<String, Fail> {
    match cloud::connect(ctx, &args.auth).await? {
        // Microsoft.Compute lists existing VMs only (deleted ones are Cost Management's).
        Connected::Azure(b) => {
            let why =
                "Microsoft.Compute lists existing VMs only (deleted ones are Cost Management's)";
            with_usage(ctx, args, &b, Some(why)).await
        }
        Connected::Gce(b) => {
            let why = "GCE's compute API keeps no usage of deleted instances (usage is in the \
                       billing export, outside the API)";
            with_usage(ctx, args, &b, Some(why)).await
        }
        // DescribeInstances lists terminated instances for about an hour.
        Connected::Ec2(b) => with_usage(ctx, args, &b, None).await,
        // oned's accounting keeps the history records of terminated VMs.
        Connected::OpenNebula(b) => with_usage(ctx, args, &b, None).await,
        other => Err(Fail::unknown(format!(
            "check_usage has no usage reading for --cloud {}",
            other.kind()
        ))),
    }
}

async fn with_usage<U: Usage + Volumes>(
    ctx: &Ctx,
    args: &Args,
    b: &U,
    existing_only: Option<&str>,
) -> Result<String, Fail> {
    let end = now_unix();
    let start = end - args.window.as_secs_f64();
    let servers = ctx
        .step(TENANT_USAGE, async {
            let u = b.server_usage(start, end).await?;
            ctx.perf(Perf::count("servers", u.len() as u64));
            let msg = format!(
                "{} server(s) in the last {} ({})",
                u.len(),
                humantime::format_duration(args.window),
                b.describe()
            );
            Ok(Done::ok(u, msg))
        })
        .await?;
    let mut summary = format!("{} server(s) in usage", servers.len());
    if let Some(id) = &args.server_id {
        ctx.step(SERVER_USAGE, async {
            judge(&servers, id, end, existing_only)
        })
        .await?;
        summary.push_str(&format!(", server {id} accounted"));
    }
    let own = own_plan(args);
    let vols = ctx
        .step(VOLUME_USAGE, async {
            let made = match &own {
                Some(o) => Some(own_volume::create(ctx, b, o).await?),
                None => None,
            };
            let v = b.volume_usage().await?;
            let gb: u64 = v.iter().filter_map(|r| r.size_gb).sum();
            let mut msg = format!("{} volume(s), {gb} GB", v.len());
            if let (Some(o), Some(m)) = (&own, made) {
                let listed = own_volume::judge(&v, &m.id, o.size_gb, m.asked, now_unix())
                    .map_err(Fail::critical)?;
                let gone = own_volume::delete(ctx, b, o, m).await?;
                msg.push_str(&format!("; {listed}, deleted in {gone:.2}s"));
            }
            Ok(Done::ok((v.len(), gb), msg))
        })
        .await?;
    ctx.perf(Perf::count("volumes", vols.0 as u64));
    ctx.perf(Perf::new("volume_size", vols.1 as f64 * super::GIB, Uom::Bytes).min(0.0));
    summary.push_str(&format!(", {} volume(s)", vols.0));
    Ok(summary)
}

/// The server must be listed with its sizes and a start not in the future.
/// Where the API lists existing servers only, a missing (deleted) one is a
/// WARNING: its usage is not readable there.
pub fn judge(
    records: &[UsageRecord],
    id: &str,
    now: f64,
    existing_only: Option<&str>,
) -> Result<Done<()>, Fail> {
    let Some(r) = records.iter().find(|r| r.id == id) else {
        if let Some(why) = existing_only {
            return Ok(Done::warn(
                (),
                format!(
                    "server {id} not listed: this API lists existing servers only, so a \
                     deleted server's usage is not readable here: {why} ({} servers listed)",
                    records.len()
                ),
            ));
        }
        return Err(Fail::critical(format!(
            "server {id} is missing from the usage ({} servers listed)",
            records.len()
        )));
    };
    if let Some(t) = r.started.filter(|t| *t > now + 300.0) {
        return Err(Fail::critical(format!(
            "server {id} started {:.0}s in the future",
            t - now
        )));
    }
    let sizes = format!(
        "vcpus {} memory {} MB",
        r.vcpus.map(|v| v.to_string()).unwrap_or("?".into()),
        r.ram_mb.map(|v| v.to_string()).unwrap_or("?".into())
    );
    if r.vcpus.is_none() || r.ram_mb.is_none() || r.started.is_none() {
        return Ok(Done::warn(
            (),
            format!("server {id}: {sizes}; sizes or start time not reported"),
        ));
    }
    Ok(Done::ok(
        (),
        format!("server {id}: {sizes}, {:.2} h", r.hours.unwrap_or(0.0)),
    ))
}
