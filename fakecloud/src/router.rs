//! Which service answers which path. Virtual site N lives under `/sN/...`;
//! the OIDC provider under `/oidc`, the IS API under `/is`, the orchestrator
//! (Infrastructure Manager) under `/im`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::http::{empty, not_found, split_path, Req, Resp};
use crate::state::{Cloud, Upload, UploadError};
use crate::{accounting, cinder, glance, im, infosys, keystone, neutron, nova, swift};

/// Largest request body accepted (image uploads).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// A test's hook, asked first: `Some` answers instead of the emulation.
pub type Override = Arc<dyn Fn(&Req) -> Option<Resp> + Send + Sync>;

pub async fn handle(
    cloud: Arc<Cloud>,
    hook: Option<Override>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let (body, upload) = if parts.method == Method::PUT && is_image_data(parts.uri.path()) {
        match Upload::spool(body, MAX_BODY).await {
            Ok(u) => (Bytes::new(), Some(u)),
            Err(UploadError::TooLarge) => return Ok(empty(StatusCode::PAYLOAD_TOO_LARGE)),
            Err(UploadError::Unreadable) => return Ok(empty(StatusCode::BAD_REQUEST)),
        }
    } else {
        match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => (b.to_bytes(), None),
            Err(_) => return Ok(empty(StatusCode::PAYLOAD_TOO_LARGE)),
        }
    };
    let mut r = Req::new(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    r.upload = upload;
    if let Some(resp) = hook.as_ref().and_then(|h| h(&r)) {
        return Ok(resp);
    }
    Ok(route(&cloud, &r).await)
}

/// Glance's image data upload (`/sN/image/v2/images/ID/file` or `.../stage`):
/// streamed to its store, not collected.
fn is_image_data(raw_path: &str) -> bool {
    let p = split_path(raw_path);
    matches!(
        p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
        [_, "image", "v2", "images", _, "file" | "stage"]
    )
}

/// `sN` as the index of an existing site.
fn site_index(c: &Cloud, seg: &str) -> Option<usize> {
    seg.strip_prefix('s')?
        .parse::<usize>()
        .ok()
        .filter(|i| *i < c.sites.len())
}

pub async fn route(c: &Cloud, r: &Req) -> Resp {
    let p: Vec<&str> = r.path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["oidc", rest @ ..] => keystone::oidc(c, r, rest),
        ["is", rest @ ..] => infosys::is_api(c, r, rest),
        ["im", rest @ ..] => im::im(c, r, rest),
        [site, service, rest @ ..] => {
            let Some(i) = site_index(c, site) else {
                return not_found();
            };
            match *service {
                "identity" => keystone::keystone(c, i, r, rest),
                "compute" => nova::nova(c, i, r, rest),
                "network" => neutron::neutron(c, i, r, rest),
                "image" => glance::glance(c, i, r, rest).await,
                "volume" => cinder::cinder(c, i, r, rest),
                "swift" => swift::swift(c, i, r, rest),
                "glue.json" => infosys::glue(c, i),
                "accounting" => accounting::last_update_endpoint(c, i, rest),
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}
