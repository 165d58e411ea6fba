//! check_vm_lifecycle against a wiremock OpenStack: the faults a real Nova
//! will not produce on demand, and the cleanup promises around them.

use crate::mockcloud;

use mockcloud::{run, MockCloud};
use probes::checks::vm_lifecycle::VmLifecycle;
use probes::model::Cleanup;
use probes::render::nagios;
use probes::Status;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const HOST: &str = "mon.test.example";

fn argv(c: &MockCloud, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--registry-image",
        "registry.egi.eu/egi_vm_images/monitoring:1.0",
    ];
    v.extend(["--argo-host-name", HOST]);
    v.extend(extra);
    c.argv(&v)
}

fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| *c == call).count()
}

#[tokio::test]
async fn happy_path_creates_tags_waits_and_deletes() {
    let c = MockCloud::start().await;
    c.nova.0.lock().unwrap().script = vec!["BUILD".into(), "BUILD".into(), "ACTIVE".into()];
    let r = run::<VmLifecycle>(&argv(&c, &["-w", "60", "-c", "120"])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Ok, "{out}");
    assert!(
        r.summary.starts_with("Compute instance=srv-1 created("),
        "{}",
        r.summary
    );
    let perf: Vec<&str> = r.perfdata.iter().map(|p| p.label.as_str()).collect();
    for l in ["auth", "create", "delete", "polls", "total"] {
        assert!(perf.contains(&l), "perfdata {perf:?} lacks {l}");
    }
    let create = r.perfdata.iter().find(|p| p.label == "create").unwrap();
    assert!(create.warn.is_some() && create.crit.is_some());
    let polls = r.perfdata.iter().find(|p| p.label == "polls").unwrap();
    assert_eq!(polls.value, Some(3.0));
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);

    let reqs = c.requests().await;
    let post = reqs
        .iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path() == "/compute/v2.1/servers")
        .expect("server created");
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    let s = &body["server"];
    assert!(s["name"].as_str().unwrap().starts_with("fedprobe-"));
    assert_eq!(s["imageRef"], "img-appliance");
    assert_eq!(s["flavorRef"], "8", "smallest flavor with >= 8 GB disk");
    assert_eq!(s["networks"], "none");
    assert_eq!(s["metadata"]["argo-mon-host"], HOST);
    assert!(s["metadata"]["fedprobe-run"].is_string());
    assert!(s["metadata"]["fedprobe-created"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    let mv = post.headers.get("OpenStack-API-Version").unwrap();
    assert_eq!(mv.to_str().unwrap(), "compute 2.37");
    let calls = c.calls().await;
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/srv-1"), 1);
    // The password Nova returns on create is never shown.
    assert!(!out.contains("s3cr3t-admin-pass"));
}

#[tokio::test]
async fn error_state_reports_nova_fault_and_deletes() {
    let c = MockCloud::start().await;
    {
        let mut n = c.nova.0.lock().unwrap();
        n.script = vec!["BUILD".into(), "ERROR".into()];
        n.fault = Some("No valid host was found. There are not enough hosts available.".into());
    }
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("VM-07"), "{}", r.summary);
    assert!(
        r.summary.contains("ERROR: No valid host was found"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    let calls = c.calls().await;
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/srv-1"), 1);
    assert!(nagios::render(&r, 0).starts_with("VM_LIFECYCLE CRITICAL - VM-07"));
}

/// A delete the site accepts and never does: CRITICAL at VM-08 once the
/// wait runs out (a site failure, not the monitor's timeout), with the rest
/// of -t left for the cleanup, which tries again and says the server is left.
#[tokio::test]
async fn a_delete_accepted_and_never_done_is_critical_at_the_delete_stage() {
    let c = MockCloud::start().await;
    c.nova.0.lock().unwrap().ignore_delete = true;
    let t0 = std::time::Instant::now();
    let r = run::<VmLifecycle>(&argv(&c, &["--vm-timeout", "2"])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(out.starts_with("VM_LIFECYCLE CRITICAL - VM-08"), "{out}");
    assert!(
        r.summary
            .contains("still listed 2s after the delete was accepted"),
        "{}",
        r.summary
    );
    assert!(t0.elapsed().as_secs_f64() < 31.0, "within -t 30");
    assert!(
        matches!(r.resources[0].cleanup, probes::model::Cleanup::Failed(_)),
        "{:?}",
        r.resources[0].cleanup
    );
    let calls = c.calls().await;
    assert!(
        count(&calls, "DELETE /compute/v2.1/servers/srv-1") >= 2,
        "{calls:?}"
    );
}

#[tokio::test]
async fn never_active_hits_vm_timeout_and_deletes() {
    let c = MockCloud::start().await;
    c.nova.0.lock().unwrap().script = vec!["BUILD".into()];
    let r = run::<VmLifecycle>(&argv(&c, &["--vm-timeout", "2"])).await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(
        r.summary.contains("not ACTIVE after --vm-timeout 2s"),
        "{}",
        r.summary
    );
    let own = r.steps.iter().find(|s| s.status == Status::Critical);
    assert!(own.is_some_and(|s| !s.cut_by_deadline), "{:#?}", r.steps);
    assert!(
        r.summary
            .contains("last status BUILD (task_state spawning)"),
        "{}",
        r.summary
    );
    let calls = c.calls().await;
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/srv-1"), 1);
    // and it was confirmed gone
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert!(c.nova.0.lock().unwrap().servers["srv-1"].deleted);
}

#[tokio::test]
async fn html_502_names_stage_and_page() {
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors/detail"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(
            "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>",
            "text/html",
        ))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.starts_with("VM-03 pick flavor:"), "{}", r.summary);
    assert!(
        r.summary
            .contains("HTTP 502 Bad Gateway: HTML page \"502 Bad Gateway\""),
        "{}",
        r.summary
    );
    assert!(r.resources.is_empty(), "nothing was created");
}

#[tokio::test]
async fn truncated_json_while_polling_is_critical_and_cleans_up() {
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/srv-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"server": {"id": "srv-1", "sta"#, "application/json"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.starts_with("VM-07"), "{}", r.summary);
    assert!(r.summary.contains("truncated JSON"), "{}", r.summary);
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert_eq!(
        count(&c.calls().await, "DELETE /compute/v2.1/servers/srv-1"),
        1
    );
}

#[tokio::test]
async fn connection_reset_is_critical_at_compute_stage() {
    let reset = mockcloud::resetting_endpoint().await;
    let c = MockCloud::start_with(Some(reset)).await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    eprintln!("{}", nagios::render(&r, 1));
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(
        r.summary.starts_with("VM-01 compute API version:"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("connection reset") || r.summary.contains("connection broken"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn a_server_answer_of_too_many_values_is_refused_and_the_server_deleted() {
    // Parsed, a few MB of tiny keys take hundreds of MB and seconds of CPU,
    // long enough to starve the deadline and the cleanup of a probe binary.
    let c = MockCloud::start().await;
    let mut body = String::from(r#"{"server": {"id": "srv-1", "status": "BUILD", "metadata": {"#);
    for i in 0..300_000 {
        body.push_str(&format!(r#""k{i}":"v","#));
    }
    body.push_str(r#""end":"v"}}}"#);
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/srv-1"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.starts_with("VM-07"), "{}", r.summary);
    assert!(
        r.summary.contains("more than 250000 values"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
}

#[tokio::test]
async fn a_plain_http_compute_endpoint_off_loopback_gets_no_token() {
    let c = MockCloud::start_with(Some("http://compute.example:8774/v2.1".into())).await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(
        r.summary.starts_with("VM-01 compute API version:")
            && r.summary.contains("public compute endpoint")
            && r.summary.contains("no credential was sent"),
        "{}",
        r.summary
    );
    assert!(r.resources.is_empty(), "nothing was created");
}

#[tokio::test]
async fn reaps_own_leftover_and_stale_probes_but_not_others() {
    let c = MockCloud::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // This host's leftover from an earlier run: deleted, WARNING.
    c.add_server(
        "old-mine",
        "fedprobe-0000000001",
        json!({"argo-mon-host": HOST, "fedprobe-created": (now - 600).to_string()}),
        "2026-01-01T00:00:00Z",
    );
    // Another monitoring host's fresh probe VM: untouched.
    c.add_server(
        "fresh-other",
        "fedprobe-0000000002",
        json!({"argo-mon-host": "other.mon", "fedprobe-created": (now - 60).to_string()}),
        "2026-01-01T00:00:00Z",
    );
    // Another host's production-named probe VM two days old: past the TTL.
    c.add_server(
        "stale-other",
        "cloudmonprobe-servertest",
        json!({"argo-mon-host": "old.mon", "fedprobe-created": (now - 2 * 86400).to_string()}),
        "2026-01-01T00:00:00Z",
    );
    // A user's VM that happens to carry the key but is not a probe: untouched.
    c.add_server(
        "users-vm",
        "important-database",
        json!({"argo-mon-host": "other.mon", "fedprobe-created": "1"}),
        "2020-01-01T00:00:00Z",
    );
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    eprintln!("{}", nagios::render(&r, 1));
    assert_eq!(r.status, Status::Warning, "{}", nagios::render(&r, 1));
    assert!(r.summary.contains("VM-05"), "{}", r.summary);
    assert!(r.summary.contains("old-mine"), "{}", r.summary);
    let calls = c.calls().await;
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/old-mine"), 1);
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/stale-other"), 1);
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/fresh-other"), 0);
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/users-vm"), 0);
    // the run itself still completed
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/srv-1"), 1);
}

#[tokio::test]
async fn critical_threshold_on_create_time() {
    let c = MockCloud::start().await;
    let r = run::<VmLifecycle>(&argv(&c, &["-c", "@0:1000"])).await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(r.summary.starts_with("VM-07"), "{}", r.summary);
    // the server was still deleted by the probe itself
    assert_eq!(
        count(&c.calls().await, "DELETE /compute/v2.1/servers/srv-1"),
        1
    );
}

#[tokio::test]
async fn image_lookup_by_appdb_id_and_missing_image() {
    let c = MockCloud::start().await;
    let mut a = c.argv(&["--appdb-image", "1017", "--argo-host-name", HOST]);
    let r = run::<VmLifecycle>(&a).await;
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    a[7] = "9999".into();
    assert_eq!(a[6], "--appdb-image");
    let r = run::<VmLifecycle>(&a).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .starts_with("VM-02 find image: no image with ad:appid 9999"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn missing_image_option_is_unknown_without_network() {
    let c = MockCloud::start().await;
    let r = run::<VmLifecycle>(&c.argv(&[])).await;
    assert_eq!(r.status, Status::Unknown);
    assert!(r.summary.contains("--appdb-image"), "{}", r.summary);
    assert!(c.calls().await.is_empty());
}

fn posted_server(reqs: &[wiremock::Request]) -> (Value, String) {
    let post = reqs
        .iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path() == "/compute/v2.1/servers")
        .expect("server created");
    let mv = post
        .headers
        .get("OpenStack-API-Version")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (serde_json::from_slice(&post.body).unwrap(), mv)
}

#[tokio::test]
async fn boots_on_the_projects_first_active_network() {
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/network/v2.0/networks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"networks": [
            {"id": "net-public", "name": "public", "status": "ACTIVE", "project_id": "admin-project"},
            {"id": "net-down", "name": "mine-down", "status": "DOWN", "project_id": mockcloud::PROJECT_ID},
            {"id": "net-ok", "name": "mine", "status": "ACTIVE", "tenant_id": mockcloud::PROJECT_ID},
            {"id": "net-ok2", "name": "mine2", "status": "ACTIVE", "project_id": mockcloud::PROJECT_ID}]})))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    let (body, _) = posted_server(&c.requests().await);
    assert_eq!(body["server"]["networks"], json!([{"uuid": "net-ok"}]));
}

#[tokio::test]
async fn old_nova_gets_its_own_version_and_no_networks_field() {
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"version": {"id": "v2.1", "version": "2.25", "min_version": "2.1"}}),
        ))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    let (body, mv) = posted_server(&c.requests().await);
    assert_eq!(mv, "compute 2.25");
    assert!(body["server"].get("networks").is_none(), "{body}");
}

#[tokio::test]
async fn wait_is_cut_by_what_minus_t_leaves_and_still_deletes() {
    let c = MockCloud::start().await;
    c.nova.0.lock().unwrap().script = vec!["BUILD".into()];
    let mut a = argv(&c, &[]);
    a[1] = "6".into(); // -t 6, --vm-timeout stays 300
    let r = run::<VmLifecycle>(&a).await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(
        r.summary.contains("(all -t left, --vm-timeout 300s)"),
        "{}",
        r.summary
    );
    let cut = r.steps.iter().find(|s| s.status == Status::Critical);
    assert!(cut.is_some_and(|s| s.cut_by_deadline), "{:#?}", r.steps);
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert!(r.duration < std::time::Duration::from_secs(6));
}

#[tokio::test]
async fn hung_nova_hits_minus_t_unknown_and_runner_deletes() {
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/srv-1"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(30)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&c.server)
        .await;
    let mut a = argv(&c, &[]);
    a[1] = "5".into();
    let r = run::<VmLifecycle>(&a).await;
    assert_eq!(r.status, Status::Unknown, "{}", r.summary);
    assert!(r.summary.contains("VM-07"), "{}", r.summary);
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert_eq!(
        count(&c.calls().await, "DELETE /compute/v2.1/servers/srv-1"),
        1
    );
}

#[tokio::test]
async fn binary_prints_nagios_and_exits_critical_on_error_state() {
    let c = MockCloud::start().await;
    {
        let mut n = c.nova.0.lock().unwrap();
        n.script = vec!["ERROR".into()];
        n.fault = Some("Build of instance aborted: disk full".into());
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_check_vm_lifecycle"))
        .args(argv(&c, &["-v"]))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("VM_LIFECYCLE CRITICAL - VM-07 server becomes ACTIVE: server srv-1 went to ERROR: Build of instance aborted: disk full"),
        "{first}"
    );
    assert!(first.contains("| auth="), "{first}");
    assert!(text.contains("created server srv-1: deleted"), "{text}");
    assert_no_fragment(&text);
}

fn assert_no_fragment(text: &str) {
    for w in mockcloud::access_token().as_bytes().windows(10) {
        let piece = std::str::from_utf8(w).unwrap();
        assert!(!text.contains(piece), "token piece {piece:?} in output");
    }
    for keystone_token in ["gAAAAA", mockcloud::UNSCOPED, mockcloud::SCOPED] {
        assert!(!text.contains(keystone_token), "keystone token in output");
    }
}

/// Nova accepts the server, but the proxy in front answers 504.
struct LostAnswer(mockcloud::Nova);

impl wiremock::Respond for LostAnswer {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let _ = self.0.respond(req);
        ResponseTemplate::new(504).set_body_raw(
            "<html><head><title>504 Gateway Time-out</title></head></html>",
            "text/html",
        )
    }
}

#[tokio::test]
async fn server_created_behind_a_lost_answer_is_found_and_deleted() {
    let c = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path("/compute/v2.1/servers"))
        .respond_with(LostAnswer(c.nova.clone()))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.starts_with("VM-06 create server:") && r.summary.contains("504"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources.len(), 1, "{:?}", r.resources);
    assert_eq!(r.resources[0].id, "srv-1");
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert_eq!(
        count(&c.calls().await, "DELETE /compute/v2.1/servers/srv-1"),
        1
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn nova_time(secs: u64) -> String {
    probes::clock::nova_time(secs as i64)
}

/// This host's servers: a leftover past its run's end is reaped, one whose
/// run may still be going is not, whatever created it.
#[tokio::test]
async fn reaps_only_servers_whose_run_is_over() {
    use probes::checks::vm_lifecycle::{run_owner, OWNER_KEY, UNTIL_KEY};
    let c = MockCloud::start().await;
    let now = unix_now();
    let meta = |until: u64, owner: &str| {
        json!({"argo-mon-host": HOST, "fedprobe-created": (now - 30).to_string(),
               UNTIL_KEY: until.to_string(), OWNER_KEY: owner})
    };
    let elsewhere = "another-boot-id/4026531836/4242.123";
    // Its run ended two minutes ago (killed on another machine): leftover.
    c.add_server(
        "past-end",
        "fedprobe-0000000001",
        meta(now - 120, elsewhere),
        &nova_time(now - 30),
    );
    // Its run may still be going on another machine: left alone.
    c.add_server(
        "live-elsewhere",
        "fedprobe-0000000002",
        meta(now + 600, elsewhere),
        &nova_time(now - 30),
    );
    // A live process of this machine owns it (this test): left alone.
    let me = run_owner(std::process::id()).unwrap();
    c.add_server(
        "live-here",
        "fedprobe-0000000003",
        meta(now + 600, &me),
        &nova_time(now - 30),
    );
    // Its owner on this machine is dead (SIGKILL): leftover before its end.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dead = run_owner(child.id()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    c.add_server(
        "dead-here",
        "fedprobe-0000000004",
        meta(now + 600, &dead),
        &nova_time(now - 30),
    );
    // Production novaprobe servers (no fedprobe keys): Nova's created time.
    c.add_server(
        "novaprobe-fresh",
        "cloudmonprobe-servertest",
        json!({"argo-mon-host": HOST}),
        &nova_time(now - 60),
    );
    c.add_server(
        "novaprobe-old",
        "cloudmonprobe-servertest",
        json!({"argo-mon-host": HOST}),
        &nova_time(now - 3600),
    );
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Warning, "{out}");
    let calls = c.calls().await;
    for gone in ["past-end", "dead-here", "novaprobe-old"] {
        let del = format!("DELETE /compute/v2.1/servers/{gone}");
        assert_eq!(count(&calls, &del), 1, "{gone}: {out}");
        assert!(out.contains(gone), "{out}");
    }
    for kept in ["live-elsewhere", "live-here", "novaprobe-fresh"] {
        let del = format!("DELETE /compute/v2.1/servers/{kept}");
        assert_eq!(count(&calls, &del), 0, "{kept}: {out}");
    }
    assert!(
        out.contains("3 server(s) of mon.test.example runs still going"),
        "{out}"
    );
    // The run's own server carries when its run is over, and who owns it.
    let (body, _) = posted_server(&c.requests().await);
    let m = &body["server"]["metadata"];
    let until: u64 = m[UNTIL_KEY].as_str().unwrap().parse().unwrap();
    assert!(until >= now + 30 && until <= now + 2 * 30 + 5, "{m}");
    assert_eq!(m[OWNER_KEY], json!(me), "{m}");
    assert_eq!(count(&calls, "DELETE /compute/v2.1/servers/srv-1"), 1);
}

/// Nova creates the server but answers 500.
struct CreatedThen500(mockcloud::Nova);

impl wiremock::Respond for CreatedThen500 {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let _ = self.0.respond(req);
        ResponseTemplate::new(500).set_body_json(
            json!({"computeFault": {"code": 500, "message": "Unexpected API Error."}}),
        )
    }
}

/// The create answers 500 though the server exists, and the listing that
/// should find it fails too: the run's cleanup still finds it at the end,
/// deletes it and names it.
#[tokio::test]
async fn create_error_and_failed_listing_still_delete_the_server() {
    let c = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path("/compute/v2.1/servers"))
        .respond_with(CreatedThen500(c.nova.clone()))
        .with_priority(1)
        .mount(&c.server)
        .await;
    // VM-05 lists first (fine); the listing right after the create fails.
    let lists = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = lists.clone();
    let nova = c.nova.clone();
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/servers/detail"))
        .respond_with(move |req: &wiremock::Request| {
            if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                ResponseTemplate::new(500).set_body_string("listing broke")
            } else {
                wiremock::Respond::respond(&nova, req)
            }
        })
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<VmLifecycle>(&argv(&c, &[])).await;
    let out = nagios::render(&r, 1);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(r.summary.starts_with("VM-06 create server:"), "{out}");
    assert!(r.summary.contains("500"), "{out}");
    assert!(
        lists.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "{out}"
    );
    assert_eq!(
        count(&c.calls().await, "DELETE /compute/v2.1/servers/srv-1"),
        1,
        "{out}"
    );
    assert!(c.nova.0.lock().unwrap().servers["srv-1"].deleted);
    assert!(out.contains("created server srv-1: deleted"), "{out}");
    assert!(
        r.resources.iter().all(|x| x.cleanup == Cleanup::Deleted),
        "{out}"
    );
}
