//! Cinder: the volume summary (microversion 3.12), volumes create, show,
//! list and delete, the project's absolute limits and (empty) user messages.
//! Attach and detach come through Nova (`nova::volume_attachments`).

use std::time::{Instant, SystemTime};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::dates::iso;
use crate::faults::Fault;
use crate::fixtures;
use crate::http::{empty, not_found, nova_error, reply, unauthorized, Req, Resp};
use crate::state::{Cloud, Site, Volume};

/// The volume quota of every project (Cinder's default).
const MAX_VOLUMES: u64 = 10;
const MAX_GIGABYTES: u64 = 1000;

pub fn cinder(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let Some(mut site) = c.site(i) else {
        return not_found();
    };
    if !site.scoped(r.auth_token()) {
        return unauthorized();
    }
    let now = Instant::now();
    let mv = r.microversion("volume").unwrap_or((3, 0));
    let Some(["v3", project]) = rest.get(..2) else {
        return nova_error(404, "itemNotFound", "The resource could not be found.");
    };
    let project = project.to_string();
    match (&r.method, &rest[2..]) {
        (&Method::GET, ["volumes", "summary"]) if mv >= (3, 12) => {
            if site.vo_of(&project).is_none() {
                return nova_error(
                    403,
                    "forbidden",
                    "Policy doesn't allow volume_extension:volume_summary to be performed.",
                );
            }
            let live: Vec<&Volume> = live(&site, now).collect();
            let size: u64 = live.iter().map(|v| v.size).sum();
            reply(
                StatusCode::OK,
                json!({"volume-summary": {"total_size": size, "total_count": live.len(), "metadata": {}}}),
            )
        }
        (&Method::GET, ["volumes"]) | (&Method::GET, ["volumes", "detail"]) => {
            let list: Vec<Value> = live(&site, now).map(|v| volume_json(v, now)).collect();
            reply(StatusCode::OK, json!({"volumes": list}))
        }
        (&Method::POST, ["volumes"]) => create(c, &mut site, r, now),
        (&Method::GET, ["volumes", id]) => match site.volumes.get(*id) {
            Some(v) if !v.gone(now) => {
                reply(StatusCode::OK, json!({"volume": volume_json(v, now)}))
            }
            _ => missing(id),
        },
        (&Method::DELETE, ["volumes", id]) => match site.volumes.get_mut(*id) {
            Some(v) if v.deleted.is_none() => {
                let st = v.status(now);
                // A stuck volume may go too (an operator's reset-state), so the
                // demo's fault run leaves nothing behind.
                if matches!(st, "available" | "error") || v.stuck {
                    v.deleted = Some(now);
                    empty(StatusCode::ACCEPTED)
                } else {
                    nova_error(
                        400,
                        "badRequest",
                        &format!("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer. (status {st})"),
                    )
                }
            }
            _ => missing(id),
        },
        (&Method::GET, ["limits"]) => {
            let live: Vec<&Volume> = live(&site, now).collect();
            let used = live.len() as u64;
            let used_gb: u64 = live.iter().map(|v| v.size).sum();
            // Exhausted: the quota is what is used, nothing more fits.
            let (max_v, max_gb) = if c.fault(Fault::VolumeQuotaExhausted) {
                (used, used_gb)
            } else {
                (MAX_VOLUMES, MAX_GIGABYTES)
            };
            reply(
                StatusCode::OK,
                json!({"limits": {"rate": [], "absolute": {
                    "maxTotalVolumes": max_v, "totalVolumesUsed": used,
                    "maxTotalVolumeGigabytes": max_gb, "totalGigabytesUsed": used_gb,
                    "maxTotalSnapshots": 10, "totalSnapshotsUsed": 0,
                    "maxTotalBackups": 10, "totalBackupsUsed": 0}}}),
            )
        }
        (&Method::GET, ["messages"]) => reply(StatusCode::OK, json!({"messages": []})),
        _ => nova_error(404, "itemNotFound", "The resource could not be found."),
    }
}

fn missing(id: &str) -> Resp {
    nova_error(
        404,
        "itemNotFound",
        &format!("Volume {id} could not be found."),
    )
}

fn live(site: &Site, now: Instant) -> impl Iterator<Item = &Volume> {
    site.volume_order
        .iter()
        .filter_map(|id| site.volumes.get(id))
        .filter(move |v| !v.gone(now))
}

fn create(c: &Cloud, site: &mut Site, r: &Req, now: Instant) -> Resp {
    let Some(body) = r.json() else {
        return nova_error(400, "badRequest", "Malformed request body");
    };
    let v = &body["volume"];
    let Some(size) = v["size"].as_u64().filter(|s| *s >= 1) else {
        return nova_error(
            400,
            "badRequest",
            "Invalid input for field/attribute size. Value: None. None is not of type 'integer', 'string'",
        );
    };
    let count = live(site, now).count() as u64;
    let gb: u64 = live(site, now).map(|v| v.size).sum();
    if c.fault(Fault::VolumeQuotaExhausted) || count >= MAX_VOLUMES || gb + size > MAX_GIGABYTES {
        return nova_error(
            413,
            "overLimit",
            &format!("VolumeLimitExceeded: Maximum number of volumes allowed ({count}) exceeded for quota 'volumes'."),
        );
    }
    let vol = Volume {
        id: fixtures::new_id(),
        name: v["name"].as_str().unwrap_or("").to_string(),
        size,
        volume_type: v["volume_type"]
            .as_str()
            .unwrap_or("__DEFAULT__")
            .to_string(),
        metadata: v
            .get("metadata")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({})),
        created: now,
        created_at: SystemTime::now(),
        stuck: c.fault(Fault::VolumeStuckCreating),
        attach: None,
        detach: None,
        deleted: None,
    };
    let out = volume_json(&vol, now);
    site.volume_order.push(vol.id.clone());
    site.volumes.insert(vol.id.clone(), vol);
    reply(StatusCode::ACCEPTED, json!({"volume": out}))
}

pub fn volume_json(v: &Volume, now: Instant) -> Value {
    let attachments: Vec<Value> = v
        .attached_to(now)
        .map(|s| {
            json!({"server_id": s, "attachment_id": fixtures::stable_uuid(&format!("{}{s}", v.id)),
                "volume_id": v.id, "id": v.id, "device": "/dev/vdb"})
        })
        .into_iter()
        .collect();
    json!({"id": v.id, "name": v.name, "size": v.size, "status": v.status(now),
        "volume_type": v.volume_type, "metadata": v.metadata, "attachments": attachments,
        "bootable": "false", "encrypted": false, "multiattach": false,
        "availability_zone": "nova", "created_at": iso(v.created_at)})
}

/// Nova's `os-volume_attachments` of server `server` (which exists and is
/// not deleted): list, attach, detach.
pub fn attachments(c: &Cloud, site: &mut Site, r: &Req, server: &str, rest: &[&str]) -> Resp {
    let now = Instant::now();
    match (&r.method, rest) {
        (&Method::GET, []) => {
            let list: Vec<Value> = live(site, now)
                .filter(|v| v.attached_to(now) == Some(server))
                .map(|v| json!({"id": v.id, "volumeId": v.id, "serverId": server, "device": "/dev/vdb"}))
                .collect();
            reply(StatusCode::OK, json!({"volumeAttachments": list}))
        }
        (&Method::POST, []) => {
            let body = r.json().unwrap_or(Value::Null);
            let Some(vid) = body["volumeAttachment"]["volumeId"].as_str() else {
                return nova_error(400, "badRequest", "Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property");
            };
            let fails = c.fault(Fault::AttachFailing);
            match site.volumes.get_mut(vid) {
                Some(v) if !v.gone(now) && v.status(now) == "available" => {
                    v.attach = Some((server.to_string(), now, fails));
                    v.detach = None;
                    reply(StatusCode::OK, json!({"volumeAttachment": {"id": vid, "volumeId": vid, "serverId": server, "device": "/dev/vdb"}}))
                }
                Some(v) if !v.gone(now) => nova_error(400, "badRequest", &format!("Invalid volume: volume {vid} status must be available, but current status is: {}", v.status(now))),
                _ => nova_error(404, "itemNotFound", &format!("Volume {vid} could not be found.")),
            }
        }
        (&Method::DELETE, [vid]) => match site.volumes.get_mut(*vid) {
            Some(v) if !v.gone(now) && v.attached_to(now) == Some(server) && v.detach.is_none() => {
                v.detach = Some(now);
                empty(StatusCode::ACCEPTED)
            }
            _ => nova_error(404, "itemNotFound", &format!("volume_id not found: {vid}")),
        },
        _ => not_found(),
    }
}
