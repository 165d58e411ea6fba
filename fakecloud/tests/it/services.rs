//! The emulated services answer in the real services' shapes and their
//! faults do what they say, over HTTP on 127.0.0.1. (How the probes and the
//! harness fare against them is tested in harness/tests/it/demo.rs.)

use std::time::{Duration, Instant};

use fakecloud::dates::parse_iso;
use fakecloud::{FakeCloud, Fault, Faults, Options};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

fn client() -> Client {
    // reqwest is built without a default TLS provider; only http is used here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn demo(faults: Faults) -> FakeCloud {
    FakeCloud::start(Options {
        sites: 2,
        boot_delay: Duration::from_millis(400),
        faults,
    })
    .await
    .unwrap()
}

struct Session {
    c: Client,
    token: String,
    project: String,
    catalog: Value,
}

impl Session {
    fn url(&self, ty: &str) -> String {
        self.catalog
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == ty)
            .and_then(|s| {
                s["endpoints"]
                    .as_array()?
                    .iter()
                    .find(|e| e["interface"] == "public")
            })
            .map(|e| e["url"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {ty} in catalog"))
    }

    fn req(&self, m: Method, url: String) -> reqwest::RequestBuilder {
        self.c.request(m, url).header("X-Auth-Token", &self.token)
    }

    /// The request with the session's token; the answer, whatever its status.
    async fn send(&self, m: Method, url: String) -> reqwest::Response {
        self.req(m, url).send().await.unwrap()
    }

    /// [`Session::send`] with a JSON body.
    async fn send_json(&self, m: Method, url: String, body: &Value) -> reqwest::Response {
        self.req(m, url).json(body).send().await.unwrap()
    }
}

/// The federated login exactly as the probes do it.
async fn login(d: &FakeCloud, site: usize) -> Session {
    let c = client();
    let k = d.keystone(site);
    let r = c
        .post(format!(
            "{k}/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth"
        ))
        .bearer_auth(&d.cloud.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let unscoped = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token"]["methods"], json!(["mapped"]));
    assert_eq!(
        body["token"]["user"]["OS-FEDERATION"]["identity_provider"]["id"],
        "egi.eu"
    );
    let projects: Value = c
        .get(format!("{k}/auth/projects"))
        .header("X-Auth-Token", &unscoped)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ops = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ops")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .post(format!("{k}/auth/tokens"))
        .json(
            &json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": ops}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token"]["project"]["id"], ops.as_str());
    // Validation answers 200 for the token, 404 for garbage.
    let v = c
        .get(format!("{k}/auth/tokens"))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), StatusCode::OK);
    let v = c
        .get(format!("{k}/auth/tokens"))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), StatusCode::NOT_FOUND);
    Session {
        c,
        token,
        project: ops,
        catalog: body["token"]["catalog"].clone(),
    }
}

async fn wait_status(s: &Session, url: &str, want: &str, limit: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let v: Value = s.send(Method::GET, url.into()).await.json().await.unwrap();
        if v["server"]["status"] == want || t0.elapsed() > limit {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keystone_rejects_bad_tokens_like_keystone() {
    let d = demo(Faults::default()).await;
    let c = client();
    let base = d.keystone(0);
    let r = c
        .post(format!(
            "{base}/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth"
        ))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // Sites that only configured `openid` answer 404 on `oidc`.
    let r = c
        .post(format!(
            "{base}/OS-FEDERATION/identity_providers/egi.eu/protocols/oidc/auth"
        ))
        .bearer_auth(&d.cloud.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Tokens of one virtual site mean nothing at another.
    let s = login(&d, 0).await;
    let other = d
        .keystone(1)
        .replace("/identity/v3", "/compute/v2.1/flavors");
    let r = s.send(Method::GET, other).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oidc_provider_issues_the_monitor_token() {
    let d = demo(Faults::default()).await;
    let c = client();
    let conf: Value = c
        .get(format!(
            "{}/oidc/.well-known/openid-configuration",
            d.base()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_endpoint = conf["token_endpoint"].as_str().unwrap();
    let secret = d.cloud.client_secret.clone();
    let r: Value = c
        .post(token_endpoint)
        .basic_auth("fedprobe-demo", Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "openid email"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["access_token"], d.cloud.access_token.as_str());
    assert_eq!(r["token_type"], "Bearer");
    let bad = c
        .post(token_endpoint)
        .basic_auth("fedprobe-demo", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nova_server_goes_build_active_and_404_after_delete() {
    let d = demo(Faults::default()).await;
    let s = login(&d, 0).await;
    let nova = s.url("compute");
    let root: Value =
        s.c.get(nova.trim_end_matches("/v2.1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(root["versions"][1]["min_version"], "2.1");
    let flavors: Value = s
        .send(Method::GET, format!("{nova}/flavors/detail?minDisk=8"))
        .await
        .json()
        .await
        .unwrap();
    let fl = flavors["flavors"].as_array().unwrap();
    assert!(fl.iter().all(|f| f["disk"].as_u64().unwrap() >= 8));
    let images: Value = s
        .send(Method::GET, format!("{}/v2/images", s.url("image")))
        .await
        .json()
        .await
        .unwrap();
    let image = images["images"][0]["id"].as_str().unwrap().to_string();
    let nets: Value = s
        .send(Method::GET, format!("{}/v2.0/networks", s.url("network")))
        .await
        .json()
        .await
        .unwrap();
    let net = nets["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["project_id"] == s.project.as_str())
        .unwrap()["id"]
        .clone();
    // From 2.37 `networks` is required.
    let r = s
        .req(Method::POST, format!("{nova}/servers"))
        .header("OpenStack-API-Version", "compute 2.37")
        .json(&json!({"server": {"name": "t", "imageRef": image, "flavorRef": fl[0]["id"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .req(Method::POST, format!("{nova}/servers"))
        .header("OpenStack-API-Version", "compute 2.37")
        .json(
            &json!({"server": {"name": "fedprobe-t", "imageRef": image, "flavorRef": fl[0]["id"],
            "networks": [{"uuid": net}], "metadata": {"argo-mon-host": "me"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    let id = body["server"]["id"].as_str().unwrap().to_string();
    assert!(location.ends_with(&id));
    let url = format!("{nova}/servers/{id}");
    let first = wait_status(&s, &url, "BUILD", Duration::ZERO).await;
    assert_eq!(first["server"]["status"], "BUILD");
    let active = wait_status(&s, &url, "ACTIVE", Duration::from_secs(10)).await;
    assert_eq!(active["server"]["status"], "ACTIVE");
    assert_eq!(active["server"]["metadata"]["argo-mon-host"], "me");
    assert!(active["server"]["OS-SRV-USG:launched_at"].is_string());
    let detail: Value = s
        .send(Method::GET, format!("{nova}/servers/detail"))
        .await
        .json()
        .await
        .unwrap();
    assert!(detail["servers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == id.as_str()));
    let usage_url = format!(
        "{nova}/os-simple-tenant-usage/{}?start=2020-01-01T00:00:00&end=2999-01-01T00:00:00",
        s.project
    );
    // Like Nova on MariaDB (launched_at rounded, `end` capped at now), a
    // server launched under a second ago may be missing: ask again briefly.
    let mut usage = Value::Null;
    let mut row = Value::Null;
    for _ in 0..20 {
        usage = s
            .send(Method::GET, usage_url.clone())
            .await
            .json()
            .await
            .unwrap();
        let rows = usage["tenant_usage"]["server_usages"].as_array().unwrap();
        if let Some(r) = rows.iter().find(|u| u["instance_id"] == id.as_str()) {
            row = r.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(row["state"], "active", "{usage}");
    assert!(row["ended_at"].is_null(), "{row}");
    assert_eq!(
        row["started_at"].as_str().unwrap()[..19],
        active["server"]["OS-SRV-USG:launched_at"].as_str().unwrap()[..19],
        "usage counts from launched_at"
    );
    assert!(row["hours"].as_f64().unwrap() > 0.0);
    assert!(usage["tenant_usage"]["total_hours"].as_f64().unwrap() > 0.0);
    let r = s.send(Method::DELETE, url.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let t0 = Instant::now();
    loop {
        let r = s.send(Method::GET, url.clone()).await;
        if r.status() == StatusCode::NOT_FOUND {
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["itemNotFound"]["code"], 404);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleted within the window: still accounted, as terminated, with its
    // flavor's sizes and an end.
    let usage: Value = s.send(Method::GET, usage_url).await.json().await.unwrap();
    let row = usage["tenant_usage"]["server_usages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["instance_id"] == id.as_str())
        .expect("a deleted server stays in the usage");
    assert_eq!(row["state"], "terminated", "{row}");
    assert!(row["ended_at"].is_string(), "{row}");
    let f = fl
        .iter()
        .find(|f| f["name"] == row["flavor"])
        .expect("flavor");
    assert_eq!(row["vcpus"], f["vcpus"]);
    assert_eq!(row["memory_mb"], f["ram"]);
    assert_eq!(row["local_gb"], f["disk"]);
    // The owner may read its own usage; listing all tenants is admin-only.
    let r = s
        .send(Method::GET, format!("{nova}/os-simple-tenant-usage"))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn catalog_image_filters_and_is_images() {
    let d = demo(Faults::default()).await;
    let s = login(&d, 0).await;
    let cat: Value = s
        .send(Method::GET, format!("{}/auth/catalog", d.keystone(0)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cat["catalog"], s.catalog);
    let glance = s.url("image");
    let found: Value = s
        .send(
            Method::GET,
            format!("{glance}/v2/images?status=active&os_distro=ubuntu"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["images"].as_array().unwrap().len(), 1);
    let none: Value = s
        .send(Method::GET, format!("{glance}/v2/images?os_distro=centos"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["images"], json!([]));
    let imgs: Value =
        s.c.get(format!("{}/is/site/DEMO-000/ops/images", d.base()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(imgs[0]["id"], found["images"][0]["id"]);
    assert_eq!(imgs[0]["appdb_id"], "egi.ubuntu.22.04");
}

#[tokio::test]
async fn faults_error_state_and_5xx() {
    let f = Faults::of([Fault::ErrorState]);
    let d = demo(f).await;
    let s = login(&d, 1).await;
    let nova = s.url("compute");
    let image = {
        let v: Value = s
            .send(Method::GET, format!("{}/v2/images", s.url("image")))
            .await
            .json()
            .await
            .unwrap();
        v["images"][0]["id"].clone()
    };
    let r: Value = s
        .send_json(Method::POST, format!("{nova}/servers"), &json!({"server": {"name": "x", "imageRef": image, "flavorRef": "1", "networks": "none"}})).await
        .json()
        .await
        .unwrap();
    let url = format!("{nova}/servers/{}", r["server"]["id"].as_str().unwrap());
    let v = wait_status(&s, &url, "ERROR", Duration::from_secs(10)).await;
    assert_eq!(v["server"]["status"], "ERROR");
    assert!(v["server"]["fault"]["message"]
        .as_str()
        .unwrap()
        .contains("No valid host"));

    let f = Faults::of([Fault::Http5xx]);
    let d = demo(f).await;
    let s = login(&d, 0).await;
    let r = s
        .send_json(
            Method::POST,
            format!("{}/servers", s.url("compute")),
            &json!({"server": {"name": "x", "imageRef": image, "flavorRef": "1"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("<html>"));
}

async fn upload(s: &Session, data: &[u8]) -> (String, Value) {
    let glance = s.url("image");
    let r = s
        .send_json(
            Method::POST,
            format!("{glance}/v2/images"),
            &json!({"name": "fedprobe-img", "disk_format": "raw", "container_format": "bare",
            "visibility": "private", "fedprobe": "1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let img: Value = r.json().await.unwrap();
    assert_eq!(img["status"], "queued");
    assert!(img["checksum"].is_null() && img["size"].is_null() && img["os_hash_value"].is_null());
    let id = img["id"].as_str().unwrap().to_string();
    let r = s
        .req(Method::PUT, format!("{glance}/v2/images/{id}/file"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let v: Value = s
        .send(Method::GET, format!("{glance}/v2/images/{id}"))
        .await
        .json()
        .await
        .unwrap();
    (id, v)
}

/// Data past the in-memory limit goes through the streamed path both ways
/// (spooled to an unlinked file while hashed; read back a chunk at a time).
#[tokio::test]
async fn glance_streams_large_image_data_both_ways() {
    use sha2::Digest;
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let d = demo(Faults::default()).await;
    let s = login(&d, 0).await;
    let (id, v) = upload(&s, &data).await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], data.len());
    assert_eq!(v["checksum"], format!("{:x}", md5::Md5::digest(&data)));
    assert_eq!(
        v["os_hash_value"],
        format!("{:x}", sha2::Sha512::digest(&data))
    );
    let r = s
        .send(
            Method::GET,
            format!("{}/v2/images/{id}/file", s.url("image")),
        )
        .await;
    assert_eq!(r.content_length(), Some(data.len() as u64));
    let got = r.bytes().await.unwrap();
    assert!(got.as_ref() == &data[..], "downloaded bytes differ");
}

#[tokio::test]
async fn glance_upload_download_delete_and_the_checksum_fault() {
    use md5::Digest;
    let data = b"fedprobe test image \x00\x01\x02".repeat(1000);
    let md5 = format!("{:x}", md5::Md5::digest(&data));
    let d = demo(Faults::default()).await;
    let s = login(&d, 0).await;
    let glance = s.url("image");
    let (id, v) = upload(&s, &data).await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], data.len());
    assert_eq!(v["checksum"], md5.as_str());
    assert_eq!(v["os_hash_algo"], "sha512");
    assert_eq!(v["fedprobe"], "1");
    let got = s
        .send(Method::GET, format!("{glance}/v2/images/{id}/file"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    let r = s
        .send(Method::DELETE, format!("{glance}/v2/images/{id}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s
        .send(Method::GET, format!("{glance}/v2/images/{id}"))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Interoperable import: stage then import, importing -> active.
    let methods: Value = s
        .send(Method::GET, format!("{glance}/v2/info/import"))
        .await
        .json()
        .await
        .unwrap();
    assert!(methods["import-methods"]["value"]
        .as_array()
        .unwrap()
        .contains(&json!("glance-direct")));
    let img: Value = s
        .send_json(
            Method::POST,
            format!("{glance}/v2/images"),
            &json!({"name": "imp", "disk_format": "raw", "container_format": "bare"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = img["id"].as_str().unwrap();
    let r = s
        .req(Method::PUT, format!("{glance}/v2/images/{id}/stage"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s
        .send_json(
            Method::POST,
            format!("{glance}/v2/images/{id}/import"),
            &json!({"method": {"name": "glance-direct"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = s
        .send(Method::GET, format!("{glance}/v2/images/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "importing");
    // Protected images cannot be deleted.
    let base: Value = s
        .send(
            Method::GET,
            format!("{glance}/v2/images?name=EGI%20Ubuntu%2022.04"),
        )
        .await
        .json()
        .await
        .unwrap();
    let base_id = base["images"][0]["id"].as_str().unwrap();
    let r = s
        .send(Method::DELETE, format!("{glance}/v2/images/{base_id}"))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let f = Faults::of([Fault::WrongChecksum]);
    let d = demo(f).await;
    let s = login(&d, 0).await;
    let (_, v) = upload(&s, &data).await;
    assert_eq!(v["status"], "active");
    assert_ne!(v["checksum"], md5.as_str());
}

#[tokio::test]
async fn the_hang_fault_hangs_until_the_client_gives_up() {
    let f = Faults::of([Fault::Hang]);
    let d = demo(f).await;
    let s = login(&d, 0).await;
    let glance = s.url("image");
    let img: Value = s
        .send_json(
            Method::POST,
            format!("{glance}/v2/images"),
            &json!({"name": "h", "disk_format": "raw", "container_format": "bare"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let t0 = Instant::now();
    let r = s
        .req(
            Method::PUT,
            format!("{glance}/v2/images/{}/file", img["id"].as_str().unwrap()),
        )
        .body(vec![1u8; 10])
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    assert!(t0.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn glue_and_the_information_system_and_the_stale_fault() {
    let d = demo(Faults::default()).await;
    let c = client();
    let glue: Value = c
        .get(format!("{}/s0/glue.json", d.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let svc = &glue["CloudComputingService"][0];
    assert_eq!(svc["Type"], "org.cloud.iaas");
    assert_eq!(svc["Validity"], 43200);
    let created = parse_iso(svc["CreationTime"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(created + 43200 > now, "fresh");
    let ep = &glue["CloudComputingEndpoint"][0];
    assert_eq!(ep["URL"], d.keystone(0).as_str());
    assert_eq!(ep["InterfaceName"], "org.openstack.nova");
    let s = login(&d, 0).await;
    let shares = glue["Share"].as_array().unwrap();
    assert!(
        shares
            .iter()
            .any(|sh| sh["ProjectID"] == s.project.as_str()),
        "share = Keystone project"
    );
    let sites: Value = c
        .get(format!("{}/is/sites/?include_projects=true", d.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sites.as_array().unwrap().len(), 2);
    assert_eq!(sites[0]["name"], "DEMO-000");
    assert!(sites[0]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == s.project.as_str()));
    let p: Value = c
        .get(format!("{}/is/site/DEMO-000/ops/project", d.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["id"], s.project.as_str());

    let f = Faults::of([Fault::StaleGlue]);
    let d = demo(f).await;
    let glue: Value = c
        .get(format!("{}/s0/glue.json", d.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created = parse_iso(
        glue["CloudComputingService"][0]["CreationTime"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(created + 43200 < now, "stale");
    let sites: Value = c
        .get(format!("{}/is/sites/", d.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sites, json!([]), "stale sites drop out of the IS");
}

/// The orchestrator's REST subset: IM's own account checked, the site's
/// token checked, the RADL's VM a server of that site, destroyed with it.
#[tokio::test]
async fn the_orchestrator_deploys_a_server_of_the_named_site_and_destroys_it() {
    let d = demo(Faults::default()).await;
    let s = login(&d, 1).await;
    let im = format!("{}/im", d.base());
    let v: Value =
        s.c.get(format!("{im}/version"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(v, json!(fakecloud::im::VERSION));
    let img: Value = s
        .send(Method::GET, format!("{}/v2/images", s.url("image")))
        .await
        .json()
        .await
        .unwrap();
    let image = img["images"][0]["id"].as_str().unwrap().to_string();
    let header = |pw: &str, tok: &str| {
        format!(
            "id = im; type = InfrastructureManager; username = {}; password = {pw}\\nid = site; \
             type = OpenStack; host = {}; username = egi.eu; password = {tok}; tenant = openid; \
             auth_version = 3.x_oidc_access_token; domain = {}",
            fakecloud::im::USER,
            d.keystone(1).trim_end_matches("/v3"),
            s.project
        )
    };
    let good = header(&d.cloud.client_secret, &d.cloud.access_token);
    let radl = |img: &str| {
        format!(
            "network public ( outbound = 'yes' )\nsystem fedprobe-0123456789 (\ninstance_type = 'm1.tiny' and\n\
             disk.0.image.url = 'ost://127.0.0.1/{img}'\n)\ncontextualize ()\ndeploy fedprobe-0123456789 1\n"
        )
    };
    let post = |auth: String, body: String| {
        s.c.post(format!("{im}/infrastructures"))
            .header("Authorization", auth)
            .header("Accept", "application/json")
            .body(body)
            .send()
    };
    let r = post(header("wrong", &d.cloud.access_token), radl(&image))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(
        header(&d.cloud.client_secret, "not-the-token"),
        radl(&image),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("Invalid credentials with the provider"),
        "{msg}"
    );
    let r = post(good.clone(), radl("no-such-image")).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let msg = r.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("to cloud ID site") && msg.contains("No image found"),
        "{msg}"
    );

    let r = post(good.clone(), radl(&image)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let uri = r.json::<Value>().await.unwrap()["uri"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |u: String| {
        s.c.get(u)
            .header("Authorization", good.clone())
            .header("Accept", "application/json")
            .send()
    };
    let st: Value = get(format!("{uri}/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["state"]["state"], "pending", "{st}");
    let id: Value = get(format!("{uri}/vms/0/instance_id"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let server = id["instance_id"].as_str().unwrap().to_string();
    let nova = s.url("compute");
    let srv = wait_status(
        &s,
        &format!("{nova}/servers/{server}"),
        "ACTIVE",
        Duration::from_secs(10),
    )
    .await;
    assert!(srv["server"]["name"]
        .as_str()
        .unwrap()
        .starts_with("fedprobe-0123456789-"));
    let st: Value = get(format!("{uri}/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["state"]["state"], "configured", "{st}");
    let r =
        s.c.delete(&uri)
            .header("Authorization", good.clone())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get(format!("{uri}/state")).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gone = s
        .send(Method::GET, format!("{nova}/servers/{server}"))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn swift_containers_objects_and_the_corrupted_read_fault() {
    let d = demo(Faults::default()).await;
    let s = login(&d, 0).await;
    let acct = s.url("object-store");
    assert!(
        acct.ends_with(&format!("/swift/v1/AUTH_{}", s.project)),
        "{acct}"
    );
    // Without a token: 401, as Swift's auth middleware answers.
    let r = s.c.head(&acct).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.send(Method::HEAD, acct.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["x-account-container-count"], "0");

    let cont = format!("{acct}/probe-c");
    let r = s
        .req(Method::PUT, cont.clone())
        .header("X-Container-Meta-Fedprobe-Run", "r1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s.send(Method::PUT, cont.clone()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED, "PUT again: 202");
    let r = s.send(Method::HEAD, cont.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["x-container-meta-fedprobe-run"], "r1");
    let r = s.send(Method::GET, format!("{cont}?format=json")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    let r = s.send(Method::GET, cont.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "empty plain listing");

    // An object whose name holds an escaped slash is one object.
    let obj = format!("{cont}/a%2Fb.bin");
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let md5 = format!("{:x}", <md5::Md5 as md5::Digest>::digest(&data));
    let r = s
        .req(Method::PUT, format!("{acct}/nope/x"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no such container");
    let r = s
        .req(Method::PUT, obj.clone())
        .header("ETag", "0123")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "ETag mismatch"
    );
    let r = s
        .req(Method::PUT, obj.clone())
        .header("X-Object-Meta-Fedprobe-Run", "r1")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], md5.as_str());
    let r = s.send(Method::GET, obj.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], md5.as_str());
    assert_eq!(r.headers()["x-object-meta-fedprobe-run"], "r1");
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    let r = s.send(Method::HEAD, obj.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "5000");
    let list: Value = s
        .send(Method::GET, format!("{cont}?format=json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "a/b.bin");
    assert_eq!(list[0]["bytes"], 5000);
    assert_eq!(list[0]["hash"], md5.as_str());
    let r = s
        .send(Method::GET, format!("{cont}?format=json&marker=a/b.bin"))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]), "after marker");
    let r = s.send(Method::GET, format!("{acct}?format=json")).await;
    let accts: Value = r.json().await.unwrap();
    assert_eq!(accts[0]["name"], "probe-c");
    assert_eq!(accts[0]["count"], 1);

    let r = s.send(Method::DELETE, cont.clone()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "not empty");
    let r = s.send(Method::DELETE, obj.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.send(Method::HEAD, obj.clone()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.send(Method::DELETE, obj.clone()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.send(Method::DELETE, cont.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.send(Method::HEAD, cont.clone()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Another project's account: 403.
    let other = acct.replace(&s.project, "someone-else");
    let r = s.send(Method::HEAD, other).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The fault: same length, bytes differ, the stored ETag still answered.
    let d = demo(Faults::of([Fault::ObjectCorruptedOnRead])).await;
    let s = login(&d, 0).await;
    let acct = s.url("object-store");
    let r = s.send(Method::PUT, format!("{acct}/c")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .req(Method::PUT, format!("{acct}/c/o"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], md5.as_str());
    let r = s.send(Method::GET, format!("{acct}/c/o")).await;
    assert_eq!(r.headers()["etag"], md5.as_str());
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert_ne!(got.as_ref(), data.as_slice());
}
