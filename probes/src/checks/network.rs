//! check_network: network management as a user sees it (OpenStack only).
//! Room in the project's network quota first, then the topology (own
//! network with a subnet, a router with its gateway on an external
//! network), then a security group with ingress rules, a short-lived server
//! in it, and a floating IP allocated, associated with the server's port,
//! seen there, disassociated and released. Deletes floating IP, server and
//! group, in that order, on every exit path.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::AuthArgs;
use crate::backend::openstack::{self, OpenStack};
use crate::backend::{
    delete_server_and_wait, delete_server_within, run_id, Compute, ImageQuery, NetworkChoice,
    ServerPhase, ServerSpec,
};
use crate::checks::vm_lifecycle::{CREATED_KEY, MIN_DISK_GB, RUN_KEY};
use crate::clients::neutron::{Network, Neutron, Port, Router};
use crate::clock::now_unix;
use crate::model::{Cleanup, Perf, ResourceKind};
use crate::poll::{gone, wait_for, Poll, Wait};
use crate::probe::Probe;
use crate::units::parse_duration;
use crate::{Ctx, Done, Fail};

crate::check_ids! { "EOSC-IAAS-API";
    QUOTA = "NET-01", "network quota has room";
    PROJECT_NETWORK = "NET-02", "project network with a subnet";
    ROUTER = "NET-03", "router with an external gateway";
    EXTERNAL = "NET-04", "external network";
    GROUP = "NET-05", "security group with ingress rules";
    SERVER = "NET-06", "server in the group becomes ACTIVE";
    PORT = "NET-07", "server's port in the group";
    ALLOCATE = "NET-08", "allocate floating IP";
    ASSOCIATE = "NET-09", "floating IP seen on the port";
    DISASSOCIATE = "NET-10", "disassociate floating IP";
    RELEASE = "NET-11", "release floating IP";
    DELETE_SERVER = "NET-12", "delete server";
    DELETE_GROUP = "NET-13", "delete security group";
}

/// The federation's monitoring image (the VM probe's default in the harness).
pub const MONITORING_IMAGE: &str = "registry.egi.eu/egi_vm_images/monitoring";
/// Longest wait for a deletion to show, or a group to be free of ports.
const GONE_WAIT: Duration = Duration::from_secs(60);
/// What one run needs: (Neutron quota resource, how many).
/// A new group brings Neutron's two default egress rules with our two.
pub const NEEDS: [(&str, i64); 4] = [
    ("floatingip", 1),
    ("port", 1),
    ("security_group", 1),
    ("security_group_rule", 4),
];

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Image id or name to boot
    #[arg(long = "image", value_name = "ID")]
    pub image: Option<String>,
    /// Registry reference of the image; default: the federation's monitoring image
    #[arg(long = "registry-image", value_name = "REF", conflicts_with_all = ["image", "appdb_image"])]
    pub registry_image: Option<String>,
    /// AppDB id of the image (Glance property ad:appid)
    #[arg(long = "appdb-image", value_name = "ID", conflicts_with = "image")]
    pub appdb_image: Option<String>,
    /// Flavor name or id; default: fewest vCPUs, then least RAM, with >= 8 GB disk
    #[arg(long = "flavor", value_name = "NAME")]
    pub flavor: Option<String>,
    /// External network (id or name) to allocate the floating IP on; default: the router's gateway network
    #[arg(long = "external-network", value_name = "NETWORK")]
    pub external_network: Option<String>,
    /// Longest wait for the server to become ACTIVE
    #[arg(long = "vm-timeout", value_name = "DURATION", default_value = "300", value_parser = parse_duration)]
    pub vm_timeout: Duration,
}

/// What one run does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub image: ImageQuery,
    pub flavor: Option<String>,
    pub external: Option<String>,
    pub vm_timeout: Duration,
    pub run_id: String,
}

impl Plan {
    pub fn from_args(args: &Args) -> Plan {
        let image = match (&args.image, &args.registry_image, &args.appdb_image) {
            (Some(i), _, _) => ImageQuery::IdOrName(i.clone()),
            (_, _, Some(a)) => ImageQuery::AppDb(a.clone()),
            (_, Some(r), _) => ImageQuery::Registry(r.clone()),
            _ => ImageQuery::Registry(MONITORING_IMAGE.into()),
        };
        Plan {
            image,
            flavor: args.flavor.clone(),
            external: args.external_network.clone(),
            vm_timeout: args.vm_timeout,
            run_id: run_id(),
        }
    }
    /// Name of the group and server, description of the floating IP.
    pub fn name(&self) -> String {
        format!("fedprobe-net-{}", self.run_id)
    }
}

pub struct NetworkProbe;

impl Probe for NetworkProbe {
    const BIN: &'static str = "check_network";
    const LABEL: &'static str = "NETWORK";
    const ABOUT: &'static str =
        "Network quota, topology, security group, floating IP on a short-lived server (OpenStack)";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    fn checks() -> Vec<crate::model::CheckId> {
        crate::auth::checks()
            .into_iter()
            .chain(ALL.iter().copied())
            .collect()
    }

    async fn run(args: Args, ctx: Ctx) -> Result<String, Fail> {
        args.auth.require_openstack(Self::BIN)?;
        let plan = Plan::from_args(&args);
        let mut os = openstack::login(&ctx, &args.auth).await?;
        // The compute API version decides how the server is asked for: a
        // bad answer there is the server's stage (as in check_block_storage).
        ctx.ahead(SERVER, os.negotiate_compute()).await?;
        network_cycle(&ctx, &os, &plan).await
    }
}

/// The topology the probe found.
struct Topology {
    network: Network,
    external: Network,
}

/// The probe logic on an OpenStack session.
pub async fn network_cycle(ctx: &Ctx, os: &OpenStack, plan: &Plan) -> Result<String, Fail> {
    let nt = os.neutron()?;
    let name = plan.name();
    ctx.detail(format!(
        "run {}, {}",
        plan.run_id,
        crate::backend::Backend::describe(os)
    ));

    let t = Instant::now();
    ctx.step(QUOTA, quota(&nt, os.project_id())).await?;
    ctx.perf(Perf::seconds("quota", t.elapsed()));

    let t = Instant::now();
    let topo = topology(ctx, &nt, os.project_id(), plan).await?;
    ctx.perf(Perf::seconds("topology", t.elapsed()));

    // The group: tracked by name before the POST (an answer cut short may
    // still have made it), by id once known. Its deletion waits out 409s
    // until the server's port is gone: group after server.
    let placeholder = ctx.track(
        ResourceKind::SecurityGroup,
        &name,
        None,
        os,
        |o, n| async move {
            let nt = o.neutron()?;
            for g in nt.security_groups_named(&n).await? {
                delete_group(&nt, &g.id, GONE_WAIT).await?;
            }
            Ok(())
        },
    );
    let t = Instant::now();
    let (group_id, group_handle) = ctx
        .step(GROUP, async {
            let g = match nt
                .create_security_group(&name, &format!("fedprobe run {}", plan.run_id))
                .await
            {
                Ok(g) => g,
                Err(f) => {
                    if nt
                        .security_groups_named(&name)
                        .await
                        .is_ok_and(|l| l.is_empty())
                    {
                        ctx.forget(placeholder);
                    }
                    return Err(f);
                }
            };
            let handle = ctx.track(
                ResourceKind::SecurityGroup,
                &g.id,
                Some(&name),
                os,
                |o, id| async move { delete_group(&o.neutron()?, &id, GONE_WAIT).await },
            );
            ctx.forget(placeholder);
            nt.add_ingress_rule(&g.id, "tcp", Some(22)).await?;
            nt.add_ingress_rule(&g.id, "icmp", None).await?;
            let back = nt.security_group(&g.id).await?.ok_or_else(|| {
                Fail::critical(format!(
                    "security group {} not found (404) right after it was made",
                    g.id
                ))
            })?;
            let ingress = |proto: &str, port: Option<u32>| {
                back.security_group_rules.iter().any(|r| {
                    r.direction == "ingress"
                        && r.protocol.as_deref() == Some(proto)
                        && (port.is_none()
                            || (r.port_range_min == port && r.port_range_max == port))
                })
            };
            let mut missing = Vec::new();
            if !ingress("tcp", Some(22)) {
                missing.push("TCP 22");
            }
            if !ingress("icmp", None) {
                missing.push("ICMP");
            }
            if !missing.is_empty() {
                return Err(Fail::critical(format!(
                    "security group {} read back without its ingress rule(s) {} ({} rules listed)",
                    g.id,
                    missing.join(", "),
                    back.security_group_rules.len()
                )));
            }
            let n = back.security_group_rules.len();
            Ok(Done::ok(
                (g.id.clone(), handle),
                format!(
                    "{name} ({}): ingress TCP 22 and ICMP read back, {n} rules",
                    g.id
                ),
            ))
        })
        .await?;
    ctx.perf(Perf::seconds("group", t.elapsed()));

    let t = Instant::now();
    let (server_id, server_handle) = ctx
        .step(SERVER, server(ctx, os, plan, &topo.network, &group_id))
        .await?;
    ctx.perf(Perf::seconds("server", t.elapsed()));

    let port = ctx
        .step(PORT, async {
            let ports = nt.ports(&[("device_id", server_id.as_str())]).await?;
            let Some(p) = ports.into_iter().find(|p| p.network_id == topo.network.id) else {
                return Err(Fail::critical(format!(
                    "server {server_id} is ACTIVE but has no port on network {}",
                    topo.network.id
                )));
            };
            if !p.security_groups.contains(&group_id) {
                return Err(Fail::critical(format!(
                    "port {} of server {server_id} is not in the security group {group_id} it was booted in (groups: {})",
                    p.id,
                    p.security_groups.join(", ")
                )));
            }
            let ip = fixed_ip(&p).unwrap_or_default();
            let msg = format!("port {} ({ip}), in {name}", p.id);
            Ok(Done::ok(p, msg))
        })
        .await?;
    let fixed = fixed_ip(&port).unwrap_or_default();

    // The floating IP: tracked by description until its id is known.
    let placeholder = ctx.track(
        ResourceKind::FloatingIp,
        &format!("run {}", plan.run_id),
        Some(&name),
        os,
        {
            let n = name.clone();
            |o, _| async move {
                let nt = o.neutron()?;
                for f in nt.floating_ips_described(&n).await? {
                    nt.delete_floating_ip(&f.id).await?;
                }
                Ok(())
            }
        },
    );
    let t = Instant::now();
    let (fip, fip_handle) = ctx
        .step(ALLOCATE, async {
            let f = match nt.create_floating_ip(&topo.external.id, &name).await {
                Ok(f) => f,
                Err(f) => {
                    // Refused or lost: if none carries the run's name, none
                    // is owed (a failed listing keeps the placeholder).
                    if nt
                        .floating_ips_described(&name)
                        .await
                        .is_ok_and(|l| l.is_empty())
                    {
                        ctx.forget(placeholder);
                    }
                    return Err(f.context(format!(
                        "no floating IP allocated on external network {} ({})",
                        topo.external.name, topo.external.id
                    )));
                }
            };
            let handle = ctx.track(
                ResourceKind::FloatingIp,
                &f.id,
                Some(&f.floating_ip_address),
                os,
                |o, id| async move { o.neutron()?.delete_floating_ip(&id).await.map(drop) },
            );
            ctx.forget(placeholder);
            let msg = format!(
                "{} ({}) on {}",
                f.floating_ip_address, f.id, topo.external.name
            );
            Ok(Done::ok((f, handle), msg))
        })
        .await?;
    ctx.perf(Perf::seconds("allocate", t.elapsed()));

    let t = Instant::now();
    ctx.step(ASSOCIATE, async {
        nt.set_floating_ip_port(&fip.id, Some(&port.id)).await?;
        let back = nt.floating_ip(&fip.id).await?.ok_or_else(|| {
            Fail::critical(format!("floating IP {} not found (404) after it was associated", fip.id))
        })?;
        if back.port_id.as_deref() != Some(port.id.as_str())
            || back.fixed_ip_address.as_deref() != Some(fixed.as_str())
        {
            return Err(Fail::critical(format!(
                "floating IP {} read back with port {:?} and fixed address {:?}, associated with port {} ({fixed})",
                fip.floating_ip_address, back.port_id, back.fixed_ip_address, port.id
            )));
        }
        let on_port = nt.floating_ips_on_port(&port.id).await?;
        if !on_port.iter().any(|f| f.id == fip.id) {
            return Err(Fail::critical(format!(
                "floating IP {} is not listed among the floating IPs of port {}",
                fip.floating_ip_address, port.id
            )));
        }
        Ok(Done::ok(
            (),
            format!("{} -> port {} ({fixed})", fip.floating_ip_address, port.id),
        ))
    })
    .await?;
    ctx.perf(Perf::seconds("associate", t.elapsed()));

    let t = Instant::now();
    ctx.step(DISASSOCIATE, async {
        nt.set_floating_ip_port(&fip.id, None).await?;
        let back = nt.floating_ip(&fip.id).await?;
        match back.and_then(|b| b.port_id) {
            None => Ok(Done::ok(
                (),
                format!("{} no longer on a port", fip.floating_ip_address),
            )),
            Some(p) => Err(Fail::critical(format!(
                "floating IP {} still on port {p} after the disassociation was accepted",
                fip.floating_ip_address
            ))),
        }
    })
    .await?;
    ctx.perf(Perf::seconds("disassociate", t.elapsed()));

    let t = Instant::now();
    ctx.step(RELEASE, async {
        nt.delete_floating_ip(&fip.id).await?;
        let polls = gone(ctx.deadline(), GONE_WAIT, || async {
            Ok(nt.floating_ip(&fip.id).await?.is_some())
        })
        .await?;
        Ok(Done::ok(
            (),
            format!(
                "{} released, gone (404) after {polls} checks",
                fip.floating_ip_address
            ),
        ))
    })
    .await?;
    ctx.settle(fip_handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("release", t.elapsed()));

    let t = Instant::now();
    ctx.step(DELETE_SERVER, async {
        let wait = Wait::bounded(ctx.deadline(), plan.vm_timeout, None);
        let n = delete_server_within(os, &server_id, wait).await?;
        Ok(Done::ok((), format!("{server_id} gone after {n} checks")))
    })
    .await?;
    ctx.settle(server_handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete_server", t.elapsed()));

    let t = Instant::now();
    ctx.step(DELETE_GROUP, async {
        delete_group(&nt, &group_id, GONE_WAIT).await?;
        Ok(Done::ok((), format!("{name} ({group_id}) gone (404)")))
    })
    .await?;
    ctx.settle(group_handle, Cleanup::Deleted);
    ctx.perf(Perf::seconds("delete_group", t.elapsed()));

    Ok(format!(
        "floating IP {} on {} associated with server {server_id} on {} in group {name}, released; all deleted",
        fip.floating_ip_address, topo.external.name, topo.network.name
    ))
}

fn fixed_ip(p: &Port) -> Option<String> {
    p.fixed_ips.first().map(|f| f.ip_address.clone())
}

/// NET-01: room for what one run creates, before anything is created.
async fn quota(nt: &Neutron, project: &str) -> Result<Done<()>, Fail> {
    let Some(q) = nt.quota_details(project).await? else {
        return Ok(Done::warn(
            (),
            "the site answers no network quota details (404): room not checked",
        ));
    };
    let mut short = Vec::new();
    let mut seen = Vec::new();
    for (res, n) in NEEDS {
        let Some(u) = q.get(res) else {
            seen.push(format!("{res}: not reported"));
            continue;
        };
        let limit = if u.limit < 0 {
            "unlimited".to_string()
        } else {
            u.limit.to_string()
        };
        let line = format!("{res} {} used + {} reserved of {limit}", u.used, u.reserved);
        if !u.room_for(n) {
            short.push(format!("{line}, {n} more needed"));
        }
        seen.push(line);
    }
    if !short.is_empty() {
        return Err(Fail::critical(format!(
            "network quota exhausted, nothing created: {}",
            short.join("; ")
        )));
    }
    Ok(Done::ok((), format!("room: {}", seen.join(", "))))
}

/// NET-02..04: the project's network, its router, the external network.
async fn topology(ctx: &Ctx, nt: &Neutron, project: &str, plan: &Plan) -> Result<Topology, Fail> {
    let (network, networks) = ctx
        .step(PROJECT_NETWORK, async {
            let networks = nt.networks().await?;
            let own: Vec<&Network> = networks
                .iter()
                .filter(|n| !n.external && n.owner() == Some(project))
                .collect();
            let Some(network) = own.iter().find(|n| !n.subnets.is_empty()).map(|n| (*n).clone())
            else {
                return Err(Fail::critical(if own.is_empty() {
                    format!(
                        "project {project} has no network of its own ({} networks visible, {} external)",
                        networks.len(),
                        networks.iter().filter(|n| n.external).count()
                    )
                } else {
                    format!(
                        "project network {} has no subnet",
                        own.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                    )
                }));
            };
            let cidrs: Vec<String> = nt
                .subnets(&network.id)
                .await?
                .into_iter()
                .map(|s| s.cidr)
                .collect();
            let msg = format!("{} ({}), subnet {}", network.name, network.id, cidrs.join(", "));
            Ok(Done::ok((network, networks), msg))
        })
        .await?;
    let router = ctx.step(ROUTER, router(nt, &network)).await?;
    let external = ctx
        .step(EXTERNAL, async {
            let want = plan
                .external
                .clone()
                .or_else(|| {
                    router
                        .external_gateway_info
                        .as_ref()
                        .map(|g| g.network_id.clone())
                })
                .unwrap_or_default();
            let Some(ext) = networks.iter().find(|n| n.id == want || n.name == want) else {
                return Err(Fail::critical(format!(
                    "external network {want} is not visible to the project ({} networks listed)",
                    networks.len()
                )));
            };
            if !ext.external {
                return Err(Fail::critical(format!(
                    "network {} ({}) is not external (router:external false)",
                    ext.name, ext.id
                )));
            }
            let msg = format!("{} ({}), router:external", ext.name, ext.id);
            Ok(Done::ok(ext.clone(), msg))
        })
        .await?;
    Ok(Topology { network, external })
}

/// NET-03: a router with its gateway set and an interface on `network`.
async fn router(nt: &Neutron, network: &Network) -> Result<Done<Router>, Fail> {
    let routers = nt.routers().await?;
    let gw: Vec<&Router> = routers
        .iter()
        .filter(|r| r.external_gateway_info.is_some())
        .collect();
    if gw.is_empty() {
        return Err(Fail::critical(format!(
            "no router with an external gateway in the project ({} routers listed)",
            routers.len()
        )));
    }
    let ports = nt.ports(&[("network_id", network.id.as_str())]).await?;
    let on_net = |r: &Router| {
        ports.iter().any(|p| {
            p.device_id == r.id
                && (p.device_owner.starts_with("network:router_interface")
                    || p.device_owner == "network:ha_router_replicated_interface")
        })
    };
    match gw.iter().find(|r| on_net(r)) {
        Some(r) => Ok(Done::ok(
            (*r).clone(),
            format!(
                "{} ({}): gateway set, interface on {}",
                r.name, r.id, network.name
            ),
        )),
        None => Err(Fail::critical(format!(
            "router(s) {} have an external gateway but no interface on network {} ({})",
            gw.iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            network.name,
            network.id
        ))),
    }
}

/// NET-06: image and flavor as the VM probe picks them, the server on the
/// project's network in the group, tracked at once, waited for.
async fn server(
    ctx: &Ctx,
    os: &OpenStack,
    plan: &Plan,
    network: &Network,
    group_id: &str,
) -> Result<Done<(String, crate::record::ResourceId)>, Fail> {
    let t0 = Instant::now();
    let image = os.find_image(&plan.image).await?;
    let flavor = os.pick_flavor(plan.flavor.as_deref(), MIN_DISK_GB).await?;
    let name = plan.name();
    let mut metadata = BTreeMap::new();
    metadata.insert(RUN_KEY.to_string(), plan.run_id.clone());
    metadata.insert(
        CREATED_KEY.to_string(),
        format!("{}", now_unix().floor() as u64),
    );
    let spec = ServerSpec {
        name: name.clone(),
        image_id: image.id.clone(),
        flavor_id: flavor.id.clone(),
        network: NetworkChoice::Network {
            id: network.id.clone(),
            name: network.name.clone(),
        },
        metadata,
    };
    let in_flight = crate::checks::vm_lifecycle::track_run(ctx, os, &plan.run_id);
    let id = os.create_server_in_groups(&spec, &[group_id]).await?;
    // The server's floating IPs go first: a release after the server (and
    // its port) is gone would still work, but keep the documented order.
    let handle = ctx.track(ResourceKind::Server, &id, Some(&name), os, {
        let desc = name.clone();
        |o, id| async move {
            if let Ok(nt) = o.neutron() {
                for f in nt.floating_ips_described(&desc).await.unwrap_or_default() {
                    let _ = nt.delete_floating_ip(&f.id).await;
                }
            }
            delete_server_and_wait(&o, &id).await.map(drop)
        }
    });
    ctx.forget(in_flight);
    let wait = Wait::bounded(ctx.deadline(), plan.vm_timeout, None).sleep_first();
    let waited = wait_for(wait, || async {
        let Some(s) = os.server(&id).await? else {
            return Err(Fail::critical(format!(
                "server {id} disappeared while waiting"
            )));
        };
        match s.phase {
            ServerPhase::Active => Ok(Poll::Ready(())),
            ServerPhase::Error { reason } => Err(Fail::critical(format!(
                "server {id} went to ERROR: {}",
                reason.as_deref().unwrap_or("no fault message given")
            ))),
            _ => Ok(Poll::Pending(s.status_text)),
        }
    })
    .await?;
    let (_, polls) = waited.or_fail(|l| {
        format!(
            "server {id} not ACTIVE after {:.0}s (last status {})",
            l.limit.as_secs_f64(),
            l.last
        )
    })?;
    Ok(Done::ok(
        (id.clone(), handle),
        format!(
            "{id} ({name}, image {}, flavor {}) ACTIVE after {:.2}s, {polls} polls",
            image.name,
            flavor.name,
            t0.elapsed().as_secs_f64()
        ),
    ))
}

/// Delete a security group and see it gone; 409 (a port still in it) is
/// waited out within `within`.
async fn delete_group(nt: &Neutron, id: &str, within: Duration) -> Result<(), Fail> {
    let end = Instant::now() + within;
    loop {
        match nt.delete_security_group(id).await {
            Ok(_) => break,
            Err(f) if f.http_status() == Some(409) && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(f) => return Err(f),
        }
    }
    while nt.security_group(id).await?.is_some() {
        if Instant::now() >= end {
            return Err(Fail::critical(format!(
                "security group {id} still there {:.0}s after its delete was accepted",
                within.as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Invocation;

    fn parse(line: &str) -> Result<Invocation<Args>, String> {
        let argv: Vec<String> = line.split(' ').map(String::from).collect();
        Invocation::<Args>::parse(NetworkProbe::BIN, &argv).map_err(|e| e.to_string())
    }

    #[test]
    fn image_defaults_to_the_monitoring_image() {
        let inv = parse("check_network --endpoint https://k/v3 --access-token /t").unwrap();
        let p = Plan::from_args(&inv.args);
        assert!(matches!(p.image, ImageQuery::Registry(ref r) if r == MONITORING_IMAGE));
        assert!(p.external.is_none());
        let inv = parse("check_network --endpoint https://k/v3 --access-token /t --image cirros --external-network pub").unwrap();
        let p = Plan::from_args(&inv.args);
        assert!(matches!(p.image, ImageQuery::IdOrName(ref r) if r == "cirros"));
        assert_eq!(p.external.as_deref(), Some("pub"));
        assert!(parse(
            "check_network --endpoint https://k/v3 --access-token /t --image a --registry-image b"
        )
        .is_err());
    }
}
