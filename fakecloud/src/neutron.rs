//! Neutron: the versions document and the project's networks.

use std::time::SystemTime;

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::dates::iso;
use crate::fixtures::stable_id;
use crate::http::{not_found, reply, unauthorized, Req, Resp};
use crate::state::Cloud;

pub fn neutron(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let base = format!("{}/network", c.site_base(i));
    if r.method == Method::GET && rest.is_empty() {
        return reply(
            StatusCode::OK,
            json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2.0/")}]}]}),
        );
    }
    let Some(site) = c.site(i) else {
        return not_found();
    };
    if !site.scoped(r.auth_token()) {
        return unauthorized();
    }
    match (&r.method, rest) {
        (&Method::GET, ["v2.0", "networks"]) => {
            let pid = site.project_id("ops");
            let net = |name: &str, project: &str, external: bool| {
                json!({"id": stable_id(&format!("{}-{name}", site.name)), "name": name,
                    "status": "ACTIVE", "admin_state_up": true, "shared": external, "router:external": external,
                    "project_id": project, "tenant_id": project, "subnets": [stable_id(&format!("{name}-subnet"))],
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
