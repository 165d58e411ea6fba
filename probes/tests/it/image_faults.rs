//! check_image_upload against a wiremock Glance: wrong checksum, 403 on
//! upload, killed images, import advertised or not, OVA layout.

use crate::mockcloud;

use md5::{Digest, Md5};
use mockcloud::{run, MockCloud};
use probes::backend::payload::{self, Payload};
use probes::checks::image_upload::ImageUpload;
use probes::model::Cleanup;
use probes::render::nagios;
use probes::Status;
use serde_json::Value;

fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| *c == call).count()
}

#[tokio::test]
async fn raw_upload_is_verified_downloaded_and_deleted() {
    let c = MockCloud::start().await;
    let r = run::<ImageUpload>(&c.argv(&["--size", "64K"])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Ok, "{out}");
    assert!(out.contains("MD5 and sha512 match"), "{out}");
    assert!(out.contains("65536 bytes identical"), "{out}");
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    let reqs = c.requests().await;
    let create = reqs
        .iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path() == "/image/v2/images")
        .unwrap();
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["visibility"], "private");
    assert_eq!(body["disk_format"], "raw");
    let put = reqs
        .iter()
        .find(|q| q.method.as_str() == "PUT" && q.url.path() == "/image/v2/images/img-1/file")
        .unwrap();
    assert_eq!(put.body.len(), 65536);
    // Streamed with its length declared, not chunked.
    assert_eq!(put.headers.get("content-length").unwrap(), "65536");
    // The bytes are the run's: regenerated from the run id the record carries.
    let run_id = body["fedprobe-run"].as_str().unwrap();
    let mut expected = Payload::raw(payload::seed_of(run_id), 65536);
    let mut buf = vec![0u8; 65536];
    assert_eq!(expected.read(&mut buf), 65536);
    assert_eq!(put.body, buf);
    assert_eq!(
        put.headers.get("content-type").unwrap(),
        "application/octet-stream"
    );
    let calls = c.calls().await;
    assert_eq!(count(&calls, "DELETE /image/v2/images/img-1"), 1);
    assert!(c.glance.0.lock().unwrap().images["img-1"].deleted);
    for l in [
        "auth",
        "upload",
        "upload_rate",
        "active",
        "download",
        "download_rate",
        "delete",
        "size",
        "total",
    ] {
        assert!(r.perfdata.iter().any(|p| p.label == l), "no perfdata {l}");
    }
}

#[tokio::test]
async fn corrupt_download_names_the_first_differing_byte() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().corrupt_download_at = Some(40_000);
    let r = run::<ImageUpload>(&c.argv(&["--size", "100K"])).await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Critical, "{out}");
    assert!(
        out.contains("IMG-05 download matches upload: downloaded 102400 bytes, sent 102400; first difference at byte 40000"),
        "{out}"
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
}

#[tokio::test]
async fn wrong_checksum_is_critical_and_image_is_deleted() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().wrong_checksum = true;
    let r = run::<ImageUpload>(&c.argv(&["--size", "4K"])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .starts_with("IMG-04 stored size and checksums: stored image differs from upload: checksum (MD5) 0123456789abcdef"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert_eq!(count(&c.calls().await, "DELETE /image/v2/images/img-1"), 1);
}

#[tokio::test]
async fn forbidden_upload_is_explained_and_cleaned_up() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().forbid_upload = true;
    let r = run::<ImageUpload>(&c.argv(&[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .starts_with("IMG-02 upload image data: upload refused with HTTP 403"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("HTML page \"403 Forbidden\""),
        "{}",
        r.summary
    );
    let long = nagios::render(&r, 1);
    assert!(long.contains("only admins upload images"), "{long}");
    assert!(
        long.contains("guideline requires users to upload"),
        "{long}"
    );
    assert_eq!(count(&c.calls().await, "DELETE /image/v2/images/img-1"), 1);
}

#[tokio::test]
async fn killed_image_is_critical() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().after_upload = Some("killed".into());
    let r = run::<ImageUpload>(&c.argv(&["--size", "1K"])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .starts_with("IMG-03 image becomes active: image img-1 went to status killed"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
}

#[tokio::test]
async fn stuck_in_saving_times_out_critical() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().after_upload = Some("saving".into());
    let r = run::<ImageUpload>(&c.argv(&["--size", "1K", "--image-timeout", "1"])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .contains("not active after 1s; last status saving"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
}

#[tokio::test]
async fn glance_direct_import_when_advertised() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().import_methods = vec!["glance-direct".into(), "web-download".into()];
    let r = run::<ImageUpload>(&c.argv(&["--size", "8K", "--import"])).await;
    assert_eq!(r.status, Status::Ok, "{}", nagios::render(&r, 1));
    let calls = c.calls().await;
    assert_eq!(count(&calls, "PUT /image/v2/images/img-1/stage"), 1);
    assert_eq!(count(&calls, "POST /image/v2/images/img-1/import"), 1);
    assert_eq!(count(&calls, "PUT /image/v2/images/img-1/file"), 0);
    let reqs = c.requests().await;
    let import = reqs
        .iter()
        .find(|q| q.url.path() == "/image/v2/images/img-1/import")
        .unwrap();
    let body: Value = serde_json::from_slice(&import.body).unwrap();
    assert_eq!(body["method"]["name"], "glance-direct");
}

#[tokio::test]
async fn import_not_advertised_is_reported() {
    let c = MockCloud::start().await;
    c.glance.0.lock().unwrap().import_methods = vec!["web-download".into()];
    let r = run::<ImageUpload>(&c.argv(&["--size", "8K", "--import"])).await;
    assert_eq!(r.status, Status::Warning);
    assert!(
        r.summary
            .contains("glance-direct import not advertised (advertised: web-download)"),
        "{}",
        r.summary
    );
    assert_eq!(
        count(&c.calls().await, "PUT /image/v2/images/img-1/stage"),
        0
    );
}

#[tokio::test]
async fn ova_starts_with_a_valid_ovf_descriptor() {
    let c = MockCloud::start().await;
    let r = run::<ImageUpload>(&c.argv(&["--format", "ova", "--size", "10000"])).await;
    assert_eq!(r.status, Status::Ok, "{}", nagios::render(&r, 1));
    let reqs = c.requests().await;
    let create = reqs
        .iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path() == "/image/v2/images")
        .unwrap();
    let meta: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(meta["container_format"], "ova");
    let put = reqs
        .iter()
        .find(|q| q.method.as_str() == "PUT" && q.url.path() == "/image/v2/images/img-1/file")
        .unwrap();
    let tar = &put.body;
    // First member: the .ovf descriptor.
    let name = std::str::from_utf8(&tar[0..100])
        .unwrap()
        .trim_end_matches('\0');
    assert!(name.ends_with(".ovf"), "{name}");
    assert_eq!(&tar[257..262], b"ustar");
    let size_field = std::str::from_utf8(&tar[124..135]).unwrap();
    let size = usize::from_str_radix(size_field, 8).unwrap();
    let xml = std::str::from_utf8(&tar[512..512 + size]).unwrap();
    let (root, file_href, disk_ref) = parse_ovf(xml);
    assert_eq!(root, "Envelope");
    // Second member: the disk the descriptor references.
    let second = 512 + size.div_ceil(512) * 512;
    let disk_name = std::str::from_utf8(&tar[second..second + 100])
        .unwrap()
        .trim_end_matches('\0');
    assert_eq!(file_href.as_deref(), Some(disk_name));
    assert_eq!(disk_ref.as_deref(), Some("file1"));
    let disk_size = usize::from_str_radix(
        std::str::from_utf8(&tar[second + 124..second + 135]).unwrap(),
        8,
    )
    .unwrap();
    assert_eq!(disk_size, 10000);
    // What Glance stored is the whole OVA, and its checksum was checked.
    let stored = c.glance.0.lock().unwrap().images["img-1"].meta["checksum"].clone();
    assert_eq!(stored, format!("{:x}", Md5::digest(tar)));
}

/// The root element, References/File@href and Disk@fileRef, by a real XML parser.
fn parse_ovf(xml: &str) -> (String, Option<String>, Option<String>) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut root = None;
    let (mut href, mut file_ref) = (None, None);
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                if root.is_none() {
                    root = Some(local.clone());
                }
                for a in e.attributes() {
                    let a = a.unwrap();
                    let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                    let val = String::from_utf8(a.value.to_vec()).unwrap();
                    match (local.as_str(), key.as_str()) {
                        ("File", "ovf:href") => href = Some(val),
                        ("Disk", "ovf:fileRef") => file_ref = Some(val),
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (root.unwrap_or_default(), href, file_ref)
}

#[tokio::test]
async fn html_502_on_create_names_stage_and_creates_nothing() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let c = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path("/image/v2/images"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(
            "<html><head><title>502 Proxy Error</title></head><body>upstream</body></html>",
            "text/html",
        ))
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<ImageUpload>(&c.argv(&[])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.starts_with("IMG-01 create image record:")
            && r.summary.contains("HTML page \"502 Proxy Error\""),
        "{}",
        r.summary
    );
    assert!(r.resources.is_empty());
}

#[tokio::test]
async fn truncated_json_while_waiting_is_critical_and_deletes() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let c = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path("/image/v2/images/img-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"id": "img-1", "status": "act"#, "application/json"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&c.server)
        .await;
    let r = run::<ImageUpload>(&c.argv(&["--size", "1K"])).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.starts_with("IMG-03") && r.summary.contains("truncated JSON"),
        "{}",
        r.summary
    );
    assert_eq!(r.resources[0].cleanup, Cleanup::Deleted);
    assert_eq!(count(&c.calls().await, "DELETE /image/v2/images/img-1"), 1);
}

/// IMG-07: the leftovers of this host's earlier runs (past their end, or
/// their owner process gone) and other hosts' probe images older than the
/// TTL are deleted, named, WARNING; a live run's image (before its end, its
/// owner alive), another host's recent one, an image not named by the probe
/// and a legacy one within the run bound are left alone.
#[tokio::test]
async fn leftovers_of_earlier_runs_are_reaped_and_live_runs_left_alone() {
    use probes::checks::vm_lifecycle::run_owner;
    use serde_json::json;
    let c = MockCloud::start().await;
    let now = probes::clock::now_unix() as u64;
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dead = run_owner(child.id()).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let alive = run_owner(std::process::id()).unwrap();
    let seed = |id: &str,
                name: &str,
                host: Option<&str>,
                until: Option<u64>,
                owner: &str,
                created: u64| {
        let mut meta = json!({"id": id, "name": name, "status": "saving",
            "fedprobe-run": "0123456789", "fedprobe-created": created.to_string()});
        if let Some(h) = host {
            meta["argo-mon-host"] = json!(h);
        }
        if let Some(u) = until {
            meta["fedprobe-until"] = json!(u.to_string());
        }
        if !owner.is_empty() {
            meta["fedprobe-owner"] = json!(owner);
        }
        c.glance.0.lock().unwrap().images.insert(
            id.into(),
            crate::mockcloud::FakeImage {
                meta,
                ..Default::default()
            },
        );
    };
    let me = Some("mon.test.example");
    let other = Some("other-mon.example");
    seed(
        "ended-mine",
        "fedprobe-aaaaaaaaaa",
        me,
        Some(now - 1000),
        &alive,
        now - 2000,
    );
    seed(
        "killed-mine",
        "fedprobe-bbbbbbbbbb",
        me,
        Some(now + 1000),
        &dead,
        now - 5,
    );
    seed(
        "live-mine",
        "fedprobe-cccccccccc",
        me,
        Some(now + 1000),
        &alive,
        now - 5,
    );
    seed(
        "fresh-other",
        "fedprobe-dddddddddd",
        other,
        Some(now - 10),
        &dead,
        now - 100,
    );
    seed(
        "stale-other",
        "fedprobe-eeeeeeeeee",
        other,
        Some(now - 9000),
        "",
        now - 90_000,
    );
    seed(
        "users-image",
        "my-image",
        me,
        Some(now - 1000),
        &dead,
        now - 2000,
    );
    seed(
        "legacy-recent",
        "fedprobe-ffffffffff",
        None,
        None,
        "",
        now - 100,
    );
    let r = run::<ImageUpload>(&c.argv(&["--size", "64K", "--argo-host-name", "mon.test.example"]))
        .await;
    let out = nagios::render(&r, 2);
    assert_eq!(r.status, Status::Warning, "{out}");
    let reap = r
        .steps
        .iter()
        .find(|s| s.check == "IMG-07")
        .expect("IMG-07");
    assert_eq!(reap.status, Status::Warning, "{out}");
    assert!(
        r.summary.contains(
            "IMG-07 leftovers of earlier runs: deleted 2 leftover image(s) of mon.test.example"
        ),
        "{out}"
    );
    for id in ["ended-mine", "killed-mine", "stale-other"] {
        assert!(reap.message.contains(id), "{id} named: {out}");
        assert!(
            c.glance.0.lock().unwrap().images[id].deleted,
            "{id} deleted"
        );
    }
    for id in ["live-mine", "fresh-other", "users-image", "legacy-recent"] {
        assert!(!reap.message.contains(id), "{id} not named: {out}");
        assert!(
            !c.glance.0.lock().unwrap().images[id].deleted,
            "{id} left alone"
        );
    }
    assert!(
        reap.message
            .contains("1 image(s) of mon.test.example runs still going"),
        "{out}"
    );
    let reaped = r
        .perfdata
        .iter()
        .find(|p| p.label == "reaped")
        .expect("perfdata reaped");
    assert_eq!(reaped.value, Some(3.0));
    // The run itself went on: its image uploaded, verified and deleted.
    assert!(c.glance.0.lock().unwrap().images["img-1"].deleted);
    // And tagged so the next run can tell it: host, end time, owner.
    let create = c
        .requests()
        .await
        .into_iter()
        .find(|q| q.method.as_str() == "POST" && q.url.path() == "/image/v2/images")
        .unwrap();
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["argo-mon-host"], "mon.test.example");
    let until: u64 = body["fedprobe-until"].as_str().unwrap().parse().unwrap();
    assert!(until > now && until < now + 120, "{until} vs {now}");
    assert_eq!(body["fedprobe-owner"].as_str(), Some(alive.as_str()));
}

/// SIGTERM while the image create is in flight, on a Glance that makes the
/// image only as it answers (1.5 s later, as the real one did under load in
/// the image soak): the cleanup waits for the create's answer and deletes
/// the image it names, reported under its id. Looking it up by name at the
/// signal finds nothing and leaves it.
#[tokio::test]
async fn sigterm_while_the_create_is_in_flight_deletes_the_image_it_made() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let c = MockCloud::start().await;
    let posted = Arc::new(AtomicBool::new(false));
    let (glance, flag) = (c.glance.clone(), posted.clone());
    Mock::given(method("POST"))
        .and(path("/image/v2/images"))
        .respond_with(move |req: &wiremock::Request| {
            flag.store(true, Ordering::SeqCst);
            let mut meta: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            meta["id"] = "img-late".into();
            meta["status"] = "queued".into();
            let (g, m) = (glance.clone(), meta.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1500));
                g.0.lock().unwrap().images.insert(
                    "img-late".into(),
                    crate::mockcloud::FakeImage {
                        meta: m,
                        ..Default::default()
                    },
                );
            });
            ResponseTemplate::new(201)
                .set_body_json(meta)
                .set_delay(Duration::from_millis(1600))
        })
        .with_priority(1)
        .mount(&c.server)
        .await;
    let mut argv = vec!["check_image_upload".to_string()];
    argv.extend(c.argv(&["--size", "64K"]));
    let inv = probes::probe::Invocation::<probes::checks::image_upload::Args>::parse(
        "check_image_upload",
        &argv,
    )
    .expect("argv parses");
    let cancel = async move {
        while !posted.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        probes::runner::Stop::Signal("SIGTERM".into())
    };
    let r = probes::probe::run::<ImageUpload>(inv, cancel, None).await;
    let out = nagios::render(&r, 2);
    assert!(r.summary.contains("SIGTERM"), "{out}");
    assert!(
        r.summary.contains("IMG-01"),
        "cancelled during the create: {out}"
    );
    let made = c.glance.0.lock().unwrap().images.get("img-late").cloned();
    assert!(
        made.is_some_and(|i| i.deleted),
        "the image the create made is left: {out}"
    );
    assert!(
        r.resources
            .iter()
            .any(|x| x.id == "img-late" && x.cleanup == Cleanup::Deleted),
        "named in the output: {out}"
    );
}
