//! Glance v2: images, data upload and download, interoperable import.

use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, StatusCode};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::dates::iso;
use crate::faults::Fault;
use crate::fixtures::new_id;
use crate::http::{empty, glance_error, image_data, reply, with_header, Req, Resp};
use crate::state::{Cloud, Image, ImageData, Upload};

fn image_json(img: &Image, now: Instant) -> Value {
    let status = img.current_status(now);
    let mut v = json!({
        "id": img.id, "name": img.name, "status": status, "visibility": img.visibility,
        "protected": img.protected, "os_hidden": false, "owner": img.owner,
        "disk_format": img.disk_format, "container_format": img.container_format,
        "checksum": if status == "active" { img.checksum.clone() } else { None },
        "os_hash_algo": if status == "active" { Some("sha512") } else { None },
        "os_hash_value": if status == "active" { img.sha512.clone() } else { None },
        "size": if status == "active" { img.data.as_ref().map(ImageData::len) } else { None },
        "virtual_size": null, "min_disk": 0, "min_ram": 0, "tags": [],
        "created_at": iso(img.created_at), "updated_at": iso(SystemTime::now()),
        "self": format!("/v2/images/{}", img.id), "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
        "direct_url": null,
    });
    if img.data.is_some() {
        v["stores"] = json!("fs");
    }
    if let Value::Object(m) = &mut v {
        for (k, val) in &img.props {
            m.insert(k.clone(), val.clone());
        }
    }
    v
}

fn store_data(c: &Cloud, img: &mut Image, up: Upload) {
    img.checksum = Some(if c.fault(Fault::WrongChecksum) {
        format!(
            "{:x}",
            Md5::digest(format!("corrupted-{}", up.md5).as_bytes())
        )
    } else {
        up.md5
    });
    img.sha512 = Some(up.sha512);
    img.data = Some(up.data);
}

pub async fn glance(c: &Cloud, i: usize, r: &Req, rest: &[&str]) -> Resp {
    let base = format!("{}/image", c.site_base(i));
    if r.method == Method::GET && rest.is_empty() {
        return reply(
            StatusCode::MULTIPLE_CHOICES,
            json!({"versions": [{"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v2/")}]},
                {"id": "v2.9", "status": "SUPPORTED", "links": [{"rel": "self", "href": format!("{base}/v2/")}]}]}),
        );
    }
    let hangs = c.fault(Fault::Hang)
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
    let Some(mut site) = c.site(i) else {
        return glance_error(500, "state lock poisoned");
    };
    if !site.scoped(r.auth_token()) {
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
                .map(|img| image_json(img, now))
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
            let v = image_json(&img, now);
            site.images.insert(id.clone(), img);
            site.image_order.push(id.clone());
            with_header(
                reply(StatusCode::CREATED, v),
                "location",
                &format!("{base}/v2/images/{id}"),
            )
        }
        (&Method::GET, ["v2", "images", id]) => match site.images.get(*id) {
            Some(img) => reply(StatusCode::OK, image_json(img, now)),
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
            let up = match &r.upload {
                Some(up) => up.clone(),
                None => Upload::of(r.body.clone()),
            };
            store_data(c, img, up);
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
                    let resp = image_data(StatusCode::OK, d.clone());
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
