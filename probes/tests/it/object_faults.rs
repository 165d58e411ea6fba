//! check_object_storage against a wiremock Swift behind the shared wiremock
//! Keystone: an object corrupted on read, a failed put, an ETag that is not
//! the MD5. Each ends CRITICAL naming its stage, with nothing left behind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};
use serde_json::{json, Value};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::keystone_mock::{access_token, mount_site, Site, PROJECT_ID};
use crate::mockcloud::run;
use probes::checks::object_storage::ObjectStorage;
use probes::model::{Cleanup, ResourceKind};
use probes::render::nagios;
use probes::Status;

#[derive(Default)]
struct SwiftState {
    containers: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// GET of an object flips a byte but keeps the upload's ETag (what a
    /// bad disk under real Swift does).
    corrupt_read: bool,
    /// Object PUTs answer this status instead of storing.
    put_status: Option<u16>,
    /// Object PUTs answer this ETag.
    put_etag: Option<String>,
}

#[derive(Clone, Default)]
struct FakeSwift(Arc<Mutex<SwiftState>>);

fn md5_hex(b: &[u8]) -> String {
    format!("{:x}", Md5::digest(b))
}

impl Respond for FakeSwift {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let prefix = format!("/swift/v1/AUTH_{PROJECT_ID}/");
        let Some(rest) = req.url.path().strip_prefix(&prefix) else {
            return ResponseTemplate::new(403);
        };
        let (c, o) = match rest.split_once('/') {
            Some((c, o)) => (c.to_string(), Some(o.to_string())),
            None => (rest.to_string(), None),
        };
        let m = req.method.as_str();
        match (m, o) {
            ("PUT", None) => {
                st.containers.entry(c).or_default();
                ResponseTemplate::new(201)
            }
            ("HEAD", None) => match st.containers.contains_key(&c) {
                true => ResponseTemplate::new(204),
                false => ResponseTemplate::new(404),
            },
            ("GET", None) => match st.containers.get(&c) {
                None => ResponseTemplate::new(404),
                Some(objs) => {
                    let list: Vec<Value> = objs
                        .iter()
                        .map(|(n, d)| json!({"name": n, "bytes": d.len(), "hash": md5_hex(d)}))
                        .collect();
                    ResponseTemplate::new(200).set_body_json(list)
                }
            },
            ("DELETE", None) => match st.containers.get(&c) {
                None => ResponseTemplate::new(404),
                Some(objs) if !objs.is_empty() => ResponseTemplate::new(409),
                Some(_) => {
                    st.containers.remove(&c);
                    ResponseTemplate::new(204)
                }
            },
            (m, Some(o)) => {
                let (put_status, put_etag, corrupt) =
                    (st.put_status, st.put_etag.clone(), st.corrupt_read);
                let Some(objs) = st.containers.get_mut(&c) else {
                    return ResponseTemplate::new(404);
                };
                match m {
                    "PUT" => {
                        if let Some(s) = put_status {
                            return ResponseTemplate::new(s).set_body_string("<h1>Broken</h1>");
                        }
                        let etag = put_etag.unwrap_or_else(|| md5_hex(&req.body));
                        objs.insert(o, req.body.clone());
                        ResponseTemplate::new(201).insert_header("ETag", etag.as_str())
                    }
                    "GET" | "HEAD" => match objs.get(&o) {
                        None => ResponseTemplate::new(404),
                        Some(d) => {
                            let etag = format!("\"{}\"", md5_hex(d));
                            let mut body = d.clone();
                            if corrupt && !body.is_empty() {
                                let i = body.len() / 2;
                                body[i] ^= 0x40;
                            }
                            let r = ResponseTemplate::new(200).insert_header("ETag", etag.as_str());
                            if m == "GET" {
                                r.set_body_bytes(body)
                            } else {
                                r
                            }
                        }
                    },
                    "DELETE" => match objs.remove(&o) {
                        Some(_) => ResponseTemplate::new(204),
                        None => ResponseTemplate::new(404),
                    },
                    _ => ResponseTemplate::new(405),
                }
            }
            _ => ResponseTemplate::new(405),
        }
    }
}

struct Site1 {
    server: MockServer,
    swift: FakeSwift,
    _dir: tempfile::TempDir,
    token_file: std::path::PathBuf,
}

async fn site() -> Site1 {
    site_with("object-store").await
}

/// A site whose catalog lists Swift under `kind`.
async fn site_with(kind: &str) -> Site1 {
    let server = MockServer::start().await;
    let base = server.uri();
    let catalog = json!([{"type": kind, "name": "swift", "endpoints": [
        {"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
         "url": format!("{base}/swift/v1/AUTH_{PROJECT_ID}")}]}]);
    mount_site(
        &server,
        Site {
            catalog: Some(catalog),
            ..Site::default()
        },
    )
    .await;
    let swift = FakeSwift::default();
    Mock::given(path_regex("^/swift/"))
        .respond_with(swift.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, access_token()).unwrap();
    Site1 {
        server,
        swift,
        _dir: dir,
        token_file,
    }
}

impl Site1 {
    fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-t".into(),
            "30".into(),
            "--endpoint".into(),
            format!("{}/v3", self.server.uri()),
            "--access-token".into(),
            self.token_file.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn left(&self) -> usize {
        self.swift.0.lock().unwrap().containers.len()
    }
}

fn all_deleted(r: &probes::ProbeResult) {
    let kinds: Vec<_> = r.resources.iter().map(|x| x.kind.clone()).collect();
    assert!(kinds.contains(&ResourceKind::Container), "{kinds:?}");
    for res in &r.resources {
        assert_eq!(res.cleanup, Cleanup::Deleted, "{res:?}");
    }
}

#[tokio::test]
async fn happy_path_against_the_mock() {
    let s = site().await;
    let r = run::<ObjectStorage>(&s.argv(&["--size", "64K"])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Ok, "{out}");
    assert!(out.contains("65536 bytes identical, ETag = MD5"), "{out}");
    all_deleted(&r);
    assert_eq!(s.left(), 0);
    for l in [
        "auth",
        "create",
        "put",
        "get",
        "list",
        "delete_object",
        "delete_container",
        "size",
        "put_rate",
        "get_rate",
    ] {
        assert!(r.perfdata.iter().any(|p| p.label == l), "no perfdata {l}");
    }
    // The container carries the run id.
    let reqs = s.server.received_requests().await.unwrap();
    let put = reqs
        .iter()
        .find(|q| q.method.as_str() == "PUT" && q.url.path().matches('/').count() == 4)
        .unwrap();
    assert!(put.headers.get("x-container-meta-fedprobe-run").is_some());
}

#[tokio::test]
async fn corrupted_object_on_read_is_critical_at_obj_03() {
    let s = site().await;
    s.swift.0.lock().unwrap().corrupt_read = true;
    let r = run::<ObjectStorage>(&s.argv(&["--size", "4K"])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(
        r.summary
            .contains("OBJ-03 read object back: object corrupted"),
        "{out}"
    );
    assert!(out.contains("first difference at byte 2048"), "{out}");
    assert!(out.contains("ETag still claims the MD5"), "{out}");
    all_deleted(&r);
    assert_eq!(s.left(), 0, "the container and its object are deleted");
}

#[tokio::test]
async fn failed_put_is_critical_at_obj_02_and_the_container_is_deleted() {
    let s = site().await;
    s.swift.0.lock().unwrap().put_status = Some(503);
    let r = run::<ObjectStorage>(&s.argv(&[])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(r.summary.contains("OBJ-02 store object: HTTP 503"), "{out}");
    all_deleted(&r);
    assert_eq!(s.left(), 0, "swiftprobe would leak the container here");
}

#[tokio::test]
async fn etag_not_the_md5_is_critical_at_obj_02() {
    let s = site().await;
    s.swift.0.lock().unwrap().put_etag = Some("0".repeat(32));
    let r = run::<ObjectStorage>(&s.argv(&[])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(r.summary.contains("OBJ-02"), "{out}");
    assert!(out.contains("ETag answered is 000"), "{out}");
    all_deleted(&r);
    assert_eq!(s.left(), 0);
}

#[tokio::test]
async fn no_object_store_in_the_catalog_is_a_warning_with_nothing_created() {
    let s = site_with("not-object-store").await;
    let r = run::<ObjectStorage>(&s.argv(&[])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Warning, "{out}");
    assert!(out.contains("object storage not offered here"), "{out}");
    assert!(r.resources.is_empty(), "{:?}", r.resources);
    let reqs = s.server.received_requests().await.unwrap();
    assert!(reqs.iter().all(|q| !q.url.path().starts_with("/swift/")));
}
