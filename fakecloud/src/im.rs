//! The federation's orchestrator, emulated: the Infrastructure Manager's
//! REST subset check_orchestrator uses (`/im/...`). It reads IM's
//! Authorization header (IM user, then an OpenStack line naming a site's
//! Keystone and the monitor's token), deploys the RADL's one system as a
//! server of that site (so Nova shows it, faults included) and destroys it.
//! The IM user is `monitor`, its password the demo's OIDC client secret.

use std::time::{Instant, SystemTime};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::fixtures::{new_id, FLAVORS};
use crate::http::{reply, Req, Resp};
use crate::state::{Cloud, Deployment, Server};

pub const USER: &str = "monitor";
pub const VERSION: &str = "2.0.0";

fn error(code: u16, message: &str) -> Resp {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    reply(status, json!({"message": message, "code": code}))
}

/// `key = value` pairs of the header's lines (split on the two characters `\n`).
fn auth_lines(r: &Req) -> Vec<Vec<(String, String)>> {
    r.header("authorization")
        .unwrap_or("")
        .split("\\n")
        .map(|line| {
            line.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

fn field<'a>(line: &'a [(String, String)], k: &str) -> Option<&'a str> {
    line.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

pub fn im(c: &Cloud, r: &Req, rest: &[&str]) -> Resp {
    if let (&Method::GET, ["version"]) = (&r.method, rest) {
        return reply(StatusCode::OK, json!(VERSION));
    }
    let lines = auth_lines(r);
    let user_ok = lines.iter().any(|l| {
        field(l, "type") == Some("InfrastructureManager")
            && field(l, "username") == Some(USER)
            && field(l, "password") == Some(c.client_secret.as_str())
    });
    if !user_ok {
        return error(401, "Error: Invalid InfrastructureManager credentials");
    }
    let base = format!("{}/im/infrastructures", c.base);
    let Ok(mut deps) = c.deployments.lock() else {
        return error(500, "state lock poisoned");
    };
    match (&r.method, rest) {
        (&Method::GET, ["infrastructures"]) => {
            let list: Vec<Value> = deps
                .iter()
                .map(|d| json!({"uri": format!("{base}/{}", d.id)}))
                .collect();
            reply(StatusCode::OK, json!({"uri-list": list}))
        }
        (&Method::POST, ["infrastructures"]) => {
            let site = lines.iter().find(|l| field(l, "type") == Some("OpenStack"));
            match deploy(
                c,
                site.map(Vec::as_slice),
                &String::from_utf8_lossy(&r.body),
            ) {
                Ok(d) => {
                    let uri = format!("{base}/{}", d.id);
                    deps.push(d);
                    reply(StatusCode::OK, json!({"uri": uri}))
                }
                Err(msg) => error(400, &format!("Error Creating Inf.: {msg}")),
            }
        }
        (method, ["infrastructures", id, more @ ..]) => {
            let Some(pos) = deps.iter().position(|d| d.id == *id) else {
                return error(
                    404,
                    "Error: Invalid infrastructure ID or access not granted.",
                );
            };
            let d = &deps[pos];
            match (method, more) {
                (&Method::GET, []) => reply(
                    StatusCode::OK,
                    json!({"uri-list": [{"uri": format!("{base}/{id}/vms/0")}]}),
                ),
                (&Method::GET, ["state"]) => {
                    let s = vm_state(c, d);
                    reply(
                        StatusCode::OK,
                        json!({"state": {"state": s, "vm_states": {"0": s}}}),
                    )
                }
                (&Method::GET, ["radl"]) => reply(StatusCode::OK, json!({"radl": d.radl})),
                (&Method::GET, ["contmsg"]) => {
                    let msg = match vm_state(c, d) {
                        "failed" => format!(
                            "Error launching the VMs of type {} to cloud ID site of type OpenStack. \
                             Attempt 1: Error: the server went to ERROR: No valid host was found.",
                            d.system
                        ),
                        _ => "Contextualization disabled by the RADL/TOSCA template.".into(),
                    };
                    reply(StatusCode::OK, json!({"contmsg": msg}))
                }
                (&Method::GET, ["vms", "0", "instance_id"]) => {
                    reply(StatusCode::OK, json!({"instance_id": d.server}))
                }
                (&Method::DELETE, []) => {
                    if let Some(mut s) = c.site(d.site) {
                        if let Some(srv) = s.servers.get_mut(&d.server) {
                            srv.deleted
                                .get_or_insert((Instant::now(), SystemTime::now()));
                        }
                    }
                    deps.remove(pos);
                    reply(StatusCode::OK, json!(""))
                }
                _ => error(404, "Error: not emulated"),
            }
        }
        _ => error(404, "Error: not emulated"),
    }
}

/// IM's words for its VM's state at the site.
fn vm_state(c: &Cloud, d: &Deployment) -> &'static str {
    let Some(s) = c.site(d.site) else {
        return "unknown";
    };
    match s.servers.get(&d.server).map(|v| v.status(Instant::now())) {
        Some("ACTIVE") => "configured",
        Some("ERROR") => "failed",
        Some("BUILD") => "pending",
        _ => "unknown",
    }
}

/// The RADL value after `key = '`.
fn radl_value<'a>(radl: &'a str, key: &str) -> Option<&'a str> {
    let at = radl.find(key)? + key.len();
    let rest = radl[at..].trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.strip_prefix('\'')?;
    rest.split('\'').next()
}

/// Create the RADL's VM as a server of the site the OpenStack line names.
fn deploy(c: &Cloud, site: Option<&[(String, String)]>, radl: &str) -> Result<Deployment, String> {
    let site = site.ok_or("No cloud credentials (no OpenStack line)")?;
    let host = field(site, "host").unwrap_or("").trim_end_matches('/');
    let host = host.strip_suffix("/v3").unwrap_or(host);
    let i = (0..c.sites.len())
        .find(|i| c.keystone(*i).trim_end_matches("/v3") == host)
        .ok_or_else(|| format!("No site at {host}"))?;
    if field(site, "password") != Some(c.access_token.as_str()) || c.fault(Fault::BadToken) {
        return Err("'Invalid credentials with the provider'".into());
    }
    let system = radl
        .split_once("system ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .ok_or("Error parsing RADL: no system")?
        .to_string();
    let flavor = radl_value(radl, "instance_type").unwrap_or("m1.tiny");
    let image = radl_value(radl, "disk.0.image.url")
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or("");
    let fail = |why: String| {
        format!(
            "Error launching the VMs of type {system} to cloud ID site of type OpenStack. \
             Attempt 1: {why}"
        )
    };
    let Some(f) = FLAVORS.iter().find(|f| f.name == flavor) else {
        return Err(fail(format!("No instance type available: {flavor}")));
    };
    let mut s = c.site(i).ok_or("state lock poisoned")?;
    if !s.images.contains_key(image) {
        return Err(fail(format!(
            "404 Not Found No image found with ID {image}"
        )));
    }
    let id = new_id();
    let boot = if c.fault(Fault::SlowBoot) {
        c.faults.slow_boot
    } else {
        c.boot_delay
    };
    s.servers.insert(
        id.clone(),
        Server {
            id: id.clone(),
            name: format!("{system}-{}", new_id()),
            flavor: f.id.to_string(),
            image: image.to_string(),
            metadata: json!({}),
            created: Instant::now(),
            created_at: SystemTime::now(),
            boot,
            error: c.fault(Fault::ErrorState),
            deleted: None,
        },
    );
    s.server_order.push(id.clone());
    Ok(Deployment {
        id: new_id(),
        site: i,
        system,
        server: id,
        radl: radl.to_string(),
    })
}
