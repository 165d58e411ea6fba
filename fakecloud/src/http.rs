//! The leaf every service builds on: the parsed request, replies in the
//! shapes OpenStack services answer with, and their error bodies.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::{json, Value};

pub type Resp = Response<Body>;

/// An answer's body: bytes in memory, or image data read from its file a
/// chunk at a time as the client takes it (a thousand concurrent downloads
/// do not each copy their image into memory).
pub enum Body {
    Bytes(Option<Bytes>),
    Image(crate::state::ImageData, u64),
}

const CHUNK: u64 = 64 * 1024;

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        use crate::state::ImageData;
        use std::os::unix::fs::FileExt;
        let this = self.get_mut();
        let frame = match this {
            Body::Bytes(b) => b
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(Frame::data(b))),
            Body::Image(ImageData::Memory(b), at) => {
                let rest = b.slice((*at as usize).min(b.len())..);
                *at = b.len() as u64;
                (!rest.is_empty()).then(|| Ok(Frame::data(rest)))
            }
            Body::Image(ImageData::File { file, len }, at) => {
                let n = (*len - *at).min(CHUNK) as usize;
                if n == 0 {
                    None
                } else {
                    // Page-cache reads of one chunk: short enough to do inline.
                    let mut buf = vec![0u8; n];
                    match file.read_exact_at(&mut buf, *at) {
                        Ok(()) => {
                            *at += n as u64;
                            Some(Ok(Frame::data(Bytes::from(buf))))
                        }
                        Err(e) => {
                            *at = *len;
                            Some(Err(e))
                        }
                    }
                }
            }
        };
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Bytes(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Body::Image(d, at) => *at >= d.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match self {
            Body::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Body::Image(d, at) => d.len().saturating_sub(*at),
        })
    }
}

/// A request with its body read and its path split into decoded segments.
pub struct Req {
    pub method: Method,
    pub path: Vec<String>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Image data streamed in by the router instead of `body`.
    pub upload: Option<crate::state::Upload>,
}

impl Req {
    /// `raw_path` as on the wire (percent-encoded), `raw_query` without `?`.
    pub fn new(
        method: Method,
        raw_path: &str,
        raw_query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Req {
        Req {
            method,
            path: split_path(raw_path),
            query: parse_query(raw_query.unwrap_or("")),
            headers,
            body,
            upload: None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the path ends with these segments (`["auth", "projects"]`).
    pub fn path_ends_with(&self, tail: &[&str]) -> bool {
        self.path.len() >= tail.len()
            && self.path[self.path.len() - tail.len()..]
                .iter()
                .zip(tail)
                .all(|(a, b)| a == b)
    }

    /// The token the client authenticates with.
    pub fn auth_token(&self) -> Option<&str> {
        self.header("x-auth-token")
    }

    /// The `OpenStack-API-Version: <service> X.Y` microversion, if given.
    pub fn microversion(&self, service: &str) -> Option<(u32, u32)> {
        self.header("openstack-api-version")
            .and_then(|h| h.trim().strip_prefix(service))
            .and_then(|v| parse_version(v.trim()))
    }
}

/// `2.37` as `(2, 37)`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Path segments, percent-decoded, empty ones dropped.
pub fn split_path(raw: &str) -> Vec<String> {
    raw.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// An `application/x-www-form-urlencoded` query or form body.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

pub fn reply(status: StatusCode, body: Value) -> Resp {
    // `to_vec`, not `to_string`: `Display` writes every piece through
    // `fmt`'s adapter (a visible share of the demo's profile).
    let text = serde_json::to_vec(&body).unwrap_or_default();
    let r = bytes(status, Bytes::from(text));
    with_header(r, "content-type", "application/json")
}

pub fn bytes(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Body::Bytes(Some(body.into())));
    *r.status_mut() = status;
    r
}

/// Image data as an answer, streamed from where it is kept.
pub fn image_data(status: StatusCode, data: crate::state::ImageData) -> Resp {
    let mut r = Response::new(Body::Image(data, 0));
    *r.status_mut() = status;
    r
}

/// Any status, content type and body: what a test's override answers with.
pub fn raw(code: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    with_header(bytes(status(code), body), "content-type", content_type)
}

pub fn empty(status: StatusCode) -> Resp {
    bytes(status, Bytes::new())
}

pub fn with_header(mut r: Resp, name: &'static str, value: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub fn keystone_error(code: u16, title: &str, message: &str) -> Resp {
    reply(
        status(code),
        json!({"error": {"code": code, "title": title, "message": message}}),
    )
}

pub fn unauthorized() -> Resp {
    keystone_error(
        401,
        "Unauthorized",
        "The request you have made requires authentication.",
    )
}

pub fn not_found() -> Resp {
    keystone_error(404, "Not Found", "The resource could not be found.")
}

/// Nova and Cinder: `{"itemNotFound": {"code": 404, "message": ...}}`.
pub fn nova_error(code: u16, kind: &str, message: &str) -> Resp {
    reply(
        status(code),
        json!({kind: {"code": code, "message": message}}),
    )
}

/// Glance answers errors as an HTML-ish text page.
pub fn glance_error(code: u16, message: &str) -> Resp {
    let page = format!(
        "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
    );
    with_header(
        bytes(status(code), page),
        "content-type",
        "text/html; charset=UTF-8",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_unescape() {
        assert_eq!(parse_query("k=a%3Ab+c%2")["k"], "a:b c%2");
        assert_eq!(parse_query("a=1&b&&c=%41")["b"], "");
        assert_eq!(parse_query("a=1&b&&c=%41")["c"], "A");
        assert!(parse_query("").is_empty());
    }

    #[test]
    fn path_segments_are_decoded_one_by_one() {
        assert_eq!(
            split_path("/s0/image/v2/images/a%2Fb//file"),
            ["s0", "image", "v2", "images", "a/b", "file"]
        );
    }

    #[test]
    fn microversions() {
        let mut h = HeaderMap::new();
        h.insert(
            "openstack-api-version",
            HeaderValue::from_static("compute 2.47"),
        );
        let r = Req::new(Method::GET, "/", None, h, Bytes::new());
        assert_eq!(r.microversion("compute"), Some((2, 47)));
        assert!(r.path_ends_with(&[]));
        let r = Req::new(
            Method::GET,
            "/s0/identity/v3/auth/projects",
            None,
            HeaderMap::new(),
            Bytes::new(),
        );
        assert!(r.path_ends_with(&["auth", "projects"]));
        assert!(!r.path_ends_with(&["v3", "projects"]));
        assert_eq!(r.microversion("volume"), None);
        assert_eq!(parse_version("3.x"), None);
    }
}
