//! A stateful OpenStack stand-in on one wiremock server, for faults the real
//! services will not produce on demand: scripted Nova, Glance and Neutron
//! behind the shared wiremock Keystone (keystone_mock, catalog pointing back
//! here).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use md5::Md5;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use probes::probe::{run_args, Probe};
use probes::ProbeResult;

pub use crate::keystone_mock::{access_token, PROJECT_ID, SCOPED, UNSCOPED};
use crate::keystone_mock::{mount_site, Site};

#[derive(Clone, Debug)]
pub struct FakeServer {
    pub body: Value,
    /// Statuses returned by successive GETs; the last one repeats.
    pub statuses: Vec<String>,
    pub fault: Option<String>,
    pub deleted: bool,
}

#[derive(Default)]
pub struct NovaState {
    pub servers: BTreeMap<String, FakeServer>,
    /// Statuses a newly created server goes through.
    pub script: Vec<String>,
    pub fault: Option<String>,
    pub created: u32,
    /// `maxTotalInstances` of `GET /limits` (default 10; `Some(n)` sets it).
    pub max_instances: Option<i64>,
    /// DELETE is accepted (204) and the server stays listed.
    pub ignore_delete: bool,
}

#[derive(Clone)]
pub struct Nova(pub Arc<Mutex<NovaState>>);

fn j(code: u16, v: Value) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(v)
}

impl Respond for Nova {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let p = req.url.path().trim_start_matches("/compute/v2.1");
        let m = req.method.as_str();
        match (m, p) {
            ("GET", "" | "/") => j(
                200,
                json!({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.90", "min_version": "2.1"}}),
            ),
            ("GET", "/limits") => {
                let used = st.servers.values().filter(|s| !s.deleted).count();
                j(
                    200,
                    json!({"limits": {"rate": [], "absolute": {
                        "maxTotalInstances": st.max_instances.unwrap_or(10),
                        "totalInstancesUsed": used,
                        "maxTotalCores": 20, "totalCoresUsed": used,
                        "maxTotalRAMSize": -1, "totalRAMUsed": 0}}}),
                )
            }
            ("GET", "/flavors/detail") => j(
                200,
                json!({"flavors": [
                    {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1},
                    {"id": "9", "name": "m1.big", "vcpus": 2, "ram": 512, "disk": 20},
                    {"id": "10", "name": "m1.fat", "vcpus": 1, "ram": 4096, "disk": 10},
                    {"id": "8", "name": "m1.probe", "vcpus": 1, "ram": 1024, "disk": 8}]}),
            ),
            ("POST", "/servers") => {
                st.created += 1;
                let id = format!("srv-{}", st.created);
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let mut s = body["server"].clone();
                s["id"] = json!(id);
                s["created"] = json!("2026-01-01T00:00:00Z");
                let statuses = if st.script.is_empty() {
                    vec!["BUILD".into(), "ACTIVE".into()]
                } else {
                    st.script.clone()
                };
                let fault = st.fault.clone();
                st.servers.insert(
                    id.clone(),
                    FakeServer {
                        body: s,
                        statuses,
                        fault,
                        deleted: false,
                    },
                );
                j(
                    202,
                    json!({"server": {"id": id, "adminPass": "s3cr3t-admin-pass"}}),
                )
            }
            ("GET", "/servers/detail") => {
                let list: Vec<Value> = st
                    .servers
                    .values()
                    .filter(|s| !s.deleted)
                    .map(|s| {
                        let mut b = s.body.clone();
                        b["status"] = json!(s.statuses[0]);
                        b
                    })
                    .collect();
                j(200, json!({"servers": list}))
            }
            (_, p) if p.starts_with("/servers/") => {
                let id = &p["/servers/".len()..];
                let ignore_delete = st.ignore_delete;
                let Some(s) = st.servers.get_mut(id).filter(|s| !s.deleted) else {
                    return j(
                        404,
                        json!({"itemNotFound": {"code": 404, "message": "not found"}}),
                    );
                };
                if m == "DELETE" {
                    s.deleted = !ignore_delete;
                    return ResponseTemplate::new(204);
                }
                let status = s.statuses[0].clone();
                if s.statuses.len() > 1 {
                    s.statuses.remove(0);
                }
                let mut b = s.body.clone();
                b["status"] = json!(status);
                b["OS-EXT-STS:task_state"] = if status == "BUILD" {
                    json!("spawning")
                } else {
                    Value::Null
                };
                if status == "ACTIVE" {
                    b["OS-SRV-USG:launched_at"] = json!("2026-01-01T00:00:01.000000");
                }
                if status == "ERROR" {
                    if let Some(f) = &s.fault {
                        b["fault"] = json!({"code": 500, "message": f, "created": "x"});
                    }
                }
                j(200, json!({ "server": b }))
            }
            _ => j(
                404,
                json!({"error": format!("fake nova: no route {m} {p}")}),
            ),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct FakeImage {
    pub meta: Value,
    pub data: Vec<u8>,
    pub staged: Vec<u8>,
    pub deleted: bool,
}

#[derive(Default)]
pub struct GlanceState {
    pub images: BTreeMap<String, FakeImage>,
    pub created: u32,
    pub forbid_upload: bool,
    pub wrong_checksum: bool,
    /// Serve downloads with this byte flipped.
    pub corrupt_download_at: Option<usize>,
    /// Status after an upload ("active" unless set).
    pub after_upload: Option<String>,
    pub import_methods: Vec<String>,
}

#[derive(Clone)]
pub struct Glance(pub Arc<Mutex<GlanceState>>);

fn store(img: &mut FakeImage, data: Vec<u8>, st: &GlanceState) {
    img.meta["size"] = json!(data.len());
    img.meta["checksum"] = if st.wrong_checksum {
        json!("0123456789abcdef0123456789abcdef")
    } else {
        json!(format!("{:x}", Md5::digest(&data)))
    };
    img.meta["os_hash_algo"] = json!("sha512");
    img.meta["os_hash_value"] = json!(format!("{:x}", Sha512::digest(&data)));
    img.meta["status"] = json!(st.after_upload.clone().unwrap_or_else(|| "active".into()));
    img.data = data;
}

impl Respond for Glance {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let p = req.url.path().trim_start_matches("/image");
        let m = req.method.as_str();
        if (m, p) == ("GET", "/v2/info/import") {
            return j(
                200,
                json!({"import-methods": {"type": "array", "value": st.import_methods}}),
            );
        }
        if (m, p) == ("GET", "/v2/images") {
            let list: Vec<Value> = st
                .images
                .values()
                .filter(|i| !i.deleted)
                .map(|i| i.meta.clone())
                .collect();
            return j(200, json!({"images": list}));
        }
        if (m, p) == ("POST", "/v2/images") {
            st.created += 1;
            let id = format!("img-{}", st.created);
            let mut meta: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
            meta["id"] = json!(id);
            meta["status"] = json!("queued");
            meta["size"] = Value::Null;
            meta["checksum"] = Value::Null;
            st.images.insert(
                id,
                FakeImage {
                    meta: meta.clone(),
                    ..Default::default()
                },
            );
            return j(201, meta);
        }
        let Some(rest) = p.strip_prefix("/v2/images/") else {
            return j(404, json!({"error": "fake glance: no route"}));
        };
        let (id, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let forbid = st.forbid_upload;
        let corrupt = st.corrupt_download_at;
        let snapshot = GlanceState {
            wrong_checksum: st.wrong_checksum,
            after_upload: st.after_upload.clone(),
            ..Default::default()
        };
        let Some(img) = st.images.get_mut(id).filter(|i| !i.deleted) else {
            return ResponseTemplate::new(404).set_body_string("404 Not Found");
        };
        match (m, sub) {
            ("GET", "") => j(200, img.meta.clone()),
            ("DELETE", "") => {
                img.deleted = true;
                ResponseTemplate::new(204)
            }
            ("PUT", "file") if forbid => ResponseTemplate::new(403).set_body_string(
                "<html><head><title>403 Forbidden</title></head><body>You are not authorized to complete upload_image action.</body></html>",
            ),
            ("PUT", "file") => {
                store(img, req.body.clone(), &snapshot);
                ResponseTemplate::new(204)
            }
            ("PUT", "stage") => {
                img.staged = req.body.clone();
                img.meta["status"] = json!("uploading");
                ResponseTemplate::new(204)
            }
            ("POST", "import") => {
                let staged = std::mem::take(&mut img.staged);
                store(img, staged, &snapshot);
                ResponseTemplate::new(202)
            }
            ("GET", "file") => {
                let mut data = img.data.clone();
                if let Some(b) = corrupt.and_then(|at| data.get_mut(at)) {
                    *b ^= 0xff;
                }
                ResponseTemplate::new(200).set_body_bytes(data)
            }
            _ => j(404, json!({"error": "fake glance: no route"})),
        }
    }
}

pub struct MockCloud {
    pub server: MockServer,
    pub nova: Nova,
    pub glance: Glance,
    pub dir: tempfile::TempDir,
    pub token_file: PathBuf,
}

impl MockCloud {
    /// Keystone, Nova, Glance and Neutron on one mock server. `compute`
    /// overrides the catalog's compute URL (e.g. a socket that resets).
    pub async fn start_with(compute: Option<String>) -> MockCloud {
        MockCloud::start_at(None, compute).await
    }

    /// As [`MockCloud::start_with`]; `services` replaces this server's URL
    /// in the catalog's compute, image and network entries (a front that
    /// forwards here).
    pub async fn start_at(services: Option<String>, compute: Option<String>) -> MockCloud {
        let server = MockServer::start().await;
        let base = services.unwrap_or_else(|| server.uri());
        let compute = compute.unwrap_or_else(|| format!("{base}/compute/v2.1"));
        let ep = |t: &str, url: String| {
            json!({"type": t, "name": t, "endpoints": [
                {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": url}]})
        };
        let catalog = json!([
            ep("compute", compute),
            ep("image", format!("{base}/image")),
            ep("network", format!("{base}/network")),
        ]);
        mount_site(
            &server,
            Site {
                catalog: Some(catalog),
                ..Site::default()
            },
        )
        .await;
        Mock::given(method("GET"))
            .and(path("/network/v2.0/networks"))
            .respond_with(j(200, json!({"networks": []})))
            .mount(&server)
            .await;
        let nova = Nova(Arc::default());
        Mock::given(path_regex("^/compute/"))
            .respond_with(nova.clone())
            .mount(&server)
            .await;
        let glance = Glance(Arc::default());
        glance.0.lock().unwrap().images.insert(
            "img-appliance".into(),
            FakeImage {
                meta: json!({"id": "img-appliance", "name": "egi-monitoring", "status": "active",
                    "created_at": "2026-01-01T00:00:00Z", "ad:appid": "1017",
                    "APPLIANCE_ATTRIBUTES": "{\"eu.egi.cloud.image_ref\": \"registry.egi.eu/egi_vm_images/monitoring:1.0\"}"}),
                ..Default::default()
            },
        );
        Mock::given(path_regex("^/image/"))
            .respond_with(glance.clone())
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, access_token()).unwrap();
        MockCloud {
            server,
            nova,
            glance,
            dir,
            token_file,
        }
    }

    pub async fn start() -> MockCloud {
        MockCloud::start_with(None).await
    }

    pub fn keystone(&self) -> String {
        format!("{}/v3", self.server.uri())
    }

    /// The probe's usual arguments against this cloud, plus `extra`.
    pub fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-t".into(),
            "30".into(),
            "--endpoint".into(),
            self.keystone(),
            "--access-token".into(),
            self.token_file.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// Requests received, as `METHOD path`.
    pub async fn calls(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }

    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// A pre-existing server.
    pub fn add_server(&self, id: &str, name: &str, metadata: Value, created: &str) {
        self.nova.0.lock().unwrap().servers.insert(
            id.into(),
            FakeServer {
                body: json!({"id": id, "name": name, "metadata": metadata, "created": created}),
                statuses: vec!["ACTIVE".into()],
                fault: None,
                deleted: false,
            },
        );
    }
}

/// Run probe `P` in-process with `argv` (no program name).
pub async fn run<P: Probe>(argv: &[String]) -> ProbeResult {
    run_args::<P, _>(argv).await
}

/// A TCP endpoint that resets every connection after reading the request.
pub async fn resetting_endpoint() -> String {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    format!("http://{addr}/compute/v2.1")
}
