//! check_glue end to end over its three sources: a real slapd BDII loaded
//! by ci/producers/slapd.sh (LDAP), an information-system API serving the
//! producer's data (a scripted server: the real one is a remote service), and
//! a GLUE document over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use probes::checks::glue::Glue;
use probes::model::{ProbeResult, Status};
use probes::probe::run_args;
use serde_json::{json, Value};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn run(argv: &[&str]) -> ProbeResult {
    run_args::<Glue, _>(argv).await
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The producer's sample with every CreationTime set to now (so it is fresh).
fn fresh_sample() -> Value {
    let text =
        std::fs::read_to_string(repo().join("testdata/glue/cloud-info-provider-sample.json"))
            .unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let now = probes::clock::nova_time(probes::clock::now_secs());
    for list in doc.as_object_mut().unwrap().values_mut() {
        for o in list.as_array_mut().unwrap() {
            o["CreationTime"] = json!(format!("{}+00:00", &now[..19]));
        }
    }
    doc
}

const ENDPOINT: &str = "https://cloud.example.org:5000/v3";

struct Slapd {
    dir: PathBuf,
    port: u16,
}

impl Slapd {
    /// Our own slapd (own port and state dir), loaded with `doc`.
    fn up(doc: &Value, port: u16) -> Option<Slapd> {
        let dir = std::env::temp_dir().join(format!("fedprobe-slapd-test-{port}"));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("doc.json");
        std::fs::write(&file, doc.to_string()).unwrap();
        let s = Slapd { dir, port };
        let out = s.script(&["up", file.to_str().unwrap()])?;
        if !out.status.success() {
            eprintln!(
                "SKIP glue LDAP tests: slapd.sh up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(s)
    }

    fn script(&self, args: &[&str]) -> Option<std::process::Output> {
        let out = Command::new("bash")
            .arg(repo().join("ci/producers/slapd.sh"))
            .args(args)
            .env("FEDPROBE_SLAPD_DIR", &self.dir)
            .env("FEDPROBE_SLAPD_PORT", self.port.to_string())
            .output();
        match out {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("SKIP glue LDAP tests: cannot run slapd.sh: {e}");
                None
            }
        }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}

#[tokio::test]
async fn ldap_bdii_valid_broken_and_down() {
    let Some(slapd) = Slapd::up(&fresh_sample(), 2171) else {
        return;
    };
    let url = slapd.url();
    let r = run(&["--ldap-url", &url, "--endpoint", ENDPOINT]).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let shares = r
        .perfdata
        .iter()
        .find(|p| p.label == "ldap_shares")
        .unwrap();
    assert_eq!(shares.value, Some(2.0));
    let left = r
        .perfdata
        .iter()
        .find(|p| p.label == "ldap_time_left")
        .unwrap()
        .value
        .unwrap();
    assert!(left > 43000.0 && left <= 43200.0, "{left}");

    // ARGO's :443 would not match this :5000 endpoint.
    let r = run(&[
        "--ldap-url",
        &url,
        "--endpoint",
        "https://cloud.example.org/v3",
    ])
    .await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("do not match the endpoint"),
        "{}",
        r.summary
    );

    // Wrong base: the server answers "no such object".
    let r = run(&["--ldap-url", &url, "--ldap-base", "o=grid"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("search of o=grid refused"),
        "{}",
        r.summary
    );

    // The same BDII reloaded with a share whose MappingPolicy is gone.
    let mut doc = fresh_sample();
    doc["MappingPolicy"].as_array_mut().unwrap().truncate(1);
    drop(slapd);
    let Some(slapd) = Slapd::up(&doc, 2171) else {
        return;
    };
    let r = run(&["--ldap-url", &slapd.url()]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("no MappingPolicy for this share"),
        "{}",
        r.summary
    );
    drop(slapd);

    // Down: nothing listens there any more.
    let r = run(&["--ldap-url", &url]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("connection refused"), "{}", r.summary);
}

#[tokio::test]
async fn ldap_hang_is_bounded_by_the_deadline() {
    // A listener that accepts and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            keep.push(s);
        }
    });
    let t0 = std::time::Instant::now();
    let r = run(&["--ldap-url", &format!("ldap://127.0.0.1:{port}"), "-t", "3"]).await;
    assert_eq!(r.status, Status::Unknown, "{}", r.summary);
    assert!(r.summary.contains("GLUE-01"), "{}", r.summary);
    let r = run(&[
        "--ldap-url",
        &format!("ldap://127.0.0.1:{port}"),
        "-t",
        "3",
        "--timeout-status",
        "critical",
    ])
    .await;
    assert_eq!(r.status, Status::Critical, "{}", r.summary);
    assert!(t0.elapsed().as_secs() < 20, "{:?}", t0.elapsed());
}

/// The information-system view of the sample: what cloud-info-api derives.
fn is_sites(doc: &Value) -> Value {
    let projects: Vec<Value> = doc["Share"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let vo = s["ID"]
                .as_str()
                .unwrap()
                .split("_share_")
                .nth(1)
                .unwrap()
                .rsplit_once('_')
                .unwrap()
                .0;
            json!({"id": s["ProjectID"], "name": vo})
        })
        .collect();
    json!([{"id": "fixture-1", "name": "FIXTURE-SITE", "url": ENDPOINT, "state": "",
            "hostname": "cloud.example.org", "projects": projects},
           {"id": "9", "name": "OTHER", "url": "https://x/v3", "state": "", "projects": []}])
}

/// A harness over N sites must not fetch N lists of N sites: the site's own
/// route answers, the list is never asked for (the mock fails the test if
/// it is).
#[tokio::test]
async fn information_system_asks_for_the_site_alone() {
    let doc = fresh_sample();
    let site = is_sites(&doc)[0].clone();
    let s = MockServer::start().await;
    Mock::given(path("/site/FIXTURE-SITE/"))
        .and(query_param("include_projects", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(site))
        .expect(2)
        .mount(&s)
        .await;
    Mock::given(path("/sites/"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&s)
        .await;
    let base = s.uri();
    let r = run(&["--is-url", &base, "--site", "FIXTURE-SITE"]).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let r = run(&["--is-url", &base, "--site", "FIXTURE-SITE"]).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");

    // An API that ignores include_projects answers the site bare: the
    // list is asked, not a false "listed without any VO".
    let mut bare = is_sites(&doc)[0].clone();
    bare.as_object_mut().unwrap().remove("projects");
    let s = MockServer::start().await;
    Mock::given(path("/site/FIXTURE-SITE/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bare))
        .mount(&s)
        .await;
    Mock::given(path("/sites/"))
        .and(query_param("include_projects", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(is_sites(&doc)))
        .expect(1)
        .mount(&s)
        .await;
    let r = run(&["--is-url", &s.uri(), "--site", "FIXTURE-SITE"]).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
}

#[tokio::test]
async fn information_system_api() {
    let doc = fresh_sample();
    let s = MockServer::start().await;
    Mock::given(path("/sites/"))
        .and(query_param("include_projects", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(is_sites(&doc)))
        .mount(&s)
        .await;
    Mock::given(path("/site/FIXTURE-SITE/vo.example/project"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "fixture-project", "name": "vo.example"})),
        )
        .mount(&s)
        .await;
    Mock::given(path("/site/FIXTURE-SITE/vo.example/images"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"name": "fooimage", "appdb_id": "", "id": "foo.id", "mpuri": "http://example.org/", "version": ""}])))
        .mount(&s)
        .await;
    let base = s.uri();
    let r = run(&["--is-url", &base, "--site", "FIXTURE-SITE"]).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let r = run(&[
        "--is-url",
        &base,
        "--site",
        "FIXTURE-SITE",
        "--vo",
        "vo.example",
    ])
    .await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let r = run(&["--is-url", &base, "--site", "MISSING"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary
            .contains("site MISSING is not listed (2 sites listed"),
        "{}",
        r.summary
    );
    let r = run(&["--is-url", &base, "--site", "OTHER"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("without any VO"), "{}", r.summary);
    let r = run(&[
        "--is-url",
        &base,
        "--site",
        "FIXTURE-SITE",
        "--vo",
        "biomed",
    ])
    .await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("VO biomed not published"),
        "{}",
        r.summary
    );
    let r = run(&["--is-url", &base]).await;
    assert_eq!(r.status, Status::Unknown);
}

#[tokio::test]
async fn information_system_answering_html_or_garbage() {
    let s = MockServer::start().await;
    Mock::given(path("/html/sites/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string(
                    "<!DOCTYPE html><html><head><title>Login - EGI Check-in</title></head></html>",
                ),
        )
        .mount(&s)
        .await;
    Mock::given(path("/shape/sites/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"detail": "Not Found"})))
        .mount(&s)
        .await;
    Mock::given(path("/err/sites/"))
        .respond_with(ResponseTemplate::new(500).set_body_string("Internal Server Error"))
        .mount(&s)
        .await;
    let r = run(&["--is-url", &format!("{}/html/", s.uri()), "--site", "S"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("HTML page \"Login - EGI Check-in\""),
        "{}",
        r.summary
    );
    let r = run(&["--is-url", &format!("{}/shape", s.uri()), "--site", "S"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(
        r.summary.contains("expected a list of sites"),
        "{}",
        r.summary
    );
    let r = run(&["--is-url", &format!("{}/err", s.uri()), "--site", "S"]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("HTTP 500"), "{}", r.summary);
}

#[tokio::test]
async fn glue_document_over_http() {
    let s = MockServer::start().await;
    Mock::given(path("/glue.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fresh_sample()))
        .mount(&s)
        .await;
    Mock::given(path("/broken.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(&fresh_sample().to_string()[..500]),
        )
        .mount(&s)
        .await;
    let r = run(&[
        "--glue-url",
        &format!("{}/glue.json", s.uri()),
        "--endpoint",
        "https://cloud.example.org:5000/v3/",
    ])
    .await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    let r = run(&["--glue-url", &format!("{}/broken.json", s.uri())]).await;
    assert_eq!(r.status, Status::Critical);
    assert!(r.summary.contains("not JSON"), "{}", r.summary);
    // What a site sent is quoted: it tells a proxy's page from a document.
    assert!(r.summary.contains("{\"AccessPolicy\""), "{}", r.summary);
}

/// A local file given by mistake (a token file as --glue-file, when
/// check_glue logs in to nothing and knows no secret to scrub) is named and
/// placed, never quoted; one that never ends is refused at a bound.
#[tokio::test]
async fn a_local_file_that_is_not_glue_is_not_quoted_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("access-token");
    std::fs::write(&token, "gho_notpublishedanywhere0123456789\n").unwrap();
    let r = run(&["--glue-file", token.to_str().unwrap()]).await;
    assert_eq!(r.status, Status::Critical, "{r:#?}");
    assert!(r.summary.contains("not JSON"), "{}", r.summary);
    assert!(r.summary.contains("line 1 column 1"), "{}", r.summary);
    assert!(!r.summary.contains("gho_"), "{}", r.summary);
    let out = format!("{r:?}");
    assert!(!out.contains("notpublished"), "{out}");

    let r = run(&["--glue-file", "/dev/zero"]).await;
    assert_eq!(r.status, Status::Unknown, "{r:#?}");
    assert!(r.summary.contains("larger than 64 MiB"), "{}", r.summary);
}

#[tokio::test]
async fn every_broken_file_in_the_corpus_is_not_ok() {
    let dir = repo().join("testdata/glue/bad");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "EXPECTED" {
            continue;
        }
        let r = run(&["--glue-file", p.to_str().unwrap()]).await;
        assert!(
            matches!(r.status, Status::Warning | Status::Critical),
            "{}: {:?} {}",
            p.display(),
            r.status,
            r.summary
        );
    }
    for bad in [
        "ldaps://bdii:2170",
        "http://bdii:2170",
        "ldap://no such host:1",
        "bdii:2170",
    ] {
        let r = run(&["--ldap-url", bad]).await;
        assert_eq!(r.status, Status::Unknown, "{bad}: {}", r.summary);
    }
    let r = run(&["--glue-file", "/nonexistent/glue.json"]).await;
    assert_eq!(r.status, Status::Unknown);
    let r = run(&[]).await;
    assert_eq!(r.status, Status::Unknown);
}
