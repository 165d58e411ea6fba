//! check_vm_lifecycle: boot a small VM through the site's API, wait until it
//! is ACTIVE, delete it and wait until it is gone. Drop-in for production's
//! `novaprobe` command line; adds perfdata, adaptive polling, a bounded wait
//! and a delete on every exit path.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::{self, AuthArgs};
use crate::backend::openstack::OpenStack;
use crate::backend::{
    delete_server_and_wait, run_id, Compute, ImageQuery, NetworkChoice, ServerSpec, ServerState,
};
use crate::cli::{parse_duration, Probe};
use crate::clock::now_unix;
use crate::ctx::ResourceId;
use crate::model::{CheckId, Cleanup, Status};
use crate::nagios::Perf;
use crate::poll::Backoff;
use crate::{Ctx, Done, Fail};

const REQ: &str = "EOSC-IAAS-VM";
pub const API: CheckId = CheckId {
    id: "VM-01",
    requirement: REQ,
    name: "compute API version",
};
pub const IMAGE: CheckId = CheckId {
    id: "VM-02",
    requirement: REQ,
    name: "find image",
};
pub const FLAVOR: CheckId = CheckId {
    id: "VM-03",
    requirement: REQ,
    name: "pick flavor",
};
pub const NETWORK: CheckId = CheckId {
    id: "VM-04",
    requirement: REQ,
    name: "pick network",
};
pub const REAP: CheckId = CheckId {
    id: "VM-05",
    requirement: REQ,
    name: "leftovers of earlier runs",
};
pub const CREATE: CheckId = CheckId {
    id: "VM-06",
    requirement: REQ,
    name: "create server",
};
pub const ACTIVE: CheckId = CheckId {
    id: "VM-07",
    requirement: REQ,
    name: "server becomes ACTIVE",
};
pub const DELETE: CheckId = CheckId {
    id: "VM-08",
    requirement: REQ,
    name: "delete server",
};

/// Metadata key production uses for the monitoring host (kept for reaping
/// its VMs as well as ours).
pub const HOST_KEY: &str = "argo-mon-host";
pub const RUN_KEY: &str = "fedprobe-run";
pub const CREATED_KEY: &str = "fedprobe-created";
/// Name prefix of our servers, and the fixed name production uses.
pub const NAME_PREFIX: &str = "fedprobe-";
pub const PRODUCTION_NAME: &str = "cloudmonprobe-servertest";
/// Smallest root disk an EGI monitoring image needs.
pub const MIN_DISK_GB: u64 = 8;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Image id or name to boot
    #[arg(long = "image", value_name = "ID")]
    pub image: Option<String>,
    /// Registry reference of the image (eu.egi.cloud.image_ref in APPLIANCE_ATTRIBUTES)
    #[arg(long = "registry-image", value_name = "REF")]
    pub registry_image: Option<String>,
    /// AppDB id of the image (Glance property ad:appid)
    #[arg(long = "appdb-image", value_name = "ID")]
    pub appdb_image: Option<String>,
    /// Flavor name or id; default: fewest vCPUs, then least RAM, with >= 8 GB disk
    #[arg(long = "flavor", value_name = "NAME")]
    pub flavor: Option<String>,
    /// Longest wait for the server to become ACTIVE
    #[arg(long = "vm-timeout", value_name = "DURATION", default_value = "300", value_parser = parse_duration)]
    pub vm_timeout: Duration,
    /// Monitoring host name put in the server metadata; default -H, else this machine's name
    #[arg(long = "argo-host-name", value_name = "HOST")]
    pub argo_host_name: Option<String>,
    /// Fixed status poll interval (default: adaptive, 250 ms growing to 2 s)
    #[arg(long = "poll-interval", value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Delete other monitoring hosts' probe servers older than this
    #[arg(long = "reap-ttl", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub reap_ttl: Duration,
}

/// What one run does, backend-independent.
#[derive(Clone, Debug)]
pub struct Plan {
    pub image: ImageQuery,
    pub flavor: Option<String>,
    pub vm_timeout: Duration,
    pub poll_interval: Option<Duration>,
    pub host: String,
    pub reap_ttl: Duration,
    pub run_id: String,
}

impl Plan {
    pub fn from_args(args: &Args, ctx_host: Option<&str>) -> Result<Plan, Fail> {
        let image = if let Some(i) = &args.image {
            ImageQuery::IdOrName(i.clone())
        } else if let Some(r) = &args.registry_image {
            ImageQuery::Registry(r.clone())
        } else if let Some(a) = &args.appdb_image {
            ImageQuery::AppDb(a.clone())
        } else {
            return Err(Fail::unknown(
                "one of --image, --registry-image or --appdb-image is required",
            ));
        };
        // Not -H: that names the site, and two monitors probing one site
        // would reap each other's servers. Production tags the monitor's name.
        let _ = ctx_host;
        let host = args
            .argo_host_name
            .clone()
            .or_else(machine_hostname)
            .unwrap_or_else(|| "unknown-host".into());
        Ok(Plan {
            image,
            flavor: args.flavor.clone(),
            vm_timeout: args.vm_timeout,
            poll_interval: args.poll_interval,
            host,
            reap_ttl: args.reap_ttl,
            run_id: run_id(),
        })
    }
}

fn machine_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub struct VmLifecycle;

impl Probe for VmLifecycle {
    const BIN: &'static str = "check_vm_lifecycle";
    const LABEL: &'static str = "VM_LIFECYCLE";
    const ABOUT: &'static str = "Create, wait for and delete a VM through the API";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let plan = Plan::from_args(&args, ctx.hostname.as_deref())?;
        let t0 = Instant::now();
        let session = auth::login(&ctx, &args.auth).await?;
        ctx.perf(Perf::seconds("auth", t0.elapsed()));
        let mut cloud = OpenStack::new(session.http.clone(), &session);
        ctx.step(API, async {
            let d = cloud.negotiate_compute().await?;
            Ok(Done::ok((), d))
        })
        .await?;
        lifecycle(&ctx, &cloud, &plan).await
    }
}

/// The probe logic, for any [`Compute`] backend.
pub async fn lifecycle<C: Compute>(ctx: &Ctx, cloud: &C, plan: &Plan) -> Result<String, Fail> {
    ctx.detail(format!(
        "monitoring host {:?}, run {}, {}",
        plan.host,
        plan.run_id,
        cloud.describe()
    ));
    let image = ctx
        .step(IMAGE, async {
            let i = cloud.find_image(&plan.image).await?;
            let msg = format!("{} ({})", i.id, i.name);
            Ok(Done::ok(i, msg))
        })
        .await?;
    let flavor = ctx
        .step(FLAVOR, async {
            let f = cloud
                .pick_flavor(plan.flavor.as_deref(), MIN_DISK_GB)
                .await?;
            let msg = format!(
                "{} ({}): {} vCPU, {} MB RAM, {} GB disk",
                f.name, f.id, f.vcpus, f.ram_mb, f.disk_gb
            );
            Ok(Done::ok(f, msg))
        })
        .await?;
    let network = ctx
        .step(NETWORK, async {
            let n = cloud.pick_network().await?;
            let msg = match &n {
                NetworkChoice::Network { id, name } => format!("{name} ({id})"),
                NetworkChoice::None => "no project network: booting without one".into(),
                NetworkChoice::Auto => "auto-allocated".into(),
            };
            Ok(Done::ok(n, msg))
        })
        .await?;
    ctx.step(REAP, reap(ctx, cloud, plan)).await?;

    let name = format!("{NAME_PREFIX}{}", plan.run_id);
    let mut metadata = BTreeMap::new();
    metadata.insert(HOST_KEY.to_string(), plan.host.clone());
    metadata.insert(RUN_KEY.to_string(), plan.run_id.clone());
    metadata.insert(
        CREATED_KEY.to_string(),
        format!("{}", now_unix().floor() as u64),
    );
    let spec = ServerSpec {
        name: name.clone(),
        image_id: image.id.clone(),
        flavor_id: flavor.id.clone(),
        network,
        metadata,
    };
    let t_create = Instant::now();
    let (id, handle) = ctx
        .step(CREATE, async {
            // A deadline or signal while the create is in flight leaves no id:
            // until one comes back, cleanup finds servers by this run's id.
            let in_flight = track_run(ctx, cloud, &plan.run_id);
            let id = match cloud.create_server(&spec).await {
                Ok(id) => id,
                Err(f) => {
                    // A lost answer (proxy timeout, reset) may hide a created
                    // server: find it by this run's id so it is deleted too.
                    adopt_orphans(ctx, cloud, plan).await;
                    ctx.forget(in_flight);
                    return Err(f);
                }
            };
            // Registered before anything else can fail or be interrupted.
            let handle = track_server(ctx, cloud, &id, &name);
            ctx.forget(in_flight);
            let msg = format!("{id} ({name}) accepted");
            Ok(Done::ok((id, handle), msg))
        })
        .await?;

    let (_server, polls) = ctx
        .step(ACTIVE, wait_active(ctx, cloud, plan, &id, t_create))
        .await?;
    let create_time = t_create.elapsed();
    ctx.perf(Perf::seconds("create", create_time).thresholds(ctx.warning, ctx.critical));
    ctx.perf(Perf::count("polls", polls));

    let t_delete = Instant::now();
    let delete_polls = ctx
        .step(DELETE, async {
            let n = delete_server_and_wait(cloud, &id).await?;
            Ok(Done::ok(
                n,
                format!("gone after {:.2}s", t_delete.elapsed().as_secs_f64()),
            ))
        })
        .await?;
    let delete_time = t_delete.elapsed();
    ctx.settle(handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete", delete_time));
    ctx.perf(Perf::count("delete_polls", delete_polls));
    Ok(format!(
        "Compute instance={id} created({:.2}s) and destroyed({:.2}s)",
        create_time.as_secs_f64(),
        delete_time.as_secs_f64()
    ))
}

/// Register `id` for deletion on every exit path.
fn track_server<C: Compute>(ctx: &Ctx, cloud: &C, id: &str, name: &str) -> ResourceId {
    let b = cloud.clone();
    let sid = id.to_string();
    ctx.track(
        "server",
        id,
        Some(name),
        Box::new(move |http| {
            Box::pin(async move {
                delete_server_and_wait(&b.rebind(http), &sid)
                    .await
                    .map(|_| ())
                    .map_err(|f| f.message)
            })
        }),
    )
}

/// Cleanup for a create request whose answer has not come yet: delete
/// whatever server carries this run's id.
fn track_run<C: Compute>(ctx: &Ctx, cloud: &C, run: &str) -> ResourceId {
    let b = cloud.clone();
    let run = run.to_string();
    ctx.track(
        "server request",
        &format!("run {run}"),
        None,
        Box::new(move |http| {
            Box::pin(async move {
                let b = b.rebind(http);
                let found = b.servers_tagged(RUN_KEY).await.map_err(|f| f.message)?;
                for s in found
                    .iter()
                    .filter(|s| s.metadata.get(RUN_KEY) == Some(&run))
                {
                    delete_server_and_wait(&b, &s.id)
                        .await
                        .map_err(|f| format!("server {}: {}", s.id, f.message))?;
                }
                Ok(())
            })
        }),
    )
}

/// Track servers carrying this run's id (best effort, after a failed create).
async fn adopt_orphans<C: Compute>(ctx: &Ctx, cloud: &C, plan: &Plan) {
    let Ok(found) = cloud.servers_tagged(RUN_KEY).await else {
        return;
    };
    for s in found
        .iter()
        .filter(|s| s.metadata.get(RUN_KEY) == Some(&plan.run_id))
    {
        ctx.detail(format!(
            "create failed but server {} exists: deleting it",
            s.id
        ));
        track_server(ctx, cloud, &s.id, &s.name);
    }
}

/// Delete this host's leftovers (WARNING, as production) and other hosts'
/// probe servers older than the TTL. Nothing else is touched.
async fn reap<C: Compute>(ctx: &Ctx, cloud: &C, plan: &Plan) -> Result<Done<()>, Fail> {
    let tagged = cloud.servers_tagged(HOST_KEY).await?;
    let now = now_unix();
    let mut mine = Vec::new();
    let mut stale = Vec::new();
    let mut kept = 0;
    for s in tagged {
        if s.metadata.get(HOST_KEY) == Some(&plan.host) {
            mine.push(s);
        } else if is_probe_name(&s.name) && age(&s, now) > Some(plan.reap_ttl.as_secs_f64()) {
            stale.push(s);
        } else {
            kept += 1;
        }
    }
    if mine.is_empty() && stale.is_empty() {
        return Ok(Done::ok(
            (),
            format!(
                "none for {} ({kept} other monitoring server(s) left alone)",
                plan.host
            ),
        ));
    }
    // Bounded so a stuck delete cannot eat the run.
    let budget = ctx.deadline().within(Duration::from_secs(120));
    let bounded = cloud.rebind(ctx.http.with_deadline(budget));
    let mut failed = Vec::new();
    for s in mine.iter().chain(stale.iter()) {
        if let Err(f) = delete_server_and_wait(&bounded, &s.id).await {
            failed.push(format!("{}: {}", s.id, f.message));
        }
    }
    let ids = |v: &[ServerState]| {
        v.iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut msg = Vec::new();
    if !mine.is_empty() {
        msg.push(format!(
            "deleted {} leftover server(s) of {} from earlier runs: {}",
            mine.len(),
            plan.host,
            ids(&mine)
        ));
    }
    if !stale.is_empty() {
        msg.push(format!(
            "deleted {} probe server(s) of other hosts older than {}: {}",
            stale.len(),
            humantime::format_duration(plan.reap_ttl),
            ids(&stale)
        ));
    }
    if !failed.is_empty() {
        msg.push(format!("could not delete {}", failed.join("; ")));
    }
    let status = if mine.is_empty() && failed.is_empty() {
        Status::Ok
    } else {
        Status::Warning
    };
    Ok(Done::with(status, (), msg.join("; ")))
}

fn is_probe_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX) || name == PRODUCTION_NAME
}

/// Seconds since creation: our metadata first, else the cloud's.
fn age(s: &ServerState, now: f64) -> Option<f64> {
    s.metadata
        .get(CREATED_KEY)
        .and_then(|c| c.parse::<f64>().ok())
        .or(s.created)
        .map(|c| now - c)
}

async fn wait_active<C: Compute>(
    ctx: &Ctx,
    cloud: &C,
    plan: &Plan,
    id: &str,
    t_create: Instant,
) -> Result<Done<(ServerState, u64)>, Fail> {
    // Keep part of what -t leaves for the delete that follows.
    let left = ctx.deadline().remaining();
    let reserve = (left / 5).clamp(Duration::from_secs(2), Duration::from_secs(30));
    let by_t = left.saturating_sub(reserve);
    let limit = plan.vm_timeout.min(by_t);
    let end = Instant::now() + limit;
    let mut backoff = Backoff::from_option(plan.poll_interval);
    let mut polls = 0u64;
    let mut last = String::from("none yet");
    let mut prev_poll: Option<f64> = None;
    loop {
        let now = Instant::now();
        if now >= end {
            let why = if limit < plan.vm_timeout {
                format!(
                    "{:.0}s (all -t left, --vm-timeout {}s)",
                    limit.as_secs_f64(),
                    plan.vm_timeout.as_secs()
                )
            } else {
                format!("--vm-timeout {}s", plan.vm_timeout.as_secs())
            };
            ctx.perf(Perf::count("polls", polls));
            return Err(Fail::critical(format!(
                "server {id} not ACTIVE after {why}; last status {last}"
            )));
        }
        tokio::time::sleep(backoff.next_delay().min(end - now)).await;
        polls += 1;
        let answered = cloud.server(id).await?;
        let Some(s) = answered else {
            return Err(Fail::critical(format!(
                "server {id} disappeared while waiting (last status {last})"
            )));
        };
        match s.status.as_str() {
            "ACTIVE" => {
                // Detection lag: at most the time since the previous poll
                // saw it not yet ACTIVE; Nova's launched_at gives a second estimate.
                let noticed = now_unix();
                let since_prev = prev_poll.map(|p| noticed - p);
                ctx.detail(format!(
                    "active lag: noticed {noticed:.3} after {polls} polls; previous poll {}; launched_at {}",
                    since_prev.map(|d| format!("{d:.3}s earlier")).unwrap_or_else(|| "none".into()),
                    s.launched_at
                        .map(|at| format!("{at:.3} ({:.3}s before noticed)", noticed - at))
                        .unwrap_or_else(|| "not reported".into())
                ));
                let msg = format!(
                    "ACTIVE after {:.2}s, {polls} status polls",
                    t_create.elapsed().as_secs_f64()
                );
                let secs = t_create.elapsed().as_secs_f64();
                let status = ctx.threshold_status(secs);
                return Ok(Done::with(status, (s, polls), msg));
            }
            "ERROR" => {
                ctx.perf(Perf::count("polls", polls));
                let fault = s.fault.unwrap_or_else(|| "no fault message given".into());
                return Err(Fail::critical(format!(
                    "server {id} went to ERROR: {fault}"
                )));
            }
            _ => {
                prev_poll = Some(now_unix());
                last = match &s.detail {
                    Some(d) => format!("{} ({d})", s.status),
                    None => s.status.clone(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_and_age() {
        assert!(is_probe_name("fedprobe-0123456789"));
        assert!(is_probe_name("cloudmonprobe-servertest"));
        assert!(!is_probe_name("my-important-vm"));
        let mut s = ServerState {
            created: Some(1000.0),
            ..Default::default()
        };
        assert_eq!(age(&s, 1500.0), Some(500.0));
        s.metadata.insert(CREATED_KEY.into(), "1400".into());
        assert_eq!(age(&s, 1500.0), Some(100.0));
    }

    #[test]
    fn image_choice_order() {
        let mut a = Args {
            auth: AuthArgs::default(),
            image: None,
            registry_image: Some("r".into()),
            appdb_image: Some("1".into()),
            flavor: None,
            vm_timeout: Duration::from_secs(300),
            argo_host_name: None,
            poll_interval: None,
            reap_ttl: Duration::from_secs(86400),
        };
        let p = Plan::from_args(&a, Some("mon.example")).unwrap();
        assert_eq!(p.image, ImageQuery::Registry("r".into()));
        // -H names the site, not the monitor: the tag is the machine's name.
        let machine = machine_hostname().unwrap_or_else(|| "unknown-host".into());
        assert_eq!(p.host, machine);
        a.argo_host_name = Some("argo-mon.example".into());
        let p = Plan::from_args(&a, Some("site.example")).unwrap();
        assert_eq!(p.host, "argo-mon.example");
        a.registry_image = None;
        a.appdb_image = None;
        assert!(Plan::from_args(&a, None).is_err());
    }
}
