//! The demo cloud's HTTP API: the subset of Keystone (OIDC federation),
//! Nova, Neutron, Glance v2, Cinder, GLUE JSON, the IS API and the accounting
//! last update the probes
//! use, in the shapes the real services answer with. Virtual site N lives
//! under `/sN/...`; the OIDC provider under `/oidc`, the IS API under `/is`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::state::{Faults, Site};
use super::{accounting, glance, infosys, keystone, nova};

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

pub(super) fn iso(t: SystemTime) -> String {
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

pub(super) fn reply(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub(super) fn with_header(mut r: Resp, name: &'static str, value: &str) -> Resp {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

pub(super) fn keystone_error(code: u16, title: &str, message: &str) -> Resp {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"error": {"code": code, "title": title, "message": message}}),
    )
}

pub(super) fn unauthorized() -> Resp {
    keystone_error(
        401,
        "Unauthorized",
        "The request you have made requires authentication.",
    )
}

pub(super) fn nova_error(code: u16, kind: &str, message: &str) -> Resp {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({kind: {"code": code, "message": message}}),
    )
}

pub(super) fn not_found() -> Resp {
    reply(
        StatusCode::NOT_FOUND,
        json!({"error": {"code": 404, "title": "Not Found", "message": "The resource could not be found."}}),
    )
}

pub(super) fn glance_error(code: u16, message: &str) -> Resp {
    // Glance answers errors as an HTML-ish text page.
    let mut r = Response::new(Full::new(Bytes::from(format!(
        "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
    ))));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_header(r, "content-type", "text/html; charset=UTF-8")
}

pub(super) struct Req {
    pub(super) method: Method,
    pub(super) path: Vec<String>,
    pub(super) query: HashMap<String, String>,
    pub(super) headers: hyper::HeaderMap,
    pub(super) body: Bytes,
}

impl Req {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub(super) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(unescape(k), unescape(v));
    }
    out
}

pub(super) fn unescape(s: &str) -> String {
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
        ["oidc", rest @ ..] => keystone::oidc(c, &r, rest),
        ["is", rest @ ..] => infosys::is_api(c, rest),
        [site, service, rest @ ..] if site.starts_with('s') => {
            let Some(i) = site[1..]
                .parse::<usize>()
                .ok()
                .filter(|i| *i < c.sites.len())
            else {
                return not_found();
            };
            match *service {
                "identity" => keystone::keystone(c, i, &r, rest),
                "compute" => nova::nova(c, i, &r, rest),
                "network" => nova::neutron(c, i, &r, rest),
                "image" => glance::glance(c, i, &r, rest).await,
                "volume" => nova::cinder(c, i, &r, rest),
                "glue.json" => infosys::glue(c, i),
                "accounting" => accounting::last_update_endpoint(c, i, rest),
                _ => not_found(),
            }
        }
        [site, "glue.json"] if site.starts_with('s') => {
            match site[1..]
                .parse::<usize>()
                .ok()
                .filter(|i| *i < c.sites.len())
            {
                Some(i) => infosys::glue(c, i),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// A scoped token of this virtual site.
pub(super) fn authed(site: &Site, r: &Req) -> bool {
    r.header("x-auth-token")
        .is_some_and(|t| site.tokens.contains(t))
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
    }
}
