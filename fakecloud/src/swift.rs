//! Swift (object-store v1) under `/sN/swift/v1/AUTH_<project>`: the
//! account, containers (with `X-Container-Meta-*`) and objects (ETag = MD5),
//! in real Swift's status codes and listing shapes. Objects are kept in
//! memory, each and per account bounded.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::dates::unix;
use crate::faults::Fault;
use crate::http::{bytes, empty, reply, with_header, Req, Resp};
use crate::state::Cloud;

/// Largest object taken (real Swift: 5 GiB; the demo keeps objects in memory).
pub const MAX_OBJECT: usize = 64 << 20;
/// Most bytes one account holds (an account quota, answered 413 like Swift's).
pub const MAX_ACCOUNT: u64 = 256 << 20;
/// Most entries a listing page holds (Swift's `container_listing_limit`).
const LISTING_LIMIT: usize = 10_000;

/// One site's Swift: accounts by project id.
#[derive(Default)]
pub struct Store {
    accounts: BTreeMap<String, Account>,
}

#[derive(Default)]
struct Account {
    containers: BTreeMap<String, Container>,
}

struct Container {
    meta: Vec<(String, String)>,
    created: SystemTime,
    objects: BTreeMap<String, Object>,
}

struct Object {
    data: Bytes,
    etag: String,
    content_type: String,
    meta: Vec<(String, String)>,
    modified: SystemTime,
}

impl Account {
    fn bytes_used(&self) -> u64 {
        self.containers.values().map(Container::bytes_used).sum()
    }
}

impl Container {
    fn bytes_used(&self) -> u64 {
        self.objects.values().map(|o| o.data.len() as u64).sum()
    }
}

/// Swift's error pages: a one-line HTML body.
fn swift_error(status: StatusCode, title: &str, text: &str) -> Resp {
    with_header(
        bytes(
            status,
            format!("<html><h1>{title}</h1><p>{text}</p></html>"),
        ),
        "content-type",
        "text/html; charset=UTF-8",
    )
}

fn not_found() -> Resp {
    swift_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        "The resource could not be found.",
    )
}

/// `X-Timestamp` (seconds with 5 decimals, as Swift writes them).
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{:.5}", d.as_secs_f64())
}

/// `Last-Modified`: an HTTP date.
fn http_date(t: SystemTime) -> String {
    jiff::Timestamp::from_second(unix(t))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// Listing's `last_modified`: ISO without offset, microseconds.
fn listing_date(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S.%6f")
        .to_string()
}

/// `X-<kind>-Meta-*` request headers, names lowercased without the prefix.
fn meta_of(r: &Req, kind: &str) -> Vec<(String, String)> {
    let prefix = format!("x-{kind}-meta-");
    r.headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix(&prefix)?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect()
}

fn with_meta(mut resp: Resp, kind: &str, meta: &[(String, String)]) -> Resp {
    for (k, v) in meta {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(format!("x-{kind}-meta-{k}").as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

fn with_counts(resp: Resp, prefix: &str, pairs: &[(&str, u64)]) -> Resp {
    pairs.iter().fold(resp, |r, (name, n)| {
        let mut r = r;
        if let (Ok(h), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(format!("x-{prefix}-{name}").as_bytes()),
            hyper::header::HeaderValue::from_str(&n.to_string()),
        ) {
            r.headers_mut().insert(h, v);
        }
        r
    })
}

/// A listing page: `marker` (exclusive) and `limit`, as Swift pages.
fn page<'a, T>(r: &Req, items: impl Iterator<Item = (&'a String, T)>) -> Vec<(&'a String, T)> {
    let limit = r
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(LISTING_LIMIT)
        .min(LISTING_LIMIT);
    let marker = r.query.get("marker").map(String::as_str).unwrap_or("");
    items
        .filter(|(name, _)| name.as_str() > marker)
        .take(limit)
        .collect()
}

/// `format=json` (or an `Accept: application/json`) asked for.
fn wants_json(r: &Req) -> bool {
    r.query.get("format").map(String::as_str) == Some("json")
        || r.header("accept")
            .is_some_and(|a| a.contains("application/json"))
}

/// A listing: JSON (200, `[]` when empty) or plain names (204 when empty).
fn listing(json: bool, names: Vec<&String>, entries: Vec<Value>) -> Resp {
    if json {
        let body = Value::Array(entries);
        return with_header(
            bytes(StatusCode::OK, body.to_string()),
            "content-type",
            "application/json; charset=utf-8",
        );
    }
    if names.is_empty() {
        return empty(StatusCode::NO_CONTENT);
    }
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    with_header(
        bytes(StatusCode::OK, text),
        "content-type",
        "text/plain; charset=utf-8",
    )
}

pub fn swift(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let Some(mut site) = c.site(i) else {
        return swift_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Error",
            "state lock poisoned",
        );
    };
    if r.method == Method::GET && rest == ["info"] {
        return reply(
            StatusCode::OK,
            json!({"swift": {"version": "2.34.0", "max_file_size": MAX_OBJECT,
                "container_listing_limit": LISTING_LIMIT}}),
        );
    }
    if !site.scoped(r.auth_token()) {
        return swift_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "This server could not verify that you are authorized to access the document you requested.",
        );
    }
    let Some(["v1", account]) = rest.get(..2) else {
        return not_found();
    };
    let Some(project) = account.strip_prefix("AUTH_") else {
        return not_found();
    };
    if site.vo_of(project).is_none() {
        return swift_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Access was denied to this resource.",
        );
    }
    let corrupt = c.fault(Fault::ObjectCorruptedOnRead);
    let acct = site.swift.accounts.entry(project.to_string()).or_default();
    // An object name may hold `/` (sent escaped or not): the rest, joined.
    let object = (rest.len() > 3).then(|| rest[3..].join("/"));
    match (rest.get(2), object) {
        (None, _) => account_req(acct, r),
        (Some(cont), None) => container_req(acct, r, cont),
        (Some(cont), Some(obj)) => object_req(acct, r, cont, &obj, corrupt),
    }
}

fn account_req(acct: &Account, r: &Req) -> Resp {
    let objects: u64 = acct
        .containers
        .values()
        .map(|c| c.objects.len() as u64)
        .sum();
    let counts = [
        ("container-count", acct.containers.len() as u64),
        ("object-count", objects),
        ("bytes-used", acct.bytes_used()),
    ];
    let resp = match r.method {
        Method::HEAD => empty(StatusCode::NO_CONTENT),
        Method::GET => {
            let items = page(r, acct.containers.iter());
            let names = items.iter().map(|(n, _)| *n).collect();
            let entries = items
                .iter()
                .map(|(n, c)| {
                    json!({"name": n, "count": c.objects.len(), "bytes": c.bytes_used(),
                        "last_modified": listing_date(c.created)})
                })
                .collect();
            listing(wants_json(r), names, entries)
        }
        _ => {
            return swift_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed",
                "The method is not allowed for this resource.",
            )
        }
    };
    with_counts(resp, "account", &counts)
}

fn container_req(acct: &mut Account, r: &Req, name: &str) -> Resp {
    match r.method {
        Method::PUT => {
            let meta = meta_of(r, "container");
            match acct.containers.get_mut(name) {
                Some(cont) => {
                    // An existing container: its metadata updated, 202.
                    for (k, v) in meta {
                        cont.meta.retain(|(x, _)| *x != k);
                        cont.meta.push((k, v));
                    }
                    empty(StatusCode::ACCEPTED)
                }
                None => {
                    acct.containers.insert(
                        name.to_string(),
                        Container {
                            meta,
                            created: SystemTime::now(),
                            objects: BTreeMap::new(),
                        },
                    );
                    empty(StatusCode::CREATED)
                }
            }
        }
        Method::HEAD | Method::GET => {
            let Some(cont) = acct.containers.get(name) else {
                return not_found();
            };
            let counts = [
                ("object-count", cont.objects.len() as u64),
                ("bytes-used", cont.bytes_used()),
            ];
            let resp = if r.method == Method::HEAD {
                empty(StatusCode::NO_CONTENT)
            } else {
                let items = page(r, cont.objects.iter());
                let names = items.iter().map(|(n, _)| *n).collect();
                let entries = items
                    .iter()
                    .map(|(n, o)| {
                        json!({"name": n, "hash": o.etag, "bytes": o.data.len(),
                            "content_type": o.content_type,
                            "last_modified": listing_date(o.modified)})
                    })
                    .collect();
                listing(wants_json(r), names, entries)
            };
            let resp = with_header(resp, "x-timestamp", &timestamp(cont.created));
            with_meta(
                with_counts(resp, "container", &counts),
                "container",
                &cont.meta,
            )
        }
        Method::DELETE => match acct.containers.get(name) {
            None => not_found(),
            Some(cont) if !cont.objects.is_empty() => swift_error(
                StatusCode::CONFLICT,
                "Conflict",
                "There was a conflict when trying to complete your request.",
            ),
            Some(_) => {
                acct.containers.remove(name);
                empty(StatusCode::NO_CONTENT)
            }
        },
        _ => swift_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "The method is not allowed for this resource.",
        ),
    }
}

fn object_req(acct: &mut Account, r: &Req, cont: &str, name: &str, corrupt: bool) -> Resp {
    if r.method == Method::PUT {
        return put_object(acct, r, cont, name);
    }
    let Some(container) = acct.containers.get_mut(cont) else {
        return not_found();
    };
    match r.method {
        Method::GET | Method::HEAD => {
            let Some(o) = container.objects.get(name) else {
                return not_found();
            };
            let resp = if r.method == Method::HEAD {
                empty(StatusCode::OK)
            } else if corrupt && !o.data.is_empty() {
                // Same length, one byte flipped; the headers still those of
                // the stored data.
                let mut d = o.data.to_vec();
                let mid = d.len() / 2;
                d[mid] ^= 0xff;
                bytes(StatusCode::OK, d)
            } else {
                bytes(StatusCode::OK, o.data.clone())
            };
            let resp = with_header(resp, "content-length", &o.data.len().to_string());
            let resp = with_header(resp, "etag", &o.etag);
            let resp = with_header(resp, "content-type", &o.content_type);
            let resp = with_header(resp, "last-modified", &http_date(o.modified));
            let resp = with_header(resp, "x-timestamp", &timestamp(o.modified));
            let resp = with_header(resp, "accept-ranges", "bytes");
            with_meta(resp, "object", &o.meta)
        }
        Method::DELETE => match container.objects.remove(name) {
            Some(_) => empty(StatusCode::NO_CONTENT),
            None => not_found(),
        },
        _ => swift_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "The method is not allowed for this resource.",
        ),
    }
}

fn put_object(acct: &mut Account, r: &Req, cont: &str, name: &str) -> Resp {
    let chunked = r
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"));
    match r.header("content-length").map(str::parse::<usize>) {
        // hyper has read exactly this many bytes or failed the request.
        Some(Ok(n)) if n != r.body.len() => {
            return swift_error(
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "Client Disconnect",
                "The client was disconnected during request.",
            )
        }
        Some(Ok(_)) => {}
        Some(Err(_)) => {
            return swift_error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "Invalid Content-Length",
            )
        }
        None if chunked => {}
        None => {
            return swift_error(
                StatusCode::LENGTH_REQUIRED,
                "Length Required",
                "Length Required",
            )
        }
    }
    if r.body.len() > MAX_OBJECT {
        return swift_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Entity Too Large",
            "The body of your request was too large for this server.",
        );
    }
    let replaced = acct
        .containers
        .get(cont)
        .and_then(|c| c.objects.get(name))
        .map_or(0, |o| o.data.len() as u64);
    if acct.bytes_used() - replaced + r.body.len() as u64 > MAX_ACCOUNT {
        return swift_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Entity Too Large",
            "Upload exceeds quota.",
        );
    }
    let Some(container) = acct.containers.get_mut(cont) else {
        return not_found();
    };
    let etag = format!("{:x}", Md5::digest(&r.body));
    // A client's own ETag is checked against the body, as Swift does.
    if let Some(sent) = r.header("etag") {
        if sent.trim().trim_matches('"').to_ascii_lowercase() != etag {
            return swift_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unprocessable Entity",
                "Unable to process the contained instructions",
            );
        }
    }
    let modified = SystemTime::now();
    container.objects.insert(
        name.to_string(),
        Object {
            data: r.body.clone(),
            etag: etag.clone(),
            content_type: r
                .header("content-type")
                .unwrap_or("application/octet-stream")
                .to_string(),
            meta: meta_of(r, "object"),
            modified,
        },
    );
    let resp = with_header(empty(StatusCode::CREATED), "etag", &etag);
    with_header(resp, "last-modified", &http_date(modified))
}
