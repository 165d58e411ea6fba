//! The OIDC provider (discovery, client-credentials and refresh grants) and
//! Keystone v3 (OS-FEDERATION, projects, scoped tokens, catalog).

use std::time::{Duration, SystemTime};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hyper::{Method, StatusCode};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::dates::iso;
use crate::faults::Fault;
use crate::fixtures::{new_id, stable_id, CLIENT_ID, IDP, VOS};
use crate::http::{
    keystone_error, not_found, parse_query, reply, unauthorized, with_header, Req, Resp,
};
use crate::state::{Cloud, Site};

pub fn oidc(c: &Cloud, r: &Req, rest: &[&str]) -> Resp {
    let issuer = format!("{}/oidc", c.base);
    match (&r.method, rest) {
        (&Method::GET, [".well-known", "openid-configuration"]) => reply(
            StatusCode::OK,
            json!({
                "issuer": issuer,
                "token_endpoint": format!("{issuer}/token"),
                "jwks_uri": format!("{issuer}/jwks"),
                "authorization_endpoint": format!("{issuer}/auth"),
                "grant_types_supported": ["client_credentials", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "email", "profile", "eduperson_entitlement"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"]
            }),
        ),
        (&Method::GET, ["jwks"]) => reply(StatusCode::OK, json!({"keys": []})),
        (&Method::POST, ["token"]) => token_grant(c, r),
        _ => not_found(),
    }
}

fn token_grant(c: &Cloud, r: &Req) -> Resp {
    let form = parse_query(std::str::from_utf8(&r.body).unwrap_or(""));
    let (id, secret) = r
        .header("authorization")
        .and_then(basic_credentials)
        .unwrap_or_else(|| {
            (
                form.get("client_id").cloned().unwrap_or_default(),
                form.get("client_secret").cloned().unwrap_or_default(),
            )
        });
    if id != CLIENT_ID || secret != c.client_secret {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") | Some("refresh_token") => reply(
            StatusCode::OK,
            json!({
                "access_token": c.access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": form.get("scope").cloned().unwrap_or_else(|| "openid".into())
            }),
        ),
        _ => reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type", "error_description": "unsupported grant_type"}),
        ),
    }
}

/// `Basic base64(id:secret)` as `(id, secret)`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let b = header.strip_prefix("Basic ")?.trim();
    // As lenient as servers are: padding optional.
    let engine = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let text = String::from_utf8(engine.decode(b).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn catalog(c: &Cloud, i: usize, project: &str) -> Value {
    let b = c.site_base(i);
    let svc = |ty: &str, name: &str, url: String| {
        json!({
            "type": ty, "name": name, "id": stable_id(&format!("{i}{ty}")),
            "endpoints": (["public", "internal"].iter().map(|iface| json!({
                "id": stable_id(&format!("{i}{ty}{iface}")),
                "interface": iface, "region": "RegionOne", "region_id": "RegionOne", "url": url
            })).collect::<Vec<_>>())
        })
    };
    json!([
        svc("identity", "keystone", format!("{b}/identity/v3")),
        svc("compute", "nova", format!("{b}/compute/v2.1")),
        svc("image", "glance", format!("{b}/image")),
        svc("network", "neutron", format!("{b}/network")),
        svc(
            "block-storage",
            "cinder",
            format!("{b}/volume/v3/{project}")
        ),
        svc("volumev3", "cinderv3", format!("{b}/volume/v3/{project}")),
        svc(
            "object-store",
            "swift",
            format!("{b}/swift/v1/AUTH_{project}")
        ),
    ])
}

fn token_body(c: &Cloud, i: usize, site: &Site, methods: &[&str], project: Option<&str>) -> Value {
    let now = SystemTime::now();
    let mut t = json!({
        "methods": methods,
        "user": {
            "id": stable_id("monitoring-user"),
            "name": "monitoring@egi.eu",
            "domain": {"id": "Federated", "name": "Federated"},
            "OS-FEDERATION": {
                "identity_provider": {"id": IDP},
                "protocol": {"id": "openid"},
                "groups": [{"id": stable_id("ops-group")}]
            }
        },
        "audit_ids": [new_id()[..22].to_string()],
        "issued_at": iso(now),
        "expires_at": iso(now + Duration::from_secs(3600)),
    });
    if let Some(pid) = project {
        let name = site.vo_of(pid).unwrap_or("ops");
        t["project"] =
            json!({"id": pid, "name": name, "domain": {"id": "default", "name": "Default"}});
        t["roles"] = json!([{"id": stable_id("member"), "name": "member"}]);
        t["catalog"] = catalog(c, i, pid);
        t["is_domain"] = json!(false);
    }
    json!({ "token": t })
}

fn new_token() -> String {
    format!("gAAAAA{:x}", Md5::digest(new_id().as_bytes()))
}

fn version(base: &str) -> Value {
    json!({"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]})
}

pub fn keystone(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let Some(mut site) = c.site(i) else {
        return keystone_error(500, "Internal Server Error", "state lock poisoned");
    };
    let base = format!("{}/identity", c.site_base(i));
    match (&r.method, rest) {
        (&Method::GET, []) => reply(
            StatusCode::MULTIPLE_CHOICES,
            json!({"versions": {"values": [version(&base)]}}),
        ),
        (&Method::GET, ["v3"]) => reply(StatusCode::OK, json!({"version": version(&base)})),
        (
            &Method::POST,
            ["v3", "OS-FEDERATION", "identity_providers", idp, "protocols", proto, "auth"],
        ) => federated_auth(c, i, &mut site, r, idp, proto),
        (&Method::GET, ["v3", "auth", "projects"]) => {
            if !site.known(r.auth_token()) {
                return unauthorized();
            }
            let projects: Vec<Value> = VOS
                .iter()
                .map(|v| {
                    let id = site.project_id(v);
                    json!({"id": id, "name": v, "domain_id": "default", "enabled": true, "is_domain": false, "options": {}, "tags": [],
                        "parent_id": "default", "description": format!("VO {v}"),
                        "links": {"self": format!("{base}/v3/projects/{id}")}})
                })
                .collect();
            reply(
                StatusCode::OK,
                json!({"projects": projects, "links": {"self": format!("{base}/v3/auth/projects"), "previous": null, "next": null}}),
            )
        }
        (&Method::POST, ["v3", "auth", "tokens"]) => scope_token(c, i, &mut site, r),
        (&Method::GET, ["v3", "auth", "catalog"]) => {
            if !site.scoped(r.auth_token()) {
                return keystone_error(
                    403,
                    "Forbidden",
                    "A project-scoped token is required to produce a service catalog.",
                );
            }
            let pid = site.project_id("ops");
            reply(
                StatusCode::OK,
                json!({"catalog": catalog(c, i, &pid),
                "links": {"self": format!("{base}/v3/auth/catalog"), "previous": null, "next": null}}),
            )
        }
        (&Method::GET, ["v3", "auth", "tokens"]) | (&Method::HEAD, ["v3", "auth", "tokens"]) => {
            if !site.known(r.auth_token()) {
                return unauthorized();
            }
            let subject = r.header("x-subject-token").unwrap_or("");
            if site.tokens.contains(subject) {
                let pid = site.project_id("ops");
                let b = token_body(c, i, &site, &["token", "mapped"], Some(&pid));
                with_header(reply(StatusCode::OK, b), "x-subject-token", subject)
            } else if site.unscoped.contains(subject) {
                let b = token_body(c, i, &site, &["mapped"], None);
                with_header(reply(StatusCode::OK, b), "x-subject-token", subject)
            } else {
                keystone_error(404, "Not Found", "Could not find token.")
            }
        }
        _ => not_found(),
    }
}

/// `POST .../OS-FEDERATION/identity_providers/{idp}/protocols/{proto}/auth`
/// with the OIDC access token as bearer: an unscoped token.
fn federated_auth(c: &Cloud, i: usize, site: &mut Site, r: &Req, idp: &str, proto: &str) -> Resp {
    if idp != IDP {
        return keystone_error(
            404,
            "Not Found",
            &format!("Could not find Identity Provider: {idp}."),
        );
    }
    if proto != "openid" {
        return keystone_error(
            404,
            "Not Found",
            &format!("Could not find federated protocol {proto} for Identity Provider: {idp}."),
        );
    }
    let bearer = r
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "));
    if c.fault(Fault::BadToken) || bearer.map(str::trim) != Some(c.access_token.as_str()) {
        return with_header(
            unauthorized(),
            "www-authenticate",
            "Bearer error=\"invalid_token\"",
        );
    }
    let tok = new_token();
    site.unscoped.insert(tok.clone());
    let body = token_body(c, i, site, &["mapped"], None);
    with_header(reply(StatusCode::CREATED, body), "x-subject-token", &tok)
}

/// `POST /v3/auth/tokens` with the token method: rescoping to a project.
fn scope_token(c: &Cloud, i: usize, site: &mut Site, r: &Req) -> Resp {
    let Some(body) = r.json() else {
        return keystone_error(400, "Bad Request", "Malformed request body");
    };
    let auth = &body["auth"];
    let methods = auth["identity"]["methods"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if methods.first().and_then(Value::as_str) != Some("token") {
        return unauthorized();
    }
    let from = auth["identity"]["token"]["id"].as_str().unwrap_or("");
    if !site.known(Some(from)) {
        return keystone_error(404, "Not Found", "Could not find token.");
    }
    let Some(pid) = auth["scope"]["project"]["id"].as_str() else {
        let b = token_body(c, i, site, &["token"], None);
        return with_header(reply(StatusCode::CREATED, b), "x-subject-token", from);
    };
    if site.vo_of(pid).is_none() {
        return unauthorized();
    }
    let tok = new_token();
    site.tokens.insert(tok.clone());
    let b = token_body(c, i, site, &["token", "mapped"], Some(pid));
    with_header(reply(StatusCode::CREATED, b), "x-subject-token", &tok)
}

#[cfg(test)]
mod tests {
    use super::basic_credentials;

    #[test]
    fn basic_auth_decoding() {
        assert_eq!(
            basic_credentials("Basic YTpi"),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(
            basic_credentials("Basic YTpiYw"),
            Some(("a".into(), "bc".into()))
        );
        assert_eq!(basic_credentials("Basic !!"), None);
        assert_eq!(basic_credentials("Bearer YTpi"), None);
    }
}
