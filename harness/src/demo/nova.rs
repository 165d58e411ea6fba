//! Demo Nova (servers, flavors, simple-tenant-usage), Neutron networks, Cinder summary.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::server::*;
use super::state::{new_id, Server, Site};

pub(super) const FLAVORS: [(&str, &str, u32, u32, u32); 3] = [
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
];

fn flavor_json(base: &str, f: &(&str, &str, u32, u32, u32)) -> Value {
    json!({"id": f.0, "name": f.1, "vcpus": f.2, "ram": f.3, "disk": f.4, "OS-FLV-EXT-DATA:ephemeral": 0,
        "swap": 0, "rxtx_factor": 1.0, "os-flavor-access:is_public": true, "OS-FLV-DISABLED:disabled": false,
        "description": null, "extra_specs": {},
        "links": [{"rel": "self", "href": format!("{base}/flavors/{}", f.0)}]})
}

fn server_json(base: &str, s: &Server, tenant: &str, now: Instant, mv: (u32, u32)) -> Value {
    let status = s.status(now);
    let (vm_state, task) = match status {
        "BUILD" => ("building", Value::from("spawning")),
        "ERROR" => ("error", Value::Null),
        "DELETED" => ("deleted", Value::Null),
        _ if s.deleted.is_some() => ("active", Value::from("deleting")),
        _ => ("active", Value::Null),
    };
    let launched = if status == "ACTIVE" || s.deleted.is_some() {
        Value::from(
            iso_secs(rounded(s.created_at + s.boot))
                .trim_end_matches('Z')
                .to_string()
                + ".000000",
        )
    } else {
        Value::Null
    };
    let flavor = FLAVORS
        .iter()
        .find(|f| f.0 == s.flavor)
        .unwrap_or(&FLAVORS[0]);
    let mut v = json!({
        "id": s.id, "name": s.name, "status": status, "tenant_id": tenant,
        "user_id": super::state::stable_id("monitoring-user"), "metadata": s.metadata,
        "hostId": if status == "ACTIVE" { super::state::stable_id(&s.id) } else { String::new() },
        "image": {"id": s.image, "links": [{"rel": "bookmark", "href": format!("{base}/images/{}", s.image)}]},
        // Before 2.47 a server names its flavor; from 2.47 it embeds it.
        "flavor": if mv >= (2, 47) {
            json!({"vcpus": flavor.2, "ram": flavor.3, "disk": flavor.4, "ephemeral": 0, "swap": 0,
                "original_name": flavor.1, "extra_specs": {}})
        } else {
            json!({"id": flavor.0, "links": [{"rel": "bookmark", "href": format!("{base}/flavors/{}", flavor.0)}]})
        },
        "config_drive": "", "description": null, "tags": [], "os-extended-volumes:volumes_attached": [],
        "created": iso(s.created_at), "updated": iso(SystemTime::now()),
        "addresses": if status == "ACTIVE" { json!({"private": [{"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}]}) } else { json!({}) },
        "accessIPv4": "", "accessIPv6": "", "progress": if status == "ACTIVE" { 100 } else { 0 },
        "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:task_state": task, "OS-EXT-STS:power_state": if status == "ACTIVE" { 1 } else { 0 },
        "OS-SRV-USG:launched_at": launched,
        "OS-SRV-USG:terminated_at": s.deleted.map(|(_, t)| iso_secs(rounded(t))),
        "OS-EXT-AZ:availability_zone": "nova", "OS-DCF:diskConfig": "MANUAL",
        "key_name": null, "security_groups": [{"name": "default"}], "locked": false,
        "links": [{"rel": "self", "href": format!("{base}/servers/{}", s.id)}],
    });
    if status == "ERROR" {
        v["fault"] = json!({"code": 500, "message": "No valid host was found. There are not enough hosts available.",
            "details": "Traceback (most recent call last):\n  File \"nova/conductor/manager.py\", line 1580, in schedule_and_build_instances\nnova.exception.NoValidHost", "created": iso(s.created_at + Duration::from_millis(200))});
    }
    v
}

pub(super) fn nova(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let root = format!("{}/s{i}/compute", c.base);
    let base = format!("{root}/v2.1");
    let version = json!({"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": format!("{base}/")}]});
    match (&r.method, rest) {
        (&Method::GET, []) => {
            return reply(
                StatusCode::OK,
                json!({"versions": [{"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                    "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": format!("{root}/v2/")}]}, version]}),
            )
        }
        (&Method::GET, ["v2.1"]) => return reply(StatusCode::OK, json!({"version": version})),
        _ => {}
    }
    let Ok(mut site) = c.sites[i].lock() else {
        return nova_error(500, "computeFault", "state lock poisoned");
    };
    if !authed(&site, r) {
        return unauthorized();
    }
    let tenant = site.project_id("ops");
    let now = Instant::now();
    let Some(("v2.1", rest)) = rest.split_first().map(|(a, b)| (*a, b)) else {
        return not_found();
    };
    let microversion = r
        .header("openstack-api-version")
        .and_then(|h| h.trim().strip_prefix("compute "))
        .or_else(|| r.header("x-openstack-nova-api-version"))
        .and_then(|v| {
            let (a, b) = v.trim().split_once('.')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        })
        .unwrap_or((2, 1));
    match (&r.method, rest) {
        (&Method::GET, ["flavors", "detail"]) => {
            let min_disk: u32 = r
                .query
                .get("minDisk")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let fl: Vec<Value> = FLAVORS
                .iter()
                .filter(|f| f.4 >= min_disk)
                .map(|f| flavor_json(&base, f))
                .collect();
            reply(StatusCode::OK, json!({"flavors": fl}))
        }
        (&Method::GET, ["flavors"]) => {
            let fl: Vec<Value> = FLAVORS
                .iter()
                .map(|f| {
                    json!({"id": f.0, "name": f.1, "description": null,
                "links": [{"rel": "self", "href": format!("{base}/flavors/{}", f.0)}]})
                })
                .collect();
            reply(StatusCode::OK, json!({"flavors": fl}))
        }
        (&Method::GET, ["flavors", id]) => match FLAVORS.iter().find(|f| f.0 == *id) {
            Some(f) => reply(StatusCode::OK, json!({"flavor": flavor_json(&base, f)})),
            None => nova_error(
                404,
                "itemNotFound",
                &format!("Flavor {id} could not be found."),
            ),
        },
        (&Method::GET, ["limits"]) => reply(
            StatusCode::OK,
            json!({"limits": {"rate": [], "absolute": {
            "maxTotalInstances": 10, "maxTotalCores": 20, "maxTotalRAMSize": 51200,
            "totalInstancesUsed": site.servers.values().filter(|s| !s.gone(now)).count(),
            "totalCoresUsed": 0, "totalRAMUsed": 0, "maxServerMeta": 128, "maxImageMeta": 128,
            "maxPersonality": 5, "maxPersonalitySize": 10240, "maxTotalKeypairs": 100,
            "maxServerGroups": 10, "maxServerGroupMembers": 10, "maxSecurityGroups": 10,
            "maxSecurityGroupRules": 20, "maxTotalFloatingIps": 10, "totalFloatingIpsUsed": 0,
            "totalSecurityGroupsUsed": 1, "totalServerGroupsUsed": 0}}}),
        ),
        (&Method::POST, ["servers"]) => create_server(c, &mut site, r, &base, microversion),
        (&Method::GET, ["servers"]) | (&Method::GET, ["servers", "detail"]) => {
            let detail = rest.len() == 2;
            let since = r.query.get("changes-since").and_then(|s| parse_iso(s));
            let name = r
                .query
                .get("name")
                .map(|n| n.trim_start_matches('^').trim_end_matches('$'));
            let list: Vec<Value> = site
                .server_order
                .iter()
                .filter_map(|id| site.servers.get(id))
                .filter(|s| !s.gone(now) || since.is_some_and(|t| s.deleted.is_some_and(|(_, d)| secs_of(d) >= t)))
                .filter(|s| name.is_none_or(|n| s.name.contains(n)))
                .map(|s| if detail { server_json(&base, s, &tenant, now, microversion) } else {
                    json!({"id": s.id, "name": s.name, "links": [{"rel": "self", "href": format!("{base}/servers/{}", s.id)}]})
                })
                .collect();
            reply(StatusCode::OK, json!({"servers": list}))
        }
        (&Method::GET, ["servers", id]) => match site.servers.get(*id) {
            Some(s) if !s.gone(now) => reply(
                StatusCode::OK,
                json!({"server": server_json(&base, s, &tenant, now, microversion)}),
            ),
            _ => nova_error(
                404,
                "itemNotFound",
                &format!("Instance {id} could not be found."),
            ),
        },
        (&Method::DELETE, ["servers", id]) => match site.servers.get_mut(*id) {
            Some(s) if s.deleted.is_none() => {
                s.deleted = Some((now, SystemTime::now()));
                empty(StatusCode::NO_CONTENT)
            }
            _ => nova_error(
                404,
                "itemNotFound",
                &format!("Instance {id} could not be found."),
            ),
        },
        (&Method::GET, ["servers", _, "diagnostics"]) => nova_error(
            403,
            "forbidden",
            "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.",
        ),
        (&Method::GET, ["os-simple-tenant-usage"]) => nova_error(
            403,
            "forbidden",
            "Policy doesn't allow os_compute_api:os-simple-tenant-usage:list to be performed.",
        ),
        (&Method::GET, ["os-simple-tenant-usage", project]) => {
            if *project != tenant && !VOS.iter().any(|v| site.project_id(v) == *project) {
                return nova_error(403, "forbidden", "Policy doesn't allow os_compute_api:os-simple-tenant-usage:show to be performed.");
            }
            usage(&site, project, r, now)
        }
        _ => not_found(),
    }
}

pub(super) fn secs_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn create_server(c: &Cloud, site: &mut Site, r: &Req, base: &str, mv: (u32, u32)) -> Resp {
    if c.faults.http_5xx {
        let mut resp = Response::new(Full::new(Bytes::from_static(
            b"<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p><hr><address>Apache/2.4.62 (Debian) Server</address></body></html>",
        )));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return with_header(resp, "content-type", "text/html; charset=iso-8859-1");
    }
    let Some(body) = r.json() else {
        return nova_error(400, "badRequest", "Malformed request body");
    };
    let s = &body["server"];
    let Some(name) = s["name"].as_str().filter(|n| !n.is_empty()) else {
        return nova_error(
            400,
            "badRequest",
            "Invalid input for field/attribute server. Value: {}. 'name' is a required property",
        );
    };
    let flavor = match &s["flavorRef"] {
        Value::String(f) => f.rsplit('/').next().unwrap_or("").to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return nova_error(
                400,
                "badRequest",
                "Invalid input for field/attribute server. 'flavorRef' is a required property",
            )
        }
    };
    if !FLAVORS.iter().any(|f| f.0 == flavor) {
        return nova_error(
            400,
            "badRequest",
            &format!("Flavor {flavor} could not be found."),
        );
    }
    let image = s["imageRef"]
        .as_str()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    match site.images.get(&image) {
        Some(img) if img.current_status(Instant::now()) == "active" => {}
        Some(_) => return nova_error(400, "badRequest", &format!("Image {image} is not active.")),
        None => {
            return nova_error(
                400,
                "badRequest",
                &format!("Image {image} could not be found."),
            )
        }
    }
    let networks = &s["networks"];
    if mv >= (2, 37) && networks.is_null() {
        return nova_error(
            400,
            "badRequest",
            "Invalid input for field/attribute server. 'networks' is a required property",
        );
    }
    let id = new_id();
    let boot = c.faults.slow_boot.unwrap_or(c.boot_delay);
    site.servers.insert(
        id.clone(),
        Server {
            id: id.clone(),
            name: name.to_string(),
            flavor,
            image,
            metadata: if s["metadata"].is_object() {
                s["metadata"].clone()
            } else {
                json!({})
            },
            created: Instant::now(),
            created_at: SystemTime::now(),
            boot,
            error: c.faults.error_state,
            deleted: None,
        },
    );
    site.server_order.push(id.clone());
    let href = format!("{base}/servers/{id}");
    let resp = reply(
        StatusCode::ACCEPTED,
        json!({"server": {"id": id, "links": [{"rel": "self", "href": href}],
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}], "adminPass": "demo-not-a-secret"}}),
    );
    with_header(resp, "location", &href)
}

/// MariaDB DATETIME: a time stored to the nearest second.
fn rounded(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64().round() as i64)
        .unwrap_or(0)
}

/// os-simple-tenant-usage as Nova computes it: `end` capped at now; a server
/// counts from launched_at and, once deleted, lists as terminated with
/// ended_at (its flavor's sizes throughout). launched_at is stored rounded,
/// so a server launched under a second ago can be missing, as on real sites.
fn usage(site: &Site, project: &str, r: &Req, now: Instant) -> Resp {
    let wall_now = secs_of(SystemTime::now());
    let start = r
        .query
        .get("start")
        .and_then(|s| parse_iso(s))
        .unwrap_or(wall_now - 86_400);
    let end = r
        .query
        .get("end")
        .and_then(|s| parse_iso(s))
        .unwrap_or(wall_now)
        .min(wall_now);
    let mut rows = Vec::new();
    let (mut hours_t, mut vcpu_t, mut mem_t, mut disk_t) = (0.0, 0.0, 0.0, 0.0);
    for s in site
        .server_order
        .iter()
        .filter_map(|id| site.servers.get(id))
    {
        let status = s.status(now);
        let launched =
            (!matches!(status, "BUILD" | "ERROR")).then(|| rounded(s.created_at + s.boot));
        // terminated_at is set when the deletion completes (vm_state deleted).
        let ended = s
            .deleted
            .filter(|_| status == "DELETED")
            .map(|(_, t)| rounded(t));
        if launched.is_some_and(|l| l > end) || ended.is_some_and(|e| e < start) {
            continue;
        }
        let began = launched.unwrap_or_else(|| secs_of(s.created_at));
        let from = began.max(start) as f64;
        let to = ended.unwrap_or(wall_now).min(end) as f64;
        let hours = ((to - from).max(0.0) + 0.5) / 3600.0;
        let f = FLAVORS
            .iter()
            .find(|f| f.0 == s.flavor)
            .unwrap_or(&FLAVORS[0]);
        hours_t += hours;
        vcpu_t += hours * f.2 as f64;
        mem_t += hours * f.3 as f64;
        disk_t += hours * f.4 as f64;
        let state = match status {
            "DELETED" => "terminated",
            "ERROR" => "error",
            "BUILD" => "building",
            _ => "active",
        };
        rows.push(
            json!({"instance_id": s.id, "name": s.name, "flavor": f.1, "vcpus": f.2,
            "memory_mb": f.3, "local_gb": f.4, "hours": hours,
            "started_at": iso_secs(began).trim_end_matches('Z').to_string() + ".000000",
            "ended_at": ended.map(|e| iso_secs(e).trim_end_matches('Z').to_string() + ".000000"),
            "state": state, "uptime": (to - from).max(0.0) as i64, "tenant_id": project}),
        );
    }
    reply(
        StatusCode::OK,
        json!({"tenant_usage": {"server_usages": rows, "start": iso_secs(start).trim_end_matches('Z').to_string() + ".000000",
            "stop": iso_secs(end).trim_end_matches('Z').to_string() + ".000000", "tenant_id": project,
            "total_hours": hours_t, "total_vcpus_usage": vcpu_t, "total_memory_mb_usage": mem_t,
            "total_local_gb_usage": disk_t}}),
    )
}

pub(super) fn neutron(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let base = format!("{}/s{i}/network", c.base);
    if r.method == Method::GET && rest.is_empty() {
        return reply(
            StatusCode::OK,
            json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2.0/")}]}]}),
        );
    }
    let Ok(site) = c.sites[i].lock() else {
        return not_found();
    };
    if !authed(&site, r) {
        return unauthorized();
    }
    match (&r.method, rest) {
        (&Method::GET, ["v2.0", "networks"]) => {
            let pid = site.project_id("ops");
            let net = |name: &str, project: &str, external: bool| {
                json!({"id": super::state::stable_id(&format!("{}-{name}", site.name)), "name": name,
                    "status": "ACTIVE", "admin_state_up": true, "shared": external, "router:external": external,
                    "project_id": project, "tenant_id": project, "subnets": [super::state::stable_id(&format!("{name}-subnet"))],
                    "mtu": 1450, "availability_zones": ["nova"], "ipv4_address_scope": null, "ipv6_address_scope": null,
                    "created_at": iso(SystemTime::now()), "updated_at": iso(SystemTime::now()), "revision_number": 1, "tags": []})
            };
            reply(
                StatusCode::OK,
                json!({"networks": [net("private", &pid, false), net("public", "admin", true)]}),
            )
        }
        _ => not_found(),
    }
}

pub(super) fn cinder(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let Ok(site) = c.sites[i].lock() else {
        return not_found();
    };
    if !authed(&site, r) {
        return unauthorized();
    }
    let mv = r
        .header("openstack-api-version")
        .and_then(|h| h.trim().strip_prefix("volume "))
        .and_then(|v| {
            let (a, b) = v.trim().split_once('.')?;
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        })
        .unwrap_or((3, 0));
    match (&r.method, rest) {
        (&Method::GET, ["v3", project, "volumes", "summary"]) if mv >= (3, 12) => {
            if !VOS.iter().any(|v| site.project_id(v) == *project) {
                return nova_error(
                    403,
                    "forbidden",
                    "Policy doesn't allow volume_extension:volume_summary to be performed.",
                );
            }
            reply(
                StatusCode::OK,
                json!({"volume-summary": {"total_size": 0, "total_count": 0, "metadata": {}}}),
            )
        }
        (&Method::GET, ["v3", _, "volumes"]) | (&Method::GET, ["v3", _, "volumes", "detail"]) => {
            reply(StatusCode::OK, json!({"volumes": []}))
        }
        _ => nova_error(404, "itemNotFound", "The resource could not be found."),
    }
}
