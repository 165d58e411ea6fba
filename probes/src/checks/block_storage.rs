//! check_block_storage: check there is room for one more volume, create a
//! small volume, wait until it is available, attach it to a server (its own
//! short-lived one, or `--server-id`), see it in use from the volume and the
//! server, detach it, delete it and confirm it is gone. Written once against
//! `Volumes` + `Compute`: it runs on every cloud `--cloud` names. What it
//! creates is removed on every exit path (a volume still attached is
//! detached first).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::AuthArgs;
use crate::backend::cloud;
use crate::backend::{
    delete_server_within, remove_volume, run_id, Compute, ImageQuery, NetworkChoice, ServerPhase,
    ServerSpec, VolumePhase, VolumeSpec, VolumeState, Volumes,
};
use crate::checks::vm_lifecycle::{
    self, CREATED_KEY, HOST_KEY, MIN_DISK_GB, NAME_PREFIX, OWNER_KEY, RUN_KEY, UNTIL_KEY,
};
use crate::clock::now_unix;
use crate::model::{Cleanup, Perf, ResourceKind};
use crate::poll::{wait_for, Poll, Wait};
use crate::probe::Probe;
use crate::record::ResourceId;
use crate::units::parse_duration;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-STORAGE";
    QUOTA = "BLK-01", "room for one more volume";
    CREATE = "BLK-02", "create volume";
    AVAILABLE = "BLK-03", "volume becomes available";
    SERVER = "BLK-04", "server to attach to";
    ATTACH = "BLK-05", "attach volume";
    IN_USE = "BLK-06", "attachment seen from the server";
    DETACH = "BLK-07", "detach volume";
    DELETE = "BLK-08", "delete volume";
    SERVER_DELETE = "BLK-09", "delete own server";
}

/// Largest volume the probe creates: it is a check, not a load test.
pub const MAX_SIZE_GB: u64 = 100;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Volume size in GiB
    #[arg(long = "size", value_name = "GIB", default_value = "1", value_parser = clap::value_parser!(u64).range(1..=MAX_SIZE_GB))]
    pub size: u64,
    /// Volume type (Cinder volume type, EBS VolumeType); default: the cloud's
    #[arg(long = "volume-type", value_name = "TYPE")]
    pub volume_type: Option<String>,
    /// Attach to this server instead of starting one (it is left running)
    #[arg(long = "server-id", value_name = "ID")]
    pub server_id: Option<String>,
    /// Image id or name for the probe's own server (needed without --server-id)
    #[arg(long = "image", value_name = "ID")]
    pub image: Option<String>,
    /// Registry reference of the image (eu.egi.cloud.image_ref in APPLIANCE_ATTRIBUTES)
    #[arg(long = "registry-image", value_name = "REF")]
    pub registry_image: Option<String>,
    /// AppDB id of the image (Glance property ad:appid)
    #[arg(long = "appdb-image", value_name = "ID")]
    pub appdb_image: Option<String>,
    /// Flavor name or id of the own server; default: as check_vm_lifecycle
    #[arg(long = "flavor", value_name = "NAME")]
    pub flavor: Option<String>,
    /// Longest wait for each volume transition (available, in-use, detached, gone)
    #[arg(long = "volume-timeout", value_name = "DURATION", default_value = "120", value_parser = parse_duration)]
    pub volume_timeout: Duration,
    /// Longest wait for the own server to become ACTIVE
    #[arg(long = "vm-timeout", value_name = "DURATION", default_value = "300", value_parser = parse_duration)]
    pub vm_timeout: Duration,
    /// Monitoring host name put in the metadata; default: this machine's name
    #[arg(long = "argo-host-name", value_name = "HOST")]
    pub argo_host_name: Option<String>,
    /// Fixed status poll interval (default: adaptive, 100 ms growing to 2 s)
    #[arg(long = "poll-interval", value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: Option<Duration>,
}

/// Where the volume gets attached.
#[derive(Clone, Debug)]
pub enum Target {
    /// A server someone else owns: attached to, never deleted.
    Given(String),
    /// The probe's own server, booted from this image.
    Own {
        image: ImageQuery,
        flavor: Option<String>,
    },
}

/// What one run does, backend-independent.
#[derive(Clone, Debug)]
pub struct Plan {
    pub size_gb: u64,
    pub volume_type: Option<String>,
    pub target: Target,
    pub volume_timeout: Duration,
    pub vm_timeout: Duration,
    pub poll_interval: Option<Duration>,
    pub host: String,
    pub run_id: String,
    /// Unix time by which this run is over, cleanup included.
    pub ends_by: f64,
}

impl Plan {
    pub fn from_args(args: &Args) -> Result<Plan, Fail> {
        let image = if let Some(i) = &args.image {
            Some(ImageQuery::IdOrName(i.clone()))
        } else if let Some(r) = &args.registry_image {
            Some(ImageQuery::Registry(r.clone()))
        } else {
            args.appdb_image.clone().map(ImageQuery::AppDb)
        };
        let target = match (&args.server_id, image) {
            (Some(id), _) => Target::Given(id.clone()),
            (None, Some(image)) => Target::Own {
                image,
                flavor: args.flavor.clone(),
            },
            (None, None) => {
                return Err(Fail::unknown(
                    "--server-id, or an image for the probe's own server \
                     (--image, --registry-image or --appdb-image), is required",
                ))
            }
        };
        let host = args
            .argo_host_name
            .clone()
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "unknown-host".into());
        Ok(Plan {
            size_gb: args.size,
            volume_type: args.volume_type.clone(),
            target,
            volume_timeout: args.volume_timeout,
            vm_timeout: args.vm_timeout,
            poll_interval: args.poll_interval,
            host,
            run_id: run_id(),
            ends_by: now_unix() + 2.0 * BlockStorage::DEFAULT_TIMEOUT.as_secs_f64(),
        })
    }

    fn tags(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(HOST_KEY.to_string(), self.host.clone());
        m.insert(RUN_KEY.to_string(), self.run_id.clone());
        m.insert(
            CREATED_KEY.to_string(),
            format!("{}", now_unix().floor() as u64),
        );
        m.insert(
            UNTIL_KEY.to_string(),
            format!("{}", self.ends_by.ceil() as u64),
        );
        if let Some(owner) = vm_lifecycle::run_owner(std::process::id()) {
            m.insert(OWNER_KEY.to_string(), owner);
        }
        m
    }
}

pub struct BlockStorage;

impl Probe for BlockStorage {
    const BIN: &'static str = "check_block_storage";
    const LABEL: &'static str = "BLOCK_STORAGE";
    const ABOUT: &'static str =
        "Create a volume, attach it to a server, see it in use, detach and delete it";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        let mut plan = Plan::from_args(&args)?;
        plan.ends_by = now_unix() + 2.0 * ctx.deadline().remaining().as_secs_f64();
        let connected = cloud::connect(&ctx, &args.auth).await?;
        crate::with_backend!(connected, mut backend => {
            if matches!(plan.target, Target::Own { .. }) {
                // The compute API version decides how a server is asked for.
                let v = ctx.ahead(SERVER, backend.api_version()).await?;
                ctx.detail(format!("compute: {v}"));
            }
            volume_cycle(&ctx, &backend, &plan).await
        })
    }
}

/// The probe logic, for any cloud with volumes and servers.
pub async fn volume_cycle<B: Volumes + Compute>(
    ctx: &Ctx,
    cloud: &B,
    plan: &Plan,
) -> Result<String, Fail> {
    ctx.detail(format!(
        "monitoring host {:?}, run {}, {}",
        plan.host,
        plan.run_id,
        cloud.describe()
    ));
    let t = Instant::now();
    ctx.step(QUOTA, quota(cloud, plan)).await?;
    ctx.perf(Perf::seconds("quota", t.elapsed()));

    let name = format!("{NAME_PREFIX}vol-{}", plan.run_id);
    let spec = VolumeSpec {
        name: name.clone(),
        size_gb: plan.size_gb,
        volume_type: plan.volume_type.clone(),
        metadata: plan.tags(),
    };
    let t_create = Instant::now();
    let (vid, v_handle) = ctx
        .step(CREATE, async {
            // Until an id comes back, cleanup finds the volume by the run's tag.
            let in_flight = track_volume_run(ctx, cloud, &plan.run_id);
            let id = cloud.create_volume(&spec).await?;
            let handle = track_volume(ctx, cloud, &id, &name);
            ctx.forget(in_flight);
            let ty = plan.volume_type.as_deref().unwrap_or("the default type");
            Ok(Done::ok(
                (id.clone(), handle),
                format!("{id} ({name}, {} GiB, {ty}) accepted", plan.size_gb),
            ))
        })
        .await?;
    ctx.perf(Perf::seconds("create", t_create.elapsed()));

    let available = ctx
        .step(AVAILABLE, async {
            let (v, polls) = wait_volume(ctx, cloud, plan, &vid, "available", |v| {
                Ok(v.phase == VolumePhase::Available)
            })
            .await?;
            let secs = t_create.elapsed().as_secs_f64();
            let size = v.size_gb.map(|s| format!(", {s} GiB")).unwrap_or_default();
            Ok(Done::with(
                ctx.threshold_status(secs),
                secs,
                format!("available after {secs:.2}s{size}, {polls} status polls"),
            ))
        })
        .await?;
    ctx.perf(
        Perf::seconds("available", t_create.elapsed()).thresholds(ctx.warning(), ctx.critical()),
    );

    let t = Instant::now();
    let (server, s_handle) = ctx.step(SERVER, server(ctx, cloud, plan)).await?;
    ctx.perf(Perf::seconds("server", t.elapsed()));

    let t = Instant::now();
    ctx.step(ATTACH, async {
        cloud.attach_volume(&server, &vid).await?;
        // Seen attaching, then available again: the cloud rolled the attach back.
        let began = std::sync::atomic::AtomicBool::new(false);
        let (_, polls) = wait_volume(ctx, cloud, plan, &vid, "in-use on the server", |v| {
            use std::sync::atomic::Ordering::Relaxed;
            match v.phase {
                VolumePhase::InUse if v.attached_to.contains(&server) => Ok(true),
                VolumePhase::Attaching | VolumePhase::InUse => {
                    began.store(true, Relaxed);
                    Ok(false)
                }
                VolumePhase::Available if began.load(Relaxed) => Err(Fail::critical(format!(
                    "attach of volume {vid} to {server} failed: the volume went from attaching back to available"
                ))),
                _ => Ok(false),
            }
        })
        .await?;
        Ok(Done::ok(
            (),
            format!(
                "in-use, attached to {server} after {:.2}s, {polls} status polls",
                t.elapsed().as_secs_f64()
            ),
        ))
    })
    .await?;
    ctx.perf(Perf::seconds("attach", t.elapsed()));

    ctx.step(IN_USE, async {
        match cloud.server_volumes(&server).await? {
            Some(listed) if listed.contains(&vid) => Ok(Done::ok(
                (),
                format!("server {server} lists volume {vid} among {} attached", listed.len()),
            )),
            Some(listed) => Err(Fail::critical(format!(
                "volume {vid} says it is attached to {server}, but the server lists {} volume(s) without it",
                listed.len()
            ))),
            None => Ok(Done::ok(
                (),
                format!("attached to {server} as the volume reports; this cloud gives no server-side list"),
            )),
        }
    })
    .await?;

    let t = Instant::now();
    ctx.step(DETACH, async {
        cloud.detach_volume(&server, &vid).await?;
        let (_, polls) = wait_volume(ctx, cloud, plan, &vid, "available again", |v| {
            Ok(v.phase == VolumePhase::Available && !v.attached_to.contains(&server))
        })
        .await?;
        Ok(Done::ok(
            (),
            format!(
                "available again after {:.2}s, {polls} status polls",
                t.elapsed().as_secs_f64()
            ),
        ))
    })
    .await?;
    ctx.perf(Perf::seconds("detach", t.elapsed()));

    let t = Instant::now();
    ctx.step(DELETE, async {
        cloud.delete_volume(&vid).await?;
        let polls = wait_gone(
            ctx,
            cloud,
            &vid,
            "volume",
            plan.volume_timeout,
            plan.poll_interval,
        )
        .await?;
        Ok(Done::ok(
            (),
            format!(
                "gone (404) after {:.2}s, {polls} status polls",
                t.elapsed().as_secs_f64()
            ),
        ))
    })
    .await?;
    ctx.settle(v_handle, Cleanup::Deleted);
    let delete_time = t.elapsed();
    ctx.perf(Perf::seconds("delete", delete_time));

    if let Some(h) = s_handle {
        let t = Instant::now();
        ctx.step(SERVER_DELETE, async {
            let wait = Wait::bounded(ctx.deadline(), plan.vm_timeout, plan.poll_interval);
            delete_server_within(cloud, &server, wait).await?;
            Ok(Done::ok(
                (),
                format!("{server} gone after {:.2}s", t.elapsed().as_secs_f64()),
            ))
        })
        .await?;
        ctx.settle(h, Cleanup::Deleted);
        ctx.perf(Perf::seconds("server_delete", t.elapsed()));
    }
    Ok(format!(
        "volume {vid} ({} GiB) available in {:.2}s, attached to {server}, detached and deleted ({:.2}s)",
        plan.size_gb,
        available,
        delete_time.as_secs_f64()
    ))
}

/// Room for one more volume of the plan's size, before anything is created.
async fn quota<V: Volumes>(cloud: &V, plan: &Plan) -> Result<Done<()>, Fail> {
    let Some(l) = cloud.volume_limits().await? else {
        return Ok(Done::ok((), "no volume limits API on this cloud: skipped"));
    };
    let show = |used: u64, max: Option<u64>| match max {
        Some(m) => format!("{used} of {m}"),
        None => format!("{used} of unlimited"),
    };
    let volumes = show(l.used_volumes, l.max_volumes);
    let gb = show(l.used_gb, l.max_gb);
    let mut full = Vec::new();
    if l.max_volumes.is_some_and(|m| l.used_volumes + 1 > m) {
        full.push(format!("volumes {volumes} used"));
    }
    if l.max_gb.is_some_and(|m| l.used_gb + plan.size_gb > m) {
        full.push(format!(
            "gigabytes {gb} used, {} GiB more asked",
            plan.size_gb
        ));
    }
    if !full.is_empty() {
        return Err(Fail::critical(format!(
            "quota exhausted: no room for one more volume of {} GiB: {}",
            plan.size_gb,
            full.join("; ")
        )));
    }
    Ok(Done::ok(
        (),
        format!("volumes {volumes} used, gigabytes {gb} used"),
    ))
}

/// The server to attach to: the given one, or a new one of this run's, ACTIVE.
async fn server<C: Compute>(
    ctx: &Ctx,
    cloud: &C,
    plan: &Plan,
) -> Result<Done<(String, Option<ResourceId>)>, Fail> {
    let (image, flavor) = match &plan.target {
        Target::Given(id) => {
            return match cloud.server(id).await? {
                Some(s) if s.phase == ServerPhase::Active => Ok(Done::ok(
                    (id.clone(), None),
                    format!("{id} ({}) given by --server-id, ACTIVE", s.name),
                )),
                Some(s) => Err(Fail::critical(format!(
                    "server {id} given by --server-id is {}, not ACTIVE",
                    s.status_text
                ))),
                None => Err(Fail::critical(format!(
                    "server {id} given by --server-id not found"
                ))),
            }
        }
        Target::Own { image, flavor } => (image, flavor),
    };
    let t = Instant::now();
    let image = cloud.find_image(image).await?;
    let flavor = cloud.pick_flavor(flavor.as_deref(), MIN_DISK_GB).await?;
    let network = cloud.pick_network().await?;
    let name = format!("{NAME_PREFIX}{}", plan.run_id);
    let spec = ServerSpec {
        name: name.clone(),
        image_id: image.id.clone(),
        flavor_id: flavor.id.clone(),
        network: network.clone(),
        metadata: plan.tags(),
    };
    let in_flight = vm_lifecycle::track_run(ctx, cloud, &plan.run_id);
    let id = cloud.create_server(&spec).await?;
    let handle = vm_lifecycle::track_server(ctx, cloud, &id, &name);
    ctx.forget(in_flight);
    let wait = Wait::bounded(ctx.deadline(), plan.vm_timeout, plan.poll_interval).sleep_first();
    let sid = id.as_str();
    let waited = wait_for(wait, || {
        let fut = cloud.server(sid);
        let id = sid;
        async move {
            match fut.await? {
                None => Err(Fail::critical(format!(
                    "server {id} disappeared while booting"
                ))),
                Some(s) => match s.phase {
                    ServerPhase::Active => Ok(Poll::Ready(())),
                    ServerPhase::Error { reason } => Err(Fail::critical(format!(
                        "server {id} went to ERROR: {}",
                        reason.as_deref().unwrap_or("no fault message given")
                    ))),
                    _ => Ok(Poll::Pending(s.status_text)),
                },
            }
        }
    })
    .await?;
    waited.or_fail(|l| {
        format!(
            "server {id} not ACTIVE after {:.0}s; last status {}",
            l.limit.as_secs_f64(),
            l.last
        )
    })?;
    let net = match network {
        NetworkChoice::Network { name, .. } => format!(", network {name}"),
        _ => String::new(),
    };
    Ok(Done::ok(
        (id.clone(), Some(handle)),
        format!(
            "own server {id} ({name}, image {}, flavor {}{net}) ACTIVE after {:.2}s",
            image.name,
            flavor.name,
            t.elapsed().as_secs_f64()
        ),
    ))
}

/// Poll the volume until `done` says so (or fails); `error` is CRITICAL
/// with the cloud's reason.
async fn wait_volume<V: Volumes>(
    ctx: &Ctx,
    cloud: &V,
    plan: &Plan,
    id: &str,
    what: &str,
    done: impl Fn(&VolumeState) -> Result<bool, Fail>,
) -> Result<(VolumeState, u64), Fail> {
    let wait = Wait::bounded(ctx.deadline(), plan.volume_timeout, plan.poll_interval).sleep_first();
    let done = &done;
    let waited = wait_for(wait, || {
        let fut = cloud.volume(id);
        async move {
            let Some(v) = fut.await? else {
                return Err(Fail::critical(format!(
                    "volume {id} disappeared while waiting for it to be {what}"
                )));
            };
            if done(&v)? {
                return Ok(Poll::Ready(v));
            }
            match &v.phase {
                VolumePhase::Error { reason } => Err(Fail::critical(format!(
                    "volume {id} went to {}: {}",
                    v.status_text,
                    reason.as_deref().unwrap_or("the cloud gives no reason")
                ))),
                _ => Ok(Poll::Pending(status_line(&v))),
            }
        }
    })
    .await?;
    waited.or_fail(|l| {
        format!(
            "volume {id} not {what} after {:.0}s ({} polls, --volume-timeout {}s); last status {}",
            l.limit.as_secs_f64(),
            l.polls,
            plan.volume_timeout.as_secs(),
            l.last
        )
    })
}

fn status_line(v: &VolumeState) -> String {
    if v.attached_to.is_empty() {
        v.status_text.clone()
    } else {
        format!(
            "{} (attached to {})",
            v.status_text,
            v.attached_to.join(", ")
        )
    }
}

/// Wait until a deleted volume (`what`: how messages name it) is gone;
/// the number of polls. A volume in error while deleted is CRITICAL.
pub(crate) async fn wait_gone<V: Volumes>(
    ctx: &Ctx,
    cloud: &V,
    id: &str,
    what: &str,
    timeout: Duration,
    poll: Option<Duration>,
) -> Result<u64, Fail> {
    let wait = Wait::bounded(ctx.deadline(), timeout, poll).sleep_first();
    let waited = wait_for(wait, || {
        let fut = cloud.volume(id);
        async move {
            Ok(match fut.await? {
                None => Poll::Ready(()),
                Some(v) => match &v.phase {
                    VolumePhase::Error { reason } => {
                        return Err(Fail::critical(format!(
                            "{what} {id} went to {} while being deleted: {}",
                            v.status_text,
                            reason.as_deref().unwrap_or("the cloud gives no reason")
                        )))
                    }
                    _ => Poll::Pending(v.status_text),
                },
            })
        }
    })
    .await?;
    waited
        .or_fail(|l| {
            format!(
                "{what} {id} still listed {:.0}s after its delete; last status {}",
                l.limit.as_secs_f64(),
                l.last
            )
        })
        .map(|(_, polls)| polls)
}

/// Register the volume for removal on every exit path (detached first).
pub(crate) fn track_volume<V: Volumes>(ctx: &Ctx, cloud: &V, id: &str, name: &str) -> ResourceId {
    ctx.track_retried(
        ResourceKind::Volume,
        id,
        Some(name),
        cloud,
        |c, id| async move { remove_volume(&c, &id).await },
    )
}

/// Cleanup for a create request whose answer has not come yet: remove
/// whatever volume carries this run's id.
pub(crate) fn track_volume_run<V: Volumes>(ctx: &Ctx, cloud: &V, run: &str) -> ResourceId {
    ctx.track(
        ResourceKind::Volume,
        &format!("run {run}"),
        None,
        cloud,
        |c, label| async move {
            let run = label.trim_start_matches("run ");
            for v in c.volumes_tagged(RUN_KEY).await? {
                if v.metadata.get(RUN_KEY).map(String::as_str) == Some(run) {
                    remove_volume(&c, &v.id)
                        .await
                        .map_err(|f| f.context(format!("volume {}", v.id)))?;
                }
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn a_server_or_an_image_is_needed() {
        let a = Cli::parse_from(["x", "--size", "2"]).a;
        assert!(Plan::from_args(&a).is_err());
        let a = Cli::parse_from(["x", "--server-id", "s1", "--image", "i"]).a;
        assert!(matches!(Plan::from_args(&a).unwrap().target, Target::Given(ref s) if s == "s1"));
        let a = Cli::parse_from(["x", "--image", "cirros"]).a;
        let p = Plan::from_args(&a).unwrap();
        assert!(matches!(p.target, Target::Own { .. }));
        assert_eq!(p.size_gb, 1);
        assert!(p.tags().contains_key(RUN_KEY));
        assert!(Cli::try_parse_from(["x", "--size", "0"]).is_err());
    }
}
