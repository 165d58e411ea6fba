//! check_usage end to end, in-process: APEL files and spools, freshness from
//! a last-update URL or the spool, and the per-VM/volume API part against a
//! scripted Keystone+Nova+Cinder (faults a real site will not produce on
//! demand: paging, 403, size mismatch). The real OpenStack is in usage_peers.rs.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use probes::checks::usage::Usage;
use probes::clock::now_secs as now;
use probes::model::{ProbeResult, Status};
use probes::probe::run_args;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::keystone_mock::{access_token, mount_site, Site, PROJECT_ID};

async fn run(argv: &[&str]) -> ProbeResult {
    run_args::<Usage, _>(argv).await
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/apel")
}

fn perf(r: &ProbeResult, label: &str) -> Option<f64> {
    r.perfdata
        .iter()
        .find(|p| p.label == label)
        .and_then(|p| p.value)
}

#[tokio::test]
async fn good_apel_files_pass() {
    let good = testdata().join("good");
    let dir = good.to_str().unwrap();
    let r = run(&[
        "--apel-dir",
        dir,
        "--site",
        "FEDPROBE-TEST",
        "-w",
        "100000",
        "-c",
        "200000",
    ])
    .await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    // 2 hand-written cloud + 16 real cASO cloud records, 1 public IP, 1 accelerator.
    assert_eq!(perf(&r, "records"), Some(20.0));
    assert_eq!(perf(&r, "bad_records"), Some(0.0));
    assert_eq!(perf(&r, "records_cloud"), Some(18.0));
    assert!(perf(&r, "age_days").is_some());
}

#[tokio::test]
async fn broken_apel_file_is_critical_with_position() {
    let f = testdata().join("bad/text-in-integer.msg");
    let r = run(&["--apel-file", f.to_str().unwrap()]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .contains("text-in-integer.msg record 1 line 14: Memory must be an integer"),
        "{}",
        r.summary
    );
    assert_eq!(perf(&r, "bad_records"), Some(1.0));
}

#[tokio::test]
async fn whole_bad_corpus_never_panics_and_is_critical() {
    let dir = testdata().join("bad");
    let r = run(&[
        "--apel-dir",
        dir.to_str().unwrap(),
        "-w",
        "100000",
        "-c",
        "200000",
    ])
    .await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(perf(&r, "bad_records").unwrap() >= 10.0);
    let n: usize = r
        .summary
        .split(" problem(s)")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 27, "{}", r.summary);
}

#[tokio::test]
async fn records_for_another_site_are_reported() {
    let f = testdata().join("good/cloud-v04.msg");
    let r = run(&["--apel-file", f.to_str().unwrap(), "--site", "OTHER"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("records for other sites"),
        "{}",
        r.summary
    );
}

fn spool_with_age(days: f64) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("6b0549a0");
    std::fs::create_dir(&sub).unwrap();
    let f = sub.join("6b0549a0123456");
    std::fs::copy(testdata().join("good/cloud-v04.msg"), &f).unwrap();
    let t = SystemTime::now() - Duration::from_secs_f64(days * 86400.0);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(t)
        .unwrap();
    // dirq's temporary files are not messages.
    std::fs::write(sub.join("6b0549a0999999.tmp"), "half written").unwrap();
    d
}

#[tokio::test]
async fn spool_freshness_follows_production_policy() {
    for (days, want) in [
        (1.0, Status::Ok),
        (8.0, Status::Warning),
        (31.0, Status::Critical),
    ] {
        let d = spool_with_age(days);
        let r = run(&["--apel-dir", d.path().to_str().unwrap()]).await;
        assert_eq!(r.status, want, "{days} days: {}", r.summary);
        let age = perf(&r, "age_days").unwrap();
        assert!((age - days).abs() < 0.01, "{age}");
        let p = r.perfdata.iter().find(|p| p.label == "age_days").unwrap();
        assert_eq!(
            p.to_string(),
            format!("age_days={};7;30", probes::text::fmt_num(age))
        );
    }
    // Thresholds overridable: dedicated options and -w/-c.
    let d = spool_with_age(3.0);
    let r = run(&["--apel-dir", d.path().to_str().unwrap(), "--warn-days", "2"]).await;
    assert_eq!(r.status, Status::Warning);
    let r = run(&[
        "--apel-dir",
        d.path().to_str().unwrap(),
        "-w",
        "1",
        "-c",
        "2",
    ])
    .await;
    assert_eq!(r.status, Status::Critical);
    let r = run(&["--apel-dir", d.path().to_str().unwrap(), "--site", "NOPE"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("expected NOPE"), "{}", r.summary);
    let fresh = r.steps.iter().find(|s| s.check == "USAGE-05").unwrap();
    assert!(
        fresh.message.contains("no message for site NOPE"),
        "{}",
        fresh.message
    );
}

#[tokio::test]
async fn last_update_url_json_plain_and_garbage() {
    let server = MockServer::start().await;
    let ago = |days: i64| probes::clock::nova_time(now() - days * 86400);
    Mock::given(path("/json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"site": "S", "last_update": ago(2)})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/plain"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("{}\n", &ago(10)[..10])))
        .mount(&server)
        .await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(200).set_body_string(ago(45)))
        .mount(&server)
        .await;
    Mock::given(path("/html"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("<html><head><title>Maintenance</title></head></html>"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .mount(&server)
        .await;
    Mock::given(path("/skew"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(probes::clock::nova_time(now() + 120)),
        )
        .mount(&server)
        .await;
    Mock::given(path("/future"))
        .respond_with(ResponseTemplate::new(200).set_body_string("2099-01-01"))
        .mount(&server)
        .await;
    let url = |p: &str| format!("{}{p}", server.uri());
    let r = run(&["--last-update-url", &url("/skew")]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    let r = run(&["--last-update-url", &url("/future")]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("in the future"), "{}", r.summary);
    let r = run(&["--last-update-url", &url("/json")]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.summary);
    let r = run(&["--last-update-url", &url("/plain")]).await;
    assert_eq!(r.status, Status::Warning, "{}", r.summary);
    let r = run(&["--last-update-url", &url("/old")]).await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    let r = run(&["--last-update-url", &url("/html")]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("not a date: HTML page \"Maintenance\""),
        "{}",
        r.summary
    );
    let r = run(&["--last-update-url", &url("/down")]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("503"), "{}", r.summary);
}

#[tokio::test]
async fn nothing_to_check_is_unknown() {
    let r = run(&[]).await;
    assert_eq!(r.status, Status::Unknown);
    let r = run(&["--server-id", "x", "--apel-dir", "/nonexistent"]).await;
    assert_eq!(r.status, Status::Unknown);
}

/// The shared wiremock Keystone (keystone_mock) in front of scripted
/// Nova/Cinder; `cinder` false leaves the volume service out of the catalog.
async fn site(cinder: bool) -> (MockServer, tempfile::NamedTempFile) {
    let s = MockServer::start().await;
    let base = s.uri();
    let mut catalog = vec![json!({"type": "compute", "endpoints": [
        {"interface": "public", "region": "R", "url": format!("{base}/compute/v2.1")}]})];
    if cinder {
        catalog.push(json!({"type": "volumev3", "endpoints": [
            {"interface": "public", "region": "R", "url": format!("{base}/volume/v3/{PROJECT_ID}")}]}));
    }
    mount_site(
        &s,
        Site {
            catalog: Some(json!(catalog)),
            ..Site::default()
        },
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/compute/v2.1/flavors/detail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"flavors": [
            {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1},
            {"id": "8", "name": "m1.probe", "vcpus": 1, "ram": 512, "disk": 8}]})))
        .mount(&s)
        .await;
    let tok = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tok.path(), access_token()).unwrap();
    (s, tok)
}

/// Nova's usage URL path for the monitor's project.
fn usage_path() -> String {
    format!("/compute/v2.1/os-simple-tenant-usage/{PROJECT_ID}")
}

fn server(id: &str, flavor: &str, mem: i64, ended: bool) -> serde_json::Value {
    let t = |secs: i64| probes::clock::nova_time(now() - secs);
    json!({"instance_id": id, "name": id, "flavor": flavor, "vcpus": 1, "memory_mb": mem,
        "local_gb": 8, "hours": 0.1, "started_at": t(600),
        "ended_at": if ended { json!(t(60)) } else { json!(null) },
        "state": if ended { "terminated" } else { "active" }, "tenant_id": PROJECT_ID, "uptime": 540})
}

async fn usage_pages(s: &MockServer, servers: Vec<serde_json::Value>) {
    // Two pages: the first links to the second with a marker.
    let (a, b) = servers.split_at(servers.len() / 2);
    Mock::given(method("GET"))
        .and(path(usage_path()))
        .and(query_param("marker", "m-1"))
        .and(header("OpenStack-API-Version", "compute 2.40"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"tenant_usage": {"server_usages": b}})),
        )
        .mount(s)
        .await;
    Mock::given(method("GET"))
        .and(path(usage_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tenant_usage": {"server_usages": a},
            "tenant_usage_links": [{"rel": "next",
                "href": format!("http://internal-nova:8774/v2.1/os-simple-tenant-usage/{PROJECT_ID}?limit=1&marker=m-1")}]})))
        .mount(s)
        .await;
}

fn api_args<'a>(s: &'a MockServer, tok: &'a tempfile::NamedTempFile) -> Vec<String> {
    vec![
        "--endpoint".into(),
        format!("{}/v3", s.uri()),
        "--access-token".into(),
        tok.path().display().to_string(),
        "--protocol".into(),
        "openid".into(),
    ]
}

async fn run_owned(args: Vec<String>) -> ProbeResult {
    let v: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    run(&v).await
}

#[tokio::test]
async fn api_usage_paging_server_and_volumes() {
    let (s, tok) = site(true).await;
    usage_pages(
        &s,
        vec![
            server("a", "m1.tiny", 512, false),
            server("vm-1", "m1.probe", 512, true),
        ],
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("/volume/v3/{PROJECT_ID}/volumes/summary")))
        .and(header("OpenStack-API-Version", "volume 3.12"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"volume-summary": {"total_size": 30, "total_count": 2, "metadata": {}}}),
        ))
        .mount(&s)
        .await;
    let mut a = api_args(&s, &tok);
    a.extend(["--server-id".into(), "vm-1".into()]);
    let r = run_owned(a).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(perf(&r, "servers"), Some(2.0));
    assert_eq!(perf(&r, "usage_pages"), Some(2.0));
    assert_eq!(perf(&r, "volumes"), Some(2.0));
    let step = r.steps.iter().find(|s| s.check == "USAGE-02").unwrap();
    assert!(
        step.message.contains("= flavor m1.probe"),
        "{}",
        step.message
    );
}

#[tokio::test]
async fn api_size_mismatch_warns_missing_server_is_critical() {
    let (s, tok) = site(false).await;
    usage_pages(
        &s,
        vec![
            server("a", "m1.tiny", 512, false),
            server("vm-1", "m1.probe", 2048, true),
        ],
    )
    .await;
    let mut a = api_args(&s, &tok);
    a.extend(["--server-id".into(), "vm-1".into()]);
    let r = run_owned(a.clone()).await;
    assert_eq!(r.status, Status::Warning, "{r:#?}");
    assert!(
        r.summary
            .contains("memory_mb 2048 but flavor m1.probe has 512"),
        "{}",
        r.summary
    );
    let vol = r.steps.iter().find(|s| s.check == "USAGE-03").unwrap();
    assert!(
        vol.message
            .starts_with("skipped: no block-storage/volumev3/volume"),
        "{}",
        vol.message
    );
    let n = a.len();
    a[n - 1] = "vm-gone".into();
    let r = run_owned(a).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .contains("server vm-gone is missing from os-simple-tenant-usage"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn api_forbidden_usage_is_critical() {
    let (s, tok) = site(false).await;
    Mock::given(method("GET"))
        .and(path(usage_path()))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:os-simple-tenant-usage:show"}}),
        ))
        .mount(&s)
        .await;
    let r = run_owned(api_args(&s, &tok)).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("forbidden by policy"), "{}", r.summary);
    assert!(r.summary.contains("403"), "{}", r.summary);
}

#[tokio::test]
async fn a_server_missing_from_the_first_read_is_asked_for_again() {
    // Nova on MariaDB: launched_at rounded up past `end` (capped at now)
    // hides a server launched under a second ago; the next read lists it.
    let (s, tok) = site(false).await;
    let usage = usage_path();
    Mock::given(method("GET"))
        .and(path(usage.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"tenant_usage": {"server_usages": [server("a", "m1.tiny", 512, false)]}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path(usage.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tenant_usage": {
            "server_usages": [server("a", "m1.tiny", 512, false), server("vm-1", "m1.probe", 512, true)]}})))
        .expect(1)
        .mount(&s)
        .await;
    let mut a = api_args(&s, &tok);
    a.extend(["--server-id".into(), "vm-1".into()]);
    let r = run_owned(a).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let step = r.steps.iter().find(|s| s.check == "USAGE-02").unwrap();
    assert!(step.message.contains("server vm-1: "), "{}", step.message);
    assert!(
        r.details
            .iter()
            .any(|d| d.contains("missing from usage; read it again")),
        "{:?}",
        r.details
    );
}

#[tokio::test]
async fn usage_next_marker_is_a_query_value_not_a_path() {
    // A hostile next link: only its marker is used, as one escaped query
    // value on our own URL; its host, path and other parameters are not.
    let (s, tok) = site(false).await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/compute/v2.1/os-simple-tenant-usage/{PROJECT_ID}"
        )))
        .and(query_param("marker", "../../flavors/8&all_tenants=1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"tenant_usage": {"server_usages": []}})),
        )
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/compute/v2.1/os-simple-tenant-usage/{PROJECT_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tenant_usage": {"server_usages": [server("a", "m1.tiny", 512, false)]},
            "tenant_usage_links": [{"rel": "next",
                "href": "http://127.0.0.2:9/v2.1/flavors?all_tenants=1&marker=..%2F..%2Fflavors%2F8%26all_tenants%3D1"}]})))
        .mount(&s)
        .await;
    let r = run_owned(api_args(&s, &tok)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(perf(&r, "usage_pages"), Some(2.0));
    for q in s.received_requests().await.unwrap() {
        let p = q.url.path();
        assert!(
            !p.contains("/flavors/8") && !q.url.query_pairs().any(|(k, _)| k == "all_tenants"),
            "steered: {} {}",
            q.method,
            q.url
        );
    }
}

/// A scripted Cinder with one own volume's life (create, show, delete) and
/// a volume usage that does not account it as it should: a real Cinder will
/// not produce that on demand.
#[derive(Clone)]
struct OwnVolumeCinder {
    /// The own volume exists (created, not yet deleted).
    exists: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The list shows it (else only the other volume).
    listed: bool,
    /// The summary's count and size.
    summary: (u64, u64),
}

impl wiremock::Respond for OwnVolumeCinder {
    fn respond(&self, r: &wiremock::Request) -> ResponseTemplate {
        use std::sync::atomic::Ordering::SeqCst;
        let base = format!("/volume/v3/{PROJECT_ID}/volumes");
        let rest = r.url.path().strip_prefix(&base).unwrap_or("?");
        let t = probes::clock::nova_time(now());
        let own = json!({"id": "own-1", "name": "own", "status": "available", "size": 1,
            "created_at": t, "attachments": [], "metadata": {}});
        let other = json!({"id": "other-1", "name": "other", "status": "available", "size": 3,
            "created_at": t, "attachments": [], "metadata": {}});
        match (r.method.as_str(), rest) {
            ("POST", "") => {
                self.exists.store(true, SeqCst);
                ResponseTemplate::new(202).set_body_json(json!({"volume": own}))
            }
            ("GET", "/own-1") if self.exists.load(SeqCst) => {
                ResponseTemplate::new(200).set_body_json(json!({"volume": own}))
            }
            ("DELETE", "/own-1") => {
                self.exists.store(false, SeqCst);
                ResponseTemplate::new(202)
            }
            ("GET", "/detail") => {
                let mut v = vec![other];
                if self.listed && self.exists.load(SeqCst) {
                    v.push(own);
                }
                ResponseTemplate::new(200).set_body_json(json!({"volumes": v}))
            }
            ("GET", "/summary") => ResponseTemplate::new(200).set_body_json(json!({
                "volume-summary": {"total_count": self.summary.0, "total_size": self.summary.1, "metadata": {}}})),
            _ => ResponseTemplate::new(404).set_body_json(
                json!({"itemNotFound": {"code": 404, "message": "Volume could not be found."}}),
            ),
        }
    }
}

async fn own_volume_site(
    listed: bool,
    summary: (u64, u64),
) -> (MockServer, tempfile::NamedTempFile, OwnVolumeCinder) {
    let (s, tok) = site(true).await;
    usage_pages(&s, vec![server("a", "m1.tiny", 512, false)]).await;
    let cinder = OwnVolumeCinder {
        exists: Default::default(),
        listed,
        summary,
    };
    Mock::given(wiremock::matchers::path_regex("^/volume/v3/"))
        .respond_with(cinder.clone())
        .mount(&s)
        .await;
    (s, tok, cinder)
}

#[tokio::test]
async fn own_volume_accounted_is_ok_and_deleted() {
    let (s, tok, cinder) = own_volume_site(true, (2, 4)).await;
    let mut a = api_args(&s, &tok);
    a.push("--own-volume".into());
    let r = run_owned(a).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let step = r.steps.iter().find(|s| s.check == "USAGE-03").unwrap();
    assert!(step.message.contains("own volume own-1 listed with 1 GiB, counted in the volume summary (2 volume(s), 4 GB, as listed)"), "{}", step.message);
    assert!(!cinder.exists.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(r.resources.len(), 1, "{:?}", r.resources);
    assert_eq!(r.resources[0].cleanup, probes::model::Cleanup::Deleted);
}

#[tokio::test]
async fn own_volume_missing_from_the_usage_is_critical_at_usage_03() {
    // Listed without it, and the summary agrees with the list.
    let (s, tok, cinder) = own_volume_site(false, (1, 3)).await;
    let mut a = api_args(&s, &tok);
    a.push("--own-volume".into());
    let r = run_owned(a).await;
    assert_eq!(r.status, Status::Critical, "{r:#?}");
    let step = r.steps.iter().find(|s| s.check == "USAGE-03").unwrap();
    assert_eq!(step.status, Status::Critical);
    assert!(
        r.summary
            .starts_with("USAGE-03 block storage usage: own volume own-1 (1 GiB, made "),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("is missing from the volume usage (1 volume(s) listed)"),
        "{}",
        r.summary
    );
    // Deleted all the same, by the runner's cleanup.
    assert!(!cinder.exists.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(r.resources[0].cleanup, probes::model::Cleanup::Deleted);
}

#[tokio::test]
async fn a_summary_not_counting_the_own_volume_is_critical_at_usage_03() {
    // Listed with it (2 volumes, 4 GB), but the summary counts the other only.
    let (s, tok, cinder) = own_volume_site(true, (1, 3)).await;
    let mut a = api_args(&s, &tok);
    a.push("--own-volume".into());
    let r = run_owned(a).await;
    assert_eq!(r.status, Status::Critical, "{r:#?}");
    assert!(
        r.summary.contains("USAGE-03 block storage usage: the volume summary counts 1 volume(s), 3 GB, but the project lists 2 volume(s), 4 GB, own volume included"),
        "{}",
        r.summary
    );
    assert!(!cinder.exists.load(std::sync::atomic::Ordering::SeqCst));
}
