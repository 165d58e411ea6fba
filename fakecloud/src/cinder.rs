//! Cinder: the volume summary (microversion 3.12) and empty volume lists.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::http::{not_found, nova_error, reply, unauthorized, Req, Resp};
use crate::state::Cloud;

pub fn cinder(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let Some(site) = c.site(i) else {
        return not_found();
    };
    if !site.scoped(r.auth_token()) {
        return unauthorized();
    }
    let mv = r.microversion("volume").unwrap_or((3, 0));
    match (&r.method, rest) {
        (&Method::GET, ["v3", project, "volumes", "summary"]) if mv >= (3, 12) => {
            if site.vo_of(project).is_none() {
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
