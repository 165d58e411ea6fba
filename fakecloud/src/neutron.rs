//! Neutron: the versions document, the project's topology (network,
//! subnet, router to the external network), network quotas, security
//! groups, the servers' ports and floating IPs.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::dates::iso;
use crate::faults::Fault;
use crate::fixtures::{new_id, stable_id};
use crate::http::{empty, not_found, reply, unauthorized, Req, Resp};
use crate::state::{Cloud, Site};

/// Floating IP addresses of the external network's pool.
const POOL: std::ops::RangeInclusive<u8> = 10..=49;

/// A site's Neutron objects.
#[derive(Default)]
pub struct Net {
    pub groups: BTreeMap<String, Group>,
    pub fips: BTreeMap<String, Fip>,
    /// Server id -> the security groups it was booted in (names or ids).
    pub server_groups: BTreeMap<String, Vec<String>>,
}

pub struct Group {
    pub name: String,
    pub description: String,
    pub rules: Vec<Value>,
}

pub struct Fip {
    pub address: String,
    pub description: String,
    pub port: Option<String>,
}

/// Nova's create: remember the server's groups for its port.
pub fn boot(site: &mut Site, server: &str, groups: &Value) {
    let names = groups
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| vec!["default".to_string()]);
    site.net.server_groups.insert(server.to_string(), names);
}

fn neutron_error(code: u16, kind: &str, message: &str) -> Resp {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(
        status,
        json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
    )
}

fn ids(site: &Site) -> (String, String, String, String, String) {
    let n = |x: &str| stable_id(&format!("{}-{x}", site.name));
    (
        n("private"),
        n("public"),
        stable_id("private-subnet"),
        n("router"),
        n("router-port"),
    )
}

/// The port of a server that exists and is not gone.
fn port_of(site: &Site, server: &str, now: Instant) -> Option<Value> {
    let s = site.servers.get(server).filter(|s| !s.gone(now))?;
    let (private, _, subnet, _, _) = ids(site);
    let groups: Vec<String> = site
        .net
        .server_groups
        .get(&s.id)
        .cloned()
        .unwrap_or_else(|| vec!["default".into()])
        .into_iter()
        .map(|g| {
            site.net
                .groups
                .iter()
                .find(|(id, x)| **id == g || x.name == g)
                .map(|(id, _)| id.clone())
                .unwrap_or_else(|| stable_id(&format!("{}-default-sg", site.name)))
        })
        .collect();
    Some(
        json!({"id": stable_id(&format!("port-{}", s.id)), "network_id": private,
        "device_id": s.id, "device_owner": "compute:nova", "status": "ACTIVE",
        "fixed_ips": [{"subnet_id": subnet, "ip_address": "10.0.0.5"}],
        "security_groups": groups, "admin_state_up": true}),
    )
}

fn group_json(id: &str, g: &Group, project: &str) -> Value {
    json!({"id": id, "name": g.name, "description": g.description, "project_id": project,
        "tenant_id": project, "stateful": true, "security_group_rules": g.rules})
}

fn fip_json(id: &str, f: &Fip, site: &Site, project: &str, now: Instant) -> Value {
    let (_, public, _, router, _) = ids(site);
    let port = f.port.as_ref().and_then(|p| {
        ports(site, now)
            .into_iter()
            .find(|x| x["id"] == *p.as_str())
    });
    json!({"id": id, "floating_ip_address": f.address, "floating_network_id": public,
        "router_id": port.as_ref().map(|_| router.clone()), "port_id": f.port,
        "fixed_ip_address": port.as_ref().map(|p| p["fixed_ips"][0]["ip_address"].clone()),
        "status": if f.port.is_some() { "ACTIVE" } else { "DOWN" }, "description": f.description,
        "project_id": project, "tenant_id": project})
}

fn ports(site: &Site, now: Instant) -> Vec<Value> {
    let (private, _, subnet, router, router_port) = ids(site);
    let mut all = vec![
        json!({"id": router_port, "network_id": private, "device_id": router,
        "device_owner": "network:router_interface", "status": "ACTIVE",
        "fixed_ips": [{"subnet_id": subnet, "ip_address": "10.0.0.1"}], "security_groups": []}),
    ];
    all.extend(
        site.server_order
            .iter()
            .filter_map(|s| port_of(site, s, now)),
    );
    all
}

/// Keep the objects whose `key` equals each filter of the query that names it.
fn filtered(items: Vec<Value>, r: &Req, keys: &[&str]) -> Vec<Value> {
    items
        .into_iter()
        .filter(|x| {
            keys.iter().all(|k| match r.query.get(*k) {
                Some(want) => x[*k].as_str() == Some(want.as_str()),
                None => true,
            })
        })
        .collect()
}

pub fn neutron(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let base = format!("{}/network", c.site_base(i));
    if r.method == Method::GET && rest.is_empty() {
        return reply(
            StatusCode::OK,
            json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2.0/")}]}]}),
        );
    }
    let Some(mut site) = c.site(i) else {
        return not_found();
    };
    if !site.scoped(r.auth_token()) {
        return unauthorized();
    }
    let site = &mut *site;
    let pid = site.project_id("ops");
    let now = Instant::now();
    let (private, public, subnet, router, _) = ids(site);
    let Some(("v2.0", rest)) = rest.split_first().map(|(a, b)| (*a, b)) else {
        return not_found();
    };
    match (&r.method, rest) {
        (&Method::GET, ["networks"]) => {
            let net = |id: &str, name: &str, project: &str, external: bool| {
                let mut n = json!({"id": id, "name": name,
                    "status": "ACTIVE", "admin_state_up": true, "shared": external, "router:external": external,
                    "project_id": project, "tenant_id": project, "subnets": [stable_id(&format!("{name}-subnet"))],
                    "mtu": 1450, "availability_zones": ["nova"], "availability_zone_hints": [], "ipv4_address_scope": null, "ipv6_address_scope": null,
                    "description": "", "port_security_enabled": true, "qinq": false, "vlan_transparent": null,
                    "created_at": iso(SystemTime::now()), "updated_at": iso(SystemTime::now()), "revision_number": 1, "tags": []});
                // Neutron's external-net extension adds this to external networks only.
                if external {
                    n["is_default"] = json!(false);
                }
                n
            };
            reply(
                StatusCode::OK,
                json!({"networks": [net(&private, "private", &pid, false), net(&public, "public", "admin", true)]}),
            )
        }
        (&Method::GET, ["subnets"]) => {
            let all = vec![
                json!({"id": subnet, "network_id": private, "cidr": "10.0.0.0/24", "ip_version": 4, "name": "private-subnet"}),
                json!({"id": stable_id("public-subnet"), "network_id": public, "cidr": "198.51.100.0/24", "ip_version": 4, "name": "public-subnet"}),
            ];
            reply(
                StatusCode::OK,
                json!({"subnets": filtered(all, r, &["network_id"])}),
            )
        }
        (&Method::GET, ["routers"]) => reply(
            StatusCode::OK,
            json!({"routers": [{"id": router, "name": "router", "status": "ACTIVE", "project_id": pid,
                "external_gateway_info": {"network_id": public, "enable_snat": true}}]}),
        ),
        (&Method::GET, ["ports"]) => {
            let all = filtered(
                ports(site, now),
                r,
                &["device_id", "network_id", "device_owner"],
            );
            reply(StatusCode::OK, json!({ "ports": all }))
        }
        (&Method::GET, ["quotas", project, "details"]) => {
            if *project != pid && site.vo_of(project).is_none() {
                return neutron_error(403, "HTTPForbidden", "Not authorized.");
            }
            let used_ports = ports(site, now).len() as i64 - 1;
            let q = |limit: i64, used: i64| json!({"limit": limit, "used": used, "reserved": 0});
            let rules: usize = site.net.groups.values().map(|g| g.rules.len()).sum();
            reply(
                StatusCode::OK,
                json!({"quota": {"floatingip": q(50, site.net.fips.len() as i64), "network": q(100, 1),
                    "port": q(500, used_ports), "router": q(10, 1), "subnet": q(100, 1),
                    "security_group": q(10, site.net.groups.len() as i64 + 1),
                    "security_group_rule": q(100, rules as i64)}}),
            )
        }
        (&Method::POST, ["security-groups"]) => {
            let Some(b) = r.json() else {
                return neutron_error(400, "HTTPBadRequest", "Malformed request body");
            };
            let g = &b["security_group"];
            let id = new_id();
            let group = Group {
                name: g["name"].as_str().unwrap_or("").to_string(),
                description: g["description"].as_str().unwrap_or("").to_string(),
                rules: ["IPv4", "IPv6"]
                    .iter()
                    .map(|e| json!({"id": new_id(), "security_group_id": id, "direction": "egress", "ethertype": e,
                        "protocol": null, "port_range_min": null, "port_range_max": null, "remote_ip_prefix": null}))
                    .collect(),
            };
            let body = group_json(&id, &group, &pid);
            site.net.groups.insert(id, group);
            reply(StatusCode::CREATED, json!({ "security_group": body }))
        }
        (&Method::GET, ["security-groups"]) => {
            let all = site
                .net
                .groups
                .iter()
                .map(|(id, g)| group_json(id, g, &pid))
                .collect();
            reply(
                StatusCode::OK,
                json!({"security_groups": filtered(all, r, &["name"])}),
            )
        }
        (&Method::GET, ["security-groups", id]) => match site.net.groups.get(*id) {
            Some(g) => reply(
                StatusCode::OK,
                json!({"security_group": group_json(id, g, &pid)}),
            ),
            None => neutron_error(
                404,
                "SecurityGroupNotFound",
                &format!("Security group {id} does not exist"),
            ),
        },
        (&Method::DELETE, ["security-groups", id]) => {
            let Some(name) = site.net.groups.get(*id).map(|g| g.name.clone()) else {
                return neutron_error(
                    404,
                    "SecurityGroupNotFound",
                    &format!("Security group {id} does not exist"),
                );
            };
            let in_use = ports(site, now).iter().any(|p| {
                p["security_groups"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|g| g == *id || g == name.as_str()))
            });
            if in_use {
                return neutron_error(
                    409,
                    "SecurityGroupInUse",
                    &format!("Security Group {id} in use."),
                );
            }
            site.net.groups.remove(*id);
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["security-group-rules"]) => {
            let Some(b) = r.json() else {
                return neutron_error(400, "HTTPBadRequest", "Malformed request body");
            };
            let mut rule = b["security_group_rule"].clone();
            let gid = rule["security_group_id"].as_str().unwrap_or("").to_string();
            let Some(g) = site.net.groups.get_mut(&gid) else {
                return neutron_error(
                    404,
                    "SecurityGroupNotFound",
                    &format!("Security group {gid} does not exist"),
                );
            };
            rule["id"] = json!(new_id());
            g.rules.push(rule.clone());
            reply(StatusCode::CREATED, json!({ "security_group_rule": rule }))
        }
        (&Method::POST, ["floatingips"]) => {
            let Some(b) = r.json() else {
                return neutron_error(400, "HTTPBadRequest", "Malformed request body");
            };
            let f = &b["floatingip"];
            if f["floating_network_id"].as_str() != Some(public.as_str()) {
                return neutron_error(404, "ExternalNetworkNotFound", "External network not found");
            }
            let taken: Vec<&str> = site.net.fips.values().map(|f| f.address.as_str()).collect();
            let free = POOL
                .map(|n| format!("198.51.100.{n}"))
                .find(|a| !taken.contains(&a.as_str()));
            let (Some(address), false) = (free, c.fault(Fault::FipExhausted)) else {
                return neutron_error(
                    409,
                    "IpAddressGenerationFailure",
                    &format!("No more IP addresses available on network {public}."),
                );
            };
            let id = new_id();
            let fip = Fip {
                address,
                description: f["description"].as_str().unwrap_or("").to_string(),
                port: None,
            };
            let body = fip_json(&id, &fip, site, &pid, now);
            site.net.fips.insert(id, fip);
            reply(StatusCode::CREATED, json!({ "floatingip": body }))
        }
        (&Method::GET, ["floatingips"]) => {
            let all = site
                .net
                .fips
                .iter()
                .map(|(id, f)| fip_json(id, f, site, &pid, now))
                .collect();
            reply(
                StatusCode::OK,
                json!({"floatingips": filtered(all, r, &["description", "port_id"])}),
            )
        }
        (&Method::GET, ["floatingips", id]) => match site.net.fips.get(*id) {
            Some(f) => reply(
                StatusCode::OK,
                json!({"floatingip": fip_json(id, f, site, &pid, now)}),
            ),
            None => neutron_error(
                404,
                "FloatingIPNotFound",
                &format!("Floating IP {id} could not be found"),
            ),
        },
        (&Method::PUT, ["floatingips", id]) => {
            let port = r.json().map(|b| b["floatingip"]["port_id"].clone());
            let Some(port) = port else {
                return neutron_error(400, "HTTPBadRequest", "Malformed request body");
            };
            let port = port.as_str().map(String::from);
            if let Some(p) = &port {
                if !ports(site, now).iter().any(|x| x["id"] == *p.as_str()) {
                    return neutron_error(
                        404,
                        "PortNotFound",
                        &format!("Port {p} could not be found."),
                    );
                }
            }
            let Some(f) = site.net.fips.get_mut(*id) else {
                return neutron_error(
                    404,
                    "FloatingIPNotFound",
                    &format!("Floating IP {id} could not be found"),
                );
            };
            f.port = port;
            let f = &site.net.fips[*id];
            reply(
                StatusCode::OK,
                json!({"floatingip": fip_json(id, f, site, &pid, now)}),
            )
        }
        (&Method::DELETE, ["floatingips", id]) => match site.net.fips.remove(*id) {
            Some(_) => empty(StatusCode::NO_CONTENT),
            None => neutron_error(
                404,
                "FloatingIPNotFound",
                &format!("Floating IP {id} could not be found"),
            ),
        },
        _ => not_found(),
    }
}
