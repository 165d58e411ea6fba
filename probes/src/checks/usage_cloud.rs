//! check_usage on clouds other than OpenStack: the per-VM and volume usage
//! each backend reads through the [`Usage`] trait (OpenNebula: the
//! accounting history records and persistent DATABLOCK images).

use crate::backend::cloud::{self, Connected};
use crate::backend::{Usage, UsageRecord};
use crate::checks::usage::{Args, SERVER_USAGE, TENANT_USAGE, VOLUME_USAGE};
use crate::clock::now_unix;
use crate::{Ctx, Done, Fail};

/// Log in to `--cloud` and run USAGE-01..03 on its backend.
pub async fn api_checks(ctx: &Ctx, args: &Args) -> Result<String, Fail> {
    match cloud::connect(ctx, &args.auth).await? {
        Connected::OpenNebula(b) => with_usage(ctx, args, &b).await,
        other => Err(Fail::unknown(format!(
            "check_usage has no usage reader for --cloud {}",
            other.kind()
        ))),
    }
}

pub async fn with_usage<U: Usage>(ctx: &Ctx, args: &Args, u: &U) -> Result<String, Fail> {
    let end = now_unix();
    let start = end - args.window.as_secs_f64();
    let records = ctx
        .step(TENANT_USAGE, async {
            let r = u.server_usage(start, end).await?;
            let hours: f64 = r.iter().filter_map(|x| x.hours).sum();
            let msg = format!(
                "{} VM(s) with usage, {hours:.2} VM-hours in the window",
                r.len()
            );
            Ok(Done::ok(r, msg))
        })
        .await?;
    let mut parts = vec![format!("{} VM(s) in usage", records.len())];
    if let Some(id) = &args.server_id {
        ctx.step(SERVER_USAGE, async { judge(&records, id, end) })
            .await?;
        parts.push(format!("server {id} accounted"));
    }
    let vols = ctx
        .step(VOLUME_USAGE, async {
            let v = u.volume_usage().await?;
            let gb: u64 = v.iter().filter_map(|x| x.size_gb).sum();
            let msg = format!("{} volume(s), {gb} GB", v.len());
            Ok(Done::ok(v, msg))
        })
        .await?;
    parts.push(format!("{} volume(s)", vols.len()));
    Ok(parts.join(", "))
}

/// The server's record: present, with sizes and sane times.
fn judge(records: &[UsageRecord], id: &str, now: f64) -> Result<Done<()>, Fail> {
    let Some(r) = records.iter().find(|r| r.id == id) else {
        return Err(Fail::critical(format!(
            "server {id} is missing from the usage ({} VMs listed)",
            records.len()
        )));
    };
    let mut bad = Vec::new();
    if r.vcpus.is_none() || r.ram_mb.is_none() {
        bad.push("no VCPU/MEMORY".to_string());
    }
    match r.started {
        Some(s) if s > 0.0 && s <= now + 60.0 => {}
        other => bad.push(format!("start time {other:?}")),
    }
    if let (Some(s), Some(e)) = (r.started, r.ended) {
        if e < s {
            bad.push(format!("ends ({e}) before it starts ({s})"));
        }
    }
    if !bad.is_empty() {
        return Err(Fail::critical(format!("server {id}: {}", bad.join("; "))));
    }
    Ok(Done::ok(
        (),
        format!(
            "server {id}: vcpus {} memory {} MB, {:.3} h",
            r.vcpus.unwrap_or(0),
            r.ram_mb.unwrap_or(0),
            r.hours.unwrap_or(0.0)
        ),
    ))
}
