//! check_vm_lifecycle: boot a small VM through the site's API, wait until it
//! is ACTIVE, delete it and wait until it is gone. Drop-in for production's
//! `novaprobe` command line; adds perfdata, adaptive polling, a bounded wait
//! and a delete on every exit path.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::AuthArgs;
use crate::backend::cloud;
use crate::backend::{
    delete_server_and_wait, delete_server_within, run_id, Compute, Flavor, ImageQuery,
    NetworkChoice, QuotaUse, ServerPhase, ServerSpec, ServerState,
};
use crate::clock::now_unix;
use crate::model::{Cleanup, Perf, ProbeResult, ResourceKind, Status};
use crate::poll::{wait_for, Poll, Wait};
use crate::probe::{Link, Probe};
use crate::record::ResourceId;
use crate::units::parse_duration;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-VM";
    API = "VM-01", "compute API version";
    IMAGE = "VM-02", "find image";
    FLAVOR = "VM-03", "pick flavor";
    NETWORK = "VM-04", "pick network";
    REAP = "VM-05", "leftovers of earlier runs";
    QUOTA = "VM-09", "room in the compute quota";
    CREATE = "VM-06", "create server";
    ACTIVE = "VM-07", "server becomes ACTIVE";
    DELETE = "VM-08", "delete server";
}

/// Metadata key production uses for the monitoring host (kept for reaping
/// its VMs as well as ours).
pub const HOST_KEY: &str = "argo-mon-host";
pub const RUN_KEY: &str = "fedprobe-run";
pub const CREATED_KEY: &str = "fedprobe-created";
/// Unix time by which the run that created the server is over, cleanup
/// included: before it, another run of the same host leaves it alone.
pub const UNTIL_KEY: &str = "fedprobe-until";
/// Which process created the server ([`run_owner`]): on the same machine a
/// dead owner's server is a leftover at once, before its `fedprobe-until`.
pub const OWNER_KEY: &str = "fedprobe-owner";
/// How long a server of this host without `fedprobe-until` (production's
/// `novaprobe`, older fedprobe) may still belong to a live run, counted from
/// its creation: ARGO's `-t 300` for the VM check plus [`CLOCK_SLACK`].
pub const LEGACY_RUN_BOUND: Duration = Duration::from_secs(360);
/// Slack for the clocks of monitoring machines sharing one host name.
pub const CLOCK_SLACK: Duration = Duration::from_secs(60);
/// Name prefix of our servers, and the fixed name production uses.
pub const NAME_PREFIX: &str = "fedprobe-";
pub const PRODUCTION_NAME: &str = "cloudmonprobe-servertest";
/// Smallest root disk an EGI monitoring image needs.
pub const MIN_DISK_GB: u64 = 8;

#[derive(clap::Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("which_image").required(true).multiple(true).args(["image", "registry_image", "appdb_image"])))]
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
    /// Monitoring host name put in the server metadata; default: this machine's name
    #[arg(long = "argo-host-name", value_name = "HOST")]
    pub argo_host_name: Option<String>,
    /// Fixed status poll interval (default: adaptive, 100 ms growing to 2 s)
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
    /// Unix time by which this run is over, cleanup included (`fedprobe-until`).
    pub ends_by: f64,
}

impl Plan {
    pub fn from_args(args: &Args) -> Result<Plan, Fail> {
        let image = if let Some(i) = &args.image {
            ImageQuery::IdOrName(i.clone())
        } else if let Some(r) = &args.registry_image {
            ImageQuery::Registry(r.clone())
        } else if let Some(a) = &args.appdb_image {
            ImageQuery::AppDb(a.clone())
        } else {
            // clap's ArgGroup makes this unreachable from a command line.
            return Err(Fail::unknown(
                "one of --image, --registry-image or --appdb-image is required",
            ));
        };
        // Not -H: that names the site, and two monitors probing one site
        // would reap each other's servers. Production tags the monitor's name.
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
            // run() sets it from the real -t; this is for callers without one.
            ends_by: now_unix() + 2.0 * VmLifecycle::DEFAULT_TIMEOUT.as_secs_f64(),
        })
    }
}

pub(crate) fn machine_hostname() -> Option<String> {
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
    const PROVIDES: &'static [Link] = &[Link::Server];

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let mut plan = Plan::from_args(&args)?;
        // At the body's start the work deadline is -t minus the cleanup
        // grace, and the grace is at most half of -t: twice the work time
        // bounds the whole run.
        plan.ends_by = now_unix() + 2.0 * ctx.deadline().remaining().as_secs_f64();
        let connected = cloud::connect(&ctx, &args.auth).await?;
        crate::with_backend!(connected, mut backend => {
            ctx.step(API, async {
                let d = backend.api_version().await?;
                Ok(Done::ok((), d))
            })
            .await?;
            lifecycle(&ctx, &backend, &plan).await
        })
    }

    /// The server this run created and saw ACTIVE: check_usage looks it up.
    fn offers(r: &ProbeResult) -> Vec<(Link, String)> {
        let ran = r
            .steps
            .iter()
            .any(|s| s.check == ACTIVE.id && matches!(s.status, Status::Ok | Status::Warning));
        r.resources
            .iter()
            .filter(|x| ran && x.kind == ResourceKind::Server)
            .map(|x| (Link::Server, x.id.clone()))
            .take(1)
            .collect()
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
    ctx.detail(format!(
        "image: {}; flavor: {}",
        image_rule(&plan.image),
        flavor_rule(plan)
    ));
    // One after another, on one kept-alive connection: run at once they
    // open a connection each, and on a slow link (the fault matrix's
    // 260 ms per chunk) the extra TLS handshakes cost more than they save.
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
    ctx.step(QUOTA, room_for_one(cloud, &flavor)).await?;

    let name = format!("{NAME_PREFIX}{}", plan.run_id);
    let mut metadata = BTreeMap::new();
    metadata.insert(HOST_KEY.to_string(), plan.host.clone());
    metadata.insert(RUN_KEY.to_string(), plan.run_id.clone());
    metadata.insert(
        CREATED_KEY.to_string(),
        format!("{}", now_unix().floor() as u64),
    );
    metadata.insert(
        UNTIL_KEY.to_string(),
        format!("{}", plan.ends_by.ceil() as u64),
    );
    if let Some(owner) = run_owner(std::process::id()) {
        metadata.insert(OWNER_KEY.to_string(), owner);
    }
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
                    // If that listing fails, the placeholder stays: the
                    // runner's cleanup lists and deletes by run id at the end.
                    if adopt_orphans(ctx, cloud, plan).await {
                        ctx.forget(in_flight);
                    }
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
    ctx.perf(Perf::seconds("create", create_time).thresholds(ctx.warning(), ctx.critical()));
    ctx.perf(Perf::count("polls", polls));

    let t_delete = Instant::now();
    let delete_polls = ctx
        .step(DELETE, async {
            let wait = Wait::bounded(ctx.deadline(), plan.vm_timeout, plan.poll_interval);
            let n = delete_server_within(cloud, &id, wait).await?;
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

/// VM-09: the project's compute quota against one more server of `flavor`;
/// no room ends the run here, before anything is created.
async fn room_for_one<C: Compute>(cloud: &C, flavor: &Flavor) -> Result<Done<()>, Fail> {
    let q = match cloud.compute_quota(flavor).await {
        Ok(Some(q)) => q,
        Ok(None) => return Ok(Done::ok((), "no quota to read on this cloud: not checked")),
        // A policy hiding the limits, or an API without them: the create tells.
        Err(f) if matches!(f.http_status(), Some(403 | 404)) => {
            return Ok(Done::warn((), format!("quota not readable: {}", f.message)))
        }
        Err(f) => return Err(f),
    };
    let limit = |u: &QuotaUse| u.limit.map_or("unlimited".into(), |l| l.to_string());
    let full: Vec<String> = q
        .iter()
        .filter(|u| u.exhausted())
        .map(|u| {
            format!(
                "{} {} in use, limit {}, one more server needs {}",
                u.resource,
                u.in_use,
                limit(u),
                u.need
            )
        })
        .collect();
    if !full.is_empty() {
        return Err(Fail::critical(format!(
            "no room for one more server of flavor {}: {}; nothing created",
            flavor.name,
            full.join("; ")
        )));
    }
    let room: Vec<String> = q
        .iter()
        .map(|u| format!("{} {}+{} of {}", u.resource, u.in_use, u.need, limit(u)))
        .collect();
    Ok(Done::ok(
        (),
        format!(
            "room for one more server of {}: {}",
            flavor.name,
            room.join(", ")
        ),
    ))
}

/// How the image is chosen, in words (shown at -vv).
fn image_rule(q: &ImageQuery) -> String {
    match q {
        ImageQuery::IdOrName(s) => format!("id or name {s:?} (--image)"),
        ImageQuery::Registry(r) if !r.rsplit('/').next().unwrap_or(r).contains(':') => {
            format!("registry reference {r}, any tag, the newest active (--registry-image)")
        }
        ImageQuery::Registry(r) => format!("registry reference {r} (--registry-image)"),
        ImageQuery::AppDb(a) => format!("AppDB id {a} (--appdb-image)"),
    }
}

fn flavor_rule(plan: &Plan) -> String {
    match &plan.flavor {
        Some(f) => format!("{f:?} (--flavor)"),
        None => format!(
            "by rule: fewest vCPUs, then least RAM, with a disk of at least {MIN_DISK_GB} GB"
        ),
    }
}

/// Register `id` for deletion on every exit path.
pub(crate) fn track_server<C: Compute>(ctx: &Ctx, cloud: &C, id: &str, name: &str) -> ResourceId {
    ctx.track_retried(
        ResourceKind::Server,
        id,
        Some(name),
        cloud,
        |c, id| async move { delete_server_and_wait(&c, &id).await.map(drop) },
    )
}

/// Cleanup for a create request whose answer has not come yet: delete
/// whatever server carries this run's id, each reported under its own id.
pub(crate) fn track_run<C: Compute>(ctx: &Ctx, cloud: &C, run: &str) -> ResourceId {
    let owner = ctx.clone();
    ctx.track(
        ResourceKind::ServerRequest,
        &format!("run {run}"),
        None,
        cloud,
        |c, label| async move {
            let run = label.trim_start_matches("run ");
            let found = c.servers_tagged(RUN_KEY).await?;
            for s in found
                .iter()
                .filter(|s| s.metadata.get(RUN_KEY).map(String::as_str) == Some(run))
            {
                // Listed as its own resource, settled here: nothing left owed.
                let rid = owner.track(
                    ResourceKind::Server,
                    &s.id,
                    Some(&s.name),
                    &c,
                    |_, _| async { Ok(()) },
                );
                let deleted = delete_server_and_wait(&c, &s.id).await;
                owner.settle_result(rid, &deleted);
                deleted.map_err(|f| f.context(format!("server {}", s.id)))?;
            }
            Ok(())
        },
    )
}

/// Track servers carrying this run's id (after a failed create). False when
/// the listing failed: the caller then keeps the run's placeholder cleanup.
async fn adopt_orphans<C: Compute>(ctx: &Ctx, cloud: &C, plan: &Plan) -> bool {
    let found = match cloud.servers_tagged(RUN_KEY).await {
        Ok(found) => found,
        Err(f) => {
            ctx.detail(format!(
                "create failed and listing this run's servers failed too ({}): \
                 cleanup will look again",
                f.message
            ));
            return false;
        }
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
    true
}

/// Delete this host's leftovers (WARNING, as production) and other hosts'
/// probe servers older than the TTL. Nothing else is touched, and never a
/// server a run still going may own (another scheduler, a retry).
async fn reap<C: Compute>(ctx: &Ctx, cloud: &C, plan: &Plan) -> Result<Done<()>, Fail> {
    let tagged = cloud.servers_tagged(HOST_KEY).await?;
    let now = now_unix();
    let mut mine = Vec::new();
    let mut stale = Vec::new();
    let mut live = 0;
    let mut kept = 0;
    for s in tagged {
        if may_be_running(&s, now) {
            if s.metadata.get(HOST_KEY) == Some(&plan.host) {
                live += 1;
            } else {
                kept += 1;
            }
        } else if s.metadata.get(HOST_KEY) == Some(&plan.host) {
            mine.push(s);
        } else if is_probe_name(&s.name) && age(&s, now) > Some(plan.reap_ttl.as_secs_f64()) {
            stale.push(s);
        } else {
            kept += 1;
        }
    }
    let alone = if live > 0 {
        format!("{live} server(s) of {} runs still going and ", plan.host)
    } else {
        String::new()
    };
    if mine.is_empty() && stale.is_empty() {
        return Ok(Done::ok(
            (),
            format!(
                "none for {} ({alone}{kept} other monitoring server(s) left alone)",
                plan.host
            ),
        ));
    }
    // Bounded so a stuck delete cannot eat the run.
    let bounded = cloud.with_deadline(ctx.deadline().within(Duration::from_secs(120)));
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
    if live > 0 {
        msg.push(format!(
            "{live} server(s) of {} runs still going left alone",
            plan.host
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

/// Whether the run that created `s` may still be going: before its
/// `fedprobe-until` (plus clock slack) unless its owner process is seen dead
/// on this machine; without that key, within [`LEGACY_RUN_BOUND`] of its
/// creation. A server with no time at all is not a live run's.
fn may_be_running(s: &ServerState, now: f64) -> bool {
    run_may_be_going(&s.metadata, s.created, now)
}

/// The rule of [`may_be_running`] for anything a probe tags with these keys
/// (`tags`) and whose creation time the cloud gives (`created`): the image
/// probe reaps by the same rule.
pub(crate) fn run_may_be_going(
    tags: &BTreeMap<String, String>,
    created: Option<f64>,
    now: f64,
) -> bool {
    let until = tags.get(UNTIL_KEY).and_then(|u| u.parse::<f64>().ok());
    match until {
        Some(until) => {
            now <= until + CLOCK_SLACK.as_secs_f64()
                && !tags.get(OWNER_KEY).is_some_and(|o| owner_gone(o))
        }
        None => tag_age(tags, created, now).is_some_and(|a| a <= LEGACY_RUN_BOUND.as_secs_f64()),
    }
}

/// This machine's boot and PID namespace, and `pid`'s start time:
/// `boot/pidns/pid.start`. A PID alone could be reused, or belong to another
/// container sharing the kernel.
pub fn run_owner(pid: u32) -> Option<String> {
    let (boot, ns) = process_space()?;
    let start = start_time(pid)?;
    Some(format!("{boot}/{ns}/{pid}.{start}"))
}

fn process_space() -> Option<(String, String)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let ns: String = ns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some((boot.trim().to_string(), ns))
}

/// Start time of a live (not zombie) process, in clock ticks since boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(19).map(|s| s.to_string())
}

/// True only when `owner` names a process of this machine and namespace
/// that is no longer there.
fn owner_gone(owner: &str) -> bool {
    let mut parts = owner.splitn(3, '/');
    let (Some(boot), Some(ns), Some(proc_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Some((pid, start)) = proc_.split_once('.') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match process_space() {
        Some((b, n)) if b == boot && n == ns => start_time(pid).as_deref() != Some(start),
        _ => false,
    }
}

fn is_probe_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX) || name == PRODUCTION_NAME
}

/// Seconds since creation: our metadata first, else the cloud's.
fn age(s: &ServerState, now: f64) -> Option<f64> {
    tag_age(&s.metadata, s.created, now)
}

pub(crate) fn tag_age(
    tags: &BTreeMap<String, String>,
    created: Option<f64>,
    now: f64,
) -> Option<f64> {
    tags.get(CREATED_KEY)
        .and_then(|c| c.parse::<f64>().ok())
        .or(created)
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
    let wait = Wait::bounded(ctx.deadline(), plan.vm_timeout, plan.poll_interval).sleep_first();
    // The last status seen and when: for the lag diagnostics and messages.
    let seen: std::sync::Mutex<(String, Option<f64>)> =
        std::sync::Mutex::new(("none yet".into(), None));
    let seen = &seen;
    let mut polls = 0u64;
    let waited = wait_for(wait, || {
        polls += 1;
        let n = polls;
        let fut = cloud.server(id);
        async move {
            let (last, prev) = seen.lock().map(|g| g.clone()).unwrap_or_default();
            let Some(s) = fut.await? else {
                return Err(Fail::critical(format!(
                    "server {id} disappeared while waiting (last status {last})"
                )));
            };
            match &s.phase {
                ServerPhase::Active => {
                    // Detection lag: at most the time since the previous poll
                    // saw it not yet active; launched_at gives a second estimate.
                    let noticed = now_unix();
                    ctx.detail(format!(
                        "active lag: noticed {noticed:.3} after {n} polls; previous poll {}; launched_at {}",
                        prev.map(|p| format!("{:.3}s earlier", noticed - p)).unwrap_or_else(|| "none".into()),
                        s.launched_at
                            .map(|at| format!("{at:.3} ({:.3}s before noticed)", noticed - at))
                            .unwrap_or_else(|| "not reported".into())
                    ));
                    Ok(Poll::Ready(s))
                }
                ServerPhase::Error { reason } => {
                    ctx.perf(Perf::count("polls", n));
                    let fault = reason.as_deref().unwrap_or("no fault message given");
                    Err(Fail::critical(format!(
                        "server {id} went to ERROR: {fault}"
                    )))
                }
                _ => {
                    if let Ok(mut g) = seen.lock() {
                        *g = (s.status_text.clone(), Some(now_unix()));
                    }
                    Ok(Poll::Pending(s.status_text))
                }
            }
        }
    })
    .await?;
    let (s, polls) = waited.or_fail(|l| {
        let why = if l.cut_by_deadline {
            format!(
                "{:.0}s (all -t left, --vm-timeout {}s)",
                l.limit.as_secs_f64(),
                plan.vm_timeout.as_secs()
            )
        } else {
            format!("--vm-timeout {}s", plan.vm_timeout.as_secs())
        };
        ctx.perf(Perf::count("polls", l.polls));
        format!("server {id} not ACTIVE after {why}; last status {}", l.last)
    })?;
    let secs = t_create.elapsed().as_secs_f64();
    let msg = format!("ACTIVE after {secs:.2}s, {polls} status polls");
    Ok(Done::with(ctx.threshold_status(secs), (s, polls), msg))
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
    fn live_runs_are_told_from_leftovers() {
        let now = 10_000.0;
        let server = |meta: &[(&str, String)], created: Option<f64>| ServerState {
            created,
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        };
        let me = run_owner(std::process::id()).expect("this process on Linux");
        let until = |t: f64| (UNTIL_KEY, format!("{t}"));
        // Before its run's end, with this (live) process as owner: running.
        assert!(may_be_running(
            &server(&[until(now + 100.0), (OWNER_KEY, me.clone())], None),
            now
        ));
        // Past the end and the clock slack: a leftover.
        assert!(!may_be_running(
            &server(&[until(now - 61.0), (OWNER_KEY, me)], None),
            now
        ));
        // Before the end, owner on another machine: cannot tell, so running.
        let elsewhere = (OWNER_KEY, "other-boot/1/42.7".to_string());
        assert!(may_be_running(
            &server(&[until(now + 100.0), elsewhere], None),
            now
        ));
        // Garbage owner: cannot tell.
        assert!(may_be_running(
            &server(&[until(now + 100.0), (OWNER_KEY, "x".into())], None),
            now
        ));
        // Without our keys: Nova's creation time and the legacy bound.
        assert!(may_be_running(&server(&[], Some(now - 300.0)), now));
        assert!(!may_be_running(&server(&[], Some(now - 361.0)), now));
        assert!(!may_be_running(&server(&[], None), now));
    }

    #[test]
    fn a_dead_owner_on_this_machine_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let owner = run_owner(child.id()).expect("a sleeping child");
        assert!(!owner_gone(&owner), "{owner}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(owner_gone(&owner), "{owner}");
        let me = run_owner(std::process::id()).unwrap();
        assert!(!owner_gone(&me));
        // Same machine, a different start time (a reused PID): gone.
        let (head, _) = me.rsplit_once('.').unwrap();
        assert!(owner_gone(&format!("{head}.1")));
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
        let p = Plan::from_args(&a).unwrap();
        assert_eq!(p.image, ImageQuery::Registry("r".into()));
        // -H names the site, not the monitor: the tag is the machine's name.
        let machine = machine_hostname().unwrap_or_else(|| "unknown-host".into());
        assert_eq!(p.host, machine);
        a.argo_host_name = Some("argo-mon.example".into());
        let p = Plan::from_args(&a).unwrap();
        assert_eq!(p.host, "argo-mon.example");
        a.registry_image = None;
        a.appdb_image = None;
        assert!(Plan::from_args(&a).is_err());
    }
}
