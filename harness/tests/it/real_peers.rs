//! Against the real services (Keystone behind Apache + mod_auth_openidc, a
//! real OIDC provider, Nova, Glance, Neutron) when `peers.env` exists:
//! `fedprobe run` grades a real federated login, and the demo cloud answers
//! in the same shapes as the real services (every key they return).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use fakecloud::{FakeCloud, Options};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

fn peers() -> Option<BTreeMap<String, String>> {
    let path = std::env::var("FEDPROBE_PEERS_ENV")
        .unwrap_or_else(|_| "/tmp/fedprobe-peers/peers.env".into());
    let text = std::fs::read_to_string(&path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

macro_rules! peers_or_skip {
    ($name:expr) => {
        match peers() {
            Some(p) => p,
            None => {
                eprintln!(
                    "SKIP {}: no peers.env (set FEDPROBE_PEERS_ENV or start ci/peers)",
                    $name
                );
                return;
            }
        }
    };
}

fn client(p: &BTreeMap<String, String>) -> Client {
    probes::http::build_client(&probes::http::TlsOptions {
        ca_certs: vec![PathBuf::from(&p["CA_CERT"])],
        ..Default::default()
    })
    .unwrap()
}

async fn access_token(c: &Client, p: &BTreeMap<String, String>) -> Option<String> {
    let secret = std::fs::read_to_string(&p["OIDC_CLIENT_SECRET_FILE"]).ok()?;
    let scope = p["OIDC_SCOPES"].replace(',', " ");
    let r = c
        .post(&p["OIDC_TOKEN_ENDPOINT"])
        .basic_auth(&p["OIDC_CLIENT_ID"], Some(secret.trim()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["access_token"].as_str().map(str::to_string)
}

#[tokio::test]
async fn fedprobe_run_grades_a_real_federated_login() {
    let p = peers_or_skip!("fedprobe_run_grades_a_real_federated_login");
    let c = client(&p);
    let Some(at) = access_token(&c, &p).await else {
        eprintln!("SKIP fedprobe_run_grades_a_real_federated_login: OIDC provider gave no token");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("at");
    std::fs::write(&token, &at).unwrap();
    let profile = dir.path().join("site.toml");
    std::fs::write(
        &profile,
        format!(
            r#"site = "PEERS"
vos = ["{ops}"]
skip = ["check_vm_lifecycle", "check_image_upload", "check_usage", "check_glue", "check_network"]
[endpoints]
keystone = "{k}"
[credentials.access_token]
env = "FEDPROBE_TEST_PEERS_TOKEN"
[defaults]
ca-cert = "{ca}"
identity-provider = "{idp}"
[probe.check_token_auth]
optional-services = "network,volume,object-store,orchestration"
"#,
            ops = p["OPS_PROJECT_NAME"],
            k = p["KEYSTONE_URL"],
            ca = p["CA_CERT"],
            idp = p["IDP"],
        ),
    )
    .unwrap();
    let reports = dir.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "junit"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .env("FEDPROBE_TEST_PEERS_TOKEN", &at)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(&at[..20]),
        "the token never reaches the output"
    );
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("fedprobe.json")).unwrap())
            .unwrap();
    let site = &v["sites"][0];
    let auth = site["run"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == "check_token_auth")
        .unwrap();
    // The peers run Cinder and Swift (https fronts) but no orchestration service: AUTH-08
    // sees the first two and warns about exactly the third.
    assert_eq!(auth["result"]["status"], "WARNING", "{}", auth["result"]);
    let steps = auth["result"]["steps"].as_array().unwrap();
    let not_ok: Vec<&Value> = steps.iter().filter(|s| s["status"] != "OK").collect();
    assert_eq!(not_ok.len(), 1, "{not_ok:?}");
    assert_eq!(not_ok[0]["check"], "AUTH-08");
    let msg = not_ok[0]["message"].as_str().unwrap();
    assert!(msg.contains("orchestration: missing"), "{msg}");
    assert!(
        msg.contains(&format!("volume: {}/", p["CINDER_URL"])),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("object-store: {}/AUTH_", p["SWIFT_URL"])),
        "{msg}"
    );
    let caps = site["grade"]["capabilities"].as_array().unwrap();
    let id = caps
        .iter()
        .find(|c| c["id"] == "identity-oidc-federation")
        .unwrap();
    assert_eq!(id["status"], "pass", "{id}");
    assert!(id["checks"].as_array().unwrap().len() >= 2);
    // The skipped probes are reported as not run, never as passing.
    let vm = caps
        .iter()
        .find(|c| c["id"] == "compute-vm-lifecycle")
        .unwrap();
    assert_eq!(vm["status"], "fail");
    assert!(vm["checks"][0]["message"]
        .as_str()
        .unwrap()
        .contains("not run"));
    // A garbage token is a CRITICAL, failing AUTH-02 on the real Keystone.
    let bad = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "json"])
        .arg("--site")
        .arg(&profile)
        .env("FEDPROBE_TEST_PEERS_TOKEN", "not.a.jwt-at-all")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["status"], "CRITICAL", "{v}");
    assert_eq!(bad.status.code(), Some(2));
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every key the real service returned must be in the demo's answer.
fn same_shape(what: &str, real: &Value, demo: &Value, missing: &mut Vec<String>) {
    for k in keys(real).difference(&keys(demo)) {
        missing.push(format!("{what}: demo lacks {k:?}"));
    }
}

struct Login {
    c: Client,
    fed: Value,
    projects: Value,
    scoped: Value,
    token: String,
}

async fn login(c: Client, keystone: &str, at: &str, project: &str) -> Login {
    let r = c
        .post(format!(
            "{keystone}/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth"
        ))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{keystone}");
    let unscoped = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let fed: Value = r.json().await.unwrap();
    let projects: Value = c
        .get(format!("{keystone}/auth/projects"))
        .header("X-Auth-Token", &unscoped)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == project || project.is_empty())
        .unwrap_or(&projects["projects"][0])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .post(format!("{keystone}/auth/tokens"))
        .json(
            &json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": pid}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
    let scoped: Value = r.json().await.unwrap();
    Login {
        c,
        fed,
        projects,
        scoped,
        token,
    }
}

fn endpoint(cat: &Value, ty: &str) -> Option<String> {
    cat.as_array()?.iter().find(|s| s["type"] == ty)?["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["interface"] == "public")?["url"]
        .as_str()
        .map(|s| s.trim_end_matches('/').to_string())
}

async fn get(l: &Login, url: String) -> Value {
    l.c.request(Method::GET, url)
        .header("X-Auth-Token", &l.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_demo_answers_in_the_real_services_shapes() {
    let p = peers_or_skip!("the_demo_answers_in_the_real_services_shapes");
    let c = client(&p);
    let Some(at) = access_token(&c, &p).await else {
        eprintln!("SKIP the_demo_answers_in_the_real_services_shapes: OIDC provider gave no token");
        return;
    };
    let real = login(c, &p["KEYSTONE_URL"], &at, &p["OPS_PROJECT_NAME"]).await;
    let d = FakeCloud::start(Options::default()).await.unwrap();
    let demo = login(
        probes::http::build_client(&Default::default()).unwrap(),
        &d.keystone(0),
        &d.cloud.access_token,
        "ops",
    )
    .await;
    let mut missing = Vec::new();
    same_shape(
        "federation token",
        &real.fed["token"],
        &demo.fed["token"],
        &mut missing,
    );
    same_shape(
        "federation user",
        &real.fed["token"]["user"],
        &demo.fed["token"]["user"],
        &mut missing,
    );
    same_shape(
        "project",
        &real.projects["projects"][0],
        &demo.projects["projects"][0],
        &mut missing,
    );
    same_shape(
        "scoped token",
        &real.scoped["token"],
        &demo.scoped["token"],
        &mut missing,
    );
    let (rc, dc) = (
        &real.scoped["token"]["catalog"],
        &demo.scoped["token"]["catalog"],
    );
    same_shape("catalog entry", &rc[0], &dc[0], &mut missing);
    same_shape(
        "catalog endpoint",
        &rc[0]["endpoints"][0],
        &dc[0]["endpoints"][0],
        &mut missing,
    );
    // Nova: versions, flavors, networks.
    let (rn, dn) = (
        endpoint(rc, "compute").unwrap(),
        endpoint(dc, "compute").unwrap(),
    );
    let strip = |u: &str| u.trim_end_matches("/v2.1").to_string();
    let (rv, dv) = (get(&real, strip(&rn)).await, get(&demo, strip(&dn)).await);
    same_shape(
        "nova versions entry",
        &rv["versions"][0],
        &dv["versions"][0],
        &mut missing,
    );
    let (rf, df) = (
        get(&real, format!("{rn}/flavors/detail")).await,
        get(&demo, format!("{dn}/flavors/detail")).await,
    );
    same_shape("flavor", &rf["flavors"][0], &df["flavors"][0], &mut missing);
    if let (Some(rnet), Some(dnet)) = (endpoint(rc, "network"), endpoint(dc, "network")) {
        let (a, b) = (
            get(&real, format!("{rnet}/v2.0/networks")).await,
            get(&demo, format!("{dnet}/v2.0/networks")).await,
        );
        // Like with like: the listing's order follows random ids, and
        // external networks carry more attributes than project ones.
        let kind = |v: &Value, external: bool| {
            v["networks"]
                .as_array()
                .and_then(|l| l.iter().find(|n| n["router:external"] == external))
                .cloned()
        };
        for external in [false, true] {
            if let (Some(r), Some(d)) = (kind(&a, external), kind(&b, external)) {
                let what = if external {
                    "external network"
                } else {
                    "network"
                };
                same_shape(what, &r, &d, &mut missing);
            }
        }
    }
    // Glance: an image as created (queued), then deleted again.
    let (rg, dg) = (
        endpoint(rc, "image").unwrap(),
        endpoint(dc, "image").unwrap(),
    );
    let mut created = Vec::new();
    for (l, g) in [(&real, &rg), (&demo, &dg)] {
        let r =
            l.c.post(format!("{g}/v2/images"))
                .header("X-Auth-Token", &l.token)
                .json(&json!({"name": "fedprobe-shape-test", "disk_format": "raw",
                "container_format": "bare", "visibility": "private"}))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        let del =
            l.c.delete(format!("{g}/v2/images/{}", v["id"].as_str().unwrap()))
                .header("X-Auth-Token", &l.token)
                .send()
                .await
                .unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);
        created.push(v);
    }
    same_shape("queued image", &created[0], &created[1], &mut missing);
    let (ri, di) = (
        get(&real, format!("{rg}/v2/info/import")).await,
        get(&demo, format!("{dg}/v2/info/import")).await,
    );
    same_shape(
        "import info",
        &ri["import-methods"],
        &di["import-methods"],
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "demo differs from the real services:\n{}",
        missing.join("\n")
    );
}

async fn send(l: &Login, m: Method, url: String, body: Option<Value>) -> (StatusCode, Value) {
    let mut r =
        l.c.request(m, url)
            .header("X-Auth-Token", &l.token)
            .header("OpenStack-API-Version", "compute 2.37");
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let st = resp.status();
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// Create a server, see it ACTIVE, delete it, see 404; upload an image and
/// read it back: the same calls on both, every real key in the demo's answer.
#[tokio::test]
async fn the_demo_lifecycles_match_the_real_services() {
    let p = peers_or_skip!("the_demo_lifecycles_match_the_real_services");
    let c = client(&p);
    let Some(at) = access_token(&c, &p).await else {
        eprintln!("SKIP the_demo_lifecycles_match_the_real_services: OIDC provider gave no token");
        return;
    };
    let real = login(c, &p["KEYSTONE_URL"], &at, &p["OPS_PROJECT_NAME"]).await;
    let d = FakeCloud::start(Options {
        boot_delay: std::time::Duration::from_millis(300),
        ..Options::default()
    })
    .await
    .unwrap();
    let demo = login(
        probes::http::build_client(&Default::default()).unwrap(),
        &d.keystone(0),
        &d.cloud.access_token,
        "ops",
    )
    .await;
    let mut missing = Vec::new();
    let mut answers: Vec<BTreeMap<&str, Value>> = Vec::new();
    for (l, image, flavor) in [
        (&real, p["IMAGE_ID"].clone(), p["FLAVOR_TINY_ID"].clone()),
        (&demo, String::new(), "1".to_string()),
    ] {
        let cat = &l.scoped["token"]["catalog"];
        let nova = endpoint(cat, "compute").unwrap();
        let glance = endpoint(cat, "image").unwrap();
        let image = if image.is_empty() {
            get(l, format!("{glance}/v2/images")).await["images"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        } else {
            image
        };
        let mut a = BTreeMap::new();
        let (st, created) = send(
            l,
            Method::POST,
            format!("{nova}/servers"),
            Some(
                json!({"server": {"name": "fedprobe-shape-test", "imageRef": image,
                "flavorRef": flavor, "networks": "none"}}),
            ),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{created}");
        let id = created["server"]["id"].as_str().unwrap().to_string();
        a.insert("create", created["server"].clone());
        let mut last = Value::Null;
        for _ in 0..600 {
            let (_, v) = send(l, Method::GET, format!("{nova}/servers/{id}"), None).await;
            last = v;
            if last["server"]["status"] != "BUILD" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        a.insert("server", last["server"].clone());
        let (st, _) = send(l, Method::DELETE, format!("{nova}/servers/{id}"), None).await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let mut gone = Value::Null;
        for _ in 0..600 {
            let (st, v) = send(l, Method::GET, format!("{nova}/servers/{id}"), None).await;
            if st == StatusCode::NOT_FOUND {
                gone = v;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(gone.is_object(), "server {id} never went away");
        a.insert("gone", gone);
        let pid = l.scoped["token"]["project"]["id"].as_str().unwrap();
        // MariaDB rounds launched_at to the second and Nova caps `end` at now:
        // a server younger than a second may be missing; ask again briefly.
        let mut usage = Value::Null;
        let mut row = Value::Null;
        for _ in 0..10 {
            (_, usage) = send(
                l,
                Method::GET,
                format!("{nova}/os-simple-tenant-usage/{pid}?start=2020-01-01T00:00:00&end=2999-01-01T00:00:00"),
                None,
            )
            .await;
            row = usage["tenant_usage"]["server_usages"]
                .as_array()
                .and_then(|rows| {
                    rows.iter()
                        .find(|u| u["instance_id"] == id.as_str())
                        .cloned()
                })
                .unwrap_or(Value::Null);
            if row.is_object() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        a.insert("usage", usage["tenant_usage"].clone());
        a.insert("usage row", row);
        // Glance: create, upload, read, delete.
        let (_, img) = send(
            l,
            Method::POST,
            format!("{glance}/v2/images"),
            Some(json!({"name": "fedprobe-shape-test", "disk_format": "raw",
                "container_format": "bare", "visibility": "private"})),
        )
        .await;
        let iid = img["id"].as_str().unwrap().to_string();
        let up =
            l.c.put(format!("{glance}/v2/images/{iid}/file"))
                .header("X-Auth-Token", &l.token)
                .header("Content-Type", "application/octet-stream")
                .body(vec![7u8; 4096])
                .send()
                .await
                .unwrap();
        let up_status = up.status();
        let (_, active) = send(l, Method::GET, format!("{glance}/v2/images/{iid}"), None).await;
        let (st, _) = send(l, Method::DELETE, format!("{glance}/v2/images/{iid}"), None).await;
        assert_eq!(up_status, StatusCode::NO_CONTENT);
        assert_eq!(st, StatusCode::NO_CONTENT);
        a.insert("image", active);
        answers.push(a);
    }
    let (r, dm) = (&answers[0], &answers[1]);
    assert_eq!(r["server"]["status"], "ACTIVE", "{}", r["server"]);
    assert_eq!(dm["server"]["status"], "ACTIVE");
    assert_eq!(
        r["image"]["checksum"], dm["image"]["checksum"],
        "same bytes, same MD5"
    );
    assert!(
        r["usage row"].is_object(),
        "the deleted server is in the real usage"
    );
    assert!(
        dm["usage row"].is_object(),
        "the deleted server is in the demo usage"
    );
    assert_eq!(dm["usage row"]["state"], r["usage row"]["state"]);
    for k in ["create", "server", "gone", "image", "usage", "usage row"] {
        same_shape(k, &r[k], &dm[k], &mut missing);
    }
    same_shape(
        "server flavor",
        &r["server"]["flavor"],
        &dm["server"]["flavor"],
        &mut missing,
    );
    same_shape(
        "404 body",
        &r["gone"]["itemNotFound"],
        &dm["gone"]["itemNotFound"],
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "demo differs from the real services:\n{}",
        missing.join("\n")
    );
}

/// The harness chains check_usage after check_vm_lifecycle on a real Nova:
/// the server the VM probe created and deleted is in the real usage with
/// its flavor's sizes.
#[tokio::test]
async fn fedprobe_run_finds_the_vm_probes_server_in_the_real_usage() {
    const NAME: &str = "fedprobe_run_finds_the_vm_probes_server_in_the_real_usage";
    let p = peers_or_skip!(NAME);
    let c = client(&p);
    let Some(at) = access_token(&c, &p).await else {
        eprintln!("SKIP {NAME}: OIDC provider gave no token");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("site.toml");
    std::fs::write(
        &profile,
        format!(
            r#"site = "PEERS"
vos = ["{ops}"]
skip = ["check_token_auth", "check_image_upload", "check_glue"]
[endpoints]
keystone = "{k}"
[credentials.access_token]
env = "FEDPROBE_TEST_PEERS_TOKEN"
[defaults]
ca-cert = "{ca}"
identity-provider = "{idp}"
region = "{region}"
[probe.check_vm_lifecycle]
appdb-image = "{image}"
"#,
            ops = p["OPS_PROJECT_NAME"],
            k = p["KEYSTONE_URL"],
            ca = p["CA_CERT"],
            idp = p["IDP"],
            region = p["REGION"],
            image = p["IMAGE_APPDB_ID"],
        ),
    )
    .unwrap();
    let reports = dir.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_fedprobe"))
        .args(["run", "--quiet", "--format", "json"])
        .arg("--site")
        .arg(&profile)
        .arg("--report-dir")
        .arg(&reports)
        .env("FEDPROBE_TEST_PEERS_TOKEN", &at)
        .output()
        .unwrap();
    assert!(out.status.code().is_some());
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("fedprobe.json")).unwrap())
            .unwrap();
    let probes = v["sites"][0]["run"]["probes"].as_array().unwrap();
    let find = |name: &str| probes.iter().find(|x| x["probe"] == name).unwrap();
    let vm = find("check_vm_lifecycle");
    assert_eq!(vm["result"]["status"], "OK", "{}", vm["result"]);
    let server = vm["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "server")
        .expect("the VM probe created a server");
    assert_eq!(server["cleanup"], "deleted");
    let id = server["id"].as_str().unwrap();
    let usage = find("check_usage");
    let argv = usage["argv"].as_array().unwrap();
    let at_flag = argv
        .iter()
        .position(|a| a == "--server-id")
        .expect("--server-id passed");
    assert_eq!(argv[at_flag + 1], id);
    let step = usage["result"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == "USAGE-02")
        .unwrap_or_else(|| panic!("USAGE-02 ran: {}", usage["result"]));
    assert_eq!(step["status"], "OK", "{step}");
    let msg = step["message"].as_str().unwrap();
    assert!(msg.contains(id) && msg.contains("= flavor"), "{msg}");
    eprintln!("real chain: {msg}");
}
