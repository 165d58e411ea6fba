//! check_glue's accelerator checks (ACCEL-01/02) against the real Nova and
//! the real cloud-info-provider. As admin the test makes its own project,
//! password user and private flavor with `Accelerator:*` properties (access
//! for its project only, so no shared project sees it), publishes that
//! project with the producer (ci/producers/cloud_info_for.sh, into a file of
//! its own), runs check_glue, then changes the flavor; everything is deleted
//! at the end, whatever happened.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::realpeers::Peers;
use probes::checks::glue::Glue;
use probes::model::{ProbeResult, Status};
use probes::probe::run_args;
use probes::render::nagios;

const VO: &str = "accel.test";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Admin calls on the peers' direct (http, loopback) Keystone and Nova.
struct Admin {
    client: reqwest::Client,
    token: String,
    keystone: String,
    nova: String,
}

impl Admin {
    async fn call(&self, m: Method, url: String, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(m, &url)
            .header("X-Auth-Token", &self.token)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn set_specs(&self, flavor: &str, specs: Value) {
        let (code, v) = self
            .call(
                Method::POST,
                format!("{}/flavors/{flavor}/os-extra_specs", self.nova),
                Some(json!({ "extra_specs": specs })),
            )
            .await;
        assert_eq!(code, 200, "extra specs: {v}");
    }
}

/// What the test made, deleted at its end.
struct Made {
    name: String,
    project: String,
    user: String,
    flavor: String,
    dir: tempfile::TempDir,
}

impl Made {
    fn file(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// The real producer for this project; its exit status and stderr.
    fn publish(&self, out: &str) -> (bool, String) {
        let o = Command::new("bash")
            .arg(repo().join("ci/producers/cloud_info_for.sh"))
            .arg(self.file("clouds.yaml"))
            .arg("accel")
            .arg(self.file("site.yaml"))
            .arg(self.file(out))
            .output()
            .expect("run cloud_info_for.sh");
        let err = std::fs::read_to_string(self.file(&format!("{out}.err"))).unwrap_or_default();
        (
            o.status.success(),
            format!(
                "{}{}{err}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    async fn check(&self, p: &Peers, glue: &str) -> (ProbeResult, String) {
        let argv: Vec<String> = [
            "-v",
            "--glue-file",
            &self.file(glue).display().to_string(),
            "--endpoint",
            p.get("KEYSTONE_URL"),
            "--username",
            &self.name,
            "--password-file",
            &self.file("password").display().to_string(),
            "--user-domain",
            "Default",
            "--project",
            &self.name,
            "--project-domain",
            "Default",
            "--ca-cert",
            p.get("CA_CERT"),
            "--glue-vo",
            VO,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = run_args::<Glue, _>(&argv).await;
        let out = nagios::render(&r, 1);
        (r, out)
    }
}

fn step<'a>(r: &'a ProbeResult, id: &str) -> &'a probes::model::Step {
    r.steps
        .iter()
        .find(|s| s.check == id)
        .unwrap_or_else(|| panic!("no {id} step: {r:#?}"))
}

async fn setup(p: &Peers, a: &Admin) -> Made {
    let name = format!(
        "fedprobe-accel-{}-{}",
        std::process::id(),
        probes::backend::run_id()
    );
    let ks = |path: &str| format!("{}/{path}", a.keystone);
    let (code, v) = a
        .call(
            Method::POST,
            ks("projects"),
            Some(json!({"project": {"name": name, "domain_id": "default",
                "description": "check_glue accelerator test; deleted at its end"}})),
        )
        .await;
    assert_eq!(code, 201, "create project: {v}");
    let project = v["project"]["id"].as_str().unwrap().to_string();
    let password = format!("pw-{}", probes::backend::run_id());
    let (code, v) = a
        .call(
            Method::POST,
            ks("users"),
            Some(
                json!({"user": {"name": name, "domain_id": "default", "password": password,
                "default_project_id": project}}),
            ),
        )
        .await;
    assert_eq!(code, 201, "create user: {v}");
    let user = v["user"]["id"].as_str().unwrap().to_string();
    let (code, v) = a
        .call(
            Method::POST,
            format!("{}/flavors", a.nova),
            Some(
                json!({"flavor": {"name": name, "ram": 512, "vcpus": 1, "disk": 1,
                "os-flavor-access:is_public": false}}),
            ),
        )
        .await;
    assert_eq!(code, 200, "create flavor: {v}");
    let flavor = v["flavor"]["id"].as_str().unwrap().to_string();
    let made = Made {
        name,
        project,
        user,
        flavor,
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(made.file("password"), &password).unwrap();
    std::fs::write(
        made.file("clouds.yaml"),
        format!(
            "clouds:\n  accel:\n    auth_type: password\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      user_domain_name: Default\n      project_id: {}\n    cacert: {}\n    region_name: {}\n",
            p.get("KEYSTONE_URL"),
            made.name,
            password,
            made.project,
            p.get("CA_CERT"),
            p.get("REGION")
        ),
    )
    .unwrap();
    std::fs::write(
        made.file("site.yaml"),
        format!(
            "gocdb: FEDPROBE-TEST\nendpoint: {}\nvos:\n  - name: {VO}\n    auth:\n      project_id: {}\n",
            p.get("KEYSTONE_URL"),
            made.project
        ),
    )
    .unwrap();
    made
}

async fn grant(a: &Admin, m: &Made) {
    let ks = |path: &str| format!("{}/{path}", a.keystone);
    let (_, roles) = a.call(Method::GET, ks("roles?name=member"), None).await;
    let role = roles["roles"][0]["id"].as_str().expect("member role");
    let (code, v) = a
        .call(
            Method::PUT,
            ks(&format!(
                "projects/{}/users/{}/roles/{role}",
                m.project, m.user
            )),
            None,
        )
        .await;
    assert_eq!(code, 204, "role: {v}");
    let (code, v) = a
        .call(
            Method::POST,
            format!("{}/flavors/{}/action", a.nova, m.flavor),
            Some(json!({"addTenantAccess": {"tenant": m.project}})),
        )
        .await;
    assert_eq!(code, 200, "flavor access: {v}");
}

async fn teardown(a: &Admin, m: &Made) -> Vec<u16> {
    let ks = |path: &str| format!("{}/{path}", a.keystone);
    vec![
        a.call(
            Method::DELETE,
            format!("{}/flavors/{}", a.nova, m.flavor),
            None,
        )
        .await
        .0,
        a.call(Method::DELETE, ks(&format!("users/{}", m.user)), None)
            .await
            .0,
        a.call(Method::DELETE, ks(&format!("projects/{}", m.project)), None)
            .await
            .0,
    ]
}

/// The body, run while the project, user and flavor exist.
async fn body(p: &Peers, a: &Admin, m: &Made) {
    grant(a, m).await;
    a.set_specs(
        &m.flavor,
        json!({"Accelerator:Type": "GPU", "Accelerator:Number": "2",
            "Accelerator:Vendor": "NVIDIA", "Accelerator:Model": "A100",
            "Accelerator:Memory": "40G"}),
    )
    .await;

    // 1. Well formed and published alike by the real producer: OK.
    let (ok, log) = m.publish("glue.json");
    assert!(ok, "cloud-info-provider: {log}");
    let doc: Value = serde_json::from_slice(&std::fs::read(m.file("glue.json")).unwrap()).unwrap();
    let accs = doc["CloudComputingVirtualAccelerator"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        accs.iter()
            .any(|x| x["ID"] == json!(format!("{}_gpu", m.flavor)) && x["Number"] == json!(2)),
        "producer's accelerators: {accs:?}"
    );
    let (r, out) = m.check(p, "glue.json").await;
    assert_eq!(r.status, Status::Ok, "{out}");
    let s = step(&r, "ACCEL-01");
    assert_eq!(s.status, Status::Ok, "{out}");
    assert!(
        s.message
            .contains(&format!("{} GPU x2 NVIDIA A100", m.name)),
        "{out}"
    );
    let s = step(&r, "ACCEL-02");
    assert_eq!(s.status, Status::Ok, "{out}");
    assert!(
        s.message
            .contains("1 accelerator flavor(s) published alike in file"),
        "{out}"
    );
    assert!(r
        .perfdata
        .iter()
        .any(|x| x.label == "accelerator_flavors" && x.value == Some(1.0)));
    assert!(r
        .perfdata
        .iter()
        .any(|x| x.label == "accelerator_mismatches" && x.value == Some(0.0)));

    // 2. The flavor changed after publication: WARNING naming the difference.
    a.set_specs(&m.flavor, json!({"Accelerator:Number": "4"}))
        .await;
    let (r, out) = m.check(p, "glue.json").await;
    assert_eq!(r.status, Status::Warning, "{out}");
    let s = step(&r, "ACCEL-02");
    assert_eq!(s.status, Status::Warning, "{out}");
    assert!(
        s.message.contains(&format!(
            "file: flavor {} ({}): number 4 in Nova, 2 published",
            m.name, m.flavor
        )),
        "{out}"
    );

    // 3. An FPGA flavor, freshly published: the producer still says GPU.
    a.set_specs(
        &m.flavor,
        json!({"Accelerator:Type": "FPGA", "Accelerator:Number": "1"}),
    )
    .await;
    let (ok, log) = m.publish("glue-fpga.json");
    assert!(ok, "cloud-info-provider: {log}");
    let (r, out) = m.check(p, "glue-fpga.json").await;
    assert_eq!(r.status, Status::Warning, "{out}");
    assert!(
        step(&r, "ACCEL-02").message.contains(
            "type FPGA in Nova, GPU published (cloud-info-provider publishes every accelerator as GPU)"
        ),
        "{out}"
    );

    // 4. Number not a number: the producer fails the whole publication, and
    // check_glue names the flavor's property at ACCEL-01.
    a.set_specs(
        &m.flavor,
        json!({"Accelerator:Type": "GPU", "Accelerator:Number": "zero"}),
    )
    .await;
    let (ok, log) = m.publish("glue-zero.json");
    assert!(!ok, "the producer accepted Number=zero: {log}");
    assert!(log.contains("valid integer"), "{log}");
    let (r, out) = m.check(p, "glue.json").await;
    assert_eq!(r.status, Status::Critical, "{out}");
    let s = step(&r, "ACCEL-01");
    assert_eq!(s.status, Status::Critical, "{out}");
    assert!(
        s.message.contains(&format!(
            "flavor {} ({}): Accelerator:Number \"zero\" is not a whole number",
            m.name, m.flavor
        )),
        "{out}"
    );
    assert!(out.contains("CRITICAL - ACCEL-01"), "{out}");

    // 5. An unknown type: ACCEL-01 CRITICAL again.
    a.set_specs(
        &m.flavor,
        json!({"Accelerator:Type": "TPU", "Accelerator:Number": "1"}),
    )
    .await;
    let (r, out) = m.check(p, "glue.json").await;
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(
        step(&r, "ACCEL-01")
            .message
            .contains("Accelerator:Type \"TPU\" is not one of GPU, FPGA, MIC"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accelerator_flavors_against_the_real_nova_and_producer() {
    const TEST: &str = "accelerator_flavors_against_the_real_nova_and_producer";
    let Some(p) = Peers::load(TEST) else {
        panic!("{TEST}: the real peers are needed (ci/peers/up.sh)");
    };
    let a = Admin {
        client: p.client.clone(),
        token: p.admin_token().await,
        keystone: p.get("KEYSTONE_DIRECT_URL").to_string(),
        nova: p.get("NOVA_DIRECT_URL").to_string(),
    };
    let made = setup(&p, &a).await;
    let outcome = tokio::spawn(async move {
        let p = Peers::load(TEST).expect("peers");
        let a = Admin {
            client: p.client.clone(),
            token: p.admin_token().await,
            keystone: p.get("KEYSTONE_DIRECT_URL").to_string(),
            nova: p.get("NOVA_DIRECT_URL").to_string(),
        };
        body(&p, &a, &made).await;
        made
    })
    .await;
    match outcome {
        Ok(made) => {
            let codes = teardown(&a, &made).await;
            assert_eq!(
                codes,
                vec![202, 204, 204],
                "cleanup of flavor, user, project"
            );
        }
        Err(e) => {
            // The body panicked with `made` inside: find what it left by name.
            let name_prefix = format!("fedprobe-accel-{}-", std::process::id());
            cleanup_by_name(&a, &name_prefix).await;
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// After a failed body: delete this process's flavor, user and project.
async fn cleanup_by_name(a: &Admin, prefix: &str) {
    let (_, v) = a
        .call(
            Method::GET,
            format!("{}/flavors/detail?is_public=None", a.nova),
            None,
        )
        .await;
    for f in v["flavors"].as_array().cloned().unwrap_or_default() {
        if f["name"].as_str().is_some_and(|n| n.starts_with(prefix)) {
            let id = f["id"].as_str().unwrap_or_default();
            a.call(Method::DELETE, format!("{}/flavors/{id}", a.nova), None)
                .await;
        }
    }
    for (kind, key) in [("users", "users"), ("projects", "projects")] {
        let (_, v) = a
            .call(Method::GET, format!("{}/{kind}", a.keystone), None)
            .await;
        for x in v[key].as_array().cloned().unwrap_or_default() {
            if x["name"].as_str().is_some_and(|n| n.starts_with(prefix)) {
                let id = x["id"].as_str().unwrap_or_default();
                a.call(Method::DELETE, format!("{}/{kind}/{id}", a.keystone), None)
                    .await;
            }
        }
    }
}
