//! The demo cloud: its API answers in the real services' shapes, its faults
//! do what they say, and `fedprobe demo` / `fedprobe run` drive the whole
//! guideline against it end to end. (The demo is a fixture: the probes'
//! own tests run against the real services.)

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fakecloud::dates::parse_iso;
use fedprobe::demo::{Demo, DemoOptions, Fault, Faults};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

fn client() -> Client {
    probes::http::build_client(&Default::default()).unwrap()
}

async fn demo(faults: Faults) -> Demo {
    Demo::start(DemoOptions {
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
}

/// The federated login exactly as the probes do it.
async fn login(d: &Demo, site: usize) -> Session {
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
        let v: Value = s
            .req(Method::GET, url.into())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let r = s.req(Method::GET, other).send().await.unwrap();
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
    let secret = std::fs::read_to_string(&d.client_secret_file).unwrap();
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
        .req(Method::GET, format!("{nova}/flavors/detail?minDisk=8"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fl = flavors["flavors"].as_array().unwrap();
    assert!(fl.iter().all(|f| f["disk"].as_u64().unwrap() >= 8));
    let images: Value = s
        .req(Method::GET, format!("{}/v2/images", s.url("image")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let image = images["images"][0]["id"].as_str().unwrap().to_string();
    let nets: Value = s
        .req(Method::GET, format!("{}/v2.0/networks", s.url("network")))
        .send()
        .await
        .unwrap()
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
        .req(Method::GET, format!("{nova}/servers/detail"))
        .send()
        .await
        .unwrap()
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
            .req(Method::GET, usage_url.clone())
            .send()
            .await
            .unwrap()
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
    let r = s.req(Method::DELETE, url.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let t0 = Instant::now();
    loop {
        let r = s.req(Method::GET, url.clone()).send().await.unwrap();
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
    let usage: Value = s
        .req(Method::GET, usage_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        .req(Method::GET, format!("{nova}/os-simple-tenant-usage"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn catalog_image_filters_and_is_images() {
    let d = demo(Faults::default()).await;
    let s = login(&d, 0).await;
    let cat: Value = s
        .req(Method::GET, format!("{}/auth/catalog", d.keystone(0)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cat["catalog"], s.catalog);
    let glance = s.url("image");
    let found: Value = s
        .req(
            Method::GET,
            format!("{glance}/v2/images?status=active&os_distro=ubuntu"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["images"].as_array().unwrap().len(), 1);
    let none: Value = s
        .req(Method::GET, format!("{glance}/v2/images?os_distro=centos"))
        .send()
        .await
        .unwrap()
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
            .req(Method::GET, format!("{}/v2/images", s.url("image")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["images"][0]["id"].clone()
    };
    let r: Value = s
        .req(Method::POST, format!("{nova}/servers"))
        .json(&json!({"server": {"name": "x", "imageRef": image, "flavorRef": "1", "networks": "none"}}))
        .send()
        .await
        .unwrap()
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
        .req(Method::POST, format!("{}/servers", s.url("compute")))
        .json(&json!({"server": {"name": "x", "imageRef": image, "flavorRef": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("<html>"));
}

async fn upload(s: &Session, data: &[u8]) -> (String, Value) {
    let glance = s.url("image");
    let r = s
        .req(Method::POST, format!("{glance}/v2/images"))
        .json(
            &json!({"name": "fedprobe-img", "disk_format": "raw", "container_format": "bare",
            "visibility": "private", "fedprobe": "1"}),
        )
        .send()
        .await
        .unwrap();
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
        .req(Method::GET, format!("{glance}/v2/images/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (id, v)
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
        .req(Method::GET, format!("{glance}/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    let r = s
        .req(Method::DELETE, format!("{glance}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s
        .req(Method::GET, format!("{glance}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Interoperable import: stage then import, importing -> active.
    let methods: Value = s
        .req(Method::GET, format!("{glance}/v2/info/import"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(methods["import-methods"]["value"]
        .as_array()
        .unwrap()
        .contains(&json!("glance-direct")));
    let img: Value = s
        .req(Method::POST, format!("{glance}/v2/images"))
        .json(&json!({"name": "imp", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap()
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
        .req(Method::POST, format!("{glance}/v2/images/{id}/import"))
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = s
        .req(Method::GET, format!("{glance}/v2/images/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "importing");
    // Protected images cannot be deleted.
    let base: Value = s
        .req(
            Method::GET,
            format!("{glance}/v2/images?name=EGI%20Ubuntu%2022.04"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base_id = base["images"][0]["id"].as_str().unwrap();
    let r = s
        .req(Method::DELETE, format!("{glance}/v2/images/{base_id}"))
        .send()
        .await
        .unwrap();
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
        .req(Method::POST, format!("{glance}/v2/images"))
        .json(&json!({"name": "h", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap()
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

// ------------------------------------------------------- end to end

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fedprobe")
}

fn read_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("fedprobe.json")).unwrap()).unwrap()
}

/// Every graded check of a capability, from the JSON report.
fn checks<'a>(v: &'a Value, site: usize, cap: &str) -> Vec<&'a Value> {
    let caps = v["sites"][site]["grade"]["capabilities"]
        .as_array()
        .unwrap();
    let c = caps.iter().find(|c| c["id"] == cap).unwrap();
    c["checks"].as_array().unwrap().iter().collect()
}

fn cap_status(v: &Value, site: usize, cap: &str) -> String {
    let caps = v["sites"][site]["grade"]["capabilities"]
        .as_array()
        .unwrap();
    caps.iter().find(|c| c["id"] == cap).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn probe_status(v: &Value, site: usize, probe: &str) -> String {
    let ps = v["sites"][site]["run"]["probes"].as_array().unwrap();
    ps.iter().find(|p| p["probe"] == probe).unwrap()["result"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn fedprobe_demo_writes_every_report_and_grades_the_guideline() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "demo",
            "--sites",
            "2",
            "--boot-delay",
            "0.3s",
            "--probe-timeout",
            "30s",
            "--quiet",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "demo exits 0 by default: {stdout}"
    );
    assert!(stdout.starts_with("FEDPROBE "), "{stdout}");
    for f in [
        "fedprobe.nagios.txt",
        "fedprobe.json",
        "fedprobe.junit.xml",
        "fedprobe.prom",
        "fedprobe-report.md",
        "fedprobe-report.html",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let v = read_json(dir.path());
    assert_eq!(v["sites"].as_array().unwrap().len(), 2);
    assert_eq!(v["guideline"]["id"], "eosc-iaas-2026.1");
    // Whatever the probes' state of completion: every probe ran, every
    // capability is graded, and the login against the demo works.
    for site in 0..2 {
        for p in [
            "check_token_auth",
            "check_vm_lifecycle",
            "check_image_upload",
            "check_usage",
            "check_glue",
        ] {
            let st = probe_status(&v, site, p);
            assert!(["OK", "WARNING", "CRITICAL", "UNKNOWN"].contains(&st.as_str()));
            // The demo implements what every probe exercises, APEL spool
            // and accounting last update included.
            assert_ne!(
                st, "CRITICAL",
                "{p} finds a fault in the fault-free demo: {v}"
            );
        }
        // Every required capability passes, the usage ones included.
        let grade = &v["sites"][site]["grade"];
        assert_eq!(grade["required_pct"], 100.0, "{grade}");
        assert_eq!(grade["passed"], true);
        for (cap, check) in [
            ("usage-per-vm", "USAGE-02"),
            ("accounting-records", "USAGE-04"),
            ("accounting-records", "USAGE-05"),
        ] {
            let c = checks(&v, site, cap);
            let c = c
                .iter()
                .find(|c| c["check"] == check)
                .unwrap_or_else(|| panic!("{check} graded under {cap}: {c:?}"));
            assert_eq!(c["outcome"], "pass", "{c}");
            assert_eq!(cap_status(&v, site, cap), "pass");
        }
        assert_eq!(probe_status(&v, site, "check_token_auth"), "OK");
        for c in checks(&v, site, "identity-oidc-federation") {
            assert_eq!(c["outcome"], "pass", "{c}");
        }
        assert_eq!(cap_status(&v, site, "identity-oidc-federation"), "pass");
        // No probe left anything behind on the demo cloud.
        for p in v["sites"][site]["run"]["probes"].as_array().unwrap() {
            for r in p["result"]["resources"].as_array().unwrap() {
                assert_eq!(r["cleanup"], "deleted", "{r}");
            }
        }
    }
    // Evidence: the probes ran with a full trace, every HTTP call recorded
    // with its answer and time, shown in the self-certification report.
    let auth = v["sites"][0]["run"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == "check_token_auth")
        .unwrap();
    assert!(auth["argv"].as_array().unwrap().contains(&json!("-vvv")));
    let trace = auth["result"]["details"].as_array().unwrap();
    assert!(
        trace.iter().any(|l| {
            let l = l.as_str().unwrap();
            l.starts_with("http: POST ") && l.contains("/OS-FEDERATION/") && l.contains("201")
        }),
        "{trace:?}"
    );
    let md = std::fs::read_to_string(dir.path().join("fedprobe-report.md")).unwrap();
    assert!(md.contains("http: POST "), "trace in the markdown evidence");
    let html = std::fs::read_to_string(dir.path().join("fedprobe-report.html")).unwrap();
    assert!(html.contains("every HTTP call"));
    let nagios = std::fs::read_to_string(dir.path().join("fedprobe.nagios.txt")).unwrap();
    assert_eq!(nagios, stdout, "stdout gets the Nagios report");
}

#[test]
fn fedprobe_demo_with_faults_reports_the_failing_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "demo",
            "--quiet",
            "--fault",
            "bad-token",
            "--fault",
            "error-state",
            "--fault",
            "stale-glue",
            "--fault",
            "wrong-checksum",
            "--fail-on",
            "critical",
            "--format",
            "json",
            "--probe-timeout",
            "20s",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let v = read_json(dir.path());
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stdout["totals"], v["totals"], "--format json on stdout");
    // A rejected token: AUTH-02 fails, the required identity capability fails.
    let auth = checks(&v, 0, "identity-oidc-federation");
    let a2 = auth
        .iter()
        .find(|c| c["check"] == "AUTH-02")
        .expect("AUTH-02 graded");
    assert_eq!(a2["outcome"], "fail");
    assert!(a2["message"].as_str().unwrap().contains("401"), "{a2}");
    assert_eq!(cap_status(&v, 0, "identity-oidc-federation"), "fail");
    assert_eq!(v["sites"][0]["grade"]["passed"], false);
    assert_eq!(v["status"], "CRITICAL");
    assert_eq!(out.status.code(), Some(2), "--fail-on critical");
    // The cloud probes log in first: none may pass with a rejected token.
    for cap in [
        "compute-vm-lifecycle",
        "image-upload-delete",
        "usage-per-vm",
    ] {
        assert_ne!(cap_status(&v, 0, cap), "pass", "{cap}");
        for c in checks(&v, 0, cap) {
            // Reading a public GLUE document needs no token; what follows
            // the login (the live comparison) is graded as not reached.
            if c["probe"] == "check_glue" && c["outcome"] == "pass" {
                continue;
            }
            assert_ne!(c["outcome"], "pass", "{cap}: {c}");
        }
    }
    // The GLUE publication is public and can be read, but it is stale, and
    // its consistency with the live site cannot pass without a login.
    assert_eq!(cap_status(&v, 0, "glue-publication"), "fail");
    for c in checks(&v, 0, "glue-publication") {
        if c["check"] == "GLUE-04" || c["check"] == "GLUE-05" {
            assert_ne!(c["outcome"], "pass", "{c}");
        }
    }
    let junit = std::fs::read_to_string(dir.path().join("fedprobe.junit.xml")).unwrap();
    assert!(junit.contains("<failure type=\"CRITICAL\""), "{junit}");
    let prom = std::fs::read_to_string(dir.path().join("fedprobe.prom")).unwrap();
    assert!(prom.contains("probe_success{site=\"DEMO-000\",probe=\"check_token_auth\"} 0"));
}

#[test]
fn fedprobe_demo_vm_and_image_faults_fail_those_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "demo",
            "--quiet",
            "--fault",
            "error-state",
            "--fault",
            "wrong-checksum",
            "--fault",
            "stale-glue",
            "--format",
            "json",
            "--probe-timeout",
            "20s",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "--fail-on never is the demo default");
    let v = read_json(dir.path());
    assert_eq!(cap_status(&v, 0, "identity-oidc-federation"), "pass");
    // A VM that goes to ERROR, an image whose checksum is wrong, a stale
    // publication: each capability must fail, never pass, with a real
    // probe (CRITICAL) or a placeholder (UNKNOWN, skipped).
    for (cap, probe) in [
        ("compute-vm-lifecycle", "check_vm_lifecycle"),
        ("image-upload-delete", "check_image_upload"),
        ("glue-publication", "check_glue"),
    ] {
        assert_eq!(cap_status(&v, 0, cap), "fail", "{cap}");
        let st = probe_status(&v, 0, probe);
        assert!(st == "CRITICAL" || st == "UNKNOWN", "{probe}: {st}");
        if st == "CRITICAL" {
            assert!(
                checks(&v, 0, cap).iter().any(|c| c["outcome"] == "fail"),
                "{cap}: a real probe must name the failing check"
            );
        }
    }
}

#[test]
fn fedprobe_run_with_a_profile_an_external_plugin_and_a_check_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = rt.block_on(demo(Faults::default()));
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("check_fake");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho 'FAKE WARNING - disk 91% \u{1b}[1m]]><b>|disk=91%;80;90'\necho 'long line one'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let slow = dir.path().join("check_slow");
    std::fs::write(&slow, "#!/bin/sh\nsleep 30\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let profile = format!(
        "{}\n[[external]]\nname = \"fake\"\ncommand = [\"{}\"]\n\n[[external]]\nname = \"slow\"\ncommand = [\"{}\"]\ntimeout = \"1s\"\n",
        d.profile_text(0, Some("20s")),
        plugin.display(),
        slow.display()
    );
    let pf = dir.path().join("site.toml");
    std::fs::write(&pf, profile).unwrap();
    let reports = dir.path().join("reports");
    let check = format!(
        "check_token_auth --endpoint {} --access-token '{}'",
        d.keystone(1),
        d.token_file.display()
    );
    let out = Command::new(bin())
        .args([
            "run",
            "--quiet",
            "--fail-on",
            "warning",
            "--jobs",
            "3",
            "--jobs-per-site",
            "1",
        ])
        .arg("--site")
        .arg(&pf)
        .arg("--check")
        .arg(&check)
        .arg("--check")
        .arg(format!("{} -H x", plugin.display()))
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code().unwrap() >= 1,
        "--fail-on warning: {stdout}"
    );
    let v = read_json(&reports);
    let sites = v["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2);
    let demo_site = sites
        .iter()
        .find(|s| s["run"]["site"] == "DEMO-000")
        .unwrap();
    let ext = demo_site["run"]["externals"].as_array().unwrap();
    let fake = ext.iter().find(|e| e["name"] == "fake").unwrap();
    assert_eq!(fake["status"], "WARNING");
    assert_eq!(fake["exit_code"], 1);
    assert_eq!(fake["perfdata"][0]["label"], "disk");
    assert_eq!(fake["long"][0], "long line one");
    let slow = ext.iter().find(|e| e["name"] == "slow").unwrap();
    assert_eq!(slow["status"], "UNKNOWN");
    assert!(slow["summary"].as_str().unwrap().contains("killed"));
    assert!(
        slow["duration"].as_f64().unwrap() < 20.0,
        "killed at its timeout"
    );
    // The command-line site: the probe line ran in-process and was graded.
    let cli = sites
        .iter()
        .find(|s| s["run"]["site"] == "command-line")
        .unwrap();
    assert_eq!(cli["run"]["probes"][0]["result"]["status"], "OK");
    assert_eq!(cli["grade"]["passed"], true);
    assert_eq!(cli["run"]["externals"][0]["status"], "WARNING");
    assert!(stdout.contains("external fake"), "{stdout}");
    assert!(
        !stdout.contains(&d.cloud.access_token),
        "secrets never printed"
    );
    let junit = std::fs::read_to_string(reports.join("fedprobe.junit.xml")).unwrap();
    assert!(junit.contains("command-line / external"));
    drop(d);
}

#[test]
fn check_guideline_accepts_the_embedded_one_and_names_problems() {
    let g = Path::new(env!("CARGO_MANIFEST_DIR")).join("guidelines/eosc-iaas-2026.1.toml");
    let out = Command::new(bin())
        .arg("check-guideline")
        .arg(&g)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK "));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("checks = [\"check_glue:GLUE-*\"]", "checks = []")
        .replace("[probes.check_glue]", "[probes.check_glue]\nretries = 3");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(bin())
        .arg("check-guideline")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("INVALID") && s.contains("retries"), "{s}");
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("checks = [\"check_glue:GLUE-*\"]", "checks = []");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(bin())
        .arg("check-guideline")
        .arg(&bad)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("glue-publication has no checks"), "{s}");
    assert!(
        s.contains("probe check_glue is run but its checks are referenced by no capability"),
        "{s}"
    );
}

#[test]
fn sigterm_stops_the_run_kills_plugins_and_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("r");
    let child = Command::new(bin())
        .args([
            "run",
            "--quiet",
            "--check",
            "sleep 120",
            "--check-timeout",
            "300s",
        ])
        .arg("--report-dir")
        .arg(&reports)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(60), "stopped promptly");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("harness stopped (signal); plugin killed"),
        "{stdout}"
    );
    let v = read_json(&reports);
    assert_eq!(v["sites"][0]["run"]["externals"][0]["status"], "UNKNOWN");
    assert_eq!(out.status.code(), Some(3));
}

/// Real Monitoring Plugins (Debian `monitoring-plugins-basic`) as externals.
#[tokio::test]
async fn real_nagios_plugins_run_as_externals() {
    use fedprobe::run::{run_external, ExternalPlan};
    let dir = Path::new("/usr/lib/nagios/plugins");
    if !dir.join("check_http").is_file() || !dir.join("check_tcp").is_file() {
        eprintln!(
            "SKIP real_nagios_plugins_run_as_externals: monitoring-plugins-basic not installed"
        );
        return;
    }
    let d = demo(Faults::default()).await;
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let plan = |name: &str, args: Vec<String>| ExternalPlan {
        name: name.into(),
        command: std::iter::once(dir.join(name).display().to_string())
            .chain(args)
            .collect(),
        timeout: Duration::from_secs(30),
    };
    let port = d.addr.port().to_string();
    let ok = run_external(
        &plan(
            "check_http",
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.clone(),
                "-u".into(),
                "/s0/identity/v3".into(),
                "-e".into(),
                "200".into(),
            ],
        ),
        stop.clone(),
    )
    .await;
    assert_eq!(ok.status, probes::model::Status::Ok, "{ok:?}");
    assert!(ok.summary.starts_with("HTTP OK"), "{}", ok.summary);
    assert!(
        ok.perfdata.iter().any(|p| p.label == "time"),
        "{:?}",
        ok.perfdata
    );
    assert!(
        ok.perfdata.iter().any(|p| p.label == "size"),
        "{:?}",
        ok.perfdata
    );
    // Keystone's root answers 300 Multiple Choices: -e 200 makes it CRITICAL.
    let bad = run_external(
        &plan(
            "check_http",
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port,
                "-u".into(),
                "/s0/identity/".into(),
                "-e".into(),
                "200".into(),
            ],
        ),
        stop.clone(),
    )
    .await;
    assert_eq!(bad.status, probes::model::Status::Critical, "{bad:?}");
    assert_eq!(bad.exit_code, Some(2));
    // A closed port: CRITICAL from check_tcp.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().port().to_string();
    drop(listener);
    let tcp = run_external(
        &plan(
            "check_tcp",
            vec!["-H".into(), "127.0.0.1".into(), "-p".into(), closed],
        ),
        stop,
    )
    .await;
    assert_eq!(tcp.status, probes::model::Status::Critical, "{tcp:?}");
    assert!(tcp.summary.contains("refused"), "{}", tcp.summary);
}

#[test]
fn slow_boot_and_hanging_uploads_fail_monitoring_friendliness_not_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new(bin())
        .args([
            "demo",
            "--quiet",
            "--fault",
            "slow-boot",
            "--fault",
            "hang",
            "--probe-timeout",
            "6s",
            "--format",
            "json",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    // Every probe is bounded by its own -t; the harness never waits on a hang.
    assert!(
        t0.elapsed() < Duration::from_secs(120),
        "{:?}",
        t0.elapsed()
    );
    let v = read_json(dir.path());
    for p in v["sites"][0]["run"]["probes"].as_array().unwrap() {
        let d = p["result"]["duration"].as_f64().unwrap();
        assert!(d < 30.0, "{} took {d}s with -t 6s", p["probe"]);
        for r in p["result"]["resources"].as_array().unwrap() {
            assert_eq!(
                r["cleanup"], "deleted",
                "cleaned up despite the timeout: {r}"
            );
        }
    }
    // The VM probe cuts its wait for ACTIVE to what -t leaves: the site fails
    // (slow boot), the probe stays monitoring-friendly. The hanging upload
    // runs the image probe into -t: that one is not.
    for (cap, probe, friendly) in [
        ("compute-vm-lifecycle", "check_vm_lifecycle", true),
        ("image-upload-delete", "check_image_upload", false),
    ] {
        assert_eq!(cap_status(&v, 0, cap), "fail", "{cap}");
        let run = checks(&v, 0, "monitoring-friendly")
            .into_iter()
            .find(|c| c["name"].as_str().unwrap().starts_with(probe))
            .unwrap()
            .clone();
        assert_eq!(run["outcome"] == "pass", friendly, "{run}");
    }
}

fn probe_run<'a>(v: &'a Value, site: usize, probe: &str) -> &'a Value {
    v["sites"][site]["run"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == probe)
        .unwrap()
}

fn run_demo(args: &[&str]) -> (std::process::Output, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("demo")
        .args(args)
        .args(["--quiet", "--probe-timeout", "30s"])
        .arg("--report-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let v = read_json(dir.path());
    (out, v, dir)
}

#[test]
fn check_usage_runs_after_the_vm_probe_and_finds_its_server() {
    let (out, v, _dir) = run_demo(&["--sites", "2", "--boot-delay", "0.5s"]);
    assert!(out.status.success());
    let mut ids = Vec::new();
    for site in 0..2 {
        let vm = probe_run(&v, site, "check_vm_lifecycle");
        let servers: Vec<&str> = vm["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "server")
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(servers.len(), 1, "{vm}");
        let id = servers[0];
        let usage = probe_run(&v, site, "check_usage");
        let argv: Vec<&str> = usage["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = argv
            .iter()
            .position(|a| *a == "--server-id")
            .expect("--server-id passed");
        assert_eq!(argv[at + 1], id, "this site's own VM server");
        // The server was created and deleted by then: Nova still accounts it
        // (terminated) with its flavor's sizes.
        let vm_end = vm["result"]["started_at"].as_f64().unwrap()
            + vm["result"]["duration"].as_f64().unwrap();
        assert!(
            usage["result"]["started_at"].as_f64().unwrap() >= vm_end - 0.01,
            "check_usage waits for check_vm_lifecycle"
        );
        let step = usage["result"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["check"] == "USAGE-02")
            .expect("USAGE-02 ran");
        assert_eq!(step["status"], "OK", "{step}");
        let msg = step["message"].as_str().unwrap();
        assert!(msg.contains(id), "{msg}");
        assert!(msg.contains("= flavor m1.small"), "{msg}");
        ids.push(id.to_string());
    }
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn one_job_per_site_still_chains_vm_and_usage() {
    // check_usage waits for the VM probe before taking the site's only slot.
    let (out, v, _dir) = run_demo(&["--jobs-per-site", "1", "--boot-delay", "0.3s"]);
    assert!(out.status.success());
    assert_eq!(v["sites"][0]["grade"]["required_pct"], 100.0);
    let usage = probe_run(&v, 0, "check_usage");
    assert!(usage["argv"]
        .as_array()
        .unwrap()
        .contains(&json!("--server-id")));
}

#[test]
fn stale_accounting_fails_accounting_records_only() {
    let (out, v, _dir) = run_demo(&["--fault", "stale-accounting", "--boot-delay", "0.3s"]);
    assert!(out.status.success(), "--fail-on never is the demo default");
    assert_eq!(cap_status(&v, 0, "accounting-records"), "fail");
    let c = checks(&v, 0, "accounting-records");
    let fresh = c.iter().find(|c| c["check"] == "USAGE-05").unwrap();
    assert_eq!(fresh["outcome"], "fail", "{fresh}");
    assert_eq!(fresh["status"], "CRITICAL", "{fresh}");
    let msg = fresh["message"].as_str().unwrap();
    assert!(msg.contains("40.0 days ago"), "{msg}");
    // The records themselves are still well formed, just old.
    let apel = c.iter().find(|c| c["check"] == "USAGE-04").unwrap();
    assert_eq!(apel["outcome"], "pass", "{apel}");
    for cap in [
        "usage-per-vm",
        "compute-vm-lifecycle",
        "identity-oidc-federation",
    ] {
        assert_eq!(cap_status(&v, 0, cap), "pass", "{cap}");
    }
    // Accounting is advisory: the site still passes, its status warns.
    let grade = &v["sites"][0]["grade"];
    assert_eq!(grade["passed"], true, "{grade}");
    assert_eq!(grade["status"], "WARNING");
    assert_eq!(probe_status(&v, 0, "check_usage"), "CRITICAL");
}

#[test]
fn a_rejected_token_fails_glue_publication_though_the_document_reads_fine() {
    let (_out, v, _dir) = run_demo(&["--fault", "bad-token"]);
    // GLUE-01..03 need no token and pass; the live comparison after the
    // login was never reached, so the capability cannot pass.
    assert_eq!(cap_status(&v, 0, "glue-publication"), "fail");
    let glue = checks(&v, 0, "glue-publication");
    assert!(
        glue.iter().any(|c| c["outcome"] == "fail"
            && c["message"].as_str().unwrap().contains("not reached")
            && c["message"].as_str().unwrap().contains("AUTH-02")),
        "{glue:?}"
    );
}
