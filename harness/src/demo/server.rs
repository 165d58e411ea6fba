//! The demo cloud's HTTP API: the subset of Keystone (OIDC federation),
//! Nova, Neutron, Glance v2, Cinder, GLUE JSON and the IS API the probes
//! use, in the shapes the real services answer with. Virtual site N lives
//! under `/sN/...`; the OIDC provider under `/oidc`, the IS API under `/is`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use super::state::{hex, new_id, Faults, Image, Server, Site};

pub type Resp = Response<Full<Bytes>>;

/// Largest request body accepted (image uploads).
const MAX_BODY: usize = 256 * 1024 * 1024;

pub struct Cloud {
    pub base: String,
    pub access_token: String,
    pub client_secret: String,
    pub boot_delay: Duration,
    pub faults: Faults,
    pub sites: Vec<Mutex<Site>>,
    pub started: SystemTime,
}

pub const IDP: &str = "egi.eu";
pub const CLIENT_ID: &str = "fedprobe-demo";
pub const VOS: [&str; 2] = ["ops", "vo.access.egi.eu"];

fn iso(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iso_secs(secs as i64)
}

/// `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds (civil-from-days algorithm).
pub fn iso_secs(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]` into Unix seconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time
        .trim_end_matches('Z')
        .split(['+', '.'])
        .next()
        .unwrap_or("");
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm) = (t.next()??, t.next()??);
    let ss = t.next().flatten().unwrap_or(0);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn reply(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn with_header(mut r: Resp, name: &'static str, value: &str) -> Resp {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

fn keystone_error(code: u16, title: &str, message: &str) -> Resp {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"error": {"code": code, "title": title, "message": message}}),
    )
}

fn unauthorized() -> Resp {
    keystone_error(
        401,
        "Unauthorized",
        "The request you have made requires authentication.",
    )
}

fn nova_error(code: u16, kind: &str, message: &str) -> Resp {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({kind: {"code": code, "message": message}}),
    )
}

fn not_found() -> Resp {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": {"code": 404, "title": "Not Found", "message": "The resource could not be found."}}),
    )
}

fn glance_error(code: u16, message: &str) -> Resp {
    // Glance answers errors as an HTML-ish text page.
    let mut r = Response::new(Full::new(Bytes::from(format!(
        "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
    ))));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_header(r, "content-type", "text/html; charset=UTF-8")
}

struct Req {
    method: Method,
    path: Vec<String>,
    query: HashMap<String, String>,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(unescape(k), unescape(v));
    }
    out
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex_at = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex_at(i + 1), hex_at(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn handle(
    cloud: Arc<Cloud>,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(empty(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    let path: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(unescape)
        .collect();
    let r = Req {
        method: parts.method,
        path,
        query: parse_query(parts.uri.query()),
        headers: parts.headers,
        body,
    };
    Ok(route(&cloud, r).await)
}

async fn route(c: &Cloud, r: Req) -> Resp {
    let p: Vec<&str> = r.path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["oidc", rest @ ..] => oidc(c, &r, rest),
        ["is", rest @ ..] => is_api(c, rest),
        [site, service, rest @ ..] if site.starts_with('s') => {
            let Some(i) = site[1..]
                .parse::<usize>()
                .ok()
                .filter(|i| *i < c.sites.len())
            else {
                return not_found();
            };
            match *service {
                "identity" => keystone(c, i, &r, rest),
                "compute" => nova(c, i, &r, rest),
                "network" => neutron(c, i, &r, rest),
                "image" => glance(c, i, &r, rest).await,
                "volume" => cinder(c, i, &r, rest),
                "glue.json" => glue(c, i),
                _ => not_found(),
            }
        }
        [site, "glue.json"] if site.starts_with('s') => {
            match site[1..]
                .parse::<usize>()
                .ok()
                .filter(|i| *i < c.sites.len())
            {
                Some(i) => glue(c, i),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

// ---------------------------------------------------------------- OIDC

fn oidc(c: &Cloud, r: &Req, rest: &[&str]) -> Resp {
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
        (&Method::POST, ["token"]) => {
            let form = parse_query(std::str::from_utf8(&r.body).ok());
            let basic = r
                .header("authorization")
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| base64_decode(b.trim()));
            let (id, secret) = match basic.as_deref().and_then(|s| s.split_once(':')) {
                Some((i, s)) => (i.to_string(), s.to_string()),
                None => (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned().unwrap_or_default(),
                ),
            };
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
        _ => not_found(),
    }
}

fn base64_decode(s: &str) -> Option<String> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for ch in s.bytes().filter(|b| *b != b'=') {
        let v = T.iter().position(|x| *x == ch)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

// ------------------------------------------------------------ Keystone

fn catalog(c: &Cloud, i: usize, project: &str) -> Value {
    let b = format!("{}/s{i}", c.base);
    let svc = |ty: &str, name: &str, url: String| {
        json!({
            "type": ty, "name": name, "id": super::state::stable_id(&format!("{i}{ty}")),
            "endpoints": (["public", "internal"].iter().map(|iface| json!({
                "id": super::state::stable_id(&format!("{i}{ty}{iface}")),
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
    ])
}

fn token_body(c: &Cloud, i: usize, site: &Site, methods: &[&str], project: Option<&str>) -> Value {
    let now = SystemTime::now();
    let mut t = json!({
        "methods": methods,
        "user": {
            "id": super::state::stable_id("monitoring-user"),
            "name": "monitoring@egi.eu",
            "domain": {"id": "Federated", "name": "Federated"},
            "OS-FEDERATION": {
                "identity_provider": {"id": IDP},
                "protocol": {"id": "openid"},
                "groups": [{"id": super::state::stable_id("ops-group")}]
            }
        },
        "audit_ids": [new_id()[..22].to_string()],
        "issued_at": iso(now),
        "expires_at": iso(now + Duration::from_secs(3600)),
    });
    if let Some(pid) = project {
        let name = VOS
            .iter()
            .find(|v| site.project_id(v) == pid)
            .copied()
            .unwrap_or("ops");
        t["project"] =
            json!({"id": pid, "name": name, "domain": {"id": "default", "name": "Default"}});
        t["roles"] = json!([{"id": super::state::stable_id("member"), "name": "member"}]);
        t["catalog"] = catalog(c, i, pid);
        t["is_domain"] = json!(false);
    }
    json!({ "token": t })
}

fn keystone(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let Ok(mut site) = c.sites[i].lock() else {
        return keystone_error(500, "Internal Server Error", "state lock poisoned");
    };
    let base = format!("{}/s{i}/identity", c.base);
    match (&r.method, rest) {
        (&Method::GET, []) => reply(
            StatusCode::MULTIPLE_CHOICES,
            json!({"versions": {"values": [{"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": format!("{base}/v3/")}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}]}}),
        ),
        (&Method::GET, ["v3"]) => reply(
            StatusCode::OK,
            json!({"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": format!("{base}/v3/")}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}),
        ),
        (
            &Method::POST,
            ["v3", "OS-FEDERATION", "identity_providers", idp, "protocols", proto, "auth"],
        ) => {
            if *idp != IDP {
                return keystone_error(
                    404,
                    "Not Found",
                    &format!("Could not find Identity Provider: {idp}."),
                );
            }
            if *proto != "openid" {
                return keystone_error(
                    404,
                    "Not Found",
                    &format!(
                        "Could not find federated protocol {proto} for Identity Provider: {idp}."
                    ),
                );
            }
            let bearer = r
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "));
            if c.faults.bad_token || bearer.map(str::trim) != Some(c.access_token.as_str()) {
                let resp = unauthorized();
                return with_header(resp, "www-authenticate", "Bearer error=\"invalid_token\"");
            }
            let tok = format!("gAAAAA{}", hex(&Md5::digest(new_id().as_bytes())));
            site.unscoped.insert(tok.clone());
            let body = token_body(c, i, &site, &["mapped"], None);
            with_header(reply(StatusCode::CREATED, body), "x-subject-token", &tok)
        }
        (&Method::GET, ["v3", "auth", "projects"]) => {
            let ok = r
                .header("x-auth-token")
                .is_some_and(|t| site.unscoped.contains(t) || site.tokens.contains(t));
            if !ok {
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
        (&Method::POST, ["v3", "auth", "tokens"]) => {
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
            if !site.unscoped.contains(from) && !site.tokens.contains(from) {
                return keystone_error(404, "Not Found", "Could not find token.");
            }
            let Some(pid) = auth["scope"]["project"]["id"].as_str() else {
                let b = token_body(c, i, &site, &["token"], None);
                return with_header(reply(StatusCode::CREATED, b), "x-subject-token", from);
            };
            if !VOS.iter().any(|v| site.project_id(v) == pid) {
                return unauthorized();
            }
            let tok = format!("gAAAAA{}", hex(&Md5::digest(new_id().as_bytes())));
            site.tokens.insert(tok.clone());
            let b = token_body(c, i, &site, &["token", "mapped"], Some(pid));
            with_header(reply(StatusCode::CREATED, b), "x-subject-token", &tok)
        }
        (&Method::GET, ["v3", "auth", "catalog"]) => {
            let auth = r.header("x-auth-token").unwrap_or("");
            if !site.tokens.contains(auth) {
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
            let auth = r.header("x-auth-token").unwrap_or("");
            let subject = r.header("x-subject-token").unwrap_or("");
            if !site.tokens.contains(auth) && !site.unscoped.contains(auth) {
                return unauthorized();
            }
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

/// The project a scoped token belongs to: the demo scopes all to a VO.
fn authed(site: &Site, r: &Req) -> bool {
    r.header("x-auth-token")
        .is_some_and(|t| site.tokens.contains(t))
}

// ---------------------------------------------------------------- Nova

const FLAVORS: [(&str, &str, u32, u32, u32); 3] = [
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
        Value::from(iso(s.created_at + s.boot).trim_end_matches('Z').to_string() + ".000000")
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
        "OS-SRV-USG:terminated_at": s.deleted.map(|(_, t)| iso(t)),
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

fn nova(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
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

fn secs_of(t: SystemTime) -> i64 {
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
        .unwrap_or(wall_now);
    let mut rows = Vec::new();
    let (mut hours_t, mut vcpu_t, mut mem_t, mut disk_t) = (0.0, 0.0, 0.0, 0.0);
    for s in site
        .server_order
        .iter()
        .filter_map(|id| site.servers.get(id))
    {
        let began = secs_of(s.created_at);
        let ended = s.deleted.map(|(_, t)| secs_of(t));
        if began > end || ended.is_some_and(|e| e < start) {
            continue;
        }
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
        let state = match s.status(now) {
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

// ------------------------------------------------------------- Neutron

fn neutron(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
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

// -------------------------------------------------------------- Glance

fn image_json(c: &Cloud, i: usize, img: &Image, now: Instant) -> Value {
    let status = img.current_status(now);
    let mut v = json!({
        "id": img.id, "name": img.name, "status": status, "visibility": img.visibility,
        "protected": img.protected, "os_hidden": false, "owner": img.owner,
        "disk_format": img.disk_format, "container_format": img.container_format,
        "checksum": if status == "active" { img.checksum.clone() } else { None },
        "os_hash_algo": if status == "active" { Some("sha512") } else { None },
        "os_hash_value": if status == "active" { img.sha512.clone() } else { None },
        "size": if status == "active" { img.data.as_ref().map(|d| d.len()) } else { None },
        "virtual_size": null, "min_disk": 0, "min_ram": 0, "tags": [],
        "created_at": iso(img.created_at), "updated_at": iso(SystemTime::now()),
        "self": format!("/v2/images/{}", img.id), "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
        "direct_url": null,
    });
    if img.data.is_some() {
        v["stores"] = json!("fs");
    }
    let _ = (c, i);
    if let Value::Object(m) = &mut v {
        for (k, val) in &img.props {
            m.insert(k.clone(), val.clone());
        }
    }
    v
}

fn store_data(c: &Cloud, img: &mut Image, data: Bytes) {
    let good = hex(&Md5::digest(&data));
    img.checksum = Some(if c.faults.wrong_checksum {
        hex(&Md5::digest(format!("corrupted-{good}").as_bytes()))
    } else {
        good
    });
    img.sha512 = Some(hex(&sha2::Sha512::digest(&data)));
    img.data = Some(data.to_vec());
}

async fn glance(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let base = format!("{}/s{i}/image", c.base);
    if r.method == Method::GET && rest.is_empty() {
        return reply(
            StatusCode::MULTIPLE_CHOICES,
            json!({"versions": [{"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2/")}]},
                {"id": "v2.9", "status": "SUPPORTED", "links": [{"rel": "self", "href": format!("{base}/v2/")}]}]}),
        );
    }
    let hangs = c.faults.hang
        && r.method == Method::PUT
        && matches!(
            rest,
            ["v2", "images", _, "file"] | ["v2", "images", _, "stage"]
        );
    if hangs {
        // Never answer; the client's deadline is what ends this.
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        return glance_error(504, "Gateway Timeout");
    }
    let Ok(mut site) = c.sites[i].lock() else {
        return glance_error(500, "state lock poisoned");
    };
    if !authed(&site, r) {
        return glance_error(401, "This server could not verify that you are authorized to access the document you requested.");
    }
    let now = Instant::now();
    let owner = site.project_id("ops");
    match (&r.method, rest) {
        (&Method::GET, ["v2", "info", "import"]) => reply(
            StatusCode::OK,
            json!({"import-methods": {"description": "Import methods available.", "type": "array",
                "value": ["glance-direct", "web-download", "copy-image"]}}),
        ),
        (&Method::GET, ["v2", "images"]) => {
            // Glance filters on any field or property: `?status=active&os_distro=ubuntu`.
            let filters: Vec<(&String, &String)> = r
                .query
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "limit" | "marker" | "sort" | "sort_key" | "sort_dir"
                    )
                })
                .collect();
            let list: Vec<Value> = site
                .image_order
                .iter()
                .filter_map(|id| site.images.get(id))
                .map(|img| image_json(c, i, img, now))
                .filter(|v| {
                    filters.iter().all(|(k, want)| match &v[k.as_str()] {
                        Value::String(x) => x == *want,
                        Value::Null => false,
                        other => {
                            *other == serde_json::from_str::<Value>(want).unwrap_or(Value::Null)
                        }
                    })
                })
                .collect();
            reply(
                StatusCode::OK,
                json!({"images": list, "first": "/v2/images", "schema": "/v2/schemas/images"}),
            )
        }
        (&Method::POST, ["v2", "images"]) => {
            let Some(Value::Object(body)) = r.json() else {
                return glance_error(400, "Body malformed");
            };
            let mut props = serde_json::Map::new();
            for (k, v) in &body {
                if !matches!(
                    k.as_str(),
                    "name"
                        | "disk_format"
                        | "container_format"
                        | "visibility"
                        | "protected"
                        | "id"
                        | "tags"
                        | "min_disk"
                        | "min_ram"
                ) {
                    if !v.is_string() {
                        return glance_error(400, &format!("Provided object does not match schema 'image': {v} is not of type 'string'"));
                    }
                    props.insert(k.clone(), v.clone());
                }
            }
            let id = new_id();
            let img = Image {
                id: id.clone(),
                name: body
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                disk_format: body
                    .get("disk_format")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                container_format: body
                    .get("container_format")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                visibility: body
                    .get("visibility")
                    .and_then(Value::as_str)
                    .unwrap_or("shared")
                    .to_string(),
                protected: body
                    .get("protected")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                props,
                data: None,
                checksum: None,
                sha512: None,
                created_at: SystemTime::now(),
                status: "queued",
                importing_since: None,
                owner,
            };
            let v = image_json(c, i, &img, now);
            site.images.insert(id.clone(), img);
            site.image_order.push(id.clone());
            with_header(
                reply(StatusCode::CREATED, v),
                "location",
                &format!("{base}/v2/images/{id}"),
            )
        }
        (&Method::GET, ["v2", "images", id]) => match site.images.get(*id) {
            Some(img) => reply(StatusCode::OK, image_json(c, i, img, now)),
            None => glance_error(404, &format!("No image found with ID {id}")),
        },
        (&Method::PUT, ["v2", "images", id, "file"])
        | (&Method::PUT, ["v2", "images", id, "stage"]) => {
            let stage = rest[3] == "stage";
            let Some(img) = site.images.get_mut(*id) else {
                return glance_error(404, &format!("No image found with ID {id}"));
            };
            if img.status != "queued" {
                return glance_error(
                    409,
                    &format!(
                        "Image status transition from {} to saving is not allowed",
                        img.status
                    ),
                );
            }
            if !stage && (img.disk_format.is_none() || img.container_format.is_none()) {
                return glance_error(
                    400,
                    "Properties disk_format, container_format must be set prior to saving data.",
                );
            }
            store_data(c, img, r.body.clone());
            img.status = if stage { "uploading" } else { "active" };
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["v2", "images", id, "import"]) => {
            let method = r
                .json()
                .and_then(|b| b["method"]["name"].as_str().map(str::to_string));
            let Some(img) = site.images.get_mut(*id) else {
                return glance_error(404, &format!("No image found with ID {id}"));
            };
            match method.as_deref() {
                Some("glance-direct") if img.status == "uploading" => {
                    img.importing_since = Some(now);
                    img.status = "active";
                    empty(StatusCode::ACCEPTED)
                }
                Some("glance-direct") => glance_error(
                    409,
                    "Image needs to be staged before glance-direct method can be used",
                ),
                Some(m) => glance_error(
                    400,
                    &format!("Import method {m} is not supported by this demo"),
                ),
                None => glance_error(400, "Body malformed: method.name required"),
            }
        }
        (&Method::GET, ["v2", "images", id, "file"]) => match site.images.get(*id) {
            Some(img) => match &img.data {
                Some(d) if img.current_status(now) == "active" => {
                    let mut resp = Response::new(Full::new(Bytes::from(d.clone())));
                    *resp.status_mut() = StatusCode::OK;
                    let resp = with_header(resp, "content-type", "application/octet-stream");
                    match &img.checksum {
                        Some(sum) => with_header(resp, "content-md5", sum),
                        None => resp,
                    }
                }
                _ => empty(StatusCode::NO_CONTENT),
            },
            None => glance_error(404, &format!("No image found with ID {id}")),
        },
        (&Method::DELETE, ["v2", "images", id]) => match site.images.get(*id) {
            Some(img) if img.protected => glance_error(
                403,
                &format!("Image {id} is protected and cannot be deleted."),
            ),
            Some(_) => {
                site.images.remove(*id);
                site.image_order.retain(|x| x != id);
                empty(StatusCode::NO_CONTENT)
            }
            None => glance_error(404, &format!("No image found with ID {id}")),
        },
        _ => glance_error(404, "The resource could not be found."),
    }
}

// -------------------------------------------------------------- Cinder

fn cinder(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
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

// ---------------------------------------------------------- GLUE / IS

fn glue_creation(c: &Cloud) -> SystemTime {
    if c.faults.stale_glue {
        SystemTime::now() - Duration::from_secs(2 * 86_400)
    } else {
        c.started
    }
}

fn glue(c: &Cloud, i: usize) -> Resp {
    let Ok(site) = c.sites[i].lock() else {
        return not_found();
    };
    let keystone = format!("{}/s{i}/identity/v3", c.base);
    let created = iso(glue_creation(c));
    let svc_id = format!("{keystone}_cloud.compute");
    let ep_id = format!("{keystone}_OpenStack_v3");
    let obj = |id: &str, name: &str| json!({"ID": id, "Name": name, "CreationTime": created, "Validity": 43200, "OtherInfo": {}, "Associations": {}});
    let mut svc = obj(&svc_id, &format!("Cloud Compute service at {}", site.name));
    svc["Type"] = json!("org.cloud.iaas");
    svc["QualityLevel"] = json!("production");
    svc["StatusInfo"] = json!("");
    svc["Capability"] = json!(["executionmanagement.dynamicvmdeploy", "security.accounting"]);
    svc["TotalVM"] = json!(site
        .servers
        .values()
        .filter(|s| s.deleted.is_none())
        .count());
    svc["OtherInfo"] = json!({"gocdb_id": format!("{}G0", 1000 + i), "site_name": site.name});
    svc["Associations"] = json!({"AdminDomain": [site.name]});
    let mut ep = obj(&ep_id, "OpenStack Keystone v3");
    for (k, v) in [
        ("URL", json!(keystone)),
        ("InterfaceName", json!("org.openstack.nova")),
        ("InterfaceVersion", json!("v2.1")),
        ("HealthState", json!("ok")),
        ("ServingState", json!("production")),
        ("Technology", json!("webservice")),
        ("Implementor", json!("OpenStack Foundation")),
        ("ImplementationName", json!("OpenStack Nova")),
        ("ImplementationVersion", json!("30.0.0")),
        ("Authentication", json!("oidc")),
        ("IssuerCA", json!("")),
        ("TrustedCA", json!([])),
        ("Associations", json!({"CloudComputingService": [svc_id]})),
    ] {
        ep[k] = v;
    }
    let mut shares = Vec::new();
    let mut policies = Vec::new();
    for vo in VOS {
        let pid = site.project_id(vo);
        let sid = format!("{ep_id}_share_{vo}_{pid}");
        let mut sh = obj(&sid, vo);
        for (k, v) in [
            ("ProjectID", json!(pid)),
            ("InstanceMaxCPU", json!(2)),
            ("InstanceMaxRAM", json!(4096)),
            ("SLA", json!(null)),
            ("TotalVM", json!(0)),
            ("NetworkInfo", json!("private")),
            ("DefaultNetworkType", json!("private")),
            ("PublicNetworkName", json!("public")),
            (
                "OtherInfo",
                json!({"project_name": vo, "project_domain_name": "default", "quotas": {"instances": 10, "cores": 20}}),
            ),
            ("Associations", json!({"CloudComputingService": [svc_id]})),
        ] {
            sh[k] = v;
        }
        let mut pol = obj(&format!("{sid}_Policy"), &format!("Policy for {vo}"));
        pol["Rule"] = json!([format!("VO:{vo}")]);
        pol["Scheme"] = json!("org.glite.standard");
        pol["Associations"] = json!({"Share": [sid], "PolicyUserDomain": vo});
        shares.push(sh);
        policies.push(pol);
    }
    let images: Vec<Value> = site
        .image_order
        .iter()
        .filter_map(|id| site.images.get(id))
        .filter(|img| img.visibility == "public")
        .map(|img| {
            let mut o = obj(&img.id, &img.name);
            o["MarketplaceURL"] = json!("https://registry.egi.eu/egi_vm_images/ubuntu");
            o["OSPlatform"] = json!("x86_64");
            o["OSName"] = json!("ubuntu");
            o["OSVersion"] = json!("22.04");
            o["Description"] = json!(img.name);
            o["AccessInfo"] = json!("none");
            o["OtherInfo"] = img
                .props
                .get("APPLIANCE_ATTRIBUTES")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(json!({}));
            o["Associations"] = json!({"CloudComputingService": [svc_id]});
            o
        })
        .collect();
    let flavors: Vec<Value> = FLAVORS
        .iter()
        .map(|f| {
            let mut o = obj(f.0, f.1);
            o["Platform"] = json!("amd64");
            o["CPU"] = json!(f.2);
            o["RAM"] = json!(f.3);
            o["Disk"] = json!(f.4);
            o["NetworkIn"] = json!("undefined");
            o["NetworkOut"] = json!(true);
            o["Associations"] = json!({"CloudComputingService": [svc_id]});
            o
        })
        .collect();
    let mut mgr = obj(
        &format!("{keystone}_cloud.compute_manager"),
        "Cloud Compute Manager",
    );
    mgr["Associations"] = json!({"CloudComputingService": [svc_id]});
    reply(
        StatusCode::OK,
        json!({
            "CloudComputingService": [svc],
            "CloudComputingManager": [mgr],
            "CloudComputingEndpoint": [ep],
            "CloudComputingImage": images,
            "CloudComputingInstanceType": flavors,
            "CloudComputingVirtualAccelerator": [],
            "Share": shares,
            "MappingPolicy": policies,
            "AccessPolicy": []
        }),
    )
}

fn is_site(c: &Cloud, i: usize, with_projects: bool) -> Option<Value> {
    let site = c.sites[i].lock().ok()?;
    let mut v = json!({"id": format!("{}G0", 1000 + i), "name": site.name,
        "url": format!("{}/s{i}/identity/v3", c.base), "state": "", "hostname": "127.0.0.1"});
    if with_projects {
        v["projects"] = VOS
            .iter()
            .map(|vo| json!({"id": site.project_id(vo), "name": vo}))
            .collect();
    }
    Some(v)
}

fn is_images(c: &Cloud, i: usize) -> Value {
    let Ok(site) = c.sites[i].lock() else {
        return json!([]);
    };
    site.image_order
        .iter()
        .filter_map(|id| site.images.get(id))
        .filter(|img| img.visibility == "public")
        .map(|img| {
            let attrs: Value = img
                .props
                .get("APPLIANCE_ATTRIBUTES")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(json!({}));
            json!({"appdb_id": attrs["eu.egi.cloud.image_ref"], "id": img.id, "name": img.name,
                "mpuri": "https://registry.egi.eu/egi_vm_images/ubuntu", "version": attrs["eu.egi.cloud.tag"],
                "site": site.name})
        })
        .collect()
}

fn is_api(c: &Cloud, rest: &[&str]) -> Resp {
    // Stale publications drop out of the information system.
    let visible = !c.faults.stale_glue;
    let find = |name: &str| {
        c.sites
            .iter()
            .position(|s| s.lock().map(|s| s.name == name).unwrap_or(false))
            .filter(|_| visible)
    };
    let nf = |what: &str| {
        reply(
            StatusCode::NOT_FOUND,
            json!({"detail": format!("{what} not found")}),
        )
    };
    match rest {
        ["sites"] => {
            let list: Vec<Value> = if visible {
                (0..c.sites.len())
                    .filter_map(|i| is_site(c, i, true))
                    .collect()
            } else {
                vec![]
            };
            reply(StatusCode::OK, json!(list))
        }
        ["site", name] => match find(name).and_then(|i| is_site(c, i, false)) {
            Some(v) => reply(StatusCode::OK, v),
            None => nf("Site"),
        },
        ["site", name, "projects"] => match find(name).and_then(|i| is_site(c, i, true)) {
            Some(v) => reply(StatusCode::OK, v["projects"].clone()),
            None => nf("Site"),
        },
        ["site", name, vo, "project"] => match find(name).and_then(|i| is_site(c, i, true)) {
            Some(v) => match v["projects"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == *vo))
            {
                Some(p) => reply(StatusCode::OK, p.clone()),
                None => nf("VO"),
            },
            None => nf("Site"),
        },
        ["site", name, vo, "images"] => match find(name) {
            Some(i) if VOS.contains(vo) => reply(StatusCode::OK, is_images(c, i)),
            Some(_) => nf("VO"),
            None => nf("Site"),
        },
        ["images"] => {
            let all: Vec<Value> = if visible {
                (0..c.sites.len())
                    .flat_map(|i| is_images(c, i).as_array().cloned().unwrap_or_default())
                    .collect()
            } else {
                vec![]
            };
            reply(StatusCode::OK, json!(all))
        }
        ["vos"] => reply(StatusCode::OK, json!(VOS)),
        _ => nf("Resource"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_secs(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_iso("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_iso("2023-11-14T22:13:20.123456"), Some(1_700_000_000));
        assert_eq!(parse_iso("2024-02-29T00:00:00+00:00"), Some(1_709_164_800));
    }

    #[test]
    fn query_unescape() {
        assert_eq!(unescape("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(base64_decode("YTpi").as_deref(), Some("a:b"));
    }
}
