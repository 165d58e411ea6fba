//! Nova: servers (BUILD -> ACTIVE -> gone, faults), flavors, limits and
//! os-simple-tenant-usage, by microversion.

use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::dates::{iso, iso_secs, nova_time, parse_iso, unix, unix_rounded};
use crate::faults::Fault;
use crate::fixtures::{flavor, new_id, stable_id, Flavor, FLAVORS};
use crate::http::{
    bytes, empty, not_found, nova_error, parse_version, reply, unauthorized, with_header, Req, Resp,
};
use crate::state::{Cloud, Server, Site};

fn flavor_json(base: &str, f: &Flavor) -> Value {
    json!({"id": f.id, "name": f.name, "vcpus": f.vcpus, "ram": f.ram_mb, "disk": f.disk_gb, "OS-FLV-EXT-DATA:ephemeral": 0,
        "swap": 0, "rxtx_factor": 1.0, "os-flavor-access:is_public": true, "OS-FLV-DISABLED:disabled": false,
        "description": null, "extra_specs": {},
        "links": [{"rel": "self", "href": format!("{base}/flavors/{}", f.id)}]})
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
        Value::from(nova_time(unix_rounded(s.created_at + s.boot)))
    } else {
        Value::Null
    };
    let flavor = flavor(&s.flavor);
    let mut v = json!({
        "id": s.id, "name": s.name, "status": status, "tenant_id": tenant,
        "user_id": stable_id("monitoring-user"), "metadata": s.metadata,
        "hostId": if status == "ACTIVE" { stable_id(&s.id) } else { String::new() },
        "image": {"id": s.image, "links": [{"rel": "bookmark", "href": format!("{base}/images/{}", s.image)}]},
        // Before 2.47 a server names its flavor; from 2.47 it embeds it.
        "flavor": if mv >= (2, 47) {
            json!({"vcpus": flavor.vcpus, "ram": flavor.ram_mb, "disk": flavor.disk_gb, "ephemeral": 0, "swap": 0,
                "original_name": flavor.name, "extra_specs": {}})
        } else {
            json!({"id": flavor.id, "links": [{"rel": "bookmark", "href": format!("{base}/flavors/{}", flavor.id)}]})
        },
        "config_drive": "", "description": null, "tags": [], "os-extended-volumes:volumes_attached": [],
        "created": iso(s.created_at), "updated": iso(SystemTime::now()),
        "addresses": if status == "ACTIVE" { json!({"private": [{"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}]}) } else { json!({}) },
        "accessIPv4": "", "accessIPv6": "", "progress": if status == "ACTIVE" { 100 } else { 0 },
        "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:task_state": task, "OS-EXT-STS:power_state": if status == "ACTIVE" { 1 } else { 0 },
        "OS-SRV-USG:launched_at": launched,
        "OS-SRV-USG:terminated_at": s.deleted.map(|(_, t)| iso_secs(unix_rounded(t))),
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

pub fn nova(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let root = format!("{}/compute", c.site_base(i));
    let base = format!("{root}/v2.1");
    // Built only for the version documents, not for every request.
    let version = || {
        json!({"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": format!("{base}/")}]})
    };
    match (&r.method, rest) {
        (&Method::GET, []) => {
            return reply(
                StatusCode::OK,
                json!({"versions": [{"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                    "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": format!("{root}/v2/")}]}, version()]}),
            )
        }
        (&Method::GET, ["v2.1"]) => return reply(StatusCode::OK, json!({"version": version()})),
        _ => {}
    }
    let Some(mut site) = c.site(i) else {
        return nova_error(500, "computeFault", "state lock poisoned");
    };
    if !site.scoped(r.auth_token()) {
        return unauthorized();
    }
    let tenant = site.project_id("ops");
    let now = Instant::now();
    let Some(("v2.1", rest)) = rest.split_first().map(|(a, b)| (*a, b)) else {
        return not_found();
    };
    let microversion = r
        .microversion("compute")
        .or_else(|| {
            r.header("x-openstack-nova-api-version")
                .and_then(parse_version)
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
                .filter(|f| f.disk_gb >= min_disk)
                .map(|f| flavor_json(&base, f))
                .collect();
            reply(StatusCode::OK, json!({"flavors": fl}))
        }
        (&Method::GET, ["flavors"]) => {
            let fl: Vec<Value> = FLAVORS
                .iter()
                .map(|f| {
                    json!({"id": f.id, "name": f.name, "description": null,
                "links": [{"rel": "self", "href": format!("{base}/flavors/{}", f.id)}]})
                })
                .collect();
            reply(StatusCode::OK, json!({"flavors": fl}))
        }
        (&Method::GET, ["flavors", id]) => match FLAVORS.iter().find(|f| f.id == *id) {
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
            "maxTotalInstances": if c.fault(Fault::QuotaExhausted) { 0 } else { 10 },
            "maxTotalCores": 20, "maxTotalRAMSize": 51200,
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
                .filter(|s| !s.gone(now) || since.is_some_and(|t| s.deleted.is_some_and(|(_, d)| unix(d) >= t)))
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
                // Nova detaches the volumes of a deleted server.
                let sid = id.to_string();
                for v in site.volumes.values_mut() {
                    if v.attached_to(now) == Some(sid.as_str()) && v.detach.is_none() {
                        v.detach = Some(now);
                    }
                }
                empty(StatusCode::NO_CONTENT)
            }
            _ => nova_error(
                404,
                "itemNotFound",
                &format!("Instance {id} could not be found."),
            ),
        },
        (
            &Method::GET | &Method::POST | &Method::DELETE,
            ["servers", id, "os-volume_attachments", more @ ..],
        ) => {
            if !site
                .servers
                .get(*id)
                .is_some_and(|s| !s.gone(now) && s.deleted.is_none())
            {
                return nova_error(
                    404,
                    "itemNotFound",
                    &format!("Instance {id} could not be found."),
                );
            }
            crate::cinder::attachments(c, &mut site, r, id, more)
        }
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
            if *project != tenant && site.vo_of(project).is_none() {
                return nova_error(403, "forbidden", "Policy doesn't allow os_compute_api:os-simple-tenant-usage:show to be performed.");
            }
            usage(&site, project, r, now)
        }
        _ => not_found(),
    }
}

fn create_server(c: &Cloud, site: &mut Site, r: &Req, base: &str, mv: (u32, u32)) -> Resp {
    if c.fault(Fault::QuotaExhausted) {
        let now = Instant::now();
        let used = site.servers.values().filter(|s| !s.gone(now)).count();
        return nova_error(
            403,
            "forbidden",
            &format!(
                "Quota exceeded for instances: Requested 1, but already used {used} of 0 instances"
            ),
        );
    }
    if c.fault(Fault::Http5xx) {
        let resp = bytes(
            StatusCode::SERVICE_UNAVAILABLE,
            &b"<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p><hr><address>Apache/2.4.62 (Debian) Server</address></body></html>"[..],
        );
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
    if !FLAVORS.iter().any(|f| f.id == flavor) {
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
    let boot = if c.fault(Fault::SlowBoot) {
        c.faults.slow_boot
    } else {
        c.boot_delay
    };
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
            error: c.fault(Fault::ErrorState),
            deleted: None,
        },
    );
    site.server_order.push(id.clone());
    crate::neutron::boot(site, &id, &s["security_groups"]);
    let href = format!("{base}/servers/{id}");
    let resp = reply(
        StatusCode::ACCEPTED,
        json!({"server": {"id": id, "links": [{"rel": "self", "href": href}],
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}], "adminPass": "demo-not-a-secret"}}),
    );
    with_header(resp, "location", &href)
}

/// os-simple-tenant-usage as Nova computes it: `end` capped at now; a server
/// counts from launched_at and, once deleted, lists as terminated with
/// ended_at (its flavor's sizes throughout). launched_at is stored rounded,
/// so a server launched under a second ago can be missing, as on real sites.
fn usage(site: &Site, project: &str, r: &Req, now: Instant) -> Resp {
    let wall_now = unix(SystemTime::now());
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
            (!matches!(status, "BUILD" | "ERROR")).then(|| unix_rounded(s.created_at + s.boot));
        // terminated_at is set when the deletion completes (vm_state deleted).
        let ended = s
            .deleted
            .filter(|_| status == "DELETED")
            .map(|(_, t)| unix_rounded(t));
        if launched.is_some_and(|l| l > end) || ended.is_some_and(|e| e < start) {
            continue;
        }
        let began = launched.unwrap_or_else(|| unix(s.created_at));
        let from = began.max(start) as f64;
        let to = ended.unwrap_or(wall_now).min(end) as f64;
        let hours = ((to - from).max(0.0) + 0.5) / 3600.0;
        let f = flavor(&s.flavor);
        hours_t += hours;
        vcpu_t += hours * f64::from(f.vcpus);
        mem_t += hours * f64::from(f.ram_mb);
        disk_t += hours * f64::from(f.disk_gb);
        let state = match status {
            "DELETED" => "terminated",
            "ERROR" => "error",
            "BUILD" => "building",
            _ => "active",
        };
        rows.push(
            json!({"instance_id": s.id, "name": s.name, "flavor": f.name, "vcpus": f.vcpus,
            "memory_mb": f.ram_mb, "local_gb": f.disk_gb, "hours": hours,
            "started_at": nova_time(began),
            "ended_at": ended.map(nova_time),
            "state": state, "uptime": (to - from).max(0.0) as i64, "tenant_id": project}),
        );
    }
    reply(
        StatusCode::OK,
        json!({"tenant_usage": {"server_usages": rows, "start": nova_time(start),
            "stop": nova_time(end), "tenant_id": project,
            "total_hours": hours_t, "total_vcpus_usage": vcpu_t, "total_memory_mb_usage": mem_t,
            "total_local_gb_usage": disk_t}}),
    )
}
