//! check_vm_lifecycle's quota stage (VM-09): Nova's absolute limits against
//! the chosen flavor, read before anything is created. Against the mock
//! cloud, and against the real Nova in a project of its own (made here as
//! admin with an instances quota of 0, logged into with an admin-made
//! password user through the peers' https Keystone; removed at the end).

use std::time::Duration;

use serde_json::{json, Value};

use crate::mockcloud::{run, MockCloud};
use crate::realpeers::{run_bin, Peers};
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::render::nagios;
use probes::Status;

const BIN: &str = env!("CARGO_BIN_EXE_check_vm_lifecycle");

fn argv(c: &MockCloud) -> Vec<String> {
    c.argv(&[
        "--registry-image",
        "registry.egi.eu/egi_vm_images/monitoring:1.0",
        "--argo-host-name",
        "quota.test.example",
    ])
}

#[tokio::test]
async fn room_in_the_quota_is_ok_and_shown() {
    let c = MockCloud::start().await;
    let r = run::<VmLifecycle>(&argv(&c)).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Ok, "{out}");
    assert!(
        out.contains("[OK] VM-09 room in the compute quota: room for one more server of m1.probe: instances 0+1 of 10, cores 0+1 of 20, RAM MB 0+1024 of unlimited"),
        "{out}"
    );
}

#[tokio::test]
async fn no_room_is_critical_at_the_quota_stage_and_nothing_is_created() {
    let c = MockCloud::start().await;
    c.nova.0.lock().unwrap().max_instances = Some(0);
    let r = run::<VmLifecycle>(&argv(&c)).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(
        out.starts_with("VM_LIFECYCLE CRITICAL - VM-09 room in the compute quota: no room for one more server of flavor m1.probe: instances 0 in use, limit 0, one more server needs 1; nothing created"),
        "{out}"
    );
    let calls = c.calls().await;
    assert!(
        !calls.iter().any(|x| x == "POST /compute/v2.1/servers"),
        "{calls:?}"
    );
    assert!(!out.contains("VM-06"), "{out}");
}

#[tokio::test]
async fn unreadable_limits_are_a_warning_and_the_run_goes_on() {
    let c = MockCloud::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/compute/v2.1/limits"))
        .respond_with(wiremock::ResponseTemplate::new(403).set_body_json(
            json!({"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:limits to be performed."}}),
        ))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c)).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Warning, "{out}");
    assert!(
        out.contains("[WARNING] VM-09 room in the compute quota: quota not readable"),
        "{out}"
    );
    assert!(out.contains("[OK] VM-08"), "{out}");
}

// ------------------------------------------------------------- real Nova

/// Admin calls on the peers' direct (http, loopback) Keystone and Nova.
struct Admin<'a> {
    p: &'a Peers,
    token: String,
}

impl Admin<'_> {
    async fn call(&self, m: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .p
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

    fn keystone(&self, path: &str) -> String {
        format!("{}/{path}", self.p.get("KEYSTONE_DIRECT_URL"))
    }
}

#[tokio::test]
async fn real_nova_project_with_no_instances_left_ends_critical_at_the_quota_stage() {
    const TEST: &str = "real_nova_project_with_no_instances_left_ends_critical_at_the_quota_stage";
    let Some(p) = Peers::load(TEST) else {
        panic!("{TEST}: the real peers are needed (ci/peers/up.sh)");
    };
    use reqwest::Method;
    let a = Admin {
        token: p.admin_token().await,
        p: &p,
    };
    let name = format!(
        "fedprobe-quota-{}-{}",
        std::process::id(),
        probes::backend::run_id()
    );
    let (code, v) = a
        .call(
            Method::POST,
            a.keystone("projects"),
            Some(json!({"project": {"name": name, "domain_id": "default",
                "description": "check_vm_lifecycle quota test; deleted at its end"}})),
        )
        .await;
    assert_eq!(code, 201, "create project: {v}");
    let project = v["project"]["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let password = format!("pw-{}", probes::backend::run_id());
    let pw_file = dir.path().join("password");
    std::fs::write(&pw_file, &password).unwrap();
    let (code, v) = a
        .call(
            Method::POST,
            a.keystone("users"),
            Some(
                json!({"user": {"name": name, "domain_id": "default", "password": password,
                "default_project_id": project}}),
            ),
        )
        .await;
    assert_eq!(code, 201, "create user: {v}");
    let user = v["user"]["id"].as_str().unwrap().to_string();

    let outcome = async {
        let (_, roles) = a
            .call(Method::GET, a.keystone("roles?name=member"), None)
            .await;
        let role = roles["roles"][0]["id"]
            .as_str()
            .expect("member role")
            .to_string();
        let (code, v) = a
            .call(
                Method::PUT,
                a.keystone(&format!("projects/{project}/users/{user}/roles/{role}")),
                None,
            )
            .await;
        assert_eq!(code, 204, "role: {v}");
        let quota = format!("{}/os-quota-sets/{project}", p.get("NOVA_DIRECT_URL"));
        let (code, v) = a
            .call(
                Method::PUT,
                quota.clone(),
                Some(json!({"quota_set": {"instances": 0}})),
            )
            .await;
        assert_eq!(code, 200, "quota: {v}");
        let args: Vec<String> = [
            "-t",
            "120",
            "-v",
            "--endpoint",
            p.get("KEYSTONE_URL"),
            "--username",
            &name,
            "--password-file",
            &pw_file.display().to_string(),
            "--user-domain",
            "Default",
            "--project",
            &name,
            "--project-domain",
            "Default",
            "--image",
            p.get("IMAGE_ID"),
            "--flavor",
            p.get("FLAVOR_NAME"),
            "--ca-cert",
            p.get("CA_CERT"),
            "--argo-host-name",
            &name,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (code, out, _, _) = run_bin(BIN, &args).await;
        let servers: Vec<Value> = p
            .all_servers(&a.token)
            .await
            .into_iter()
            .filter(|s| s["tenant_id"] == project.as_str())
            .collect();
        a.call(Method::DELETE, quota, None).await;
        (code, out, servers)
    }
    .await;
    let (c1, _) = a
        .call(Method::DELETE, a.keystone(&format!("users/{user}")), None)
        .await;
    let (c2, _) = a
        .call(
            Method::DELETE,
            a.keystone(&format!("projects/{project}")),
            None,
        )
        .await;
    let (code, out, servers) = outcome;
    assert_eq!(code, 2, "{out}");
    let flavor = p.get("FLAVOR_NAME");
    assert!(
        out.starts_with(&format!("VM_LIFECYCLE CRITICAL - VM-09 room in the compute quota: no room for one more server of flavor {flavor}: instances 0 in use, limit 0, one more server needs 1; nothing created")),
        "{out}"
    );
    assert!(out.contains("[OK] AUTH-04"), "{out}");
    assert!(!out.contains("VM-06"), "{out}");
    assert!(
        servers.is_empty(),
        "servers in the quota project: {servers:?}"
    );
    assert_eq!((c1, c2), (204, 204), "cleanup of user and project");
}
